//! One conversation on the full screen, without I/O: a room (its
//! scrollback, members, limit, privacy) or a direct conversation with one
//! person. Events land in the window they belong to; a window that is not
//! on screen keeps a mark of what came meanwhile.

use super::lang::{Text, t};
use super::session::EndedBy;
use crate::core::wire::{Event, EventKind, RoomEntry};

/// Entries kept in a window's scrollback.
const SCROLLBACK: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Someone's message.
    Message,
    /// Someone's message that names us, or a direct message to us
    /// (highlighted; the bell rings).
    Mention,
    /// Our own message, as we sent it.
    Own,
    /// Someone came into the room.
    Joined,
    /// Someone left the room.
    Left,
    /// A notice from the server (a topic, a command's answer, an ending).
    Notice,
    /// A message replayed from the room's history.
    History,
    /// Said by the client itself (help, errors): never from the server.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Local HH:MM.
    pub time: String,
    /// Who spoke (None for the client's own notes).
    pub who: Option<String>,
    pub text: String,
    pub kind: Kind,
}

/// What a window that is not on screen has received since it was last
/// looked at, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    None,
    /// Joins, leaves, notices.
    Events,
    /// Messages.
    Messages,
    /// A message naming us, or a direct message.
    Mention,
}

/// Where a window's words go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Room,
    /// A conversation with this person (as they spell their name).
    Direct,
}

pub struct Window {
    /// The room's name, or the other person's.
    pub name: String,
    pub place: Place,
    /// The room's limit, when the room list (or a `room` event) said.
    pub limit: Option<usize>,
    /// The room is private (a `room` event said).
    pub private: bool,
    pub members: Vec<String>,
    /// The connection's state, when it is not simply "in the room"
    /// ("reconnecting in 4 s"); shown in the status bar.
    pub link: Option<String>,
    pub activity: Activity,
    pub entries: Vec<Entry>,
    /// Display lines scrolled up from the bottom (0: following).
    pub scroll: usize,
    /// Entries that arrived while scrolled up.
    pub unseen: usize,
    /// The history replay is being shown (its marker is up).
    replaying: bool,
    /// The newest event's time seen in this room, and what was said at
    /// that second: after a reconnect, the replayed history shows only
    /// what came later (what was missed).
    newest: Option<(String, Vec<(String, String)>)>,
    /// A message named us since the last [`Window::take_bell`].
    bell: bool,
}

impl Window {
    pub fn room(name: &str) -> Window {
        Window::new(name, Place::Room)
    }

    pub fn direct(name: &str) -> Window {
        Window::new(name, Place::Direct)
    }

    fn new(name: &str, place: Place) -> Window {
        Window {
            name: name.to_string(),
            place,
            limit: None,
            private: false,
            members: Vec::new(),
            link: None,
            activity: Activity::None,
            entries: Vec::new(),
            scroll: 0,
            unseen: 0,
            replaying: false,
            newest: None,
            bell: false,
        }
    }

    pub fn is_room(&self) -> bool {
        self.place == Place::Room
    }

    /// Whether to ring the terminal's bell (once per mention).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.bell)
    }

    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() == SCROLLBACK {
            self.entries.remove(0);
        }
        if self.scroll > 0 {
            self.unseen += 1;
        }
        let activity = match entry.kind {
            Kind::Mention => Activity::Mention,
            Kind::Message => Activity::Messages,
            Kind::Own | Kind::Local | Kind::History => Activity::None,
            Kind::Joined | Kind::Left | Kind::Notice => Activity::Events,
        };
        self.activity = self.activity.max(activity);
        self.entries.push(entry);
    }

    /// A note from the client itself.
    pub fn note(&mut self, time: &str, text: &str) {
        self.push(Entry {
            time: time.to_string(),
            who: None,
            text: text.to_string(),
            kind: Kind::Local,
        });
    }

    /// Our own message, as sent.
    pub fn own(&mut self, time: &str, me: &str, text: &str) {
        self.push(Entry {
            time: time.to_string(),
            who: Some(me.to_string()),
            text: text.to_string(),
            kind: Kind::Own,
        });
    }

    /// A direct message from the other person.
    pub fn direct_from(&mut self, time: &str, who: &str, text: &str) {
        self.bell = true;
        self.push(Entry {
            time: time.to_string(),
            who: Some(who.to_string()),
            text: text.to_string(),
            kind: Kind::Mention,
        });
    }

    /// Whether a replayed event was seen before (a rejoin replays the
    /// room's history again): older than the newest seen, or of the same
    /// second and already shown.
    fn seen_before(&self, event: &Event) -> bool {
        let (Some((newest, said)), Some(ts)) = (&self.newest, &event.ts) else {
            return false;
        };
        match ts.as_str().cmp(newest.as_str()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => said
                .iter()
                .any(|(w, m)| *w == event.username && *m == event.message),
            std::cmp::Ordering::Greater => false,
        }
    }

    /// Remembers the newest event's time (RFC 3339 UTC sorts as text).
    fn remember(&mut self, event: &Event) {
        let Some(ts) = &event.ts else { return };
        let said = (event.username.clone(), event.message.clone());
        match &mut self.newest {
            Some((newest, list)) if newest == ts => list.push(said),
            Some((newest, _)) if newest.as_str() > ts.as_str() => {}
            _ => self.newest = Some((ts.clone(), vec![said])),
        }
    }

    /// An event from the server for this room; `time` is its local HH:MM,
    /// `me` our own name.
    pub fn on_event(&mut self, event: &Event, time: &str, me: &str) {
        if event.history && self.seen_before(event) {
            return;
        }
        if event.history && !self.replaying {
            // The replay starts: a marker above it, so that what was said
            // before is never taken for what is said now.
            self.replaying = true;
            self.push(Entry {
                time: time.to_string(),
                who: None,
                text: t(Text::HistoryMarker).to_string(),
                kind: Kind::Notice,
            });
        } else if !event.history {
            self.replaying = false;
        }
        if matches!(
            event.kind,
            EventKind::Message | EventKind::Join | EventKind::Leave
        ) {
            self.remember(event);
        }
        let kind = match event.kind {
            // Who came and went before: shown dimmed, the member list
            // untouched (the `members` event says who is here).
            EventKind::Join if event.history => Kind::Joined,
            EventKind::Leave if event.history => Kind::Left,
            EventKind::Members => {
                self.members = event.members.clone().unwrap_or_default();
                return;
            }
            // The loop says that the server stops, and what it does next.
            EventKind::Rooms | EventKind::Direct | EventKind::Shutdown => return,
            // The status bar follows the room's limit and privacy.
            EventKind::Room => {
                if let Some(f) = event.facts {
                    self.limit = Some(f.limit);
                    self.private = f.private;
                }
                return;
            }
            EventKind::Join => {
                if !self.members.contains(&event.username) {
                    self.members.push(event.username.clone());
                }
                Kind::Joined
            }
            EventKind::Leave => {
                self.members.retain(|m| *m != event.username);
                Kind::Left
            }
            EventKind::Message if event.history => Kind::History,
            EventKind::Message if event.username != me && mentions(&event.message, me) => {
                self.bell = true;
                Kind::Mention
            }
            EventKind::Message => Kind::Message,
            EventKind::Error
            | EventKind::Closed
            | EventKind::Kicked
            | EventKind::Topic
            | EventKind::Notice => Kind::Notice,
        };
        let text = match (&event.kind, &event.reason) {
            (EventKind::Topic, _) if event.message.is_empty() => t(Text::NoTopic).to_string(),
            (EventKind::Topic, _) => format!("{}: {}", t(Text::Topic), event.message),
            (EventKind::Join, _) => t(Text::CameIn).to_string(),
            (EventKind::Leave, Some(reason)) => format!("{} ({reason})", t(Text::WentOut)),
            (EventKind::Leave, None) => t(Text::WentOut).to_string(),
            // The prototype's endings in the client's words.
            (EventKind::Closed, _) => EndedBy::Closed.say().to_string(),
            (EventKind::Kicked, reason) => EndedBy::Kicked.say_why(reason.as_deref()),
            (EventKind::Error, Some(reason)) => {
                let reason = super::lang::reason(&event.message, reason);
                format!("{} ({reason})", event.message)
            }
            _ => event.message.clone(),
        };
        self.push(Entry {
            time: time.to_string(),
            who: Some(event.username.clone()),
            text,
            kind,
        });
    }

    /// The room's limit, from a room list.
    pub fn learn_limit(&mut self, rooms: &[RoomEntry]) {
        if let Some(r) = rooms.iter().find(|r| r.name == self.name) {
            self.limit = Some(r.limit);
        }
    }

    pub fn page_up(&mut self, page: usize) {
        self.scroll += page.max(1);
    }

    pub fn page_down(&mut self, page: usize) {
        self.scroll = self.scroll.saturating_sub(page.max(1));
        if self.scroll == 0 {
            self.unseen = 0;
        }
    }
}

/// Whether `text` names `name` as a word (any case: "yan:", "@Yan", "Yan!"
/// do; "Yanna" does not).
pub fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let (text, name) = (text.to_lowercase(), name.to_lowercase());
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !word(before) && !word(after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(who: &str, text: &str, ts: &str, history: bool) -> Event {
        Event {
            kind: EventKind::Message,
            username: who.into(),
            message: text.into(),
            ts: Some(ts.into()),
            history,
            ..Event::default()
        }
    }

    #[test]
    fn a_rejoin_shows_only_what_was_missed() {
        let mut w = Window::room("Teste");
        w.on_event(
            &said("Ana", "um", "2026-12-07T10:00:00Z", false),
            "t",
            "Yan",
        );
        w.on_event(
            &said("Ana", "dois", "2026-12-07T10:00:05Z", false),
            "t",
            "Yan",
        );
        let before = w.entries.len();
        // The rejoin replays all three; only "três" is new.
        for (text, ts) in [
            ("um", "2026-12-07T10:00:00Z"),
            ("dois", "2026-12-07T10:00:05Z"),
            ("três", "2026-12-07T10:00:05Z"),
            ("quatro", "2026-12-07T10:01:00Z"),
        ] {
            w.on_event(&said("Ana", text, ts, true), "t", "Yan");
        }
        let new: Vec<&str> = w.entries[before..]
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(new, [t(Text::HistoryMarker), "três", "quatro"]);
    }

    #[test]
    fn activity_marks_the_most_that_came() {
        let mut w = Window::room("Teste");
        let mut join = said("Ana", "*** ENTROU NA SALA ***", "x", false);
        join.kind = EventKind::Join;
        w.on_event(&join, "t", "Yan");
        assert_eq!(w.activity, Activity::Events);
        w.on_event(&said("Ana", "oi", "x", false), "t", "Yan");
        assert_eq!(w.activity, Activity::Messages);
        w.on_event(&said("Ana", "Yan?", "x", false), "t", "Yan");
        assert_eq!(w.activity, Activity::Mention);
        w.on_event(&said("Ana", "oi", "x", false), "t", "Yan");
        assert_eq!(w.activity, Activity::Mention, "the most stays");
        assert!(w.take_bell());
    }
}
