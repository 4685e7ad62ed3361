complete -c chat -l server -d 'chatd\'s address' -r
complete -c chat -l user -d 'Username (asked for when interactive and not given)' -r
complete -c chat -l room -d 'Room to join (asked for when interactive and not given)' -r
complete -c chat -l connect-timeout -d 'Seconds to wait for the connection, and then for the server to answer the join, before giving up (exit 3)' -r
complete -c chat -l ca -d 'PEM file with the CA certificate(s) to trust instead of the system\'s (a private CA); implies --tls' -r -F
complete -c chat -l tls-pin -d 'Trust only the server certificate with this SHA-256 fingerprint (`sha256:HEX`, colons allowed, as `openssl x509 -noout -fingerprint -sha256` prints it) instead of a CA: for a self-signed certificate. May be given more than once (a certificate being replaced). Implies --tls' -r
complete -c chat -l known-hosts -d 'The file --tofu remembers servers in' -r
complete -c chat -l lang -d 'The language of the client\'s words: pt (the prototype\'s) or en. Default: English when LC_ALL, LC_MESSAGES or LANG says so, else Portuguese' -r -f -a "pt\t''
en\t''"
complete -c chat -l password-file -d 'Log in to a registered account with the password in the first line of this file (interactive chat asks for it when the server wants it)' -r -F
complete -c chat -l token-file -d 'Log in with the OpenID Connect bearer token (a JWT) in this file (default: $CHAT_TOKEN); the name is the token\'s, --user is not needed' -r -F
complete -c chat -l room-key-file -d 'A private room\'s key, as the first line of this file (interactive chat asks for it when the room wants it)' -r -F
complete -c chat -l json -d 'Print events as the JSON lines received instead of `username > message`'
complete -c chat -l plain -d 'Interactive, line by line like the prototype\'s client, instead of the full-screen view'
complete -c chat -l tls -d 'Connect with TLS, verifying the server\'s certificate against the system\'s root certificates (or --ca). There is no way to skip the verification'
complete -c chat -l tofu -d 'Trust on first use, as ssh does: the first certificate this server shows is remembered in --known-hosts, and a different one later is refused with a warning. Implies --tls'
complete -c chat -l password-stdin -d 'Scripted: the first line of stdin is the account\'s password, the lines after it are messages'
complete -c chat -s h -l help -d 'Print help'
complete -c chat -s V -l version -d 'Print version'
