//! The cluster part: this node's side of cluster mode. What the link to
//! Redis (link.rs) reports becomes changes to the hub, and what happens
//! here goes to Redis.
//!
//! The hub is this node's mirror of the cluster: every room, and every
//! member with its node. Another node's member has a connection id here
//! like a local one, but no connection: deliveries skip it (its node
//! delivers). The mirror follows `chatd:events` and is reconciled with a
//! snapshot after every (re)connect.
//!
//! - A join is decided by Redis (the `JOIN` script: room exists, name free
//!   cluster-wide, room not full): the handshake waits for the verdict,
//!   and the connection's later frames wait with it.
//! - A message is delivered locally at once and published once on the
//!   room's channel; the nodes with members there deliver it to theirs.
//! - An admin change runs locally as before (saved, acknowledged), then
//!   goes to Redis, which announces it to the other nodes.
//! - While Redis is unreachable, local members keep talking; joins get
//!   503 and admin changes to rooms are refused.
//!
//! The wall: this part never imports the chat part. It asks what it must
//! know of this node's connections through [`Here`], and what the chat
//! part must do comes back as [`ClusterOut`] values, in order, which the
//! loop carries out. No clock reads: time is `Shared::now`.
//!
//! - An IRC nick is claimed in Redis too (`chatd:people`): registration
//!   and a nick change wait for the verdict; a direct message to a nick
//!   goes to the nick's channel, which only its node subscribes to.
//!
//! - mod.rs: the part, its node state, the link's events and replies.
//! - joins.rs: joins and their verdicts, leaves, subscriptions, messages
//!   both ways, holds.
//! - nicks.rs: IRC nicks claimed and freed, direct messages both ways.
//! - history.rs: history rooms followed by every node, and caught up
//!   from the rooms' logs after a sync.
//! - mirror.rs: sync and snapshot, other nodes' events, admin changes.
//! - link.rs: the connection to Redis; target.rs: where Redis is.

use std::collections::HashSet;
use std::time::Instant;

use super::shared::Shared;
use crate::core::cluster::{self as shared, DirectMessage, Frame, MemberRecord, NickVerdict};
use crate::core::hub::{ConnId, Delivery, IdMap, RoomId};
use crate::core::wire::{ErrorCode, Event, Handshake};

mod history;
mod joins;
mod link;
mod mirror;
mod nicks;
mod target;
#[cfg(test)]
mod tests;

pub use link::{ClusterLink, HEARTBEAT_EVERY, HEARTBEAT_TTL, LinkEvent, Purpose};
pub use target::{redact, target};

/// What cluster mode may ask of this node's chat connections. The loop
/// passes the chat part; cluster mode never imports it.
pub trait Here {
    /// Whether `id` is a connection on this node (another node's member
    /// has an id but no connection).
    fn has(&self, id: ConnId) -> bool;
    /// Whether `id` is this node's IRC connection (a member of many rooms
    /// under its nick, told of a lost room with KICK).
    fn speaks_irc(&self, id: ConnId) -> bool;
    /// Whether `id` is an IRC connection whose nick the cluster holds.
    fn nick_claimed(&self, id: ConnId) -> bool;
    /// The rooms this node holds back elsewhere (renewed every heartbeat).
    fn holding(&self) -> Vec<RoomId>;
    /// The names of this node's chat-port people whose clients take
    /// direct messages (they listen on their names' channels, as nicks).
    fn direct_names(&self) -> Vec<String>;
}

/// What the chat part must do because of the cluster, in order.
#[derive(Debug)]
pub enum ClusterOut {
    /// A room's bans or operators changed elsewhere (None: the server's
    /// bans): this node's members now banned leave.
    Enforce(Option<String>),
    /// A room's limit changed elsewhere: this node's members are told.
    Facts(String),
    /// A delivery to this node's members (another node's member joined or
    /// left, a room closed).
    Deliver(Delivery),
    /// Another node's message: through the room's inbox while it is held.
    FromElsewhere(Delivery),
    /// A last event (if any), then the connection closes.
    Finish(ConnId, Option<Event>),
    /// The join's verdict came (or never will): its frames may run.
    VerdictGiven(ConnId),
    /// Redis gave the seat and the hub took the member.
    Joined {
        id: ConnId,
        hs: Handshake,
        username: String,
        login: &'static str,
        delivery: Delivery,
    },
    /// The join is refused: an error event, then close.
    Refused {
        id: ConnId,
        username: String,
        code: ErrorCode,
        reason: String,
        room: String,
    },
    /// Another node holds `room` back until a time, or (None) lets go.
    HeldBy {
        room: RoomId,
        node: String,
        until: Option<Instant>,
    },
    /// Other nodes' holds not renewed in time lapse.
    ExpireHolds,
    /// The cluster's verdict on an IRC connection's nick: taken, or held
    /// by someone (their spelling), or undecidable (Redis unreachable).
    NickVerdict {
        id: ConnId,
        nick: String,
        verdict: NickVerdict,
    },
    /// A direct message from another node for this node's IRC nick.
    Direct(DirectMessage),
    /// A direct message from `id` found nobody holding `target`.
    NoSuchNick { id: ConnId, target: String },
}

/// A handshake (or an IRC JOIN) waiting for the cluster's verdict.
struct PendingJoin {
    hs: Handshake,
    username: String,
    login: &'static str,
    record: MemberRecord,
}

pub struct Cluster {
    link: ClusterLink,
    /// This node's id, and this process's claim on it (a second chatd with
    /// the same id is refused by the heartbeat script).
    node: String,
    token: String,
    /// HELLO sent on this connection (heartbeats may follow).
    greeted: bool,
    next_heartbeat: Instant,
    /// The sync and snapshot are under way.
    syncing: bool,
    /// Set once the snapshot after a (re)connect has been applied: only
    /// then are joins and admin changes taken.
    synced: bool,
    /// Channels subscribed to (room channels come and go with members).
    subscribed: HashSet<String>,
    /// Messages not published because the link was down.
    unpublished: u64,
    /// Joins waiting for the cluster's verdict.
    pending_joins: IdMap<PendingJoin>,
    /// Nick claims waiting for the cluster's verdict: the nick asked for,
    /// and the one it replaces.
    pending_nicks: IdMap<(String, Option<String>)>,
    /// The link was in sync (a loss is news), and a failure has been
    /// logged since (retries are not).
    was_up: bool,
    failure_logged: bool,
    out: Vec<ClusterOut>,
}

impl Cluster {
    pub fn new(link: ClusterLink, node: &str, token: String, now: Instant) -> Cluster {
        Cluster {
            link,
            node: node.to_string(),
            token,
            greeted: false,
            next_heartbeat: now,
            syncing: false,
            synced: false,
            subscribed: HashSet::new(),
            unpublished: 0,
            pending_joins: IdMap::default(),
            pending_nicks: IdMap::default(),
            was_up: false,
            failure_logged: false,
            out: Vec::new(),
        }
    }

    // -- what the loop asks --------------------------------------------------------

    /// What the chat part must do, oldest first.
    pub fn take_out(&mut self) -> Vec<ClusterOut> {
        std::mem::take(&mut self.out)
    }

    /// Connected and resynchronised: joins and admin changes may go ahead
    /// (the control part refuses changes to shared state until then).
    pub fn ready(&self) -> bool {
        self.link.connected() && self.synced
    }

    /// The link's descriptor and whether it waits to read and to write.
    pub fn watch(&self) -> Option<(std::os::fd::RawFd, bool, bool)> {
        let fd = self.link.fd()?;
        Some((fd, self.link.connected(), self.link.wants_write()))
    }

    /// When the loop must come back: the link's timers, the next heartbeat.
    pub fn deadline(&self) -> Option<Instant> {
        let beat = self.link.connected().then_some(self.next_heartbeat);
        match (self.link.deadline(), beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// For `chatctl status`.
    /// The link is up and this node synchronised (the metrics).
    pub fn is_up(&self) -> bool {
        self.link.connected() && self.synced
    }

    pub fn status(&self) -> String {
        let state = if self.link.connected() && !self.synced {
            "synchronising"
        } else {
            self.link.describe_state()
        };
        format!("{state} as node '{}' via {}", self.node, self.link.url())
    }

    // -- the link's I/O ------------------------------------------------------------

    /// Timers: the link's, and the heartbeat when due.
    pub fn tick(&mut self, sh: &mut Shared, here: &dyn Here) {
        let now = sh.now;
        let mut events = Vec::new();
        self.link.tick(now, &mut events);
        if self.link.connected() && self.greeted && now >= self.next_heartbeat {
            self.next_heartbeat = now + HEARTBEAT_EVERY;
            let msg = shared::eval(
                &shared::heartbeat_script(),
                &[
                    self.node.as_bytes(),
                    self.token.as_bytes(),
                    HEARTBEAT_TTL.as_millis().to_string().as_bytes(),
                ],
            );
            self.link.send(Purpose::Heartbeat, &msg);
            self.renew_holds(sh, here);
        }
        self.on_link(sh, here, events);
    }

    /// The link's socket is ready.
    pub fn ready_io(&mut self, sh: &mut Shared, here: &dyn Here, readable: bool) {
        let mut events = Vec::new();
        self.link.on_ready(sh.now, readable, &mut events);
        self.on_link(sh, here, events);
    }

    /// One write of what waits for Redis.
    pub fn flush(&mut self, sh: &mut Shared, here: &dyn Here) {
        let mut events = Vec::new();
        self.link.flush(sh.now, &mut events);
        self.on_link(sh, here, events);
    }

    /// At exit: the node's members leave the shared state now rather than
    /// when the heartbeat expires (one last non-blocking write).
    pub fn goodbye(&mut self) {
        if self.link.connected() {
            let msg = shared::eval(
                &shared::bye_script(),
                &[self.node.as_bytes(), self.token.as_bytes()],
            );
            self.link.send(Purpose::Ignore, &msg);
            self.link.last_flush();
        }
    }

    /// What the link reported, in order.
    fn on_link(&mut self, sh: &mut Shared, here: &dyn Here, events: Vec<LinkEvent>) {
        for event in events {
            match event {
                LinkEvent::Connected => self.connected(sh, here),
                LinkEvent::Reply(purpose, frame) => self.reply(sh, here, purpose, &frame),
                LinkEvent::Push(frame) => self.push(sh, here, &frame),
                LinkEvent::Lost { why, unanswered } => self.lost(sh, &why, unanswered),
            }
        }
    }

    /// Connected: RESP3, then the heartbeat (which also checks that no
    /// other live chatd uses this node id); its answer starts the sync.
    fn connected(&mut self, sh: &mut Shared, here: &dyn Here) {
        let hello = self.link.hello(&self.node);
        self.link.send(Purpose::Hello, &hello);
        self.greeted = true;
        self.next_heartbeat = sh.now;
        sh.log.info(format!(
            "cluster: connected to Redis at {}; synchronising",
            self.link.url()
        ));
        self.tick(sh, here);
    }

    /// The link broke: what the node knew of this connection is void, and
    /// the joins waiting for a verdict get 503.
    fn lost(&mut self, sh: &mut Shared, why: &str, unanswered: Vec<Purpose>) {
        self.subscribed.clear();
        self.synced = false;
        self.greeted = false;
        self.syncing = false;
        let was_up = std::mem::replace(&mut self.was_up, false);
        if was_up || !self.failure_logged {
            self.failure_logged = true;
            sh.log.warn(format!(
                "cluster: {why}; local members keep talking, joins get 503 until Redis is back (retrying)"
            ));
        }
        for p in unanswered {
            if let Purpose::Join(id) = p {
                self.pending_joins.remove(&id);
                self.unavailable(sh, id);
            }
        }
        // Nick claims are answered: undecidable for now.
        for (id, (nick, _)) in std::mem::take(&mut self.pending_nicks) {
            self.out.push(ClusterOut::NickVerdict {
                id,
                nick,
                verdict: NickVerdict::Unavailable,
            });
        }
        // Joins queued but never sent are refused the same way.
        let ids: Vec<ConnId> = self.pending_joins.keys().copied().collect();
        for id in ids {
            self.pending_joins.remove(&id);
            self.unavailable(sh, id);
        }
    }

    /// A join the cluster cannot decide: 503.
    fn unavailable(&mut self, sh: &mut Shared, id: ConnId) {
        let event = Event::error(
            ErrorCode::Unavailable,
            None,
            "the cluster store is unreachable; try again shortly",
        );
        sh.counters.refusals += 1;
        self.out.push(ClusterOut::VerdictGiven(id));
        self.out.push(ClusterOut::Finish(id, Some(event)));
    }

    // -- replies ------------------------------------------------------------------

    fn reply(&mut self, sh: &mut Shared, here: &dyn Here, purpose: Purpose, frame: &Frame) {
        match purpose {
            Purpose::Hello => {
                if let Some(e) = shared::error(frame) {
                    // WRONGPASS, NOAUTH, NOPERM: nothing works without it.
                    let why = format!("Redis refused the login (HELLO): {e}");
                    self.broken(sh, here, why);
                }
            }
            Purpose::Ignore => {
                if let Some(e) = shared::error(frame) {
                    sh.log.warn(format!("cluster: Redis said: {e}"));
                }
            }
            Purpose::Heartbeat => self.on_heartbeat(sh, here, frame),
            Purpose::Sync => self.on_sync(sh, here, frame),
            Purpose::Snapshot => match shared::snapshot(frame) {
                Ok(snapshot) => self.apply_snapshot(sh, here, snapshot),
                Err(e) => self.broken(sh, here, format!("a snapshot: {e}")),
            },
            Purpose::Join(id) => self.on_join_verdict(sh, here, id, frame),
            Purpose::RoomCreate(room) => self.on_room_created(sh, &room, frame),
            Purpose::Nick(id) => self.on_nick_verdict(sh, id, frame),
            Purpose::Backfill(room) => self.on_backfill(sh, &room, frame),
            Purpose::Direct(id, target) => {
                // PUBLISH answers how many subscribers heard it.
                if matches!(frame, Frame::Number { data: 0, .. }) {
                    self.out.push(ClusterOut::NoSuchNick { id, target });
                } else if let Some(e) = shared::error(frame) {
                    sh.log.warn(format!("cluster: Redis said: {e}"));
                }
            }
        }
    }

    /// Something Redis said that makes no sense: drop the link; the
    /// reconnect resynchronises.
    fn broken(&mut self, sh: &mut Shared, here: &dyn Here, why: String) {
        let mut events = Vec::new();
        self.link.drop_link(sh.now, why, &mut events);
        self.on_link(sh, here, events);
    }

    fn on_heartbeat(&mut self, sh: &mut Shared, here: &dyn Here, frame: &Frame) {
        if let Some(e) = shared::error(frame) {
            self.broken(sh, here, format!("heartbeat: {e}"));
            return;
        }
        let items = shared::items(frame);
        let word = items.first().and_then(shared::text).unwrap_or("");
        if word == "taken" {
            let node = self.node.clone();
            sh.log.error(format!(
                "cluster: node id '{node}' is held by another live chatd; give each node its own --node-id (retrying)"
            ));
            self.failure_logged = true;
            self.broken(sh, here, format!("node id '{node}' in use"));
            return;
        }
        let reaped: usize = items
            .get(1)
            .and_then(shared::text)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if reaped > 0 {
            sh.log.warn(format!(
                "cluster: removed {reaped} member(s) of node(s) whose heartbeat expired"
            ));
        }
        let emptied = items.get(2).and_then(shared::text) == Some("0");
        if emptied && self.synced {
            // Everything shared is gone while this node held a copy: the
            // copy seeds it again (rooms, settings, accounts, members).
            self.synced = false;
            sh.log.warn(
                "cluster: the shared state in Redis is gone (FLUSHALL, eviction, or a restart without persistence); seeding it again from this node",
            );
        }
        if !self.synced && !self.syncing {
            self.syncing = true;
            self.sync(sh, here);
        }
    }

    /// Something read from Redis that no chatd node would have written:
    /// dropped and counted (`stats`: cluster_dropped), and logged at the
    /// 1st, 2nd, 4th, 8th... time, so a flood cannot flood the log.
    fn drop_item(&mut self, sh: &mut Shared, what: &str, why: String) {
        sh.counters.cluster_dropped += 1;
        let n = sh.counters.cluster_dropped;
        if n.is_power_of_two() {
            sh.log.warn(format!(
                "cluster: dropped {what} from Redis: {}; {n} dropped so far (is something else writing to chatd's keys or channels?)",
                crate::core::text::printable(&why)
            ));
        }
    }
}
