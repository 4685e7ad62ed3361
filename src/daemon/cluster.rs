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
//! (100 ms to 5 s). It decides nothing about rooms: the loop turns its
//! [`LinkEvent`]s into changes (see `event_loop.rs`, "cluster").

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{self, SockaddrStorage, getsockopt, sockopt};
use redis_protocol::resp3::types::OwnedFrame;

use crate::client::transport::{self, Incoming, Transport};
use crate::core::cluster::{self as resp, RespReader};
use crate::core::hub::ConnId;

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
}

/// What happened on the link, for the loop.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected: the loop sends its hello, heartbeat, sync and snapshot.
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
    pub url: String,
    addr: SocketAddr,
    auth: Option<(String, String)>,
    tls: Option<Tls>,
    pub node: String,
    /// This process's claim on the node id (a second chatd with the same
    /// id is refused by the heartbeat script).
    pub token: String,
    state: State,
    /// The socket (plain while connecting; TLS once connected, for
    /// rediss://).
    wire: Option<Transport>,
    backoff: Duration,
    out: Vec<u8>,
    reader: RespReader,
    pending: VecDeque<Purpose>,
    last_heard: Instant,
    /// Set once the snapshot after a (re)connect has been applied: only
    /// then are joins and admin changes taken.
    pub synced: bool,
    /// HELLO sent on this connection (heartbeats may follow).
    pub greeted: bool,
    /// The sync and snapshot are under way.
    pub syncing: bool,
    pub next_heartbeat: Instant,
    /// Channels subscribed to (room channels come and go with members).
    pub subscribed: std::collections::HashSet<String>,
    /// Messages not published because the link was down.
    pub unpublished: u64,
}

/// Where the cluster's Redis is and how to log in to it, from
/// `--cluster redis://[USER[:PASSWORD]@]HOST[:PORT]` and
/// `--cluster-password-file`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The URL without its password, for logs and `status`.
    pub shown: String,
    /// ACL user and password for `HELLO 3 AUTH` (the user is `default`
    /// when the URL names none).
    pub auth: Option<(String, String)>,
    /// `rediss://`: TLS, and the name Redis's certificate must carry.
    pub tls: Option<Tls>,
}

/// TLS to Redis: the client configuration and the name to verify.
#[derive(Clone)]
pub struct Tls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.name == other.name
    }
}

impl Eq for Tls {}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.shown, self.addr)
    }
}

/// `url` with any password replaced by `***` (for logs, `status` and
/// the reload plan).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((creds, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// `%XX` escapes decoded (a password may hold `@`, `:` or `/` that way).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials that are not UTF-8".to_string())
}

/// Reads `--cluster URL` (and the password file, which systemd's
/// LoadCredential can provide). Name resolution blocks, so this runs
/// once, at start-up.
pub fn target(
    url: &str,
    password_file: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> Result<Target, String> {
    let shown = redact(url);
    let bad = |why: &str| format!("--cluster '{shown}': {why}");
    let (rest, tls) = match url.split_once("://") {
        Some(("redis", rest)) => (rest, false),
        Some(("rediss", rest)) => (rest, true),
        _ => return Err(bad("expected redis[s]://[USER[:PASSWORD]@]HOST[:PORT]")),
    };
    if ca.is_some() && !tls {
        return Err(bad("--cluster-ca is for TLS: use rediss://"));
    }
    let rest = rest.trim_end_matches('/');
    let (creds, host) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    if host.contains('/') {
        return Err(bad(
            "database numbers are not supported (chatd keeps its keys under chatd:)",
        ));
    }
    let (user, url_password) = match creds {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u), Some(percent_decode(p).map_err(|e| bad(&e))?)),
            None => (Some(c), None),
        },
    };
    let user = user
        .filter(|u| !u.is_empty())
        .map(percent_decode)
        .transpose()
        .map_err(|e| bad(&e))?;
    let file_password = match password_file {
        Some(path) => {
            let text = crate::files::read_small_text(path)
                .map_err(|e| format!("--cluster-password-file {}: {e}", path.display()))?;
            let pw = text.trim_end_matches(['\n', '\r']).to_string();
            if pw.is_empty() {
                return Err(format!("--cluster-password-file {}: empty", path.display()));
            }
            Some(pw)
        }
        None => None,
    };
    let password = match (url_password, file_password) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "a password both in the URL and in --cluster-password-file; give one",
            ));
        }
        (Some(p), None) | (None, Some(p)) => Some(p),
        (None, None) if user.is_some() => {
            return Err(bad(
                "a user without a password (give it in the URL or with --cluster-password-file)",
            ));
        }
        (None, None) => None,
    };
    let auth = password.map(|p| (user.unwrap_or_else(|| "default".into()), p));
    let with_port = if host.starts_with('[') {
        if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:6379")
        }
    } else if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address"))?;
    let tls = if tls {
        let roots = transport::roots(ca).map_err(|e| e.replace("--ca", "--cluster-ca"))?;
        Some(Tls {
            config: transport::client_config(roots)?,
            name: transport::server_name(&with_port).map_err(|e| bad(&e))?,
        })
    } else {
        None
    };
    Ok(Target {
        addr,
        shown,
        auth,
        tls,
    })
}

impl ClusterLink {
    pub fn new(target: &Target, node: &str, token: String, now: Instant) -> ClusterLink {
        ClusterLink {
            url: target.shown.clone(),
            addr: target.addr,
            auth: target.auth.clone(),
            tls: target.tls.clone(),
            node: node.to_string(),
            token,
            state: State::Down { retry_at: now },
            wire: None,
            backoff: BACKOFF_MIN,
            out: Vec::new(),
            reader: RespReader::default(),
            pending: VecDeque::new(),
            last_heard: now,
            synced: false,
            greeted: false,
            syncing: false,
            next_heartbeat: now,
            subscribed: Default::default(),
            unpublished: 0,
        }
    }

    /// Connected and resynchronised: joins and admin changes may go ahead.
    pub fn ready(&self) -> bool {
        matches!(self.state, State::Up) && self.synced
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

    /// When the loop must come back: a reconnect or connect timeout, the
    /// next heartbeat.
    pub fn deadline(&self) -> Instant {
        match self.state {
            State::Down { retry_at } => retry_at,
            State::Connecting { since } => since + CONNECT_TIMEOUT,
            State::Up if self.pending.is_empty() => self.next_heartbeat,
            State::Up => self.next_heartbeat.min(self.last_heard + SILENCE_LIMIT),
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
        let fd = super::net::tcp_socket(&self.addr)?;
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
            self.next_heartbeat = now;
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
        self.subscribed.clear();
        self.synced = false;
        self.greeted = false;
        self.syncing = false;
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

    pub fn describe_state(&self) -> &'static str {
        match self.state {
            State::Down { .. } => "down",
            State::Connecting { .. } => "connecting",
            State::Up if self.synced => "up",
            State::Up => "synchronising",
        }
    }

    /// The HELLO that switches to RESP3, logs in (an ACL user) and names
    /// the connection.
    pub fn hello(&self) -> Vec<u8> {
        let name = format!("chatd-{}", self.node.replace(' ', "_"));
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
mod tests {
    use super::*;

    #[test]
    fn urls_give_address_and_credentials_and_logs_never_the_password() {
        let t = target("redis://127.0.0.1", None, None).unwrap();
        assert_eq!(t.addr.port(), 6379);
        assert_eq!(t.auth, None);
        let t = target("redis://chatd:p%40ss%3Aw@127.0.0.1:7000/", None, None).unwrap();
        assert_eq!(t.addr.port(), 7000);
        assert_eq!(t.auth, Some(("chatd".into(), "p@ss:w".into())));
        assert_eq!(t.shown, "redis://chatd:***@127.0.0.1:7000/");
        assert!(!format!("{t:?}").contains("p%40ss"));
        let t = target("redis://:secret@[::1]", None, None).unwrap();
        assert_eq!(t.auth, Some(("default".into(), "secret".into())));
        for (bad, why) in [
            ("redis://chatd@127.0.0.1", "without a password"),
            ("redis://127.0.0.1/2", "database numbers"),
            ("http://127.0.0.1", "expected redis[s]://"),
            ("redis://u:%zz@127.0.0.1", "hex digits"),
        ] {
            let e = target(bad, None, None).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = target(
            "redis://127.0.0.1",
            None,
            Some(std::path::Path::new("/ca.pem")),
        )
        .unwrap_err();
        assert!(e.contains("rediss://"), "{e}");
        let e = target("redis://u:top@127.0.0.1/3", None, None).unwrap_err();
        assert!(!e.contains("top"), "{e}");
    }

    #[test]
    fn the_password_may_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("chatd-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("redis-password");
        std::fs::write(&file, "from-file\n").unwrap();
        let t = target("redis://chatd@127.0.0.1", Some(&file), None).unwrap();
        assert_eq!(t.auth, Some(("chatd".into(), "from-file".into())));
        let e = target("redis://chatd:x@127.0.0.1", Some(&file), None).unwrap_err();
        assert!(e.contains("both"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
