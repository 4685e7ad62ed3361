//! The client's one select(2) loop: stdin, the socket and the signal
//! self-pipe; no threads. It moves bytes between them and a
//! [`ClientSession`], and shows what the session says to show: above the
//! line being typed when interactive, on stdout when scripted. Everything
//! received is rendered with control and invisible characters made
//! visible.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::select::{FdSet, select};
use nix::sys::time::{TimeVal, TimeValLike};

use super::editor::{Key, LineEditor};
use super::lang::{Text, t, tf};
use super::screen::{Command, help};
use super::session::{ClientSession, Ending, Update, ending_after};
use super::transport::{Incoming, Transport};
use crate::core::lines::{Line, LineBuffer};
use crate::core::text::printable;
use crate::core::wire::EventKind;
use crate::sys::selfpipe::SelfPipe;

/// How long, after our side is done, to wait for the server to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the loop wakes to check its deadlines.
const TICK: Duration = Duration::from_millis(250);

/// How the events are shown.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Print events as the JSON lines received.
    pub json: bool,
    /// The join must be answered within this long.
    pub join_timeout: Duration,
}

/// Asks the server for its public rooms (a connection of its own).
pub type RoomLister<'a> = &'a dyn Fn() -> Result<Vec<crate::core::wire::RoomEntry>, String>;

/// Who types: a person at a terminal with `--plain` (the prototype's
/// line editor), or a script whose stdin lines are messages. The full
/// screen has a loop of its own ([`super::desk`]).
pub enum Input<'a> {
    Keyboard(&'a mut LineEditor),
    Script,
}

/// One stay in a room, until it ends.
pub struct Stay<'a> {
    transport: Transport,
    session: ClientSession,
    signals: &'a mut SelfPipe,
    input: Input<'a>,
    opts: Options,
    /// Scripted: stdin split into lines.
    stdin_lines: LineBuffer,
    stdin_done: bool,
    /// Our write side is shut down; waiting for the server to close.
    draining_since: Option<Instant>,
    join_deadline: Instant,
    /// `--plain`: who is in the room (the `members` event, then joins and
    /// leaves), for `/who`.
    members: Vec<String>,
}

impl<'a> Stay<'a> {
    pub fn new(
        transport: Transport,
        session: ClientSession,
        signals: &'a mut SelfPipe,
        input: Input<'a>,
        opts: Options,
    ) -> Stay<'a> {
        Stay {
            transport,
            session,
            signals,
            input,
            opts,
            stdin_lines: LineBuffer::new(usize::MAX / 2),
            stdin_done: false,
            draining_since: None,
            join_deadline: Instant::now() + opts.join_timeout,
            members: Vec::new(),
        }
    }

    /// How many of our messages the server rejected.
    pub fn rejected(&self) -> usize {
        self.session.rejected()
    }

    fn interactive(&self) -> bool {
        !matches!(self.input, Input::Script)
    }

    /// Runs until the stay ends.
    pub fn run(&mut self) -> Ending {
        loop {
            if let Err(e) = self.transport.flush(self.session.output()) {
                return Ending::Lost(format!("connection lost: {e}"));
            }
            let all_sent = !self.transport.wants_write(self.session.output());
            if self.stdin_done && all_sent && self.draining_since.is_none() {
                // Scripted: all sent. Closing our side makes chatd finish
                // our messages, then close; whatever arrives meanwhile is
                // still printed.
                self.transport.shutdown_write();
                self.draining_since = Some(Instant::now());
            }
            if self
                .draining_since
                .is_some_and(|t| t.elapsed() > DRAIN_TIMEOUT)
            {
                return Ending::Quit;
            }
            if !self.session.joined() && Instant::now() >= self.join_deadline {
                return Ending::NoAnswer;
            }
            if let Some(end) = self.wait_and_handle() {
                return end;
            }
        }
    }

    fn wait_and_handle(&mut self) -> Option<Ending> {
        let stdin = io::stdin();
        let stdin_fd = stdin.as_fd();
        let sock_fd = self.transport.stream().as_fd();
        let mut rset = FdSet::new();
        rset.insert(sock_fd);
        rset.insert(self.signals.fd());
        // Scripted: read stdin only once joined (messages must not go out
        // before the join is confirmed). Interactive: always, so Ctrl-C
        // and Ctrl-D work while the join is still unanswered.
        let read_stdin = (self.session.joined() || self.interactive()) && !self.stdin_done;
        if read_stdin {
            rset.insert(stdin_fd);
        }
        let mut wset = FdSet::new();
        if self.transport.wants_write(self.session.output()) {
            wset.insert(sock_fd);
        }
        let mut tv = TimeVal::milliseconds(TICK.as_millis() as i64);
        match select(None, &mut rset, &mut wset, None, &mut tv) {
            Ok(_) => {}
            Err(Errno::EINTR) => return None,
            Err(e) => return Some(Ending::Lost(format!("select: {e}"))),
        }
        let sig = rset.contains(self.signals.fd());
        let sock = rset.contains(sock_fd);
        let keys = read_stdin && rset.contains(stdin_fd);
        if sig {
            let got = self.signals.take();
            if got.iter().any(|&s| s != signal_hook::consts::SIGWINCH) {
                return Some(Ending::Quit);
            }
        }
        let ending = if sock { self.read_socket() } else { None };
        match ending {
            None if keys => self.read_stdin(),
            other => other,
        }
    }

    fn read_socket(&mut self) -> Option<Ending> {
        let data = match self.transport.read() {
            Ok(Incoming::Data(data)) => data,
            Ok(Incoming::Nothing) => return None,
            Ok(Incoming::Closed) if self.draining_since.is_some() => return Some(Ending::Quit),
            Ok(Incoming::Closed) => {
                if let Some(why) = self.session.closed_why() {
                    return Some(Ending::Lost(why.into()));
                }
                return Some(Ending::Lost(t(Text::ClosedByServer).into()));
            }
            Ok(Incoming::TlsFailed(why)) => return Some(Ending::TlsFailed(why)),
            Err(e) => return Some(Ending::Lost(format!("connection lost: {e}"))),
        };
        for update in self.session.received(&data) {
            match update {
                Update::Show { event, line } => {
                    self.follow_members(&event);
                    if self.opts.json {
                        self.show(&printable(&String::from_utf8_lossy(&line)));
                    } else if event.kind == EventKind::Members {
                        // Kept for /who, not a line to print.
                    } else {
                        self.show(&format!(
                            "{} > {}",
                            printable(&event.username),
                            printable(&event.message)
                        ));
                    }
                    if let Some(end) = ending_after(&event) {
                        return Some(end);
                    }
                }
                Update::Garbage(line) => {
                    self.show(&format!("? {}", printable(&String::from_utf8_lossy(&line))));
                }
                Update::Rejected { code, reason } => {
                    if self.interactive() {
                        let reason = super::lang::reason(&code, &reason);
                        self.show(&tf(Text::MessageRefused, &[&code, &reason]));
                    } else {
                        let reason = printable(&reason);
                        eprintln!("chat: message rejected ({code}): {reason}");
                    }
                }
                Update::End(end) => return Some(end),
            }
        }
        None
    }

    /// `--plain` keeps the member list for `/who`.
    fn follow_members(&mut self, event: &crate::core::wire::Event) {
        match event.kind {
            EventKind::Members => self.members = event.members.clone().unwrap_or_default(),
            EventKind::Join if !event.history && !self.members.contains(&event.username) => {
                self.members.push(event.username.clone())
            }
            EventKind::Leave if !event.history => self.members.retain(|m| *m != event.username),
            _ => {}
        }
    }

    /// Prints an event line: above the line being typed when interactive.
    fn show(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        match &mut self.input {
            Input::Keyboard(ed) => {
                let _ = write!(out, "\r\x1b[2K{text}\r\n{}", ed.render());
            }
            Input::Script => {
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
        if self.interactive() {
            return self.on_keys(&buf[..n]);
        }
        if n == 0 {
            if let Some(last) = self.stdin_lines.finish() {
                self.session.send(&last);
            }
            self.stdin_done = true;
            return None;
        }
        self.stdin_lines.push(&buf[..n]);
        while let Some(Line::Complete(line)) = self.stdin_lines.next_line() {
            self.session.send(&line);
        }
        None
    }

    fn on_keys(&mut self, keys: &[u8]) -> Option<Ending> {
        let Input::Keyboard(editor) = &mut self.input else {
            return None;
        };
        if keys.is_empty() {
            return Some(Ending::Quit);
        }
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
            // The client's own commands stay local, as on the full screen.
            match super::screen::command(&line) {
                Command::Help => {
                    // No windows, no operators' commands line by line.
                    for l in [help()[0], help()[2]] {
                        self.show(l);
                    }
                    continue;
                }
                Command::Join(_) | Command::Direct(..) => {
                    let word = line.split_whitespace().next().unwrap_or("");
                    self.show(&tf(Text::FullScreenOnly, &[word]));
                    continue;
                }
                Command::Who => {
                    let names: Vec<String> = self.members.iter().map(|m| printable(m)).collect();
                    let count = names.len().to_string();
                    self.show(&tf(Text::InTheRoom, &[&count, &names.join(", ")]));
                    continue;
                }
                Command::Quit => return Some(Ending::Quit),
                _ => {}
            }
            // Our own message is shown as the prototype did: on its line.
            let me = self.session.user().unwrap_or("?").to_string();
            self.show(&format!("{} > {}", printable(&me), printable(&line)));
            self.session.send(line.as_bytes());
        }
        None
    }
}

/// Asks the server for its public rooms on a connection of its own: the
/// `{"list":"rooms"}` first frame, one `rooms` event back (PROTOCOL.md).
/// Waits at most `timeout`; a server without the listing (the prototype's)
/// answers otherwise, and that is an error too.
pub fn list_rooms(
    mut transport: Transport,
    timeout: Duration,
) -> Result<Vec<crate::core::wire::RoomEntry>, String> {
    let end = Instant::now() + timeout;
    let mut out = crate::core::wire::encode_frame(br#"{"list":"rooms"}"#);
    let mut lines = LineBuffer::new(super::session::MAX_LINE);
    loop {
        transport.flush(&mut out).map_err(|e| e.to_string())?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer in time".into());
        }
        let fd = transport.stream().as_fd();
        let mut rset = FdSet::new();
        rset.insert(fd);
        let mut wset = FdSet::new();
        if transport.wants_write(&out) {
            wset.insert(fd);
        }
        let mut tv = TimeVal::milliseconds(left.as_millis().min(1000) as i64);
        match select(None, &mut rset, &mut wset, None, &mut tv) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("select: {e}")),
        }
        match transport.read().map_err(|e| e.to_string())? {
            Incoming::Data(data) => lines.push(&data),
            Incoming::Nothing => {}
            Incoming::Closed => return Err("the server closed the connection".into()),
            Incoming::TlsFailed(why) => return Err(why),
        }
        if let Some(Line::Complete(line)) = lines.next_line() {
            let event = crate::core::wire::Event::parse(&line)?;
            return match event.rooms {
                Some(rooms) => Ok(rooms),
                None => Err(format!(
                    "the server does not list rooms (it answered {} > {})",
                    printable(&event.username),
                    printable(&event.message)
                )),
            };
        }
    }
}
