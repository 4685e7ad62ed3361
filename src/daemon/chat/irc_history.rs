//! The IRC door's history (issue #25): `CHATHISTORY` (draft/chathistory:
//! LATEST, BEFORE, AFTER, AROUND, BETWEEN, TARGETS) over the history
//! file, playback on JOIN, and the direct messages kept for it.
//!
//! What is shown: a room's messages to its members only (a private
//! room's history to those it admits, since they are the ones inside),
//! and a direct conversation to the accounts that took part in it (one
//! copy per logged-in side; someone not logged in keeps none). Every
//! line carries the msgid and server-time it had when it was sent, in a
//! `chathistory` batch, within half the asker's sendq.

use super::Chat;
use super::irc_cluster::Direct;
use crate::core::chathistory::{self, Fail, Query, Select};
use crate::core::hub::{ConnId, RoomId};
use crate::core::irc::Message;
use crate::core::{ircmap, names};
use crate::daemon::history::{DirectCopy, Kind, Stored, Stream};
use crate::daemon::shared::Shared;
use crate::timefmt;

/// The most messages (or targets) one CHATHISTORY answer holds
/// (ISUPPORT `CHATHISTORY`).
pub const CHATHISTORY_MAX: usize = 1000;

impl Chat {
    pub(super) fn on_chathistory(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let params: Vec<&str> = msg.params.iter().map(String::as_str).collect();
        match chathistory::parse(&params, CHATHISTORY_MAX) {
            Err(f) => self.chathistory_fail(sh, id, &f),
            Ok(Query::Targets { from, to, limit }) => self.send_targets(sh, id, (from, to), limit),
            Ok(Query::Messages {
                subcommand,
                target,
                select,
                limit,
            }) => self.send_window(sh, id, &subcommand, &target, &select, limit),
        }
    }

    fn chathistory_fail(&mut self, sh: &mut Shared, id: ConnId, f: &Fail) {
        let mut params: Vec<&str> = vec!["CHATHISTORY", f.code];
        params.extend(f.params.iter().map(String::as_str));
        params.push(f.text);
        self.irc_server(sh, id, "FAIL", &params);
    }

    /// The account `id` is logged in to, as its history's owner key.
    fn history_owner(&self, id: ConnId) -> Option<String> {
        let account = self.irc(id)?.account.as_deref()?;
        Some(names::comparison_key(account))
    }

    fn send_window(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        sub: &str,
        target: &str,
        select: &Select,
        limit: usize,
    ) {
        let invalid = |text: &'static str| Fail {
            code: "INVALID_TARGET",
            params: vec![sub.to_string(), target.to_string()],
            text,
        };
        let room;
        let owner;
        let peer;
        let stream = if target.starts_with('#') {
            let found = Chat::room_named(sh, target)
                .and_then(|r| Some((sh.hub.room_id_of(&r)?, r)))
                .filter(|(rid, _)| sh.hub.rooms_of(id).contains(rid));
            let Some((_, name)) = found else {
                return self.chathistory_fail(
                    sh,
                    id,
                    &invalid("No such channel, or you are not in it"),
                );
            };
            room = name;
            Stream::Room(&room)
        } else {
            let Some(me) = self.history_owner(id) else {
                // Not logged in: no direct messages are kept for it.
                return self.send_history_batch(sh, id, target, Vec::new());
            };
            owner = me;
            peer = names::comparison_key(&ircmap::name_of(target));
            Stream::Direct {
                owner: &owner,
                peer: &peer,
            }
        };
        let Some(h) = &mut sh.history else {
            let f = Fail {
                code: "MESSAGE_ERROR",
                params: vec![sub.to_string(), target.to_string()],
                text: "This server keeps no history file",
            };
            return self.chathistory_fail(sh, id, &f);
        };
        let hub = &sh.hub;
        let rows = h.window(stream, select, limit, |r| hub.history_len(r));
        match rows {
            Ok(rows) => {
                let lines = self.history_lines(sh, id, &rows);
                self.send_history_batch(sh, id, target, lines);
            }
            Err(e) => {
                sh.log.error(format!("history: CHATHISTORY: {e}"));
                let f = Fail {
                    code: "MESSAGE_ERROR",
                    params: vec![sub.to_string(), target.to_string()],
                    text: "The history file could not be read",
                };
                self.chathistory_fail(sh, id, &f);
            }
        }
    }

    /// Kept rows as the lines `id` is sent (its tags), each line a
    /// separate entry, within half its sendq.
    fn history_lines(&self, sh: &Shared, id: ConnId, rows: &[Stored]) -> Vec<Vec<u8>> {
        let budget = sh.cfg.sendq / 2;
        let mut used = 0;
        let mut out = Vec::new();
        // The newest count most: the budget is spent from the end.
        for row in rows.iter().rev() {
            let ts = timefmt::rfc3339_ms(row.at_ms.max(0) as u64);
            let source = self.source_of(sh, &row.name);
            let line = if row.target.is_empty() {
                let tags = self.tags_for(id, &ts, None);
                let mut event = row.event();
                event.ts = None;
                ircmap::room_event(&event, &source, &tags, false)
            } else {
                let texts = ircmap::irc_texts(&row.body, source.len() + row.target.len() + 12);
                let direct = Direct {
                    source: &source,
                    cmd: if row.kind == Kind::Notice {
                        "NOTICE"
                    } else {
                        "PRIVMSG"
                    },
                    to_nick: &row.target,
                    texts: &texts,
                    ts: &ts,
                    msgid: &row.msgid,
                    account: None,
                    client_tags: &[],
                };
                self.direct_lines(id, &direct)
            };
            used += line.len();
            if used > budget {
                break;
            }
            out.push(line);
        }
        out.reverse();
        out
    }

    /// `lines` in a `chathistory` batch for `target` (bare when the
    /// client did not take batch).
    pub(super) fn send_history_batch(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        target: &str,
        lines: Vec<Vec<u8>>,
    ) {
        let out = self.batched(sh, id, &["chathistory", target], &lines);
        self.irc_send(sh, id, &out);
    }

    /// Lines wrapped in a batch of `kind` (its type and parameters), each
    /// line tagged with it; as they are without the batch capability.
    pub(super) fn batched(
        &mut self,
        sh: &Shared,
        id: ConnId,
        kind: &[&str],
        lines: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.irc(id).is_some_and(|c| c.has("batch")) {
            for line in lines {
                out.extend_from_slice(line);
            }
            return out;
        }
        self.batches += 1;
        let reference = format!("H{}", self.batches);
        let server = &sh.cfg.irc_server_name;
        let open = format!("+{reference}");
        let mut params = vec![open.as_str()];
        params.extend_from_slice(kind);
        out.extend_from_slice(&Message::new(Some(server), "BATCH", &params).encode());
        for line in lines {
            for raw in line.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(mut m) = crate::core::irc::parse(raw) else {
                    continue;
                };
                m.tags.insert(0, ("batch".into(), Some(reference.clone())));
                out.extend_from_slice(&m.encode());
            }
        }
        out.extend_from_slice(
            &Message::new(Some(server), "BATCH", &[&format!("-{reference}")]).encode(),
        );
        out
    }

    /// CHATHISTORY TARGETS: the rooms `id` is in and the people its
    /// account talked with, whose latest message lies in the span.
    fn send_targets(&mut self, sh: &mut Shared, id: ConnId, span: (i64, i64), limit: usize) {
        let owner = self.history_owner(id);
        let rooms: Vec<String> = sh
            .hub
            .rooms_of(id)
            .iter()
            .filter_map(|&r| sh.hub.room_name(r).map(str::to_string))
            .collect();
        let Some(h) = &mut sh.history else {
            let f = Fail {
                code: "MESSAGE_ERROR",
                params: vec!["TARGETS".into()],
                text: "This server keeps no history file",
            };
            return self.chathistory_fail(sh, id, &f);
        };
        let hub = &sh.hub;
        let found = h.targets(owner.as_deref(), &rooms, span, limit, |r| {
            hub.history_len(r)
        });
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                sh.log.error(format!("history: CHATHISTORY TARGETS: {e}"));
                let f = Fail {
                    code: "MESSAGE_ERROR",
                    params: vec!["TARGETS".into()],
                    text: "The history file could not be read",
                };
                return self.chathistory_fail(sh, id, &f);
            }
        };
        let server = sh.cfg.irc_server_name.clone();
        let lines: Vec<Vec<u8>> = found
            .iter()
            .filter_map(|(name, is_room, at)| {
                let shown = if *is_room {
                    ircmap::channel_of(name)?
                } else {
                    ircmap::nick_of(name)
                };
                let ts = timefmt::rfc3339_ms((*at).max(0) as u64);
                Some(Message::new(Some(&server), "CHATHISTORY", &["TARGETS", &shown, &ts]).encode())
            })
            .collect();
        let out = self.batched(sh, id, &["draft/chathistory-targets"], &lines);
        self.irc_send(sh, id, &out);
    }

    /// History playback on JOIN: a room that keeps a history shows the
    /// joiner its kept messages (not joins and leaves) after NAMES, with
    /// their own server-time and msgid, in a `chathistory` batch when the
    /// client took batch (not inside a labeled response).
    pub(super) fn play_back(&mut self, sh: &mut Shared, id: ConnId, room: RoomId) {
        let Some(name) = sh.hub.room_name(room).map(str::to_string) else {
            return;
        };
        let n = sh.hub.history_len(&name);
        if n == 0 {
            return;
        }
        let Some(h) = &mut sh.history else {
            return; // memory only (the parts' tests): no playback
        };
        let hub = &sh.hub;
        let rows = h
            .window(Stream::Room(&name), &Select::Latest(None), n, |r| {
                hub.history_len(r)
            })
            .unwrap_or_default();
        let lines = self.history_lines(sh, id, &rows);
        if lines.is_empty() {
            return;
        }
        let Some(channel) = ircmap::channel_of(&name) else {
            return;
        };
        let labeled = self.capture.as_ref().is_some_and(|(c, _)| *c == id);
        let out = if labeled {
            lines.concat()
        } else {
            self.batched(sh, id, &["chathistory", &channel], &lines)
        };
        self.irc_send(sh, id, &out);
    }

    /// Keeps a direct message for `owner`'s account, if it is logged in
    /// to one and `--direct-history` allows: its conversation with
    /// `peer_nick`.
    pub(super) fn keep_direct(
        &self,
        sh: &mut Shared,
        owner: ConnId,
        peer_nick: &str,
        kept: &Stored,
    ) {
        let (Some(h), Some(owner)) = (&mut sh.history, self.history_owner(owner)) else {
            return;
        };
        let peer_name = ircmap::name_of(peer_nick);
        h.keep_direct(DirectCopy {
            owner,
            peer: names::comparison_key(&peer_name),
            peer_name,
            event: kept.clone(),
        });
    }
}
