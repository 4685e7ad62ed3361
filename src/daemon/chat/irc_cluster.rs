//! The IRC door in cluster mode: what waits for the cluster's verdict.
//!
//! - A nick is claimed cluster-wide (core/cluster.rs, `chatd:people`) at
//!   registration and at a change of nick; the connection's later lines
//!   wait for the verdict, as a chat-port handshake waits for its seat.
//!   A change of nick while in rooms is refused (447): the rooms' other
//!   nodes know their members by name, and a rename across nodes is not
//!   replicated.
//! - A JOIN is decided by the cluster's `JOIN` script (the room's
//!   cluster-wide limit, the name free), one channel at a time: the
//!   channels listed after it wait in `join_rest`.
//! - A direct message to a nick this node does not hold goes to the
//!   nick's channel; a 401 comes back if nobody holds it.

use super::irc::Claim;
use super::{Chat, ChatOut};
use crate::core::cluster::{DirectMessage, JoinRequest, NickVerdict};
use crate::core::hub::{ConnId, Delivery};
use crate::core::irc::Message;
use crate::core::ircmap;
use crate::core::wire::{ErrorCode, Handshake};
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

impl Chat {
    /// `id`'s lines wait until the cluster has answered.
    pub(super) fn await_verdict(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.awaiting_verdict = true;
        }
    }

    /// Whether `id` is an IRC connection whose nick the cluster holds
    /// for it (the sync after a reconnect claims those again).
    pub fn nick_claimed(&self, id: ConnId) -> bool {
        self.irc(id).is_some_and(|c| c.claimed)
    }

    /// Whether `id` speaks IRC.
    pub fn speaks_irc(&self, id: ConnId) -> bool {
        self.irc(id).is_some()
    }

    /// A registered user asks for another nick: outside any room, the
    /// cluster decides; in a room, 447.
    pub(super) fn change_nick_in_cluster(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        old: String,
        wanted: String,
    ) {
        if !sh.hub.rooms_of(id).is_empty() {
            let why = "Cannot change nickname while in channels (cluster mode): PART them first";
            return self.numeric(sh, id, "447", &[why]);
        }
        let mine = sh.hub.people().nick_holder(&wanted).map(|(c, _)| c) == Some(id);
        if !mine && sh.hub.people().holder_of(&wanted).is_some() {
            return self.numeric(sh, id, "433", &[&wanted, "Nickname is already in use"]);
        }
        if let Some(c) = self.irc_mut(id) {
            c.claiming = Some(Claim::Change { old: old.clone() });
        }
        self.await_verdict(id);
        self.out.push(ChatOut::ClaimNick {
            id,
            nick: wanted,
            old: Some(old),
        });
    }

    /// The cluster's verdict on `id`'s nick.
    pub fn nick_verdict(&mut self, sh: &mut Shared, id: ConnId, nick: &str, verdict: NickVerdict) {
        let claim = self.irc_mut(id).and_then(|c| c.claiming.take());
        self.verdict_given(id);
        let Some(claim) = claim else {
            // Gone while the cluster decided: the nick goes back.
            if verdict == NickVerdict::Taken {
                self.out.push(ChatOut::FreeNick(nick.to_string()));
            }
            return;
        };
        match (claim, verdict) {
            (Claim::Register(account), NickVerdict::Taken) => {
                if let Some(c) = self.irc_mut(id) {
                    c.claimed = true;
                }
                self.register(sh, id, nick, account);
            }
            (Claim::Change { old }, NickVerdict::Taken) => match sh.hub.claim_nick(id, nick) {
                Ok(rooms) => {
                    self.remember_nick(sh, id);
                    if let Some(c) = self.irc_mut(id) {
                        c.nick = Some(nick.to_string());
                    }
                    self.renamed(sh, id, &old, nick, &rooms);
                }
                Err(holder) => {
                    // The cluster gave it, someone here took it meanwhile
                    // (cannot happen: local joins ask the cluster first).
                    sh.log.warn(format!(
                        "cluster: nick '{nick}' given by the cluster is held here by '{holder}'"
                    ));
                    self.numeric(sh, id, "433", &[nick, "Nickname is already in use"]);
                }
            },
            (claim, NickVerdict::HeldBy(holder)) => {
                if matches!(claim, Claim::Register(_)) {
                    sh.hub.release_nick(id);
                    if let Some(c) = self.irc_mut(id) {
                        c.nick = None;
                    }
                }
                let why = format!("Nickname is already in use (by '{holder}' in the cluster)");
                self.numeric(sh, id, "433", &[nick, &why]);
            }
            (Claim::Register(_), NickVerdict::Unavailable) => {
                self.irc_close(
                    sh,
                    id,
                    "the cluster store is unreachable; try again shortly",
                );
            }
            (Claim::Change { .. }, NickVerdict::Unavailable) => {
                let why = "Nick is temporarily unavailable: the cluster store is unreachable";
                self.numeric(sh, id, "437", &[nick, why]);
            }
        }
        self.drop_doomed(sh);
    }

    /// An IRC JOIN that passed every local check asks the cluster for the
    /// seat; the channels after it wait.
    pub(super) fn join_in_cluster(&mut self, id: ConnId, room: &str) {
        let Some(c) = self.irc(id) else {
            return;
        };
        let nick = c.target().to_string();
        let peer = self.conns[&id].peer;
        let hs = Handshake {
            username: Some(nick.clone()),
            room: room.to_string(),
            password: None,
            token: None,
            key: None,
            members: false,
            history: false,
            topic: false,
            commands: false,
            direct: false,
            room_events: false,
        };
        let channel = ircmap::channel_of(room).unwrap_or_else(|| room.to_string());
        if let Some(c) = self.irc_mut(id) {
            c.joining = Some(channel);
        }
        self.await_verdict(id);
        self.out.push(ChatOut::Join(JoinRequest {
            id,
            peer,
            hs,
            username: nick,
            login: "",
            irc: true,
        }));
    }

    /// The cluster admitted `id` to a room: as a local IRC join.
    pub(super) fn irc_joined(&mut self, sh: &mut Shared, id: ConnId, delivery: &Delivery) {
        if let Some(c) = self.irc_mut(id) {
            c.joining = None;
        }
        let room = sh.hub.room_name(delivery.room).unwrap_or("").to_string();
        self.irc_entered(sh, id, delivery, &room, false);
        self.join_rest(sh, id);
    }

    /// The cluster refused `id` a room: the numeric, and it stays.
    pub(super) fn irc_join_refused(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        code: ErrorCode,
        reason: &str,
        room: &str,
    ) {
        let channel = self
            .irc_mut(id)
            .and_then(|c| c.joining.take())
            .unwrap_or_else(|| ircmap::channel_of(room).unwrap_or_else(|| room.to_string()));
        sh.counters.refusals += 1;
        let peer = self.peer_text(id);
        self.id_log(
            sh,
            id,
            Level::Warn,
            format!(
                "refused {} to {channel} from {peer} (IRC): {reason}",
                code.as_str()
            ),
        );
        let numeric = match code {
            ErrorCode::RoomFull => "471",
            ErrorCode::NoSuchRoom => "403",
            _ => "437",
        };
        self.numeric(
            sh,
            id,
            numeric,
            &[&channel, &format!("Cannot join channel: {reason}")],
        );
        self.join_rest(sh, id);
    }

    /// The channels of a JOIN listed after one the cluster decided.
    fn join_rest(&mut self, sh: &mut Shared, id: ConnId) {
        let rest = self.irc_mut(id).and_then(|c| c.join_rest.take());
        if let Some(msg) = rest {
            self.on_join(sh, id, &msg);
        }
    }

    /// A JOIN of the channels (and keys) after the `done` first ones.
    pub(super) fn rest_of_join(channels: &[&str], keys: &[&str], done: usize) -> Option<Message> {
        let rest: Vec<&str> = channels.iter().skip(done).copied().collect();
        if rest.is_empty() {
            return None;
        }
        let keys: Vec<&str> = keys.iter().skip(done).copied().collect();
        let mut params = vec![rest.join(",")];
        if keys.iter().any(|k| !k.is_empty()) {
            params.push(keys.join(","));
        }
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        Some(Message::new(None, "JOIN", &params))
    }

    /// A direct message from `id` to a nick held on no connection here.
    pub(super) fn direct_to_elsewhere(
        &mut self,
        id: ConnId,
        me: &str,
        to: &str,
        command: &str,
        text: &str,
    ) {
        let msg = DirectMessage {
            name: me.to_string(),
            node: String::new(),
            to: to.to_string(),
            command: command.to_string(),
            text: text.to_string(),
        };
        self.out.push(ChatOut::Direct(id, msg));
    }

    /// Another node's direct message for a nick held here.
    pub fn direct_from_elsewhere(&mut self, sh: &mut Shared, msg: &DirectMessage) {
        let Some((to, nick)) = sh
            .hub
            .people()
            .nick_holder(&msg.to)
            .map(|(c, n)| (c, n.to_string()))
        else {
            // A chat-port person here whose client takes them, or nobody
            // (it left meanwhile).
            if msg.command == "PRIVMSG"
                && let Some(to) = self.direct_conn_of(sh, &msg.to)
            {
                self.direct_event_to(sh, to, &msg.name, &msg.text);
                sh.counters.messages_relayed += 1;
            }
            return;
        };
        if !self.irc(to).is_some_and(|c| c.registered) {
            return;
        }
        // As other nodes' people are shown in rooms (name!name@chat).
        let source = self.source_of(sh, &msg.name);
        let ts = sh.irc_ts();
        let msgid = sh.msgid();
        let texts = ircmap::irc_texts(&msg.text, source.len() + nick.len() + 12);
        let direct = Direct {
            source: &source,
            cmd: &msg.command,
            to_nick: &nick,
            texts: &texts,
            ts: &ts,
            msgid: &msgid,
            account: None,
            client_tags: &[],
        };
        let line = self.direct_lines(to, &direct);
        self.irc_send(sh, to, &line);
        let kept = crate::daemon::history::Stored {
            seq: 0,
            room: String::new(),
            msgid: msgid.clone(),
            kind: if msg.command == "NOTICE" {
                crate::daemon::history::Kind::Notice
            } else {
                crate::daemon::history::Kind::Message
            },
            name: msg.name.clone(),
            body: msg.text.clone(),
            at_ms: sh.unix_ms() as i64,
            target: ircmap::nick_of(&nick),
        };
        self.keep_direct(sh, to, &ircmap::nick_of(&msg.name), &kept);
        sh.counters.messages_relayed += 1;
        self.drop_doomed(sh);
    }

    /// A direct message from `id` reached nobody.
    pub fn no_such_nick(&mut self, sh: &mut Shared, id: ConnId, target: &str) {
        if self.irc(id).is_none() {
            // A chat-port member's `/msg`.
            let why = format!("no one called '{target}' is here");
            let code = crate::core::wire::ErrorCode::NoSuchRoom;
            return self.answer_command(sh, id, Err((code, why)));
        }
        self.numeric(
            sh,
            id,
            "401",
            &[&ircmap::nick_of(target), "No such nick/channel"],
        );
        self.drop_doomed(sh);
    }

    /// The lines of one direct message to `r`, with the tags it asked for.
    pub(super) fn direct_lines(&self, r: ConnId, d: &Direct) -> Vec<u8> {
        let tags = self.tags_for(r, d.ts, d.account);
        let mut out = Vec::new();
        for t in d.texts {
            let mut m = Message::new(Some(d.source), d.cmd, &[&ircmap::nick_of(d.to_nick), t]);
            if tags.message_tags {
                m.tags.extend(d.client_tags.iter().cloned());
                m.tags.push(("msgid".into(), Some(d.msgid.to_string())));
            }
            if let Some(time) = &tags.time {
                m.tags.push(("time".into(), Some(time.clone())));
            }
            if let Some(a) = &tags.account {
                m.tags.push(("account".into(), Some(a.clone())));
            }
            out.extend_from_slice(&m.encode());
        }
        out
    }
}

/// One direct message, as its lines are made for each recipient.
pub(super) struct Direct<'a> {
    pub source: &'a str,
    pub cmd: &'a str,
    pub to_nick: &'a str,
    /// The text, split to fit IRC lines.
    pub texts: &'a [String],
    pub ts: &'a str,
    pub msgid: &'a str,
    pub account: Option<&'a str>,
    pub client_tags: &'a [(String, Option<String>)],
}
