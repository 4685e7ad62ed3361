//! Control-socket connections (PROTOCOL.md §2): line framing with a bound,
//! one typed request out and one response in at a time, `logs --follow`
//! streaming, and the bounds that keep the control plane from exhausting
//! chatd:
//! - in number: at most `cap` at once (computed at start-up from the
//!   descriptors select(2) can watch after every chat client has its slot,
//!   so admins can never lock chat out). At the cap, a waiting connection
//!   is taken in by closing the longest-idle one (no request in progress,
//!   nothing unsent, not following, and either answered already or silent
//!   for [`EVICT_GRACE`]); with none idle, the others wait in the backlog;
//! - in time: a connection silent for `--control-timeout` (idle, stalled
//!   mid-request, or not reading its answers) is closed; followers are
//!   exempt;
//! - in memory: requests are answered one at a time and only while the
//!   unsent output is under [`OUTPUT_HWM`], and nothing more is read while
//!   a complete request waits; a follower too far behind is disconnected.
//!
//! What a request does is [`super::commands`]'s business; the event loop
//! passes requests from here to there and responses back.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::core::control::{
    ErrorCode, FOLLOW_END, FollowLine, Level, MAX_REQUEST_LINE, Request, Response,
};
use crate::core::hub::IdMap;
use crate::core::lines::{Line, LineBuffer};
use crate::sys::nonblock::{ReadOutcome, flush_once, read_some};

/// Above this much unsent output, a control connection's requests wait.
pub const OUTPUT_HWM: usize = 256 * 1024;

/// How long a connection that has asked nothing yet is safe from being
/// closed to make room for another.
pub const EVICT_GRACE: Duration = Duration::from_secs(1);

/// The most control connections at once, whatever the descriptor budget.
pub const MAX_CONTROL_CAP: usize = 64;

/// A `logs --follow` reader with more unsent output than this is dropped.
pub const FOLLOWER_MAX_BACKLOG: usize = 1024 * 1024;

/// What a control connection accepted while descriptors are exhausted is
/// told before it is closed.
pub const NO_DESCRIPTORS: &[u8] = b"{\"ok\":false,\"error\":{\"code\":\"failed\",\"message\":\"chatd is out of file descriptors; try again shortly\"}}\n";

pub struct ControlConn {
    stream: UnixStream,
    /// uid and pid of the peer (SO_PEERCRED), for the log.
    peer: Option<(u32, i32)>,
    input: LineBuffer,
    out: Vec<u8>,
    /// Streaming log entries after this sequence number.
    follow_after: Option<u64>,
    /// The follower's filters (`logs --since/--priority`).
    follow_filter: (Option<String>, Option<Level>),
    read_closed: bool,
    /// When the peer last sent something (or connected).
    last_heard: Instant,
    /// Requests answered so far.
    answered: u64,
}

impl ControlConn {
    pub fn new(stream: UnixStream, peer: Option<(u32, i32)>, now: Instant) -> ControlConn {
        ControlConn {
            stream,
            peer,
            input: LineBuffer::new(MAX_REQUEST_LINE),
            out: Vec::new(),
            follow_after: None,
            follow_filter: (None, None),
            read_closed: false,
            last_heard: now,
            answered: 0,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// "uid 1000 pid 4242", for the audit log.
    pub fn who(&self) -> String {
        match self.peer {
            Some((uid, pid)) => format!("uid {uid} pid {pid}"),
            None => "unknown peer".to_string(),
        }
    }

    /// Reading waits while a complete request is still unanswered (its
    /// answer waits for the output to drain) or the output is backed up.
    pub fn wants_read(&self) -> bool {
        !self.read_closed && self.out.len() <= OUTPUT_HWM && !self.has_request()
    }

    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether a complete request is buffered.
    fn has_request(&self) -> bool {
        self.input.has_line() || (self.read_closed && !self.input.is_empty())
    }

    /// Idle: nothing in progress in either direction, and not following.
    fn is_idle(&self) -> bool {
        self.follow_after.is_none() && self.input.is_empty() && self.out.is_empty()
    }

    /// From when this connection may be closed to make room for a waiting
    /// one.
    pub fn evictable_from(&self) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        Some(if self.answered > 0 {
            self.last_heard
        } else {
            self.last_heard + EVICT_GRACE
        })
    }

    /// When this connection times out, if it can (followers cannot).
    pub fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.follow_after
            .is_none()
            .then(|| self.last_heard + timeout)
    }

    /// One read; a follower's further input is ignored.
    pub fn read_once(&mut self, now: Instant) {
        if !self.wants_read() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        match read_some(&mut self.stream, &mut buf) {
            Ok(ReadOutcome::Data(_)) if self.follow_after.is_some() => {}
            Ok(ReadOutcome::Data(n)) => {
                self.input.push(&buf[..n]);
                self.last_heard = now;
            }
            Ok(ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Eof) | Err(_) => self.read_closed = true,
        }
    }

    /// The next request to answer, if it may be answered now: one at a
    /// time, while the output is under [`OUTPUT_HWM`], never for a
    /// follower. A malformed or over-long line comes back as the response
    /// to send instead.
    pub fn next_request(&mut self) -> Option<Result<Request, Response>> {
        loop {
            if self.out.len() > OUTPUT_HWM || self.follow_after.is_some() {
                return None;
            }
            let line = match self.input.next_line() {
                Some(Line::Complete(line)) => line,
                Some(Line::TooLong) => {
                    return Some(Err(Response::error(
                        ErrorCode::BadRequest,
                        &format!("request line longer than {MAX_REQUEST_LINE} bytes"),
                    )));
                }
                // A last request without its newline (printf '...' | socat ...).
                None if self.read_closed => self.input.finish()?,
                None => return None,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(
                Request::parse(&line).map_err(|msg| Response::error(ErrorCode::BadRequest, &msg)),
            );
        }
    }

    pub fn respond(&mut self, response: &Response) {
        self.out.extend_from_slice(&response.to_line());
        self.answered += 1;
    }

    /// From now on, log entries after `after` that pass the filters are
    /// streamed here.
    pub fn follow(&mut self, after: u64, since: Option<String>, priority: Option<Level>) {
        self.follow_after = Some(after);
        self.follow_filter = (since, priority);
    }

    /// Chatd is stopping cleanly: a follower is told so (best effort, one
    /// write) before its connection closes.
    pub fn say_goodbye(&mut self) {
        if self.follow_after.is_some() {
            self.out.extend_from_slice(FOLLOW_END);
            let _ = self.write_once();
        }
    }

    /// One write; an error means the peer is gone.
    pub fn write_once(&mut self) -> io::Result<usize> {
        flush_once(&mut self.stream, &mut self.out)
    }

    /// Finished: the peer closed and everything it asked is answered (or,
    /// for a follower, it simply closed).
    pub fn finished(&self) -> bool {
        self.read_closed
            && !self.has_request()
            && (self.out.is_empty() || self.follow_after.is_some())
    }
}

/// All control connections, with their bounds.
pub struct ControlConns {
    conns: IdMap<ControlConn>,
    cap: usize,
    timeout: Duration,
    /// Connections closed mid-request and not yet logged.
    stalled: usize,
    last_warning: Option<Instant>,
}

impl ControlConns {
    pub fn new(cap: usize, timeout: Duration) -> ControlConns {
        ControlConns {
            conns: IdMap::default(),
            cap,
            timeout,
            stalled: 0,
            last_warning: None,
        }
    }

    /// A new `--control-timeout` (SIGHUP); it counts from each
    /// connection's last request.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut ControlConn> {
        self.conns.get_mut(&id)
    }

    pub fn get(&self, id: u64) -> Option<&ControlConn> {
        self.conns.get(&id)
    }

    pub fn insert(&mut self, id: u64, conn: ControlConn) {
        self.conns.insert(id, conn);
    }

    pub fn remove(&mut self, id: u64) -> Option<ControlConn> {
        self.conns.remove(&id)
    }

    /// Closes every connection; followers are told chatd is stopping.
    pub fn clear(&mut self) {
        for c in self.conns.values_mut() {
            c.say_goodbye();
        }
        self.conns.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &ControlConn)> {
        self.conns.iter().map(|(id, c)| (*id, c))
    }

    /// Whether the control listener should be watched: a slot is free, or
    /// an idle connection can make room.
    pub fn accepting(&self, now: Instant) -> bool {
        self.conns.len() < self.cap
            || self
                .conns
                .values()
                .any(|c| c.evictable_from().is_some_and(|t| now >= t))
    }

    /// Makes room for one more, closing the longest-idle connection when
    /// at the cap. False when there is no room.
    pub fn make_room(&mut self, now: Instant) -> bool {
        if self.conns.len() < self.cap {
            return true;
        }
        let oldest = self
            .conns
            .iter()
            .filter_map(|(id, c)| c.evictable_from().map(|t| (t, *id)))
            .filter(|(t, _)| now >= *t)
            .min()
            .map(|(_, id)| id);
        match oldest {
            Some(id) => {
                self.conns.remove(&id);
                true
            }
            None => false,
        }
    }

    /// The earliest moment something here needs the loop: a timeout, or
    /// (at the cap) a connection becoming evictable.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeouts = self.conns.values().filter_map(|c| c.deadline(self.timeout));
        let evictable = (self.conns.len() >= self.cap)
            .then(|| {
                self.conns
                    .values()
                    .filter_map(ControlConn::evictable_from)
                    .min()
            })
            .flatten();
        timeouts.chain(evictable).min()
    }

    /// Closes connections silent for `--control-timeout`. Returns a warning
    /// to log about those cut off mid-request (at most one a second).
    pub fn expire(&mut self, now: Instant) -> Option<String> {
        let timeout = self.timeout;
        let expired: Vec<(u64, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline(timeout).is_some_and(|d| now >= d))
            .map(|(id, c)| (*id, !c.input.is_empty()))
            .collect();
        for (id, half_sent) in expired {
            self.conns.remove(&id);
            self.stalled += usize::from(half_sent);
        }
        if self.stalled == 0
            || self
                .last_warning
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_warning = Some(now);
        Some(format!(
            "control: closed {} connection(s) stalled mid-request for {} s (--control-timeout)",
            std::mem::take(&mut self.stalled),
            timeout.as_secs_f64()
        ))
    }

    /// Streams new log entries to followers; returns how many followers
    /// were dropped for falling more than [`FOLLOWER_MAX_BACKLOG`] behind.
    pub fn stream_logs(&mut self, entries: &[(u64, FollowLine)]) -> usize {
        let mut lagging = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            let Some(after) = c.follow_after else {
                continue;
            };
            for (seq, line) in entries.iter().filter(|(seq, _)| *seq > after) {
                if line
                    .log
                    .passes(c.follow_filter.0.as_deref(), c.follow_filter.1)
                {
                    c.out.extend_from_slice(&line.to_line());
                }
                c.follow_after = Some(*seq);
            }
            if c.out.len() > FOLLOWER_MAX_BACKLOG {
                lagging.push(*id);
            }
        }
        for id in &lagging {
            self.conns.remove(id);
        }
        lagging.len()
    }
}

/// The control connections chatd can hold at once: the descriptors
/// select(2) can watch, minus those open now, minus one per chat client
/// (`max_clients`), minus one for a connection being accepted and refused;
/// at most [`MAX_CONTROL_CAP`].
pub fn control_cap(fd_setsize: usize, open_fds: usize, max_clients: usize) -> usize {
    fd_setsize
        .saturating_sub(open_fds + max_clients + 1)
        .min(MAX_CONTROL_CAP)
}

/// How many descriptors this process has open (from /proc/self/fd).
pub fn open_descriptors() -> Option<usize> {
    // The directory handle itself is one of the entries while it is read.
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1))
}
