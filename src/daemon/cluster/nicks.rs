//! IRC nicks across the cluster: claimed in `chatd:people` (one person
//! per name cluster-wide, whatever the protocol), freed when the
//! connection quits or changes nick, claimed again by the sync after a
//! reconnect, freed by the heartbeat script when their node dies. A nick's
//! node subscribes to the nick's channel, so a direct message from any
//! node reaches it, and a PUBLISH that reaches no one is a 401.

use super::{Cluster, ClusterOut, Purpose};
use crate::core::cluster::{self as shared, DirectMessage, Frame, NickVerdict};
use crate::core::hub::ConnId;
use crate::core::names::comparison_key;
use crate::daemon::shared::Shared;

impl Cluster {
    /// `id` asks for `nick` (replacing `old`, its current nick, if any).
    /// The verdict comes back as [`ClusterOut::NickVerdict`].
    pub fn claim_nick(&mut self, id: ConnId, nick: &str, old: Option<&str>) {
        if !self.ready() {
            self.out.push(ClusterOut::NickVerdict {
                id,
                nick: nick.to_string(),
                verdict: NickVerdict::Unavailable,
            });
            return;
        }
        let key = comparison_key(nick);
        let old_key = old.map(comparison_key).unwrap_or_default();
        let msg = shared::eval(
            &shared::nick_script(),
            &[
                key.as_bytes(),
                nick.as_bytes(),
                self.node.as_bytes(),
                old_key.as_bytes(),
            ],
        );
        self.link.send(Purpose::Nick(id), &msg);
        let old = old.map(str::to_string);
        self.pending_nicks.insert(id, (nick.to_string(), old));
    }

    pub(super) fn on_nick_verdict(&mut self, sh: &mut Shared, id: ConnId, frame: &Frame) {
        let Some((nick, old)) = self.pending_nicks.remove(&id) else {
            return;
        };
        let verdict = match shared::nick_verdict(frame) {
            Ok(Ok(())) => {
                if let Some(old) = old.filter(|o| comparison_key(o) != comparison_key(&nick)) {
                    self.unsubscribe_nick(&old);
                }
                self.subscribe_nick(&nick);
                NickVerdict::Taken
            }
            Ok(Err(holder)) => NickVerdict::HeldBy(holder),
            Err(e) => {
                sh.log.warn(format!("cluster: a nick's verdict: {e}"));
                NickVerdict::Unavailable
            }
        };
        self.out.push(ClusterOut::NickVerdict { id, nick, verdict });
    }

    /// This node's nick `nick` is free again: its connection quit (a
    /// change of nick frees the old one in the claim itself).
    pub fn free_nick(&mut self, nick: &str) {
        self.unsubscribe_nick(nick);
        let key = comparison_key(nick);
        if !self.link.connected() {
            return; // the sync after the reconnect frees it
        }
        let msg = shared::eval(
            &shared::nick_free_script(),
            &[key.as_bytes(), self.node.as_bytes()],
        );
        self.link.send(Purpose::Ignore, &msg);
    }

    /// A chat-port person of this node whose client takes direct
    /// messages starts (or stops) listening on the name's channel, as a
    /// nick's node does.
    pub fn listen_direct(&mut self, name: &str, on: bool) {
        if !self.link.connected() {
            return; // the sync after the reconnect subscribes
        }
        match on {
            true => self.subscribe_nick(name),
            false => self.unsubscribe_nick(name),
        }
    }

    fn unsubscribe_nick(&mut self, nick: &str) {
        let channel = shared::nick_channel(&comparison_key(nick));
        if self.subscribed.remove(&channel) {
            self.link
                .send_no_reply(&shared::command(&[b"UNSUBSCRIBE", channel.as_bytes()]));
        }
    }

    fn subscribe_nick(&mut self, nick: &str) {
        let channel = shared::nick_channel(&comparison_key(nick));
        if !self.subscribed.contains(&channel)
            && self
                .link
                .send_no_reply(&shared::command(&[b"SUBSCRIBE", channel.as_bytes()]))
        {
            self.subscribed.insert(channel);
        }
    }

    /// A direct message from this node's `from` to a nick this node does
    /// not hold: to the nick's channel (a 401 comes back as
    /// [`ClusterOut::NoSuchNick`] if nobody heard it).
    pub fn direct(&mut self, from: ConnId, mut msg: DirectMessage) {
        if !self.link.connected() {
            if msg.command != "NOTICE" {
                self.out.push(ClusterOut::NoSuchNick {
                    id: from,
                    target: msg.to,
                });
            }
            return;
        }
        msg.node = self.node.clone();
        let channel = shared::nick_channel(&comparison_key(&msg.to));
        let payload = serde_json::to_vec(&msg).expect("plain strings serialise");
        // A NOTICE is never answered with an error.
        let purpose = if msg.command == "NOTICE" {
            Purpose::Ignore
        } else {
            Purpose::Direct(from, msg.to.clone())
        };
        self.link.send(
            purpose,
            &shared::command(&[b"PUBLISH", channel.as_bytes(), &payload]),
        );
    }

    /// A push on a nick channel: a direct message for this node's nick.
    pub(super) fn remote_direct(&mut self, sh: &mut Shared, key: &str, payload: &[u8]) {
        let m = match serde_json::from_slice::<DirectMessage>(payload) {
            Ok(m) => m,
            Err(e) => return self.drop_item(sh, "a direct message", e.to_string()),
        };
        if let Err(why) = m.check(sh.cfg.max_frame) {
            return self.drop_item(sh, "a direct message", why);
        }
        if comparison_key(&m.to) != key {
            let why = format!("for '{}' on the channel of another nick", m.to);
            return self.drop_item(sh, "a direct message", why);
        }
        if m.node == self.node {
            return; // ours, and the nick was taken here meanwhile: delivered locally
        }
        self.out.push(ClusterOut::Direct(m));
    }
}
