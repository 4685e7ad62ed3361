//! chatd: the chat-room daemon. Parses flags, builds the configuration, runs
//! the event loop; maps every failure to a message on stderr and exit 1
//! (2 for usage errors, from clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use chatd::control::resolve_socket_path;
use chatd::daemon::{self, Config, logbook::Sink};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogTarget {
    /// Standard error (journald captures it under systemd).
    Stderr,
    /// The local syslog daemon (/dev/log), facility daemon.
    Syslog,
}

/// A chat-room daemon: named rooms with participant limits over TCP,
/// administered with chatctl over a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "chatd", version, about, long_about = None)]
struct Args {
    /// Address to accept chat clients on (repeatable; IPv4 or [IPv6]:port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1234")]
    listen: Vec<SocketAddr>,

    /// A room that exists from start-up, as NAME:LIMIT (repeatable).
    #[arg(long, value_name = "NAME:LIMIT", value_parser = parse_room)]
    room: Vec<(String, usize)>,

    /// Control socket path [default: $CHATD_CONTROL, else
    /// $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock,
    /// else /tmp/chatd-$UID/control.sock].
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,

    /// Directory for the state file (rooms and limits).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Largest frame payload a client may send, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16384)]
    max_frame: usize,

    /// Most chat clients connected at once (at most what select(2) can hold).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_clients: usize,

    /// Seconds a new connection has to send its handshake.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    handshake_timeout: Duration,

    /// Most unsent output per client, in bytes; a client beyond it is dropped.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    sendq: usize,

    /// Seconds a client's output may stay backed up before it is dropped.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    write_timeout: Duration,

    /// Where log entries go.
    #[arg(long, value_enum, default_value_t = LogTarget::Stderr)]
    log_target: LogTarget,

    /// Also log the text of chat messages (off by default, for privacy).
    #[arg(long)]
    log_messages: bool,

    /// Log entries kept in memory for `chatctl logs`.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    log_capacity: usize,
}

fn parse_room(s: &str) -> Result<(String, usize), String> {
    // Room names may contain ':'; the limit is after the last one.
    let (name, limit) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected NAME:LIMIT, got '{s}'"))?;
    let limit = limit
        .parse()
        .map_err(|_| format!("limit in '{s}' is not a whole number"))?;
    Ok((name.to_string(), limit))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
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

fn main() -> ExitCode {
    let args = Args::parse();
    let sink = match args.log_target {
        LogTarget::Stderr => Sink::stderr(),
        LogTarget::Syslog => match Sink::syslog() {
            Ok(s) => s,
            Err(e) => return fail(&e),
        },
    };
    let cfg = Config {
        listen: args.listen,
        rooms: args.room,
        control: resolve_socket_path(args.control.as_deref()),
        state_dir: args.state_dir,
        max_frame: args.max_frame,
        max_clients: args.max_clients,
        handshake_timeout: args.handshake_timeout,
        sendq: args.sendq,
        write_timeout: args.write_timeout,
        log_messages: args.log_messages,
        log_capacity: args.log_capacity,
    };
    match daemon::run(cfg, sink) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("chatd: error: {msg}");
    ExitCode::FAILURE
}
