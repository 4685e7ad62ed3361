//! Where log lines leave chatd: stderr or the local syslog socket, written
//! through a bounded queue in writes that never block.
//!
//! A log sink can stall: `chatd 2>&1 | less` left alone, a terminal paused
//! with Ctrl-S, a journal that does not keep up. A blocking write would stop
//! the whole event loop with it, so lines are queued here and written only
//! as far as the sink takes them without waiting. When a write would block,
//! the sink is marked blocked and the loop asks select(2) for its
//! writability ([`Sink::blocked_fd`]) before trying again. When the queue
//! is full, new lines are dropped and counted; once it has drained,
//! [`Sink::flush`] reports the count so the logbook can say so.
//!
//! No descriptor that other processes may share is left non-blocking:
//! O_NONBLOCK belongs to the open file description, which an inherited
//! terminal or pipe shares with the shell and its other children. So stderr
//! is reached by a way that changes nothing for them: `send(2)` with
//! MSG_DONTWAIT when it is a socket (journald's stream), a private
//! non-blocking reopening of `/proc/self/fd/2` when it is a pipe, FIFO or
//! terminal, and plain writes when it is a regular file (which never waits
//! for a reader). syslog gets its own non-blocking datagram socket.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::{SFlag, fstat};
use syslog::{Facility, Formatter3164, LogFormat, Severity};

/// Most bytes of log lines waiting for a slow sink; beyond it lines are
/// dropped (the `logs` ring keeps them regardless).
pub const QUEUE_BYTES: usize = 256 * 1024;

/// How long the sink may hold up exiting, at most.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// The syslog socket.
const DEV_LOG: &str = "/dev/log";

/// How a line is laid out for its destination.
enum Style {
    /// `2026-11-24T10:00:00Z INFO  text`.
    Plain,
    /// `<6>text`: journald reads the priority and adds the time itself.
    Journal,
    /// RFC 3164 datagrams, facility daemon.
    Syslog(Formatter3164),
    /// Nothing is written (tests).
    Discard,
}

/// How bytes reach the destination without blocking.
enum Writer {
    /// stderr is a socket (journald's stream): send(2) with MSG_DONTWAIT
    /// changes no flag on the shared descriptor.
    Socket,
    /// Our own open file description of the pipe, FIFO or terminal on
    /// stderr, opened with O_NONBLOCK.
    Reopened(OwnedFd),
    /// stderr as it is: a regular file or device, whose writes do not wait
    /// for a reader.
    Direct,
    /// A pipe or terminal that could not be reopened (no /proc): O_NONBLOCK
    /// is set for each write and restored right after it.
    Toggled,
    /// syslog's datagram socket, non-blocking and ours alone.
    Datagram(UnixDatagram),
    /// No destination.
    Nowhere,
}

const STDERR: RawFd = 2;

pub struct Sink {
    style: Style,
    writer: Writer,
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`, minus what is already written of the front line.
    queued: usize,
    /// Bytes of the front line already written (stream writers only).
    front_written: usize,
    /// The last write would have blocked: wait for select(2) to report the
    /// descriptor writable.
    blocked: bool,
    /// Lines dropped since the queue last drained.
    dropped: u64,
}

impl Sink {
    fn new(style: Style, writer: Writer) -> Sink {
        Sink {
            style,
            writer,
            queue: VecDeque::new(),
            queued: 0,
            front_written: 0,
            blocked: false,
            dropped: 0,
        }
    }

    /// The sink for `--log-target`.
    pub fn open(target: crate::cli::chatd::LogTarget) -> Result<Sink, String> {
        match target {
            crate::cli::chatd::LogTarget::Stderr => Ok(Sink::stderr()),
            crate::cli::chatd::LogTarget::Syslog => Sink::syslog(),
        }
    }

    /// stderr, with journald's `<N>` priority prefixes when systemd
    /// connected stderr to the journal: it then sets `$JOURNAL_STREAM` to the
    /// stream's "device:inode", which must match stderr itself (a child
    /// whose stderr was redirected inherits the variable but not the stream).
    pub fn stderr() -> Sink {
        let style = if stderr_is_journal() {
            Style::Journal
        } else {
            Style::Plain
        };
        Sink::new(style, stderr_writer())
    }

    /// The local syslog daemon over /dev/log, facility daemon.
    pub fn syslog() -> Result<Sink, String> {
        let sock = UnixDatagram::unbound()
            .and_then(|s| s.connect(DEV_LOG).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| format!("syslog: cannot connect to {DEV_LOG}: {e}"))?;
        let formatter = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            hostname: None,
            process: "chatd".into(),
            pid: std::process::id(),
        };
        Ok(Sink::new(Style::Syslog(formatter), Writer::Datagram(sock)))
    }

    /// Writes nothing (the `logs` ring still has every entry).
    pub fn none() -> Sink {
        Sink::new(Style::Discard, Writer::Nowhere)
    }

    /// Formats one entry and queues it, or drops it when the queue is full.
    /// `priority` is syslog's (3 error, 4 warning, 6 info).
    pub fn push(&mut self, priority: u8, label: &str, ts: &str, message: &str) {
        let line = match &self.style {
            Style::Discard => return,
            Style::Plain => format!("{ts} {label:<5} {message}\n").into_bytes(),
            Style::Journal => format!("<{priority}>{message}\n").into_bytes(),
            Style::Syslog(f) => {
                let mut out = Vec::with_capacity(message.len() + 48);
                let severity = match priority {
                    3 => Severity::LOG_ERR,
                    4 => Severity::LOG_WARNING,
                    _ => Severity::LOG_INFO,
                };
                if f.format(&mut out, severity, message).is_err() {
                    return;
                }
                out
            }
        };
        if self.queued + line.len() > QUEUE_BYTES {
            self.dropped += 1;
            return;
        }
        self.queued += line.len();
        self.queue.push_back(line);
    }

    /// The descriptor to watch for writability: set only while lines wait
    /// and the last write would have blocked.
    pub fn blocked_fd(&self) -> Option<RawFd> {
        if !self.blocked || self.queue.is_empty() {
            return None;
        }
        match &self.writer {
            Writer::Socket | Writer::Direct | Writer::Toggled => Some(STDERR),
            Writer::Reopened(fd) => Some(fd.as_raw_fd()),
            Writer::Datagram(s) => Some(s.as_raw_fd()),
            Writer::Nowhere => None,
        }
    }

    /// select(2) reported the descriptor writable.
    pub fn writable(&mut self) {
        self.blocked = false;
    }

    /// Writes queued lines until the queue is empty or a write would block
    /// (then nothing more is tried until [`Sink::writable`]). Returns the
    /// number of lines dropped when the queue has just drained after drops,
    /// so the caller can log it; the count starts again from zero.
    pub fn flush(&mut self) -> Option<u64> {
        let mut wrote = false;
        while !self.blocked {
            let Some(line) = self.queue.front() else {
                break;
            };
            let len = line.len();
            match self.writer.write(&line[self.front_written..]) {
                Ok(n) => {
                    wrote = true;
                    self.front_written += n;
                    self.queued -= n;
                    if self.front_written == len {
                        self.front_written = 0;
                        self.queue.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The sink is gone (EPIPE, ECONNREFUSED...): this line is
                    // lost, and counted; the next ones may still get through.
                    self.queued -= len - self.front_written;
                    self.front_written = 0;
                    self.queue.pop_front();
                    self.dropped += 1;
                }
            }
        }
        if wrote && self.queue.is_empty() && self.dropped > 0 {
            return Some(std::mem::take(&mut self.dropped));
        }
        None
    }

    /// At exit: gives the sink up to `limit` to take what is queued,
    /// waiting in poll(2) (the loop has ended, nothing else is served).
    pub fn drain_before_exit(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            self.blocked = false;
            self.flush();
            if self.queue.is_empty() {
                return;
            }
            let Some(fd) = self.blocked_fd() else {
                return;
            };
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            // SAFETY: `fd` belongs to this sink (or is stderr) and stays
            // open for the duration of the call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
            let ms = PollTimeout::try_from(left.as_millis().min(10_000) as i32)
                .unwrap_or(PollTimeout::ZERO);
            if poll(&mut fds, ms).is_err() {
                return;
            }
        }
    }

    /// Bytes waiting (for tests and stats).
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }
}

impl Drop for Sink {
    /// chatd is exiting (or failed to start): the last entries, which say
    /// why, get a bounded chance to reach the sink.
    fn drop(&mut self) {
        self.drain_before_exit(EXIT_DRAIN);
    }
}

impl Writer {
    /// One write that cannot block; `WouldBlock` when the sink is full.
    fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Socket => send(
                STDERR,
                bytes,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            )
            .map_err(io::Error::from),
            Writer::Reopened(fd) => nix::unistd::write(fd, bytes).map_err(io::Error::from),
            Writer::Direct => io::stderr().write(bytes),
            Writer::Toggled => write_toggled(bytes),
            Writer::Datagram(s) => s.send(bytes),
            Writer::Nowhere => Ok(bytes.len()),
        }
    }
}

/// Chooses how to write to stderr without blocking and without changing
/// the shared descriptor's flags (see the module comment).
fn stderr_writer() -> Writer {
    let Ok(st) = fstat(io::stderr().as_fd()) else {
        // stderr is closed: nothing to write to (and descriptor 2 may later
        // be reused for a socket, which must never receive log lines).
        return Writer::Nowhere;
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFSOCK {
        return Writer::Socket;
    }
    if kind == SFlag::S_IFIFO || kind == SFlag::S_IFCHR {
        let reopened = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
            .open("/proc/self/fd/2");
        return match reopened {
            Ok(f) => Writer::Reopened(OwnedFd::from(f)),
            Err(_) => Writer::Toggled,
        };
    }
    Writer::Direct
}

/// One write to stderr with O_NONBLOCK set for just that call.
fn write_toggled(bytes: &[u8]) -> io::Result<usize> {
    let fd = io::stderr();
    let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    let result = nix::unistd::write(&fd, bytes).map_err(io::Error::from);
    let _ = fcntl(&fd, FcntlArg::F_SETFL(flags));
    result
}

fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let var = var.to_string_lossy();
    let Some((dev, ino)) = var.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match fstat(io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// A sink writing into one end of a socket pair that nobody reads.
    fn stalled() -> (Sink, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let sink = Sink::new(Style::Plain, Writer::Reopened(OwnedFd::from(ours)));
        (sink, theirs)
    }

    #[test]
    fn a_stalled_sink_never_blocks_drops_and_counts_then_reports() {
        let (mut sink, mut reader) = stalled();
        let msg = "x".repeat(200);
        for _ in 0..20_000 {
            sink.push(6, "INFO", "ts", &msg);
            assert_eq!(sink.flush(), None);
        }
        assert!(sink.blocked_fd().is_some(), "the socket filled up");
        assert!(sink.queued_bytes() <= QUEUE_BYTES);
        // The reader wakes up and reads everything.
        reader.set_nonblocking(true).unwrap();
        let mut got = 0usize;
        let mut reported = None;
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..10_000 {
            while let Ok(n) = reader.read(&mut buf) {
                got += n;
            }
            sink.writable();
            if let Some(n) = sink.flush() {
                reported = Some(n);
                break;
            }
        }
        let dropped = reported.expect("a drop count once drained");
        let line_len = format!("ts INFO  {msg}\n").len() as u64;
        while let Ok(n) = reader.read(&mut buf) {
            got += n;
        }
        assert_eq!(got as u64 / line_len + dropped, 20_000);
        assert_eq!(got as u64 % line_len, 0, "lines are never torn");
        assert_eq!(sink.flush(), None, "the count is reported once");
    }

    #[test]
    fn styles() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut sink = Sink::new(Style::Journal, Writer::Reopened(OwnedFd::from(ours)));
        sink.push(4, "WARN", "ts", "careful");
        sink.flush();
        let mut buf = [0u8; 64];
        let n = theirs.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<4>careful\n");
    }
}
