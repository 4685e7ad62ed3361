//! Moderation, pure: a room's lasting rules (its topic, its operators by
//! account, its bans and mutes, whether it is moderated) and the
//! server-wide bans, as saved in rooms.json and shared in cluster mode.
//!
//! A rule names its target one of four ways, written as text the same
//! way everywhere (chatctl, rooms.json, the cluster, IRC's `+b` list):
//!
//! | written | matches | IRC mask |
//! |---|---|---|
//! | `yan` | that name and every look-alike (its comparison key) | `yan!*@*` |
//! | `account:yan` | whoever is logged in as that account | `$a:yan` |
//! | `203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32` | an address in the range | `*!*@203.0.113.0/24` |
//! | `nick!user@host` (with `*` and `?`) | an IRC source (`+b` masks) | itself |
//!
//! A rule may expire (`until`, Unix seconds): an expired rule matches
//! nothing, and [`Moderation::expire`] drops it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::modes::glob;
use super::names::comparison_key;

/// Most rules in one list (a room's bans, its mutes, the server's bans).
pub const MAX_RULES: usize = 100;
/// Longest reason (IRC's KICKLEN).
pub const REASON_LEN: usize = 255;
/// Longest topic (IRC's TOPICLEN).
pub const TOPIC_LEN: usize = 390;
/// Most operator accounts per room.
pub const MAX_OPS: usize = 50;

/// Whom a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A name, compared by its comparison key (look-alikes included).
    Name { shown: String, key: String },
    /// An account, whoever logs in as it.
    Account { shown: String, key: String },
    /// An address range.
    Net { addr: IpAddr, prefix: u8 },
    /// An IRC mask on `nick!user@host`.
    Mask(String),
}

impl Target {
    /// Reads a target as chatctl, rooms.json and IRC's `+b` write it.
    pub fn parse(raw: &str) -> Result<Target, String> {
        let s = raw.trim();
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err(
                "a ban or mute names a name, account:NAME, an address or range, or an IRC mask"
                    .into(),
            );
        }
        if let Some(acct) = s.strip_prefix("account:").or_else(|| s.strip_prefix("$a:")) {
            super::names::check_username(acct).map_err(|e| format!("account '{acct}': {e}"))?;
            return Ok(Target::Account {
                shown: acct.to_string(),
                key: comparison_key(acct),
            });
        }
        if let Some(net) = parse_net(s)? {
            return Ok(net);
        }
        if let Some(host) = s.strip_prefix("*!*@")
            && let Some(net) = parse_net(host)?
        {
            return Ok(net);
        }
        if s.contains(['!', '@', '*', '?']) {
            // `nick!*@*` with a plain nick is that name.
            if let Some(nick) = s.strip_suffix("!*@*")
                && !nick.contains(['!', '@', '*', '?'])
                && super::names::check_username(&super::ircmap::name_of(nick)).is_ok()
            {
                return Target::parse(&super::ircmap::name_of(nick));
            }
            if s.chars().count() > 200 || s.contains(' ') {
                return Err(format!("mask '{s}': at most 200 characters, no spaces"));
            }
            return Ok(Target::Mask(s.to_string()));
        }
        super::names::check_username(s).map_err(|e| format!("name '{s}': {e}"))?;
        Ok(Target::Name {
            shown: s.to_string(),
            key: comparison_key(s),
        })
    }

    /// As IRC's `+b` list shows it.
    pub fn as_mask(&self) -> String {
        match self {
            Target::Name { shown, .. } => format!("{}!*@*", super::ircmap::nick_of(shown)),
            Target::Account { shown, .. } => format!("$a:{shown}"),
            Target::Net { .. } => format!("*!*@{self}"),
            Target::Mask(m) => m.clone(),
        }
    }

    /// Whether `who` is what this names.
    pub fn matches(&self, who: &Who) -> bool {
        match self {
            Target::Name { key, .. } => comparison_key(who.name) == *key,
            Target::Account { key, .. } => who.account.is_some_and(|a| comparison_key(a) == *key),
            Target::Net { addr, prefix } => in_range(who.ip, *addr, *prefix),
            Target::Mask(m) => glob(m, who.source),
        }
    }

    /// Two targets that name the same (`YAN` and `yan`, say).
    pub fn same(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Name { key: a, .. }, Target::Name { key: b, .. })
            | (Target::Account { key: a, .. }, Target::Account { key: b, .. }) => a == b,
            (Target::Mask(a), Target::Mask(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name { shown, .. } => f.write_str(shown),
            Target::Account { shown, .. } => write!(f, "account:{shown}"),
            Target::Net { addr, prefix } => {
                let full = if addr.is_ipv4() { 32 } else { 128 };
                if *prefix == full {
                    write!(f, "{addr}")
                } else {
                    write!(f, "{addr}/{prefix}")
                }
            }
            Target::Mask(m) => f.write_str(m),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        Target::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An address, or an address range in CIDR notation; None if `s` is
/// neither (the bits past the prefix are cleared).
fn parse_net(s: &str) -> Result<Option<Target>, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Ok(None);
    };
    let addr = addr.to_canonical();
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => full,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= full)
            .ok_or_else(|| format!("range '{s}': the prefix length is 0 to {full}"))?,
    };
    Ok(Some(Target::Net {
        addr: masked(addr, prefix),
        prefix,
    }))
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & mask).into())
        }
    }
}

fn in_range(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = ip.to_canonical();
    ip.is_ipv4() == net.is_ipv4() && masked(ip, prefix) == net
}

/// Who is being checked.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub name: &'a str,
    /// The account it logged in as, if any.
    pub account: Option<&'a str>,
    pub ip: IpAddr,
    /// Its IRC source, `nick!user@host` (for masks).
    pub source: &'a str,
}

/// One ban or mute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub target: Target,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Who set it (an admin, or a room operator's name), and when (Unix
    /// seconds).
    pub by: String,
    pub at: u64,
    /// When it lapses (Unix seconds); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Set with IRC's `MODE +b`: as on ircds, it keeps out who joins
    /// next and removes no one (chatctl's and `/ban` remove members it
    /// matches), on every node alike.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub joins_only: bool,
}

impl Rule {
    pub fn live(&self, now: u64) -> bool {
        self.until.is_none_or(|t| now < t)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub text: String,
    /// Who set it (a name or an IRC source), and when (Unix seconds).
    pub by: String,
    pub at: u64,
}

/// Which list a rule goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Bans,
    Mutes,
}

/// A room's lasting moderation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<Topic>,
    /// Accounts that operate the room (as given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bans: Vec<Rule>,
    /// Who may read but not speak.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutes: Vec<Rule>,
    /// Only operators and voiced members speak (`+m`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderated: bool,
}

impl Moderation {
    pub fn list(&self, which: List) -> &Vec<Rule> {
        match which {
            List::Bans => &self.bans,
            List::Mutes => &self.mutes,
        }
    }

    pub fn list_mut(&mut self, which: List) -> &mut Vec<Rule> {
        match which {
            List::Bans => &mut self.bans,
            List::Mutes => &mut self.mutes,
        }
    }

    /// The live ban that keeps `who` out, if any.
    pub fn ban_of(&self, who: &Who, now: u64) -> Option<&Rule> {
        find(&self.bans, who, now)
    }

    /// The live mute that keeps `who` quiet, if any.
    pub fn mute_of(&self, who: &Who, now: u64) -> Option<&Rule> {
        find(&self.mutes, who, now)
    }

    /// Whether `account` operates the room.
    pub fn is_op(&self, account: Option<&str>) -> bool {
        let Some(a) = account else {
            return false;
        };
        let key = comparison_key(a);
        self.ops.iter().any(|o| comparison_key(o) == key)
    }

    /// Adds an operator account; false if it was one already.
    pub fn add_op(&mut self, account: &str) -> Result<bool, String> {
        if self.is_op(Some(account)) {
            return Ok(false);
        }
        if self.ops.len() >= MAX_OPS {
            return Err(format!("a room has at most {MAX_OPS} operators"));
        }
        self.ops.push(account.to_string());
        Ok(true)
    }

    /// Removes an operator account; false if it was none.
    pub fn remove_op(&mut self, account: &str) -> bool {
        let key = comparison_key(account);
        let before = self.ops.len();
        self.ops.retain(|o| comparison_key(o) != key);
        self.ops.len() != before
    }

    /// Drops the rules that have lapsed; whether any did.
    pub fn expire(&mut self, now: u64) -> bool {
        let before = self.bans.len() + self.mutes.len();
        self.bans.retain(|r| r.live(now));
        self.mutes.retain(|r| r.live(now));
        before != self.bans.len() + self.mutes.len()
    }

    /// Whether it is within the bounds chatd itself keeps (what comes from
    /// Redis is checked: a forged definition must not grow without end).
    pub fn check(&self) -> Result<(), String> {
        check_rules(&self.bans)?;
        check_rules(&self.mutes)?;
        if self.ops.len() > MAX_OPS {
            return Err(format!("more than {MAX_OPS} operators"));
        }
        if let Some(bad) = self
            .ops
            .iter()
            .find(|o| super::names::check_username(o).is_err())
        {
            return Err(format!("operator '{bad}' is no valid name"));
        }
        match &self.topic {
            Some(t) => check_topic(&t.text),
            None => Ok(()),
        }
    }

    /// The soonest time a rule lapses.
    pub fn next_expiry(&self) -> Option<u64> {
        next_expiry(&self.bans)
            .into_iter()
            .chain(next_expiry(&self.mutes))
            .min()
    }
}

/// Puts `rule` on `list`, replacing a rule for the same target (a new
/// reason or expiry); whether it replaced one.
pub fn put(list: &mut Vec<Rule>, rule: Rule) -> Result<bool, String> {
    check_reason(&rule.reason)?;
    if let Some(old) = list.iter_mut().find(|r| r.target.same(&rule.target)) {
        *old = rule;
        return Ok(true);
    }
    if list.len() >= MAX_RULES {
        return Err(format!("a list holds at most {MAX_RULES} rules"));
    }
    list.push(rule);
    Ok(false)
}

/// A list within chatd's bounds: at most [`MAX_RULES`], each reason
/// within [`check_reason`].
pub fn check_rules(list: &[Rule]) -> Result<(), String> {
    if list.len() > MAX_RULES {
        return Err(format!("more than {MAX_RULES} rules"));
    }
    list.iter().try_for_each(|r| check_reason(&r.reason))
}

/// Takes the rule for `target` off `list`; whether there was one.
pub fn take(list: &mut Vec<Rule>, target: &Target) -> Option<Rule> {
    let i = list.iter().position(|r| r.target.same(target))?;
    Some(list.remove(i))
}

/// The live rule on `list` that matches `who`.
pub fn find<'a>(list: &'a [Rule], who: &Who, now: u64) -> Option<&'a Rule> {
    find_all(list, who, now).next()
}

/// Every live rule on `list` that matches `who`.
pub fn find_all<'a, 'w>(
    list: &'a [Rule],
    who: &'w Who<'w>,
    now: u64,
) -> impl Iterator<Item = &'a Rule> + use<'a, 'w> {
    list.iter()
        .filter(move |r| r.live(now) && r.target.matches(who))
}

pub fn next_expiry(list: &[Rule]) -> Option<u64> {
    list.iter().filter_map(|r| r.until).min()
}

/// Checks a kick's, ban's or mute's reason.
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.chars().count() > REASON_LEN {
        return Err(format!("a reason is at most {REASON_LEN} characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err("a reason may not contain control characters".into());
    }
    Ok(())
}

/// Checks a topic's text.
pub fn check_topic(text: &str) -> Result<(), String> {
    if text.chars().count() > TOPIC_LEN {
        return Err(format!("a topic is at most {TOPIC_LEN} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("a topic may not contain control characters".into());
    }
    Ok(())
}

/// Why a ban keeps someone out, in words (the reason and the expiry).
pub fn ban_words(rule: &Rule, place: &str) -> String {
    let mut s = format!("banned from {place}");
    if !rule.reason.is_empty() {
        s.push_str(&format!(": {}", rule.reason));
    }
    if let Some(t) = rule.until {
        s.push_str(&format!(" (until {})", crate::timefmt::rfc3339(t)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(name: &'a str, account: Option<&'a str>, ip: &str) -> (Who<'a>, String) {
        let source = format!("{name}!{name}@irc");
        (
            Who {
                name,
                account,
                ip: ip.parse().unwrap(),
                source: "",
            },
            source,
        )
    }

    fn rule(target: &str, until: Option<u64>) -> Rule {
        Rule {
            target: Target::parse(target).unwrap(),
            reason: "spam".into(),
            by: "admin".into(),
            at: 100,
            until,
            joins_only: false,
        }
    }

    #[test]
    fn targets_are_written_one_way_and_read_back() {
        for (typed, shown, mask) in [
            ("Yan", "Yan", "Yan!*@*"),
            ("account:yan", "account:yan", "$a:yan"),
            ("$a:yan", "account:yan", "$a:yan"),
            ("203.0.113.7", "203.0.113.7", "*!*@203.0.113.7"),
            ("203.0.113.77/24", "203.0.113.0/24", "*!*@203.0.113.0/24"),
            ("*!*@2001:db8::1/32", "2001:db8::/32", "*!*@2001:db8::/32"),
            ("::ffff:10.0.0.1", "10.0.0.1", "*!*@10.0.0.1"),
            ("yan!*@*", "yan", "yan!*@*"),
            ("*!bot@*", "*!bot@*", "*!bot@*"),
        ] {
            let t = Target::parse(typed).unwrap();
            assert_eq!(t.to_string(), shown, "{typed}");
            assert_eq!(t.as_mask(), mask, "{typed}");
            assert_eq!(Target::parse(&t.to_string()).unwrap(), t, "{typed}");
        }
        for bad in [
            "",
            "  ",
            "10.0.0.0/33",
            "::/129",
            "a\u{7}b",
            "Sistema",
            "account:",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_name_ban_catches_look_alikes_and_a_range_its_addresses() {
        let m = Moderation {
            bans: vec![rule("Yan", None), rule("198.51.100.0/24", None)],
            ..Moderation::default()
        };
        let (w, _) = who("YAN", None, "127.0.0.1");
        assert!(m.ban_of(&w, 0).is_some());
        let (w, _) = who("Yаn", None, "127.0.0.1"); // Cyrillic а
        assert!(m.ban_of(&w, 0).is_some());
        let (w, _) = who("Ana", None, "198.51.100.9");
        assert!(m.ban_of(&w, 0).is_some());
        let (w, _) = who("Ana", None, "::ffff:198.51.100.9");
        assert!(m.ban_of(&w, 0).is_some());
        let (w, _) = who("Ana", None, "198.51.101.9");
        assert!(m.ban_of(&w, 0).is_none());
    }

    #[test]
    fn an_account_ban_follows_the_login_and_a_mask_the_source() {
        let m = Moderation {
            bans: vec![rule("account:yan", None), rule("*!bot@*", None)],
            ..Moderation::default()
        };
        let (w, _) = who("Outro", Some("Yan"), "127.0.0.1");
        assert!(m.ban_of(&w, 0).is_some());
        let (w, _) = who("Yan", None, "127.0.0.1");
        assert!(m.ban_of(&w, 0).is_none(), "not logged in as the account");
        let w = Who {
            name: "x",
            account: None,
            ip: "127.0.0.1".parse().unwrap(),
            source: "x!bot@irc",
        };
        assert!(m.ban_of(&w, 0).is_some());
    }

    #[test]
    fn rules_lapse_and_one_target_has_one_rule() {
        let mut m = Moderation::default();
        assert!(!put(&mut m.mutes, rule("yan", Some(200))).unwrap());
        assert!(
            put(&mut m.mutes, rule("YAN", Some(300))).unwrap(),
            "replaced"
        );
        assert_eq!(m.mutes.len(), 1);
        assert_eq!(m.next_expiry(), Some(300));
        let (w, _) = who("yan", None, "127.0.0.1");
        assert!(m.mute_of(&w, 299).is_some());
        assert!(m.mute_of(&w, 300).is_none());
        assert!(!m.expire(299));
        assert!(m.expire(300));
        assert!(m.mutes.is_empty());
        let target = Target::parse("yan").unwrap();
        assert!(take(&mut m.bans, &target).is_none());
    }

    #[test]
    fn operators_are_accounts_compared_by_key() {
        let mut m = Moderation::default();
        assert!(m.add_op("Yan").unwrap());
        assert!(!m.add_op("yan").unwrap());
        assert!(m.is_op(Some("YAN")));
        assert!(!m.is_op(None));
        assert!(m.remove_op("yAn"));
        assert!(!m.is_op(Some("Yan")));
    }

    #[test]
    fn it_saves_as_plain_json_and_refuses_what_it_cannot_read() {
        let m = Moderation {
            topic: Some(Topic {
                text: "Olá".into(),
                by: "admin".into(),
                at: 5,
            }),
            ops: vec!["Yan".into()],
            bans: vec![rule("10.0.0.0/8", Some(9))],
            mutes: vec![],
            moderated: true,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""target":"10.0.0.0/8""#), "{json}");
        assert_eq!(serde_json::from_str::<Moderation>(&json).unwrap(), m);
        assert_eq!(
            serde_json::from_str::<Moderation>("{}").unwrap(),
            Moderation::default()
        );
        let bad = r#"{"bans":[{"target":"10.0.0.0/99","by":"x","at":1}]}"#;
        assert!(serde_json::from_str::<Moderation>(bad).is_err());
    }
}
