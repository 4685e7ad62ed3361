//! History across nodes: every node keeps the same messages of a room
//! that keeps a history, under the same msgids and times.
//!
//! - Live: a node follows (subscribes to) every history room's channel,
//!   members here or not, and keeps another node's message with the
//!   msgid and time its sender's node gave it (joins.rs).
//! - Catch-up: the sender's node also appends each message to the room's
//!   stream in Redis (`chatd:log:<room>`, `XADD MAXLEN ~` the room's
//!   history length). After every sync, a node reads each history room's
//!   stream (after subscribing, on the same connection, so nothing falls
//!   between the two) and keeps the messages it has not got, by msgid:
//!   what was said while it was down or cut off.
//!
//! Joins and leaves are not in the stream: each node keeps them as it
//! saw them, with its own msgids.

use super::{Cluster, Here, Purpose};
use crate::core::cluster::{self as shared, ChatMessage, Frame};
use crate::daemon::history::{Kind, Stored};
use crate::daemon::shared::Shared;

impl Cluster {
    /// After a snapshot: follow every room that keeps a history and ask
    /// for what its stream holds.
    pub(super) fn catch_up(&mut self, sh: &Shared, here: &dyn Here) {
        for r in sh.hub.list() {
            self.follow_room(sh, here, &r.name);
            if r.history > 0 && sh.history.is_some() {
                let ask = shared::log_read(&r.name, r.history);
                self.link.send(Purpose::Backfill(r.name.clone()), &ask);
            }
        }
    }

    /// A room's stream: the messages this node has not kept go into its
    /// history file and memory, in the order of their times.
    pub(super) fn on_backfill(&mut self, sh: &mut Shared, room: &str, frame: &Frame) {
        if let Some(e) = shared::error(frame) {
            sh.log
                .warn(format!("cluster: reading room '{room}''s log: {e}"));
            return;
        }
        let Some(room_id) = sh.hub.room_id_of(room) else {
            return; // closed meanwhile
        };
        let keep = sh.hub.history_len(room);
        // What is kept already, this pass's included (into the file: it
        // is read next).
        sh.commit_history_now();
        let Some(history) = &sh.history else {
            return;
        };
        let known: std::collections::HashSet<String> = match history.latest(room, usize::MAX) {
            Ok(events) => events.into_iter().map(|e| e.msgid).collect(),
            Err(e) => {
                sh.log.error(format!("cluster: room '{room}': {e}"));
                return;
            }
        };
        let mut missing = Vec::new();
        for payload in shared::log_entries(frame) {
            let m = match serde_json::from_slice::<ChatMessage>(payload) {
                Ok(m) => m,
                Err(e) => {
                    self.drop_item(sh, "a logged message", e.to_string());
                    continue;
                }
            };
            if let Err(why) = m.check(sh.cfg.max_frame) {
                self.drop_item(sh, "a logged message", why);
                continue;
            }
            let (Some(msgid), Some(at_ms)) = (m.msgid, m.at_ms) else {
                continue; // from a node that gave no ids: nothing to match
            };
            if known.contains(&msgid) || at_ms > sh.unix_ms() + 60_000 {
                continue;
            }
            missing.push(Stored {
                seq: 0,
                room: room.to_string(),
                msgid,
                kind: Kind::Message,
                name: m.name,
                body: m.text,
                at_ms: at_ms as i64,
                target: String::new(),
            });
        }
        if missing.is_empty() {
            return;
        }
        let n = missing.len();
        if let Some(h) = &mut sh.history {
            for s in missing {
                h.keep(s);
            }
        }
        // In the file now (not at the journal's next commit): memory is
        // read back from it.
        sh.commit_history_now();
        // Memory follows the file: the room's newest, in order of time.
        let events = match &sh.history {
            Some(h) => h.latest(room, keep),
            None => return,
        };
        match events {
            Ok(events) => {
                sh.hub.purge_history(room_id, None);
                sh.hub
                    .seed_history(room_id, events.iter().map(Stored::event).collect());
                sh.log.info(format!(
                    "cluster: room '{room}': {n} message(s) said while this node was away kept from the cluster's log"
                ));
            }
            Err(e) => sh.log.error(format!("cluster: room '{room}': {e}")),
        }
    }

    /// Another node's `room purge` (this node's own comes back too, and
    /// finds nothing more to remove).
    pub(super) fn apply_purge(&mut self, sh: &mut Shared, room: &str, before: &str) {
        let Some(before_ms) = shared::purge_before_ms(before) else {
            self.drop_item(sh, "a purge", format!("before {before:?}"));
            return;
        };
        let Some(id) = sh.hub.room_id_of(room) else {
            return;
        };
        sh.commit_history();
        let removed = match &mut sh.history {
            Some(h) => {
                let hub = &sh.hub;
                match h.purge(room, before_ms, |r| hub.history_len(r)) {
                    Ok(n) => n,
                    Err(e) => {
                        sh.log
                            .error(format!("cluster: purge of room '{room}': {e}"));
                        return;
                    }
                }
            }
            None => 0,
        };
        let cut = (before_ms != i64::MAX)
            .then(|| crate::timefmt::rfc3339((before_ms / 1000).max(0) as u64));
        let forgotten = sh.hub.purge_history(id, cut.as_deref());
        if removed > 0 || forgotten > 0 {
            sh.log.info(format!(
                "cluster: room '{room}' purged by an admin on another node: {removed} event(s) removed from the history file"
            ));
        }
    }
}
