//! A room's IRC-style modes, pure: who operates it (`+o`) and may speak
//! when it is moderated (`+v`), its flags (`+i` invite-only, `+m`
//! moderated, `+n` no messages from outside, `+s` secret, `+t` topic set
//! by operators), its key (`+k`), bans (`+b`, masks on `nick!user@host`),
//! and invitations; and the parser for a MODE change string. These live
//! as long as the room's members: what lasts (the topic, `+m`, operator
//! accounts, bans and mutes with expiry) is core/moderation.rs.
//!
//! Who may change them is the caller's business: a room made by joining
//! it (`--room-creation`) has its first member as operator, as an IRC
//! channel does; an account named with `chatctl room op` gets `+o` when
//! it joins. A room's limit (`+l`) is the hub's own participant limit.

use std::collections::BTreeSet;

use super::ids::ConnId;

/// Longest key (RFC 2812: 23).
pub const KEY_LEN: usize = 23;
/// Most bans per room.
pub const MAX_BANS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub mask: String,
    pub setter: String,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomModes {
    pub ops: BTreeSet<ConnId>,
    pub voiced: BTreeSet<ConnId>,
    pub invite_only: bool,
    pub no_external: bool,
    pub secret: bool,
    pub topic_lock: bool,
    /// A key set with MODE +k (kept as given: it is shown to members, as
    /// IRC does; an administrator's room key is a hash in `Access`).
    pub key: Option<String>,
    /// Ban exceptions (`+e`) and invite exceptions (`+I`), masks too.
    pub exceptions: Vec<Ban>,
    pub invex: Vec<Ban>,
    /// Connections invited past `+i` (and bans) until they join.
    pub invited: BTreeSet<ConnId>,
    /// When it was made (Unix seconds), when known.
    pub created: Option<u64>,
}

impl Default for RoomModes {
    fn default() -> RoomModes {
        RoomModes {
            ops: BTreeSet::new(),
            voiced: BTreeSet::new(),
            invite_only: false,
            no_external: true,
            secret: false,
            topic_lock: true,
            key: None,
            exceptions: Vec::new(),
            invex: Vec::new(),
            invited: BTreeSet::new(),
            created: None,
        }
    }
}

impl RoomModes {
    /// A member is gone: it is no longer operator, voiced or invited.
    pub fn forget(&mut self, conn: ConnId) {
        self.ops.remove(&conn);
        self.voiced.remove(&conn);
        self.invited.remove(&conn);
    }

    /// The flags as `+inst` (with `k` for a key and `l` for a limit, if
    /// any), and their arguments (the key shown only to members).
    /// `moderated` is the room's lasting `+m` (core/moderation.rs).
    pub fn describe(
        &self,
        limit: Option<usize>,
        member: bool,
        moderated: bool,
    ) -> (String, Vec<String>) {
        let mut flags = String::from("+");
        let mut args = Vec::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (moderated, 'm'),
            (self.no_external, 'n'),
            (self.secret, 's'),
            (self.topic_lock, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(k) = &self.key {
            flags.push('k');
            args.push(if member { k.clone() } else { "*".into() });
        }
        if let Some(limit) = limit {
            flags.push('l');
            args.push(limit.to_string());
        }
        (flags, args)
    }

    /// Whether `conn` (whose source is `source`) is exempt from the
    /// room's bans: invited, or a ban exception (`+e`) matches.
    pub fn excepted(&self, conn: ConnId, source: &str) -> bool {
        self.invited.contains(&conn) || self.exceptions.iter().any(|b| glob(&b.mask, source))
    }

    /// Whether `+i` lets `conn` in: invited, or an invite exception matches.
    pub fn may_enter(&self, conn: ConnId, source: &str) -> bool {
        !self.invite_only
            || self.invited.contains(&conn)
            || self.invex.iter().any(|b| glob(&b.mask, source))
    }

    /// The mask list a letter names (`e`, `I`; bans are lasting rules,
    /// core/moderation.rs).
    pub fn list_mut(&mut self, c: char) -> &mut Vec<Ban> {
        match c {
            'e' => &mut self.exceptions,
            _ => &mut self.invex,
        }
    }
}

/// One change a MODE string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `i`, `m`, `n`, `s`, `t` on or off.
    Flag(char, bool),
    /// `o` or `v`, on or off, for a nick.
    Member(char, bool, String),
    /// `+k key` or `-k`.
    Key(Option<String>),
    /// `+l N` (as given) or `-l`.
    Limit(Option<String>),
    /// `+b`, `+e` or `+I` with a mask, on or off.
    Mask(char, bool, String),
    /// `b`, `e` or `I` without a mask: the list.
    List(char),
    /// A mode chatd does not know.
    Unknown(char),
    /// A mode that needs a parameter and got none.
    Missing(char),
}

/// The changes a MODE string (`+ov-k nick nick`) and its arguments ask
/// for, in order; at most `max` that take a parameter.
pub fn parse(modes: &str, args: &[String], max: usize) -> Vec<Change> {
    let mut out = Vec::new();
    let mut on = true;
    let mut args = args.iter();
    let mut with_param = 0;
    for c in modes.chars() {
        let mut take = |needed: bool| -> Option<String> {
            if !needed {
                return None;
            }
            with_param += 1;
            args.next().cloned()
        };
        let change = match c {
            '+' => {
                on = true;
                continue;
            }
            '-' => {
                on = false;
                continue;
            }
            'i' | 'm' | 'n' | 's' | 't' => Change::Flag(c, on),
            'o' | 'v' => match take(true) {
                Some(nick) => Change::Member(c, on, nick),
                None => Change::Missing(c),
            },
            'k' if on => match take(true) {
                Some(k) => Change::Key(Some(k)),
                None => Change::Missing(c),
            },
            'k' => {
                let _ = take(true);
                Change::Key(None)
            }
            'l' if on => match take(true) {
                Some(l) => Change::Limit(Some(l)),
                None => Change::Missing(c),
            },
            'l' => Change::Limit(None),
            'b' | 'e' | 'I' => match take(true) {
                Some(mask) => Change::Mask(c, on, mask),
                None => Change::List(c),
            },
            other => Change::Unknown(other),
        };
        out.push(change);
        if with_param >= max {
            break;
        }
    }
    out
}

/// Whether a key is one IRC allows: 1 to [`KEY_LEN`] printable ASCII
/// characters, no space.
pub fn valid_key(key: &str) -> bool {
    (1..=KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// IRC's wildcards, ASCII case ignored: `*` any run, `?` any one character.
pub fn glob(mask: &str, text: &str) -> bool {
    let m: Vec<char> = mask.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut mi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            mi += 1;
            ti += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ti));
            mi += 1;
        } else if let Some((smi, sti)) = star {
            mi = smi + 1;
            ti = sti + 1;
            star = Some((smi, sti + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_mode_string_is_changes_in_order() {
        assert_eq!(
            parse("+ov-k+l", &args(&["ana", "bia", "x", "5"]), 4),
            [
                Change::Member('o', true, "ana".into()),
                Change::Member('v', true, "bia".into()),
                Change::Key(None),
                Change::Limit(Some("5".into())),
            ]
        );
        assert_eq!(
            parse("+b", &[], 4),
            [Change::List('b')],
            "a list, not a change"
        );
        assert_eq!(
            parse("+e-I", &args(&["a!*@*", "b!*@*"]), 4),
            [
                Change::Mask('e', true, "a!*@*".into()),
                Change::Mask('I', false, "b!*@*".into())
            ]
        );
        assert_eq!(parse("+o", &[], 4), [Change::Missing('o')]);
        assert_eq!(
            parse("-l+z", &[], 4),
            [Change::Limit(None), Change::Unknown('z')]
        );
        assert_eq!(parse("+oooo", &args(&["a", "b", "c", "d"]), 2).len(), 2);
    }

    #[test]
    fn describe_bans_keys_and_globs() {
        let mut m = RoomModes::default();
        assert_eq!(
            m.describe(Some(10), true, false),
            ("+ntl".into(), vec!["10".into()])
        );
        m.key = Some("beer".into());
        m.invite_only = true;
        assert_eq!(
            m.describe(Some(3), false, true),
            ("+imntkl".into(), vec!["*".into(), "3".into()])
        );
        assert!(glob("*!*@irc", "Yan!yan@irc"));
        assert!(glob("y?n*", "YAN!x@chat"));
        assert!(!glob("bar!*@*", "barry!x@irc"));
        assert!(!m.excepted(7, "bar!u@irc"));
        m.exceptions.push(Ban {
            mask: "*!u@*".into(),
            setter: "op".into(),
            at: 0,
        });
        assert!(m.excepted(7, "bar!u@irc"), "an exception matches");
        m.exceptions.clear();
        m.invite_only = false;
        assert!(m.may_enter(7, "bar!u@irc"), "not +i");
        m.invite_only = true;
        assert!(!m.may_enter(8, "x!y@irc"));
        m.invited.insert(7);
        assert!(m.excepted(7, "bar!u@irc"), "an invitation overrides");
        assert!(
            valid_key("beer") && !valid_key("a b") && !valid_key("") && !valid_key(&"x".repeat(24))
        );
    }
}
