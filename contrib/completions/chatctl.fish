complete --keep-order --exclusive --command chatctl --arguments "(COMPLETE=fish chatctl -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
