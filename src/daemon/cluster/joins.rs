//! Joins and their verdicts, leaves, the room channels subscribed to,
//! messages both ways, and back-pressure between nodes (holds).

use super::{Cluster, ClusterOut, Here, PendingJoin, Purpose, mirror::record_json};
use crate::core::cluster::{
    self as shared, ChatMessage, Frame, JoinRequest, JoinVerdict, MemberRecord,
};
use crate::core::hub::{ConnId, Delivery, Departure, RoomId};
use crate::core::names::comparison_key;
use crate::core::wire::{ErrorCode, Event, EventKind};
use crate::daemon::shared::Shared;

impl Cluster {
    // -- joins ---------------------------------------------------------------------

    /// A handshake that passed every local check asks Redis for a seat.
    pub fn join(&mut self, sh: &mut Shared, req: JoinRequest) {
        let JoinRequest {
            id,
            peer,
            hs,
            username,
            login,
            irc,
        } = req;
        if !self.ready() {
            sh.log.warn(format!(
                "refused 503 to '{username}': the cluster store is unreachable"
            ));
            self.unavailable(sh, id);
            return;
        }
        let record = MemberRecord {
            name: username.clone(),
            node: self.node.clone(),
            addr: peer.to_string(),
            at: sh.ts().to_string(),
            irc,
        };
        self.subscribe_room(&hs.room);
        let msg = shared::eval(
            &shared::join_script(),
            &[
                hs.room.as_bytes(),
                comparison_key(&username).as_bytes(),
                record_json(&record).as_bytes(),
                record.node.as_bytes(),
            ],
        );
        self.link.send(Purpose::Join(id), &msg);
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

    pub(super) fn on_join_verdict(
        &mut self,
        sh: &mut Shared,
        here: &dyn Here,
        id: ConnId,
        frame: &Frame,
    ) {
        let Some(p) = self.pending_joins.remove(&id) else {
            return;
        };
        self.out.push(ClusterOut::VerdictGiven(id));
        let room = p.hs.room.clone();
        let gone = !here.has(id);
        let refuse = |code: ErrorCode, reason: String| ClusterOut::Refused {
            id,
            username: p.username.clone(),
            code,
            reason,
            room: room.clone(),
        };
        match shared::join_verdict(frame) {
            Ok(JoinVerdict::Admitted) if gone => {
                // It left while Redis decided: give the seat back.
                self.send_leave(&room, &p.username, "left before its join was confirmed");
            }
            Ok(JoinVerdict::Admitted) => {
                let r = &p.record;
                match sh
                    .hub
                    .join_admitted(id, &r.name, &room, &r.addr, &r.at, &r.node)
                {
                    Ok(delivery) => self.out.push(ClusterOut::Joined {
                        id,
                        hs: p.hs.clone(),
                        username: p.username.clone(),
                        login: p.login,
                        delivery,
                    }),
                    Err(refusal) => {
                        self.send_leave(&room, &p.username, "refused locally");
                        self.out.push(refuse(refusal.code, refusal.reason.clone()));
                    }
                }
            }
            _ if gone => {}
            Ok(JoinVerdict::NoSuchRoom) => {
                let reason = format!("no room named '{room}'");
                self.out.push(refuse(ErrorCode::NoSuchRoom, reason));
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
                self.out.push(refuse(ErrorCode::NameTaken, reason));
            }
            Ok(JoinVerdict::NameHeld(holder)) => {
                let reason = if holder.is_empty() {
                    "your nick is no longer yours in the cluster; reconnect".to_string()
                } else if holder == p.username {
                    format!("username '{holder}' is taken elsewhere in the cluster")
                } else {
                    format!(
                        "username '{}' looks like '{holder}', who is elsewhere in the cluster",
                        p.username
                    )
                };
                self.out.push(refuse(ErrorCode::NameTaken, reason));
            }
            Ok(JoinVerdict::Full { members, limit }) => {
                let reason = format!("room '{room}' is full ({members} of {limit})");
                self.out.push(refuse(ErrorCode::RoomFull, reason));
            }
            Err(e) => {
                sh.log.warn(format!("cluster: a join's verdict: {e}"));
                self.unavailable(sh, id);
            }
        }
        self.unsubscribe_if_unused(sh, here, &room);
    }

    /// A local member left its room (`dep` from the hub): Redis forgets it
    /// and the other nodes hear of it.
    pub fn left(&mut self, sh: &Shared, here: &dyn Here, dep: &Departure, why: &str) {
        self.send_leave(&dep.room, &dep.member.username, why);
        self.unsubscribe_if_unused(sh, here, &dep.room);
    }

    fn send_leave(&mut self, room: &str, username: &str, why: &str) {
        // While the link is down, the sync after the reconnect does it.
        let msg = shared::eval(
            &shared::leave_script(),
            &[
                room.as_bytes(),
                comparison_key(username).as_bytes(),
                self.node.as_bytes(),
                why.as_bytes(),
            ],
        );
        self.link.send(Purpose::Ignore, &msg);
    }

    // -- room channels -------------------------------------------------------------

    fn subscribe_room(&mut self, room: &str) {
        let channel = shared::room_channel(room);
        if !self.subscribed.contains(&channel)
            && self
                .link
                .send_no_reply(&shared::command(&[b"SUBSCRIBE", channel.as_bytes()]))
        {
            self.subscribed.insert(channel);
        }
    }

    /// A room that keeps a history is followed whether or not it has
    /// members here, so that this node keeps what is said in it too.
    pub(super) fn follow_room(&mut self, sh: &Shared, here: &dyn Here, room: &str) {
        if sh.hub.history_len(room) > 0 {
            self.subscribe_room(room);
        } else {
            self.unsubscribe_if_unused(sh, here, room);
        }
    }

    /// A room channel is dropped when no local member (joined or joining)
    /// is left in the room, and the room keeps no history.
    pub(super) fn unsubscribe_if_unused(&mut self, sh: &Shared, here: &dyn Here, room: &str) {
        if sh.hub.history_len(room) > 0 {
            return;
        }
        let local_member = sh
            .hub
            .participants(room)
            .is_ok_and(|ms| ms.iter().any(|m| here.has(m.conn)));
        let joining = self.pending_joins.values().any(|p| p.hs.room == room);
        if local_member || joining {
            return;
        }
        let channel = shared::room_channel(room);
        if self.subscribed.remove(&channel) {
            self.link
                .send_no_reply(&shared::command(&[b"UNSUBSCRIBE", channel.as_bytes()]));
        }
    }

    // -- messages ------------------------------------------------------------------

    /// A local member's message, already delivered here, goes once to the
    /// room's channel.
    /// With its msgid and time, so every node keeps it alike; a room that
    /// keeps a history also logs it in its stream, for nodes that were
    /// away (history.rs in this directory).
    pub fn publish(&mut self, sh: &Shared, event: &Event) {
        let Some(room) = &event.room else { return };
        if !self.link.connected() {
            self.unpublished += 1;
            return;
        }
        let payload = serde_json::to_vec(&ChatMessage {
            name: event.username.clone(),
            node: self.node.clone(),
            text: event.message.clone(),
            msgid: event.msgid.clone(),
            at_ms: Some(sh.unix_ms()),
        })
        .expect("plain strings serialise");
        let keep = sh.hub.history_len(room);
        if keep > 0 {
            self.link
                .send(Purpose::Ignore, &shared::log_append(room, keep, &payload));
        }
        let channel = shared::room_channel(room);
        self.link.send(
            Purpose::Ignore,
            &shared::command(&[b"PUBLISH", channel.as_bytes(), &payload]),
        );
    }

    /// A pub/sub push: an event on `chatd:events`, or a message on a room
    /// channel.
    pub(super) fn push(&mut self, sh: &mut Shared, here: &dyn Here, frame: &Frame) {
        let Some((channel, payload)) = shared::message(frame) else {
            return; // subscribe confirmations and the like
        };
        if payload.len() > shared::MAX_PAYLOAD {
            let why = format!("{} bytes on {channel}", payload.len());
            self.drop_item(sh, "an oversized payload", why);
            return;
        }
        if channel == shared::EVENTS {
            match serde_json::from_slice(payload) {
                Ok(event) => self.apply_event(sh, here, event),
                Err(e) => self.drop_item(sh, "an event", e.to_string()),
            }
        } else if let Some(key) = shared::channel_nick(channel) {
            let key = key.to_string();
            self.remote_direct(sh, &key, payload);
        } else if let Some(room) = shared::channel_room(channel) {
            let room = room.to_string();
            match serde_json::from_slice::<ChatMessage>(payload) {
                Ok(m) => self.remote_message(sh, &room, m),
                Err(e) => self.drop_item(sh, "a message", e.to_string()),
            }
        }
    }

    fn remote_message(&mut self, sh: &mut Shared, room: &str, m: ChatMessage) {
        if m.node == self.node {
            return; // delivered here when it was sent
        }
        if let Err(why) = m.check(sh.cfg.max_frame) {
            self.drop_item(sh, "a message", why);
            return;
        }
        let Some(room_id) = sh.hub.room_id_of(room) else {
            return;
        };
        // Only a member of the room, on the node the message names, speaks.
        let member = sh
            .hub
            .conn_of(room, &m.name)
            .is_some_and(|(_, held)| held.node == m.node && held.username == m.name);
        if !member {
            let why = format!("'{}' of node '{}' is not in room '{room}'", m.name, m.node);
            self.drop_item(sh, "a message", why);
            return;
        }
        let at_ms = sent_at(sh, m.at_ms);
        let event = Event {
            kind: EventKind::Message,
            username: m.name,
            message: m.text,
            room: Some(room.to_string()),
            msgid: m.msgid,
            ..Event::default()
        };
        let delivery = Delivery {
            room: room_id,
            event,
            to: sh.hub.member_conns(room_id).collect(),
        };
        sh.remember_at(&delivery, at_ms);
        sh.counters.messages_relayed += 1;
        self.out.push(ClusterOut::FromElsewhere(delivery));
    }

    // -- back-pressure between nodes ----------------------------------------------

    /// A room's members here started (or stopped) being backed up: the
    /// other nodes hold the room back too (or let it go), so that a
    /// sender elsewhere slows down instead of this node's readers being
    /// dropped as slow consumers.
    pub fn hold(&mut self, sh: &Shared, room: RoomId, on: bool) {
        let Some(name) = sh.hub.room_name(room) else {
            return;
        };
        let remote = sh
            .hub
            .participants(name)
            .is_ok_and(|ms| ms.iter().any(|m| m.node != self.node));
        if !remote && on {
            return; // nobody elsewhere to slow down
        }
        let event = shared::hold_event(name, &self.node, on);
        self.link.send(
            Purpose::Ignore,
            &shared::command(&[b"PUBLISH", shared::EVENTS.as_bytes(), &event]),
        );
    }

    /// Every heartbeat: this node's holds are said again (they expire
    /// elsewhere after [`shared::HOLD_TTL`]), and others' expired holds
    /// are let go.
    pub(super) fn renew_holds(&mut self, sh: &Shared, here: &dyn Here) {
        for room in here.holding() {
            self.hold(sh, room, true);
        }
        self.out.push(ClusterOut::ExpireHolds);
    }

    /// Another node holds `room` back, or lets it go.
    pub(super) fn apply_hold(&mut self, sh: &Shared, room: &str, from: &str, on: bool) {
        if from == self.node {
            return;
        }
        let Some(id) = sh.hub.room_id_of(room) else {
            return;
        };
        let until = on.then(|| sh.now + shared::HOLD_TTL);
        self.out.push(ClusterOut::HeldBy {
            room: id,
            node: from.to_string(),
            until,
        });
    }
}

/// When another node's message was sent, as this node keeps it: the
/// sender's time, unless it is absent or more than a minute from this
/// node's clock (then this node's: history stays in order of arrival).
fn sent_at(sh: &Shared, theirs: Option<u64>) -> u64 {
    let ours = sh.unix_ms();
    match theirs {
        Some(t) if t.abs_diff(ours) <= 60_000 => t,
        _ => ours,
    }
}
