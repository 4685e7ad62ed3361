complete -c chatd -l config -d 'Configuration file: TOML whose keys are these long flags (`max-clients = 500`); flags given here override it; `none` reads no file [default: /etc/chatd/chatd.toml when it exists]' -r -F
complete -c chatd -l listen -d 'Address to accept plaintext chat clients on (repeatable; IPv4 or [IPv6]:port), or `none` for a TLS-only chatd' -r
complete -c chatd -l tls-listen -d 'Address to accept TLS chat clients on (repeatable; off by default); needs --tls-cert and --tls-key' -r
complete -c chatd -l irc-listen -d 'Address to accept IRC clients on (repeatable; off by default): the same rooms and people as the chat port, spoken as IRC (docs/PROTOCOL.md)' -r
complete -c chatd -l irc-tls-listen -d 'Address to accept IRC clients over TLS on (repeatable; off by default); needs --tls-cert and --tls-key, as --tls-listen does' -r
complete -c chatd -l web-listen -d 'Address to serve the web port on (repeatable; off by default): the web client at /, WebSockets (the chat port\'s protocol as `chatd`, IRC as text.ircv3.net or binary.ircv3.net), /metrics and /healthz' -r
complete -c chatd -l web-tls-listen -d 'Address to serve the web port over TLS on (repeatable; off by default); needs --tls-cert and --tls-key, as --tls-listen does' -r
complete -c chatd -l web-origin -d 'An origin a browser page may open a WebSocket from (`https://chat.example.org`; repeatable; `*` for any). Without it, only the page chatd serves itself (the Origin matches the Host)' -r
complete -c chatd -l web-proxy -d 'A reverse proxy\'s address (repeatable): its X-Forwarded-For names the client in logs and limits; anyone else\'s is ignored' -r
complete -c chatd -l irc-server-name -d 'The server\'s name on the IRC door (the source of its replies)' -r
complete -c chatd -l irc-ping -d 'Seconds an IRC client may be silent before chatd sends it a PING; one that stays silent as long again is disconnected (ping timeout). WebSocket clients on the web port get a ping frame on the same schedule, whatever they speak' -r
complete -c chatd -l irc-password-file -d 'A file whose first line is the IRC door\'s server password: PASS must give it (accounts then log in with SASL); without it, PASS is the password of the account the nick names' -r -F
complete -c chatd -l irc-oper -d 'A registered account that may become an IRC operator with OPER NAME PASSWORD (its own password) on the IRC door (repeatable): it may KILL and WALLOPS' -r
complete -c chatd -l room-creation -d 'Who creates a room by joining one that does not exist: `admin` (nobody: rooms come from chatctl, as in the prototype), `accounts` (logged-in users) or `anyone`; a room made so has --room-limit' -r -f -a "admin\t'Only chatctl creates rooms (the prototype\'s rule)'
accounts\t'Logged-in users (a password account or a token) may too'
anyone\t'Anyone may'"
complete -c chatd -l room-limit -d 'The participant limit of a room created by joining it' -r
complete -c chatd -l tls-cert -d 'PEM file with the server\'s certificate chain (its own certificate first); read again on SIGHUP' -r -F
complete -c chatd -l tls-key -d 'PEM file with the certificate\'s private key; read again on SIGHUP' -r -F
complete -c chatd -l room -d 'A room that exists from start-up, as NAME:LIMIT (repeatable)' -r
complete -c chatd -l control -d 'Control socket path [default: $CHATD_CONTROL, else $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock, else ${TMPDIR:-/tmp}/chatd-$UID/control.sock, a directory that must be yours and not writable by others]' -r -F
complete -c chatd -l state-dir -d 'Directory for the state file rooms.json (rooms and limits) [default: $STATE_DIRECTORY, else $XDG_STATE_HOME/chatd, else ~/.local/state/chatd]' -r -F
complete -c chatd -l max-frame -d 'Largest frame payload a client may send, in bytes' -r
complete -c chatd -l max-clients -d 'Most chat clients connected at once (with select, at most 1000; with epoll, what the descriptor limit allows)' -r
complete -c chatd -l poller -d 'How chatd waits for its sockets: select (the default) or epoll (for more than 1000 clients)' -r -f -a "select\t'select(2): at most 1000 chat clients (it watches 1024 descriptors)'
epoll\t'epoll(7): as many clients as RLIMIT_NOFILE allows (chatd raises its soft limit to the hard one at start), no cost per idle client'"
complete -c chatd -l cluster -d 'Cluster mode: share rooms, members and messages with the other chatd nodes using the same Redis (redis://[USER[:PASSWORD]@]HOST[:PORT], USER an ACL user; see docs/SCALING.md for the ACL line; rediss:// for TLS)' -r
complete -c chatd -l cluster-password-file -d 'A file holding the Redis password (one line), e.g. a systemd credential: LoadCredential=redis-password:/etc/chatd/redis-password and --cluster-password-file ${CREDENTIALS_DIRECTORY}/redis-password' -r -F
complete -c chatd -l cluster-ca -d 'With rediss://: trust only this CA (PEM) for Redis\'s certificate, rather than the system\'s roots' -r -F
complete -c chatd -l node-id -d 'This node\'s name in the cluster (letters, digits, \'.\', \'_\', \'-\'; unique among the nodes); the host name when left out' -r
complete -c chatd -l max-clients-per-address -d 'Most connections from one address (an IPv4 address, or an IPv6 /64) at once, members and handshakes together; a LAN party behind one NAT raises it or exempts its range' -r
complete -c chatd -l max-handshakes-per-address -d 'Most unfinished handshakes from one address at once' -r
complete -c chatd -l max-handshakes -d 'Most unfinished handshakes over all addresses at once; past it, a new connection takes the seat of the oldest unfinished handshake, so a quarter of --max-clients is always kept for finished joins and stalled handshakes cannot shut the door [default: three quarters of --max-clients]' -r
complete -c chatd -l address-limit-exempt -d 'An address or range the per-address limits (connections, handshakes, joins a second) do not apply to (repeatable), or `none` [default: the loopback, 127.0.0.0/8 and ::1]' -r
complete -c chatd -l tcp-keepalive -d 'Seconds a connection may be silent before TCP keepalive probes ask whether its peer is still there; a peer gone without a word is dropped after twice this (3 probes at a third of it), as is one that leaves data unacknowledged that long (TCP_USER_TIMEOUT)' -r
complete -c chatd -l handshake-timeout -d 'Seconds a new connection has to send its handshake' -r
complete -c chatd -l sendq -d 'Most unsent output per client, in bytes; a client beyond it is dropped' -r
complete -c chatd -l write-timeout -d 'Seconds, in all, a member\'s backed-up output may hold its room back before it is dropped (time under the mark pays it back at 1/6)' -r
complete -c chatd -l control-timeout -d 'Seconds a control connection may stay silent (idle, or stalled in the middle of a request) before it is closed; `logs --follow` readers are exempt' -r
complete -c chatd -l oidc-issuer -d 'Accept OpenID Connect bearer tokens (JWTs) from this issuer (its `iss`); needs --oidc-audience and --oidc-jwks' -r
complete -c chatd -l oidc-audience -d 'The audience tokens must be for (their `aud`, chatd\'s client id)' -r
complete -c chatd -l oidc-jwks -d 'JWKS file with the issuer\'s public keys (kept fresh by the operator; read again on SIGHUP; chatd makes no HTTP request)' -r -F
complete -c chatd -l oidc-username-claim -d 'The token claim that holds the username' -r
complete -c chatd -l log-target -d 'Where log entries go' -r -f -a "stderr\t'Standard error (journald captures it under systemd)'
syslog\t'The local syslog daemon (/dev/log), facility daemon'"
complete -c chatd -l log-level -d 'The least severe entries written to the log target (`chatctl logs` keeps them all)' -r -f -a "error\t''
warn\t''
info\t''"
complete -c chatd -l log-capacity -d 'Log entries kept in memory for `chatctl logs`' -r
complete -c chatd -l history-memory -d 'Memory all rooms\' histories may take together, in MiB; when it is reached, the room keeping the most gives up its oldest messages' -r
complete -c chatd -l history-age -d 'Kept events older than this are forgotten (history file and memory), checked every minute: an age such as 30d, 12h, 90m, or 0 for no age limit (rooms keep their last --history N in any case). A room made with its own `--history-age` follows that instead' -r
complete -c chatd -l password-min -d 'The shortest password (and private room key) `chatctl user add`, `user passwd` and `room create --key` accept, in bytes' -r
complete -c chatd -l history -d 'Events (messages, joins, leaves) a room keeps in the history file when it was made without its own `--history`: rooms made by joining them, by `--room`, and by `chatctl room create` without it (0: none; at most 1000)' -r
complete -c chatd -l direct-history -d 'Direct messages (IRC) kept in the history file per account and conversation, for CHATHISTORY: a copy for each side that is logged in to an account, shown only to that account (0: none are kept)' -r
complete -c chatd -l history-size -d 'The most the history file\'s events may take, in MiB: past it, the oldest events of all rooms go first (checked every minute; 0: no limit)' -r
complete -c chatd -l flood-burst -d 'Flood control: messages a connection may send at once, on either protocol, before --flood-rate paces it (room operators and IRC operators are exempt)' -r
complete -c chatd -l flood-rate -d 'Messages a second after the burst; beyond, messages are delayed, and refused after --flood-lag seconds of delays in a row. 0 turns flood control off' -r
complete -c chatd -l flood-bytes-rate -d 'Message bytes a second after a burst of 8 seconds\' worth (at least one --max-frame); 0 limits messages only' -r
complete -c chatd -l flood-lag -d 'How long a flooder\'s messages are delayed in a row before they are refused instead (429 on the chat port, a NOTICE on IRC)' -r
complete -c chatd -l no-metrics -d 'Serve no /metrics on the web port'
complete -c chatd -l no-healthz -d 'Serve no /healthz on the web port'
complete -c chatd -l no-sendfile -d 'Write room lines to plaintext members by copy only: no memfd mirror, no sendfile(2). For clients on this host, whose kernel pays more to read from shared file pages than chatd saves'
complete -c chatd -l require-login -d 'Admit registered accounts only (`chatctl user add`); without it, unregistered names may join too (registered names always need their password)'
complete -c chatd -l log-messages -d 'Also log the text of chat messages (off by default, for privacy)'
complete -c chatd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatd -s V -l version -d 'Print version'
