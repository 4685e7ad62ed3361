//! The cluster link: one non-blocking TCP connection to Redis, driven by
//! the event loop like any other socket. It speaks RESP3 (`HELLO 3`), so
//! the one connection both runs commands (replies come back in order,
//! matched with a queue of what each was for) and receives pub/sub pushes.
//!
//! With `rediss://` the link is TLS (rustls, the same transport as the
//! `chat` client's), verifying Redis's certificate against the system's
//! roots or `--cluster-ca`.
//!
//! It connects, and after a failure reconnects with a doubling backoff
//! (100 ms to 5 s). It decides nothing about rooms and keeps no node
//! state: the cluster part (mod.rs) turns its [`LinkEvent`]s into
//! changes. Its fields are private; what it does is its methods.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{self, SockaddrStorage, getsockopt, sockopt};
use redis_protocol::resp3::types::OwnedFrame;

use crate::client::transport::{Incoming, Transport};
use crate::core::cluster::{self as resp, RespReader};
use crate::core::hub::ConnId;

use super::target::{Target, Tls};

/// How often the heartbeat is renewed, and how long it lives: a node
/// that stops renewing is presumed dead after the TTL, and the next
/// heartbeat of any survivor removes its members.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);

/// A connect that has not completed by then failed; a link that owes
/// replies and has heard nothing for `SILENCE_LIMIT` is dead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Most bytes waiting to go to Redis; past it the link is dropped (and
/// resynchronised after reconnecting) rather than grow without bound.
const MAX_OUTPUT: usize = 8 * 1024 * 1024;

/// What a command's reply is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Nothing to do but check it is not an error.
    Ignore,
    Hello,
    Heartbeat,
    Sync,
    Snapshot,
    /// A chat connection's join, waiting for the verdict.
    Join(ConnId),
    /// An admin's room creation (`exists` means another node was first).
    RoomCreate(String),
    /// An IRC connection's nick claim, waiting for the verdict.
    Nick(ConnId),
    /// A direct message from an IRC connection to a nick (`PUBLISH`
    /// answering 0: nobody holds it).
    Direct(ConnId, String),
    /// A history room's log, read after a sync (history.rs).
    Backfill(String),
}

/// What happened on the link, for the cluster part.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected: the cluster part sends its hello, heartbeat, sync and snapshot.
    Connected,
    Reply(Purpose, OwnedFrame),
    Push(OwnedFrame),
    /// The link broke; these replies will never come.
    Lost {
        why: String,
        unanswered: Vec<Purpose>,
    },
}

#[derive(Debug)]
enum State {
    Down { retry_at: Instant },
    Connecting { since: Instant },
    Up,
}

pub struct ClusterLink {
    /// The URL as shown (without the password).
    url: String,
    addr: SocketAddr,
    auth: Option<(String, String)>,
    tls: Option<Tls>,
    state: State,
    /// The socket (plain while connecting; TLS once connected, for
    /// rediss://).
    wire: Option<Transport>,
    backoff: Duration,
    out: Vec<u8>,
    reader: RespReader,
    pending: VecDeque<Purpose>,
    last_heard: Instant,
}

impl ClusterLink {
    pub fn new(target: &Target, now: Instant) -> ClusterLink {
        ClusterLink {
            url: target.shown.clone(),
            addr: target.addr,
            auth: target.auth.clone(),
            tls: target.tls.clone(),
            state: State::Down { retry_at: now },
            wire: None,
            backoff: BACKOFF_MIN,
            out: Vec::new(),
            reader: RespReader::default(),
            pending: VecDeque::new(),
            last_heard: now,
        }
    }

    /// The URL as shown (without the password).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn connected(&self) -> bool {
        matches!(self.state, State::Up)
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.wire.as_ref().map(|w| w.stream().as_raw_fd())
    }

    /// Whether the loop should wait for the socket to be writable.
    pub fn wants_write(&self) -> bool {
        match (&self.state, &self.wire) {
            (State::Connecting { .. }, _) => true,
            (State::Up, Some(w)) => w.wants_write(&self.out),
            _ => false,
        }
    }

    /// Queues a command; its reply goes to `purpose`. Refused (false)
    /// when not connected.
    pub fn send(&mut self, purpose: Purpose, bytes: &[u8]) -> bool {
        if !self.connected() {
            return false;
        }
        self.out.extend_from_slice(bytes);
        self.pending.push_back(purpose);
        true
    }

    /// Queues a command that has no reply of its own in RESP3
    /// (SUBSCRIBE, UNSUBSCRIBE: their confirmations are pushes).
    pub fn send_no_reply(&mut self, bytes: &[u8]) -> bool {
        if !self.connected() {
            return false;
        }
        self.out.extend_from_slice(bytes);
        true
    }

    /// When the loop must come back for the link's own sake: a reconnect,
    /// a connect timeout, the silence limit while replies are owed.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Down { retry_at } => Some(retry_at),
            State::Connecting { since } => Some(since + CONNECT_TIMEOUT),
            State::Up if self.pending.is_empty() => None,
            State::Up => Some(self.last_heard + SILENCE_LIMIT),
        }
    }

    /// Timers: reconnect when due; give up on a slow connect or a silent
    /// Redis.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<LinkEvent>) {
        match self.state {
            State::Down { retry_at } if now >= retry_at => {
                if let Err(e) = self.start_connect(now) {
                    self.fail(now, format!("connect to {}: {e}", self.addr), events);
                }
            }
            State::Connecting { since } if now >= since + CONNECT_TIMEOUT => {
                self.fail(now, format!("connect to {} timed out", self.addr), events);
            }
            State::Up if !self.pending.is_empty() && now >= self.last_heard + SILENCE_LIMIT => {
                self.fail(
                    now,
                    format!("Redis at {} stopped answering", self.addr),
                    events,
                );
            }
            _ => {}
        }
    }

    fn start_connect(&mut self, now: Instant) -> io::Result<()> {
        let fd = crate::daemon::net::tcp_socket(&self.addr)?;
        let target = SockaddrStorage::from(self.addr);
        match socket::connect(fd.as_raw_fd(), &target) {
            Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = TcpStream::from(fd);
        let _ = stream.set_nodelay(true);
        self.wire = Some(Transport::Plain(stream));
        self.state = State::Connecting { since: now };
        Ok(())
    }

    /// The socket is ready: finish a connect, read what came, write what
    /// waits.
    pub fn on_ready(&mut self, now: Instant, readable: bool, events: &mut Vec<LinkEvent>) {
        if let State::Connecting { .. } = self.state {
            let Some(wire) = &self.wire else { return };
            match getsockopt(wire.stream(), sockopt::SocketError) {
                Ok(0) => {}
                Ok(errno) => {
                    let e = io::Error::from_raw_os_error(errno);
                    self.fail(now, format!("connect to {}: {e}", self.addr), events);
                    return;
                }
                Err(e) => {
                    self.fail(now, format!("connect to {}: {e}", self.addr), events);
                    return;
                }
            }
            if let Some(tls) = &self.tls
                && let Some(Transport::Plain(stream)) = self.wire.take()
            {
                match Transport::tls(stream, &tls.config, tls.name.clone()) {
                    Ok(t) => self.wire = Some(t),
                    Err(e) => {
                        self.fail(now, format!("tls to {}: {e}", self.addr), events);
                        return;
                    }
                }
            }
            self.state = State::Up;
            self.backoff = BACKOFF_MIN;
            self.last_heard = now;
            events.push(LinkEvent::Connected);
        }
        if readable {
            self.read(now, events);
        }
        self.flush(now, events);
    }

    fn read(&mut self, now: Instant, events: &mut Vec<LinkEvent>) {
        for _ in 0..16 {
            let Some(wire) = &mut self.wire else {
                return;
            };
            match wire.read() {
                Ok(Incoming::Data(data)) => {
                    self.last_heard = now;
                    self.reader.push(&data);
                }
                Ok(Incoming::Nothing) => break,
                Ok(Incoming::Closed) => {
                    self.drain_frames(now, events);
                    self.fail(
                        now,
                        format!("Redis at {} closed the link", self.addr),
                        events,
                    );
                    return;
                }
                Ok(Incoming::TlsFailed(why)) => {
                    self.fail(now, format!("tls to {}: {why}", self.addr), events);
                    return;
                }
                Err(e) => {
                    self.fail(
                        now,
                        format!("reading from Redis at {}: {e}", self.addr),
                        events,
                    );
                    return;
                }
            }
        }
        self.drain_frames(now, events);
    }

    fn drain_frames(&mut self, now: Instant, events: &mut Vec<LinkEvent>) {
        loop {
            match self.reader.next_frame() {
                Ok(Some(frame @ OwnedFrame::Push { .. })) => events.push(LinkEvent::Push(frame)),
                Ok(Some(frame)) => match self.pending.pop_front() {
                    Some(p) => events.push(LinkEvent::Reply(p, frame)),
                    None => {
                        self.fail(now, "a reply nobody asked for".into(), events);
                        return;
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    self.fail(now, format!("from Redis at {}: {e}", self.addr), events);
                    return;
                }
            }
        }
    }

    /// One write of what waits.
    pub fn flush(&mut self, now: Instant, events: &mut Vec<LinkEvent>) {
        if !self.wants_write() || !self.connected() {
            return;
        }
        if self.out.len() > MAX_OUTPUT {
            self.fail(now, "more than 8 MiB waiting for Redis".into(), events);
            return;
        }
        let Some(wire) = &mut self.wire else {
            return;
        };
        if let Err(e) = wire.flush(&mut self.out) {
            self.fail(
                now,
                format!("writing to Redis at {}: {e}", self.addr),
                events,
            );
        }
    }

    /// The link is down: everything in flight is lost, and a reconnect is
    /// scheduled.
    fn fail(&mut self, now: Instant, why: String, events: &mut Vec<LinkEvent>) {
        self.wire = None;
        self.out.clear();
        self.reader = RespReader::default();
        let unanswered = self.pending.drain(..).collect();
        self.state = State::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        events.push(LinkEvent::Lost { why, unanswered });
    }

    /// Drops the link on purpose (a protocol surprise, a taken node id).
    pub fn drop_link(&mut self, now: Instant, why: String, events: &mut Vec<LinkEvent>) {
        self.fail(now, why, events);
    }

    /// At exit: one last non-blocking write of what waits.
    pub fn last_flush(&mut self) {
        if let (State::Up, Some(wire)) = (&self.state, &mut self.wire) {
            let _ = wire.flush(&mut self.out);
        }
    }

    /// "down", "connecting" or "up".
    pub fn describe_state(&self) -> &'static str {
        match self.state {
            State::Down { .. } => "down",
            State::Connecting { .. } => "connecting",
            State::Up => "up",
        }
    }

    /// The HELLO that switches to RESP3, logs in (an ACL user) and names
    /// the connection after the node.
    pub fn hello(&self, node: &str) -> Vec<u8> {
        let name = format!("chatd-{}", node.replace(' ', "_"));
        match &self.auth {
            Some((user, password)) => resp::command(&[
                b"HELLO",
                b"3",
                b"AUTH",
                user.as_bytes(),
                password.as_bytes(),
                b"SETNAME",
                name.as_bytes(),
            ]),
            None => resp::command(&[b"HELLO", b"3", b"SETNAME", name.as_bytes()]),
        }
    }
}

#[cfg(test)]
impl ClusterLink {
    /// A link that counts as connected without a socket (the cluster
    /// part's tests feed it recorded replies instead).
    pub fn up_without_socket(&mut self, now: Instant) {
        self.state = State::Up;
        self.last_heard = now;
    }

    /// What was queued for Redis since the last call, and the purposes
    /// of its replies (taken: the test answers them itself).
    pub fn take_sent(&mut self) -> (Vec<u8>, Vec<Purpose>) {
        (
            std::mem::take(&mut self.out),
            self.pending.drain(..).collect(),
        )
    }
}
