//! IRCv3 CHATHISTORY (draft/chathistory), read: what a `CHATHISTORY`
//! command asks for, or the `FAIL` it earns. Pure; the daemon runs the
//! query against the history file (daemon/history.rs) and answers in a
//! `chathistory` batch (daemon/chat/irc_history.rs).
//!
//! ```text
//! CHATHISTORY LATEST  <target> <* | msgid=ID | timestamp=T> <limit>
//! CHATHISTORY BEFORE  <target> <msgid=ID | timestamp=T> <limit>
//! CHATHISTORY AFTER   <target> <msgid=ID | timestamp=T> <limit>
//! CHATHISTORY AROUND  <target> <msgid=ID | timestamp=T> <limit>
//! CHATHISTORY BETWEEN <target> <ref> <ref> <limit>
//! CHATHISTORY TARGETS <timestamp=T> <timestamp=T> <limit>
//! ```
//!
//! Bounds are exclusive, except AROUND's reference, which is included.

use crate::timefmt;

/// A point in a conversation: a message, or a moment (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Msgid(String),
    Time(i64),
}

/// Which messages of one target, as the spec words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The newest, after the reference if there is one.
    Latest(Option<Ref>),
    Before(Ref),
    After(Ref),
    Around(Ref),
    /// Between two references, in either order: counted from the first.
    Between(Ref, Ref),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A target's messages (a `#channel` or a nick).
    Messages {
        subcommand: String,
        target: String,
        select: Select,
        limit: usize,
    },
    /// The targets whose latest message lies strictly between two moments.
    Targets { from: i64, to: i64, limit: usize },
}

/// Why a command is refused: `FAIL CHATHISTORY <code> <params...> :<text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub code: &'static str,
    pub params: Vec<String>,
    pub text: &'static str,
}

/// The subcommands, as offered.
pub const SUBCOMMANDS: [&str; 6] = ["LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS"];

/// Reads `CHATHISTORY`'s parameters; `max` is the most messages (or
/// targets) one answer holds (ISUPPORT `CHATHISTORY=max`): a larger limit
/// is cut to it.
pub fn parse(params: &[&str], max: usize) -> Result<Query, Fail> {
    let Some(&sub) = params.first() else {
        return Err(fail("NEED_MORE_PARAMS", &["*"], "Missing parameters"));
    };
    let subcommand = sub.to_ascii_uppercase();
    let sub = subcommand.as_str();
    if !SUBCOMMANDS.contains(&sub) {
        return Err(fail("UNKNOWN_COMMAND", &[sub], "Unknown subcommand"));
    }
    // Where the limit is: after the target and one reference, or two.
    let at = if sub == "BETWEEN" { 4 } else { 3 };
    if params.len() <= at {
        return Err(fail("NEED_MORE_PARAMS", &[sub], "Missing parameters"));
    }
    let limit = read_limit(sub, params[at], max)?;
    if sub == "TARGETS" {
        let moment = |raw: &str| match read_ref(raw) {
            Some(Ref::Time(t)) => Ok(t),
            _ => Err(fail(
                "INVALID_PARAMS",
                &[sub, raw],
                "TARGETS takes two timestamp= references",
            )),
        };
        let (a, b) = (moment(params[1])?, moment(params[2])?);
        return Ok(Query::Targets {
            from: a.min(b),
            to: a.max(b),
            limit,
        });
    }
    let target = params[1].to_string();
    let reference = |raw: &str| {
        read_ref(raw).ok_or_else(|| {
            fail(
                "INVALID_PARAMS",
                &[sub, raw],
                "A reference is msgid=ID or timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
            )
        })
    };
    let select = match sub {
        "LATEST" if params[2] == "*" => Select::Latest(None),
        "LATEST" => Select::Latest(Some(reference(params[2])?)),
        "BEFORE" => Select::Before(reference(params[2])?),
        "AFTER" => Select::After(reference(params[2])?),
        "AROUND" => Select::Around(reference(params[2])?),
        _ => Select::Between(reference(params[2])?, reference(params[3])?),
    };
    Ok(Query::Messages {
        subcommand,
        target,
        select,
        limit,
    })
}

/// Which of a conversation's messages a selection takes: `points` are
/// its messages oldest first, each (msgid, Unix ms); the answer is a
/// range of them, at most `limit` long. A msgid the conversation does not
/// have selects nothing.
pub fn window(points: &[(&str, i64)], select: &Select, limit: usize) -> std::ops::Range<usize> {
    let n = points.len();
    // Where a reference falls: the messages before it end at `.0`, the
    // messages after it start at `.1` (a msgid is neither; a moment
    // splits the messages at it from those before it and after it).
    let split = |r: &Ref| -> Option<(usize, usize)> {
        match r {
            Ref::Msgid(id) => points.iter().position(|p| p.0 == id).map(|i| (i, i + 1)),
            Ref::Time(t) => Some((
                points.partition_point(|p| p.1 < *t),
                points.partition_point(|p| p.1 <= *t),
            )),
        }
    };
    let newest = |start: usize, end: usize| end.saturating_sub(limit).max(start)..end;
    let oldest = |start: usize, end: usize| start..end.min(start.saturating_add(limit));
    let none = 0..0;
    match select {
        Select::Latest(None) => newest(0, n),
        Select::Latest(Some(r)) => split(r).map_or(none, |(_, after)| newest(after, n)),
        Select::Before(r) => split(r).map_or(none, |(before, _)| newest(0, before)),
        Select::After(r) => split(r).map_or(none, |(_, after)| oldest(after, n)),
        Select::Around(r) => split(r).map_or(none, |(center, _)| {
            // Half before the reference, the rest from it on (itself
            // included).
            let start = center.saturating_sub(limit / 2);
            start..n.min(start + limit)
        }),
        Select::Between(a, b) => match (split(a), split(b)) {
            (Some((a_before, a_after)), Some((b_before, b_after))) => {
                if a_before <= b_before {
                    oldest(a_after, b_before.max(a_after))
                } else {
                    newest(b_after, a_before.max(b_after))
                }
            }
            _ => none,
        },
    }
}

fn read_limit(sub: &str, raw: &str, max: usize) -> Result<usize, Fail> {
    match raw.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n.min(max)),
        _ => Err(fail(
            "INVALID_PARAMS",
            &[sub, raw],
            "The limit is a whole number above 0",
        )),
    }
}

fn read_ref(raw: &str) -> Option<Ref> {
    let (kind, value) = raw.split_once('=')?;
    match kind {
        "msgid" if !value.is_empty() => Some(Ref::Msgid(value.to_string())),
        "timestamp" => {
            let ms = timefmt::parse_rfc3339_ms(value)?;
            i64::try_from(ms).ok().map(Ref::Time)
        }
        _ => None,
    }
}

fn fail(code: &'static str, params: &[&str], text: &'static str) -> Fail {
    Fail {
        code,
        params: params.iter().map(|p| p.to_string()).collect(),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subcommand_reads() {
        let t = 1_795_514_400_042;
        assert_eq!(
            parse(&["latest", "#sala", "*", "50"], 100),
            Ok(Query::Messages {
                subcommand: "LATEST".into(),
                target: "#sala".into(),
                select: Select::Latest(None),
                limit: 50
            })
        );
        let Ok(Query::Messages { select, limit, .. }) = parse(
            &[
                "BEFORE",
                "yan",
                "timestamp=2026-11-24T10:00:00.042Z",
                "5000",
            ],
            100,
        ) else {
            panic!("BEFORE")
        };
        assert_eq!((select, limit), (Select::Before(Ref::Time(t)), 100));
        let Ok(Query::Messages { select, .. }) =
            parse(&["BETWEEN", "#s", "msgid=a-1", "msgid=a-9", "3"], 100)
        else {
            panic!("BETWEEN")
        };
        assert_eq!(
            select,
            Select::Between(Ref::Msgid("a-1".into()), Ref::Msgid("a-9".into()))
        );
        assert_eq!(
            parse(
                &[
                    "TARGETS",
                    "timestamp=2026-11-24T10:00:00.042Z",
                    "timestamp=2020-01-01T00:00:00.000Z",
                    "10"
                ],
                100
            ),
            Ok(Query::Targets {
                from: 1_577_836_800_000,
                to: t,
                limit: 10
            })
        );
    }

    /// Ten messages, m1..m10, one every 10 ms from t = 1010.
    fn ten() -> Vec<(String, i64)> {
        (1..=10).map(|i| (format!("m{i}"), 1000 + 10 * i)).collect()
    }

    fn ids(select: Select, limit: usize) -> Vec<String> {
        let owned = ten();
        let points: Vec<(&str, i64)> = owned.iter().map(|(m, t)| (m.as_str(), *t)).collect();
        points[window(&points, &select, limit)]
            .iter()
            .map(|p| p.0.to_string())
            .collect()
    }

    fn m(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
        range.map(|i| format!("m{i}")).collect()
    }

    #[test]
    fn windows_follow_the_spec() {
        let id = |i: i64| Ref::Msgid(format!("m{i}"));
        let at = |i: i64| Ref::Time(1000 + 10 * i);
        assert_eq!(ids(Select::Latest(None), 100), m(1..=10));
        assert_eq!(ids(Select::Latest(None), 3), m(8..=10));
        assert_eq!(ids(Select::Latest(Some(id(4))), 100), m(5..=10));
        assert_eq!(ids(Select::Latest(Some(at(4))), 2), m(9..=10));
        assert_eq!(ids(Select::Before(id(7)), 100), m(1..=6));
        assert_eq!(ids(Select::Before(at(7)), 2), m(5..=6));
        assert_eq!(ids(Select::After(id(3)), 100), m(4..=10));
        assert_eq!(ids(Select::After(at(3)), 3), m(4..=6));
        assert_eq!(ids(Select::Around(id(8)), 1), m(8..=8));
        assert_eq!(ids(Select::Around(id(8)), 3), m(7..=9));
        assert_eq!(ids(Select::Around(at(8)), 4), m(6..=9));
        assert_eq!(ids(Select::Around(id(1)), 3), m(1..=3));
        assert_eq!(ids(Select::Between(id(1), id(10)), 100), m(2..=9));
        assert_eq!(ids(Select::Between(id(10), id(1)), 100), m(2..=9));
        assert_eq!(ids(Select::Between(id(1), id(10)), 3), m(2..=4));
        assert_eq!(ids(Select::Between(id(10), id(1)), 3), m(7..=9));
        assert_eq!(ids(Select::Between(at(10), id(1)), 3), m(7..=9));
        assert_eq!(ids(Select::Between(at(5), at(5)), 3), Vec::<String>::new());
        // A message the conversation does not have selects nothing; a
        // moment before or after all of it, the messages on its side.
        assert!(ids(Select::Before(Ref::Msgid("nope".into())), 5).is_empty());
        assert_eq!(ids(Select::After(Ref::Time(0)), 2), m(1..=2));
        assert!(ids(Select::After(Ref::Time(i64::MAX)), 2).is_empty());
    }

    #[test]
    fn what_is_refused_and_how() {
        let code = |p: &[&str]| parse(p, 100).err().map(|f| f.code);
        assert_eq!(code(&[]), Some("NEED_MORE_PARAMS"));
        assert_eq!(code(&["LATEST", "#s", "*"]), Some("NEED_MORE_PARAMS"));
        assert_eq!(
            code(&["BETWEEN", "#s", "msgid=a", "1"]),
            Some("NEED_MORE_PARAMS")
        );
        assert_eq!(code(&["SIDEWAYS", "#s", "*", "1"]), Some("UNKNOWN_COMMAND"));
        assert_eq!(code(&["LATEST", "#s", "*", "0"]), Some("INVALID_PARAMS"));
        assert_eq!(code(&["LATEST", "#s", "*", "-1"]), Some("INVALID_PARAMS"));
        assert_eq!(code(&["BEFORE", "#s", "*", "1"]), Some("INVALID_PARAMS"));
        assert_eq!(
            code(&["AFTER", "#s", "msgid=", "1"]),
            Some("INVALID_PARAMS")
        );
        assert_eq!(
            code(&["AFTER", "#s", "timestamp=yesterday", "1"]),
            Some("INVALID_PARAMS")
        );
        assert_eq!(
            code(&["TARGETS", "msgid=a", "timestamp=2020-01-01T00:00:00Z", "1"]),
            Some("INVALID_PARAMS")
        );
        let f = parse(&["AROUND", "#s", "when", "1"], 100).unwrap_err();
        assert_eq!(f.params, ["AROUND", "when"]);
    }
}
