//! The control part: the control socket's listener, its connections
//! (conn.rs: framing, bounds, followers) and the commands they carry
//! (commands.rs: one `commit` per state change). The loop hands it
//! readiness and the pass's [`Shared`]; what a command needs done to chat
//! or the cluster comes back as [`Effect`]s, which the loop carries out.
//! `logs --follow` is served here (`Effect::Follow` never leaves).
//!
//! The wall: this part imports neither chat nor cluster; what it reports
//! about them (`stats`, `status`) the loop hands in as [`Facts`]. No
//! clock reads: time is `Shared::now`.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::door;
use super::net::{self, ControlSocket};
use super::poller::{Interest, Token};
use super::shared::Shared;
use super::store::Store;
use crate::core::control::{ErrorCode, FollowLine, Request, Response, Stats, StatusView};
use crate::sys::nonblock::{interrupted, would_block};

pub mod commands;
pub mod commit;
pub mod conn;
pub mod moderate;

pub use commit::Effect;
use conn::{ControlConn, ControlConns, FOLLOWER_MAX_BACKLOG, NO_DESCRIPTORS};
pub use conn::{control_cap, open_descriptors};

/// What `stats` and `status` report that only the loop knows.
pub struct Facts {
    pub stats: Stats,
    pub status: StatusView,
}

/// What accepting control connections came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Every waiting connection taken in, or none may be now.
    Done,
    /// accept(2) said EMFILE/ENFILE: the loop frees the spare descriptor
    /// and calls [`Control::turn_one_away`].
    OutOfDescriptors,
}

pub struct Control {
    /// None once shutdown began (or when chatd runs without one).
    socket: Option<ControlSocket>,
    conns: ControlConns,
    /// When lapsed bans and mutes are next dropped from the lists.
    next_prune: Option<std::time::Instant>,
}

impl Control {
    pub fn new(socket: Option<ControlSocket>, cap: usize, timeout: Duration) -> Control {
        Control {
            socket,
            conns: ControlConns::new(cap, timeout),
            next_prune: None,
        }
    }

    /// Whether lapsed rules are due to leave their lists (once a second).
    pub fn prune_due(&mut self, now: std::time::Instant) -> bool {
        if self.next_prune.is_some_and(|at| now < at) {
            return false;
        }
        self.next_prune = Some(now + Duration::from_secs(1));
        true
    }

    /// The socket's path, for `status`.
    pub fn path(&self) -> String {
        self.socket
            .as_ref()
            .map(|c| c.path.display().to_string())
            .unwrap_or_default()
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.conns.set_timeout(timeout);
    }

    /// Whether `id` is a control connection.
    pub fn has(&self, id: u64) -> bool {
        self.conns.get(id).is_some()
    }

    /// The earliest `--control-timeout` due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.next_deadline()
    }

    /// Closes the connections silent past `--control-timeout`.
    pub fn expire(&mut self, sh: &mut Shared) {
        if let Some(warning) = self.conns.expire(sh.now) {
            sh.log.warn(warning);
        }
    }

    // -- accepting ----------------------------------------------------------------

    /// Takes in waiting control connections while the cap allows.
    pub fn accept(&mut self, sh: &mut Shared) -> Accepted {
        loop {
            let now = sh.now;
            if !self.conns.make_room(now) {
                return Accepted::Done;
            }
            let Some(control) = &self.socket else {
                return Accepted::Done;
            };
            match control.listener.accept() {
                Ok((stream, _)) => {
                    if !sh.poller.can_watch(stream.as_raw_fd()) {
                        sh.log.warn(
                            "control: connection refused: no descriptor slot left for select(2)",
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = sh.fresh_id();
                    let peer = net::peer_credentials(&stream);
                    self.conns.insert(id, ControlConn::new(stream, peer, now));
                }
                Err(e) if would_block(&e) => return Accepted::Done,
                Err(e) if interrupted(&e) => continue,
                Err(e) if door::is_fd_exhaustion(&e) => return Accepted::OutOfDescriptors,
                Err(e) => {
                    sh.log.warn(format!("control: accept: {e}"));
                    return Accepted::Done;
                }
            }
        }
    }

    /// With the spare descriptor freed: the waiting connection is told
    /// chatd is out of descriptors, and closed.
    pub fn turn_one_away(&mut self) {
        if let Some(c) = &self.socket
            && let Ok((stream, _)) = c.listener.accept()
        {
            door::turn_away_control(stream, NO_DESCRIPTORS);
        }
    }

    // -- requests -----------------------------------------------------------------

    /// One read from connection `id`.
    pub fn read(&mut self, sh: &Shared, id: u64) {
        if let Some(c) = self.conns.get_mut(id) {
            c.read_once(sh.now);
        }
    }

    /// Connection `id`'s next request, if one is complete and its output
    /// has room (a malformed line comes back as the response to send).
    pub fn next_request(&mut self, id: u64) -> Option<Result<Request, Response>> {
        self.conns.get_mut(id)?.next_request()
    }

    /// Answers `request` from connection `id` and returns what the loop
    /// must carry out. `cluster_down`: changes to shared state are
    /// refused.
    pub fn answer(
        &mut self,
        sh: &mut Shared,
        store: &Store,
        id: u64,
        request: Result<Request, Response>,
        facts: Facts,
        cluster_down: bool,
    ) -> Vec<Effect> {
        let Some(c) = self.conns.get_mut(id) else {
            return Vec::new();
        };
        let who = c.who();
        let (response, effects) = match request {
            Err(response) => (response, Vec::new()),
            Ok(req) if cluster_down && req.changes_state() => (
                Response::error(
                    ErrorCode::Failed,
                    "the cluster store (Redis) is unreachable: changes to rooms and accounts wait until it is back",
                ),
                Vec::new(),
            ),
            Ok(req) => {
                let mut ctx = commit::Ctx::new(sh, store, facts.stats, facts.status, "admin");
                commands::execute(&mut ctx, &req, &who)
            }
        };
        c.respond(&response);
        let mut rest = Vec::new();
        for effect in effects {
            match effect {
                Effect::Follow {
                    after,
                    since,
                    priority,
                } => c.follow(after, since, priority),
                other => rest.push(other),
            }
        }
        rest
    }

    /// One write per connection with output; the connections that may
    /// have requests to answer now (the loop serves each, then
    /// [`Control::reap`]s it).
    pub fn flush(&mut self) -> Vec<u64> {
        let ids: Vec<u64> = self.conns.iter().map(|(id, _)| id).collect();
        let mut open = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            if c.wants_write() && c.write_once().is_err() {
                self.conns.remove(id);
                continue;
            }
            open.push(id);
        }
        open
    }

    /// Closes connection `id` if it is finished.
    pub fn reap(&mut self, id: u64) {
        if self.conns.get(id).is_some_and(ControlConn::finished) {
            self.conns.remove(id);
        }
    }

    /// Hands new log entries to `logs --follow` readers.
    pub fn forward_logs(&mut self, sh: &mut Shared) {
        loop {
            let entries = sh.log.take_unsent();
            if entries.is_empty() {
                return;
            }
            let lines: Vec<(u64, FollowLine)> = entries
                .iter()
                .map(|e| (e.seq, FollowLine { log: e.view() }))
                .collect();
            let dropped = self.conns.stream_logs(&lines);
            for _ in 0..dropped {
                sh.log.warn(format!(
                    "control: dropped a logs --follow reader more than {FOLLOWER_MAX_BACKLOG} bytes behind"
                ));
            }
        }
    }

    // -- the poller and shutdown --------------------------------------------------

    /// The listener (token `listener`) and the connections: few, so set
    /// afresh each pass; what was set goes to `registered` for removal
    /// next pass.
    pub fn register(
        &self,
        sh: &mut Shared,
        listener: Token,
        paused: bool,
        registered: &mut Vec<(RawFd, Token)>,
    ) {
        if let Some(c) = &self.socket {
            let interest = Interest {
                read: !paused && self.conns.accepting(sh.now),
                write: false,
            };
            sh.poller.set(c.listener.as_raw_fd(), listener, interest);
        }
        for (id, c) in self.conns.iter() {
            let interest = Interest {
                read: c.wants_read(),
                write: c.wants_write(),
            };
            sh.poller.set(c.fd(), id, interest);
            registered.push((c.fd(), id));
        }
    }

    /// Shutdown: the listener closes, followers get the entries so far and
    /// the goodbye, and every connection closes.
    pub fn close(&mut self, sh: &mut Shared, listener: Token) {
        if let Some(c) = self.socket.take() {
            sh.poller.remove(c.listener.as_raw_fd(), listener);
        }
        self.forward_logs(sh);
        self.conns.clear();
    }
}

/// Runs `req` for `actor`, a room operator on a chat or IRC connection,
/// as chatctl's requests run: the same checks, the same save before the
/// answer, the same audit line (naming `actor`). What the member is told
/// (a `notice`, or the refusal), and the effects.
pub fn run_for_member(
    sh: &mut Shared,
    store: &Store,
    req: &Request,
    actor: &str,
    cluster_down: bool,
) -> (
    Result<String, (crate::core::wire::ErrorCode, String)>,
    Vec<Effect>,
) {
    if cluster_down && req.changes_state() {
        let why = "the cluster store (Redis) is unreachable: changes wait until it is back";
        return (
            Err((crate::core::wire::ErrorCode::Unavailable, why.into())),
            Vec::new(),
        );
    }
    let mut ctx = commit::Ctx::new(sh, store, Default::default(), Default::default(), actor);
    let who = format!("room operator '{actor}'");
    let (response, effects) = commands::execute(&mut ctx, req, &who);
    let outcome = match response {
        Response::Ok(_) => Ok(format!("done: {}", commands::summarize(req))),
        Response::Err(r) => Err((crate::core::wire::ErrorCode::Forbidden, r.message)),
    };
    (outcome, effects)
}
