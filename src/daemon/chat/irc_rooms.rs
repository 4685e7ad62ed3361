//! The IRC door's rooms: JOIN (several channels and keys, `JOIN 0`; a
//! missing room made by `--room-creation`, its first member its operator;
//! a room's access (core/access.rs) and modes (core/modes.rs); the join
//! rate) and PART.

use super::irc::{CHAN_LIMIT, MAX_TEMPORARY_ROOMS};
use super::{Chat, Parked};
use crate::cli::chatd::RoomCreation;
use crate::core::access::{self, RoomEntry};
use crate::core::hub::{ConnId, Delivery, RoomId};
use crate::core::irc::Message;
use crate::core::ircmap;
use crate::core::wire::{self, Departed};
use crate::daemon::accounts::Verdict;
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

impl Chat {
    // -- rooms ---------------------------------------------------------------------

    pub(super) fn on_join(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(list) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["JOIN", "Not enough parameters"]);
        };
        if list == "0" {
            let rooms = sh.hub.rooms_of(id).to_vec();
            for room in rooms {
                self.part_one(sh, id, room, "");
            }
            return;
        }
        let keys: Vec<&str> = msg.param(1).unwrap_or("").split(',').collect();
        let channels: Vec<&str> = list.split(',').filter(|c| !c.is_empty()).collect();
        for (i, channel) in channels.iter().enumerate() {
            let key = keys.get(i).copied().filter(|k| !k.is_empty());
            self.join_one(sh, id, channel, key, msg);
            let Some(c) = self.conns.get(&id) else {
                return;
            };
            if c.awaiting_verdict {
                // The cluster decides this one; the rest wait for it.
                let rest = Chat::rest_of_join(&channels, &keys, i + 1);
                if let Some(c) = self.irc_mut(id) {
                    c.join_rest = rest;
                }
                return;
            }
            if c.parked || c.session.is_closing() {
                return;
            }
        }
    }

    /// The room a channel names: by exact name, else the one room whose
    /// name matches ignoring ASCII case (IRC channels ignore case).
    pub(super) fn room_named(sh: &Shared, channel: &str) -> Option<String> {
        let wanted = ircmap::room_of(channel)?;
        if sh.hub.room_id_of(wanted).is_some() {
            return Some(wanted.to_string());
        }
        let mut found = sh
            .hub
            .list()
            .into_iter()
            .filter(|r| r.name.eq_ignore_ascii_case(wanted));
        match (found.next(), found.next()) {
            (Some(r), None) => Some(r.name),
            _ => None,
        }
    }

    pub(super) fn join_one(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        channel: &str,
        key: Option<&str>,
        msg: &Message,
    ) {
        let Some(wanted) = ircmap::room_of(channel).map(str::to_string) else {
            return self.numeric(sh, id, "403", &[channel, "No such channel"]);
        };
        let mut created = false;
        let room = match Chat::room_named(sh, channel) {
            Some(room) => room,
            None => {
                let (who, logged_in) = self.irc(id).map_or(("?".into(), false), |c| {
                    (c.target().to_string(), c.account.is_some())
                });
                match Chat::create_by_joining(sh, &who, logged_in, &wanted) {
                    Ok(()) => {
                        created = true;
                        wanted
                    }
                    Err(why) => return self.numeric(sh, id, "403", &[channel, &why]),
                }
            }
        };
        let channel = ircmap::channel_of(&room).unwrap_or_else(|| channel.to_string());
        if sh
            .hub
            .room_id_of(&room)
            .is_some_and(|r| sh.hub.rooms_of(id).contains(&r))
        {
            return;
        }
        if sh.hub.rooms_of(id).len() >= CHAN_LIMIT {
            return self.numeric(
                sh,
                id,
                "405",
                &[&channel, "You have joined too many channels"],
            );
        }
        let Some(c) = self.irc(id) else {
            return;
        };
        let nick = c.target().to_string();
        let logged_in = c.account.is_some();
        let peer = self.conns[&id].peer;
        if let Err(why) = self.take_join(sh, id) {
            return self.numeric(
                sh,
                id,
                "437",
                &[&channel, &format!("Cannot join now: {why}")],
            );
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.join_paid = false; // Every JOIN counts against the rate.
        }
        let entry =
            access::room_entry(&room, sh.hub.access(&room), &nick, logged_in, key.is_some());
        match entry {
            RoomEntry::Admitted => {}
            RoomEntry::Forbidden(why) => {
                sh.counters.refusals += 1;
                sh.log
                    .warn(format!("refused 403 to '{nick}' from {peer} (IRC): {why}"));
                let code = if key.is_some() { "475" } else { "473" };
                return self.numeric(
                    sh,
                    id,
                    code,
                    &[&channel, &format!("Cannot join channel: {why}")],
                );
            }
            RoomEntry::CheckKey { hash } => {
                match sh
                    .accounts
                    .check_secret(sh.now, peer.ip(), key.unwrap_or(""), &hash)
                {
                    Verdict::Allowed { .. } => {}
                    Verdict::Later => return self.park(id, Parked::Irc(msg.clone())),
                    Verdict::Unauthorized(why) if why.starts_with("too many") => {
                        return self.numeric(sh, id, "475", &[&channel, &why]);
                    }
                    Verdict::Busy => {
                        let why = "too many logins to check right now; try again in a second";
                        return self.numeric(sh, id, "475", &[&channel, why]);
                    }
                    Verdict::Unauthorized(_) => {
                        sh.counters.refusals += 1;
                        return self.numeric(
                            sh,
                            id,
                            "475",
                            &[&channel, "Cannot join channel (+k): wrong room key"],
                        );
                    }
                }
            }
        }
        if let Some(code) = self.modes_refuse(sh, id, &room, key) {
            sh.counters.refusals += 1;
            let why = match code {
                "473" => "Cannot join channel (+i): invite only",
                "474" => "Cannot join channel (+b): you are banned",
                _ => "Cannot join channel (+k): wrong key",
            };
            return self.numeric(sh, id, code, &[&channel, why]);
        }
        if self.clustered {
            return self.join_in_cluster(id, &room);
        }
        let joined_at = sh.ts().to_string();
        match sh.hub.join(id, &nick, &room, &peer.to_string(), &joined_at) {
            Ok(delivery) => self.irc_entered(sh, id, &delivery, &room, created),
            Err(refusal) => {
                let code = match refusal.code {
                    wire::ErrorCode::RoomFull => "471",
                    wire::ErrorCode::NoSuchRoom => "403",
                    _ => "437",
                };
                sh.counters.refusals += 1;
                self.numeric(
                    sh,
                    id,
                    code,
                    &[
                        &channel,
                        &format!("Cannot join channel: {}", refusal.reason),
                    ],
                );
            }
        }
    }

    /// `id` is in `room` now (the hub, or the cluster, admitted it): the
    /// room sees JOIN, the joiner gets the topic and the names.
    pub(super) fn irc_entered(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        delivery: &Delivery,
        room: &str,
        created: bool,
    ) {
        sh.counters.joins += 1;
        if let Some(m) = sh.hub.modes_mut(delivery.room) {
            m.invited.remove(&id);
            if created {
                m.ops.insert(id);
            }
        }
        let (nick, peer) = (
            self.irc(id)
                .map(|c| c.target().to_string())
                .unwrap_or_default(),
            self.peer_text(id),
        );
        self.id_log(
            sh,
            id,
            Level::Info,
            format!("join: '{nick}' entered room '{room}' from {peer} (IRC)"),
        );
        self.deliver_here(sh, delivery);
        self.away_on_join(sh, id, delivery.room);
        self.grant_op(sh, id, delivery.room);
        self.send_topic(sh, id, delivery.room, false);
        self.send_names(sh, id, room);
        self.play_back(sh, id, delivery.room);
    }

    /// A room's own modes' refusal of a joiner (invite-only 473, banned
    /// 474, a wrong MODE +k key 475), if any.
    pub(super) fn modes_refuse(
        &self,
        sh: &Shared,
        id: ConnId,
        room: &str,
        key: Option<&str>,
    ) -> Option<&'static str> {
        let rid = sh.hub.room_id_of(room)?;
        let modes = sh.hub.modes(rid)?;
        let nick = self.irc(id)?.target().to_string();
        let source = self.source_of(sh, &nick);
        if !modes.may_enter(id, &source) {
            return Some("473");
        }
        if !modes.excepted(id, &source)
            && self
                .ban_refusal(sh, id, &ircmap::name_of(&nick), room)
                .is_some()
        {
            return Some("474");
        }
        if let Some(k) = &modes.key
            && key != Some(k.as_str())
            && !modes.invited.contains(&id)
        {
            return Some("475");
        }
        None
    }

    /// away-notify: an away user joined; the room's IRC members who asked
    /// hear it is away.
    pub(super) fn away_on_join(&mut self, sh: &mut Shared, id: ConnId, room: RoomId) {
        let Some((nick, Some(away))) = self
            .irc(id)
            .map(|c| (c.target().to_string(), c.away.clone()))
        else {
            return;
        };
        let line = Message::new(Some(&self.source_of(sh, &nick)), "AWAY", &[&away]).encode();
        let members: Vec<ConnId> = sh.hub.member_conns(room).filter(|&m| m != id).collect();
        for m in members {
            if self.irc(m).is_some_and(|c| c.has("away-notify")) {
                self.irc_send(sh, m, &line);
            }
        }
    }

    /// `--room-creation`: a room that does not exist is made by joining
    /// it (never saved; gone when empty), or why not; `who` for the log.
    pub(super) fn create_by_joining(
        sh: &mut Shared,
        who: &str,
        logged_in: bool,
        room: &str,
    ) -> Result<(), String> {
        let may = match sh.cfg.room_creation {
            RoomCreation::Admin => false,
            RoomCreation::Accounts => logged_in,
            RoomCreation::Anyone => true,
        };
        if !may {
            return Err(match sh.cfg.room_creation {
                RoomCreation::Accounts => {
                    "No such channel (only logged-in users may create rooms here)".into()
                }
                _ => "No such channel (rooms are created by the administrator here)".into(),
            });
        }
        let temporary = sh.hub.list().iter().filter(|r| r.temporary).count();
        if temporary >= MAX_TEMPORARY_ROOMS {
            return Err("No such channel (too many rooms made by joining; try later)".into());
        }
        sh.hub
            .create_temporary_room(room, sh.cfg.room_limit, sh.unix())
            .and_then(|_| sh.hub.set_history(room, sh.cfg.history_default))
            .map_err(|e| format!("No such channel ({})", e.message()))?;
        sh.log.info(format!(
            "room '{room}' made by joining it, by '{who}' (limit {})",
            sh.cfg.room_limit
        ));
        Ok(())
    }

    pub(super) fn on_part(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(list) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["PART", "Not enough parameters"]);
        };
        let reason = msg.param(1).unwrap_or("").to_string();
        for channel in list.split(',').filter(|c| !c.is_empty()) {
            let room = Chat::room_named(sh, channel).and_then(|r| sh.hub.room_id_of(&r));
            match room {
                None => self.numeric(sh, id, "403", &[channel, "No such channel"]),
                Some(r) if !sh.hub.rooms_of(id).contains(&r) => {
                    self.numeric(sh, id, "442", &[channel, "You're not on that channel"]);
                }
                Some(r) => self.part_one(sh, id, r, &reason),
            }
        }
    }

    /// Leaves one room: the room (and the parter) see PART.
    pub(super) fn part_one(&mut self, sh: &mut Shared, id: ConnId, room: RoomId, reason: &str) {
        let Some(mut dep) = sh.hub.leave_room(id, room) else {
            return;
        };
        let line = format!(
            "leave: '{}' left room '{}' ({}): parted",
            dep.member.username, dep.room, dep.member.address
        );
        self.id_log(sh, id, Level::Info, line);
        dep.notice.event.departed = Departed::Parted(reason.to_string());
        self.deliver_irc(sh, &[id], &dep.notice.event, false);
        self.deliver_here(sh, &dep.notice);
        if self.clustered {
            self.out
                .push(super::ChatOut::Left(dep, "parted".to_string()));
        }
    }
}
