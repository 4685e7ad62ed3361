//! The one event loop. It owns every descriptor (TCP listeners, chat
//! clients, the control socket and its clients, the signal self-pipe, the
//! log sink), waits in the [`Poller`], feeds what happened to the core
//! (each chat connection's [`Session`], the hub, the control commands) and
//! carries out what they decide. Nothing else in chatd waits.
//!
//! Each pass: timers due → what the pass changed is settled (poller
//! interest, timers, room back-pressure) → wait → signals, accepts, one
//! read per readable connection → frames of rooms that flow → log
//! followers → one write per connection with output → control writes.
//! The work lists (connections touched, with output, with frames) and the
//! timer heap mean a pass visits only the connections something happened
//! to, never every client.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::accounts::{Accounts, Verdict};
use super::chat::flow::{Arrival, Flow, FlowEvent};
use super::chat::inbox::{Inbox, Waiting};
use super::cluster::ClusterLink;
use super::commands::{self, Ctx, Effect};
use super::config::{Config, LoadFailure};
use super::conn::Conn;
use super::control_conn::{ControlConn, ControlConns, NO_DESCRIPTORS};
use super::door::{self, Door, FIRST_LISTENER, Knock};
use super::host::{Counts, Host, Notifier};
use super::logbook::{Level, Logbook, Sink};
use super::net::{self, ControlSocket};
use super::oidc::Oidc;
use super::poller::{Interest, Poller, Ready, Token};
use super::reload;
use super::store::Store;
use super::tls::TlsSetup;
use crate::core::access::{self, RoomEntry};
use crate::core::control::{FollowLine, Response, Stats, StatusView};
use crate::core::fair::AddressKey;
use crate::core::hub::{ConnId, Delivery, Hub, IdMap, RoomId};
use crate::core::session::{Action, DropReason, Input, Limits, Next, Phase, Session};
use crate::core::wire::{self, ErrorCode, Event, EventKind};
use crate::sys::nonblock::{interrupted, would_block};
use crate::sys::selfpipe::SelfPipe;
use crate::timefmt;

/// How long a closing connection may take to flush its last event and see
/// the peer's FIN before it is closed regardless.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long, after SIGINT/SIGTERM, clients get to receive `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The bounds every new session gets.
fn session_limits(cfg: &Config) -> Limits {
    Limits {
        max_frame: cfg.max_frame,
        handshake_timeout: cfg.handshake_timeout,
        sendq: cfg.sendq,
        hwm: high_water_mark(cfg.sendq),
        stall_budget: cfg.write_timeout,
        linger: CLOSE_LINGER,
    }
}

/// Above this much queued output a member is backed up: its room stops
/// being read. Low enough that buffers stay small (idle memory, cache) and
/// the kernel's socket buffer does the rest; never more than half the sendq.
pub fn high_water_mark(sendq: usize) -> usize {
    (sendq / 2).min(32 * 1024)
}

/// Bytes read from one connection per pass at most (fairness), and the size
/// of the shared read buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Tokens of the descriptors that are not connections (connection ids count
/// up from 1 and never get near these).
const SIGNALS: Token = u64::MAX;
const CONTROL_LISTENER: Token = u64::MAX - 1;
const LOG_SINK: Token = u64::MAX - 2;
const CLUSTER: Token = u64::MAX - 3;

// Cluster mode's side of the loop: a child module, so the same `Server`.
mod cluster_mode;
use cluster_mode::PendingJoin;

/// Why a doomed connection is dropped: a slow consumer is counted and
/// warned about; a failed connection only leaves.
#[derive(Debug)]
enum Closing {
    SlowConsumer(String),
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Counters {
    pub messages_relayed: u64,
    pub deliveries: u64,
    pub bytes_out: u64,
    pub slow_consumer_drops: u64,
    pub joins: u64,
    pub refusals: u64,
    /// Items read from Redis that failed the checks (cluster mode).
    pub cluster_dropped: u64,
    /// Held rooms whose inbox overflowed (cluster mode; see inbox.rs).
    pub inbox_overflows: u64,
}

/// Why a handshake is not admitted (yet): refused with a code and a
/// reason, or its password check waits for the next pass (one per pass).
#[derive(Debug)]
enum Refused {
    With(ErrorCode, String),
    Later,
}

/// What start-up opened for the loop: sockets, the signal pipe, the state
/// store and the systemd notifier.
pub struct Bound {
    /// select(2) or epoll(7).
    pub poller: Box<dyn Poller>,
    /// Chat listeners, each with whether it speaks TLS.
    pub listeners: Vec<(TcpListener, bool)>,
    /// The certificate and key for the TLS listeners.
    pub tls: Option<TlsSetup>,
    pub control: Option<ControlSocket>,
    pub signals: SelfPipe,
    pub store: Store,
    pub notifier: Notifier,
    /// The most control connections at once.
    pub control_cap: usize,
    /// The registered accounts.
    pub accounts: Accounts,
    /// Token verification, when an identity provider is configured.
    pub oidc: Option<Oidc>,
    /// The link to Redis in cluster mode.
    pub cluster: Option<ClusterLink>,
}

pub struct Server {
    cfg: Config,
    /// The --max-clients chatd started with: the descriptors it reserved,
    /// so the most a reload may raise it to.
    max_clients_ceiling: usize,
    limits: Limits,
    hub: Hub,
    accounts: Accounts,
    oidc: Option<Oidc>,
    clients: IdMap<Conn>,
    controls: ControlConns,
    log: Logbook,
    counters: Counters,
    started: Instant,
    door: Door,
    tls: Option<TlsSetup>,
    control: Option<ControlSocket>,
    signals: SelfPipe,
    poller: Box<dyn Poller>,
    store: Store,
    host: Host,
    next_id: u64,
    scratch: Vec<u8>,
    /// Set once SIGINT/SIGTERM arrived: the moment chatd exits at the latest.
    shutdown_deadline: Option<Instant>,
    /// Clients closed during shutdown with output they never received.
    cut_off: usize,
    /// The pass's time: read when a pass begins and again after the wait,
    /// and handed down; nothing else in the loop reads the clock.
    now: Instant,
    /// Events' `ts` (RFC 3339 UTC, to the second), as of the pass: the
    /// second it was formatted for, and the text.
    ts_cache: (u64, String),
    // -- the pass's work ----------------------------------------------------
    /// Connections something happened to, to settle before the next wait.
    touched: Vec<ConnId>,
    /// Connections with output to write this pass.
    writes: Vec<ConnId>,
    /// Connections with frames (or an end of input) to process.
    runnable: Vec<ConnId>,
    /// Connections to drop once the current delivery is done, and why.
    doomed: Vec<(ConnId, Closing)>,
    /// Session timers, earliest first; an entry whose time is no longer the
    /// connection's `scheduled` is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Per-room flow control: back-pressure counts, holds from other
    /// nodes, inboxes (see chat/flow.rs).
    flow: Flow,
    /// Handshakes whose password check waits for a later pass (one check
    /// runs per pass), first come first served; their frames wait too.
    parked: std::collections::VecDeque<(ConnId, Vec<u8>)>,
    /// The control connections registered with the poller last pass.
    control_registered: Vec<(RawFd, Token)>,
    // -- cluster mode (see cluster_mode.rs) ----------------------------------
    cluster: Option<ClusterLink>,
    /// Joins waiting for the cluster's verdict; their connections' frames
    /// wait too.
    pending_joins: IdMap<PendingJoin>,
    /// The link was in sync (a loss is news), and a failure has been
    /// logged since (retries are not).
    cluster_was_up: bool,
    cluster_failure_logged: bool,
}

impl Server {
    pub fn new(cfg: Config, hub: Hub, log: Logbook, bound: Bound) -> Server {
        let Bound {
            mut poller,
            listeners,
            tls,
            control,
            signals,
            store,
            notifier,
            control_cap,
            accounts,
            oidc,
            cluster,
        } = bound;
        let limits = session_limits(&cfg);
        let mut hub = hub;
        if cluster.is_some() {
            hub.set_node(&cfg.node_id);
        }
        poller.set(signals.fd().as_raw_fd(), SIGNALS, Interest::default());
        Server {
            controls: ControlConns::new(control_cap, cfg.control_timeout),
            max_clients_ceiling: cfg.max_clients,
            cfg,
            limits,
            hub,
            accounts,
            oidc,
            clients: IdMap::default(),
            log,
            counters: Counters::default(),
            started: Instant::now(),
            door: Door::new(listeners),
            tls,
            control,
            signals,
            poller,
            store,
            host: Host::new(notifier, Instant::now()),
            next_id: 1,
            scratch: vec![0; READ_CHUNK],
            shutdown_deadline: None,
            cut_off: 0,
            now: Instant::now(),
            ts_cache: (0, String::new()),
            touched: Vec::new(),
            writes: Vec::new(),
            runnable: Vec::new(),
            doomed: Vec::new(),
            timers: BinaryHeap::new(),
            flow: Flow::default(),
            control_registered: Vec::new(),
            parked: std::collections::VecDeque::new(),
            cluster,
            pending_joins: IdMap::default(),
            cluster_was_up: false,
            cluster_failure_logged: false,
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Runs until SIGINT/SIGTERM and the shutdown that follows.
    pub fn run(&mut self) -> Result<(), String> {
        self.host.ready();
        self.start_pass();
        self.host.tick(self.now, self.counts());
        let mut ready = Vec::new();
        loop {
            self.start_pass();
            let now = self.now;
            self.door.tick(now);
            self.fire_timers(now);
            self.resume_parked();
            self.cluster_tick(now);
            if let Some(warning) = self.controls.expire(now) {
                self.log.warn(warning);
            }
            // The watchdog ping (once a pass at most) and systemd's status.
            self.host.tick(now, self.counts());
            if let Some(deadline) = self.shutdown_deadline
                && (self.clients.is_empty() || now >= deadline)
            {
                let unflushed =
                    self.cut_off + self.clients.values().filter(|c| c.unflushed()).count();
                self.clients.clear();
                self.cluster_goodbye();
                self.log.info(format!(
                    "stopped ({unflushed} client(s) closed before their output was flushed)"
                ));
                return Ok(());
            }
            self.settle();
            // Like redis's beforeSleep: what the sink takes now needs no wait.
            self.log.flush_sink();
            self.register_the_rest(now);
            let timeout = self.wait_timeout(now);
            if timeout != Some(Duration::ZERO) {
                self.host.trim_heap(now, self.counters.bytes_out);
            }
            ready.clear();
            self.poller
                .wait(timeout, &mut ready)
                .map_err(|e| format!("select: {e}"))?;
            self.dispatch(&ready);
        }
    }

    /// Acts on one wait's results.
    fn dispatch(&mut self, ready: &[Ready]) {
        self.start_pass();
        let now = self.now;
        for r in ready {
            match r.token {
                SIGNALS => self.on_signals(),
                LOG_SINK => self.log.sink_writable(),
                CONTROL_LISTENER => self.accept_controls(),
                CLUSTER => self.cluster_ready(now, r.readable),
                t if t >= FIRST_LISTENER => self.accept_clients((t - FIRST_LISTENER) as usize),
                id if self.clients.contains_key(&id) => {
                    if r.writable {
                        if let Some(c) = self.clients.get_mut(&id) {
                            c.blocked = false;
                        }
                        self.feed(id, now, Input::Writable);
                    }
                    if r.readable {
                        self.read_client(id, now);
                    }
                }
                id => {
                    if let Some(c) = self.controls.get_mut(id) {
                        c.read_once(now);
                        self.serve_control(id);
                    }
                }
            }
        }
        self.process_runnable();
        self.drain_inboxes();
        self.forward_logs();
        self.flush_clients();
        self.flush_controls();
        self.cluster_flush();
    }

    // -- sessions: inputs, actions, settling ---------------------------------

    /// Reads the clock for the pass: `now`, and `ts_cache` when the
    /// second changed (formatted once a second).
    fn start_pass(&mut self) {
        self.now = Instant::now();
        let wall = timefmt::unix_now();
        if self.ts_cache.0 != wall || self.ts_cache.1.is_empty() {
            self.ts_cache = (wall, timefmt::rfc3339(wall));
        }
    }

    /// An event as bytes for one or more clients, stamped now.
    fn encode(&mut self, event: &Event) -> Vec<u8> {
        event.encode_at(&self.ts_cache.1)
    }

    /// Feeds one input to a connection's session and carries out the action.
    fn feed(&mut self, id: ConnId, now: Instant, input: Input) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let action = c.session.handle(now, input);
        self.touch(id);
        if let Some(a) = action {
            self.act(id, now, a);
        }
    }

    /// Carries out what a session decided.
    fn act(&mut self, id: ConnId, now: Instant, action: Action) {
        match action {
            Action::Drop(DropReason::Sendq) => {
                let why = format!(
                    "slow consumer: output queue would exceed --sendq {} bytes",
                    self.cfg.sendq
                );
                self.doom(id, Closing::SlowConsumer(why));
            }
            Action::Drop(DropReason::StallBudget) => {
                let why = format!(
                    "slow consumer: output above {} bytes for {} s in all, its stall budget (--write-timeout)",
                    self.limits.hwm,
                    self.cfg.write_timeout.as_secs_f64()
                );
                self.doom(id, Closing::SlowConsumer(why));
            }
            Action::HandshakeExpired => {
                let reason = format!(
                    "no complete handshake within {} s",
                    self.cfg.handshake_timeout.as_secs_f64()
                );
                if self.clients.get(&id).is_some_and(Conn::tls_handshaking) {
                    // No TLS yet, so no way to say 408: just close.
                    let peer = self.clients[&id].peer;
                    self.counters.refusals += 1;
                    self.log
                        .warn(format!("tls: client {peer}: {reason} (TLS); closing"));
                    self.remove_client(id);
                    return;
                }
                self.close_with_error(id, ErrorCode::Timeout, &reason, None);
            }
            Action::ShutdownWrite => {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.shutdown_write();
                }
            }
            Action::CheckAcknowledged => {
                if let Some(c) = self.clients.get(&id) {
                    let n = c.unacknowledged();
                    self.feed(id, now, Input::Unacknowledged(n));
                }
            }
            Action::Release => self.remove_client(id),
            Action::LingerExpired => {
                if self.shutdown_deadline.is_some()
                    && self.clients.get(&id).is_some_and(Conn::unflushed)
                {
                    self.cut_off += 1;
                }
                self.remove_client(id);
            }
        }
    }

    /// Marks a connection as changed in this pass. Its room's back-pressure
    /// is brought up to date at once (a delivery that backs a member up
    /// must stop its room's frames in the same pass); poller interest and
    /// timers wait for [`Server::settle`].
    fn touch(&mut self, id: ConnId) {
        self.account_backlog(id);
        if let Some(c) = self.clients.get_mut(&id)
            && !c.touched
        {
            c.touched = true;
            self.touched.push(id);
        }
    }

    /// Keeps `backlog` equal to the number of members above the mark per
    /// room; when a room starts or stops flowing, its members' read
    /// interest changes, and those with frames waiting can run.
    fn account_backlog(&mut self, id: ConnId) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        let want = if c.session.backlogged() && c.session.phase() == Phase::Member {
            self.hub.room_of(id)
        } else {
            None
        };
        let had = c.counted_in;
        if want == had {
            return;
        }
        self.clients.get_mut(&id).expect("checked").counted_in = want;
        let mut events = Vec::new();
        if let Some(room) = had {
            self.flow.caught_up(room, &mut events);
        }
        if let Some(room) = want {
            self.flow.backed_up(room, &mut events);
        }
        self.apply_flow(events);
    }

    /// Carries out what a change of flow needs: members touched (their
    /// read interest follows), holds published.
    fn apply_flow(&mut self, events: Vec<FlowEvent>) {
        for e in events {
            match e {
                FlowEvent::Stop(room) => self.room_flow_changed(room, false),
                FlowEvent::Resume(room) => self.room_flow_changed(room, true),
                FlowEvent::Hold(room, on) => self.cluster_hold(room, on),
            }
        }
    }

    /// What waits in the inboxes of rooms whose members caught up goes
    /// out, oldest first, until a member is backed up again.
    fn drain_inboxes(&mut self) {
        while let Some(room) = self.flow.next_to_drain() {
            let mut last = false;
            while let Some(w) = self.flow.take_waiting(room) {
                last = !self.flow.held_here(room);
                self.deliver_waiting(room, w);
            }
            if last {
                let mut events = Vec::new();
                self.flow.emptied(room, &mut events);
                self.apply_flow(events);
            }
        }
        self.drop_doomed();
    }

    /// A delivery that waited in an inbox, to those still in the room.
    fn deliver_waiting(&mut self, room: RoomId, w: Waiting) {
        let to: Vec<ConnId> =
            w.to.into_iter()
                .filter(|&m| self.hub.room_of(m) == Some(room))
                .collect();
        self.deliver_line(&to, &w.line);
    }

    fn room_flow_changed(&mut self, room: RoomId, flows: bool) {
        let members: Vec<ConnId> = self.hub.member_conns(room).collect();
        for m in members {
            let Some(c) = self.clients.get_mut(&m) else {
                continue;
            };
            if !c.touched {
                c.touched = true;
                self.touched.push(m);
            }
            if flows && (c.session.frame_ready() || c.has_buffered_input()) && !c.on_run_list {
                c.on_run_list = true;
                self.runnable.push(m);
            }
        }
    }

    fn room_flows(&self, id: ConnId) -> bool {
        self.hub
            .room_of(id)
            .is_none_or(|room| self.flow.flows(room))
    }

    /// Brings the touched connections' poller interest, timers and write
    /// list up to date.
    fn settle(&mut self) {
        while let Some(id) = self.touched.pop() {
            let flows = self.room_flows(id);
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            c.touched = false;
            let read = c.wants_read() && (c.session.phase() != Phase::Member || flows);
            let interest = Interest {
                read,
                write: c.wants_writable(),
            };
            if interest != c.interest {
                c.interest = interest;
                self.poller.set(c.fd(), id, interest);
            }
            let due = c.session.poll_timeout();
            if due != c.scheduled {
                c.scheduled = due;
                if let Some(t) = due {
                    self.timers.push(Reverse((t, id)));
                }
            }
            if c.wants_write() && !c.on_write_list {
                c.on_write_list = true;
                self.writes.push(id);
            }
        }
    }

    /// Feeds `Timeout` to every session whose timer is due.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            if c.scheduled != Some(t) {
                continue;
            }
            c.scheduled = None;
            self.feed(id, now, Input::Timeout);
        }
        self.drop_doomed();
    }

    fn remove_client(&mut self, id: ConnId) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        self.poller.remove(c.fd(), id);
        self.door.closed(Some(id), c.seat);
        let counted_in = c.counted_in;
        self.clients.remove(&id);
        if let Some(room) = counted_in {
            let mut events = Vec::new();
            self.flow.caught_up(room, &mut events);
            self.apply_flow(events);
        }
    }

    // -- reading and acting on input -----------------------------------------

    fn read_client(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let got = match c.read_once(&mut self.scratch) {
            Ok(got) => got,
            Err(e) => {
                let closing = c.session.is_closing();
                let action = c.session.handle(now, Input::ReadClosed);
                if !closing {
                    self.doom(id, Closing::Failed(format!("read error: {e}")));
                    self.drop_doomed();
                    return;
                }
                self.touch(id);
                if let Some(a) = action {
                    self.act(id, now, a);
                }
                return;
            }
        };
        if let Some(why) = got.tls_error {
            self.tls_failed(id, &why);
            return;
        }
        if got.plaintext > 0 {
            let action = c
                .session
                .handle(now, Input::Received(&self.scratch[..got.plaintext]));
            debug_assert!(action.is_none());
        }
        if got.closed {
            let action = c.session.handle(now, Input::ReadClosed);
            if let Some(a) = action {
                self.touch(id);
                self.act(id, now, a);
                return;
            }
        }
        self.touch(id);
        self.mark_runnable(id);
    }

    /// The TLS layer failed (garbage on the TLS port, a handshake the
    /// client broke off, a bad record): logged once, rustls's alert sent if
    /// the socket takes it, and the connection closed; a member leaves.
    fn tls_failed(&mut self, id: ConnId, why: &str) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        c.flush_tls_once();
        let peer = c.peer;
        if c.session.phase() == Phase::Member {
            self.doom(id, Closing::Failed(format!("tls: {why}")));
            self.drop_doomed();
        } else {
            self.counters.refusals += 1;
            self.client_log(
                peer.ip(),
                Level::Warn,
                format!("tls: client {peer}: {why}; closing"),
            );
            self.remove_client(id);
        }
    }

    fn mark_runnable(&mut self, id: ConnId) {
        if let Some(c) = self.clients.get_mut(&id)
            && (c.session.frame_ready() || c.has_buffered_input())
            && !c.on_run_list
        {
            c.on_run_list = true;
            self.runnable.push(id);
        }
    }

    /// Decodes and acts on the frames waiting in the runnable connections;
    /// a member whose room is backed up waits for it to flow again.
    fn process_runnable(&mut self) {
        while let Some(id) = self.runnable.pop() {
            if let Some(c) = self.clients.get_mut(&id) {
                c.on_run_list = false;
            }
            self.process_client(id);
            self.drop_doomed();
        }
    }

    fn process_client(&mut self, id: ConnId) {
        loop {
            let Some(c) = self.clients.get(&id) else {
                return;
            };
            if c.session.phase() == Phase::Member && !self.room_flows(id) {
                // Picked up again when the room flows (room_flow_changed).
                return;
            }
            if self.cluster.is_some() && self.pending_joins.contains_key(&id) {
                // Picked up again once the cluster has decided the join.
                return;
            }
            if c.parked {
                // Picked up again when its password check runs.
                return;
            }
            let c = self.clients.get_mut(&id).expect("checked");
            let next = c.session.poll_frame();
            self.touch(id);
            match next {
                Next::Nothing => {
                    // Decrypted input may still wait inside rustls.
                    let c = self.clients.get_mut(&id).expect("checked");
                    let n = c.pull_plaintext(&mut self.scratch);
                    if n == 0 {
                        return;
                    }
                    let now = self.now;
                    let action = c.session.handle(now, Input::Received(&self.scratch[..n]));
                    debug_assert!(action.is_none());
                }
                Next::Error(e) => {
                    self.close_with_error(id, e.code(), &e.reason(), None);
                    return;
                }
                Next::Gone { mid_frame } => {
                    let why = if mid_frame {
                        "connection closed mid-frame"
                    } else {
                        "connection closed"
                    };
                    self.doom(id, Closing::Failed(why.to_string()));
                    return;
                }
                Next::Frame(payload) => match self.clients[&id].session.phase() {
                    Phase::Handshake { .. } => self.on_handshake(id, &payload),
                    _ => self.on_message(id, &payload),
                },
            }
        }
    }

    /// The first frame.
    fn on_handshake(&mut self, id: ConnId, payload: &[u8]) {
        let hs = match wire::parse_hello(payload) {
            Ok(wire::Hello::Join(hs)) => hs,
            Ok(wire::Hello::ListRooms) => {
                let event = Event {
                    kind: EventKind::Rooms,
                    username: wire::SYSTEM_USER.to_string(),
                    rooms: Some(self.hub.public_rooms()),
                    ..Event::default()
                };
                let line = self.encode(&event);
                self.finish(id, Some(&line));
                return;
            }
            Err(e) => {
                self.close_with_error(id, ErrorCode::BadRequest, &e.reason, e.room.as_deref());
                return;
            }
        };
        let peer = self.clients[&id].peer;
        if let Err(why) = self.take_join(id) {
            self.refuse_join(
                id,
                hs.username.as_deref().unwrap_or("(by token)"),
                ErrorCode::Unavailable,
                &why,
                &hs.room,
            );
            return;
        }
        let (username, login) = match self.identify(&hs, peer) {
            Ok(who) => who,
            Err(Refused::Later) => {
                self.park(id, payload);
                return;
            }
            Err(Refused::With(code, why)) => {
                self.counters.refusals += 1;
                let claimed = hs.username.as_deref().unwrap_or("(by token)");
                self.client_log(
                    peer.ip(),
                    Level::Warn,
                    format!(
                        "login refused ({}) to '{claimed}' from {peer}: {why}",
                        code.as_str()
                    ),
                );
                let line = self.encode(&Event::error(code, Some(&hs.room), &why));
                self.finish(id, Some(&line));
                return;
            }
        };
        if let Err(refused) = self.admit_to_room(&hs, &username, !login.is_empty(), peer) {
            let why = match refused {
                Refused::Later => {
                    self.park(id, payload);
                    return;
                }
                Refused::With(_, why) => why,
            };
            self.counters.refusals += 1;
            self.log
                .warn(format!("refused 403 to '{username}' from {peer}: {why}"));
            let line = self.encode(&Event::error(ErrorCode::Forbidden, Some(&hs.room), &why));
            self.finish(id, Some(&line));
            return;
        }
        if self.cluster.is_some() {
            self.cluster_join(id, hs, username, login);
            return;
        }
        let joined_at = self.ts_cache.1.clone();
        match self
            .hub
            .join(id, &username, &hs.room, &peer.to_string(), &joined_at)
        {
            Ok(delivery) => self.joined(id, &hs, &username, login, &delivery),
            Err(refusal) => {
                self.refuse_join(id, &username, refusal.code, &refusal.reason, &hs.room)
            }
        }
    }

    /// One join of the connection's address's [`JOIN_RATE`] (exempt
    /// addresses have no such limit), or why not. A parked handshake that
    /// comes back has already paid.
    fn take_join(&mut self, id: ConnId) -> Result<(), String> {
        let Some(c) = self.clients.get_mut(&id) else {
            return Ok(());
        };
        if !c.seat.limited || c.join_paid {
            return Ok(());
        }
        c.join_paid = true;
        self.door.take_join(c.seat.key, self.now)
    }

    /// Keeps a handshake whose password check must wait for the next pass;
    /// the connection's later frames wait with it.
    fn park(&mut self, id: ConnId, payload: &[u8]) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.parked = true;
            self.parked.push_back((id, payload.to_vec()));
        }
    }

    /// A new pass: the parked handshakes are tried again, oldest first
    /// (the first gets this pass's check, the others park again), and
    /// those decided go on with their frames.
    fn resume_parked(&mut self) {
        self.accounts.begin_pass();
        let waiting = std::mem::take(&mut self.parked);
        for (id, payload) in waiting {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            c.parked = false;
            if !matches!(c.session.phase(), Phase::Handshake { .. }) {
                continue; // Timed out or closed meanwhile.
            }
            self.on_handshake(id, &payload);
            self.mark_runnable(id);
        }
        self.process_runnable();
    }

    /// A join the hub (and in cluster mode the shared state) admitted:
    /// the session becomes a member, the room hears of it, and the
    /// joiner gets what it asked for (history, members).
    fn joined(
        &mut self,
        id: ConnId,
        hs: &wire::Handshake,
        username: &str,
        login: &str,
        delivery: &Delivery,
    ) {
        let peer = self.clients[&id].peer;
        if let Some(c) = self.clients.get(&id) {
            self.door.joined(id, c.seat);
        }
        self.feed(id, self.now, Input::Joined);
        self.counters.joins += 1;
        let over = if self.clients[&id].is_tls() {
            " over TLS"
        } else {
            ""
        };
        self.client_log(
            peer.ip(),
            Level::Info,
            format!(
                "join: '{username}' entered room '{}' from {peer}{over}{login}",
                hs.room
            ),
        );
        if hs.history {
            self.replay_history(id, delivery.room);
        }
        self.deliver(delivery);
        if hs.members {
            self.send_members(id, &hs.room);
        }
    }

    /// A refused join: logged, the error event sent, the connection closed.
    fn refuse_join(
        &mut self,
        id: ConnId,
        username: &str,
        code: ErrorCode,
        reason: &str,
        room: &str,
    ) {
        self.counters.refusals += 1;
        self.id_log(
            id,
            Level::Warn,
            format!(
                "refused {} to '{username}' from {}: {reason}",
                code.as_str(),
                self.peer_text(id)
            ),
        );
        let line = self.encode(&Event::error(code, Some(room), reason));
        self.finish(id, Some(&line));
    }

    /// Who a handshake may join as, and how it logged in (for the log):
    /// an account's password, a token, or an unregistered name where
    /// allowed. Refusals carry the code (401, or 503 when too many logins
    /// wait to be checked) and a reason that never includes a credential.
    fn identify(
        &mut self,
        hs: &wire::Handshake,
        peer: SocketAddr,
    ) -> Result<(String, &'static str), Refused> {
        let now = self.now;
        let unauthorized = |why: String| Refused::With(ErrorCode::Unauthorized, why);
        let Some(token) = &hs.token else {
            let username = hs.username.clone().unwrap_or_default();
            return match self.accounts.check(
                now,
                &username,
                hs.password.as_deref(),
                peer.ip(),
                self.cfg.require_login,
            ) {
                Verdict::Allowed { registered: true } => Ok((username, " (logged in)")),
                Verdict::Allowed { registered: false } => Ok((username, "")),
                Verdict::Unauthorized(why) => Err(unauthorized(why)),
                Verdict::Busy => Err(Refused::With(
                    ErrorCode::Unavailable,
                    "too many logins to check right now; try again in a second".into(),
                )),
                Verdict::Later => Err(Refused::Later),
            };
        };
        if let Some(why) = self.accounts.blocked(now, peer.ip()) {
            return Err(unauthorized(why));
        }
        let Some(oidc) = &self.oidc else {
            return Err(unauthorized("this server accepts no tokens".into()));
        };
        let name = match oidc.verify(token) {
            Ok(name) => name,
            Err(why) => {
                self.accounts.record_failure(now, peer.ip());
                return Err(unauthorized(why));
            }
        };
        let owner = self.accounts.owner_of(&name);
        let name =
            access::token_login(&name, hs.username.as_deref(), owner).map_err(unauthorized)?;
        Ok((name, " (token)"))
    }

    /// A private room admits the logged-in users on its allow-list (by
    /// exact name), and whoever gives its key; everyone else gets 403 (a wrong key counts
    /// as a failed login for the address).
    fn admit_to_room(
        &mut self,
        hs: &wire::Handshake,
        username: &str,
        logged_in: bool,
        peer: SocketAddr,
    ) -> Result<(), Refused> {
        let forbidden = |why: String| Refused::With(ErrorCode::Forbidden, why);
        let entry = access::room_entry(
            &hs.room,
            self.hub.access(&hs.room),
            username,
            logged_in,
            hs.key.is_some(),
        );
        let hash = match entry {
            RoomEntry::Admitted => return Ok(()),
            RoomEntry::Forbidden(why) => return Err(forbidden(why)),
            RoomEntry::CheckKey { hash } => hash,
        };
        let given = hs.key.as_deref().unwrap_or_default();
        let no = || access::not_allowed(&hs.room);
        match self
            .accounts
            .check_secret(self.now, peer.ip(), given, &hash)
        {
            Verdict::Allowed { .. } => Ok(()),
            Verdict::Unauthorized(why) if why.starts_with("too many") => Err(forbidden(why)),
            Verdict::Busy => Err(forbidden(
                "too many logins to check right now; try again in a second".into(),
            )),
            Verdict::Later => Err(Refused::Later),
            Verdict::Unauthorized(_) => Err(forbidden(format!("{}: wrong room key", no()))),
        }
    }

    /// A chat message from a member.
    fn on_message(&mut self, id: ConnId, payload: &[u8]) {
        let text = match wire::validate_message(payload) {
            Ok(t) => t,
            Err(reason) => {
                // The stream is still in sync: reject this message only.
                let line = self.encode(&Event::error(ErrorCode::BadRequest, None, reason));
                self.feed(id, self.now, Input::Deliver(&line));
                self.id_log(
                    id,
                    Level::Warn,
                    format!("rejected message from {}: {reason}", self.describe(id)),
                );
                return;
            }
        };
        let Some(delivery) = self.hub.say(id, text) else {
            return;
        };
        self.hub.remember(&delivery, &self.ts_cache.1);
        self.counters.messages_relayed += 1;
        if self.cfg.log_messages {
            self.log
                .info(format!("message from {}: {text}", self.describe(id)));
        }
        self.deliver(&delivery);
        self.cluster_publish(&delivery.event);
    }

    /// A joiner that asked gets the room's kept messages, oldest first,
    /// before its join event: as many of the newest as fit in half its
    /// `--sendq`.
    fn replay_history(&mut self, id: ConnId, room: RoomId) {
        let budget = self.cfg.sendq / 2;
        let mut used = 0;
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for event in self.hub.history(room).rev() {
            let line = event.encode();
            used += line.len();
            if used > budget {
                break;
            }
            lines.push(line);
        }
        let now = self.now;
        for line in lines.iter().rev() {
            self.feed(id, now, Input::Deliver(line));
        }
    }

    /// A joiner that asked learns who is in the room (itself included).
    fn send_members(&mut self, id: ConnId, room: &str) {
        let Ok(members) = self.hub.participants(room) else {
            return;
        };
        let event = Event {
            kind: EventKind::Members,
            username: wire::SYSTEM_USER.to_string(),
            room: Some(room.to_string()),
            members: Some(members.iter().map(|m| m.username.clone()).collect()),
            ..Event::default()
        };
        let line = self.encode(&event);
        self.feed(id, self.now, Input::Deliver(&line));
    }

    /// Sends an error event to the connection, then closes it; a member
    /// leaves its room first.
    fn close_with_error(&mut self, id: ConnId, code: ErrorCode, reason: &str, room: Option<&str>) {
        self.counters.refusals += 1;
        self.id_log(
            id,
            Level::Warn,
            format!(
                "error {} to {}: {reason}; closing",
                code.as_str(),
                self.describe(id)
            ),
        );
        let line = self.encode(&Event::error(code, room, reason));
        self.leave_room(id, "closed after a protocol error");
        self.finish(id, Some(&line));
    }

    // -- delivery ---------------------------------------------------------------

    /// Appends one event, encoded once, to each recipient's output. A
    /// recipient whose output would exceed `--sendq` is dropped instead
    /// (after the delivery).
    fn deliver(&mut self, d: &Delivery) {
        let line = self.encode(&d.event);
        // Behind what waits in the room's inbox, if anything does.
        if let Some((to, line)) = self.flow.local(d.room, d.to.clone(), line) {
            self.deliver_line(&to, &line);
        }
    }

    /// Another node's delivery: while this node holds the room back it
    /// waits in the room's inbox, up to the bound; past that the other
    /// nodes have not stopped, and what waits goes out (and `--sendq`
    /// decides, as for a sender here).
    fn deliver_from_elsewhere(&mut self, d: &Delivery) {
        let line = self.encode(&d.event);
        let bound = Inbox::BOUND_PER_SENDQ * self.cfg.sendq;
        let mut events = Vec::new();
        match self
            .flow
            .remote(d.room, d.to.clone(), line, bound, &mut events)
        {
            Arrival::Deliver(to, line) => self.deliver_line(&to, &line),
            Arrival::Queued => {}
            Arrival::Overflow(all) => {
                self.counters.inbox_overflows += 1;
                if self.counters.inbox_overflows.is_power_of_two() {
                    self.log.warn(format!(
                        "cluster: room '{}' was held back, yet other nodes sent more than {bound} bytes; delivering anyway ({} time(s) so far)",
                        self.hub.room_name(d.room).unwrap_or("?"),
                        self.counters.inbox_overflows
                    ));
                }
                for w in all {
                    self.deliver_waiting(d.room, w);
                }
            }
        }
        self.apply_flow(events);
    }

    /// Appends one encoded line to each recipient's output.
    fn deliver_line(&mut self, recipients: &[ConnId], line: &[u8]) {
        let now = self.now;
        let mut delivered = 0;
        for &to in recipients {
            // The hot path (one per delivery): one lookup, and the room's
            // back-pressure accounting only when the member crossed the mark.
            // (In cluster mode, members on other nodes have no connection
            // here: their nodes deliver.)
            let Some(c) = self.clients.get_mut(&to) else {
                continue;
            };
            delivered += 1;
            let action = c.session.handle(now, Input::Deliver(line));
            let crossed = c.session.backlogged() != c.counted_in.is_some();
            if !c.touched {
                c.touched = true;
                self.touched.push(to);
            }
            if crossed {
                self.account_backlog(to);
            }
            if let Some(a) = action {
                self.act(to, now, a);
            }
        }
        self.counters.deliveries += delivered;
    }

    /// A last line (if any), then the connection closes.
    fn finish(&mut self, id: ConnId, line: Option<&[u8]>) {
        self.feed(id, self.now, Input::Finish(line));
    }

    /// Marks a connection to drop once the current delivery is done (the
    /// first reason given stands).
    fn doom(&mut self, id: ConnId, why: Closing) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if !c.doomed {
            c.doomed = true;
            self.doomed.push((id, why));
        }
    }

    /// Closes the connections marked during a delivery; their rooms get
    /// `leave` (which may mark more).
    fn drop_doomed(&mut self) {
        while let Some((id, closing)) = self.doomed.pop() {
            let why = match closing {
                Closing::SlowConsumer(why) => {
                    self.counters.slow_consumer_drops += 1;
                    self.log
                        .warn(format!("dropping {}: {why}", self.describe(id)));
                    why
                }
                Closing::Failed(why) => why,
            };
            self.leave_room(id, &why);
            self.remove_client(id);
        }
    }

    /// Takes a member out of its room, telling the others; logs the leave.
    fn leave_room(&mut self, id: ConnId, why: &str) {
        let was_counted = self.clients.get(&id).and_then(|c| c.counted_in);
        if let Some(dep) = self.hub.leave(id) {
            let addr = &dep.member.address;
            let line = format!(
                "leave: '{}' left room '{}' ({addr}): {why}",
                dep.member.username, dep.room
            );
            self.id_log(id, Level::Info, line);
            if was_counted.is_some() {
                self.account_backlog(id);
            }
            self.deliver(&dep.notice);
            self.cluster_left(&dep, why);
        } else if let Some(c) = self.clients.get(&id)
            && matches!(c.session.phase(), Phase::Handshake { .. })
        {
            let (ip, line) = (
                c.peer.ip(),
                format!("client {} gone before its handshake: {why}", c.peer),
            );
            self.client_log(ip, Level::Info, line);
        }
    }

    /// "'Yan' in 'Teste' (127.0.0.1:50312)" or "client 127.0.0.1:50312",
    /// for logs.
    /// Logs a line about one client from `ip` (limited per address,
    /// unless the address is exempt; see [`Logbook::client`]).
    fn client_log(&mut self, ip: std::net::IpAddr, level: Level, line: String) {
        let from = (!self.cfg.exempt.contains(ip)).then(|| AddressKey::of(ip));
        self.log.client(self.now, from, level, line);
    }

    /// The same for a connection by id, by the address key and exemption
    /// the door gave it (unlimited when it is gone).
    fn id_log(&mut self, id: ConnId, level: Level, line: String) {
        match self.clients.get(&id) {
            Some(c) => {
                let from = c.seat.limited.then_some(c.seat.key);
                self.log.client(self.now, from, level, line);
            }
            None => self.log.log(level, line),
        }
    }

    /// A connection's peer address as text, `?` when it is gone.
    fn peer_text(&self, id: ConnId) -> String {
        self.clients
            .get(&id)
            .map_or_else(|| "?".to_string(), |c| c.peer.to_string())
    }

    fn describe(&self, id: ConnId) -> String {
        let peer = self.peer_text(id);
        match self.hub.member(id) {
            Some((room, m)) => format!("'{}' in '{room}' ({peer})", m.username),
            None => format!("client {peer}"),
        }
    }

    // -- writing --------------------------------------------------------------

    /// One write per connection with output that the socket may take,
    /// including output this very pass produced.
    fn flush_clients(&mut self) {
        self.settle();
        let now = self.now;
        while let Some(id) = self.writes.pop() {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            c.on_write_list = false;
            if !c.wants_write() {
                continue;
            }
            match c.write_once() {
                Ok(sent) => {
                    self.counters.bytes_out += sent.written as u64;
                    if sent.written > 0 {
                        self.host.wrote(now);
                    }
                    if sent.blocked {
                        self.feed(id, now, Input::SendBlocked);
                    }
                    self.feed(id, now, Input::Sent(sent.taken));
                }
                Err(e) => {
                    if self.clients[&id].session.is_closing() {
                        self.remove_client(id);
                    } else {
                        self.doom(id, Closing::Failed(format!("write error: {e}")));
                    }
                }
            }
        }
        self.drop_doomed();
    }

    // -- control connections --------------------------------------------------

    fn accept_controls(&mut self) {
        loop {
            let now = self.now;
            if !self.controls.make_room(now) {
                return;
            }
            let Some(control) = &self.control else {
                return;
            };
            match control.listener.accept() {
                Ok((stream, _)) => {
                    if !self.poller.can_watch(stream.as_raw_fd()) {
                        self.log.warn(
                            "control: connection refused: no descriptor slot left for select(2)",
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_id();
                    let peer = net::peer_credentials(&stream);
                    self.controls
                        .insert(id, ControlConn::new(stream, peer, now));
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) if door::is_fd_exhaustion(&e) => {
                    self.on_fd_exhaustion(None);
                    return;
                }
                Err(e) => {
                    self.log.warn(format!("control: accept: {e}"));
                    return;
                }
            }
        }
    }

    /// Answers a control connection's requests, one at a time, while its
    /// output allows; carries out what each command needs done to chat.
    fn serve_control(&mut self, id: u64) {
        loop {
            let stats = self.stats();
            let status = self.status();
            let Some(c) = self.controls.get_mut(id) else {
                return;
            };
            let Some(request) = c.next_request() else {
                return;
            };
            let who = c.who();
            let (response, effects) = match request {
                Err(response) => (response, Vec::new()),
                Ok(req) if self.cluster_refuses(&req) => (
                    Response::error(
                        crate::core::control::ErrorCode::Failed,
                        "the cluster store (Redis) is unreachable: changes to rooms and accounts wait until it is back",
                    ),
                    Vec::new(),
                ),
                Ok(req) => {
                    let mut ctx = Ctx {
                        hub: &mut self.hub,
                        accounts: &mut self.accounts,
                        store: &self.store,
                        log: &mut self.log,
                        stats,
                        status,
                    };
                    commands::execute(&mut ctx, &req, &who)
                }
            };
            self.answer(id, &response, effects);
        }
    }

    fn answer(&mut self, id: u64, response: &Response, effects: Vec<Effect>) {
        if let Some(c) = self.controls.get_mut(id) {
            c.respond(response);
        }
        for effect in effects {
            match effect {
                Effect::Deliver(d) => self.deliver(&d),
                Effect::Changed(change) => self.cluster_forward(&change),
                Effect::Close { conn, event } => {
                    let line = self.encode(&event);
                    self.finish(conn, Some(&line));
                }
                Effect::Follow {
                    after,
                    since,
                    priority,
                } => {
                    if let Some(c) = self.controls.get_mut(id) {
                        c.follow(after, since, priority);
                    }
                }
            }
        }
        self.drop_doomed();
    }

    fn status(&self) -> StatusView {
        let addrs = |tls: bool| self.door.addresses(tls);
        StatusView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.now.duration_since(self.started).as_secs(),
            listen: addrs(false),
            tls_listen: addrs(true),
            control: self
                .control
                .as_ref()
                .map(|c| c.path.display().to_string())
                .unwrap_or_default(),
            state_file: self.store.path().display().to_string(),
            clients: self.clients.len(),
            members: self.hub.member_count(),
            rooms: self.hub.room_count(),
            cluster: self.cluster_status(),
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            uptime_secs: self.now.duration_since(self.started).as_secs(),
            clients: self.clients.len(),
            members: self.hub.member_count(),
            rooms: self.hub.room_count(),
            messages_relayed: self.counters.messages_relayed,
            deliveries: self.counters.deliveries,
            bytes_out: self.counters.bytes_out,
            slow_consumer_drops: self.counters.slow_consumer_drops,
            joins: self.counters.joins,
            refusals: self.counters.refusals,
            log_lines_suppressed: self.log.suppressed,
            cluster_dropped: self.counters.cluster_dropped,
            cluster_inbox_overflows: self.counters.inbox_overflows,
        }
    }

    /// Hands new log entries to `logs --follow` readers.
    fn forward_logs(&mut self) {
        loop {
            let entries = self.log.take_unsent();
            if entries.is_empty() {
                return;
            }
            let lines: Vec<(u64, FollowLine)> = entries
                .iter()
                .map(|e| (e.seq, FollowLine { log: e.view() }))
                .collect();
            let dropped = self.controls.stream_logs(&lines);
            for _ in 0..dropped {
                self.log.warn(format!(
                    "control: dropped a logs --follow reader more than {} bytes behind",
                    super::control_conn::FOLLOWER_MAX_BACKLOG
                ));
            }
        }
    }

    /// One write per control connection with output; answers requests that
    /// waited for the output to drain; closes the finished.
    fn flush_controls(&mut self) {
        let ids: Vec<u64> = self.controls.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Some(c) = self.controls.get_mut(id) else {
                continue;
            };
            if c.wants_write() && c.write_once().is_err() {
                self.controls.remove(id);
                continue;
            }
            self.serve_control(id);
            if self.controls.get(id).is_some_and(ControlConn::finished) {
                self.controls.remove(id);
            }
        }
    }

    // -- what the poller watches besides chat connections ---------------------

    /// Listeners, the control socket and its connections, the log sink:
    /// few, so set afresh each pass.
    fn register_the_rest(&mut self, now: Instant) {
        let paused = self.door.paused();
        self.door
            .register(self.poller.as_mut(), self.shutdown_deadline.is_some());
        if let Some(c) = &self.control {
            let interest = Interest {
                read: !paused && self.controls.accepting(now),
                write: false,
            };
            self.poller
                .set(c.listener.as_raw_fd(), CONTROL_LISTENER, interest);
        }
        self.poller.set(
            self.signals.fd().as_raw_fd(),
            SIGNALS,
            Interest {
                read: true,
                write: false,
            },
        );
        for (fd, token) in self.control_registered.drain(..) {
            self.poller.remove(fd, token);
        }
        for (id, c) in self.controls.iter() {
            let interest = Interest {
                read: c.wants_read(),
                write: c.wants_write(),
            };
            self.poller.set(c.fd(), id, interest);
            self.control_registered.push((c.fd(), id));
        }
        if let Some(link) = &self.cluster
            && let Some(fd) = link.fd()
        {
            let interest = Interest {
                read: link.connected(),
                write: link.wants_write(),
            };
            self.poller.set(fd, CLUSTER, interest);
            self.control_registered.push((fd, CLUSTER));
        }
        if let Some(fd) = self.log.sink_blocked_fd() {
            self.poller.set(
                fd,
                LOG_SINK,
                Interest {
                    read: false,
                    write: true,
                },
            );
            self.control_registered.push((fd, LOG_SINK));
        }
    }

    /// How long the wait may last: until the nearest deadline, or not at
    /// all when frames wait in a room that flows or output waits.
    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.runnable.is_empty()
            || !self.writes.is_empty()
            || !self.parked.is_empty()
            || self.flow.draining()
        {
            return Some(Duration::ZERO);
        }
        let mut next: Option<Instant> = self.shutdown_deadline;
        let mut earliest = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if let Some(Reverse((t, _))) = self.timers.peek() {
            earliest(*t);
        }
        if let Some(t) = self
            .host
            .deadline(now, self.counts(), self.counters.bytes_out)
        {
            earliest(t);
        }
        if let Some(t) = self.door.deadline() {
            earliest(t);
        }
        if let Some(t) = self.controls.next_deadline() {
            earliest(t);
        }
        if let Some(link) = &self.cluster {
            earliest(link.deadline());
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    /// What the host part reports to systemd.
    fn counts(&self) -> Counts {
        Counts {
            clients: self.clients.len(),
            rooms: self.hub.room_count(),
        }
    }

    // -- signals and shutdown ---------------------------------------------------

    fn on_signals(&mut self) {
        let got = self.signals.take();
        if got.contains(&SIGHUP) {
            self.reload();
        }
        if got.contains(&SIGINT) || got.contains(&SIGTERM) {
            if self.shutdown_deadline.is_some() {
                self.log
                    .warn("second termination signal: exiting without waiting for clients");
                self.shutdown_deadline = Some(self.now);
            } else {
                self.begin_shutdown();
            }
        }
    }

    /// SIGHUP (`systemctl reload chatd`): the flags and the configuration
    /// file are read again and what can change live changes (see
    /// [`reload`]); the TLS certificate and key and the OIDC key set are
    /// read again. On any error the running settings stay. Open sessions
    /// keep the limits they started with.
    fn reload(&mut self) {
        let new = Config::load(self.cfg.argv.clone())
            .map_err(|e| match e {
                LoadFailure::Usage(e) => e.render().to_string().trim().to_string(),
                LoadFailure::Config(m) | LoadFailure::Other(m) => m,
            })
            .and_then(|new| new.validate().map(|()| new));
        let new = match new {
            Ok(new) => new,
            Err(e) => {
                self.log
                    .error(format!("reload: {e}; the running configuration stays"));
                self.reload_files();
                return;
            }
        };
        let plan = reload::plan(&self.cfg, &new, self.max_clients_ceiling);
        let mut new = reload::running(&self.cfg, new, &plan);
        match &new.config_file {
            Some(p) => self
                .log
                .info(format!("reload: configuration read from {}", p.display())),
            None => self
                .log
                .info("reload: no configuration file; flags and defaults only"),
        }
        if plan.changes("log-target") {
            match Sink::open(new.log_target) {
                Ok(sink) => {
                    let lost = self.log.set_sink(sink);
                    if lost > 0 {
                        self.log.warn(format!(
                            "reload: {lost} bytes of log entries the previous log target had not taken were dropped (chatctl logs has them)"
                        ));
                    }
                }
                Err(e) => {
                    self.log
                        .error(format!("reload: {e}; logging stays on the previous target"));
                    new.log_target = self.cfg.log_target;
                }
            }
        }
        self.log.set_min_level(new.log_level);
        self.log.set_capacity(new.log_capacity);
        self.hub.set_history_budget(new.history_memory);
        self.limits = session_limits(&new);
        self.controls.set_timeout(new.control_timeout);
        let tls_paths = plan.changes("tls-cert") || plan.changes("tls-key");
        let oidc_settings = [
            "oidc-issuer",
            "oidc-audience",
            "oidc-jwks",
            "oidc-username-claim",
        ]
        .iter()
        .any(|k| plan.changes(k));
        for c in &plan.live {
            self.log
                .info(format!("reload: {} {} (in effect now)", c.key, c.detail));
        }
        for c in &plan.restart {
            self.log.warn(format!(
                "reload: {} {} needs a restart; running with the old value until then{}",
                c.key,
                c.detail,
                if c.key == "room" {
                    " (chatctl room create adds a room now)"
                } else {
                    ""
                }
            ));
        }
        if plan.is_empty() {
            self.log.info("reload: the configuration is unchanged");
        }
        if tls_paths {
            self.replace_tls(&mut new);
        }
        if oidc_settings {
            self.replace_oidc(&mut new);
        }
        self.cfg = new;
        // Whatever was replaced above was just read; the rest is read again.
        self.reload_files_except(tls_paths, oidc_settings);
    }

    /// New certificate and key paths: loaded now, or the old ones stay.
    fn replace_tls(&mut self, new: &mut Config) {
        let (Some(_), Some(cert), Some(key)) = (&self.tls, &new.tls_cert, &new.tls_key) else {
            return;
        };
        match TlsSetup::load(cert, key) {
            Ok(t) => {
                self.log.info(format!(
                    "tls: loaded certificate {} and key {}",
                    t.cert.display(),
                    t.key.display()
                ));
                self.tls = Some(t);
            }
            Err(e) => {
                self.log.error(format!(
                    "{e}; reload failed, the previous certificate and key stay in use"
                ));
                new.tls_cert = self.cfg.tls_cert.clone();
                new.tls_key = self.cfg.tls_key.clone();
            }
        }
    }

    /// New OIDC settings: the issuer, audience, key set and claim are
    /// replaced together, or none of them is.
    fn replace_oidc(&mut self, new: &mut Config) {
        let loaded = match (&new.oidc_issuer, &new.oidc_audience, &new.oidc_jwks) {
            (Some(iss), Some(aud), Some(jwks)) => {
                Oidc::load(iss, aud, jwks, &new.oidc_claim).map(Some)
            }
            _ => Ok(None),
        };
        match loaded {
            Ok(Some(o)) => {
                self.log.info(format!(
                    "oidc: tokens from {} for {} accepted ({} key(s) from {})",
                    o.issuer,
                    o.audience,
                    o.key_count(),
                    o.jwks_path.display()
                ));
                self.oidc = Some(o);
            }
            Ok(None) => {
                self.log.info("oidc: tokens are no longer accepted");
                self.oidc = None;
            }
            Err(e) => {
                self.log.error(format!(
                    "{e}; reload failed, the previous OIDC settings stay in use"
                ));
                new.oidc_issuer = self.cfg.oidc_issuer.clone();
                new.oidc_audience = self.cfg.oidc_audience.clone();
                new.oidc_jwks = self.cfg.oidc_jwks.clone();
                new.oidc_claim = self.cfg.oidc_claim.clone();
            }
        }
    }

    fn reload_files(&mut self) {
        self.reload_files_except(false, false);
    }

    /// Reads the TLS certificate and key and the OIDC key set again (the
    /// operator renewed them in place).
    fn reload_files_except(&mut self, skip_tls: bool, skip_oidc: bool) {
        if let Some(oidc) = self.oidc.as_mut().filter(|_| !skip_oidc) {
            match oidc.reload() {
                Ok(n) => self.log.info(format!(
                    "oidc: reloaded {n} key(s) from {}",
                    oidc.jwks_path.display()
                )),
                Err(e) => self
                    .log
                    .error(format!("{e}; reload failed, the previous keys stay in use")),
            }
        }
        if let Some(tls) = self.tls.as_mut().filter(|_| !skip_tls) {
            match tls.reload() {
                Ok(()) => self.log.info(format!(
                    "tls: reloaded certificate {} and key {}",
                    tls.cert.display(),
                    tls.key.display()
                )),
                Err(e) => self.log.error(format!(
                    "{e}; reload failed, the previous certificate and key stay in use"
                )),
            }
        }
    }

    /// Takes in the connections already waiting, stops listening, tells
    /// every client `shutdown`, and gives their output [`SHUTDOWN_GRACE`] to
    /// drain.
    fn begin_shutdown(&mut self) {
        // Connections in the backlog would be reset when the listeners
        // close; accepted, they are told why they are turned away.
        for i in 0..self.door.listener_count() {
            self.accept_clients(i);
        }
        let deadline = self.now + SHUTDOWN_GRACE;
        self.shutdown_deadline = Some(deadline);
        self.host.stopping();
        self.log.info(format!(
            "shutting down: telling {} client(s)",
            self.clients.len()
        ));
        self.door.close(self.poller.as_mut());
        if let Some(c) = self.control.take() {
            self.poller.remove(c.listener.as_raw_fd(), CONTROL_LISTENER);
        }
        // Followers get the entries so far, then the goodbye.
        self.forward_logs();
        self.controls.clear();
        let line = self.encode(&Event::system(EventKind::Shutdown, wire::SHUTDOWN, None));
        let ids: Vec<ConnId> = self.clients.keys().copied().collect();
        for id in ids {
            self.finish(id, Some(&line));
        }
    }

    // -- accepting ----------------------------------------------------------

    fn accept_clients(&mut self, index: usize) {
        loop {
            match self.door.knock(index) {
                Knock::Stream(stream, peer, tls) => self.admit(stream, peer, tls),
                Knock::Empty => return,
                Knock::OutOfDescriptors => {
                    self.on_fd_exhaustion(Some(index));
                    return;
                }
                Knock::Failed(e) => {
                    self.log.warn(format!("accept: {e}"));
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, tls: bool) {
        if !self.poller.can_watch(stream.as_raw_fd()) {
            self.refuse_at_door(stream, peer, tls, "no descriptor slot left for select(2)");
            return;
        }
        if self.clients.len() >= self.cfg.max_clients {
            let why = format!("--max-clients {} reached", self.cfg.max_clients);
            self.refuse_at_door(stream, peer, tls, &why);
            return;
        }
        let limits = self.cfg.door_limits();
        let seat = match self.door.seat(peer, &self.cfg.exempt, limits) {
            Ok(seat) => seat,
            Err(why) => return self.refuse_at_door(stream, peer, tls, &why),
        };
        if let Some(oldest) = self.door.oldest_handshake_if_full(limits) {
            self.evict_handshake(oldest);
        }
        if let Err(e) = stream.set_nonblocking(true) {
            self.log
                .warn(format!("client {peer}: set non-blocking: {e}"));
            self.door.closed(None, seat);
            return;
        }
        // Chat lines are small and latency matters more than segment count.
        let _ = stream.set_nodelay(true);
        if let Err(e) = net::set_liveness(&stream, self.cfg.tcp_keepalive) {
            self.client_log(
                peer.ip(),
                Level::Warn,
                format!("client {peer}: TCP keepalive: {e}"),
            );
        }
        let id = self.next_id();
        let session = Session::new(self.now, self.limits);
        let config = if tls {
            self.tls.as_ref().map(|t| &t.config)
        } else {
            None
        };
        match Conn::new(stream, peer, seat, session, config) {
            Ok(conn) => {
                self.clients.insert(id, conn);
                self.door.opened(id);
                self.touch(id);
            }
            Err(e) => {
                self.door.closed(None, seat);
                self.client_log(peer.ip(), Level::Warn, format!("tls: client {peer}: {e}"));
            }
        }
    }

    /// Unfinished handshakes fill their share of the seats: the oldest
    /// makes room for the new connection (see [`Door::oldest_handshake_if_full`]).
    /// Counted in one log line a second.
    fn evict_handshake(&mut self, oldest: ConnId) {
        self.counters.refusals += 1;
        let peer = self
            .clients
            .get(&oldest)
            .map_or_else(|| "?".into(), |c| c.peer.to_string());
        self.remove_client(oldest);
        let limits = self.cfg.door_limits();
        if let Some(line) = self.door.evicted(self.now, &peer, limits) {
            self.log.warn(line);
        }
    }

    /// Answers 503 with one best-effort write and closes at once; such a
    /// connection never enters the loop.
    fn refuse_at_door(&mut self, stream: TcpStream, peer: SocketAddr, tls: bool, why: &str) {
        let line = self.encode(&Event::error(
            ErrorCode::Unavailable,
            None,
            &format!("server at capacity: {why}"),
        ));
        door::turn_away(stream, tls, &line);
        self.counters.refusals += 1;
        self.client_log(
            peer.ip(),
            Level::Warn,
            format!("refused 503 to {peer}: {why}"),
        );
    }

    /// accept(2) said EMFILE/ENFILE on chat listener `index` (None: the
    /// control socket). The pending connection would keep the listener
    /// readable and the loop spinning, so: give up the spare descriptor,
    /// accept and refuse the connection, take the spare back. Without a
    /// spare, stop watching the listeners for a moment.
    fn on_fd_exhaustion(&mut self, index: Option<usize>) {
        let now = self.now;
        let (warning, freed) = self.door.out_of_descriptors(now);
        if let Some(w) = warning {
            self.log.warn(w);
        }
        if !freed {
            return;
        }
        match index {
            Some(index) => {
                if let Knock::Stream(stream, peer, tls) = self.door.knock(index) {
                    self.refuse_at_door(stream, peer, tls, "out of file descriptors");
                }
            }
            None => {
                if let Some(c) = &self.control
                    && let Ok((stream, _)) = c.listener.accept()
                {
                    door::turn_away_control(stream, NO_DESCRIPTORS);
                }
            }
        }
        self.door.spare_back(now);
    }
}
