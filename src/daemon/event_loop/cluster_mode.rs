//! Cluster mode, the loop's side: what the link to Redis (`daemon/cluster.rs`)
//! reports becomes changes to the hub, and what the hub does locally goes
//! to Redis.
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

use std::time::Instant;

use super::Server;
use crate::core::cluster::{
    self as shared, ChatMessage, ClusterEvent, JoinVerdict, MemberRecord, RoomDef, Snapshot,
};
use crate::core::control::{Change, Request};
use crate::core::hub::{Access, ConnId, Delivery, RoomId, RoomInfo};
use crate::core::names::comparison_key;
use crate::core::wire::{ErrorCode, Event, EventKind, Handshake};
use crate::daemon::cluster::{HEARTBEAT_EVERY, HEARTBEAT_TTL, LinkEvent, Purpose};

/// A handshake waiting for the cluster's verdict.
pub struct PendingJoin {
    hs: Handshake,
    username: String,
    login: &'static str,
    record: MemberRecord,
}

impl Server {
    fn node(&self) -> &str {
        self.cluster.as_ref().map_or("", |l| l.node.as_str())
    }

    // -- the link's I/O ----------------------------------------------------------

    pub(super) fn cluster_tick(&mut self, now: Instant) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let mut events = Vec::new();
        link.tick(now, &mut events);
        if link.connected() && link.greeted && now >= link.next_heartbeat {
            link.next_heartbeat = now + HEARTBEAT_EVERY;
            let msg = shared::eval(
                &shared::heartbeat_script(),
                &[
                    link.node.as_bytes(),
                    link.token.as_bytes(),
                    HEARTBEAT_TTL.as_millis().to_string().as_bytes(),
                ],
            );
            link.send(Purpose::Heartbeat, &msg);
            self.renew_holds();
        }
        self.cluster_events(events);
    }

    // -- back-pressure between nodes ----------------------------------------------

    /// A room's members here started (or stopped) being backed up: the
    /// other nodes hold the room back too (or let it go), so that a
    /// sender elsewhere slows down instead of this node's readers being
    /// dropped as slow consumers.
    pub(super) fn cluster_hold(&mut self, room: RoomId, on: bool) {
        let node = self.node().to_string();
        let Some(link) = &mut self.cluster else {
            return;
        };
        let Some(name) = self.sh.hub.room_name(room) else {
            return;
        };
        let remote = self
            .sh
            .hub
            .participants(name)
            .is_ok_and(|ms| ms.iter().any(|m| m.node != node));
        if !remote && on {
            return; // nobody elsewhere to slow down
        }
        let event = shared::hold_event(name, &node, on);
        link.send(
            Purpose::Ignore,
            &shared::command(&[b"PUBLISH", shared::EVENTS.as_bytes(), &event]),
        );
    }

    /// Every heartbeat: this node's holds are said again (they expire
    /// elsewhere after [`shared::HOLD_TTL`]), and others' expired holds
    /// are let go.
    fn renew_holds(&mut self) {
        for room in self.chat.holding() {
            self.cluster_hold(room, true);
        }
        self.chat.expire_holds(&mut self.sh);
    }

    /// Another node holds `room` back, or lets it go.
    fn apply_hold(&mut self, room: &str, from: &str, on: bool) {
        if from == self.node() {
            return;
        }
        let Some(id) = self.sh.hub.room_id_of(room) else {
            return;
        };
        let until = on.then(|| self.sh.now + shared::HOLD_TTL);
        self.chat.held_by(&mut self.sh, id, from, until);
    }

    pub(super) fn cluster_ready(&mut self, now: Instant, readable: bool) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let mut events = Vec::new();
        link.on_ready(now, readable, &mut events);
        self.cluster_events(events);
    }

    pub(super) fn cluster_flush(&mut self) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let mut events = Vec::new();
        link.flush(self.sh.now, &mut events);
        self.cluster_events(events);
    }

    fn cluster_events(&mut self, events: Vec<LinkEvent>) {
        for event in events {
            match event {
                LinkEvent::Connected => self.cluster_connected(),
                LinkEvent::Reply(purpose, frame) => self.cluster_reply(purpose, &frame),
                LinkEvent::Push(frame) => self.cluster_push(&frame),
                LinkEvent::Lost { why, unanswered } => self.cluster_lost(&why, unanswered),
            }
        }
    }

    /// Connected: RESP3, then the heartbeat (which also checks that no
    /// other live chatd uses this node id); its answer starts the sync.
    fn cluster_connected(&mut self) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let hello = link.hello();
        link.send(Purpose::Hello, &hello);
        link.greeted = true;
        link.next_heartbeat = self.sh.now;
        let url = link.url.clone();
        self.sh.log.info(format!(
            "cluster: connected to Redis at {url}; synchronising"
        ));
        self.cluster_tick(self.sh.now);
    }

    fn cluster_lost(&mut self, why: &str, unanswered: Vec<Purpose>) {
        let was_up = std::mem::replace(&mut self.cluster_was_up, false);
        if was_up || !self.cluster_failure_logged {
            self.cluster_failure_logged = true;
            self.sh.log.warn(format!(
                "cluster: {why}; local members keep talking, joins get 503 until Redis is back (retrying)"
            ));
        }
        for p in unanswered {
            if let Purpose::Join(id) = p {
                self.pending_joins.remove(&id);
                self.cluster_unavailable(id);
            }
        }
        // Joins queued but never sent are refused the same way.
        let ids: Vec<ConnId> = self.pending_joins.keys().copied().collect();
        for id in ids {
            self.pending_joins.remove(&id);
            self.cluster_unavailable(id);
        }
    }

    fn cluster_unavailable(&mut self, id: ConnId) {
        let line = self.sh.encode(&Event::error(
            ErrorCode::Unavailable,
            None,
            "the cluster store is unreachable; try again shortly",
        ));
        self.sh.counters.refusals += 1;
        self.chat.verdict_given(id);
        self.chat.finish(&mut self.sh, id, Some(&line));
    }

    // -- replies ------------------------------------------------------------------

    fn cluster_reply(&mut self, purpose: Purpose, frame: &shared::Frame) {
        match purpose {
            Purpose::Hello => {
                if let Some(e) = shared::error(frame) {
                    // WRONGPASS, NOAUTH, NOPERM: nothing works without it.
                    self.cluster_broken(format!("Redis refused the login (HELLO): {e}"));
                }
            }
            Purpose::Ignore => {
                if let Some(e) = shared::error(frame) {
                    self.sh.log.warn(format!("cluster: Redis said: {e}"));
                }
            }
            Purpose::Heartbeat => self.on_heartbeat(frame),
            Purpose::Sync => self.on_sync(frame),
            Purpose::Snapshot => match shared::snapshot(frame) {
                Ok(snapshot) => self.apply_snapshot(snapshot),
                Err(e) => self.cluster_broken(format!("a snapshot: {e}")),
            },
            Purpose::Join(id) => self.on_join_verdict(id, frame),
            Purpose::RoomCreate(room) => self.on_room_created(&room, frame),
        }
    }

    /// Something Redis said that makes no sense: drop the link; the
    /// reconnect resynchronises.
    fn cluster_broken(&mut self, why: String) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let mut events = Vec::new();
        link.drop_link(self.sh.now, why, &mut events);
        self.cluster_events(events);
    }

    fn on_heartbeat(&mut self, frame: &shared::Frame) {
        if let Some(e) = shared::error(frame) {
            self.cluster_broken(format!("heartbeat: {e}"));
            return;
        }
        let items = shared::items(frame);
        let word = items.first().and_then(shared::text).unwrap_or("");
        if word == "taken" {
            let node = self.node().to_string();
            self.sh.log.error(format!(
                "cluster: node id '{node}' is held by another live chatd; give each node its own --node-id (retrying)"
            ));
            self.cluster_failure_logged = true;
            self.cluster_broken(format!("node id '{node}' in use"));
            return;
        }
        let reaped: usize = items
            .get(1)
            .and_then(shared::text)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if reaped > 0 {
            self.sh.log.warn(format!(
                "cluster: removed {reaped} member(s) of node(s) whose heartbeat expired"
            ));
        }
        let emptied = items.get(2).and_then(shared::text) == Some("0");
        let Some(link) = &mut self.cluster else {
            return;
        };
        if emptied && link.synced {
            // Everything shared is gone while this node held a copy: the
            // copy seeds it again (rooms, settings, accounts, members).
            link.synced = false;
            self.sh.log.warn(
                "cluster: the shared state in Redis is gone (FLUSHALL, eviction, or a restart without persistence); seeding it again from this node",
            );
        }
        if !link.synced && !link.syncing {
            link.syncing = true;
            self.cluster_sync();
        }
    }

    /// After (re)connecting: subscribe, make the shared entries of this
    /// node what it holds (seeding the rooms into an empty Redis), then
    /// read everything back.
    fn cluster_sync(&mut self) {
        let node = self.node().to_string();
        let rooms = self.sh.hub.list();
        let flagged: Vec<&str> = self.sh.cfg.rooms.iter().map(|(n, _)| n.as_str()).collect();
        let mut args: Vec<Vec<u8>> = vec![
            node.clone().into_bytes(),
            rooms.len().to_string().into_bytes(),
        ];
        for r in &rooms {
            args.push(r.name.clone().into_bytes());
            args.push(room_def_json(r).into_bytes());
            args.push(if flagged.contains(&r.name.as_str()) {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            });
        }
        let mut channels = vec![shared::EVENTS.to_string()];
        for r in &rooms {
            let Ok(members) = self.sh.hub.participants(&r.name) else {
                continue;
            };
            let mut local = false;
            for m in members {
                if self.chat.has(m.conn) {
                    local = true;
                    args.push(r.name.clone().into_bytes());
                    args.push(comparison_key(&m.username).into_bytes());
                    args.push(
                        record_json(&MemberRecord {
                            name: m.username.clone(),
                            node: node.clone(),
                            addr: m.address.clone(),
                            at: m.joined_at.clone(),
                        })
                        .into_bytes(),
                    );
                }
            }
            if local {
                channels.push(shared::room_channel(&r.name));
            }
        }
        let users = self.sh.accounts.saved();
        let Some(link) = &mut self.cluster else {
            return;
        };
        let mut seed: Vec<&[u8]> = Vec::new();
        for u in &users {
            seed.push(u.name.as_bytes());
            seed.push(u.hash.as_bytes());
        }
        link.send(Purpose::Ignore, &shared::eval(shared::USERS_SEED, &seed));
        let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        subscribe.extend(channels.iter().map(|c| c.as_bytes()));
        link.send_no_reply(&shared::command(&subscribe));
        link.subscribed = channels.iter().cloned().collect();
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        link.send(Purpose::Sync, &shared::eval(&shared::sync_script(), &argv));
        link.send(Purpose::Snapshot, &shared::eval(shared::SNAPSHOT, &[]));
    }

    /// The sync's list of local members Redis could not take back: their
    /// room is gone, or another node's member holds the name now.
    fn on_sync(&mut self, frame: &shared::Frame) {
        if let Some(e) = shared::error(frame) {
            self.cluster_broken(format!("sync: {e}"));
            return;
        }
        let items: Vec<String> = shared::items(frame)
            .iter()
            .filter_map(|f| shared::text(f).map(str::to_string))
            .collect();
        for triple in items.chunks(3) {
            let [room, key, why] = triple else { continue };
            let Ok(members) = self.sh.hub.participants(room) else {
                continue;
            };
            let found = members
                .iter()
                .find(|m| self.chat.has(m.conn) && comparison_key(&m.username) == *key)
                .map(|m| (m.conn, m.username.clone()));
            let Some((conn, name)) = found else { continue };
            let (code, reason) = if why == "gone" {
                (
                    ErrorCode::NoSuchRoom,
                    format!("room '{room}' was closed while the cluster store was away"),
                )
            } else {
                (
                    ErrorCode::NameTaken,
                    format!(
                        "username '{name}' was taken on another node while the cluster store was away"
                    ),
                )
            };
            self.sh.log.warn(format!(
                "cluster: disconnecting '{name}' in '{room}': {reason}"
            ));
            let line = self.sh.encode(&Event::error(code, Some(room), &reason));
            if let Some(dep) = self.sh.hub.leave(conn) {
                self.chat.deliver(&mut self.sh, &dep.notice);
            }
            self.chat.finish(&mut self.sh, conn, Some(&line));
        }
    }

    /// Makes the mirror what Redis holds: rooms created, changed and
    /// closed; other nodes' members added and removed (with the notices
    /// this node's members would have seen).
    fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let Snapshot { rooms, users } = snapshot;
        for name in self.sh.accounts.names() {
            if !users.iter().any(|(n, _)| *n == name) {
                self.sh.accounts.remove(&name);
            }
        }
        for (name, hash) in users {
            if self.sh.accounts.hash_of(&name) != Some(hash.as_str()) {
                self.mirror_account(&name, hash);
            }
        }
        let node = self.node().to_string();
        let names: Vec<String> = rooms.iter().map(|r| r.name.clone()).collect();
        for r in self.sh.hub.list() {
            if !names.contains(&r.name) {
                self.close_mirrored_room(&r.name, "it no longer exists in the cluster");
            }
        }
        let mut remote = 0;
        for room in rooms {
            self.apply_room_def(&room.name, &room.def);
            let current: Vec<(ConnId, String, String)> = self
                .sh
                .hub
                .participants(&room.name)
                .map(|ms| {
                    ms.iter()
                        .filter(|m| m.node != node)
                        .map(|m| (m.conn, m.username.clone(), m.node.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (conn, name, n) in &current {
                if !room.members.iter().any(|m| &m.name == name && &m.node == n)
                    && let Some(dep) = self.sh.hub.leave(*conn)
                {
                    self.chat.deliver(&mut self.sh, &dep.notice);
                }
            }
            for m in room.members {
                if m.node == node {
                    continue;
                }
                if let Err(why) = m.check() {
                    self.cluster_drop("a member record", why);
                    continue;
                }
                remote += 1;
                if !current
                    .iter()
                    .any(|(_, name, n)| *name == m.name && *n == m.node)
                {
                    self.mirror_join(&room.name, &m);
                }
            }
        }
        let Some(link) = &mut self.cluster else {
            return;
        };
        link.synced = true;
        link.syncing = false;
        let unpublished = std::mem::take(&mut link.unpublished);
        if unpublished > 0 {
            self.sh.log.warn(format!(
                "cluster: {unpublished} message(s) sent while Redis was away reached this node's members only"
            ));
        }
        self.cluster_was_up = true;
        self.cluster_failure_logged = false;
        self.sh.log.info(format!(
            "cluster: in sync as node '{node}': {} room(s), {remote} member(s) on other nodes",
            self.sh.hub.room_count()
        ));
    }

    // -- joins ---------------------------------------------------------------------

    /// A handshake that passed every local check asks Redis for a seat.
    pub(super) fn cluster_join(
        &mut self,
        id: ConnId,
        peer: std::net::SocketAddr,
        hs: Handshake,
        username: String,
        login: &'static str,
    ) {
        let ready = self.cluster.as_ref().is_some_and(|l| l.ready());
        if !ready {
            self.sh.log.warn(format!(
                "refused 503 to '{username}': the cluster store is unreachable"
            ));
            self.cluster_unavailable(id);
            return;
        }
        let record = MemberRecord {
            name: username.clone(),
            node: self.node().to_string(),
            addr: peer.to_string(),
            at: self.sh.ts().to_string(),
        };
        self.subscribe_room(&hs.room);
        let msg = shared::eval(
            shared::JOIN,
            &[
                hs.room.as_bytes(),
                comparison_key(&username).as_bytes(),
                record_json(&record).as_bytes(),
                record.node.as_bytes(),
            ],
        );
        let link = self.cluster.as_mut().expect("checked");
        link.send(Purpose::Join(id), &msg);
        self.pending_joins.insert(
            id,
            PendingJoin {
                hs,
                username,
                login,
                record,
            },
        );
    }

    fn on_join_verdict(&mut self, id: ConnId, frame: &shared::Frame) {
        let Some(p) = self.pending_joins.remove(&id) else {
            return;
        };
        self.chat.verdict_given(id);
        let room = p.hs.room.clone();
        let gone = !self.chat.has(id);
        match shared::join_verdict(frame) {
            Ok(JoinVerdict::Admitted) if gone => {
                // It left while Redis decided: give the seat back.
                self.send_leave(&room, &p.username, "left before its join was confirmed");
            }
            Ok(JoinVerdict::Admitted) => {
                let r = &p.record;
                match self
                    .sh
                    .hub
                    .join_admitted(id, &r.name, &room, &r.addr, &r.at, &r.node)
                {
                    Ok(delivery) => {
                        self.chat
                            .joined(&mut self.sh, id, &p.hs, &p.username, p.login, &delivery);
                    }
                    Err(refusal) => {
                        self.send_leave(&room, &p.username, "refused locally");
                        self.chat.refuse_join(
                            &mut self.sh,
                            id,
                            &p.username,
                            refusal.code,
                            &refusal.reason,
                            &room,
                        );
                    }
                }
            }
            _ if gone => {}
            Ok(JoinVerdict::NoSuchRoom) => {
                let reason = format!("no room named '{room}'");
                self.chat.refuse_join(
                    &mut self.sh,
                    id,
                    &p.username,
                    ErrorCode::NoSuchRoom,
                    &reason,
                    &room,
                );
            }
            Ok(JoinVerdict::NameTaken(holder)) => {
                let reason = if holder.name == p.username {
                    format!(
                        "username '{}' is already in room '{room}' (on node '{}')",
                        p.username, holder.node
                    )
                } else {
                    format!(
                        "username '{}' looks like '{}', who is already in room '{room}' (on node '{}')",
                        p.username, holder.name, holder.node
                    )
                };
                self.chat.refuse_join(
                    &mut self.sh,
                    id,
                    &p.username,
                    ErrorCode::NameTaken,
                    &reason,
                    &room,
                );
            }
            Ok(JoinVerdict::Full { members, limit }) => {
                let reason = format!("room '{room}' is full ({members} of {limit})");
                self.chat.refuse_join(
                    &mut self.sh,
                    id,
                    &p.username,
                    ErrorCode::RoomFull,
                    &reason,
                    &room,
                );
            }
            Err(e) => {
                self.sh.log.warn(format!("cluster: a join's verdict: {e}"));
                self.cluster_unavailable(id);
            }
        }
        self.unsubscribe_if_unused(&room);
    }

    /// A local member left its room (`dep` from the hub): Redis forgets it
    /// and the other nodes hear of it.
    pub(super) fn cluster_left(&mut self, dep: &crate::core::hub::Departure, why: &str) {
        if self.cluster.is_none() {
            return;
        }
        self.send_leave(&dep.room, &dep.member.username, why);
        self.unsubscribe_if_unused(&dep.room);
    }

    fn send_leave(&mut self, room: &str, username: &str, why: &str) {
        let node = self.node().to_string();
        let Some(link) = &mut self.cluster else {
            return;
        };
        // While the link is down, the sync after the reconnect does it.
        let msg = shared::eval(
            &shared::leave_script(),
            &[
                room.as_bytes(),
                comparison_key(username).as_bytes(),
                node.as_bytes(),
                why.as_bytes(),
            ],
        );
        link.send(Purpose::Ignore, &msg);
    }

    fn subscribe_room(&mut self, room: &str) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        let channel = shared::room_channel(room);
        if !link.subscribed.contains(&channel)
            && link.send_no_reply(&shared::command(&[b"SUBSCRIBE", channel.as_bytes()]))
        {
            link.subscribed.insert(channel);
        }
    }

    /// A room channel is dropped when no local member (joined or joining)
    /// is left in the room.
    fn unsubscribe_if_unused(&mut self, room: &str) {
        if self.cluster.is_none() {
            return;
        }
        let local_member = self
            .sh
            .hub
            .participants(room)
            .is_ok_and(|ms| ms.iter().any(|m| self.chat.has(m.conn)));
        let joining = self.pending_joins.values().any(|p| p.hs.room == room);
        if local_member || joining {
            return;
        }
        let link = self.cluster.as_mut().expect("checked");
        let channel = shared::room_channel(room);
        if link.subscribed.remove(&channel) {
            link.send_no_reply(&shared::command(&[b"UNSUBSCRIBE", channel.as_bytes()]));
        }
    }

    // -- messages ------------------------------------------------------------------

    /// A local member's message, already delivered here, goes once to the
    /// room's channel.
    pub(super) fn cluster_publish(&mut self, event: &Event) {
        let node = self.node().to_string();
        let Some(link) = &mut self.cluster else {
            return;
        };
        let Some(room) = &event.room else { return };
        if !link.connected() {
            link.unpublished += 1;
            return;
        }
        let payload = serde_json::to_vec(&ChatMessage {
            name: event.username.clone(),
            node,
            text: event.message.clone(),
        })
        .expect("plain strings serialise");
        let channel = shared::room_channel(room);
        link.send(
            Purpose::Ignore,
            &shared::command(&[b"PUBLISH", channel.as_bytes(), &payload]),
        );
    }

    fn cluster_push(&mut self, frame: &shared::Frame) {
        let Some((channel, payload)) = shared::message(frame) else {
            return; // subscribe confirmations and the like
        };
        if payload.len() > shared::MAX_PAYLOAD {
            let why = format!("{} bytes on {channel}", payload.len());
            self.cluster_drop("an oversized payload", why);
            return;
        }
        if channel == shared::EVENTS {
            match serde_json::from_slice::<ClusterEvent>(payload) {
                Ok(event) => self.apply_event(event),
                Err(e) => self.cluster_drop("an event", e.to_string()),
            }
        } else if let Some(room) = shared::channel_room(channel) {
            let room = room.to_string();
            match serde_json::from_slice::<ChatMessage>(payload) {
                Ok(m) => self.deliver_remote_message(&room, m),
                Err(e) => self.cluster_drop("a message", e.to_string()),
            }
        }
    }

    /// Something read from Redis that no chatd node would have written:
    /// dropped and counted (`stats`: cluster_dropped), and logged at the
    /// 1st, 2nd, 4th, 8th... time, so a flood cannot flood the log.
    fn cluster_drop(&mut self, what: &str, why: String) {
        self.sh.counters.cluster_dropped += 1;
        let n = self.sh.counters.cluster_dropped;
        if n.is_power_of_two() {
            self.sh.log.warn(format!(
                "cluster: dropped {what} from Redis: {}; {n} dropped so far (is something else writing to chatd's keys or channels?)",
                crate::core::text::printable(&why)
            ));
        }
    }

    fn deliver_remote_message(&mut self, room: &str, m: ChatMessage) {
        if m.node == self.node() {
            return; // delivered here when it was sent
        }
        if let Err(why) = m.check(self.sh.cfg.max_frame) {
            self.cluster_drop("a message", why);
            return;
        }
        let Some(room_id) = self.sh.hub.room_id_of(room) else {
            return;
        };
        // Only a member of the room, on the node the message names, speaks.
        let member = self
            .sh
            .hub
            .conn_of(room, &m.name)
            .is_some_and(|(_, held)| held.node == m.node && held.username == m.name);
        if !member {
            let why = format!("'{}' of node '{}' is not in room '{room}'", m.name, m.node);
            self.cluster_drop("a message", why);
            return;
        }
        let event = Event {
            kind: EventKind::Message,
            username: m.name,
            message: m.text,
            room: Some(room.to_string()),
            ..Event::default()
        };
        let delivery = Delivery {
            room: room_id,
            event,
            to: self.sh.hub.member_conns(room_id).collect(),
        };
        self.sh.hub.remember(&delivery, self.sh.stamp.text());
        self.sh.counters.messages_relayed += 1;
        self.chat.deliver_from_elsewhere(&mut self.sh, &delivery);
    }

    // -- the mirror ----------------------------------------------------------------

    fn apply_event(&mut self, event: ClusterEvent) {
        let node = self.node().to_string();
        match event {
            ClusterEvent::Join { room, member } => {
                if member.node == node {
                    return; // this node's own join, applied when admitted
                }
                if let Err(why) = member.check() {
                    self.cluster_drop("a join", why);
                    return;
                }
                let known = self
                    .sh
                    .hub
                    .conn_of(&room, &member.name)
                    .is_some_and(|(_, m)| m.node == member.node && m.username == member.name);
                if !known {
                    self.mirror_join(&room, &member);
                }
            }
            ClusterEvent::Leave {
                room,
                name,
                node: from,
                ..
            } => {
                if from == node {
                    return;
                }
                if let Some((conn, m)) = self.sh.hub.conn_of(&room, &name)
                    && m.node == from
                    && let Some(dep) = self.sh.hub.leave(conn)
                {
                    self.chat.deliver(&mut self.sh, &dep.notice);
                }
            }
            ClusterEvent::Kick {
                room,
                name,
                node: at,
            } => {
                let Some((conn, m)) = self.sh.hub.conn_of(&room, &name) else {
                    return; // kicked here, or already gone
                };
                if m.node != at {
                    return;
                }
                let Ok(kick) = self.sh.hub.kick(&room, &name) else {
                    return;
                };
                if self.chat.has(conn) {
                    self.sh.log.info(format!(
                        "kick: '{name}' removed from room '{room}' by an admin on another node"
                    ));
                    let line = self.sh.encode(&kick.event);
                    self.chat.finish(&mut self.sh, conn, Some(&line));
                }
                self.chat.deliver(&mut self.sh, &kick.departure.notice);
            }
            ClusterEvent::Room { room, def } => self.apply_room_def(&room, &def),
            ClusterEvent::Hold {
                room,
                node: from,
                on,
            } => {
                if let Err(why) = shared::check_node_id(&from) {
                    self.cluster_drop("a hold", why);
                    return;
                }
                self.apply_hold(&room, &from, on);
            }
            ClusterEvent::Close { room } => self.close_mirrored_room(&room, "closed by an admin"),
            ClusterEvent::User { name, hash } => {
                if hash.is_empty() {
                    if self.sh.accounts.remove(&name).is_some() {
                        self.sh
                            .log
                            .info(format!("cluster: account '{name}' deleted on another node"));
                    }
                } else if self.sh.accounts.hash_of(&name) != Some(hash.as_str()) {
                    self.mirror_account(&name, hash);
                    self.sh.log.info(format!(
                        "cluster: account '{name}' registered or changed on another node"
                    ));
                }
            }
        }
    }

    fn mirror_account(&mut self, name: &str, hash: String) {
        if let Err(e) = self.sh.accounts.put(name, hash) {
            self.sh.log.warn(format!(
                "cluster: account '{name}' not mirrored: {}",
                e.message()
            ));
        }
    }

    fn mirror_join(&mut self, room: &str, m: &MemberRecord) {
        let ghost = self.sh.fresh_id();
        if let Ok(delivery) = self
            .sh
            .hub
            .join_admitted(ghost, &m.name, room, &m.addr, &m.at, &m.node)
        {
            self.chat.deliver(&mut self.sh, &delivery);
        }
    }

    /// A room as the cluster defines it: created, or its settings updated.
    fn apply_room_def(&mut self, room: &str, def: &RoomDef) {
        if let Some(bad) = def
            .allowed
            .iter()
            .find(|n| crate::core::names::check_username(n).is_err())
        {
            let why = format!("room '{room}' allows '{bad}', which is no valid name");
            self.cluster_drop("a room definition", why);
            return;
        }
        let access = Access {
            private: def.private,
            allowed: def.allowed.iter().cloned().collect(),
            key_hash: def.key_hash.clone(),
        };
        let result = match self.sh.hub.room(room) {
            Ok(info) => {
                let mut r = Ok(());
                if info.limit != def.limit {
                    r = self.sh.hub.set_limit(room, def.limit).map(|_| ());
                }
                if info.access != access {
                    r = r.and(self.sh.hub.set_access(room, access).map(|_| ()));
                }
                if info.history != def.history {
                    r = r.and(self.sh.hub.set_history(room, def.history).map(|_| ()));
                }
                r
            }
            Err(_) => self
                .sh
                .hub
                .create_room(room, def.limit)
                .and_then(|_| self.sh.hub.set_access(room, access))
                .and_then(|_| self.sh.hub.set_history(room, def.history))
                .map(|_| ()),
        };
        if let Err(e) = result {
            self.sh.log.warn(format!(
                "cluster: room '{room}' not mirrored: {}",
                e.message()
            ));
        }
    }

    fn close_mirrored_room(&mut self, room: &str, why: &str) {
        let Ok(closure) = self.sh.hub.close_room(room) else {
            return;
        };
        let local: Vec<ConnId> = closure
            .members
            .iter()
            .copied()
            .filter(|&c| self.chat.has(c))
            .collect();
        self.sh.log.info(format!(
            "cluster: room '{room}' closed ({why}); {} local member(s) disconnected",
            local.len()
        ));
        let line = self.sh.encode(&closure.event);
        for conn in local {
            self.chat.finish(&mut self.sh, conn, Some(&line));
        }
        self.unsubscribe_if_unused(room);
    }

    // -- admin changes ---------------------------------------------------------------

    /// Changes to shared state (rooms, accounts) wait for the cluster:
    /// refused while it is unreachable.
    pub(super) fn cluster_refuses(&self, req: &Request) -> bool {
        self.cluster.as_ref().is_some_and(|l| !l.ready()) && req.changes_state()
    }

    /// An admin change carried out here goes to Redis, which tells the
    /// other nodes. Every kind of change is named here (no `_` arm): a new
    /// one does not compile until it is replicated.
    pub(super) fn cluster_forward(&mut self, change: &Change) {
        if self.cluster.is_none() {
            return;
        }
        let kick = |room: &str, username: &str| {
            shared::eval(
                shared::KICK,
                &[room.as_bytes(), comparison_key(username).as_bytes()],
            )
        };
        let (purpose, msg) = match change {
            Change::RoomCreated { room } => {
                let Ok(info) = self.sh.hub.room(room) else {
                    return;
                };
                (
                    Purpose::RoomCreate(room.clone()),
                    shared::eval(
                        shared::ROOM_PUT,
                        &[room.as_bytes(), room_def_json(&info).as_bytes(), b"1"],
                    ),
                )
            }
            Change::RoomDenied { room, username } => {
                // A member by that name on another node is kicked by its node.
                if let Some(link) = &mut self.cluster {
                    link.send(Purpose::Ignore, &kick(room, username));
                }
                let Some(put) = self.room_update(room) else {
                    return;
                };
                (Purpose::Ignore, put)
            }
            Change::RoomChanged { room } => {
                let Some(put) = self.room_update(room) else {
                    return;
                };
                (Purpose::Ignore, put)
            }
            Change::RoomClosed { room } => (
                Purpose::Ignore,
                shared::eval(shared::ROOM_DEL, &[room.as_bytes()]),
            ),
            Change::AccountPut { name } => {
                let hash = self
                    .sh
                    .accounts
                    .hash_of(name)
                    .unwrap_or_default()
                    .to_string();
                (
                    Purpose::Ignore,
                    shared::eval(shared::USER_PUT, &[name.as_bytes(), hash.as_bytes()]),
                )
            }
            Change::AccountDeleted { name } => (
                Purpose::Ignore,
                shared::eval(shared::USER_PUT, &[name.as_bytes(), b""]),
            ),
            Change::Kicked { room, username } => (Purpose::Ignore, kick(room, username)),
        };
        if let Some(link) = &mut self.cluster {
            link.send(purpose, &msg);
        }
    }

    /// `ROOM_PUT` of a room's settings as this node now has them.
    fn room_update(&self, room: &str) -> Option<Vec<u8>> {
        let info = self.sh.hub.room(room).ok()?;
        Some(shared::eval(
            shared::ROOM_PUT,
            &[room.as_bytes(), room_def_json(&info).as_bytes(), b"0"],
        ))
    }

    /// Two nodes created the same room at once: the first to reach Redis
    /// defines it, and this node adopts its settings.
    fn on_room_created(&mut self, room: &str, frame: &shared::Frame) {
        let items = shared::items(frame);
        if items.first().and_then(shared::text) != Some("exists") {
            return;
        }
        let Some(def) = items
            .get(1)
            .and_then(shared::text)
            .and_then(|d| serde_json::from_str::<RoomDef>(d).ok())
        else {
            return;
        };
        self.sh.log.warn(format!(
            "cluster: room '{room}' already existed in the cluster; its settings there (limit {}) apply",
            def.limit
        ));
        self.apply_room_def(room, &def);
    }

    /// At exit: the node's members leave the shared state now rather than
    /// when the heartbeat expires (one last non-blocking write).
    pub(super) fn cluster_goodbye(&mut self) {
        let Some(link) = &mut self.cluster else {
            return;
        };
        if link.connected() {
            let msg = shared::eval(
                &shared::bye_script(),
                &[link.node.as_bytes(), link.token.as_bytes()],
            );
            link.send(Purpose::Ignore, &msg);
            link.last_flush();
        }
    }

    /// For `chatctl status`.
    pub(super) fn cluster_status(&self) -> Option<String> {
        let link = self.cluster.as_ref()?;
        Some(format!(
            "{} as node '{}' via {}",
            link.describe_state(),
            link.node,
            link.url
        ))
    }
}

fn room_def_json(info: &RoomInfo) -> String {
    serde_json::to_string(&RoomDef {
        limit: info.limit,
        history: info.history,
        private: info.access.private,
        allowed: info.access.allowed.iter().cloned().collect(),
        key_hash: info.access.key_hash.clone(),
    })
    .expect("plain values serialise")
}

fn record_json(r: &MemberRecord) -> String {
    serde_json::to_string(r).expect("plain strings serialise")
}
