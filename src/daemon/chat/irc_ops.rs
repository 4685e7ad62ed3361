//! The IRC door's operator commands: MODE (a room's flags, key, limit,
//! bans, operators and voice; a user's own modes), TOPIC, INVITE and
//! KICK, which a room's operators may use (core/modes.rs holds the
//! state), and OPER, KILL and WALLOPS for the server's IRC operators
//! (`--irc-oper NAME`: a registered account that may OPER with its own
//! password).
//!
//! Today a room's operators are the first member of a room made by
//! joining it (`--room-creation`) and those it gives `+o`; a room an
//! administrator made has none, so its MODE, TOPIC and KICK are refused
//! with 482 (issue #27 brings named operators for those).

use super::{Chat, Parked};
use crate::core::hub::{ConnId, RoomId};
use crate::core::irc::Message;
use crate::core::ircmap;
use crate::core::modes::{self, Ban, Change};
use crate::core::wire::{Departed, Event, EventKind};
use crate::daemon::accounts::Verdict;
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// Mode changes with a parameter in one MODE (MODES).
pub const MAX_MODES: usize = 4;

const NOT_OP: &str = "You're not a channel operator";

impl Chat {
    pub(super) fn on_operator(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        match msg.command.as_str() {
            "MODE" => self.on_mode(sh, id, msg),
            "TOPIC" => self.on_topic(sh, id, msg),
            "INVITE" => self.on_invite(sh, id, msg),
            "KICK" => self.on_kick(sh, id, msg),
            "OPER" => self.on_oper(sh, id, msg),
            "KILL" => self.on_kill(sh, id, msg),
            "WALLOPS" => self.on_wallops(sh, id, msg),
            _ => {}
        }
    }

    /// Whether `id` operates room `room`.
    fn is_op(sh: &Shared, id: ConnId, room: RoomId) -> bool {
        sh.hub.modes(room).is_some_and(|m| m.ops.contains(&id))
    }

    /// `line` to every IRC member of `room`.
    fn tell_room_irc(&mut self, sh: &mut Shared, room: RoomId, line: &[u8]) {
        let members: Vec<ConnId> = sh.hub.member_conns(room).collect();
        for m in members {
            if self.irc(m).is_some() {
                self.irc_send(sh, m, line);
            }
        }
    }

    // -- MODE ------------------------------------------------------------------------

    fn on_mode(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(target) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["MODE", "Not enough parameters"]);
        };
        if !target.starts_with('#') {
            return self.user_mode(sh, id, target, msg.param(1));
        }
        let Some(room) = Chat::room_named(sh, target).filter(|r| self.may_see(sh, id, r)) else {
            return self.numeric(sh, id, "403", &[target, "No such channel"]);
        };
        let rid = sh.hub.room_id_of(&room).expect("named");
        let channel = ircmap::channel_of(&room).unwrap_or_else(|| target.to_string());
        let Some(modestring) = msg.param(1) else {
            let member = sh.hub.rooms_of(id).contains(&rid);
            // The server's maximum is no limit to show.
            let limit = sh
                .hub
                .room(&room)
                .ok()
                .map(|r| r.limit)
                .filter(|&l| l < crate::core::hub::MAX_LIMIT);
            let modes = sh.hub.modes(rid).cloned().unwrap_or_default();
            let moderated = sh.hub.moderation(rid).is_some_and(|m| m.moderated);
            let (mut flags, args) = modes.describe(limit, member, moderated);
            if sh.hub.access(&room).is_some_and(|a| a.private) && !flags.contains('i') {
                flags.insert(1, 'i');
            }
            let mut params = vec![channel.as_str(), flags.as_str()];
            params.extend(args.iter().map(String::as_str));
            self.numeric(sh, id, "324", &params);
            if let Some(at) = modes.created {
                self.numeric(sh, id, "329", &[&channel, &at.to_string()]);
            }
            return;
        };
        let changes = modes::parse(modestring, &msg.params[2..], MAX_MODES);
        let op = Chat::is_op(sh, id, rid);
        let mut applied_flags = String::new();
        let mut applied_args: Vec<String> = Vec::new();
        let mut sign = ' ';
        let mut refused_op = false;
        for change in changes {
            let needs_op = !matches!(change, Change::List(_) | Change::Unknown(_));
            if needs_op && !op {
                if !refused_op {
                    refused_op = true;
                    self.numeric(sh, id, "482", &[&channel, NOT_OP]);
                }
                continue;
            }
            let done = self.apply_mode(sh, id, rid, &channel, change);
            if let Some((on, c, arg)) = done {
                let s = if on { '+' } else { '-' };
                if s != sign {
                    applied_flags.push(s);
                    sign = s;
                }
                applied_flags.push(c);
                applied_args.extend(arg);
            }
        }
        if !applied_flags.is_empty() {
            let source = self.my_source(sh, id);
            let mut params = vec![channel.as_str(), applied_flags.as_str()];
            params.extend(applied_args.iter().map(String::as_str));
            let line = Message::new(Some(&source), "MODE", &params).encode();
            self.tell_room_irc(sh, rid, &line);
            let who = self.describe(sh, id);
            let what = params.join(" ");
            self.id_log(sh, id, Level::Info, format!("irc: {who} set MODE {what}"));
        }
    }

    /// One change by an operator (or a list any may ask for); what was
    /// applied, to echo: its sign, letter and argument.
    fn apply_mode(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        rid: RoomId,
        channel: &str,
        change: Change,
    ) -> Option<(bool, char, Option<String>)> {
        match change {
            Change::Flag(c, on) => {
                let m = sh.hub.modes_mut(rid)?;
                let slot = match c {
                    'i' => &mut m.invite_only,
                    'm' => {
                        let room = sh.hub.room_name(rid)?.to_string();
                        let m = sh.hub.moderation_mut(rid)?;
                        if m.moderated == on {
                            return None;
                        }
                        m.moderated = on;
                        self.changed_room(&room);
                        return Some((on, c, None));
                    }
                    'n' => &mut m.no_external,
                    's' => &mut m.secret,
                    _ => &mut m.topic_lock,
                };
                (*slot != on).then(|| {
                    *slot = on;
                    (on, c, None)
                })
            }
            Change::Member(c, on, nick) => {
                let name = ircmap::name_of(&nick);
                let Some(holder) = sh.hub.people().holder_of(&name).map(str::to_string) else {
                    self.numeric(sh, id, "401", &[&nick, "No such nick/channel"]);
                    return None;
                };
                let room = sh.hub.room_name(rid)?.to_string();
                let Some((conn, _)) = sh.hub.conn_of(&room, &holder) else {
                    self.numeric(
                        sh,
                        id,
                        "441",
                        &[&nick, channel, "They aren't on that channel"],
                    );
                    return None;
                };
                let m = sh.hub.modes_mut(rid)?;
                let set = if c == 'o' { &mut m.ops } else { &mut m.voiced };
                let changed = if on {
                    set.insert(conn)
                } else {
                    set.remove(&conn)
                };
                changed.then(|| (on, c, Some(ircmap::nick_of(&holder))))
            }
            Change::Key(Some(key)) => {
                if !modes::valid_key(&key) {
                    self.numeric(
                        sh,
                        id,
                        "696",
                        &[
                            channel,
                            "k",
                            "*",
                            "Invalid key: 1 to 23 characters, no spaces",
                        ],
                    );
                    return None;
                }
                sh.hub.modes_mut(rid)?.key = Some(key.clone());
                Some((true, 'k', Some(key)))
            }
            Change::Key(None) => sh
                .hub
                .modes_mut(rid)?
                .key
                .take()
                .map(|_| (false, 'k', Some("*".into()))),
            Change::Limit(Some(l)) => {
                let room = sh.hub.room_name(rid)?.to_string();
                let limit = l.parse::<usize>().ok().filter(|&n| n > 0);
                let Some(n) = limit.filter(|_| sh.hub.set_limit(&room, limit.unwrap_or(0)).is_ok())
                else {
                    let shown = if l.is_empty() { "*" } else { l.as_str() };
                    self.numeric(
                        sh,
                        id,
                        "696",
                        &[channel, "l", shown, "Invalid limit: a whole number from 1"],
                    );
                    return None;
                };
                // Saved and shared like chatctl's set-limit.
                self.changed_room(&room);
                self.tell_room_facts(sh, &room);
                Some((true, 'l', Some(n.to_string())))
            }
            Change::Limit(None) => {
                let room = sh.hub.room_name(rid)?.to_string();
                sh.hub.set_limit(&room, crate::core::hub::MAX_LIMIT).ok()?;
                self.changed_room(&room);
                self.tell_room_facts(sh, &room);
                Some((false, 'l', None))
            }
            Change::Mask('b', on, mask) => self.ban_mask(sh, id, rid, channel, on, mask),
            Change::List('b') => {
                let bans = sh.hub.moderation(rid)?.bans.clone();
                let now = sh.unix();
                for b in bans.iter().filter(|b| b.live(now)) {
                    let mask = b.target.as_mask();
                    self.numeric(sh, id, "367", &[channel, &mask, &b.by, &b.at.to_string()]);
                }
                self.numeric(sh, id, "368", &[channel, "End of channel ban list"]);
                None
            }
            Change::Mask(c, on, mask) => {
                let setter = self.my_source(sh, id);
                let at = sh.unix();
                let list = sh.hub.modes_mut(rid)?.list_mut(c);
                let had = list.iter().position(|b| b.mask.eq_ignore_ascii_case(&mask));
                match (on, had) {
                    (true, None) if list.len() < modes::MAX_BANS => {
                        list.push(Ban {
                            mask: mask.clone(),
                            setter,
                            at,
                        });
                        Some((true, c, Some(mask)))
                    }
                    (false, Some(i)) => {
                        list.remove(i);
                        Some((false, c, Some(mask)))
                    }
                    (true, None) => {
                        self.numeric(sh, id, "478", &[channel, &mask, "Channel list is full"]);
                        None
                    }
                    _ => None,
                }
            }
            Change::List(c) => {
                let list = sh.hub.modes_mut(rid)?.list_mut(c).clone();
                let (item, end, what) = match c {
                    'e' => ("348", "349", "End of channel exception list"),
                    'I' => ("346", "347", "End of channel invite list"),
                    _ => ("367", "368", "End of channel ban list"),
                };
                for b in list {
                    self.numeric(
                        sh,
                        id,
                        item,
                        &[channel, &b.mask, &b.setter, &b.at.to_string()],
                    );
                }
                self.numeric(sh, id, end, &[channel, what]);
                None
            }
            Change::Unknown(c) => {
                let c = c.to_string();
                self.numeric(sh, id, "472", &[&c, "is an unknown mode char to me"]);
                None
            }
            Change::Missing(c) => {
                let c = c.to_string();
                self.numeric(
                    sh,
                    id,
                    "696",
                    &[channel, &c, "*", "This mode needs a parameter"],
                );
                None
            }
        }
    }

    /// `+b` / `-b`: a lasting ban (core/moderation.rs), saved and shared
    /// like chatctl's; as on IRC, it keeps out who joins next and removes
    /// no one.
    fn ban_mask(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        rid: RoomId,
        channel: &str,
        on: bool,
        mask: String,
    ) -> Option<(bool, char, Option<String>)> {
        let target = match crate::core::moderation::Target::parse(&mask) {
            Ok(t) => t,
            Err(why) => {
                self.numeric(sh, id, "696", &[channel, "b", &mask, &why]);
                return None;
            }
        };
        let rule = crate::core::moderation::Rule {
            target: target.clone(),
            reason: String::new(),
            by: self.my_source(sh, id),
            at: sh.unix(),
            until: None,
            joins_only: true,
        };
        let room = sh.hub.room_name(rid)?.to_string();
        let bans = &mut sh.hub.moderation_mut(rid)?.bans;
        let had = bans.iter().any(|b| b.target.same(&target));
        let changed = match (on, had) {
            (true, false) => match crate::core::moderation::put(bans, rule) {
                Ok(_) => true,
                Err(_) => {
                    self.numeric(sh, id, "478", &[channel, &mask, "Channel list is full"]);
                    return None;
                }
            },
            (false, true) => crate::core::moderation::take(bans, &target).is_some(),
            _ => false,
        };
        if !changed {
            return None;
        }
        self.changed_room(&room);
        Some((on, 'b', Some(mask)))
    }

    /// MODE on a nick: only one's own; `+i` and `+w` are kept.
    fn user_mode(&mut self, sh: &mut Shared, id: ConnId, target: &str, change: Option<&str>) {
        let me = self
            .irc(id)
            .map(|c| ircmap::nick_of(c.target()))
            .unwrap_or_default();
        if !target.eq_ignore_ascii_case(&me) {
            let (code, why) = if self.person(sh, &ircmap::name_of(target)).is_some() {
                ("502", "Can't change mode for other users")
            } else {
                ("401", "No such nick/channel")
            };
            return self.numeric(sh, id, code, &[target, why]);
        }
        let Some(change) = change else {
            let c = self.irc(id).expect("an IRC connection");
            let mut modes = String::from("+");
            for (on, ch) in [(c.invisible, 'i'), (c.oper, 'o'), (c.wallops, 'w')] {
                if on {
                    modes.push(ch);
                }
            }
            return self.numeric(sh, id, "221", &[&modes]);
        };
        let mut on = true;
        let mut applied = String::new();
        let mut sign = ' ';
        let mut unknown = false;
        for ch in change.chars() {
            let Some(c) = self.irc_mut(id) else {
                return;
            };
            let slot = match ch {
                '+' | '-' => {
                    on = ch == '+';
                    continue;
                }
                'i' => &mut c.invisible,
                'w' => &mut c.wallops,
                'o' if !on => &mut c.oper,
                'o' => continue, // +o only through OPER.
                _ => {
                    unknown = true;
                    continue;
                }
            };
            if *slot != on {
                *slot = on;
                let s = if on { '+' } else { '-' };
                if s != sign {
                    applied.push(s);
                    sign = s;
                }
                applied.push(ch);
            }
        }
        if unknown {
            self.numeric(sh, id, "501", &["Unknown MODE flag"]);
        }
        if !applied.is_empty() {
            let line = Message::new(Some(&me), "MODE", &[&me, &applied]).encode();
            self.irc_send(sh, id, &line);
        }
    }

    // -- TOPIC, INVITE, KICK --------------------------------------------------------

    /// 332 and 333 when the room has a topic; 331 when asked and none.
    pub(super) fn send_topic(&mut self, sh: &mut Shared, id: ConnId, room: RoomId, asked: bool) {
        let Some(channel) = sh.hub.room_name(room).and_then(ircmap::channel_of) else {
            return;
        };
        match sh.hub.moderation(room).and_then(|m| m.topic.clone()) {
            Some(t) => {
                self.numeric(sh, id, "332", &[&channel, &t.text]);
                self.numeric(sh, id, "333", &[&channel, &t.by, &t.at.to_string()]);
            }
            None if asked => self.numeric(sh, id, "331", &[&channel, "No topic is set"]),
            None => {}
        }
    }

    fn on_topic(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(channel) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["TOPIC", "Not enough parameters"]);
        };
        let room = match self.my_room(sh, id, channel) {
            Ok(room) => room,
            Err("442") if msg.params.len() == 1 => {
                // Anyone may read a visible room's topic.
                let room = Chat::room_named(sh, channel).expect("442 names a room");
                let rid = sh.hub.room_id_of(&room).expect("named");
                return self.send_topic(sh, id, rid, true);
            }
            Err(code) => return self.channel_error(sh, id, code, channel),
        };
        let rid = sh.hub.room_id_of(&room).expect("named");
        let channel = ircmap::channel_of(&room).unwrap_or_else(|| channel.to_string());
        let Some(text) = msg.param(1) else {
            return self.send_topic(sh, id, rid, true);
        };
        let locked = sh.hub.modes(rid).is_some_and(|m| m.topic_lock);
        if locked && !Chat::is_op(sh, id, rid) {
            return self.numeric(sh, id, "482", &[&channel, NOT_OP]);
        }
        let text: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(crate::core::moderation::TOPIC_LEN)
            .collect();
        let setter = self.my_source(sh, id);
        let at = sh.unix();
        if let Some(m) = sh.hub.moderation_mut(rid) {
            m.topic = (!text.is_empty()).then(|| crate::core::moderation::Topic {
                text: text.clone(),
                by: setter.clone(),
                at,
            });
        }
        self.changed_room(&room);
        let mut event = Event::system(crate::core::wire::EventKind::Topic, &text, Some(&room));
        event.reason = Some(setter);
        self.tell_topic(sh, &room, &event);
        let who = self.describe(sh, id);
        self.id_log(
            sh,
            id,
            Level::Info,
            format!("room '{room}': topic set by {who}: {text}"),
        );
    }

    fn on_invite(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let (Some(nick), Some(channel)) = (msg.param(0), msg.param(1)) else {
            return self.numeric(sh, id, "461", &["INVITE", "Not enough parameters"]);
        };
        let Some((to, their_nick)) = sh
            .hub
            .people()
            .nick_holder(&ircmap::name_of(nick))
            .map(|(c, n)| (c, n.to_string()))
        else {
            return self.numeric(sh, id, "401", &[nick, "No such nick/channel"]);
        };
        let room = match self.my_room(sh, id, channel) {
            Ok(room) => room,
            Err(code) => return self.channel_error(sh, id, code, channel),
        };
        let rid = sh.hub.room_id_of(&room).expect("named");
        let channel = ircmap::channel_of(&room).unwrap_or_else(|| channel.to_string());
        if sh.hub.rooms_of(to).contains(&rid) {
            return self.numeric(sh, id, "443", &[nick, &channel, "is already on channel"]);
        }
        let invite_only = sh.hub.modes(rid).is_some_and(|m| m.invite_only);
        if invite_only && !Chat::is_op(sh, id, rid) {
            return self.numeric(sh, id, "482", &[&channel, NOT_OP]);
        }
        if let Some(m) = sh.hub.modes_mut(rid) {
            m.invited.insert(to);
        }
        let their = ircmap::nick_of(&their_nick);
        self.numeric(sh, id, "341", &[&their, &channel]);
        let source = self.my_source(sh, id);
        let mut invite = Message::new(Some(&source), "INVITE", &[&their, &channel]);
        // account-tag: the inviter's account, to a recipient that asked.
        let account = self.irc(id).and_then(|c| c.account.clone());
        if let Some(a) = account.filter(|_| self.irc(to).is_some_and(|c| c.has("account-tag"))) {
            invite.tags.push(("account".into(), Some(a)));
        }
        self.irc_send(sh, to, &invite.encode());
    }

    fn on_kick(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let (Some(channel), Some(nicks)) = (msg.param(0), msg.param(1)) else {
            return self.numeric(sh, id, "461", &["KICK", "Not enough parameters"]);
        };
        let room = match self.my_room(sh, id, channel) {
            Ok(room) => room,
            Err(code) => return self.channel_error(sh, id, code, channel),
        };
        let rid = sh.hub.room_id_of(&room).expect("named");
        let channel = ircmap::channel_of(&room).unwrap_or_else(|| channel.to_string());
        if !Chat::is_op(sh, id, rid) {
            return self.numeric(sh, id, "482", &[&channel, NOT_OP]);
        }
        let me = self
            .irc(id)
            .map(|c| c.target().to_string())
            .unwrap_or_default();
        let reason: String = msg.param(2).unwrap_or(&me).chars().take(255).collect();
        for nick in nicks.split(',').filter(|n| !n.is_empty()) {
            let name = ircmap::name_of(nick);
            let Some((conn, _)) = sh.hub.conn_of(&room, &name) else {
                self.numeric(
                    sh,
                    id,
                    "441",
                    &[nick, &channel, "They aren't on that channel"],
                );
                continue;
            };
            let Some(mut dep) = sh.hub.leave_room(conn, rid) else {
                continue;
            };
            let line = format!(
                "leave: '{}' kicked from room '{}' by '{me}': {reason}",
                dep.member.username, dep.room
            );
            self.id_log(sh, id, Level::Info, line);
            dep.notice.event.departed = Departed::Kicked(reason.clone());
            dep.notice.event.reason = Some(reason.clone());
            // The kicker's source, for the others and the kicked.
            let source = self.my_source(sh, id);
            let kick = Message::new(
                Some(&source),
                "KICK",
                &[&channel, &ircmap::nick_of(&dep.member.username), &reason],
            )
            .encode();
            let everyone: Vec<ConnId> = dep.notice.to.iter().copied().chain([conn]).collect();
            let mut prototype = Vec::new();
            for m in everyone {
                if self.irc(m).is_some() {
                    self.irc_send(sh, m, &kick);
                } else if m != conn {
                    prototype.push(m);
                }
            }
            let bytes = sh.encode(&dep.notice.event);
            self.deliver_line(sh, &prototype, &bytes);
            if self.irc(conn).is_none() {
                // The prototype's member is kicked as chatctl kicks: told,
                // then closed.
                let mut kicked =
                    Event::system(EventKind::Kicked, crate::core::wire::KICKED, Some(&room));
                kicked.reason = Some(reason.clone());
                self.finish(sh, conn, Some(&kicked));
            }
        }
    }

    // -- the server's operators -----------------------------------------------------

    fn on_oper(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let (Some(name), Some(password)) = (msg.param(0), msg.param(1)) else {
            return self.numeric(sh, id, "461", &["OPER", "Not enough parameters"]);
        };
        let allowed = sh.cfg.irc_oper.iter().any(|o| o == name);
        let peer = self.conns[&id].peer;
        let verdict = if allowed {
            sh.accounts
                .check(sh.now, name, Some(password), peer.ip(), false)
        } else {
            Verdict::Unauthorized("not an operator".into())
        };
        match verdict {
            Verdict::Allowed { registered: true } => {
                if let Some(c) = self.irc_mut(id) {
                    c.oper = true;
                }
                let me = self
                    .irc(id)
                    .map(|c| ircmap::nick_of(c.target()))
                    .unwrap_or_default();
                self.numeric(sh, id, "381", &["You are now an IRC operator"]);
                let line = Message::new(Some(&me), "MODE", &[&me, "+o"]).encode();
                self.irc_send(sh, id, &line);
                let who = self.describe(sh, id);
                sh.log
                    .info(format!("irc: {who} is an IRC operator (account '{name}')"));
            }
            Verdict::Later => self.park(id, Parked::Irc(msg.clone())),
            _ => {
                sh.log
                    .warn(format!("irc: OPER refused to {peer} for '{name}'"));
                self.numeric(sh, id, "464", &["Password incorrect"]);
            }
        }
    }

    /// Whether `id` is an IRC operator; tells it 481 when not.
    fn oper_or_481(&mut self, sh: &mut Shared, id: ConnId) -> bool {
        let oper = self.irc(id).is_some_and(|c| c.oper);
        if !oper {
            let why = "Permission Denied- You're not an IRC operator";
            self.numeric(sh, id, "481", &[why]);
        }
        oper
    }

    fn on_kill(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let (Some(nick), reason) = (msg.param(0), msg.param(1).unwrap_or("")) else {
            return self.numeric(sh, id, "461", &["KILL", "Not enough parameters"]);
        };
        if !self.oper_or_481(sh, id) {
            return;
        }
        let Some((conn, _)) = sh.hub.people().nick_holder(&ircmap::name_of(nick)) else {
            return self.numeric(sh, id, "401", &[nick, "No such nick/channel"]);
        };
        let me = self
            .irc(id)
            .map(|c| c.target().to_string())
            .unwrap_or_default();
        let why = format!("Killed ({me} ({reason}))");
        let who = self.describe(sh, conn);
        sh.log
            .info(format!("irc: {who} killed by '{me}': {reason}"));
        self.irc_close(sh, conn, &why);
    }

    fn on_wallops(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(text) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["WALLOPS", "Not enough parameters"]);
        };
        if !self.oper_or_481(sh, id) {
            return;
        }
        let source = self.my_source(sh, id);
        let line = Message::new(Some(&source), "WALLOPS", &[text]).encode();
        let to: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.irc.as_ref().is_some_and(|i| i.wallops))
            .map(|(&k, _)| k)
            .collect();
        for c in to {
            self.irc_send(sh, c, &line);
        }
    }
}
