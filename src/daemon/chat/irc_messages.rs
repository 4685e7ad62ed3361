//! The IRC door's messages: PRIVMSG and NOTICE to rooms (moderation and
//! `+n`; a msgid, client-only tags; echo-message) and to people (direct
//! messages, IRC to IRC: the prototype's protocol cannot show one), TAGMSG,
//! and AWAY (away-notify).

use super::Chat;
use super::irc::{AWAY_LEN, MAX_TARGETS};
use super::irc_cluster::Direct;
use crate::core::hub::{ConnId, RoomId};
use crate::core::irc::Message;
use crate::core::ircmap;
use crate::core::wire;
use crate::daemon::history::{Kind, Stored};
use crate::daemon::shared::Shared;

/// A message's client-only tags (`+name`), which message-tags relays.
fn client_tags(msg: &Message) -> Vec<(String, Option<String>)> {
    msg.tags
        .iter()
        .filter(|(k, _)| k.starts_with('+'))
        .cloned()
        .collect()
}

impl Chat {
    // -- messages ------------------------------------------------------------------

    pub(super) fn on_privmsg(&mut self, sh: &mut Shared, id: ConnId, msg: &Message, notice: bool) {
        let cmd = if notice { "NOTICE" } else { "PRIVMSG" };
        let (Some(targets), Some(text)) = (msg.param(0), msg.param(1)) else {
            if !notice {
                let code = if msg.params.is_empty() { "411" } else { "412" };
                let why = if msg.params.is_empty() {
                    format!("No recipient given ({cmd})")
                } else {
                    "No text to send".into()
                };
                self.numeric(sh, id, code, &[&why]);
            }
            return;
        };
        if text.is_empty() {
            if !notice {
                self.numeric(sh, id, "412", &["No text to send"]);
            }
            return;
        }
        let text = match ircmap::room_text(text) {
            Ok(t) => t,
            Err(why) => {
                if !notice {
                    self.numeric(sh, id, "404", &[targets, why]);
                }
                return;
            }
        };
        if let Err(why) = wire::validate_message(text.as_bytes()) {
            if !notice {
                self.numeric(sh, id, "404", &[targets, why]);
            }
            return;
        }
        if let Some(c) = self.irc_mut(id) {
            c.spoke_at = sh.unix();
        }
        let tags = client_tags(msg);
        for target in targets
            .split(',')
            .filter(|t| !t.is_empty())
            .take(MAX_TARGETS)
        {
            if target.starts_with('#') {
                self.say_to_room(sh, id, target, &text, notice, &tags);
            } else {
                self.say_to_person(sh, id, target, &text, notice, &tags);
            }
        }
    }

    pub(super) fn say_to_room(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        channel: &str,
        text: &str,
        notice: bool,
        tags: &[(String, Option<String>)],
    ) {
        let room = Chat::room_named(sh, channel).and_then(|r| sh.hub.room_id_of(&r));
        let Some(room) = room else {
            if !notice {
                self.numeric(sh, id, "403", &[channel, "No such channel"]);
            }
            return;
        };
        if let Err(why) = self.may_speak(sh, id, room) {
            if !notice {
                self.numeric(sh, id, "404", &[channel, why]);
            }
            return;
        }
        let member = sh.hub.rooms_of(id).contains(&room);
        let delivery = match sh.hub.say_in(id, room, text) {
            Some(d) => Some(d),
            None => {
                let nick = self
                    .irc(id)
                    .map(|c| c.target().to_string())
                    .unwrap_or_default();
                sh.hub.say_from_outside(room, &nick, text)
            }
        };
        let Some(mut delivery) = delivery else {
            return;
        };
        delivery.event.msgid = Some(sh.msgid());
        delivery.event.client_tags = tags.to_vec();
        sh.remember(&delivery);
        sh.counters.messages_relayed += 1;
        if sh.cfg.log_messages {
            let who = self.describe(sh, id);
            sh.log.info(format!("message from {who} (IRC): {text}"));
        }
        if self.irc(id).is_some_and(|c| c.has("echo-message")) {
            self.deliver_irc(sh, &[id], &delivery.event, notice);
        }
        if notice {
            let bytes = sh.encode(&delivery.event);
            self.deliver_room(
                sh,
                delivery.room,
                &delivery.to,
                &bytes,
                &delivery.event,
                true,
            );
        } else {
            self.deliver_here(sh, &delivery);
        }
        if self.clustered && member {
            // The room's other nodes deliver it to their members.
            self.out.push(super::ChatOut::Said(delivery.event));
        }
    }

    /// Whether `id` may speak in `room`: a member (or anyone, without
    /// `+n`), and in a moderated room (`+m`) an operator or voiced one.
    pub(super) fn may_speak(
        &self,
        sh: &Shared,
        id: ConnId,
        room: RoomId,
    ) -> Result<(), &'static str> {
        let member = sh.hub.rooms_of(id).contains(&room);
        let Some(modes) = sh.hub.modes(room) else {
            return Err("No such channel");
        };
        if !member && modes.no_external {
            return Err("Cannot send to channel (+n: you are not in it)");
        }
        let name = self
            .irc(id)
            .map(|c| crate::core::ircmap::name_of(c.target()))
            .unwrap_or_default();
        if self.mute_refusal(sh, id, &name, room).is_some() {
            let moderated = sh.hub.moderation(room).is_some_and(|m| m.moderated);
            return Err(if moderated {
                "Cannot send to channel (+m: moderated)"
            } else {
                "Cannot send to channel (you are muted)"
            });
        }
        Ok(())
    }

    pub(super) fn say_to_person(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        target: &str,
        text: &str,
        notice: bool,
        client_tags: &[(String, Option<String>)],
    ) {
        let name = ircmap::name_of(target);
        let cmd = if notice { "NOTICE" } else { "PRIVMSG" };
        let Some(me) = self.irc(id).and_then(|c| c.nick.clone()) else {
            return;
        };
        let held = sh
            .hub
            .people()
            .nick_holder(&name)
            .map(|(c, n)| (c, n.to_string()));
        let (to, nick) = match held {
            Some(held) => (Some(held.0), held.1),
            None if self.clustered => {
                // Perhaps a nick of another node: its channel says.
                self.direct_to_elsewhere(id, &me, &name, cmd, text);
                (None, name.clone())
            }
            None if !notice && self.direct_conn_of(sh, &name).is_some() => {
                // A chat-port person whose client takes direct messages.
                let to = self.direct_conn_of(sh, &name).expect("just found");
                self.direct_event_to(sh, to, &me, text);
                sh.counters.messages_relayed += 1;
                return;
            }
            None => {
                if !notice {
                    let why = if sh.hub.people().holder_of(&name).is_some() {
                        "No such nick: that person's client cannot receive direct messages"
                    } else {
                        "No such nick/channel"
                    };
                    self.numeric(sh, id, "401", &[target, why]);
                }
                return;
            }
        };
        let source = self.source_of(sh, &me);
        let account = self.account_of(sh, &me);
        let ts = sh.irc_ts();
        let msgid = sh.msgid();
        let texts = ircmap::irc_texts(text, source.len() + nick.len() + 12);
        let direct = Direct {
            source: &source,
            cmd,
            to_nick: &nick,
            texts: &texts,
            ts: &ts,
            msgid: &msgid,
            account: account.as_deref(),
            client_tags,
        };
        // The copy echoed to the sender (echo-message) is its answer, and
        // carries a label; a message to oneself arrives as well.
        let mut recipients: Vec<(ConnId, bool)> = to.map(|t| (t, false)).into_iter().collect();
        if self.irc(id).is_some_and(|c| c.has("echo-message")) {
            recipients.push((id, true));
        }
        for (r, echo) in recipients {
            let out = self.direct_lines(r, &direct);
            if r == id && !echo {
                self.irc_deliver(sh, r, &out);
            } else {
                self.irc_send(sh, r, &out);
            }
        }
        let kept = Stored {
            seq: 0,
            room: String::new(),
            msgid: msgid.clone(),
            kind: if notice { Kind::Notice } else { Kind::Message },
            name: me.clone(),
            body: text.to_string(),
            at_ms: sh.unix_ms() as i64,
            target: ircmap::nick_of(&nick),
        };
        // A copy for each side's account (one, to oneself).
        self.keep_direct(sh, id, &nick, &kept);
        if let Some(to) = to.filter(|&t| t != id) {
            self.keep_direct(sh, to, &me, &kept);
        }
        let Some(to) = to else {
            return; // counted by the node that delivers it
        };
        sh.counters.messages_relayed += 1;
        if !notice && let Some(away) = self.irc(to).and_then(|c| c.away.clone()) {
            self.numeric(sh, id, "301", &[&ircmap::nick_of(&nick), &away]);
        }
    }

    /// TAGMSG (message-tags): client-only tags and no text, to a room's
    /// or a person's IRC connections that asked for message-tags (the
    /// prototype's protocol has nothing to show).
    pub(super) fn on_tagmsg(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(target) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["TAGMSG", "Not enough parameters"]);
        };
        let tags = client_tags(msg);
        let recipients: Vec<ConnId> = if target.starts_with('#') {
            let Some(room) = Chat::room_named(sh, target).and_then(|r| sh.hub.room_id_of(&r))
            else {
                return self.numeric(sh, id, "403", &[target, "No such channel"]);
            };
            if let Err(why) = self.may_speak(sh, id, room) {
                return self.numeric(sh, id, "404", &[target, why]);
            }
            sh.hub.member_conns(room).filter(|&m| m != id).collect()
        } else {
            match sh.hub.people().nick_holder(&ircmap::name_of(target)) {
                Some((c, _)) => vec![c],
                None => return self.numeric(sh, id, "401", &[target, "No such nick/channel"]),
            }
        };
        let echo = self.irc(id).is_some_and(|c| c.has("echo-message"));
        let source = self.my_source(sh, id);
        let msgid = sh.msgid();
        let ts = sh.irc_ts();
        let to: Vec<(ConnId, bool)> = recipients
            .into_iter()
            .map(|r| (r, false))
            .chain(echo.then_some((id, true)))
            .collect();
        for (r, echoed) in to {
            let Some(c) = self.irc(r).filter(|c| c.has("message-tags")) else {
                continue;
            };
            let mut m = Message::new(Some(&source), "TAGMSG", &[target]);
            m.tags = tags.clone();
            m.tags.push(("msgid".into(), Some(msgid.clone())));
            if c.has("server-time") {
                m.tags.push(("time".into(), Some(ircmap::server_time(&ts))));
            }
            let line = m.encode();
            if r == id && !echoed {
                self.irc_deliver(sh, r, &line);
            } else {
                self.irc_send(sh, r, &line);
            }
        }
    }

    pub(super) fn on_away(&mut self, sh: &mut Shared, id: ConnId, text: Option<&str>) {
        let away: Option<String> = text
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(AWAY_LEN).collect());
        let Some(c) = self.irc_mut(id) else {
            return;
        };
        c.away = away.clone();
        let nick = c.target().to_string();
        match &away {
            Some(_) => self.numeric(sh, id, "306", &["You have been marked as being away"]),
            None => self.numeric(sh, id, "305", &["You are no longer marked as being away"]),
        }
        // away-notify: the IRC members sharing a room hear of it.
        let source = self.source_of(sh, &nick);
        let params: Vec<&str> = away.as_deref().into_iter().collect();
        let line = Message::new(Some(&source), "AWAY", &params).encode();
        let mut told = vec![id];
        for room in sh.hub.rooms_of(id).to_vec() {
            for m in sh.hub.member_conns(room).collect::<Vec<_>>() {
                if !told.contains(&m) && self.irc(m).is_some_and(|c| c.has("away-notify")) {
                    told.push(m);
                    self.irc_send(sh, m, &line);
                }
            }
        }
    }
}
