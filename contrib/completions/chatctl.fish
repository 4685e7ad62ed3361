# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_chatctl_global_optspecs
    string join \n socket= json h/help V/version
end

function __fish_chatctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_chatctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_chatctl_using_subcommand
    set -l cmd (__fish_chatctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c chatctl -n "__fish_chatctl_needs_command" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_needs_command" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_needs_command" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_needs_command" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "room" -d 'Rooms: create, list, members, kick, close, set-limit, allow, deny'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "list" -d 'List rooms (same as `room list`)'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "participants" -d 'Same as `room members` (kept for existing scripts)'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "kick" -d 'Same as `room kick` (kept for existing scripts)'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "logs" -d 'Show the daemon\'s recent log entries, oldest first'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "status" -d 'Show the daemon\'s version, pid, uptime, addresses, paths and counts'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "stats" -d 'Show counters: uptime, clients, rooms, messages, bytes, drops'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "user" -d 'Register, remove and list accounts, or change a password'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "create" -d 'Create a room'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "allow" -d 'Let a (logged-in) user into a private room'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "deny" -d 'Take a user off a private room\'s allow-list; a member by that name inside is removed'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "list" -d 'List rooms in creation order'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "members" -d 'List the members of a room, in join order'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "participants" -d 'List the members of a room, in join order'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "kick" -d 'Remove a member from a room (it is told, then disconnected)'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "close" -d 'Close a room: its members are told and disconnected'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "set-limit" -d 'Change a room\'s limit (members above it stay; new joins obey it)'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and not __fish_seen_subcommand_from create allow deny list members participants kick close set-limit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from create" -l limit -d 'Most members at once (at least 1)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from create" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from create" -l private -d 'A private room: only logged-in users on its allow-list (`room allow`), and holders of its key (--key), may enter'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from create" -l key -d 'Give the private room a key (a password), read like a user\'s password: from the terminal, or the first line of stdin'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from create" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from allow" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from allow" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from allow" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from deny" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from deny" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from deny" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from list" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from members" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from members" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from members" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from participants" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from participants" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from participants" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from kick" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from kick" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from kick" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from close" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from close" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from close" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from set-limit" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from set-limit" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from set-limit" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a room'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "allow" -d 'Let a (logged-in) user into a private room'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "deny" -d 'Take a user off a private room\'s allow-list; a member by that name inside is removed'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "list" -d 'List rooms in creation order'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "members" -d 'List the members of a room, in join order'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "kick" -d 'Remove a member from a room (it is told, then disconnected)'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "close" -d 'Close a room: its members are told and disconnected'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "set-limit" -d 'Change a room\'s limit (members above it stay; new joins obey it)'
complete -c chatctl -n "__fish_chatctl_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand participants" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand participants" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand participants" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand kick" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand kick" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand kick" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -s n -l lines -d 'How many entries' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -l since -d 'Only entries since then: an RFC 3339 time (2026-11-24T10:00:00Z) or an age such as 30s, 10m, 2h, 1d' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -s p -l priority -d 'Only entries at least this severe: error, warn or info' -r -f -a "error\t''
warn\t''
info\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -s f -l follow -d 'Keep printing new entries as they are logged'
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand logs" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand status" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand status" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand stats" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand stats" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand stats" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -f -a "add" -d 'Register an account. The password is read from the terminal (asked twice, not echoed) or, from a pipe, as the first line of stdin; never from the command line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -f -a "del" -d 'Remove an account'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -f -a "list" -d 'List accounts by name'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -f -a "passwd" -d 'Change an account\'s password (read like `user add`\'s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and not __fish_seen_subcommand_from add del list passwd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from add" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from add" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from del" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from del" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from del" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from list" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from passwd" -l socket -d 'Control socket of the daemon [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist, /run/chatd/control.sock, where chatd.service puts it]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from passwd" -l json -d 'Print the daemon\'s JSON responses as they came, one per line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Register an account. The password is read from the terminal (asked twice, not echoed) or, from a pipe, as the first line of stdin; never from the command line'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "del" -d 'Remove an account'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List accounts by name'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Change an account\'s password (read like `user add`\'s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "room" -d 'Rooms: create, list, members, kick, close, set-limit, allow, deny'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "list" -d 'List rooms (same as `room list`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "participants" -d 'Same as `room members` (kept for existing scripts)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "kick" -d 'Same as `room kick` (kept for existing scripts)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "logs" -d 'Show the daemon\'s recent log entries, oldest first'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "status" -d 'Show the daemon\'s version, pid, uptime, addresses, paths and counts'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "stats" -d 'Show counters: uptime, clients, rooms, messages, bytes, drops'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "user" -d 'Register, remove and list accounts, or change a password'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from room list participants kick logs status stats user help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "create" -d 'Create a room'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "allow" -d 'Let a (logged-in) user into a private room'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "deny" -d 'Take a user off a private room\'s allow-list; a member by that name inside is removed'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "list" -d 'List rooms in creation order'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "members" -d 'List the members of a room, in join order'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "kick" -d 'Remove a member from a room (it is told, then disconnected)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "close" -d 'Close a room: its members are told and disconnected'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "set-limit" -d 'Change a room\'s limit (members above it stay; new joins obey it)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Register an account. The password is read from the terminal (asked twice, not echoed) or, from a pipe, as the first line of stdin; never from the command line'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "del" -d 'Remove an account'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List accounts by name'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "passwd" -d 'Change an account\'s password (read like `user add`\'s)'
