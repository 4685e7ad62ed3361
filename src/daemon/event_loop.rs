//! The one event loop. It owns every descriptor's part (the chat
//! connections in chat/, the control connections, the link to Redis, the
//! listeners at the door, the signal self-pipe, the log sink), waits in
//! the [`Poller`], hands each part what happened with the pass's
//! [`Shared`] (hub, log, clock), and carries out what the parts return.
//! Nothing else in chatd waits.
//!
//! Each pass: timers due → what the pass changed is settled (poller
//! interest, timers, room back-pressure) → wait → signals, accepts, one
//! read per readable connection → frames of rooms that flow → log
//! followers → one write per connection with output → control writes.
//! The chat part's outbox (what cluster mode must hear of) is emptied
//! before the wait and before the link's flush.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::accounts::Accounts;
use super::chat::{Chat, ChatOut};
use super::cluster::ClusterLink;
use super::commands::{self, Ctx, Effect};
use super::config::{Config, LoadFailure};
use super::control_conn::{ControlConn, ControlConns, NO_DESCRIPTORS};
use super::door::{self, Door, FIRST_LISTENER, Knock};
use super::host::{Counts, Host, Notifier};
use super::logbook::{Logbook, Sink};
use super::net::{self, ControlSocket};
use super::oidc::Oidc;
use super::poller::{Interest, Poller, Ready, Token};
use super::reload;
use super::shared::{Shared, session_limits};
use super::store::Store;
use super::tls::TlsSetup;
use crate::core::control::{FollowLine, Response, Stats, StatusView};
use crate::core::hub::{Hub, IdMap};
use crate::core::wire::{self, Event, EventKind};
use crate::sys::nonblock::{interrupted, would_block};
use crate::sys::selfpipe::SelfPipe;

/// How long, after SIGINT/SIGTERM, clients get to receive `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Tokens of the descriptors that are not connections (connection ids count
/// up from 1 and never get near these).
const SIGNALS: Token = u64::MAX;
const CONTROL_LISTENER: Token = u64::MAX - 1;
const LOG_SINK: Token = u64::MAX - 2;
const CLUSTER: Token = u64::MAX - 3;

// Cluster mode's side of the loop: a child module, so the same `Server`.
mod cluster_mode;
use cluster_mode::PendingJoin;

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
    /// What every part may use: config, hub, log, poller, door, accounts,
    /// counters, the pass's clock.
    sh: Shared,
    /// The chat connections and their delivery (chat/).
    chat: Chat,
    /// The control connections.
    controls: ControlConns,
    control: Option<ControlSocket>,
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
        let mut hub = hub;
        if cluster.is_some() {
            hub.set_node(&cfg.node_id);
        }
        poller.set(signals.fd().as_raw_fd(), SIGNALS, Interest::default());
        let now = Instant::now();
        Server {
            controls: ControlConns::new(control_cap, cfg.control_timeout),
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
            },
            started: now,
            control,
            signals,
            store,
            host: Host::new(notifier, now),
            shutdown_deadline: None,
            registered: Vec::new(),
            cluster,
            pending_joins: IdMap::default(),
            cluster_was_up: false,
            cluster_failure_logged: false,
        }
    }

    /// Runs until SIGINT/SIGTERM and the shutdown that follows.
    pub fn run(&mut self) -> Result<(), String> {
        self.host.ready();
        self.sh.start_pass();
        self.host.tick(self.sh.now, self.counts());
        let mut ready = Vec::new();
        loop {
            self.sh.start_pass();
            let now = self.sh.now;
            self.sh.door.tick(now);
            self.chat.fire_timers(&mut self.sh);
            self.chat.resume_parked(&mut self.sh);
            self.cluster_tick(now);
            self.chat_out();
            if let Some(warning) = self.controls.expire(now) {
                self.sh.log.warn(warning);
            }
            // The watchdog ping (once a pass at most) and systemd's status.
            self.host.tick(now, self.counts());
            if let Some(deadline) = self.shutdown_deadline
                && (self.chat.is_empty() || now >= deadline)
            {
                let unflushed = self.chat.close_all();
                self.cluster_goodbye();
                self.sh.log.info(format!(
                    "stopped ({unflushed} client(s) closed before their output was flushed)"
                ));
                return Ok(());
            }
            self.chat.settle(&mut self.sh);
            // Like redis's beforeSleep: what the sink takes now needs no wait.
            self.sh.log.flush_sink();
            self.register_the_rest(now);
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
        let now = self.sh.now;
        for r in ready {
            match r.token {
                SIGNALS => self.on_signals(),
                LOG_SINK => self.sh.log.sink_writable(),
                CONTROL_LISTENER => self.accept_controls(),
                CLUSTER => self.cluster_ready(now, r.readable),
                t if t >= FIRST_LISTENER => self.accept_clients((t - FIRST_LISTENER) as usize),
                id => {
                    if self.chat.ready(&mut self.sh, id, r.readable, r.writable) {
                        continue;
                    }
                    if let Some(c) = self.controls.get_mut(id) {
                        c.read_once(now);
                        self.serve_control(id);
                    }
                }
            }
        }
        self.chat.process_runnable(&mut self.sh);
        self.chat.drain_inboxes(&mut self.sh);
        self.chat_out();
        self.forward_logs();
        if self.chat.flush(&mut self.sh) {
            self.host.wrote(now);
        }
        self.flush_controls();
        self.chat_out();
        self.cluster_flush();
    }

    /// Cluster mode hears what the chat part did: messages said, members
    /// left, holds, joins to decide (which may make the chat part say
    /// more, so until it is quiet).
    fn chat_out(&mut self) {
        loop {
            let out = self.chat.take_out();
            if out.is_empty() {
                return;
            }
            for o in out {
                match o {
                    ChatOut::Said(event) => self.cluster_publish(&event),
                    ChatOut::Left(dep, why) => self.cluster_left(&dep, &why),
                    ChatOut::Hold(room, on) => self.cluster_hold(room, on),
                    ChatOut::Join {
                        id,
                        peer,
                        hs,
                        username,
                        login,
                    } => self.cluster_join(id, peer, hs, username, login),
                }
            }
        }
    }

    // -- control connections --------------------------------------------------

    fn accept_controls(&mut self) {
        loop {
            let now = self.sh.now;
            if !self.controls.make_room(now) {
                return;
            }
            let Some(control) = &self.control else {
                return;
            };
            match control.listener.accept() {
                Ok((stream, _)) => {
                    if !self.sh.poller.can_watch(stream.as_raw_fd()) {
                        self.sh.log.warn(
                            "control: connection refused: no descriptor slot left for select(2)",
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.sh.fresh_id();
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
                    self.sh.log.warn(format!("control: accept: {e}"));
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
                        hub: &mut self.sh.hub,
                        accounts: &mut self.sh.accounts,
                        store: &self.store,
                        log: &mut self.sh.log,
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
                Effect::Deliver(d) => self.chat.deliver(&mut self.sh, &d),
                Effect::Changed(change) => self.cluster_forward(&change),
                Effect::Close { conn, event } => {
                    let line = self.sh.encode(&event);
                    self.chat.finish(&mut self.sh, conn, Some(&line));
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
    }

    fn status(&self) -> StatusView {
        let addrs = |tls: bool| self.sh.door.addresses(tls);
        StatusView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.sh.now.duration_since(self.started).as_secs(),
            listen: addrs(false),
            tls_listen: addrs(true),
            control: self
                .control
                .as_ref()
                .map(|c| c.path.display().to_string())
                .unwrap_or_default(),
            state_file: self.store.path().display().to_string(),
            clients: self.chat.len(),
            members: self.sh.hub.member_count(),
            rooms: self.sh.hub.room_count(),
            cluster: self.cluster_status(),
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            uptime_secs: self.sh.now.duration_since(self.started).as_secs(),
            clients: self.chat.len(),
            members: self.sh.hub.member_count(),
            rooms: self.sh.hub.room_count(),
            messages_relayed: self.sh.counters.messages_relayed,
            deliveries: self.sh.counters.deliveries,
            bytes_out: self.sh.counters.bytes_out,
            slow_consumer_drops: self.sh.counters.slow_consumer_drops,
            joins: self.sh.counters.joins,
            refusals: self.sh.counters.refusals,
            log_lines_suppressed: self.sh.log.suppressed,
            cluster_dropped: self.sh.counters.cluster_dropped,
            cluster_inbox_overflows: self.sh.counters.inbox_overflows,
        }
    }

    /// Hands new log entries to `logs --follow` readers.
    fn forward_logs(&mut self) {
        loop {
            let entries = self.sh.log.take_unsent();
            if entries.is_empty() {
                return;
            }
            let lines: Vec<(u64, FollowLine)> = entries
                .iter()
                .map(|e| (e.seq, FollowLine { log: e.view() }))
                .collect();
            let dropped = self.controls.stream_logs(&lines);
            for _ in 0..dropped {
                self.sh.log.warn(format!(
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
        let paused = self.sh.door.paused();
        self.sh
            .door
            .register(self.sh.poller.as_mut(), self.shutdown_deadline.is_some());
        if let Some(c) = &self.control {
            let interest = Interest {
                read: !paused && self.controls.accepting(now),
                write: false,
            };
            self.sh
                .poller
                .set(c.listener.as_raw_fd(), CONTROL_LISTENER, interest);
        }
        self.sh.poller.set(
            self.signals.fd().as_raw_fd(),
            SIGNALS,
            Interest {
                read: true,
                write: false,
            },
        );
        for (fd, token) in self.registered.drain(..) {
            self.sh.poller.remove(fd, token);
        }
        for (id, c) in self.controls.iter() {
            let interest = Interest {
                read: c.wants_read(),
                write: c.wants_write(),
            };
            self.sh.poller.set(c.fd(), id, interest);
            self.registered.push((c.fd(), id));
        }
        if let Some(link) = &self.cluster
            && let Some(fd) = link.fd()
        {
            let interest = Interest {
                read: link.connected(),
                write: link.wants_write(),
            };
            self.sh.poller.set(fd, CLUSTER, interest);
            self.registered.push((fd, CLUSTER));
        }
        if let Some(fd) = self.sh.log.sink_blocked_fd() {
            self.sh.poller.set(
                fd,
                LOG_SINK,
                Interest {
                    read: false,
                    write: true,
                },
            );
            self.registered.push((fd, LOG_SINK));
        }
    }

    /// How long the wait may last: until the nearest deadline, or not at
    /// all when frames wait in a room that flows or output waits.
    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
        if self.chat.busy() {
            return Some(Duration::ZERO);
        }
        let mut next: Option<Instant> = self.shutdown_deadline;
        let mut earliest = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if let Some(t) = self.chat.next_timer() {
            earliest(t);
        }
        if let Some(t) = self
            .host
            .deadline(now, self.counts(), self.sh.counters.bytes_out)
        {
            earliest(t);
        }
        if let Some(t) = self.sh.door.deadline() {
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
            clients: self.chat.len(),
            rooms: self.sh.hub.room_count(),
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
                self.sh
                    .log
                    .warn("second termination signal: exiting without waiting for clients");
                self.shutdown_deadline = Some(self.sh.now);
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
        let new = Config::load(self.sh.cfg.argv.clone())
            .map_err(|e| match e {
                LoadFailure::Usage(e) => e.render().to_string().trim().to_string(),
                LoadFailure::Config(m) | LoadFailure::Other(m) => m,
            })
            .and_then(|new| new.validate().map(|()| new));
        let new = match new {
            Ok(new) => new,
            Err(e) => {
                self.sh
                    .log
                    .error(format!("reload: {e}; the running configuration stays"));
                self.reload_files();
                return;
            }
        };
        let plan = reload::plan(&self.sh.cfg, &new, self.max_clients_ceiling);
        let mut new = reload::running(&self.sh.cfg, new, &plan);
        match &new.config_file {
            Some(p) => self
                .sh
                .log
                .info(format!("reload: configuration read from {}", p.display())),
            None => self
                .sh
                .log
                .info("reload: no configuration file; flags and defaults only"),
        }
        if plan.changes("log-target") {
            match Sink::open(new.log_target) {
                Ok(sink) => {
                    let lost = self.sh.log.set_sink(sink);
                    if lost > 0 {
                        self.sh.log.warn(format!(
                            "reload: {lost} bytes of log entries the previous log target had not taken were dropped (chatctl logs has them)"
                        ));
                    }
                }
                Err(e) => {
                    self.sh
                        .log
                        .error(format!("reload: {e}; logging stays on the previous target"));
                    new.log_target = self.sh.cfg.log_target;
                }
            }
        }
        self.sh.log.set_min_level(new.log_level);
        self.sh.log.set_capacity(new.log_capacity);
        self.sh.hub.set_history_budget(new.history_memory);
        self.sh.limits = session_limits(&new);
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
            self.sh
                .log
                .info(format!("reload: {} {} (in effect now)", c.key, c.detail));
        }
        for c in &plan.restart {
            self.sh.log.warn(format!(
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
            self.sh.log.info("reload: the configuration is unchanged");
        }
        if tls_paths {
            self.replace_tls(&mut new);
        }
        if oidc_settings {
            self.replace_oidc(&mut new);
        }
        self.sh.cfg = new;
        // Whatever was replaced above was just read; the rest is read again.
        self.reload_files_except(tls_paths, oidc_settings);
    }

    /// New certificate and key paths: loaded now, or the old ones stay.
    fn replace_tls(&mut self, new: &mut Config) {
        let (Some(_), Some(cert), Some(key)) = (&self.sh.tls, &new.tls_cert, &new.tls_key) else {
            return;
        };
        match TlsSetup::load(cert, key) {
            Ok(t) => {
                self.sh.log.info(format!(
                    "tls: loaded certificate {} and key {}",
                    t.cert.display(),
                    t.key.display()
                ));
                self.sh.tls = Some(t);
            }
            Err(e) => {
                self.sh.log.error(format!(
                    "{e}; reload failed, the previous certificate and key stay in use"
                ));
                new.tls_cert = self.sh.cfg.tls_cert.clone();
                new.tls_key = self.sh.cfg.tls_key.clone();
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
                self.sh.log.info(format!(
                    "oidc: tokens from {} for {} accepted ({} key(s) from {})",
                    o.issuer,
                    o.audience,
                    o.key_count(),
                    o.jwks_path.display()
                ));
                self.sh.oidc = Some(o);
            }
            Ok(None) => {
                self.sh.log.info("oidc: tokens are no longer accepted");
                self.sh.oidc = None;
            }
            Err(e) => {
                self.sh.log.error(format!(
                    "{e}; reload failed, the previous OIDC settings stay in use"
                ));
                new.oidc_issuer = self.sh.cfg.oidc_issuer.clone();
                new.oidc_audience = self.sh.cfg.oidc_audience.clone();
                new.oidc_jwks = self.sh.cfg.oidc_jwks.clone();
                new.oidc_claim = self.sh.cfg.oidc_claim.clone();
            }
        }
    }

    fn reload_files(&mut self) {
        self.reload_files_except(false, false);
    }

    /// Reads the TLS certificate and key and the OIDC key set again (the
    /// operator renewed them in place).
    fn reload_files_except(&mut self, skip_tls: bool, skip_oidc: bool) {
        if let Some(oidc) = self.sh.oidc.as_mut().filter(|_| !skip_oidc) {
            match oidc.reload() {
                Ok(n) => self.sh.log.info(format!(
                    "oidc: reloaded {n} key(s) from {}",
                    oidc.jwks_path.display()
                )),
                Err(e) => self
                    .sh
                    .log
                    .error(format!("{e}; reload failed, the previous keys stay in use")),
            }
        }
        if let Some(tls) = self.sh.tls.as_mut().filter(|_| !skip_tls) {
            match tls.reload() {
                Ok(()) => self.sh.log.info(format!(
                    "tls: reloaded certificate {} and key {}",
                    tls.cert.display(),
                    tls.key.display()
                )),
                Err(e) => self.sh.log.error(format!(
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
        if let Some(c) = self.control.take() {
            self.sh
                .poller
                .remove(c.listener.as_raw_fd(), CONTROL_LISTENER);
        }
        // Followers get the entries so far, then the goodbye.
        self.forward_logs();
        self.controls.clear();
        let line = self
            .sh
            .encode(&Event::system(EventKind::Shutdown, wire::SHUTDOWN, None));
        self.chat.finish_all(&mut self.sh, &line);
    }

    // -- accepting ----------------------------------------------------------

    fn accept_clients(&mut self, index: usize) {
        loop {
            match self.sh.door.knock(index) {
                Knock::Stream(stream, peer, tls) => {
                    self.chat.admit(&mut self.sh, stream, peer, tls)
                }
                Knock::Empty => return,
                Knock::OutOfDescriptors => {
                    self.on_fd_exhaustion(Some(index));
                    return;
                }
                Knock::Failed(e) => {
                    self.sh.log.warn(format!("accept: {e}"));
                    return;
                }
            }
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
        if !freed {
            return;
        }
        match index {
            Some(index) => {
                if let Knock::Stream(stream, peer, tls) = self.sh.door.knock(index) {
                    Chat::refuse_at_door(
                        &mut self.sh,
                        stream,
                        peer,
                        tls,
                        "out of file descriptors",
                    );
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
        self.sh.door.spare_back(now);
    }
}
