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

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use super::ids::{ConnId, IdMap};
use super::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Nick(ConnId),
    /// How many prototype memberships use the name.
    Members(usize),
}

/// A held name: as its holder spells it and its comparison key, in one
/// string, and who holds it. Each is shared by the two sets that find it
/// (by key, by spelling) and by its nick holder's entry: one allocation
/// per person and one pointer per set, where two maps of owned strings
/// took about 300 bytes a person.
#[derive(Debug)]
struct Person {
    /// The spelling, then the key.
    text: Box<str>,
    /// Where the key starts in `text`.
    split: usize,
    holder: Cell<Holder>,
}

impl Person {
    fn new(name: &str, key: &str, holder: Holder) -> Rc<Person> {
        Rc::new(Person {
            text: format!("{name}{key}").into_boxed_str(),
            split: name.len(),
            holder: Cell::new(holder),
        })
    }

    fn name(&self) -> &str {
        &self.text[..self.split]
    }

    fn key(&self) -> &str {
        &self.text[self.split..]
    }
}

/// A person, found in a set by comparison key (hashed and compared as
/// the key alone, so that the set is searched with a `&str`).
#[derive(Debug)]
struct ByKey(Rc<Person>);

impl Borrow<str> for ByKey {
    fn borrow(&self) -> &str {
        self.0.key()
    }
}

impl Hash for ByKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.key().hash(h);
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &ByKey) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for ByKey {}

/// A person, found in a set by spelling (one spelling has one key, so
/// spellings are as unique as keys).
#[derive(Debug)]
struct ByName(Rc<Person>);

impl Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

impl Hash for ByName {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.name().hash(h);
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &ByName) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for ByName {}

#[derive(Debug, Default)]
pub struct People {
    by_key: HashSet<ByKey>,
    /// Events name people by their own spelling, and this spares the
    /// skeleton on every delivery.
    by_name: HashSet<ByName>,
    /// Each nick holder's name.
    nicks: IdMap<Rc<Person>>,
}

impl People {
    /// `conn` takes `name` as its nick (a first NICK, or a change, a
    /// change of case included). `Err` carries the spelling of whoever
    /// holds it (a nick or members).
    pub fn claim_nick(&mut self, conn: ConnId, name: &str) -> Result<(), String> {
        let key = names::comparison_key(name);
        match self.by_key.get(key.as_str()) {
            Some(p) if p.0.holder.get() != Holder::Nick(conn) => return Err(p.0.name().into()),
            _ => {}
        }
        if let Some(old) = self.nicks.remove(&conn) {
            self.forget(&old);
        }
        let person = Person::new(name, &key, Holder::Nick(conn));
        self.by_key.replace(ByKey(Rc::clone(&person)));
        self.by_name.replace(ByName(Rc::clone(&person)));
        self.nicks.insert(conn, person);
        Ok(())
    }

    /// `conn` is gone: its nick is free.
    pub fn release_nick(&mut self, conn: ConnId) {
        if let Some(person) = self.nicks.remove(&conn) {
            self.forget(&person);
        }
    }

    /// The name is free: out of both sets.
    fn forget(&mut self, person: &Person) {
        self.by_key.remove(person.key());
        self.by_name.remove(person.name());
    }

    /// Every nick and its holder.
    pub fn nicks(&self) -> impl Iterator<Item = (ConnId, &str)> {
        self.nicks.iter().map(|(&conn, p)| (conn, p.name()))
    }

    /// `conn`'s nick, if it holds one.
    pub fn nick(&self, conn: ConnId) -> Option<&str> {
        self.nicks.get(&conn).map(|p| p.name())
    }

    /// Whoever holds `name` or a name like it: by its spelling first,
    /// which spares the skeleton.
    fn find(&self, name: &str) -> Option<&Person> {
        match self.by_name.get(name) {
            Some(p) => Some(&p.0),
            None => self
                .by_key
                .get(names::comparison_key(name).as_str())
                .map(|p| &*p.0),
        }
    }

    /// The connection whose nick is (or looks like) `name`, and its nick.
    pub fn nick_holder(&self, name: &str) -> Option<(ConnId, &str)> {
        let p = self.find(name)?;
        match p.holder.get() {
            Holder::Nick(conn) => Some((conn, p.name())),
            Holder::Members(_) => None,
        }
    }

    /// How many of the prototype's memberships share `name` (0 for a
    /// nick, or nobody).
    pub fn members(&self, name: &str) -> usize {
        match self.find(name).map(|p| p.holder.get()) {
            Some(Holder::Members(n)) => n,
            _ => 0,
        }
    }

    /// Whoever holds `name` (or a name like it), as they spell it.
    pub fn holder_of(&self, name: &str) -> Option<&str> {
        Some(self.find(name)?.name())
    }

    /// Whether `conn` may be a member under `name`: as its own nick, or
    /// as a prototype member when the name is free or shared by members
    /// spelling it the same. `Err` carries the holder's spelling.
    pub fn check_member(&self, conn: ConnId, name: &str) -> Result<(), String> {
        let key = names::comparison_key(name);
        if self.own_nick(conn, &key) {
            return Ok(());
        }
        match self.by_key.get(key.as_str()).map(|p| &p.0) {
            None => Ok(()),
            Some(p) if matches!(p.holder.get(), Holder::Members(_)) && p.name() == name => Ok(()),
            Some(p) => Err(p.name().into()),
        }
    }

    /// Whether `key` is `conn`'s own nick's.
    fn own_nick(&self, conn: ConnId, key: &str) -> bool {
        self.nicks.get(&conn).is_some_and(|p| p.key() == key)
    }

    /// A membership under `name` began (after [`People::check_member`]).
    pub fn member_joined(&mut self, conn: ConnId, name: &str) {
        let key = names::comparison_key(name);
        if self.own_nick(conn, &key) {
            return;
        }
        match self.by_key.get(key.as_str()) {
            Some(p) => {
                if let Holder::Members(n) = p.0.holder.get() {
                    p.0.holder.set(Holder::Members(n + 1));
                }
            }
            None => {
                let person = Person::new(name, &key, Holder::Members(1));
                self.by_name.replace(ByName(Rc::clone(&person)));
                self.by_key.insert(ByKey(person));
            }
        }
    }

    /// A membership under `name` ended.
    pub fn member_left(&mut self, conn: ConnId, name: &str) {
        let key = names::comparison_key(name);
        if self.own_nick(conn, &key) {
            return;
        }
        let Some(p) = self.by_key.get(key.as_str()).map(|p| Rc::clone(&p.0)) else {
            return;
        };
        match p.holder.get() {
            Holder::Members(n) if n > 1 => p.holder.set(Holder::Members(n - 1)),
            Holder::Members(_) => self.forget(&p),
            Holder::Nick(_) => {}
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
        assert!(p.by_name.is_empty() && p.by_key.is_empty());
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
