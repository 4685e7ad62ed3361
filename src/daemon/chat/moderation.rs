//! Moderation where the connections are: who a connection is for bans
//! and mutes (its name, the account it logged in as, its address, its
//! IRC source), the checks at join and at each message, the sweep after
//! a ban (members it now matches are removed, on every protocol), room
//! operators' rights by account, and topic changes told to members.
//! The rules themselves live in core/moderation.rs; the commands that
//! change them in control/moderate.rs.

use std::net::IpAddr;

use super::Chat;
use crate::core::control::Request;
use crate::core::hub::{ConnId, RoomId};
use crate::core::irc::Message;
use crate::core::ircmap;
use crate::core::moderation::{self, Who};
use crate::core::session::Input;
use crate::core::wire::{ErrorCode, Event, EventKind};
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// What a connection is, as rules see it.
struct Identity {
    account: Option<String>,
    ip: IpAddr,
    source: String,
}

impl Chat {
    /// `f` of who connection `id` (going by `name`) is, for the rules.
    fn as_who<T>(
        &self,
        sh: &Shared,
        id: ConnId,
        name: &str,
        f: impl FnOnce(&Who) -> T,
    ) -> Option<T> {
        let me = self.identity(sh, id, name)?;
        let who = Who {
            name,
            account: me.account.as_deref(),
            ip: me.ip,
            source: &me.source,
        };
        Some(f(&who))
    }

    fn identity(&self, sh: &Shared, id: ConnId, name: &str) -> Option<Identity> {
        let c = self.conns.get(&id)?;
        let account = match &c.irc {
            Some(irc) => irc.account.clone(),
            None => c.account.clone(),
        };
        Some(Identity {
            account,
            ip: c.peer.ip(),
            source: self.source_of(sh, name),
        })
    }

    /// Why `name` on connection `id` may not enter `room` (a room's ban
    /// or a server-wide one), in words; None if it may.
    pub(super) fn ban_refusal(
        &self,
        sh: &Shared,
        id: ConnId,
        name: &str,
        room: &str,
    ) -> Option<String> {
        self.banned(sh, id, name, room, true)
    }

    /// The same, for a member already in `room`: rules set with IRC's
    /// `+b` (joins only) do not count.
    fn ban_removing(&self, sh: &Shared, id: ConnId, name: &str, room: &str) -> Option<String> {
        self.banned(sh, id, name, room, false)
    }

    fn banned(
        &self,
        sh: &Shared,
        id: ConnId,
        name: &str,
        room: &str,
        joining: bool,
    ) -> Option<String> {
        let now = sh.unix();
        let counts = |r: &&moderation::Rule| joining || !r.joins_only;
        let bans = sh
            .hub
            .room_id_of(room)
            .and_then(|rid| sh.hub.moderation(rid))
            .map_or(&[][..], |m| &m.bans);
        self.as_who(sh, id, name, |who| {
            if let Some(rule) = moderation::find_all(sh.hub.server_bans(), who, now).find(counts) {
                return Some(moderation::ban_words(rule, "this server"));
            }
            let rule = moderation::find_all(bans, who, now).find(counts)?;
            Some(moderation::ban_words(rule, &format!("room '{room}'")))
        })?
    }

    /// Whether `id` operates `room`: an IRC `+o`, or an operator account.
    pub(super) fn operates(&self, sh: &Shared, id: ConnId, room: RoomId) -> bool {
        if sh.hub.modes(room).is_some_and(|m| m.ops.contains(&id)) {
            return true;
        }
        let account = self.conns.get(&id).and_then(|c| match &c.irc {
            Some(irc) => irc.account.clone(),
            None => c.account.clone(),
        });
        sh.hub
            .moderation(room)
            .is_some_and(|m| m.is_op(account.as_deref()))
    }

    /// Why `name` on `id` may not speak in `room` now (the room is
    /// moderated, or it is muted there), in words; None if it may.
    pub(super) fn mute_refusal(
        &self,
        sh: &Shared,
        id: ConnId,
        name: &str,
        room: RoomId,
    ) -> Option<String> {
        let m = sh.hub.moderation(room)?;
        if !m.moderated && m.mutes.is_empty() {
            return None;
        }
        if self.operates(sh, id, room) {
            return None;
        }
        let voiced = sh.hub.modes(room).is_some_and(|m| m.voiced.contains(&id));
        let place = sh.hub.room_name(room).unwrap_or("?");
        if m.moderated && !voiced {
            return Some(format!(
                "room '{place}' is moderated: only its operators and voiced members speak"
            ));
        }
        let now = sh.unix();
        let rule = self.as_who(sh, id, name, |who| m.mute_of(who, now).cloned())??;
        let mut why = format!("you are muted in room '{place}'");
        if !rule.reason.is_empty() {
            why.push_str(&format!(": {}", rule.reason));
        }
        if let Some(t) = rule.until {
            why.push_str(&format!(" (until {})", crate::timefmt::rfc3339(t)));
        }
        Some(why)
    }

    /// After a change of bans or operators in `room` (None: the server's
    /// bans, so every room): this node's members that a ban now matches
    /// are removed (told why, the room told too); IRC members whose
    /// account now operates the room get `+o`.
    pub fn enforce(&mut self, sh: &mut Shared, room: Option<&str>) {
        let rooms: Vec<String> = match room {
            Some(r) => vec![r.to_string()],
            None => sh.hub.list().into_iter().map(|r| r.name).collect(),
        };
        for room in rooms {
            let Ok(members) = sh.hub.participants(&room).map(|ms| {
                ms.iter()
                    .map(|m| (m.conn, m.username.clone()))
                    .collect::<Vec<_>>()
            }) else {
                continue;
            };
            let Some(rid) = sh.hub.room_id_of(&room) else {
                continue;
            };
            for (conn, name) in members {
                if !self.conns.contains_key(&conn) {
                    continue; // Another node's member: its node removes it.
                }
                if let Some(why) = self.ban_removing(sh, conn, &name, &room) {
                    self.remove_banned(sh, &room, &name, &why);
                } else {
                    self.grant_op(sh, conn, rid);
                }
            }
        }
        self.drop_doomed(sh);
    }

    fn remove_banned(&mut self, sh: &mut Shared, room: &str, name: &str, why: &str) {
        let Ok(kick) = sh.hub.kick_with(room, name, why) else {
            return;
        };
        let dep = kick.departure;
        sh.log.info(format!(
            "leave: '{}' removed from room '{room}' ({}): {why}",
            dep.member.username, dep.member.address
        ));
        self.deliver_here(sh, &dep.notice);
        let conn = kick.conn;
        if self.clustered {
            self.out.push(super::ChatOut::Left(dep, why.to_string()));
        }
        self.finish(sh, conn, Some(&kick.event));
    }

    /// An IRC member whose account operates the room becomes `+o`.
    pub(super) fn grant_op(&mut self, sh: &mut Shared, id: ConnId, room: RoomId) {
        let Some(irc) = self.irc(id) else {
            return;
        };
        let account = irc.account.clone();
        let nick = irc.target().to_string();
        let is_op = sh
            .hub
            .moderation(room)
            .is_some_and(|m| m.is_op(account.as_deref()));
        let Some(modes) = sh.hub.modes_mut(room) else {
            return;
        };
        if !is_op || !modes.ops.insert(id) {
            return;
        }
        let Some(channel) = sh.hub.room_name(room).and_then(ircmap::channel_of) else {
            return;
        };
        let server = sh.cfg.irc_server_name.clone();
        let nick = ircmap::nick_of(&nick);
        let line = Message::new(Some(&server), "MODE", &[&channel, "+o", &nick]).encode();
        let members: Vec<ConnId> = sh.hub.member_conns(room).collect();
        for m in members {
            if self.irc(m).is_some() {
                self.irc_send(sh, m, &line);
            }
        }
    }

    /// A room's topic changed (`event`: its text, and who set it in
    /// `reason`): IRC members see TOPIC, the prototype's members who
    /// follow topics a `topic` event.
    pub fn tell_topic(&mut self, sh: &mut Shared, room: &str, event: &Event) {
        let Some(rid) = sh.hub.room_id_of(room) else {
            return;
        };
        let setter = event.reason.clone().unwrap_or_default();
        let source = if setter.contains('!') {
            setter
        } else {
            sh.cfg.irc_server_name.clone()
        };
        let channel = ircmap::channel_of(room).unwrap_or_default();
        let irc_line = Message::new(Some(&source), "TOPIC", &[&channel, &event.message]).encode();
        let members: Vec<ConnId> = sh.hub.member_conns(rid).collect();
        for m in members {
            if self.irc(m).is_some() {
                self.irc_send(sh, m, &irc_line);
            } else if self.conns.get(&m).is_some_and(|c| c.wants_topic) {
                let line = self.encode_for(sh, m, event);
                self.feed(sh, m, Input::Deliver(&line));
            }
        }
        self.drop_doomed(sh);
    }

    /// A room's `room` event: its limit and privacy.
    fn room_facts_event(sh: &Shared, room: RoomId) -> Option<Event> {
        let name = sh.hub.room_name(room)?.to_string();
        let info = sh.hub.room(&name).ok()?;
        let mut event = Event::system(EventKind::Room, "", Some(&name));
        event.facts = Some(crate::core::wire::RoomFacts {
            limit: info.limit,
            private: info.access.private,
        });
        Some(event)
    }

    /// A joiner that asked hears its room's limit and privacy.
    pub(super) fn send_room_facts(&mut self, sh: &mut Shared, id: ConnId, room: RoomId) {
        let Some(event) = Chat::room_facts_event(sh, room) else {
            return;
        };
        let line = self.encode_for(sh, id, &event);
        self.feed(sh, id, Input::Deliver(&line));
    }

    /// A room's limit changed (chatctl, a room operator, IRC's `+l`, or
    /// another node): the members that asked are told.
    pub fn tell_room_facts(&mut self, sh: &mut Shared, room: &str) {
        let Some(rid) = sh.hub.room_id_of(room) else {
            return;
        };
        let Some(event) = Chat::room_facts_event(sh, rid) else {
            return;
        };
        let members: Vec<ConnId> = sh.hub.member_conns(rid).collect();
        for m in members {
            if self.conns.get(&m).is_some_and(|c| c.wants_room) {
                let line = self.encode_for(sh, m, &event);
                self.feed(sh, m, Input::Deliver(&line));
            }
        }
        self.drop_doomed(sh);
    }

    /// A joiner that follows topics hears the room's, after its `join`.
    pub(super) fn send_room_topic(&mut self, sh: &mut Shared, id: ConnId, room: RoomId) {
        let Some(topic) = sh.hub.moderation(room).and_then(|m| m.topic.clone()) else {
            return;
        };
        let name = sh.hub.room_name(room).map(str::to_string);
        let mut event = Event::system(EventKind::Topic, &topic.text, name.as_deref());
        event.reason = Some(topic.by);
        let line = self.encode_for(sh, id, &event);
        self.feed(sh, id, Input::Deliver(&line));
    }

    /// `room`'s lasting settings changed here (an IRC operator's TOPIC,
    /// `+m`, `+b` or `+l`): it is to be saved and shared.
    pub(super) fn changed_room(&mut self, room: &str) {
        if !self.changed_rooms.iter().any(|r| r == room) {
            self.changed_rooms.push(room.to_string());
        }
    }

    /// The rooms to save and share, once each.
    pub fn take_changed_rooms(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed_rooms)
    }

    /// A member's `/command` (the `"commands"` feature): an operator's
    /// becomes the control request it stands for, run by the event loop
    /// as chatctl's are ([`Chat::take_requests`]); anyone may read the
    /// topic with `/topic`.
    pub(super) fn member_command(&mut self, sh: &mut Shared, id: ConnId, text: &str) {
        let Some((room, name)) = sh
            .hub
            .member(id)
            .map(|(room, m)| (room.to_string(), m.username.clone()))
        else {
            return;
        };
        let req = match crate::core::control::member_command(&room, text) {
            Ok(req) => req,
            Err(why) => return self.answer_command(sh, id, Err((ErrorCode::BadRequest, why))),
        };
        let rid = sh.hub.room_id_of(&room).expect("its room");
        let reading = matches!(req, Request::RoomModeration { .. });
        if !reading && !self.operates(sh, id, rid) {
            let why = format!("only the operators of room '{room}' may do that");
            return self.answer_command(sh, id, Err((ErrorCode::Forbidden, why)));
        }
        if reading {
            let text = match sh.hub.moderation(rid).and_then(|m| m.topic.clone()) {
                Some(t) => format!("topic of '{room}': {} (set by {})", t.text, t.by),
                None => format!("room '{room}' has no topic"),
            };
            return self.answer_command(sh, id, Ok(text));
        }
        self.requests.push((id, req, name));
    }

    /// The member requests the event loop is to run (who asked, what,
    /// and the name the audit log and the rules give as setter).
    pub fn take_requests(&mut self) -> Vec<(ConnId, Request, String)> {
        std::mem::take(&mut self.requests)
    }

    /// What a member's command did: a `notice` event, or an `error` one.
    pub fn answer_command(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        outcome: Result<String, (ErrorCode, String)>,
    ) {
        if self.irc(id).is_some() {
            let text = match &outcome {
                Ok(t) => t.clone(),
                Err((_, why)) => why.clone(),
            };
            let server = sh.cfg.irc_server_name.clone();
            let nick = self
                .irc(id)
                .map(|c| ircmap::nick_of(c.target()))
                .unwrap_or_default();
            let line = Message::new(Some(&server), "NOTICE", &[&nick, &text]).encode();
            return self.irc_send(sh, id, &line);
        }
        let event = match outcome {
            Ok(text) => Event::system(EventKind::Notice, &text, None),
            Err((code, why)) => Event::error(code, None, &why),
        };
        let line = self.encode_for(sh, id, &event);
        self.feed(sh, id, Input::Deliver(&line));
        self.drop_doomed(sh);
    }

    /// A message refused by moderation: the sender is told, and stays.
    pub(super) fn refuse_said(&mut self, sh: &mut Shared, id: ConnId, why: &str) {
        self.id_log(sh, id, Level::Info, format!("message not sent: {why}"));
        let event = Event::error(crate::core::wire::ErrorCode::Forbidden, None, why);
        let line = self.encode_for(sh, id, &event);
        self.feed(sh, id, Input::Deliver(&line));
    }
}
