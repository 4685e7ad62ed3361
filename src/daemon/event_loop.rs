//! The one select(2) loop. It owns every descriptor (TCP listeners, chat
//! clients, the control socket and its clients, the signal self-pipe), asks
//! the hub what each input means, and carries out the deliveries.
//!
//! Each pass: compute timers → select → signals → accept → one read per
//! readable connection → decode and act on buffered frames (rooms with a
//! backed-up member are skipped) → one write per connection with output →
//! close what is finished. Nothing else in chatd blocks or calls select.

use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::select::{FdSet, select};
use nix::sys::time::{TimeVal, TimeValLike};

use super::Config;
use super::admin::AdminConn;
use super::conn::{Conn, Phase, ReadOutcome};
use super::logbook::Logbook;
use super::net::ControlSocket;
use super::notify::Notifier;
use super::signals::Signals;
use super::store::Store;
use crate::core::hub::{ConnId, Delivery, Hub, IdMap, RoomId};
use crate::core::wire::{self, ErrorCode, Event, EventKind};
use crate::timefmt;

/// select(2) cannot watch descriptors at or above this number.
pub const FD_SETSIZE: usize = nix::libc::FD_SETSIZE;

/// How long a closing connection may take to flush its last event and see
/// the peer's FIN before it is closed regardless.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long, after SIGINT/SIGTERM, clients get to receive `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Above this much queued output a member is backed up: its room stops
/// being read. Low enough that buffers stay small (idle memory, cache) and
/// the kernel's socket buffer does the rest; never more than half the sendq.
pub fn high_water_mark(sendq: usize) -> usize {
    (sendq / 2).min(16 * 1024)
}

/// How often a closing connection whose output is flushed is checked for
/// the peer's acknowledgement.
const ACK_POLL: Duration = Duration::from_millis(10);

/// Bytes read from one connection per pass at most (fairness), and the size
/// of the shared read buffer.
const READ_CHUNK: usize = 64 * 1024;

/// How long accepting pauses when descriptors run out and no spare is left.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct Stats {
    pub messages_relayed: u64,
    pub deliveries: u64,
    pub bytes_out: u64,
    pub slow_consumer_drops: u64,
    pub joins: u64,
    pub refusals: u64,
}

pub struct Server {
    pub(super) cfg: Config,
    pub(super) hub: Hub,
    pub(super) clients: IdMap<Conn>,
    pub(super) admins: IdMap<AdminConn>,
    pub(super) log: Logbook,
    pub(super) stats: Stats,
    pub(super) started: Instant,
    listeners: Vec<TcpListener>,
    pub(super) control: Option<ControlSocket>,
    signals: Signals,
    next_id: u64,
    /// Above this much queued output a member is "backed up": its room is not
    /// read from, and its write-timeout clock runs.
    hwm: usize,
    scratch: Vec<u8>,
    /// A descriptor kept in reserve: when accept(2) fails with EMFILE, it is
    /// closed so the pending connection can be accepted, told 503, and closed.
    spare_fd: Option<File>,
    accept_paused_until: Option<Instant>,
    last_fd_warning: Option<Instant>,
    /// Set once SIGINT/SIGTERM arrived: the moment chatd exits at the latest.
    shutdown_deadline: Option<Instant>,
    /// Connections to drop once the current delivery is done.
    doomed: Vec<(ConnId, String)>,
    pub(super) store: Store,
    notifier: Notifier,
    /// The (clients, rooms) last reported in STATUS=, and when.
    status_sent: ((usize, usize), Instant),
    /// Clients closed during shutdown with output they never received.
    cut_off: usize,
    /// When the next WATCHDOG=1 is due (when systemd's watchdog is on).
    watchdog_due: Option<Instant>,
    /// The most control connections at once (see `admin::control_cap`).
    pub(super) control_cap: usize,
    /// Control connections closed mid-request and not yet logged.
    pub(super) stalled_admins: usize,
    pub(super) last_admin_warning: Option<Instant>,
}

/// Which listener accept(2) failed on.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    Chat(usize),
    Control,
}

/// At most one STATUS= notification per this interval.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What start-up opened for the loop: sockets, the signal pipe, the state
/// store and the systemd notifier.
pub struct Bound {
    pub listeners: Vec<TcpListener>,
    pub control: Option<ControlSocket>,
    pub signals: Signals,
    pub store: Store,
    pub notifier: Notifier,
    /// The most control connections at once.
    pub control_cap: usize,
}

impl Server {
    pub fn new(cfg: Config, hub: Hub, log: Logbook, bound: Bound) -> Server {
        let Bound {
            listeners,
            control,
            signals,
            store,
            notifier,
            control_cap,
        } = bound;
        let hwm = high_water_mark(cfg.sendq);
        Server {
            cfg,
            hub,
            clients: IdMap::default(),
            admins: IdMap::default(),
            log,
            stats: Stats::default(),
            started: Instant::now(),
            listeners,
            control,
            signals,
            next_id: 1,
            hwm,
            scratch: vec![0; READ_CHUNK],
            spare_fd: File::open("/dev/null").ok(),
            accept_paused_until: None,
            last_fd_warning: None,
            shutdown_deadline: None,
            doomed: Vec::new(),
            store,
            notifier,
            status_sent: ((usize::MAX, usize::MAX), Instant::now()),
            cut_off: 0,
            watchdog_due: None,
            control_cap,
            stalled_admins: 0,
            last_admin_warning: None,
        }
    }

    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Runs until SIGINT/SIGTERM and the shutdown that follows.
    pub fn run(&mut self) -> Result<(), String> {
        self.notifier.send("READY=1");
        self.report_status(Instant::now());
        loop {
            let now = Instant::now();
            self.pet_watchdog(now);
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
            }
            self.expire_timers(now);
            self.expire_admins(now);
            self.report_status(now);
            if let Some(deadline) = self.shutdown_deadline
                && (self.clients.is_empty() || now >= deadline)
            {
                let unflushed =
                    self.cut_off + self.clients.values().filter(|c| c.unflushed()).count();
                self.clients.clear();
                self.log.info(format!(
                    "stopped ({unflushed} client(s) closed before their output was flushed)"
                ));
                return Ok(());
            }
            // Like redis's beforeSleep: what the sink takes now needs no wait.
            self.log.flush_sink();
            // One congestion cache for both: nothing changes between them.
            let mut congested = IdMap::default();
            let timeout = self.select_timeout(now, &mut congested);
            let (mut readable, mut writable) = self.interest(&mut congested);
            let mut rset = fd_set(&readable);
            let mut wset = fd_set(&writable);
            let mut tv = timeout.map(|t| TimeVal::microseconds(t.as_micros() as i64));
            match select(None, &mut rset, &mut wset, None, tv.as_mut()) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("select: {e}")),
            }
            readable.retain(|fd| rset.contains(borrow(*fd)));
            writable.retain(|fd| wset.contains(borrow(*fd)));
            self.dispatch(&Ready::new(&readable, &writable));
        }
    }

    /// Acts on one select result.
    fn dispatch(&mut self, ready: &Ready) {
        if let Some(fd) = self.log.sink_blocked_fd()
            && ready.writable(fd)
        {
            self.log.sink_writable();
        }
        if ready.readable(self.signals.fd().as_raw_fd()) {
            self.on_signals();
        }
        for i in 0..self.listeners.len() {
            if ready.readable(self.listeners[i].as_raw_fd()) {
                self.accept_clients(i);
            }
        }
        if let Some(c) = &self.control
            && ready.readable(c.listener.as_raw_fd())
        {
            self.accept_admins();
        }
        let ready_clients: Vec<(ConnId, bool, bool)> = self
            .clients
            .values()
            .map(|c| {
                let fd = c.stream.as_raw_fd();
                (c.id, ready.readable(fd), ready.writable(fd))
            })
            .filter(|(_, r, w)| *r || *w)
            .collect();
        for (id, r, w) in ready_clients {
            if w && let Some(c) = self.clients.get_mut(&id) {
                c.write_blocked = false;
            }
            if r {
                self.read_client(id);
            }
        }
        let ready_admins: Vec<u64> = self
            .admins
            .values()
            .filter(|a| {
                let fd = a.stream.as_raw_fd();
                ready.readable(fd) || ready.writable(fd)
            })
            .map(|a| a.id)
            .collect();
        for id in ready_admins {
            self.read_admin(id);
        }
        self.process_clients();
        self.forward_logs();
        self.flush_clients();
        self.flush_admins();
        self.reap_clients();
    }

    /// Tells systemd how many clients and rooms there are (on change, at
    /// most once per [`STATUS_INTERVAL`]).
    fn report_status(&mut self, now: Instant) {
        if !self.notifier.enabled() || self.shutdown_deadline.is_some() {
            return;
        }
        let counts = (self.clients.len(), self.hub.room_count());
        let (sent, at) = self.status_sent;
        if counts != sent && (now.duration_since(at) >= STATUS_INTERVAL || sent.0 == usize::MAX) {
            self.notifier.send(&format!(
                "STATUS={} client(s), {} room(s)",
                counts.0, counts.1
            ));
            self.status_sent = (counts, now);
        }
    }

    /// Sends WATCHDOG=1 when it is due. Called once per pass, so a loop
    /// stuck anywhere stops the pings and systemd restarts chatd.
    fn pet_watchdog(&mut self, now: Instant) {
        let Some(interval) = self.notifier.watchdog_interval() else {
            return;
        };
        if self.watchdog_due.is_none_or(|due| now >= due) {
            self.notifier.send("WATCHDOG=1");
            self.watchdog_due = Some(now + interval);
        }
    }

    // -- select set-up ------------------------------------------------------

    /// The descriptors to watch for reading and for writing.
    fn interest(&self, congested: &mut IdMap<bool>) -> (Vec<RawFd>, Vec<RawFd>) {
        let mut rd = vec![self.signals.fd().as_raw_fd()];
        let mut wr = Vec::new();
        let paused = self.accept_paused_until.is_some();
        if self.shutdown_deadline.is_none() && !paused {
            rd.extend(self.listeners.iter().map(|l| l.as_raw_fd()));
        }
        if let Some(c) = &self.control
            && !paused
            && self.control_accepting(Instant::now())
        {
            rd.push(c.listener.as_raw_fd());
        }
        if let Some(fd) = self.log.sink_blocked_fd() {
            wr.push(fd);
        }
        for c in self.clients.values() {
            let fd = c.stream.as_raw_fd();
            if self.wants_read(c, congested) {
                rd.push(fd);
            }
            if c.pending() > 0 && c.write_blocked {
                wr.push(fd);
            }
        }
        for a in self.admins.values() {
            let fd = a.stream.as_raw_fd();
            if a.wants_read() {
                rd.push(fd);
            }
            if a.wants_write() {
                wr.push(fd);
            }
        }
        (rd, wr)
    }

    fn wants_read(&self, c: &Conn, congested: &mut IdMap<bool>) -> bool {
        if c.read_closed {
            return false;
        }
        match c.phase {
            Phase::Handshake { .. } => c.decoder.space() > 0,
            Phase::Closing { .. } => true,
            Phase::Member => {
                c.decoder.space() > 0
                    && !self
                        .hub
                        .room_of(c.id)
                        .is_some_and(|r| self.room_congested(r, congested))
            }
        }
    }

    /// Whether some member of the room has more than the high-water mark of
    /// unsent output (cached per pass in `cache`).
    fn room_congested(&self, room: RoomId, cache: &mut IdMap<bool>) -> bool {
        *cache.entry(room).or_insert_with(|| {
            self.hub.member_conns(room).any(|id| {
                self.clients
                    .get(&id)
                    .is_some_and(|c| c.pending() > self.hwm)
            })
        })
    }

    /// How long select may sleep: until the nearest deadline, or not at all
    /// when decoded frames wait in a room that can flow again.
    fn select_timeout(&self, now: Instant, congested: &mut IdMap<bool>) -> Option<Duration> {
        let mut next: Option<Instant> = self.shutdown_deadline;
        let mut earliest = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if self.notifier.enabled() {
            // Wake to report a status that changed during the last interval.
            let counts = (self.clients.len(), self.hub.room_count());
            if counts != self.status_sent.0 {
                earliest(self.status_sent.1 + STATUS_INTERVAL);
            }
        }
        if let Some(t) = self.accept_paused_until {
            earliest(t);
        }
        if let Some(t) = self.watchdog_due {
            earliest(t);
        }
        for a in self.admins.values() {
            if let Some(t) = a.deadline(self.cfg.control_timeout) {
                earliest(t);
            }
        }
        if let Some(t) = self.next_evictable() {
            earliest(t);
        }
        for c in self.clients.values() {
            match c.phase {
                Phase::Handshake { deadline } => earliest(deadline),
                Phase::Closing { deadline } => {
                    earliest(deadline);
                    if c.pending() == 0 {
                        // Nothing signals "the peer acknowledged"; look again soon.
                        earliest(now + ACK_POLL);
                    }
                }
                Phase::Member => {
                    if let Some(at) = c.stall.exhausted_at(self.cfg.write_timeout) {
                        earliest(at);
                    }
                    let ready = c.decoder.frame_ready() || c.read_closed;
                    let blocked = self
                        .hub
                        .room_of(c.id)
                        .is_some_and(|r| self.room_congested(r, congested));
                    if ready && !blocked {
                        return Some(Duration::ZERO);
                    }
                }
            }
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    // -- signals ------------------------------------------------------------

    fn on_signals(&mut self) {
        let pending = self.signals.take();
        if pending.hangup {
            self.log.info("SIGHUP received: nothing to reload; ignored");
        }
        if pending.terminate {
            if self.shutdown_deadline.is_some() {
                self.log
                    .warn("second termination signal: exiting without waiting for clients");
                self.shutdown_deadline = Some(Instant::now());
            } else {
                self.begin_shutdown();
            }
        }
    }

    /// Stops listening, tells every client `shutdown`, and gives their output
    /// [`SHUTDOWN_GRACE`] to drain.
    fn begin_shutdown(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        self.shutdown_deadline = Some(deadline);
        self.notifier.send("STOPPING=1\nSTATUS=shutting down");
        self.log.info(format!(
            "shutting down: telling {} client(s)",
            self.clients.len()
        ));
        self.listeners.clear();
        self.control = None;
        self.admins.clear();
        let line = Event::system(EventKind::Shutdown, wire::SHUTDOWN, None).encode();
        for c in self.clients.values_mut() {
            if !matches!(c.phase, Phase::Closing { .. }) {
                c.queue(&line);
            }
            c.phase = Phase::Closing { deadline };
        }
    }

    // -- accepting ----------------------------------------------------------

    fn accept_clients(&mut self, index: usize) {
        loop {
            let accepted = self.listeners[index].accept();
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if super::conn::would_block(&e) => return,
                Err(e) if super::conn::interrupted(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if is_fd_exhaustion(&e) => {
                    self.on_fd_exhaustion(Door::Chat(index));
                    return;
                }
                Err(e) => {
                    self.log.warn(format!("accept: {e}"));
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let fd = stream.as_raw_fd() as usize;
        if fd >= FD_SETSIZE {
            self.refuse_at_door(stream, peer, "no descriptor slot left for select(2)");
            return;
        }
        if self.clients.len() >= self.cfg.max_clients {
            let why = format!("--max-clients {} reached", self.cfg.max_clients);
            self.refuse_at_door(stream, peer, &why);
            return;
        }
        if let Err(e) = stream.set_nonblocking(true) {
            self.log
                .warn(format!("client {peer}: set non-blocking: {e}"));
            return;
        }
        // Chat lines are small and latency matters more than segment count.
        let _ = stream.set_nodelay(true);
        let id = self.next_id();
        let deadline = Instant::now() + self.cfg.handshake_timeout;
        self.clients.insert(
            id,
            Conn::new(id, stream, peer, self.cfg.max_frame, deadline),
        );
    }

    /// Answers 503 with one best-effort write and closes at once; such a
    /// connection never enters the loop.
    fn refuse_at_door(&mut self, mut stream: TcpStream, peer: SocketAddr, why: &str) {
        let _ = stream.set_nonblocking(true);
        let line = Event::error(
            ErrorCode::Unavailable,
            None,
            &format!("server at capacity: {why}"),
        )
        .encode();
        let _ = stream.write(&line);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        self.stats.refusals += 1;
        self.log.warn(format!("refused 503 to {peer}: {why}"));
    }

    /// accept(2) said EMFILE/ENFILE. The pending connection would keep the
    /// listener readable and the loop spinning, so: give up the spare
    /// descriptor, accept and refuse the connection, take the spare back.
    /// Without a spare, stop watching the listeners for a moment.
    pub(super) fn on_fd_exhaustion(&mut self, door: Door) {
        let now = Instant::now();
        if self
            .last_fd_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_fd_warning = Some(now);
            self.log
                .warn("out of file descriptors: refusing new connections until some close");
        }
        if self.spare_fd.take().is_some() {
            match door {
                Door::Chat(index) => {
                    if let Ok((stream, peer)) = self.listeners[index].accept() {
                        self.refuse_at_door(stream, peer, "out of file descriptors");
                    }
                }
                Door::Control => self.refuse_admin_at_door(),
            }
            self.spare_fd = File::open("/dev/null").ok();
        }
        if self.spare_fd.is_none() {
            self.accept_paused_until = Some(now + ACCEPT_PAUSE);
        }
    }

    // -- reading and acting on input ---------------------------------------

    fn read_client(&mut self, id: ConnId) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let discard = matches!(c.phase, Phase::Closing { .. });
        match c.read_once(&mut self.scratch, discard) {
            Ok(ReadOutcome::Data(_)) | Ok(ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Eof) => c.read_closed = true,
            Err(e) => {
                c.read_closed = true;
                if !discard {
                    self.doom(id, format!("read error: {e}"));
                    self.drop_doomed();
                }
            }
        }
    }

    /// Decodes and acts on the frames buffered in every connection, skipping
    /// members whose room is backed up.
    fn process_clients(&mut self) {
        let ids: Vec<ConnId> = self
            .clients
            .values()
            .filter(|c| c.decoder.buffered() > 0 || c.read_closed)
            .map(|c| c.id)
            .collect();
        let mut congested = IdMap::default();
        for id in ids {
            self.process_client(id, &mut congested);
            self.drop_doomed();
        }
    }

    fn process_client(&mut self, id: ConnId, congested: &mut IdMap<bool>) {
        loop {
            let Some(c) = self.clients.get_mut(&id) else {
                return;
            };
            let phase = c.phase;
            if let Phase::Closing { .. } = phase {
                return;
            }
            if phase == Phase::Member
                && let Some(room) = self.hub.room_of(id)
                && self.room_congested(room, congested)
            {
                return;
            }
            let c = self.clients.get_mut(&id).expect("checked above");
            match c.decoder.next_frame() {
                None => break,
                Some(Err(e)) => {
                    self.close_with_error(id, e.code(), &e.reason(), None);
                    return;
                }
                Some(Ok(payload)) => {
                    let crossed = match phase {
                        Phase::Handshake { .. } => self.on_handshake(id, &payload),
                        _ => self.on_message(id, &payload),
                    };
                    if let Some(room) = crossed {
                        congested.insert(room, true);
                    }
                }
            }
        }
        // No complete frame left. If the peer is gone, so is the member.
        let c = &self.clients[&id];
        if c.read_closed {
            let why = if c.decoder.buffered() > 0 {
                "connection closed mid-frame"
            } else {
                "connection closed"
            };
            self.doom(id, why.to_string());
        }
    }

    /// The first frame. Returns the room if the join notice backed it up.
    fn on_handshake(&mut self, id: ConnId, payload: &[u8]) -> Option<RoomId> {
        let hs = match wire::parse_handshake(payload) {
            Ok(hs) => hs,
            Err(e) => {
                self.close_with_error(id, ErrorCode::BadRequest, &e.reason, e.room.as_deref());
                return None;
            }
        };
        let peer = self.clients[&id].peer;
        let joined_at = timefmt::rfc3339(timefmt::unix_now());
        match self
            .hub
            .join(id, &hs.username, &hs.room, &peer.to_string(), &joined_at)
        {
            Ok(delivery) => {
                self.clients.get_mut(&id).expect("joining").phase = Phase::Member;
                self.stats.joins += 1;
                self.log.info(format!(
                    "join: '{}' entered room '{}' from {peer}",
                    hs.username, hs.room
                ));
                let crossed = self.deliver(&delivery);
                crossed.then(|| self.hub.room_of(id)).flatten()
            }
            Err(refusal) => {
                self.stats.refusals += 1;
                self.log.warn(format!(
                    "refused {} to '{}' from {peer}: {}",
                    refusal.code.as_str(),
                    hs.username,
                    refusal.reason
                ));
                self.begin_close(id, Some(&refusal.event.encode()));
                None
            }
        }
    }

    /// A chat message from a member. Returns the room if it backed it up.
    fn on_message(&mut self, id: ConnId, payload: &[u8]) -> Option<RoomId> {
        let text = match wire::validate_message(payload) {
            Ok(t) => t,
            Err(reason) => {
                // The stream is still in sync: reject this message only.
                let line = Event::error(ErrorCode::BadRequest, None, reason).encode();
                self.queue_to(id, &line);
                self.log.warn(format!(
                    "rejected message from {}: {reason}",
                    self.describe(id)
                ));
                return None;
            }
        };
        let delivery = self.hub.say(id, text)?;
        self.stats.messages_relayed += 1;
        if self.cfg.log_messages {
            self.log
                .info(format!("message from {}: {text}", self.describe(id)));
        }
        let crossed = self.deliver(&delivery);
        crossed.then(|| self.hub.room_of(id)).flatten()
    }

    /// Sends an error event to the connection, then closes it; a member
    /// leaves its room first.
    fn close_with_error(&mut self, id: ConnId, code: ErrorCode, reason: &str, room: Option<&str>) {
        self.stats.refusals += 1;
        self.log.warn(format!(
            "error {} to {}: {reason}; closing",
            code.as_str(),
            self.describe(id)
        ));
        let line = Event::error(code, room, reason).encode();
        self.leave_room(id, "closed after a protocol error");
        self.begin_close(id, Some(&line));
    }

    // -- delivery -----------------------------------------------------------

    /// Appends one encoded line to each recipient's queue. A recipient whose
    /// queue would exceed `--sendq` is dropped instead (after the delivery).
    /// Returns whether some recipient is now above the high-water mark.
    pub(super) fn deliver(&mut self, d: &Delivery) -> bool {
        let mut crossed = false;
        // Encoded once, whatever the number of recipients.
        let line = d.event.encode();
        for &to in &d.to {
            if self.queue_to(to, &line) {
                crossed = true;
            }
        }
        self.stats.deliveries += d.to.len() as u64;
        crossed
    }

    /// Queues a line for one connection, enforcing `--sendq`. Returns whether
    /// its queue is above the high-water mark afterwards.
    pub(super) fn queue_to(&mut self, id: ConnId, line: &[u8]) -> bool {
        let Some(c) = self.clients.get_mut(&id) else {
            return false;
        };
        if c.pending() + line.len() > self.cfg.sendq {
            let why = format!(
                "slow consumer: output queue would exceed --sendq {} bytes",
                self.cfg.sendq
            );
            self.doom(id, why);
            return false;
        }
        c.queue(line);
        c.pending() > self.hwm
    }

    fn doom(&mut self, id: ConnId, why: String) {
        if !self.doomed.iter().any(|(d, _)| *d == id) {
            self.doomed.push((id, why));
        }
    }

    /// Closes the connections marked during a delivery; their rooms get
    /// `leave` (which may mark more).
    pub(super) fn drop_doomed(&mut self) {
        while let Some((id, why)) = self.doomed.pop() {
            if why.starts_with("slow consumer") {
                self.stats.slow_consumer_drops += 1;
                self.log
                    .warn(format!("dropping {}: {why}", self.describe(id)));
            }
            self.leave_room(id, &why);
            self.clients.remove(&id);
        }
    }

    /// Takes a member out of its room, telling the others; logs the leave.
    fn leave_room(&mut self, id: ConnId, why: &str) {
        if let Some(dep) = self.hub.leave(id) {
            let addr = &dep.member.address;
            self.log.info(format!(
                "leave: '{}' left room '{}' ({addr}): {why}",
                dep.member.username, dep.room
            ));
            self.deliver(&dep.notice);
        } else if let Some(c) = self.clients.get(&id)
            && matches!(c.phase, Phase::Handshake { .. })
        {
            self.log.info(format!(
                "client {} gone before its handshake: {why}",
                c.peer
            ));
        }
    }

    /// Queues a last line (if any) and moves the connection to closing.
    pub(super) fn begin_close(&mut self, id: ConnId, line: Option<&[u8]>) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(line) = line {
            // A last notice is worth going past the sendq by one line.
            c.queue(line);
        }
        c.phase = Phase::Closing {
            deadline: Instant::now() + CLOSE_LINGER,
        };
    }

    /// "'Yan' in 'Teste' (127.0.0.1:50312)" or "client 127.0.0.1:50312",
    /// for logs.
    pub(super) fn describe(&self, id: ConnId) -> String {
        let peer = self
            .clients
            .get(&id)
            .map_or_else(|| "?".to_string(), |c| c.peer.to_string());
        match self.hub.member(id) {
            Some((room, m)) => format!("'{}' in '{room}' ({peer})", m.username),
            None => format!("client {peer}"),
        }
    }

    // -- writing and closing ------------------------------------------------

    /// One write per connection that has output and was not blocked.
    fn flush_clients(&mut self) {
        let now = Instant::now();
        let mut failed = Vec::new();
        for c in self.clients.values_mut() {
            if c.pending() > 0 && !c.write_blocked {
                let before = c.pending();
                match c.write_once() {
                    Ok(n) => {
                        self.stats.bytes_out += n as u64;
                        if n < before {
                            c.write_blocked = true;
                        }
                    }
                    Err(e) => failed.push((c.id, format!("write error: {e}"))),
                }
            }
            c.stall.update(now, c.pending() > self.hwm);
        }
        for (id, why) in failed {
            self.doom(id, why);
        }
        self.drop_doomed();
    }

    /// Closes connections whose closing is complete: output flushed, FIN
    /// sent, and the peer gone or every byte acknowledged.
    fn reap_clients(&mut self) {
        let mut done = Vec::new();
        for c in self.clients.values_mut() {
            if matches!(c.phase, Phase::Closing { .. }) && c.pending() == 0 {
                c.shutdown_write();
                if c.read_closed || c.unacknowledged() == 0 {
                    done.push(c.id);
                }
            }
        }
        for id in done {
            self.clients.remove(&id);
        }
    }

    /// Handshake timeouts, closing deadlines and slow consumers.
    fn expire_timers(&mut self, now: Instant) {
        let mut late_handshakes = Vec::new();
        let mut finished = Vec::new();
        let mut slow = Vec::new();
        for c in self.clients.values() {
            match c.phase {
                Phase::Handshake { deadline } if now >= deadline => late_handshakes.push(c.id),
                Phase::Closing { deadline, .. } if now >= deadline => finished.push(c.id),
                Phase::Member if c.stall.debt_at(now) >= self.cfg.write_timeout => slow.push(c.id),
                _ => {}
            }
        }
        for id in slow {
            let why = format!(
                "slow consumer: output above {} bytes for {} s in all, its stall budget (--write-timeout)",
                self.hwm,
                self.cfg.write_timeout.as_secs_f64()
            );
            self.doom(id, why);
        }
        for id in finished {
            // The linger ran out: count who loses output when shutting down.
            if let Some(c) = self.clients.remove(&id)
                && self.shutdown_deadline.is_some()
                && c.unflushed()
            {
                self.cut_off += 1;
            }
        }
        let reason = format!(
            "no complete handshake within {} s",
            self.cfg.handshake_timeout.as_secs_f64()
        );
        for id in late_handshakes {
            self.close_with_error(id, ErrorCode::Timeout, &reason, None);
        }
        self.drop_doomed();
    }
}

/// What one select(2) call reported, as bitmaps indexed by descriptor: an
/// O(1) test per connection (a list search would make each pass quadratic
/// in the number of clients).
struct Ready {
    read: [u64; FD_SETSIZE / 64],
    write: [u64; FD_SETSIZE / 64],
}

impl Ready {
    fn new(readable: &[RawFd], writable: &[RawFd]) -> Ready {
        let mut r = Ready {
            read: [0; FD_SETSIZE / 64],
            write: [0; FD_SETSIZE / 64],
        };
        for &fd in readable {
            r.read[fd as usize / 64] |= 1 << (fd as usize % 64);
        }
        for &fd in writable {
            r.write[fd as usize / 64] |= 1 << (fd as usize % 64);
        }
        r
    }

    fn readable(&self, fd: RawFd) -> bool {
        (fd as usize) < FD_SETSIZE && self.read[fd as usize / 64] & (1 << (fd as usize % 64)) != 0
    }

    fn writable(&self, fd: RawFd) -> bool {
        (fd as usize) < FD_SETSIZE && self.write[fd as usize / 64] & (1 << (fd as usize % 64)) != 0
    }
}

pub(super) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == Errno::EMFILE as i32 || code == Errno::ENFILE as i32)
}

/// Borrows a raw descriptor for an FdSet.
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: every descriptor passed here belongs to an object the Server
    // owns and does not close between building the sets and reading them
    // back; the sets never outlive one pass of the loop.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn fd_set<'a>(fds: &[RawFd]) -> FdSet<'a> {
    let mut set = FdSet::new();
    for &fd in fds {
        debug_assert!((fd as usize) < FD_SETSIZE);
        set.insert(borrow(fd));
    }
    set
}
