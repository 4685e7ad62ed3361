//! The command line of `chatd` (clap): flags, defaults and help text. Kept
//! in the library so the man page and completions can be generated from it.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use super::config_file;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTarget {
    /// Standard error (journald captures it under systemd).
    Stderr,
    /// The local syslog daemon (/dev/log), facility daemon.
    Syslog,
}

/// The kernel interface chatd waits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PollerKind {
    /// select(2): at most 1000 chat clients (it watches 1024 descriptors).
    Select,
    /// epoll(7): as many clients as RLIMIT_NOFILE allows (chatd raises its
    /// soft limit to the hard one at start), no cost per idle client.
    Epoll,
}

/// The least severe entries written to the log target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
}

/// A chat-room daemon: named rooms with participant limits over TCP,
/// administered with chatctl over a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "chatd", version, about, long_about = None)]
pub struct Args {
    /// Configuration file: TOML whose keys are these long flags
    /// (`max-clients = 500`); flags given here override it; `none` reads no
    /// file [default: /etc/chatd/chatd.toml when it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address to accept plaintext chat clients on (repeatable; IPv4 or
    /// [IPv6]:port), or `none` for a TLS-only chatd.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1234", value_parser = parse_listen)]
    pub listen: Vec<Option<SocketAddr>>,

    /// Address to accept TLS chat clients on (repeatable; off by default);
    /// needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub tls_listen: Vec<SocketAddr>,

    /// Address to accept IRC clients on (repeatable; off by default): the
    /// same rooms and people as the chat port, spoken as IRC (docs/PROTOCOL.md).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub irc_listen: Vec<SocketAddr>,

    /// Address to accept IRC clients over TLS on (repeatable; off by
    /// default); needs --tls-cert and --tls-key, as --tls-listen does.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub irc_tls_listen: Vec<SocketAddr>,

    /// Address to serve the web port on (repeatable; off by default): the
    /// web client at /, WebSockets (the chat port's protocol as `chatd`,
    /// IRC as text.ircv3.net or binary.ircv3.net), /metrics and /healthz.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub web_listen: Vec<SocketAddr>,

    /// Address to serve the web port over TLS on (repeatable; off by
    /// default); needs --tls-cert and --tls-key, as --tls-listen does.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub web_tls_listen: Vec<SocketAddr>,

    /// An origin a browser page may open a WebSocket from
    /// (`https://chat.example.org`; repeatable; `*` for any). Without it,
    /// only the page chatd serves itself (the Origin matches the Host).
    #[arg(long, value_name = "ORIGIN")]
    pub web_origin: Vec<String>,

    /// A reverse proxy's address (repeatable): its X-Forwarded-For names
    /// the client in logs and limits; anyone else's is ignored.
    #[arg(long, value_name = "IP")]
    pub web_proxy: Vec<std::net::IpAddr>,

    /// Serve no /metrics on the web port.
    #[arg(long)]
    pub no_metrics: bool,

    /// Serve no /healthz on the web port.
    #[arg(long)]
    pub no_healthz: bool,

    /// The server's name on the IRC door (the source of its replies).
    #[arg(long, value_name = "NAME", default_value = "chatd", value_parser = parse_server_name)]
    pub irc_server_name: String,

    /// Seconds an IRC client may be silent before chatd sends it a PING;
    /// one that stays silent as long again is disconnected (ping timeout).
    /// WebSocket clients on the web port get a ping frame on the same
    /// schedule, whatever they speak.
    #[arg(long, value_name = "SECS", default_value = "90", value_parser = parse_secs)]
    pub irc_ping: Duration,

    /// A file whose first line is the IRC door's server password: PASS
    /// must give it (accounts then log in with SASL); without it, PASS is
    /// the password of the account the nick names.
    #[arg(long, value_name = "PATH")]
    pub irc_password_file: Option<PathBuf>,

    /// A registered account that may become an IRC operator with OPER NAME
    /// PASSWORD (its own password) on the IRC door (repeatable): it may
    /// KILL and WALLOPS.
    #[arg(long, value_name = "NAME")]
    pub irc_oper: Vec<String>,

    /// Who creates a room by joining one that does not exist: `admin`
    /// (nobody: rooms come from chatctl, as in the prototype), `accounts`
    /// (logged-in users) or `anyone`; a room made so has --room-limit.
    #[arg(long, value_enum, default_value_t = RoomCreation::Admin)]
    pub room_creation: RoomCreation,

    /// The participant limit of a room created by joining it.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = parse_limit)]
    pub room_limit: usize,

    /// PEM file with the server's certificate chain (its own certificate
    /// first); read again on SIGHUP.
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the certificate's private key; read again on SIGHUP.
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// A room that exists from start-up, as NAME:LIMIT (repeatable).
    #[arg(long, value_name = "NAME:LIMIT", value_parser = parse_room)]
    pub room: Vec<(String, usize)>,

    /// Control socket path [default: $CHATD_CONTROL, else
    /// $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock,
    /// else ${TMPDIR:-/tmp}/chatd-$UID/control.sock, a directory that must
    /// be yours and not writable by others].
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,

    /// Directory for the state file rooms.json (rooms and limits)
    /// [default: $STATE_DIRECTORY, else $XDG_STATE_HOME/chatd, else
    /// ~/.local/state/chatd].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Largest frame payload a client may send, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16384)]
    pub max_frame: usize,

    /// Most chat clients connected at once (with select, at most 1000;
    /// with epoll, what the descriptor limit allows).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_clients: usize,

    /// How chatd waits for its sockets: select (the default) or epoll (for
    /// more than 1000 clients).
    #[arg(long, value_enum, default_value_t = PollerKind::Select)]
    pub poller: PollerKind,

    /// Cluster mode: share rooms, members and messages with the other
    /// chatd nodes using the same Redis
    /// (redis://[USER[:PASSWORD]@]HOST[:PORT], USER an ACL user; see
    /// docs/SCALING.md for the ACL line; rediss:// for TLS).
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,

    /// A file holding the Redis password (one line), e.g. a systemd
    /// credential: LoadCredential=redis-password:/etc/chatd/redis-password
    /// and --cluster-password-file ${CREDENTIALS_DIRECTORY}/redis-password.
    #[arg(long, value_name = "PATH")]
    pub cluster_password_file: Option<PathBuf>,

    /// With rediss://: trust only this CA (PEM) for Redis's certificate,
    /// rather than the system's roots.
    #[arg(long, value_name = "PATH")]
    pub cluster_ca: Option<PathBuf>,

    /// This node's name in the cluster (letters, digits, '.', '_', '-';
    /// unique among the nodes); the host name when left out.
    #[arg(long, value_name = "NAME", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Most connections from one address (an IPv4 address, or an IPv6
    /// /64) at once, members and handshakes together; a LAN party behind
    /// one NAT raises it or exempts its range.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = parse_positive)]
    pub max_clients_per_address: usize,

    /// Most unfinished handshakes from one address at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = parse_positive)]
    pub max_handshakes_per_address: usize,

    /// Most unfinished handshakes over all addresses at once; past it, a
    /// new connection takes the seat of the oldest unfinished handshake, so
    /// a quarter of --max-clients is always kept for finished joins and
    /// stalled handshakes cannot shut the door [default: three quarters of
    /// --max-clients].
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub max_handshakes: Option<usize>,

    /// An address or range the per-address limits (connections,
    /// handshakes, joins a second) do not apply to (repeatable), or `none`
    /// [default: the loopback, 127.0.0.0/8 and ::1].
    #[arg(long, value_name = "CIDR", value_parser = parse_exempt)]
    pub address_limit_exempt: Vec<Option<crate::core::fair::Cidr>>,

    /// Seconds a connection may be silent before TCP keepalive probes ask
    /// whether its peer is still there; a peer gone without a word is
    /// dropped after twice this (3 probes at a third of it), as is one
    /// that leaves data unacknowledged that long (TCP_USER_TIMEOUT).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub tcp_keepalive: Duration,

    /// Write room lines to plaintext members by copy only: no memfd
    /// mirror, no sendfile(2). For clients on this host, whose kernel pays
    /// more to read from shared file pages than chatd saves.
    #[arg(long)]
    pub no_sendfile: bool,

    /// Seconds a new connection has to send its handshake.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub handshake_timeout: Duration,

    /// Most unsent output per client, in bytes; a client beyond it is dropped.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub sendq: usize,

    /// Seconds, in all, a member's backed-up output may hold its room back
    /// before it is dropped (time under the mark pays it back at 1/6).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub write_timeout: Duration,

    /// Seconds a control connection may stay silent (idle, or stalled in
    /// the middle of a request) before it is closed; `logs --follow`
    /// readers are exempt.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub control_timeout: Duration,

    /// Admit registered accounts only (`chatctl user add`); without it,
    /// unregistered names may join too (registered names always need their
    /// password).
    #[arg(long)]
    pub require_login: bool,

    /// Accept OpenID Connect bearer tokens (JWTs) from this issuer (its
    /// `iss`); needs --oidc-audience and --oidc-jwks.
    #[arg(long, value_name = "URL")]
    pub oidc_issuer: Option<String>,

    /// The audience tokens must be for (their `aud`, chatd's client id).
    #[arg(long, value_name = "AUD")]
    pub oidc_audience: Option<String>,

    /// JWKS file with the issuer's public keys (kept fresh by the operator;
    /// read again on SIGHUP; chatd makes no HTTP request).
    #[arg(long, value_name = "PATH")]
    pub oidc_jwks: Option<PathBuf>,

    /// The token claim that holds the username.
    #[arg(long, value_name = "CLAIM", default_value = "preferred_username")]
    pub oidc_username_claim: String,

    /// Where log entries go.
    #[arg(long, value_enum, default_value_t = LogTarget::Stderr)]
    pub log_target: LogTarget,

    /// The least severe entries written to the log target (`chatctl logs`
    /// keeps them all).
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Also log the text of chat messages (off by default, for privacy).
    #[arg(long)]
    pub log_messages: bool,

    /// Log entries kept in memory for `chatctl logs`.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub log_capacity: usize,

    /// Memory all rooms' histories may take together, in MiB; when it is
    /// reached, the room keeping the most gives up its oldest messages.
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub history_memory: u32,

    /// Kept events older than this are forgotten (history file and
    /// memory), checked every minute: an age such as 30d, 12h, 90m, or
    /// 0 for no age limit (rooms keep their last --history N in any case).
    /// A room made with its own `--history-age` follows that instead.
    #[arg(long, value_name = "AGE", default_value = "0", value_parser = parse_age)]
    pub history_age: Duration,

    /// The shortest password (and private room key) `chatctl user add`,
    /// `user passwd` and `room create --key` accept, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub password_min: u16,

    /// Events (messages, joins, leaves) a room keeps in the history file
    /// when it was made without its own `--history`: rooms made by
    /// joining them, by `--room`, and by `chatctl room create` without it
    /// (0: none; at most 1000).
    #[arg(long = "history", value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub history_default: u16,

    /// Direct messages (IRC) kept in the history file per account and
    /// conversation, for CHATHISTORY: a copy for each side that is logged
    /// in to an account, shown only to that account (0: none are kept).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub direct_history: u32,

    /// The most the history file's events may take, in MiB: past it, the
    /// oldest events of all rooms go first (checked every minute; 0: no
    /// limit).
    #[arg(long, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub history_size: u32,

    /// Flood control: messages a connection may send at once, on either
    /// protocol, before --flood-rate paces it (room operators and IRC
    /// operators are exempt).
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub flood_burst: u32,

    /// Messages a second after the burst; beyond, messages are delayed,
    /// and refused after --flood-lag seconds of delays in a row. 0 turns
    /// flood control off.
    #[arg(long, value_name = "N", default_value_t = 2.0, value_parser = parse_rate)]
    pub flood_rate: f64,

    /// Message bytes a second after a burst of 8 seconds' worth (at least
    /// one --max-frame); 0 limits messages only.
    #[arg(long, value_name = "BYTES", default_value_t = 4096.0, value_parser = parse_rate)]
    pub flood_bytes_rate: f64,

    /// How long a flooder's messages are delayed in a row before they are
    /// refused instead (429 on the chat port, a NOTICE on IRC).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub flood_lag: Duration,
}

/// A rate: a number from 0 (0 turns it off), at most 1,000,000.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1e6).contains(&r) => Ok(r),
        _ => Err(format!("the rate '{s}' is not a number from 0 to 1000000")),
    }
}

/// chatd's arguments once the configuration file is read.
#[derive(Debug)]
pub struct Loaded {
    pub args: Args,
    /// The file that was read, if any.
    pub config: Option<PathBuf>,
}

/// Why the arguments could not be had.
#[derive(Debug)]
pub enum LoadError {
    /// A command-line mistake: clap's message and exit status 2.
    Usage(clap::Error),
    /// The configuration file is missing or wrong (the message names it).
    Config(String),
}

/// Parses `argv` (its first item the program name) and the configuration
/// file it names (see [`config_file`]): flags given in `argv` win.
pub fn load(argv: &[OsString]) -> Result<Loaded, LoadError> {
    let cmd = Args::command();
    let matches = cmd
        .clone()
        .try_get_matches_from(argv)
        .map_err(LoadError::Usage)?;
    let first = Args::from_arg_matches(&matches).map_err(LoadError::Usage)?;
    let Some(path) = config_file::choose(first.config.as_deref()).map_err(LoadError::Config)?
    else {
        return Ok(Loaded {
            args: first,
            config: None,
        });
    };
    let file = config_file::read(&cmd, &path).map_err(LoadError::Config)?;
    let given: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(str::to_string)
        .collect();
    let merged = config_file::merge(argv, &given, file);
    let args = Args::try_parse_from(merged).map_err(|e| {
        LoadError::Config(format!(
            "config: {}: {}",
            path.display(),
            config_file::clap_reason(&e)
        ))
    })?;
    Ok(Loaded {
        args,
        config: Some(path),
    })
}

/// A listen address (a host name is resolved, like `chat --server`, and
/// its first address taken), or `none`.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s == "none" {
        return Ok(None);
    }
    parse_addr(s).map(Some)
}

/// `HOST:PORT` or `IP:PORT` (`[IPv6]:PORT`).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad =
        || format!("'{s}' is not an address such as 127.0.0.1:1234, localhost:1234 or [::1]:1234");
    s.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

pub fn parse_room(s: &str) -> Result<(String, usize), String> {
    // Room names may contain ':'; the limit is after the last one.
    let (name, limit) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected NAME:LIMIT, got '{s}'"))?;
    let limit = parse_limit(limit).map_err(|e| format!("'{s}': {e}"))?;
    Ok((name.to_string(), limit))
}

/// A room's participant limit: a whole number from 1 (shared with chatctl).
pub fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the limit must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("the limit '{s}' is not a whole number")),
    }
}

/// A whole number from 1.
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// A range for --address-limit-exempt, or `none`.
pub fn parse_exempt(s: &str) -> Result<Option<crate::core::fair::Cidr>, String> {
    if s == "none" {
        return Ok(None);
    }
    crate::core::fair::Cidr::parse(s).map(Some)
}

pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "'{s}' must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An age: a whole number with a unit (s, m, h, d), or 0 for none.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("'{s}' is not an age such as 30d, 12h, 90m or 45s (or 0 for none)");
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    if n == 0 || secs > 100 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// An age in seconds as [`parse_age`] reads it: the largest whole unit.
pub fn show_age(secs: u64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Who may create a room by joining it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoomCreation {
    /// Only chatctl creates rooms (the prototype's rule).
    Admin,
    /// Logged-in users (a password account or a token) may too.
    Accounts,
    /// Anyone may.
    Anyone,
}

/// An IRC server name: a host-name-like word with at least one letter
/// (no spaces, no `!` or `@`, which would make it a user's source).
pub fn parse_server_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a server name (letters, digits, '.', '-'; at most 63)"
        ))
    }
}

/// A node id: what Redis keys and `CLIENT SETNAME` can carry unquoted.
pub fn parse_node_id(s: &str) -> Result<String, String> {
    crate::core::cluster::check_node_id(s).map(|()| s.to_string())
}
