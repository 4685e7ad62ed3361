//! MONITOR (IRCv3): an IRC user asks to be told when people come and go,
//! whatever their protocol: a nick registered or let go on the IRC door,
//! or a name's first and last membership on the chat port. At most
//! [`MONITOR_LIMIT`] names per connection; names compared by chatd's
//! comparison key, like everything else.

use std::collections::{BTreeSet, HashMap};

use super::Chat;
use crate::core::hub::ConnId;
use crate::core::irc::Message;
use crate::core::ircmap;
use crate::core::names::comparison_key;
use crate::daemon::shared::Shared;

/// Names one connection may monitor (ISUPPORT MONITOR).
pub const MONITOR_LIMIT: usize = 100;

/// Who monitors which name (by comparison key), and each watcher's list
/// as it gave it.
#[derive(Debug, Default)]
pub struct Monitors {
    watchers: HashMap<String, BTreeSet<ConnId>>,
    lists: HashMap<ConnId, Vec<String>>,
}

impl Monitors {
    fn add(&mut self, id: ConnId, name: &str) -> bool {
        let list = self.lists.entry(id).or_default();
        let key = comparison_key(name);
        if list.iter().any(|n| comparison_key(n) == key) {
            return true;
        }
        if list.len() >= MONITOR_LIMIT {
            return false;
        }
        list.push(name.to_string());
        self.watchers.entry(key).or_default().insert(id);
        true
    }

    fn remove(&mut self, id: ConnId, name: &str) {
        let key = comparison_key(name);
        if let Some(list) = self.lists.get_mut(&id) {
            list.retain(|n| comparison_key(n) != key);
        }
        if let Some(w) = self.watchers.get_mut(&key) {
            w.remove(&id);
            if w.is_empty() {
                self.watchers.remove(&key);
            }
        }
    }

    /// Whether anybody monitors anything (the common case is nobody).
    pub fn any(&self) -> bool {
        !self.watchers.is_empty()
    }

    /// A connection is gone, or cleared its list.
    pub fn forget(&mut self, id: ConnId) {
        for name in self.lists.remove(&id).unwrap_or_default() {
            self.remove(id, &name);
        }
    }

    fn watching(&self, name: &str) -> Vec<ConnId> {
        if self.watchers.is_empty() {
            return Vec::new();
        }
        self.watchers
            .get(&comparison_key(name))
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl Chat {
    pub(super) fn on_monitor(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(op) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["MONITOR", "Not enough parameters"]);
        };
        let targets: Vec<String> = msg
            .param(1)
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        match op {
            "+" => {
                let mut added = Vec::new();
                for (i, t) in targets.iter().enumerate() {
                    if !self.monitors.add(id, t) {
                        let rest = targets[i..].join(",");
                        let limit = MONITOR_LIMIT.to_string();
                        self.numeric(sh, id, "734", &[&limit, &rest, "Monitor list is full"]);
                        break;
                    }
                    added.push(t.clone());
                }
                self.monitor_status(sh, id, &added);
            }
            "-" => {
                for t in &targets {
                    self.monitors.remove(id, t);
                }
            }
            "C" | "c" => self.monitors.forget(id),
            "L" | "l" => {
                let list = self.monitors.lists.get(&id).cloned().unwrap_or_default();
                if !list.is_empty() {
                    self.numeric(sh, id, "732", &[&list.join(",")]);
                }
                self.numeric(sh, id, "733", &["End of MONITOR list"]);
            }
            "S" | "s" => {
                let list = self.monitors.lists.get(&id).cloned().unwrap_or_default();
                self.monitor_status(sh, id, &list);
            }
            _ => self.numeric(sh, id, "421", &["MONITOR", "Unknown MONITOR subcommand"]),
        }
    }

    /// 730 for those of `names` who are here, 731 for the others.
    fn monitor_status(&mut self, sh: &mut Shared, id: ConnId, names: &[String]) {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for n in names {
            match sh.hub.people().holder_of(&ircmap::name_of(n)) {
                Some(holder) => on.push(self.source_of(sh, holder)),
                None => off.push(n.clone()),
            }
        }
        if !on.is_empty() {
            self.numeric(sh, id, "730", &[&on.join(",")]);
        }
        if !off.is_empty() {
            self.numeric(sh, id, "731", &[&off.join(",")]);
        }
    }

    /// `name` arrived (true) or left: its watchers hear of it.
    pub(super) fn monitor_notify(&mut self, sh: &mut Shared, name: &str, online: bool) {
        let watchers = self.monitors.watching(name);
        if watchers.is_empty() {
            return;
        }
        let server = sh.cfg.irc_server_name.clone();
        for w in watchers {
            let Some(me) = self.irc(w).map(|c| ircmap::nick_of(c.target())) else {
                continue;
            };
            let line = if online {
                let source = self.source_of(sh, name);
                Message::new(Some(&server), "730", &[&me, &source]).encode()
            } else {
                Message::new(Some(&server), "731", &[&me, &ircmap::nick_of(name)]).encode()
            };
            self.irc_send(sh, w, &line);
        }
    }
}
