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
use super::session::{ClientSession, Ending, Update, ending_after};
use super::transport::{Incoming, Transport};
use crate::core::lines::{Line, LineBuffer};
use crate::core::text::printable;
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

/// Who types: a person at a terminal (with the line editor), or a script
/// whose stdin lines are messages.
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
        }
    }

    /// How many of our messages the server rejected.
    pub fn rejected(&self) -> usize {
        self.session.rejected()
    }

    fn interactive(&self) -> bool {
        matches!(self.input, Input::Keyboard(_))
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
        if sig && !self.signals.take().is_empty() {
            return Some(Ending::Quit);
        }
        if sock && let Some(end) = self.read_socket() {
            return Some(end);
        }
        if keys {
            return self.read_stdin();
        }
        None
    }

    fn read_socket(&mut self) -> Option<Ending> {
        let data = match self.transport.read() {
            Ok(Incoming::Data(data)) => data,
            Ok(Incoming::Nothing) => return None,
            Ok(Incoming::Closed) if self.draining_since.is_some() => return Some(Ending::Quit),
            Ok(Incoming::Closed) => {
                return Some(Ending::Lost("Conexão encerrada pelo servidor.".into()));
            }
            Ok(Incoming::TlsFailed(why)) => return Some(Ending::TlsFailed(why)),
            Err(e) => return Some(Ending::Lost(format!("connection lost: {e}"))),
        };
        for update in self.session.received(&data) {
            match update {
                Update::Show { event, line } => {
                    if self.opts.json {
                        self.show(&printable(&String::from_utf8_lossy(&line)));
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
                    let reason = printable(&reason);
                    if self.interactive() {
                        self.show(&format!("Mensagem recusada ({code}): {reason}"));
                    } else {
                        eprintln!("chat: message rejected ({code}): {reason}");
                    }
                }
                Update::End(end) => return Some(end),
            }
        }
        None
    }

    /// Prints an event line: above the line being typed when interactive.
    fn show(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        match &self.input {
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
            // Our own message is shown as the prototype did: on its line.
            let me = self.session.user().unwrap_or("?").to_string();
            self.show(&format!("{} > {}", printable(&me), printable(&line)));
            self.session.send(line.as_bytes());
        }
        None
    }
}
