//! Handshakes, messages and leaving: who a joiner is (a password
//! account, a token, a bare name), whether the room admits it (the policy
//! is core/access.rs; the costly checks and their budgets are here, one
//! password check per pass, the rest parked), the join itself (decided by
//! the hub, or in cluster mode by the cluster through [`ChatOut::Join`]),
//! a member's messages, and a member's leave.

use std::net::SocketAddr;

use super::direct::is_msg;
use super::{Chat, ChatOut, Parked};
use crate::cli::chatd::RoomCreation;
use crate::core::access::{self, RoomEntry};
use crate::core::cluster::JoinRequest;
use crate::core::codec::{Command, Decoded};
use crate::core::hub::{ConnId, Delivery, RoomId};
use crate::core::session::{Input, Phase};
use crate::core::wire::{self, ErrorCode, Event, EventKind, Handshake};
use crate::daemon::accounts::Verdict;
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// Why a handshake is not admitted (yet): refused with a code and a
/// reason, or its password check waits for the next pass (one per pass).
#[derive(Debug)]
enum Refused {
    With(ErrorCode, String),
    Later,
}

impl Chat {
    /// A last line (if any), then the connection closes (no drop of the
    /// doomed: for use inside the part).
    fn finish_here(&mut self, sh: &mut Shared, id: ConnId, line: Option<&[u8]>) {
        self.feed(sh, id, Input::Finish(line));
    }

    /// What the peer asked, decoded by its protocol's codec.
    pub(super) fn on_decoded(&mut self, sh: &mut Shared, id: ConnId, decoded: Decoded) {
        match decoded {
            Decoded::Command(Command::Join(hs)) => self.on_handshake(sh, id, hs),
            Decoded::Command(Command::ListRooms) => {
                let event = Event {
                    kind: EventKind::Rooms,
                    username: wire::SYSTEM_USER.to_string(),
                    rooms: Some(sh.hub.public_rooms()),
                    ..Event::default()
                };
                let line = self.encode_for(sh, id, &event);
                self.finish_here(sh, id, Some(&line));
            }
            Decoded::Command(Command::Say(text)) => self.on_message(sh, id, &text),
            Decoded::Rejected(reason) => {
                // The stream is still in sync: reject this message only.
                let line =
                    self.encode_for(sh, id, &Event::error(ErrorCode::BadRequest, None, reason));
                self.feed(sh, id, Input::Deliver(&line));
                let who = self.describe(sh, id);
                self.id_log(
                    sh,
                    id,
                    Level::Warn,
                    format!("rejected message from {who}: {reason}"),
                );
            }
            Decoded::Refused { code, reason, room } => {
                self.close_with_error(sh, id, code, &reason, room.as_deref());
            }
            Decoded::Irc(parsed) => self.on_irc(sh, id, parsed),
        }
    }

    /// A handshake that asks to join.
    fn on_handshake(&mut self, sh: &mut Shared, id: ConnId, hs: Handshake) {
        let peer = self.conns[&id].peer;
        if let Err(why) = self.take_join(sh, id) {
            self.refuse_join(
                sh,
                id,
                hs.username.as_deref().unwrap_or("(by token)"),
                ErrorCode::Unavailable,
                &why,
                &hs.room,
            );
            return;
        }
        let (username, login) = match identify(sh, &hs, peer) {
            Ok(who) => who,
            Err(Refused::Later) => {
                self.park(id, Parked::Handshake(hs));
                return;
            }
            Err(Refused::With(code, why)) => {
                sh.counters.refusals += 1;
                let claimed = hs.username.as_deref().unwrap_or("(by token)");
                sh.client_log(
                    peer.ip(),
                    Level::Warn,
                    format!(
                        "login refused ({}) to '{claimed}' from {peer}: {why}",
                        code.as_str()
                    ),
                );
                let line = self.encode_for(sh, id, &Event::error(code, Some(&hs.room), &why));
                self.finish_here(sh, id, Some(&line));
                return;
            }
        };
        // The room's door (a private room's), then its bans and the server's.
        let refused = match admit_to_room(sh, &hs, &username, !login.is_empty(), peer) {
            Err(Refused::Later) => {
                self.park(id, Parked::Handshake(hs));
                return;
            }
            Err(Refused::With(_, why)) => Some(why),
            Ok(()) => self.ban_refusal(sh, id, &username, &hs.room),
        };
        if let Some(why) = refused {
            sh.counters.refusals += 1;
            sh.log
                .warn(format!("refused 403 to '{username}' from {peer}: {why}"));
            let line = self.encode_for(
                sh,
                id,
                &Event::error(ErrorCode::Forbidden, Some(&hs.room), &why),
            );
            self.finish_here(sh, id, Some(&line));
            return;
        }
        if self.clustered {
            if let Some(c) = self.conns.get_mut(&id) {
                c.awaiting_verdict = true;
            }
            self.out.push(ChatOut::Join(JoinRequest {
                id,
                peer,
                hs,
                username,
                login,
                irc: false,
            }));
            return;
        }
        if sh.hub.room_id_of(&hs.room).is_none() && sh.cfg.room_creation != RoomCreation::Admin {
            // Refused creation leaves the join to its 404.
            let _ = Chat::create_by_joining(sh, &username, !login.is_empty(), &hs.room);
        }
        let joined_at = sh.ts().to_string();
        match sh
            .hub
            .join(id, &username, &hs.room, &peer.to_string(), &joined_at)
        {
            Ok(delivery) => self.joined(sh, id, &hs, &username, login, &delivery),
            Err(refusal) => {
                self.refuse_join(sh, id, &username, refusal.code, &refusal.reason, &hs.room)
            }
        }
    }

    /// One join of the connection's address's [`JOIN_RATE`] (exempt
    /// addresses have no such limit), or why not. A parked handshake that
    /// comes back has already paid.
    pub(super) fn take_join(&mut self, sh: &mut Shared, id: ConnId) -> Result<(), String> {
        let Some(c) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        if !c.seat.limited || c.join_paid {
            return Ok(());
        }
        // Paid only when taken: a refused IRC JOIN must not make the
        // next one free.
        sh.door.take_join(c.seat.key, sh.now)?;
        c.join_paid = true;
        Ok(())
    }

    /// Keeps a handshake (or an IRC message) whose password check must
    /// wait for the next pass; the connection's later frames wait with it.
    pub(super) fn park(&mut self, id: ConnId, what: Parked) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.parked = true;
            self.parked.push_back((id, what));
        }
    }

    /// A new pass: the parked handshakes are tried again, oldest first
    /// (the first gets this pass's check, the others park again), and
    /// those decided go on with their frames.
    pub fn resume_parked(&mut self, sh: &mut Shared) {
        sh.accounts.begin_pass();
        let waiting = std::mem::take(&mut self.parked);
        for (id, what) in waiting {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            c.parked = false;
            match what {
                Parked::Handshake(hs) => {
                    if !matches!(c.session.phase(), Phase::Handshake { .. }) {
                        continue; // Timed out or closed meanwhile.
                    }
                    self.on_handshake(sh, id, hs);
                }
                Parked::Irc(msg) => {
                    if c.session.is_closing() {
                        continue;
                    }
                    self.on_irc(sh, id, Ok(msg));
                }
            }
            self.mark_runnable(id);
        }
        self.process_runnable(sh);
    }

    /// A join the hub (and in cluster mode the shared state) admitted:
    /// the session becomes a member, the room hears of it, and the
    /// joiner gets what it asked for (history, members).
    pub fn joined(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        hs: &Handshake,
        username: &str,
        login: &str,
        delivery: &Delivery,
    ) {
        if self.irc(id).is_some() {
            self.irc_joined(sh, id, delivery);
            return self.drop_doomed(sh);
        }
        let peer = self.conns[&id].peer;
        if let Some(c) = self.conns.get_mut(&id) {
            sh.door.joined(id, c.seat);
            c.account = (login == " (logged in)").then(|| username.to_string());
            c.wants_topic = hs.topic;
            c.wants_commands = hs.commands;
            c.wants_room = hs.room_events;
            c.wants_direct = hs.direct;
            c.direct_name = hs.direct.then(|| username.to_string());
        }
        if hs.direct {
            self.direct_listener(id, username, true);
        }
        self.feed(sh, id, Input::Joined);
        self.count_user(id);
        sh.counters.joins += 1;
        let over = if self.conns[&id].is_tls() {
            " over TLS"
        } else {
            ""
        };
        sh.client_log(
            peer.ip(),
            Level::Info,
            format!(
                "join: '{username}' entered room '{}' from {peer}{over}{login}",
                hs.room
            ),
        );
        if hs.history {
            self.replay_history(sh, id, delivery.room);
        }
        self.deliver_here(sh, delivery);
        if hs.members {
            self.send_members(sh, id, &hs.room);
        }
        if hs.room_events {
            self.send_room_facts(sh, id, delivery.room);
        }
        if hs.topic {
            self.send_room_topic(sh, id, delivery.room);
        }
        self.drop_doomed(sh);
    }

    /// A refused join: logged, the error event sent, the connection closed.
    pub fn refuse_join(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        username: &str,
        code: ErrorCode,
        reason: &str,
        room: &str,
    ) {
        if self.irc(id).is_some() {
            self.irc_join_refused(sh, id, code, reason, room);
            return self.drop_doomed(sh);
        }
        sh.counters.refusals += 1;
        let peer = self.peer_text(id);
        self.id_log(
            sh,
            id,
            Level::Warn,
            format!(
                "refused {} to '{username}' from {peer}: {reason}",
                code.as_str()
            ),
        );
        let line = self.encode_for(sh, id, &Event::error(code, Some(room), reason));
        self.finish_here(sh, id, Some(&line));
        self.drop_doomed(sh);
    }

    /// A chat message from a member.
    fn on_message(&mut self, sh: &mut Shared, id: ConnId, text: &str) {
        let text = match self.conns.get(&id) {
            Some(c) if c.wants_commands && text.starts_with("//") => &text[1..],
            Some(c) if c.wants_commands && is_msg(text) => {
                return self.direct_from_member(sh, id, &text[5..]);
            }
            Some(c) if c.wants_commands && text.starts_with('/') => {
                return self.member_command(sh, id, text);
            }
            _ => text,
        };
        // Most rooms are neither moderated nor muting anyone: then no
        // name is looked up.
        if let Some(room) = sh.hub.room_of(id)
            && sh
                .hub
                .moderation(room)
                .is_some_and(|m| m.moderated || !m.mutes.is_empty())
            && let Some(name) = sh.hub.member(id).map(|(_, m)| m.username.clone())
            && let Some(why) = self.mute_refusal(sh, id, &name, room)
        {
            return self.refuse_said(sh, id, &why);
        }
        let Some(mut delivery) = sh.hub.say(id, text) else {
            return;
        };
        delivery.event.msgid = Some(sh.msgid());
        sh.remember(&delivery);
        sh.counters.messages_relayed += 1;
        if sh.cfg.log_messages {
            let who = self.describe(sh, id);
            sh.log.info(format!("message from {who}: {text}"));
        }
        self.deliver_here(sh, &delivery);
        if self.clustered {
            self.out.push(ChatOut::Said(delivery.event));
        }
    }

    /// A joiner that asked gets the room's kept messages, oldest first,
    /// before its join event: as many of the newest as fit in half its
    /// `--sendq`.
    fn replay_history(&mut self, sh: &mut Shared, id: ConnId, room: RoomId) {
        let budget = sh.cfg.sendq / 2;
        let mut used = 0;
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for event in sh.hub.history(room).rev() {
            let line = self.encode_for(sh, id, &event);
            used += line.len();
            if used > budget {
                break;
            }
            lines.push(line);
        }
        for line in lines.iter().rev() {
            self.feed(sh, id, Input::Deliver(line));
        }
    }

    /// A joiner that asked learns who is in the room (itself included).
    fn send_members(&mut self, sh: &mut Shared, id: ConnId, room: &str) {
        let Ok(members) = sh.hub.participants(room) else {
            return;
        };
        let event = Event {
            kind: EventKind::Members,
            username: wire::SYSTEM_USER.to_string(),
            room: Some(room.to_string()),
            members: Some(members.iter().map(|m| m.username.clone()).collect()),
            ..Event::default()
        };
        let line = self.encode_for(sh, id, &event);
        self.feed(sh, id, Input::Deliver(&line));
    }

    /// Takes a member out of its room, telling the others; logs the leave.
    /// (An IRC connection leaves all of its rooms: it quits.)
    pub(super) fn leave_room(&mut self, sh: &mut Shared, id: ConnId, why: &str) {
        if self.irc(id).is_some() {
            return self.quit_rooms(sh, id, why);
        }
        let was_counted = self.conns.get(&id).and_then(|c| c.counted_in);
        if let Some(name) = self.conns.get_mut(&id).and_then(|c| c.direct_name.take()) {
            self.direct_listener(id, &name, false);
        }
        if let Some(dep) = sh.hub.leave(id) {
            let addr = &dep.member.address;
            let line = format!(
                "leave: '{}' left room '{}' ({addr}): {why}",
                dep.member.username, dep.room
            );
            self.id_log(sh, id, Level::Info, line);
            if was_counted.is_some() {
                self.account_backlog(sh, id);
            }
            self.deliver_here(sh, &dep.notice);
            if self.clustered {
                self.out.push(ChatOut::Left(dep, why.to_string()));
            }
        } else if let Some(c) = self.conns.get(&id)
            && matches!(c.session.phase(), Phase::Handshake { .. })
        {
            let (ip, line) = (
                c.peer.ip(),
                format!("client {} gone before its handshake: {why}", c.peer),
            );
            sh.client_log(ip, Level::Info, line);
        }
    }
}

/// Who a handshake may join as, and how it logged in (for the log):
/// an account's password, a token, or an unregistered name where
/// allowed. Refusals carry the code (401, or 503 when too many logins
/// wait to be checked) and a reason that never includes a credential.
fn identify(
    sh: &mut Shared,
    hs: &Handshake,
    peer: SocketAddr,
) -> Result<(String, &'static str), Refused> {
    let now = sh.now;
    let unauthorized = |why: String| Refused::With(ErrorCode::Unauthorized, why);
    let Some(token) = &hs.token else {
        let username = hs.username.clone().unwrap_or_default();
        return match sh.accounts.check(
            now,
            &username,
            hs.password.as_deref(),
            peer.ip(),
            sh.cfg.require_login,
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
    if let Some(why) = sh.accounts.blocked(now, peer.ip()) {
        return Err(unauthorized(why));
    }
    let Some(oidc) = &sh.oidc else {
        return Err(unauthorized("this server accepts no tokens".into()));
    };
    let name = match oidc.verify(token) {
        Ok(name) => name,
        Err(why) => {
            sh.accounts.record_failure(now, peer.ip());
            return Err(unauthorized(why));
        }
    };
    let owner = sh.accounts.owner_of(&name);
    let name = access::token_login(&name, hs.username.as_deref(), owner).map_err(unauthorized)?;
    Ok((name, " (token)"))
}

/// A private room admits the logged-in users on its allow-list (by
/// exact name), and whoever gives its key; everyone else gets 403 (a wrong key counts
/// as a failed login for the address).
fn admit_to_room(
    sh: &mut Shared,
    hs: &Handshake,
    username: &str,
    logged_in: bool,
    peer: SocketAddr,
) -> Result<(), Refused> {
    let forbidden = |why: String| Refused::With(ErrorCode::Forbidden, why);
    let entry = access::room_entry(
        &hs.room,
        sh.hub.access(&hs.room),
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
    match sh.accounts.check_secret(sh.now, peer.ip(), given, &hash) {
        Verdict::Allowed { .. } => Ok(()),
        Verdict::Unauthorized(why) if why.starts_with("too many") => Err(forbidden(why)),
        Verdict::Busy => Err(forbidden(
            "too many logins to check right now; try again in a second".into(),
        )),
        Verdict::Later => Err(Refused::Later),
        Verdict::Unauthorized(_) => Err(forbidden(format!("{}: wrong room key", no()))),
    }
}
