//! chat: the terminal client for chatd, like the prototype's chat_client.py.
//!
//! Interactive (stdin is a terminal): asks for the username and room, shows
//! every event as `username > message` above the line being typed, `/SAIR`
//! leaves the room and asks for another, Ctrl-D or Ctrl-C exits. The prompts
//! and messages of the interactive session follow the prototype (Portuguese).
//!
//! Scripted (stdin is not a terminal): `--user` and `--room` are required;
//! each stdin line is one message; events go to stdout. Exit status: 0 ok,
//! 1 refused or disconnected by the server, 2 usage, 3 server unreachable.
//!
//! One select(2) loop over stdin, the socket and a signal pipe; no threads.
//! Everything received is rendered with control characters made harmless.

use std::io::{self, IsTerminal, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::errno::Errno;
use nix::sys::select::{FdSet, select};
use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use nix::sys::time::{TimeVal, TimeValLike};
use serde_json::Value;

use chatd::cli::chat::Args;
use chatd::core::text::printable;
use chatd::core::wire;

/// How a session in a room ended.
#[derive(Debug)]
enum Ending {
    /// The person typed /SAIR.
    Left,
    /// Ctrl-C, Ctrl-D, SIGTERM, or (scripted) stdin ended and all was sent.
    Quit,
    /// The server refused the join (or a later frame) with this error event.
    Refused { code: String, reason: String },
    /// A `closed`, `kicked` or `shutdown` event.
    Ended(String),
    /// The connection dropped without an event.
    Lost(String),
    /// The server accepted the connection but did not answer the join
    /// within --connect-timeout.
    NoAnswer,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let addr = match args.server.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => {
            eprintln!("chat: cannot resolve --server {}", args.server);
            return ExitCode::from(2);
        }
    };
    let signals = match SignalPipe::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat: signals: {e}");
            return ExitCode::from(1);
        }
    };
    if io::stdin().is_terminal() {
        interactive(args, addr, signals)
    } else {
        scripted(args, addr, signals)
    }
}

// ---------------------------------------------------------------------------
// Scripted mode
// ---------------------------------------------------------------------------

fn scripted(args: Args, addr: std::net::SocketAddr, signals: SignalPipe) -> ExitCode {
    let (Some(user), Some(room)) = (args.user.clone(), args.room.clone()) else {
        eprintln!("chat: --user and --room are required when stdin is not a terminal");
        return ExitCode::from(2);
    };
    let stream = match connect(addr, args.connect_timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat: cannot connect to {addr}: {e}");
            return ExitCode::from(3);
        }
    };
    let mut s = Session::new(stream, &user, &room, signals, args.json, None);
    s.join_deadline = Instant::now() + args.connect_timeout;
    match s.run() {
        Ending::Quit if s.rejected == 0 => ExitCode::SUCCESS,
        Ending::Quit => {
            eprintln!("chat: the server rejected {} message(s)", s.rejected);
            ExitCode::from(1)
        }
        Ending::Left => ExitCode::SUCCESS,
        Ending::Refused { code, reason } => {
            eprintln!("chat: join refused ({code}): {}", printable(&reason));
            ExitCode::from(1)
        }
        Ending::Ended(what) => {
            eprintln!("chat: {what}");
            ExitCode::from(1)
        }
        Ending::Lost(why) => {
            eprintln!("chat: {why}");
            ExitCode::from(1)
        }
        Ending::NoAnswer => {
            eprintln!(
                "chat: {addr} accepted the connection but did not answer the join within {} s (is it a chatd?)",
                args.connect_timeout.as_secs_f64()
            );
            ExitCode::from(3)
        }
    }
}

// ---------------------------------------------------------------------------
// Interactive mode
// ---------------------------------------------------------------------------

fn interactive(args: Args, addr: std::net::SocketAddr, mut signals: SignalPipe) -> ExitCode {
    let mut user = args.user.clone();
    let mut room = args.room.clone();
    loop {
        let Some(u) = user.clone().or_else(|| ask("Username: ")) else {
            return ExitCode::SUCCESS;
        };
        user = Some(u.clone());
        let Some(r) = room.clone().or_else(|| ask("Escolha a sala: ")) else {
            return ExitCode::SUCCESS;
        };
        room = Some(r.clone());
        let stream = match connect(addr, args.connect_timeout) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("chat: cannot connect to {addr}: {e}");
                return ExitCode::from(3);
            }
        };
        println!("Para sair, digite o comando /SAIR.\n");
        let raw = match RawMode::enter() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("chat: terminal: {e}");
                return ExitCode::from(1);
            }
        };
        let mut s = Session::new(
            stream,
            &u,
            &r,
            signals,
            args.json,
            Some(LineEditor::new(&u)),
        );
        s.join_deadline = Instant::now() + args.connect_timeout;
        let ending = s.run();
        signals = s.signals;
        drop(raw);
        match ending {
            Ending::Left => {
                println!("Saindo da sala...\n");
                room = None;
            }
            Ending::Quit => {
                println!();
                return ExitCode::SUCCESS;
            }
            Ending::Refused { code, reason } => match code.as_str() {
                "404" => {
                    println!("A sala escolhida não existe. Tente novamente.\n");
                    room = None;
                }
                "501" => {
                    println!("A sala escolhida está cheia. Tente outra.\n");
                    room = None;
                }
                "409" => {
                    println!("Esse nome já está em uso nesta sala. Escolha outro.\n");
                    user = None;
                }
                _ => {
                    println!("Entrada recusada ({code}): {}\n", printable(&reason));
                    user = None;
                    room = None;
                }
            },
            Ending::Ended(what) => {
                println!("{what}\n");
                if what == SERVER_STOPPING {
                    return ExitCode::SUCCESS;
                }
                room = None;
            }
            Ending::Lost(why) => {
                println!("{why}");
                return ExitCode::from(1);
            }
            Ending::NoAnswer => {
                println!(
                    "O servidor não respondeu em {} s.",
                    args.connect_timeout.as_secs_f64()
                );
                return ExitCode::from(3);
            }
        }
    }
}

const SERVER_STOPPING: &str = "O servidor está encerrando.";

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

fn connect(addr: std::net::SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

// ---------------------------------------------------------------------------
// One session in one room
// ---------------------------------------------------------------------------

/// How long, after our side is done, to wait for the server to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest event line accepted from the server.
const MAX_LINE: usize = 1024 * 1024;

struct Session {
    stream: TcpStream,
    user: String,
    signals: SignalPipe,
    json: bool,
    /// Present in interactive mode.
    editor: Option<LineEditor>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Scripted: partial stdin line.
    stdin_buf: Vec<u8>,
    stdin_done: bool,
    joined: bool,
    /// Our write side is shut down; waiting for the server to close.
    draining_since: Option<Instant>,
    rejected: usize,
    /// The join must be answered by then (--connect-timeout).
    join_deadline: Instant,
}

impl Session {
    fn new(
        stream: TcpStream,
        user: &str,
        room: &str,
        signals: SignalPipe,
        json: bool,
        editor: Option<LineEditor>,
    ) -> Session {
        let hs = serde_json::json!({ "username": user, "room": room }).to_string();
        Session {
            stream,
            user: user.to_string(),
            signals,
            json,
            editor,
            inbuf: Vec::new(),
            out: wire::encode_frame(hs.as_bytes()),
            stdin_buf: Vec::new(),
            stdin_done: false,
            joined: false,
            draining_since: None,
            rejected: 0,
            join_deadline: Instant::now() + Duration::from_secs(10),
        }
    }

    fn run(&mut self) -> Ending {
        loop {
            if let Err(e) = self.flush() {
                return Ending::Lost(format!("connection lost: {e}"));
            }
            if self.stdin_done && self.out.is_empty() && self.draining_since.is_none() {
                // Scripted: all sent. Closing our side makes chatd finish
                // our messages, then close; whatever arrives meanwhile is
                // still printed.
                let _ = self.stream.shutdown(Shutdown::Write);
                self.draining_since = Some(Instant::now());
            }
            if self
                .draining_since
                .is_some_and(|t| t.elapsed() > DRAIN_TIMEOUT)
            {
                return Ending::Quit;
            }
            if !self.joined && Instant::now() >= self.join_deadline {
                return Ending::NoAnswer;
            }
            let stdin = io::stdin();
            let stdin_fd = stdin.as_fd();
            let sock_fd = self.stream.as_fd();
            let mut rset = FdSet::new();
            rset.insert(sock_fd);
            rset.insert(self.signals.fd());
            // Scripted: read stdin only once joined (messages must not go
            // out before the join is confirmed). Interactive: always, so
            // Ctrl-C and Ctrl-D work while the join is still unanswered.
            let read_stdin = (self.joined || self.editor.is_some()) && !self.stdin_done;
            if read_stdin {
                rset.insert(stdin_fd);
            }
            let mut wset = FdSet::new();
            if !self.out.is_empty() {
                wset.insert(sock_fd);
            }
            let mut tv = TimeVal::milliseconds(250);
            match select(None, &mut rset, &mut wset, None, &mut tv) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Ending::Lost(format!("select: {e}")),
            }
            let sig = rset.contains(self.signals.fd());
            let sock = rset.contains(sock_fd);
            let input = read_stdin && rset.contains(stdin_fd);
            if sig && self.signals.drain() {
                return Ending::Quit;
            }
            if sock && let Some(end) = self.read_socket() {
                return end;
            }
            if input && let Some(end) = self.read_stdin() {
                return end;
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        match self.stream.write(&self.out) {
            Ok(n) => {
                self.out.drain(..n);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn read_socket(&mut self) -> Option<Ending> {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                if self.draining_since.is_some() {
                    return Some(Ending::Quit);
                }
                return Some(Ending::Lost("Conexão encerrada pelo servidor.".into()));
            }
            Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return None,
            Err(e) => return Some(Ending::Lost(format!("connection lost: {e}"))),
        }
        while let Some(nl) = self.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=nl).take(nl).collect();
            if let Some(end) = self.on_event_line(&line) {
                return Some(end);
            }
        }
        if self.inbuf.len() > MAX_LINE {
            return Some(Ending::Lost("the server sent an over-long line".into()));
        }
        None
    }

    /// Shows one event; returns how the session ends if it ends it.
    fn on_event_line(&mut self, line: &[u8]) -> Option<Ending> {
        let ev: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                self.show(&format!("? {}", printable(&String::from_utf8_lossy(line))));
                return None;
            }
        };
        let field = |k: &str| ev[k].as_str().unwrap_or("").to_string();
        let (kind, username, message) = (field("type"), field("username"), field("message"));
        if kind == "error" || (kind.is_empty() && username == wire::SYSTEM_USER) {
            let reason = field("reason");
            if !self.joined {
                return Some(Ending::Refused {
                    code: message,
                    reason,
                });
            }
            self.rejected += 1;
            let reason = printable(&reason);
            if self.editor.is_some() {
                self.show(&format!("Mensagem recusada ({message}): {reason}"));
            } else {
                eprintln!("chat: message rejected ({message}): {reason}");
            }
            return None;
        }
        if kind == "join" && username == self.user && !self.joined {
            self.joined = true;
        }
        if self.json {
            self.show(&printable(&String::from_utf8_lossy(line)));
        } else {
            self.show(&format!(
                "{} > {}",
                printable(&username),
                printable(&message)
            ));
        }
        match kind.as_str() {
            "closed" => Some(Ending::Ended(
                "A sala foi encerrada pelo administrador.".into(),
            )),
            "kicked" => Some(Ending::Ended("Você foi removido da sala.".into())),
            "shutdown" => Some(Ending::Ended(SERVER_STOPPING.into())),
            _ => None,
        }
    }

    /// Prints an event line: above the line being typed when interactive.
    fn show(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        match &self.editor {
            Some(ed) => {
                let _ = write!(out, "\r\x1b[2K{text}\r\n{}", ed.render());
            }
            None => {
                let _ = writeln!(out, "{text}");
            }
        }
        let _ = out.flush();
    }

    fn read_stdin(&mut self) -> Option<Ending> {
        let mut buf = [0u8; 4096];
        let n = match io::stdin().lock().read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return None,
            Err(_) => 0,
        };
        if self.editor.is_some() {
            return self.on_keys(&buf[..n]);
        }
        if n == 0 {
            if !self.stdin_buf.is_empty() {
                let last = std::mem::take(&mut self.stdin_buf);
                self.send_line(&last);
            }
            self.stdin_done = true;
            return None;
        }
        self.stdin_buf.extend_from_slice(&buf[..n]);
        while let Some(nl) = self.stdin_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.stdin_buf.drain(..=nl).take(nl).collect();
            self.send_line(&line);
        }
        None
    }

    /// Queues one line as a message frame (a trailing CR is dropped; empty
    /// lines are not sent).
    fn send_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            self.out.extend_from_slice(&wire::encode_frame(line));
        }
    }

    fn on_keys(&mut self, keys: &[u8]) -> Option<Ending> {
        if keys.is_empty() {
            return Some(Ending::Quit);
        }
        let editor = self.editor.as_mut().expect("interactive");
        let mut submitted = Vec::new();
        for &b in keys {
            match editor.key(b) {
                Key::None => {}
                Key::Submit(line) => submitted.push(line),
                Key::Quit => return Some(Ending::Quit),
            }
        }
        let mut stdout = io::stdout().lock();
        let _ = write!(stdout, "\r\x1b[2K{}", editor.render());
        let _ = stdout.flush();
        drop(stdout);
        for line in submitted {
            if line.trim().eq_ignore_ascii_case("/SAIR") {
                return Some(Ending::Left);
            }
            if line.is_empty() {
                continue;
            }
            // Our own message is shown as the prototype did: on its line.
            self.show(&format!("{} > {}", printable(&self.user), printable(&line)));
            self.out
                .extend_from_slice(&wire::encode_frame(line.as_bytes()));
        }
        None
    }
}

// ---------------------------------------------------------------------------
// The line being typed
// ---------------------------------------------------------------------------

enum Key {
    None,
    Submit(String),
    Quit,
}

/// A minimal line editor for raw mode: printable characters, Backspace,
/// Ctrl-U, Enter, Ctrl-C/Ctrl-D; escape sequences (arrows...) are ignored.
struct LineEditor {
    prompt: String,
    line: String,
    /// Bytes of an incomplete UTF-8 character.
    partial: Vec<u8>,
    escape: EscapeState,
}

#[derive(Clone, Copy, PartialEq)]
enum EscapeState {
    Plain,
    Esc,
    Csi,
}

impl LineEditor {
    fn new(user: &str) -> LineEditor {
        LineEditor {
            prompt: format!("{} > ", printable(user)),
            line: String::new(),
            partial: Vec::new(),
            escape: EscapeState::Plain,
        }
    }

    fn render(&self) -> String {
        format!("{}{}", self.prompt, self.line)
    }

    fn key(&mut self, b: u8) -> Key {
        match self.escape {
            EscapeState::Esc => {
                self.escape = if b == b'[' || b == b'O' {
                    EscapeState::Csi
                } else {
                    EscapeState::Plain
                };
                return Key::None;
            }
            EscapeState::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = EscapeState::Plain;
                }
                return Key::None;
            }
            EscapeState::Plain => {}
        }
        match b {
            0x03 => Key::Quit,
            0x04 if self.line.is_empty() => Key::Quit,
            b'\r' | b'\n' => Key::Submit(std::mem::take(&mut self.line)),
            0x7f | 0x08 => {
                self.line.pop();
                Key::None
            }
            0x15 => {
                self.line.clear();
                Key::None
            }
            0x1b => {
                self.escape = EscapeState::Esc;
                Key::None
            }
            b'\t' => {
                self.line.push('\t');
                Key::None
            }
            0x00..=0x1f => Key::None,
            _ => {
                self.partial.push(b);
                match std::str::from_utf8(&self.partial) {
                    Ok(s) => {
                        let c = s.to_string();
                        self.partial.clear();
                        if !c.chars().any(char::is_control) {
                            self.line.push_str(&c);
                        }
                    }
                    Err(e) if e.error_len().is_some() => self.partial.clear(),
                    Err(_) => {}
                }
                Key::None
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Terminal and signals
// ---------------------------------------------------------------------------

/// Raw keyboard input (no line buffering, no echo, no signal keys) for as
/// long as it lives; output processing stays on so "\n" still returns the
/// carriage. The previous settings are restored on drop, panics included.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> nix::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        raw.input_flags
            .remove(termios::InputFlags::IXON | termios::InputFlags::ICRNL);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// SIGTERM and SIGHUP wake the loop through a self-pipe, so the session
/// ends through the normal path and the terminal is restored.
struct SignalPipe {
    read: UnixStream,
}

impl SignalPipe {
    fn install() -> io::Result<SignalPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(SignalPipe { read })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe; true if a signal had arrived.
    fn drain(&mut self) -> bool {
        let mut buf = [0u8; 64];
        let mut got = false;
        while let Ok(n) = (&self.read).read(&mut buf) {
            if n == 0 {
                break;
            }
            got = true;
        }
        got
    }
}
