//! The one event loop. `Server` owns the parts (chat/, control/,
//! cluster/, the door and host, the signal self-pipe, the log sink),
//! waits in the [`Poller`], hands each part what happened with the
//! pass's [`Shared`] (hub, log, clock), and carries out what the parts
//! return: control's `Effect`s, chat's and cluster's outboxes
//! (`exchange`, until both are quiet). Nothing else in chatd waits.
//!
//! Each pass: timers due → settled (poller interest, timers, room
//! back-pressure) → wait → signals, accepts, one read per readable
//! connection → frames of rooms that flow → log followers → one write per
//! connection with output → control writes → the link's write.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::accounts::Accounts;
use super::chat::{Chat, ChatOut};
use super::cluster::{Cluster, ClusterOut, Here};
use super::config::Config;
use super::control::{Accepted, Control, Effect, Facts, moderate};
use super::door::{self, Door, FIRST_LISTENER};
use super::host::{Counts, Host, Notifier};
use super::logbook::Logbook;
use super::net::ControlSocket;
use super::oidc::Oidc;
use super::poller::{Interest, Poller, Ready, Token};
use super::reload;
use super::shared::{Shared, session_limits};
use super::store::Store;
use super::tls::TlsSetup;
use crate::core::control::StatusView;
use crate::core::hub::{ConnId, Hub, RoomId};
use crate::core::wire::{self, Event, EventKind};
use crate::sys::selfpipe::SelfPipe;

/// How long, after SIGINT/SIGTERM, clients get to receive `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Tokens of the descriptors that are not connections (connection ids count
/// up from 1 and never get near these).
const SIGNALS: Token = u64::MAX;
const CONTROL_LISTENER: Token = u64::MAX - 1;
const LOG_SINK: Token = u64::MAX - 2;
const CLUSTER: Token = u64::MAX - 3;

/// What start-up opened for the loop: sockets, the signal pipe, the state
/// store and the systemd notifier.
pub struct Bound {
    /// select(2) or epoll(7).
    pub poller: Box<dyn Poller>,
    /// Chat listeners, each with whether it speaks TLS.
    pub listeners: Vec<(TcpListener, door::Entry)>,
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
    /// Cluster mode: the link to Redis and this node's side of it.
    pub cluster: Option<Cluster>,
    /// The history file.
    pub history: Option<super::history::History>,
}

pub struct Server {
    /// What every part may use: config, hub, log, poller, door, accounts,
    /// counters, the pass's clock.
    sh: Shared,
    /// The chat connections and their delivery (chat/).
    chat: Chat,
    /// The control socket, its connections and commands (control/).
    control: Control,
    signals: SelfPipe,
    store: Store,
    host: Host,
    /// The --max-clients chatd started with: the descriptors it reserved,
    /// so the most a reload may raise it to.
    max_clients_ceiling: usize,
    started: Instant,
    /// Set once SIGINT/SIGTERM arrived: the moment chatd exits at the latest.
    shutdown_deadline: Option<Instant>,
    /// The descriptors other than chat connections registered last pass.
    registered: Vec<(RawFd, Token)>,
    /// Cluster mode (cluster/).
    cluster: Option<Cluster>,
}

impl Server {
    pub fn new(cfg: Config, mut hub: Hub, log: Logbook, bound: Bound) -> Server {
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
            history,
        } = bound;
        if cluster.is_some() {
            hub.set_node(&cfg.node_id);
        }
        poller.set(signals.fd().as_raw_fd(), SIGNALS, Interest::default());
        let now = Instant::now();
        Server {
            control: Control::new(control, control_cap, cfg.control_timeout),
            max_clients_ceiling: cfg.max_clients,
            chat: Chat::new(cluster.is_some()),
            sh: Shared {
                limits: session_limits(&cfg),
                cfg,
                hub,
                log,
                poller,
                door: Door::new(listeners),
                accounts,
                oidc,
                tls,
                counters: Default::default(),
                now,
                stamp: Default::default(),
                ids: Default::default(),
                history,
            },
            started: now,
            signals,
            store,
            host: Host::new(notifier, now),
            shutdown_deadline: None,
            registered: Vec::new(),
            cluster,
        }
    }

    /// Runs until SIGINT/SIGTERM and the shutdown that follows.
    pub fn run(&mut self) -> Result<(), String> {
        self.host.ready();
        self.sh.start_pass();
        // --history-age applies before anyone can join.
        self.sh.commit_history();
        self.host.tick(self.sh.now, self.counts());
        let mut ready = Vec::new();
        loop {
            self.sh.start_pass();
            let now = self.sh.now;
            self.sh.door.tick(now);
            self.chat.fire_timers(&mut self.sh);
            self.chat.resume_parked(&mut self.sh);
            self.exchange();
            if let Some(c) = &mut self.cluster {
                c.tick(&mut self.sh, &self.chat);
            }
            self.exchange();
            self.control.expire(&mut self.sh);
            // The watchdog ping (once a pass at most) and systemd's status.
            self.host.tick(now, self.counts());
            if let Some(deadline) = self.shutdown_deadline
                && (self.chat.is_empty() || now >= deadline)
            {
                let unflushed = self.chat.close_all();
                if let Some(c) = &mut self.cluster {
                    c.goodbye();
                }
                if let Some(h) = self.sh.history.take() {
                    let hub = &self.sh.hub;
                    if let Err(e) = h.close(|room| hub.history_len(room)) {
                        self.sh.log.error(format!("history: at exit: {e}"));
                    }
                }
                self.sh.log.info(format!(
                    "stopped ({unflushed} client(s) closed before their output was flushed)"
                ));
                return Ok(());
            }
            self.chat.settle(&mut self.sh);
            // Like redis's beforeSleep: what the sink takes now needs no wait.
            self.sh.log.flush_sink();
            self.register_the_rest();
            let timeout = self.wait_timeout(now);
            if timeout != Some(Duration::ZERO) {
                self.host.trim_heap(now, self.sh.counters.bytes_out);
            }
            ready.clear();
            self.sh
                .poller
                .wait(timeout, &mut ready)
                .map_err(|e| format!("select: {e}"))?;
            self.dispatch(&ready);
        }
    }

    /// Acts on one wait's results.
    fn dispatch(&mut self, ready: &[Ready]) {
        self.sh.start_pass();
        self.sh.counters.cluster_up = self.cluster.as_ref().map(Cluster::is_up);
        for r in ready {
            match r.token {
                SIGNALS => self.on_signals(),
                LOG_SINK => self.sh.log.sink_writable(),
                CONTROL_LISTENER => self.accept_controls(),
                CLUSTER => {
                    // What the chat part did first: a verdict must find
                    // a connection gone as gone.
                    self.exchange();
                    if let Some(c) = &mut self.cluster {
                        c.ready_io(&mut self.sh, &self.chat, r.readable);
                    }
                    self.exchange();
                }
                t if t >= FIRST_LISTENER => self.accept_clients((t - FIRST_LISTENER) as usize),
                id => {
                    if self.chat.ready(&mut self.sh, id, r.readable, r.writable) {
                        continue;
                    }
                    if self.control.has(id) {
                        self.control.read(&self.sh, id);
                        self.serve_control(id);
                    }
                }
            }
        }
        self.chat.process_runnable(&mut self.sh);
        self.run_member_requests();
        self.save_moderation();
        self.chat.drain_inboxes(&mut self.sh);
        self.exchange();
        self.control.forward_logs(&mut self.sh);
        // What this pass kept goes to the history file before any of it
        // goes to a client.
        self.sh.commit_history();
        if self.chat.flush(&mut self.sh) {
            self.host.wrote(self.sh.now);
        }
        // The database's commit, when due: after the writes (what they
        // carry is in the journal), so no one's delivery waits for it.
        self.sh.commit_history_if_due();
        for id in self.control.flush() {
            self.serve_control(id);
            self.control.reap(id);
        }
        self.exchange();
        if let Some(c) = &mut self.cluster {
            c.flush(&mut self.sh, &self.chat);
        }
        self.exchange();
    }

    /// What moderation changed outside a request (an IRC operator's
    /// TOPIC, `+m`, `+b`; and, once a second, rules that lapsed) saved
    /// and shared.
    fn save_moderation(&mut self) {
        let rooms = self.chat.take_changed_rooms();
        let prune = self.control.prune_due(self.sh.now);
        let effects = moderate::save_changes(&mut self.sh, &self.store, rooms, prune);
        self.apply_effects(effects);
    }

    /// Chat and cluster mode hear what the other did (messages said,
    /// members left, holds, joins to decide; deliveries, closes and
    /// verdicts), until both are quiet.
    fn exchange(&mut self) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        loop {
            for o in cluster.take_out() {
                apply_cluster_out(&mut self.chat, &mut self.sh, o);
            }
            let out = self.chat.take_out();
            if out.is_empty() {
                return;
            }
            for o in out {
                match o {
                    ChatOut::Said(event) => cluster.publish(&self.sh, &event),
                    ChatOut::Left(dep, why) => cluster.left(&self.sh, &self.chat, &dep, &why),
                    ChatOut::Hold(room, on) => cluster.hold(&self.sh, room, on),
                    ChatOut::Join(req) => cluster.join(&mut self.sh, req),
                    ChatOut::ClaimNick { id, nick, old } => {
                        cluster.claim_nick(id, &nick, old.as_deref())
                    }
                    ChatOut::FreeNick(nick) => cluster.free_nick(&nick),
                    ChatOut::Direct(from, msg) => cluster.direct(from, msg),
                    ChatOut::ListenDirect(name, on) => cluster.listen_direct(&name, on),
                }
                for o in cluster.take_out() {
                    apply_cluster_out(&mut self.chat, &mut self.sh, o);
                }
            }
        }
    }

    // -- control connections --------------------------------------------------

    fn accept_controls(&mut self) {
        if self.control.accept(&mut self.sh) == Accepted::OutOfDescriptors {
            self.on_fd_exhaustion(None);
        }
    }

    /// Answers a control connection's requests, one at a time, while its
    /// output allows; carries out what each command needs done to chat
    /// and the cluster.
    fn serve_control(&mut self, id: u64) {
        while let Some(request) = self.control.next_request(id) {
            // What `stats` and `status` report, as of this request.
            let uptime = self.sh.now.duration_since(self.started).as_secs();
            let facts = Facts {
                stats: self.sh.stats(uptime, self.chat.len()),
                status: self.status(uptime),
            };
            let cluster_down = self.cluster.as_ref().is_some_and(|c| !c.ready());
            let effects =
                self.control
                    .answer(&mut self.sh, &self.store, id, request, facts, cluster_down);
            self.apply_effects(effects);
        }
    }

    /// Room operators' commands from chat and IRC members, run as
    /// chatctl's are; each member is told what came of its own.
    fn run_member_requests(&mut self) {
        for (conn, req, actor) in self.chat.take_requests() {
            let down = self.cluster.as_ref().is_some_and(|c| !c.ready());
            let (outcome, effects) =
                super::control::run_for_member(&mut self.sh, &self.store, &req, &actor, down);
            self.chat.answer_command(&mut self.sh, conn, outcome);
            self.apply_effects(effects);
        }
    }

    /// What a command needs done to chat and the cluster.
    fn apply_effects(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Deliver(d) => self.chat.deliver(&mut self.sh, &d),
                Effect::Changed(change) => {
                    if let Some(c) = &mut self.cluster {
                        c.forward(&self.sh, &change);
                    }
                }
                Effect::Close { conn, event } => {
                    self.chat.finish(&mut self.sh, conn, Some(&event));
                }
                Effect::Topic(room, event) => self.chat.tell_topic(&mut self.sh, &room, &event),
                Effect::Enforce(room) => self.chat.enforce(&mut self.sh, room.as_deref()),
                Effect::Facts(room) => self.chat.tell_room_facts(&mut self.sh, &room),
                // Served by the control part itself.
                Effect::Follow { .. } => {}
            }
        }
    }

    fn status(&self, uptime_secs: u64) -> StatusView {
        let mut v = StatusView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs,
            control: self.control.path(),
            state_file: self.store.path().display().to_string(),
            clients: self.chat.len(),
            members: self.sh.hub.member_count(),
            rooms: self.sh.hub.room_count(),
            cluster: self.cluster.as_ref().map(Cluster::status),
            ..StatusView::default()
        };
        self.sh.door.fill_addresses(&mut v);
        v
    }

    // -- what the poller watches besides chat connections ---------------------

    /// Listeners, the control socket and its connections, the log sink:
    /// few, so set afresh each pass.
    fn register_the_rest(&mut self) {
        let paused = self.sh.door.paused();
        self.sh
            .door
            .register(self.sh.poller.as_mut(), self.shutdown_deadline.is_some());
        let signals = self.signals.fd().as_raw_fd();
        self.sh.poller.set(signals, SIGNALS, Interest::READ);
        for (fd, token) in self.registered.drain(..) {
            self.sh.poller.remove(fd, token);
        }
        self.control
            .register(&mut self.sh, CONTROL_LISTENER, paused, &mut self.registered);
        if let Some((fd, read, write)) = self.cluster.as_ref().and_then(Cluster::watch) {
            let interest = Interest { read, write };
            self.sh.poller.set(fd, CLUSTER, interest);
            self.registered.push((fd, CLUSTER));
        }
        if let Some(fd) = self.sh.log.sink_blocked_fd() {
            self.sh.poller.set(fd, LOG_SINK, Interest::WRITE);
            self.registered.push((fd, LOG_SINK));
        }
    }

    /// How long the wait may last: until the nearest deadline, or not at
    /// all when frames wait in a room that flows or output waits.
    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
        if self.chat.busy() {
            return Some(Duration::ZERO);
        }
        let bytes_out = self.sh.counters.bytes_out;
        [
            self.shutdown_deadline,
            self.chat.next_timer(),
            self.host.deadline(now, self.counts(), bytes_out),
            self.sh.door.deadline(),
            self.control.next_deadline(),
            self.cluster.as_ref().and_then(Cluster::deadline),
            self.sh.history.as_ref().and_then(|h| h.deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.saturating_duration_since(now))
    }

    /// What the host part reports to systemd.
    fn counts(&self) -> Counts {
        Counts {
            clients: self.chat.len(),
            rooms: self.sh.hub.room_count(),
        }
    }

    // -- signals and shutdown ---------------------------------------------------

    fn on_signals(&mut self) {
        let got = self.signals.take();
        if got.contains(&SIGHUP) {
            reload::apply(&mut self.sh, self.max_clients_ceiling);
            self.control.set_timeout(self.sh.cfg.control_timeout);
        }
        if got.contains(&SIGINT) || got.contains(&SIGTERM) {
            if self.shutdown_deadline.is_some() {
                self.sh
                    .log
                    .warn("second termination signal: exiting without waiting for clients");
                self.shutdown_deadline = Some(self.sh.now);
            } else {
                self.begin_shutdown();
            }
        }
    }

    /// Takes in the connections already waiting, stops listening, tells
    /// every client `shutdown`, and gives their output [`SHUTDOWN_GRACE`] to
    /// drain.
    fn begin_shutdown(&mut self) {
        // Connections in the backlog would be reset when the listeners
        // close; accepted, they are told why they are turned away.
        for i in 0..self.sh.door.listener_count() {
            self.accept_clients(i);
        }
        let deadline = self.sh.now + SHUTDOWN_GRACE;
        self.shutdown_deadline = Some(deadline);
        self.host.stopping();
        self.sh.log.info(format!(
            "shutting down: telling {} client(s)",
            self.chat.len()
        ));
        self.sh.door.close(self.sh.poller.as_mut());
        self.control.close(&mut self.sh, CONTROL_LISTENER);
        let event = Event::system(EventKind::Shutdown, wire::SHUTDOWN, None);
        self.chat.finish_all(&mut self.sh, &event);
    }

    // -- accepting ----------------------------------------------------------

    fn accept_clients(&mut self, index: usize) {
        if !self.chat.accept(&mut self.sh, index) {
            self.on_fd_exhaustion(Some(index));
        }
    }

    /// accept(2) said EMFILE/ENFILE on chat listener `index` (None: the
    /// control socket). The pending connection would keep the listener
    /// readable and the loop spinning, so: give up the spare descriptor,
    /// accept and refuse the connection, take the spare back. Without a
    /// spare, stop watching the listeners for a moment.
    fn on_fd_exhaustion(&mut self, index: Option<usize>) {
        let now = self.sh.now;
        let (warning, freed) = self.sh.door.out_of_descriptors(now);
        if let Some(w) = warning {
            self.sh.log.warn(w);
        }
        if freed {
            match index {
                Some(index) => Chat::refuse_one(&mut self.sh, index),
                None => self.control.turn_one_away(),
            }
            self.sh.door.spare_back(now);
        }
    }
}

/// Carries out one thing cluster mode needs of the chat part.
fn apply_cluster_out(chat: &mut Chat, sh: &mut Shared, o: ClusterOut) {
    match o {
        ClusterOut::Deliver(d) => chat.deliver(sh, &d),
        ClusterOut::FromElsewhere(d) => chat.deliver_from_elsewhere(sh, &d),
        ClusterOut::Finish(conn, event) => chat.finish(sh, conn, event.as_ref()),
        ClusterOut::VerdictGiven(id) => chat.verdict_given(id),
        ClusterOut::Joined {
            id,
            hs,
            username,
            login,
            delivery,
        } => chat.joined(sh, id, &hs, &username, login, &delivery),
        ClusterOut::Refused {
            id,
            username,
            code,
            reason,
            room,
        } => chat.refuse_join(sh, id, &username, code, &reason, &room),
        ClusterOut::HeldBy { room, node, until } => chat.held_by(sh, room, &node, until),
        ClusterOut::ExpireHolds => chat.expire_holds(sh),
        ClusterOut::NickVerdict { id, nick, verdict } => chat.nick_verdict(sh, id, &nick, verdict),
        ClusterOut::Direct(msg) => chat.direct_from_elsewhere(sh, &msg),
        ClusterOut::NoSuchNick { id, target } => chat.no_such_nick(sh, id, &target),
        ClusterOut::Enforce(room) => chat.enforce(sh, room.as_deref()),
        ClusterOut::Facts(room) => chat.tell_room_facts(sh, &room),
    }
}

/// What cluster mode may ask of the chat part (see [`Here`]).
impl Here for Chat {
    fn has(&self, id: ConnId) -> bool {
        Chat::has(self, id)
    }

    fn speaks_irc(&self, id: ConnId) -> bool {
        Chat::speaks_irc(self, id)
    }

    fn nick_claimed(&self, id: ConnId) -> bool {
        Chat::nick_claimed(self, id)
    }

    fn holding(&self) -> Vec<RoomId> {
        Chat::holding(self)
    }

    fn direct_names(&self) -> Vec<String> {
        Chat::direct_names(self)
    }
}
