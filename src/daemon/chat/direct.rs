//! Direct messages on the prototype's protocol: a member that asked for
//! `"commands"` sends `/msg NAME text` (`/msg "Ana Maria" text` for a name
//! with a space), and a person whose connection asked for `"direct"` gets
//! a `direct` event. A person in several rooms has several connections
//! under one name; the message goes to one of them (the oldest that asked),
//! so a client with a window per room shows it once. An IRC nick gets it
//! as PRIVMSG, and an IRC user's PRIVMSG to such a person arrives the same
//! way ([`Chat::direct_event_to`]).

use super::Chat;
use super::irc_cluster::Direct;
use crate::core::hub::ConnId;
use crate::core::ircmap;
use crate::core::session::Input;
use crate::core::wire::{ErrorCode, Event, EventKind};
use crate::daemon::history::{Kind, Stored};
use crate::daemon::shared::Shared;

/// Whether a member's message is a `/msg` (any case).
pub(super) fn is_msg(text: &str) -> bool {
    text.len() > 5 && text[..5].eq_ignore_ascii_case("/msg ")
}

/// `NAME text` or `"NAME WITH SPACES" text`: the name and the text.
pub(super) fn split_target(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start();
    let (name, text) = match rest.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        }
        None => rest.split_once(' ')?,
    };
    let text = text.strip_prefix(' ').unwrap_or(text);
    (!name.is_empty() && !text.is_empty()).then_some((name, text))
}

impl Chat {
    /// `/msg NAME text` from member `id`.
    pub(super) fn direct_from_member(&mut self, sh: &mut Shared, id: ConnId, rest: &str) {
        let Some(me) = sh.hub.member(id).map(|(_, m)| m.username.clone()) else {
            return;
        };
        let Some((name, text)) = split_target(rest) else {
            let why = "write /msg NAME text (a name with spaces in double quotes)";
            return self.answer_command(sh, id, Err((ErrorCode::BadRequest, why.into())));
        };
        if let Some((to, nick)) = sh
            .hub
            .people()
            .nick_holder(name)
            .map(|(c, n)| (c, n.to_string()))
        {
            self.direct_to_nick(sh, to, &me, &nick, text);
        } else if let Some(to) = self.direct_conn_of(sh, name) {
            self.direct_event_to(sh, to, &me, text);
        } else if self.clustered && !self.local_member_named(sh, name) {
            // Perhaps someone on another node: the name's channel says
            // (nicks and chat-port people that take them listen there),
            // and a 404 comes back if no one does.
            return self.direct_to_elsewhere(id, &me, name, "PRIVMSG", text);
        } else {
            let why = match sh.hub.people().holder_of(name) {
                Some(_) => "that person's client cannot receive direct messages".to_string(),
                None => format!("no one called '{name}' is here"),
            };
            return self.answer_command(sh, id, Err((ErrorCode::NoSuchRoom, why)));
        }
        sh.counters.messages_relayed += 1;
        if sh.cfg.log_messages {
            let who = self.describe(sh, id);
            sh.log
                .info(format!("direct message from {who} to '{name}': {text}"));
        }
    }

    /// The names of this node's chat-port people whose clients take
    /// direct messages (for the cluster: they listen on those names).
    pub fn direct_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.wants_direct)
            .filter_map(|c| c.direct_name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Cluster mode: `id`, a chat-port member that takes direct
    /// messages, joined (`on`) or is leaving; the first and the last of
    /// its name on this node start and stop listening for them.
    pub(super) fn direct_listener(&mut self, id: ConnId, name: &str, on: bool) {
        if !self.clustered {
            return;
        }
        let others = self
            .conns
            .iter()
            .filter(|(cid, c)| **cid != id && c.wants_direct)
            .any(|(_, c)| c.direct_name.as_deref() == Some(name));
        if !others {
            self.out
                .push(super::ChatOut::ListenDirect(name.to_string(), on));
        }
    }

    /// Whether a member of this node goes by `name` (or a name like it).
    fn local_member_named(&self, sh: &Shared, name: &str) -> bool {
        let Some(spelled) = sh.hub.people().holder_of(name) else {
            return false;
        };
        self.conns.keys().any(|&cid| {
            sh.hub
                .member(cid)
                .is_some_and(|(_, m)| m.username == spelled)
        })
    }

    /// The connection a direct message to `name` goes to: of the members
    /// spelling that name, the oldest that asked for `"direct"`.
    pub(super) fn direct_conn_of(&self, sh: &Shared, name: &str) -> Option<ConnId> {
        let spelled = sh.hub.people().holder_of(name)?.to_string();
        self.conns
            .iter()
            .filter(|(_, c)| c.direct_name.as_deref() == Some(spelled.as_str()))
            .map(|(&cid, _)| cid)
            // (A member the hub removed, a kick's, is leaving.)
            .filter(|&cid| sh.hub.member(cid).is_some())
            .min()
    }

    /// A `direct` event from `from` to connection `to`.
    pub(super) fn direct_event_to(&mut self, sh: &mut Shared, to: ConnId, from: &str, text: &str) {
        let event = Event {
            kind: EventKind::Direct,
            username: from.to_string(),
            message: text.to_string(),
            ..Event::default()
        };
        let line = self.encode_for(sh, to, &event);
        self.feed(sh, to, Input::Deliver(&line));
        self.drop_doomed(sh);
    }

    /// A chat-port member's direct message to the IRC nick held by `to`.
    fn direct_to_nick(&mut self, sh: &mut Shared, to: ConnId, me: &str, nick: &str, text: &str) {
        let source = self.source_of(sh, me);
        let ts = sh.irc_ts();
        let msgid = sh.msgid();
        let texts = ircmap::irc_texts(text, source.len() + nick.len() + 12);
        let direct = Direct {
            source: &source,
            cmd: "PRIVMSG",
            to_nick: nick,
            texts: &texts,
            ts: &ts,
            msgid: &msgid,
            account: None,
            client_tags: &[],
        };
        let lines = self.direct_lines(to, &direct);
        self.irc_send(sh, to, &lines);
        let kept = Stored {
            seq: 0,
            room: String::new(),
            msgid: msgid.clone(),
            kind: Kind::Message,
            name: me.to_string(),
            body: text.to_string(),
            at_ms: sh.unix_ms() as i64,
            target: ircmap::nick_of(nick),
        };
        self.keep_direct(sh, to, &ircmap::nick_of(me), &kept);
        self.drop_doomed(sh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_a_word_or_a_quoted_name() {
        assert!(is_msg("/msg Ana oi") && is_msg("/MSG Ana oi"));
        assert!(!is_msg("/msg") && !is_msg("/msgAna"));
        assert_eq!(split_target("Ana oi, tudo?"), Some(("Ana", "oi, tudo?")));
        assert_eq!(split_target("\"Ana Maria\" oi"), Some(("Ana Maria", "oi")));
        assert_eq!(split_target("Ana"), None);
        assert_eq!(split_target("\"Ana oi"), None);
        assert_eq!(split_target("\"\" oi"), None);
    }
}
