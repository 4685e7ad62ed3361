//! People, not connections: who holds a name, server-wide and across
//! protocols, compared by [`names::comparison_key`] (so `yan`, `Yan` and
//! `Yаn` with a Cyrillic `а` are one name).
//!
//! Two kinds of holder:
//!
//! - an IRC connection's nick, held from `NICK` until it quits or changes
//!   it, in every room it joins and in none: exclusive;
//! - the prototype's members, which join one room per connection, so a
//!   person in two rooms has two connections under one name: they share
//!   it when they spell it identically (as they did before IRC), and the
//!   name is free again when the last of them leaves.
//!
//! Either way a name held by one kind is taken for the other, and a name
//! that only looks like a held one is taken too. Pure: no I/O, no clock.

use std::collections::HashMap;

use super::ids::{ConnId, IdMap};
use super::names;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    Nick(ConnId),
    /// How many prototype memberships use the name.
    Members(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Holding {
    /// The name as its holder spells it.
    name: String,
    holder: Holder,
}

#[derive(Debug, Default)]
pub struct People {
    by_key: HashMap<String, Holding>,
    /// Each nick holder's key.
    nicks: IdMap<String>,
    /// Each nick as spelled, to its key: events name people by their own
    /// spelling, and this spares the skeleton on every delivery.
    spelled: HashMap<String, String>,
}

impl People {
    /// `conn` takes `name` as its nick (a first NICK, or a change, a
    /// change of case included). `Err` carries the spelling of whoever
    /// holds it (a nick or members).
    pub fn claim_nick(&mut self, conn: ConnId, name: &str) -> Result<(), String> {
        let key = names::comparison_key(name);
        match self.by_key.get(&key) {
            Some(h) if h.holder != Holder::Nick(conn) => return Err(h.name.clone()),
            _ => {}
        }
        if let Some(old) = self.nicks.insert(conn, key.clone())
            && let Some(h) = self.by_key.remove(&old)
        {
            self.spelled.remove(&h.name);
        }
        self.spelled.insert(name.to_string(), key.clone());
        self.by_key.insert(
            key,
            Holding {
                name: name.to_string(),
                holder: Holder::Nick(conn),
            },
        );
        Ok(())
    }

    /// `conn` is gone: its nick is free.
    pub fn release_nick(&mut self, conn: ConnId) {
        if let Some(key) = self.nicks.remove(&conn)
            && let Some(h) = self.by_key.remove(&key)
        {
            self.spelled.remove(&h.name);
        }
    }

    /// Every nick and its holder.
    pub fn nicks(&self) -> impl Iterator<Item = (ConnId, &str)> {
        self.nicks
            .iter()
            .map(|(&conn, key)| (conn, self.by_key[key].name.as_str()))
    }

    /// `conn`'s nick, if it holds one.
    pub fn nick(&self, conn: ConnId) -> Option<&str> {
        let key = self.nicks.get(&conn)?;
        Some(self.by_key[key].name.as_str())
    }

    /// The connection whose nick is (or looks like) `name`, and its nick.
    pub fn nick_holder(&self, name: &str) -> Option<(ConnId, &str)> {
        let h = match self.spelled.get(name) {
            Some(key) => self.by_key.get(key)?,
            None => self.by_key.get(&names::comparison_key(name))?,
        };
        match h.holder {
            Holder::Nick(conn) => Some((conn, h.name.as_str())),
            Holder::Members(_) => None,
        }
    }

    /// How many of the prototype's memberships share `name` (0 for a
    /// nick, or nobody).
    pub fn members(&self, name: &str) -> usize {
        let key = match self.spelled.get(name) {
            Some(key) => key.clone(),
            None => names::comparison_key(name),
        };
        match self.by_key.get(&key).map(|h| &h.holder) {
            Some(Holder::Members(n)) => *n,
            _ => 0,
        }
    }

    /// Whoever holds `name` (or a name like it), as they spell it.
    pub fn holder_of(&self, name: &str) -> Option<&str> {
        Some(self.by_key.get(&names::comparison_key(name))?.name.as_str())
    }

    /// Whether `conn` may be a member under `name`: as its own nick, or
    /// as a prototype member when the name is free or shared by members
    /// spelling it the same. `Err` carries the holder's spelling.
    pub fn check_member(&self, conn: ConnId, name: &str) -> Result<(), String> {
        let key = names::comparison_key(name);
        if self.nicks.get(&conn) == Some(&key) {
            return Ok(());
        }
        match self.by_key.get(&key) {
            None => Ok(()),
            Some(h) if matches!(h.holder, Holder::Members(_)) && h.name == name => Ok(()),
            Some(h) => Err(h.name.clone()),
        }
    }

    /// A membership under `name` began (after [`People::check_member`]).
    pub fn member_joined(&mut self, conn: ConnId, name: &str) {
        let key = names::comparison_key(name);
        if self.nicks.get(&conn) == Some(&key) {
            return;
        }
        if !self.by_key.contains_key(&key) {
            self.spelled.insert(name.to_string(), key.clone());
        }
        let h = self.by_key.entry(key).or_insert_with(|| Holding {
            name: name.to_string(),
            holder: Holder::Members(0),
        });
        if let Holder::Members(n) = &mut h.holder {
            *n += 1;
        }
    }

    /// A membership under `name` ended.
    pub fn member_left(&mut self, conn: ConnId, name: &str) {
        let key = names::comparison_key(name);
        if self.nicks.get(&conn) == Some(&key) {
            return;
        }
        if let Some(h) = self.by_key.get_mut(&key)
            && let Holder::Members(n) = &mut h.holder
        {
            *n -= 1;
            if *n == 0 {
                self.by_key.remove(&key);
                self.spelled.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nick_is_exclusive_and_taken_for_members_and_back() {
        let mut p = People::default();
        assert_eq!(p.claim_nick(1, "yan"), Ok(()));
        assert_eq!(p.claim_nick(2, "Yan"), Err("yan".into()));
        assert_eq!(p.check_member(3, "YAN"), Err("yan".into()));
        assert_eq!(p.check_member(1, "yan"), Ok(()), "its own nick");
        assert_eq!(p.claim_nick(1, "Yan"), Ok(()), "a change of case");
        assert_eq!(p.nick(1), Some("Yan"));
        assert_eq!(p.nick_holder("yAn"), Some((1, "Yan")));
        assert_eq!(p.claim_nick(1, "Ana"), Ok(()), "a change frees the old");
        assert_eq!(p.check_member(3, "Yan"), Ok(()));
        p.release_nick(1);
        assert_eq!(p.holder_of("ana"), None);
        assert_eq!(p.nick_holder("Ana"), None, "the spelling goes too");
        assert!(p.spelled.is_empty());
    }

    #[test]
    fn members_share_a_name_spelled_the_same_until_the_last_leaves() {
        let mut p = People::default();
        p.member_joined(1, "Yan");
        assert_eq!(p.check_member(2, "Yan"), Ok(()), "one person, two rooms");
        p.member_joined(2, "Yan");
        assert_eq!(p.check_member(3, "yan"), Err("Yan".into()), "a look-alike");
        assert_eq!(p.claim_nick(4, "yan"), Err("Yan".into()));
        p.member_left(1, "Yan");
        assert_eq!(p.claim_nick(4, "yan"), Err("Yan".into()));
        p.member_left(2, "Yan");
        assert_eq!(p.claim_nick(4, "yan"), Ok(()));
        assert_eq!(p.nick_holder("Yan"), Some((4, "yan")), "by its key");
        // A nick holder's memberships do not count.
        p.member_joined(4, "yan");
        p.member_left(4, "yan");
        assert_eq!(p.nick(4), Some("yan"));
    }
}
