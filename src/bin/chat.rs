//! chat: the terminal client for chatd, like the prototype's chat_client.py.
//!
//! Interactive (stdin is a terminal): asks for the username and room, shows
//! every event as `username > message` above the line being typed, `/SAIR`
//! leaves the room and asks for another, Ctrl-D or Ctrl-C exits. The prompts
//! and messages of the interactive session follow the prototype (Portuguese).
//!
//! Scripted (stdin is not a terminal): `--user` and `--room` are required;
//! each stdin line is one message; events go to stdout.
//!
//! The protocol and the loop are in the library (`chatd::client`); this
//! file holds `main`, the dialogue around rooms, and one exit-status map.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use chatd::cli::chat::Args;
use chatd::client::desk::Desk;
use chatd::client::editor::LineEditor;
use chatd::client::lang::{self, Text, t, tf};
use chatd::client::retry::{self, Backoff};
use chatd::client::run::{self, Input, Options, Stay};
use chatd::client::screen::Screen;
use chatd::client::session::{ClientSession, EndedBy, Ending};
use chatd::client::terminal::RawMode;
use chatd::client::transport::{self, Transport};
use chatd::client::tui::{Tui, describe_rooms};
use chatd::core::text::printable;
use chatd::core::wire::RoomEntry;
use chatd::sys::selfpipe::SelfPipe;

/// How chat ends; [`exit_status`] maps each to its status, in one place.
enum Outcome {
    /// 0: done as asked.
    Done,
    /// 1: the join was refused, messages were rejected, the server ended
    /// the session, or something local failed.
    Failed(String),
    /// 2: usage error.
    Usage(String),
    /// 3: the server could not be reached, or did not answer the join.
    Unreachable(String),
}

fn exit_status(outcome: Outcome) -> ExitCode {
    let (code, message) = match outcome {
        Outcome::Done => (0, None),
        Outcome::Failed(m) => (1, Some(m)),
        Outcome::Usage(m) => (2, Some(m)),
        Outcome::Unreachable(m) => (3, Some(m)),
    };
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        eprintln!("chat: {m}");
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = Args::parse();
    lang::choose(args.lang.as_deref());
    exit_status(run(args))
}

fn run(args: Args) -> Outcome {
    let addr = match args.server.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => return Outcome::Usage(format!("cannot resolve --server {}", args.server)),
    };
    // SIGWINCH: the full screen redraws at the new size.
    let mut signals = match SelfPipe::install(&[
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGWINCH,
    ]) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("signals: {e}")),
    };
    let opts = Options {
        json: args.json,
        join_timeout: args.connect_timeout,
    };
    if io::stdin().is_terminal() {
        interactive(&args, addr, &mut signals, opts)
    } else {
        scripted(&args, addr, &mut signals, opts)
    }
}

/// How to reach the server: its address, and TLS when asked for.
struct Dialer {
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Dialer {
    fn new(args: &Args, addr: SocketAddr) -> Result<Dialer, Outcome> {
        let pinned = !args.tls_pin.is_empty() || args.tofu;
        let tls = if args.tls || args.ca.is_some() || pinned {
            let config = match trust(args)? {
                Some(trust) => transport::pinned_config(trust),
                None => {
                    let roots = transport::roots(args.ca.as_deref()).map_err(Outcome::Usage)?;
                    transport::client_config(roots)
                }
            }
            .map_err(Outcome::Failed)?;
            let name = transport::server_name(&args.server).map_err(Outcome::Usage)?;
            Some((config, name))
        } else {
            None
        };
        Ok(Dialer {
            addr,
            timeout: args.connect_timeout,
            tls,
        })
    }

    fn connect(&self) -> Result<Transport, Outcome> {
        let addr = self.addr;
        let unreachable =
            |e: std::io::Error| Outcome::Unreachable(format!("cannot connect to {addr}: {e}"));
        let stream = TcpStream::connect_timeout(&addr, self.timeout).map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        stream.set_nonblocking(true).map_err(unreachable)?;
        self.wrap(stream).map_err(unreachable)
    }

    /// A connection begun without waiting (the full screen's reconnects
    /// and `/join`: its loop must not stall on an unreachable server).
    fn connect_later(&self) -> std::io::Result<Transport> {
        self.wrap(transport::connect_nonblocking(self.addr)?)
    }

    /// TLS over `stream`, when asked for.
    fn wrap(&self, stream: TcpStream) -> std::io::Result<Transport> {
        match &self.tls {
            None => Ok(Transport::Plain(stream)),
            Some((config, name)) => Transport::tls(stream, config, name.clone()),
        }
    }
}

/// A fingerprint to trust instead of a CA (--tls-pin, --tofu), if asked.
fn trust(args: &Args) -> Result<Option<chatd::client::pin::Trust>, Outcome> {
    use chatd::client::pin::{self, Trust};
    if !args.tls_pin.is_empty() {
        let pins = args.tls_pin.iter().map(|p| pin::parse_pin(p));
        let pins = pins.collect::<Result<_, _>>().map_err(Outcome::Usage)?;
        return Ok(Some(Trust::Pin(pins)));
    }
    if !args.tofu {
        return Ok(None);
    }
    // The default as --help shows it; the real path from $XDG_CONFIG_HOME
    // or $HOME.
    let file = match args.known_hosts.as_str() {
        "~/.config/chat/known_hosts" => pin::default_known_hosts().ok_or_else(|| {
            Outcome::Usage("--tofu: no $HOME for the known_hosts file; give --known-hosts".into())
        })?,
        path => std::path::PathBuf::from(path),
    };
    Ok(Some(Trust::FirstUse {
        file,
        host: args.server.clone(),
    }))
}

impl Dialer {
    /// The server's public rooms, asked on a connection of its own.
    fn rooms(&self) -> Result<Vec<RoomEntry>, String> {
        let transport = self.connect().map_err(|o| match o {
            Outcome::Unreachable(m) | Outcome::Failed(m) | Outcome::Usage(m) => m,
            Outcome::Done => String::new(),
        })?;
        run::list_rooms(transport, self.timeout.min(Duration::from_secs(3)))
    }
}

fn tls_failed(addr: SocketAddr, why: &str) -> String {
    // A warning of several lines (a changed certificate) stands apart.
    match why.contains('\n') {
        true => format!("TLS with {addr} failed:\n{why}"),
        false => format!("TLS with {addr} failed: {why}"),
    }
}

fn no_answer(addr: SocketAddr, opts: Options) -> String {
    format!(
        "{addr} accepted the connection but did not answer the join within {} s (is it a chatd?)",
        opts.join_timeout.as_secs_f64()
    )
}

// ---------------------------------------------------------------------------
// Scripted mode
// ---------------------------------------------------------------------------

fn scripted(args: &Args, addr: SocketAddr, signals: &mut SelfPipe, opts: Options) -> Outcome {
    let token = match read_token(args) {
        Ok(t) => t,
        Err(outcome) => return outcome,
    };
    let (Some(room), true) = (&args.room, args.user.is_some() || token.is_some()) else {
        return Outcome::Usage(
            "--room, and --user (or a token), are required when stdin is not a terminal".into(),
        );
    };
    let dialer = match Dialer::new(args, addr) {
        Ok(d) => d,
        Err(outcome) => return outcome,
    };
    let password = match scripted_password(args) {
        Ok(p) => p,
        Err(outcome) => return outcome,
    };
    let room_key = match &args.room_key_file {
        Some(path) => match read_password_file(path) {
            Ok(k) => Some(k),
            Err(outcome) => return outcome,
        },
        None => None,
    };
    let mut backoff = Backoff::new();
    loop {
        let transport = match dialer.connect() {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        let session = match (&token, &args.user) {
            (Some(t), user) => ClientSession::with_token(room, t, user.as_deref()),
            (None, Some(user)) => ClientSession::with_password(user, room, password.as_deref()),
            (None, None) => unreachable!("checked above"),
        }
        .with_room_key(room_key.as_deref());
        let mut stay = Stay::new(transport, session, signals, Input::Script, opts);
        let ending = stay.run();
        let rejected = stay.rejected();
        tell_pin_notes();
        if let Ending::Refused { code, reason } = &ending
            && code == "503"
            && let Some(pause) = backoff.next(reason, retry::clock_jitter())
        {
            eprintln!(
                "chat: the server is busy (503: {}); trying again in {:.1} s",
                printable(reason),
                pause.as_secs_f64()
            );
            if !sleep_unless_signalled(signals, pause) {
                return Outcome::Failed("interrupted while waiting to try again".into());
            }
            continue;
        }
        return scripted_outcome(ending, rejected, addr, opts);
    }
}

/// What a scripted stay's ending means for the exit status.
fn scripted_outcome(ending: Ending, rejected: usize, addr: SocketAddr, opts: Options) -> Outcome {
    match ending {
        Ending::Quit if rejected == 0 => Outcome::Done,
        Ending::Quit => Outcome::Failed(format!("the server rejected {rejected} message(s)")),
        Ending::Left => Outcome::Done,
        Ending::Refused { code, reason } => {
            Outcome::Failed(format!("join refused ({code}): {}", printable(&reason)))
        }
        Ending::Ended(by, why) => Outcome::Failed(by.say_why(why.as_deref())),
        Ending::Lost(why) => Outcome::Failed(why),
        Ending::NoAnswer => Outcome::Unreachable(no_answer(addr, opts)),
        Ending::TlsFailed(why) => Outcome::Unreachable(tls_failed(addr, &why)),
    }
}

/// Waits `pause`, or less if SIGTERM or SIGHUP arrives (then false).
fn sleep_unless_signalled(signals: &mut SelfPipe, pause: Duration) -> bool {
    use nix::sys::select::{FdSet, select};
    use nix::sys::time::{TimeVal, TimeValLike};
    let until = std::time::Instant::now() + pause;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        let mut rset = FdSet::new();
        rset.insert(signals.fd());
        let mut tv = TimeVal::microseconds(left.as_micros().min(i64::MAX as u128) as i64);
        match select(None, &mut rset, None, None, &mut tv) {
            Ok(0) => return true,
            Ok(_) => {
                let got = signals.take();
                if got.iter().any(|&s| s != signal_hook::consts::SIGWINCH) {
                    return false;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}

/// A bearer token (OpenID Connect) from --token-file or `$CHAT_TOKEN`.
fn read_token(args: &Args) -> Result<Option<String>, Outcome> {
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Outcome::Usage(format!("--token-file {}: {e}", path.display())))?,
        None => match std::env::var("CHAT_TOKEN") {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(Outcome::Usage("the token is empty".into()));
    }
    Ok(Some(token))
}

/// The password for a scripted login: from --password-file, or the first
/// line of stdin with --password-stdin.
fn scripted_password(args: &Args) -> Result<Option<String>, Outcome> {
    if let Some(path) = &args.password_file {
        return read_password_file(path).map(Some);
    }
    if !args.password_stdin {
        return Ok(None);
    }
    // One byte at a time, so nothing after the first line is taken from
    // the messages that follow it.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut stdin = io::stdin().lock();
    loop {
        match std::io::Read::read(&mut stdin, &mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(Outcome::Usage(format!("reading the password: {e}"))),
        }
    }
    let password = String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string();
    if password.is_empty() {
        return Err(Outcome::Usage(
            "--password-stdin: the first line of stdin is empty".into(),
        ));
    }
    Ok(Some(password))
}

fn read_password_file(path: &std::path::Path) -> Result<String, Outcome> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Outcome::Usage(format!("--password-file {}: {e}", path.display())))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(Outcome::Usage(format!(
            "--password-file {}: the first line is empty",
            path.display()
        )));
    }
    Ok(password)
}

// ---------------------------------------------------------------------------
// Interactive mode
// ---------------------------------------------------------------------------

fn interactive(args: &Args, addr: SocketAddr, signals: &mut SelfPipe, opts: Options) -> Outcome {
    let dialer = match Dialer::new(args, addr) {
        Ok(d) => d,
        Err(outcome) => return outcome,
    };
    let token = match read_token(args) {
        Ok(t) => t,
        Err(outcome) => return outcome,
    };
    let mut user = args.user.clone();
    let mut room = args.room.clone();
    let mut password = match &args.password_file {
        Some(path) => match read_password_file(path) {
            Ok(p) => Some(p),
            Err(outcome) => return outcome,
        },
        None => None,
    };
    let mut room_key = match &args.room_key_file {
        Some(path) => match read_password_file(path) {
            Ok(k) => Some(k),
            Err(outcome) => return outcome,
        },
        None => None,
    };
    let mut backoff = Backoff::new();
    loop {
        // With a token, the name is the token's.
        let Some(u) = (if token.is_some() {
            Some(String::new())
        } else {
            user.clone().or_else(|| ask(t(Text::Username)))
        }) else {
            return Outcome::Done;
        };
        user = Some(u.clone());
        if room.is_none() {
            // A key belongs to the room it was given for.
            room_key = None;
        }
        // The room prompt offers the public rooms, when the server lists them.
        let listed = dialer.rooms();
        if room.is_none()
            && let Ok(rooms) = &listed
        {
            if rooms.is_empty() {
                println!("{}", t(Text::NoPublicRooms));
            } else {
                println!("{}", tf(Text::RoomsAvailable, &[&describe_rooms(rooms)]));
            }
        }
        let Some(r) = room.clone().or_else(|| {
            let typed = ask(t(Text::ChooseRoom))?;
            let rooms = listed.as_deref().unwrap_or(&[]);
            Some(chatd::client::tui::pick_room(&typed, rooms))
        }) else {
            return Outcome::Done;
        };
        room = Some(r.clone());
        let transport = match dialer.connect() {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        let session = match &token {
            Some(t) => ClientSession::with_token(&r, t, args.user.as_deref()),
            None => ClientSession::with_password(&u, &r, password.as_deref()),
        }
        .with_room_key(room_key.as_deref());
        let ending = if args.plain {
            tell_pin_notes();
            if backoff.retries() == 0 {
                println!("{}", t(Text::HowToLeave));
            }
            let raw = match RawMode::enter() {
                Ok(r) => r,
                Err(e) => return Outcome::Failed(format!("terminal: {e}")),
            };
            let mut editor = LineEditor::new(&u);
            // `members`, for /who; the event itself is not printed.
            let session = session.with_features(&["members"]);
            let ending = Stay::new(
                transport,
                session,
                signals,
                Input::Keyboard(&mut editor),
                opts,
            )
            .run();
            drop(raw);
            ending
        } else {
            let mut screen = Screen::new(&u, &r, &args.server, dialer.tls.is_some());
            if let Ok(rooms) = &listed {
                screen.win_mut().learn_limit(rooms);
            }
            let now = chatd::client::tui::local_hhmm(None);
            screen.note(&now, t(Text::HowToLeaveScreen));
            let mut tui = match Tui::enter(screen) {
                Ok(t) => t,
                Err(e) => return Outcome::Failed(format!("terminal: {e}")),
            };
            let lister = || dialer.rooms();
            let connect = || {
                dialer
                    .connect_later()
                    .map_err(|e| Ending::Lost(lang::io_error(&e)))
            };
            // Each room's handshake: the same person, the same features.
            let handshake = |room: &str| {
                match &token {
                    Some(t) => ClientSession::with_token(room, t, args.user.as_deref()),
                    None => ClientSession::with_password(&u, room, password.as_deref()),
                }
                .with_room_key(if room == r { room_key.as_deref() } else { None })
                .with_features(FEATURES)
            };
            Desk::new(
                &mut tui, signals, &connect, &handshake, &lister, opts, transport,
            )
            .run()
        };
        if !matches!(&ending, Ending::Refused { code, .. } if code == "503") {
            backoff = Backoff::new();
        }
        match ending {
            Ending::Left => {
                println!("{}", t(Text::Leaving));
                room = None;
            }
            Ending::Quit => {
                println!();
                return Outcome::Done;
            }
            Ending::Refused { code, reason } => match code.as_str() {
                "503" => match backoff.next(&reason, retry::clock_jitter()) {
                    Some(pause) => {
                        let reason = lang::reason(&code, &reason);
                        let secs = format!("{:.0}", pause.as_secs_f64().ceil());
                        println!("{}", tf(Text::BusyRetrying, &[&reason, &secs]));
                        if !sleep_unless_signalled(signals, pause) {
                            return Outcome::Done;
                        }
                    }
                    None => {
                        println!("{}", tf(Text::StillBusy, &[&lang::reason(&code, &reason)]));
                        return Outcome::Failed(String::new());
                    }
                },
                "404" => {
                    println!("{}", t(Text::NoSuchRoom));
                    room = None;
                }
                "501" => {
                    println!("{}", t(Text::RoomFull));
                    room = None;
                }
                "409" => {
                    println!("{}", t(Text::NameTaken));
                    user = None;
                    password = None;
                }
                "401" if token.is_some() => {
                    println!(
                        "{}",
                        tf(Text::TokenRefused, &[&lang::reason(&code, &reason)])
                    );
                    return Outcome::Failed(String::new());
                }
                "401" => {
                    println!(
                        "{}",
                        tf(Text::LoginNeeded, &[&lang::reason(&code, &reason)])
                    );
                    match chatd::client::terminal::read_hidden(t(Text::Password)) {
                        Ok(p) if !p.is_empty() => password = Some(p),
                        _ => {
                            println!();
                            user = None;
                            password = None;
                        }
                    }
                }
                "403" => {
                    println!("{}", tf(Text::NotAllowed, &[&lang::reason(&code, &reason)]));
                    // A private room may take a key: ask once; none, or a
                    // wrong one, and another room is asked for.
                    let asked = room_key.is_none();
                    room_key = None;
                    if asked
                        && let Ok(k) = chatd::client::terminal::read_hidden(t(Text::RoomKey))
                        && !k.is_empty()
                    {
                        room_key = Some(k);
                    } else {
                        println!();
                        room = None;
                    }
                }
                _ => {
                    println!(
                        "{}",
                        tf(Text::JoinRefused, &[&code, &lang::reason(&code, &reason)])
                    );
                    user = None;
                    room = None;
                    password = None;
                }
            },
            Ending::Ended(by, why) => {
                println!("{}\n", by.say_why(why.as_deref()));
                if by == EndedBy::Shutdown {
                    return Outcome::Done;
                }
                room = None;
            }
            Ending::Lost(why) => {
                println!("{why}");
                return Outcome::Failed(String::new());
            }
            Ending::NoAnswer => {
                let secs = opts.join_timeout.as_secs_f64().to_string();
                println!("{}", tf(Text::NoAnswer, &[&secs]));
                return Outcome::Unreachable(String::new());
            }
            Ending::TlsFailed(why) => return Outcome::Unreachable(tls_failed(addr, &why)),
        }
    }
}

/// A certificate remembered on first use (--tofu), said on the terminal
/// (the full screen shows it in its window instead).
fn tell_pin_notes() {
    for note in chatd::client::pin::take_notes() {
        eprintln!("chat: {note}");
    }
}

/// What the full screen asks chatd for (docs/PROTOCOL.md, "features").
const FEATURES: &[&str] = &["members", "history", "topic", "commands", "room", "direct"];

/// Reads one line in the terminal's normal mode; None on end of input.
fn ask(prompt: &str) -> Option<String> {
    loop {
        print!("{prompt}");
        let _ = io::stdout().flush();
        let mut line = String::new();
        match io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => {
                println!();
                return None;
            }
            Ok(_) => {
                let line = line.trim().to_string();
                if !line.is_empty() {
                    return Some(line);
                }
            }
        }
    }
}
