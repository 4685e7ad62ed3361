//! The chat part: every chat connection, the pass's work lists (touched,
//! with output, with frames, doomed), the session timers, per-room flow
//! control, and delivery. The loop hands it readiness and the pass's
//! [`Shared`] (hub, log, poller, door, clock); it hands back, in its
//! outbox, what cluster mode must hear of ([`ChatOut`]).
//!
//! - mod.rs: the connection table, feeding sessions and carrying out their
//!   actions, settling poller interest and timers, dropping the doomed.
//! - io.rs: accepting, reading, processing frames, writing.
//! - join.rs: handshakes (login, room access, the join), messages, leaving.
//! - deliver.rs: delivery, back-pressure and inboxes.
//! - rings.rs: a room's lines pushed once, each member writing from them.
//! - flow.rs, inbox.rs: per-room flow control without sockets.
//!
//! Invariants: no clock reads here (time comes in `Shared::now`); every
//! public method returns with no connection left doomed (the doomed are
//! dropped, and their rooms told, before it returns); a member of a room
//! that does not flow has no read interest and its frames wait.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use super::logbook::Level;
use super::poller::Interest;
use super::shared::Shared;
use crate::core::codec::{self, Protocol};
use crate::core::hub::{ConnId, Departure, IdMap, RoomId};
use crate::core::session::{Action, DropReason, Input, Phase};
use crate::core::wire::{ErrorCode, Event, EventKind, Handshake};

pub mod conn;
mod deliver;
mod direct;
mod flood;
pub mod flow;
pub mod inbox;
mod io;
pub mod irc;
mod irc_cluster;
mod irc_history;
mod irc_messages;
mod irc_monitor;
mod irc_ops;
mod irc_query;
mod irc_register;
mod irc_rooms;
mod irc_sasl;
mod join;
pub mod mirror;
mod moderation;
mod rings;
#[cfg(test)]
mod tests;
pub mod web;
mod web_requests;

use conn::Conn;
use flow::Flow;

/// Bytes read from one connection per pass at most (fairness), and the size
/// of the shared read buffer.
const READ_CHUNK: usize = 64 * 1024;

/// What the chat part tells cluster mode (only in cluster mode).
#[derive(Debug)]
pub enum ChatOut {
    /// A local member's message, delivered here, for the other nodes.
    Said(Event),
    /// A local member left its room, and why.
    Left(Departure, String),
    /// This node's members of a room started (true) or stopped being
    /// backed up: the other nodes should hold the room back, or let go.
    Hold(RoomId, bool),
    /// A handshake (or an IRC JOIN) passed every local check; the
    /// cluster decides the seat, and the connection's frames wait until
    /// [`Chat::verdict_given`].
    Join(crate::core::cluster::JoinRequest),
    /// An IRC connection asks the cluster for `nick` (replacing `old`);
    /// its frames wait until [`Chat::nick_verdict`].
    ClaimNick {
        id: ConnId,
        nick: String,
        old: Option<String>,
    },
    /// An IRC connection's nick is free (it quit).
    FreeNick(String),
    /// A direct message for a nick this node does not hold.
    Direct(ConnId, crate::core::cluster::DirectMessage),
    /// This node's first (true) or last (false) connection of a chat-port
    /// person that takes direct messages: listen on the name's channel.
    ListenDirect(String, bool),
}

/// What waits for a later pass's password check: a handshake, or the
/// IRC message that needs it (registration, a room key).
#[derive(Debug)]
pub(super) enum Parked {
    Handshake(Handshake),
    Irc(crate::core::irc::Message),
}

/// Why a doomed connection is dropped: a slow consumer is counted and
/// warned about; a failed connection only leaves.
#[derive(Debug)]
enum Closing {
    SlowConsumer(String),
    Failed(String),
}

pub struct Chat {
    conns: IdMap<Box<Conn>>,
    /// Connections something happened to, to settle before the next wait.
    touched: Vec<ConnId>,
    /// Connections with output to write this pass.
    writes: Vec<ConnId>,
    /// Connections with frames (or an end of input) to process, first
    /// read first processed (so lines sent in order by two clients are
    /// acted on in that order when one pass reads both).
    runnable: std::collections::VecDeque<ConnId>,
    /// Connections to drop once the current delivery is done, and why.
    doomed: Vec<(ConnId, Closing)>,
    /// Session timers, earliest first; an entry whose time is no longer the
    /// connection's `scheduled` is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Per-room flow control: back-pressure counts, holds from other
    /// nodes, inboxes (see flow.rs).
    flow: Flow,
    /// Handshakes whose password check waits for a later pass (one check
    /// runs per pass), first come first served; their frames wait too.
    parked: VecDeque<(ConnId, Parked)>,
    /// The read buffer every connection shares.
    scratch: Vec<u8>,
    /// Cluster mode: joins are decided by the cluster, and what happens
    /// here goes to the outbox.
    clustered: bool,
    out: Vec<ChatOut>,
    /// Rooms whose lasting settings (moderation) an IRC operator changed:
    /// the event loop saves them and tells the cluster.
    changed_rooms: Vec<String>,
    /// Room operators' commands for the event loop to run (moderation.rs).
    requests: Vec<(ConnId, crate::core::control::Request, String)>,
    /// SIGINT/SIGTERM arrived: every connection is finishing.
    stopping: bool,
    /// Clients closed during shutdown with output they never received.
    cut_off: usize,
    /// IRC nicks let go, newest last (WHOWAS).
    was: VecDeque<irc_query::Was>,
    /// Users now (registered IRC connections and the prototype's joined
    /// ones), and the most there were at once (LUSERS).
    users_now: usize,
    users_peak: usize,
    /// While a labeled IRC command runs: its sender and the lines kept
    /// for the label; and how many batches were opened (their ids).
    capture: Option<(ConnId, Vec<u8>)>,
    batches: u64,
    /// MONITOR: who watches which names.
    monitors: irc_monitor::Monitors,
    /// Room rings: each room's lines pushed once, read by its members
    /// through their feeds (rings.rs).
    rings: rings::Rings,
}

impl Chat {
    pub fn new(clustered: bool) -> Chat {
        Chat {
            conns: IdMap::default(),
            touched: Vec::new(),
            writes: Vec::new(),
            runnable: std::collections::VecDeque::new(),
            doomed: Vec::new(),
            timers: BinaryHeap::new(),
            flow: Flow::default(),
            parked: VecDeque::new(),
            scratch: vec![0; READ_CHUNK],
            clustered,
            out: Vec::new(),
            changed_rooms: Vec::new(),
            requests: Vec::new(),
            stopping: false,
            cut_off: 0,
            was: VecDeque::new(),
            users_now: 0,
            users_peak: 0,
            capture: None,
            batches: 0,
            monitors: irc_monitor::Monitors::default(),
            rings: rings::Rings::default(),
        }
    }

    // -- what the loop asks ----------------------------------------------------

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether `id` is a connection here (in cluster mode, a member on
    /// another node has an id but no connection).
    pub fn has(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    /// What cluster mode must hear of, oldest first.
    pub fn take_out(&mut self) -> Vec<ChatOut> {
        std::mem::take(&mut self.out)
    }

    /// Whether the next wait must not block: frames wait in a room that
    /// flows, output waits, a parked login waits, or an inbox drains.
    pub fn busy(&self) -> bool {
        !self.runnable.is_empty()
            || !self.writes.is_empty()
            || !self.parked.is_empty()
            || self.flow.draining()
    }

    /// The earliest session timer.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Shutdown is over: how many clients never got all their output.
    pub fn close_all(&mut self) -> usize {
        let unflushed = self.cut_off + self.conns.values().filter(|c| c.unflushed()).count();
        self.conns.clear();
        unflushed
    }

    /// Every connection gets `event` (the shutdown) and closes.
    pub fn finish_all(&mut self, sh: &mut Shared, event: &Event) {
        self.stopping = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let line = self.encode_for(sh, id, event);
            self.feed(sh, id, Input::Finish(Some(&line)));
        }
        self.drop_doomed(sh);
    }

    /// A last event (if any), then the connection closes; but an IRC
    /// connection kicked from a room, or whose room closed, is told with
    /// KICK and stays.
    pub fn finish(&mut self, sh: &mut Shared, id: ConnId, event: Option<&Event>) {
        if let Some(e) = event
            && self.irc(id).is_some()
            && self.irc_personal(sh, id, e)
        {
            self.drop_doomed(sh);
            return;
        }
        let line = event.map(|e| self.encode_for(sh, id, e));
        self.feed(sh, id, Input::Finish(line.as_deref()));
        self.drop_doomed(sh);
    }

    /// An event for one connection, in its protocol (the prototype's for
    /// one that is gone), stamped with the pass's time unless it carries
    /// its own. For IRC: an error or the shutdown is `ERROR`, a room's
    /// event its lines.
    fn encode_for(&self, sh: &Shared, id: ConnId, event: &Event) -> Vec<u8> {
        let c = self.conns.get(&id);
        if c.is_some_and(|c| c.web.as_ref().is_some_and(|w| w.is_http())) {
            // Before the upgrade, a web connection speaks HTTP.
            let status = event.message.parse().unwrap_or(400);
            let why = event.reason.as_deref().unwrap_or(&event.message);
            return crate::core::http::refusal(status, why, false);
        }
        let protocol = c.map_or(Protocol::Prototype, |c| c.session.protocol());
        match protocol {
            Protocol::Prototype => codec::encode(event, sh.ts()),
            Protocol::Irc => self.irc_line_for(sh, id, event),
        }
    }

    fn irc_line_for(&self, sh: &Shared, id: ConnId, event: &Event) -> Vec<u8> {
        use crate::core::irc::Message;
        use crate::core::ircmap;
        let nick = self.irc(id).map_or("*".into(), |c| c.target().to_string());
        let closing = |why: &str| {
            Message::new(None, "ERROR", &[&format!("Closing Link: {nick} ({why})")]).encode()
        };
        match event.kind {
            EventKind::Error => closing(event.reason.as_deref().unwrap_or(&event.message)),
            EventKind::Shutdown => closing("the server is shutting down"),
            _ => {
                let source = self.source_of(sh, &event.username);
                let tags = self.tags_for(id, &sh.irc_ts(), None);
                ircmap::room_event(event, &source, &tags, false)
            }
        }
    }

    /// The cluster decided `id`'s join (or gave up on it): its frames may
    /// run again.
    pub fn verdict_given(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.awaiting_verdict = false;
        }
        self.mark_runnable(id);
    }

    /// The rooms this node holds back elsewhere (renewed every heartbeat).
    pub fn holding(&self) -> Vec<RoomId> {
        self.flow.holding()
    }

    /// Another node holds `room` back until `until`, or (None) lets go.
    pub fn held_by(&mut self, sh: &mut Shared, room: RoomId, node: &str, until: Option<Instant>) {
        let mut events = Vec::new();
        self.flow.held_by(room, node, until, &mut events);
        self.apply_flow(sh, events);
    }

    /// Other nodes' holds not renewed in time lapse.
    pub fn expire_holds(&mut self, sh: &mut Shared) {
        let mut events = Vec::new();
        self.flow.expire_holds(sh.now, &mut events);
        self.apply_flow(sh, events);
    }

    // -- sessions: inputs, actions, settling ---------------------------------

    /// Feeds one input to a connection's session and carries out the action.
    /// A line of its own comes after what waits for it in its room's ring
    /// (rings.rs); a finishing connection stops reading from the ring.
    fn feed(&mut self, sh: &mut Shared, id: ConnId, input: Input) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(input, Input::Finish(_)) && c.ring.is_some() {
            self.leave_ring(id, true);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let now = sh.now;
        let action = if matches!(input, Input::Deliver(_)) {
            Chat::own_line(&mut self.rings, c, |c| c.session.handle(now, input))
        } else {
            c.session.handle(now, input)
        };
        self.touch(sh, id);
        if let Some(a) = action {
            self.act(sh, id, a);
        }
    }

    /// Carries out what a session decided.
    fn act(&mut self, sh: &mut Shared, id: ConnId, action: Action) {
        match action {
            Action::Drop(DropReason::Sendq) => {
                let why = format!(
                    "slow consumer: output queue would exceed --sendq {} bytes",
                    sh.cfg.sendq
                );
                self.doom(id, Closing::SlowConsumer(why));
            }
            Action::Drop(DropReason::StallBudget) => {
                let why = format!(
                    "slow consumer: output above {} bytes for {} s in all, its stall budget (--write-timeout)",
                    sh.limits.hwm,
                    sh.cfg.write_timeout.as_secs_f64()
                );
                self.doom(id, Closing::SlowConsumer(why));
            }
            Action::HandshakeExpired => {
                let reason = format!(
                    "no complete handshake within {} s",
                    sh.cfg.handshake_timeout.as_secs_f64()
                );
                if self.conns.get(&id).is_some_and(|c| c.tls_handshaking()) {
                    // No TLS yet, so no way to say 408: just close.
                    let peer = self.conns[&id].peer;
                    sh.counters.refusals += 1;
                    sh.log
                        .warn(format!("tls: client {peer}: {reason} (TLS); closing"));
                    self.remove(sh, id);
                    return;
                }
                self.close_with_error(sh, id, ErrorCode::Timeout, &reason, None);
            }
            Action::ShutdownWrite => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.shutdown_write();
                }
            }
            Action::CheckAcknowledged => {
                if let Some(c) = self.conns.get(&id) {
                    let n = c.unacknowledged();
                    self.feed(sh, id, Input::Unacknowledged(n));
                }
            }
            Action::Ping if self.conns.get(&id).is_some_and(|c| c.web.is_some()) => {
                if let Some(w) = self.conns.get_mut(&id).and_then(|c| c.web.as_mut()) {
                    w.ping();
                }
                self.touch(sh, id);
            }
            Action::PingTimeout
                if self
                    .conns
                    .get(&id)
                    .is_some_and(|c| c.session.protocol() == Protocol::Prototype) =>
            {
                let why = format!("ping timeout: {} seconds", 2 * sh.cfg.irc_ping.as_secs());
                self.close_with_error(sh, id, ErrorCode::Timeout, &why, None);
            }
            Action::Ping => {
                let server = sh.cfg.irc_server_name.clone();
                self.irc_server(sh, id, "PING", &[&server]);
            }
            Action::PingTimeout => {
                let why = format!("Ping timeout: {} seconds", 2 * sh.cfg.irc_ping.as_secs());
                let who = self.describe(sh, id);
                self.id_log(sh, id, Level::Info, format!("irc: dropping {who}: {why}"));
                self.irc_close(sh, id, &why);
            }
            Action::Release => self.remove(sh, id),
            Action::LingerExpired => {
                if self.stopping && self.conns.get(&id).is_some_and(|c| c.unflushed()) {
                    self.cut_off += 1;
                }
                self.remove(sh, id);
            }
        }
    }

    /// A connection became a user (registered, or joined): counted for
    /// LUSERS until it is removed.
    fn count_user(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id)
            && !c.counted_user
        {
            c.counted_user = true;
            self.users_now += 1;
            self.users_peak = self.users_peak.max(self.users_now);
        }
    }

    /// Marks a connection as changed in this pass. Its room's back-pressure
    /// is brought up to date at once (a delivery that backs a member up
    /// must stop its room's frames in the same pass); poller interest and
    /// timers wait for [`Chat::settle`].
    fn touch(&mut self, sh: &mut Shared, id: ConnId) {
        self.account_backlog(sh, id);
        self.mark_touched(id);
    }

    /// On the touched list, without the back-pressure accounting.
    fn mark_touched(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id)
            && !c.touched
        {
            c.touched = true;
            self.touched.push(id);
        }
    }

    fn mark_runnable(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id)
            && (c.session.frame_ready() || c.has_buffered_input())
            && !c.on_run_list
        {
            c.on_run_list = true;
            self.runnable.push_back(id);
        }
    }

    /// Brings the touched connections' poller interest, timers and write
    /// list up to date.
    pub fn settle(&mut self, sh: &mut Shared) {
        self.scan_dirty(sh);
        while let Some(id) = self.touched.pop() {
            let flows = self.room_flows(sh, id);
            let Some(c) = self.conns.get_mut(&id) else {
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
                sh.poller.set(c.fd(), id, interest);
            }
            let due = match (c.session.poll_timeout(), c.lagged_until()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
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
    pub fn fire_timers(&mut self, sh: &mut Shared) {
        let now = sh.now;
        let mut lagged = Vec::new();
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.scheduled != Some(t) {
                continue;
            }
            c.scheduled = None;
            if c.lagged_until().is_some_and(|at| at <= now) {
                lagged.push(id);
            }
            self.feed(sh, id, Input::Timeout);
        }
        self.drop_doomed(sh);
        self.wake_lagged(sh, &lagged);
    }

    fn remove(&mut self, sh: &mut Shared, id: ConnId) {
        self.leave_ring(id, false);
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        if c.irc.is_some() {
            // Whatever way it ends, an IRC connection leaves its rooms
            // and frees its nick (a no-op when it quit already).
            self.quit_rooms(sh, id, "connection closed");
            self.monitors.forget(id);
        }
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        if c.counted_user {
            self.users_now -= 1;
        }
        sh.poller.remove(c.fd(), id);
        sh.door.closed(Some(id), c.seat);
        let counted_in = c.counted_in;
        self.conns.remove(&id);
        if let Some(room) = counted_in {
            let mut events = Vec::new();
            self.flow.caught_up(room, &mut events);
            self.apply_flow(sh, events);
        }
    }

    /// Marks a connection to drop once the current delivery is done (the
    /// first reason given stands).
    fn doom(&mut self, id: ConnId, why: Closing) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.doomed {
            c.doomed = true;
            self.doomed.push((id, why));
        }
    }

    /// Closes the connections marked during a delivery; their rooms get
    /// `leave` (which may mark more).
    fn drop_doomed(&mut self, sh: &mut Shared) {
        while let Some((id, closing)) = self.doomed.pop() {
            let why = match closing {
                Closing::SlowConsumer(why) => {
                    sh.counters.slow_consumer_drops += 1;
                    let who = self.describe(sh, id);
                    sh.log.warn(format!("dropping {who}: {why}"));
                    why
                }
                Closing::Failed(why) => why,
            };
            self.leave_room(sh, id, &why);
            self.remove(sh, id);
        }
    }

    /// Sends an error event to the connection, then closes it; a member
    /// leaves its room first.
    fn close_with_error(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        code: ErrorCode,
        reason: &str,
        room: Option<&str>,
    ) {
        sh.counters.refusals += 1;
        let who = self.describe(sh, id);
        self.id_log(
            sh,
            id,
            Level::Warn,
            format!("error {} to {who}: {reason}; closing", code.as_str()),
        );
        let line = self.encode_for(sh, id, &Event::error(code, room, reason));
        self.leave_room(sh, id, "closed after a protocol error");
        self.feed(sh, id, Input::Finish(Some(&line)));
    }

    // -- for logs ----------------------------------------------------------------

    /// Logs a line about a connection by the address key and exemption the
    /// door gave it (unlimited when it is gone).
    fn id_log(&self, sh: &mut Shared, id: ConnId, level: Level, line: String) {
        match self.conns.get(&id) {
            Some(c) => {
                let from = c.seat.limited.then_some(c.seat.key);
                sh.log.client(sh.now, from, level, line);
            }
            None => sh.log.log(level, line),
        }
    }

    /// A connection's peer address as text, `?` when it is gone.
    fn peer_text(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .map_or_else(|| "?".to_string(), |c| c.peer.to_string())
    }

    /// "'Yan' in 'Teste' (127.0.0.1:50312)" or "client 127.0.0.1:50312",
    /// for logs.
    fn describe(&self, sh: &Shared, id: ConnId) -> String {
        let peer = self.peer_text(id);
        match sh.hub.member(id) {
            Some((room, m)) => format!("'{}' in '{room}' ({peer})", m.username),
            None => format!("client {peer}"),
        }
    }
}
