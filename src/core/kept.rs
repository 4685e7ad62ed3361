//! One event a room keeps for joiners, compact: its strings one after
//! another in one `String`, so keeping a message writes one run of bytes
//! (reused from the event it overwrites) rather than five strings and a
//! whole [`Event`]. A busy room's history is cold memory by the time its
//! oldest event is overwritten, so what costs is the cache lines touched:
//! about two here, against ten or so for an `Event`.

use super::wire::{Departed, Event, EventKind};

/// The text's parts, in order; `ends[i]` is where part `i` ends.
const TS: usize = 0;
const USERNAME: usize = 1;
const MESSAGE: usize = 2;
const REASON: usize = 3;
const DEPARTED: usize = 4;
const MSGID: usize = 5;
const PARTS: usize = 6;

/// A kept message, join or leave (the kinds a history keeps, which carry
/// no member list, room list or room facts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    kind: EventKind,
    /// How a leave came about: 0 left, 1 parted, 2 quit, 3 kicked (its
    /// reason is the `DEPARTED` part).
    departed: u8,
    has_reason: bool,
    has_msgid: bool,
    text: String,
    ends: [u32; PARTS],
    client_tags: Vec<(String, Option<String>)>,
}

impl Kept {
    /// Becomes `e`, sent at `ts` (RFC 3339), reusing this one's memory.
    pub fn fill(&mut self, e: &Event, ts: &str) {
        let (departed, why) = match &e.departed {
            Departed::Left => (0, ""),
            Departed::Parted(r) => (1, r.as_str()),
            Departed::Quit(r) => (2, r.as_str()),
            Departed::Kicked(r) => (3, r.as_str()),
        };
        self.kind = e.kind;
        self.departed = departed;
        self.has_reason = e.reason.is_some();
        self.has_msgid = e.msgid.is_some();
        self.text.clear();
        let parts = [
            ts,
            &e.username,
            &e.message,
            e.reason.as_deref().unwrap_or(""),
            why,
            e.msgid.as_deref().unwrap_or(""),
        ];
        for (i, part) in parts.iter().enumerate() {
            self.text.push_str(part);
            self.ends[i] = self.text.len() as u32;
        }
        self.client_tags.clone_from(&e.client_tags);
    }

    fn part(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        &self.text[start..self.ends[i] as usize]
    }

    /// When it was sent (RFC 3339).
    pub fn ts(&self) -> &str {
        self.part(TS)
    }

    /// What it counts as against a history's budget: its text and a fixed
    /// share for the record and its queue slot.
    pub fn size(&self) -> usize {
        const OVERHEAD: usize = 160;
        OVERHEAD + self.text.len()
    }

    /// The event again, in `room`, marked `history`.
    pub fn event(&self, room: &str) -> Event {
        let why = self.part(DEPARTED).to_string();
        Event {
            kind: self.kind,
            username: self.part(USERNAME).to_string(),
            message: self.part(MESSAGE).to_string(),
            room: Some(room.to_string()),
            reason: self.has_reason.then(|| self.part(REASON).to_string()),
            ts: Some(self.part(TS).to_string()),
            history: true,
            departed: match self.departed {
                1 => Departed::Parted(why),
                2 => Departed::Quit(why),
                3 => Departed::Kicked(why),
                _ => Departed::Left,
            },
            msgid: self.has_msgid.then(|| self.part(MSGID).to_string()),
            client_tags: self.client_tags.clone(),
            ..Event::default()
        }
    }
}

/// Whether `kind` is one a history keeps.
pub fn is_kept(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Message | EventKind::Join | EventKind::Leave
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            kind: EventKind::Leave,
            username: "Ana".into(),
            message: "*** SAIU DA SALA ***".into(),
            room: Some("elsewhere".into()),
            reason: Some("".into()),
            departed: Departed::Kicked("flood".into()),
            msgid: Some("m-1".into()),
            client_tags: vec![("+draft/react".into(), Some("x".into()))],
            ..Event::default()
        }
    }

    #[test]
    fn an_event_comes_back_whole_in_its_room_marked_history() {
        let mut k = Kept::default();
        k.fill(&event(), "2026-12-07T12:00:00Z");
        let back = k.event("Sala");
        let want = Event {
            room: Some("Sala".into()),
            ts: Some("2026-12-07T12:00:00Z".into()),
            history: true,
            ..event()
        };
        assert_eq!(back, want);
        assert_eq!(k.ts(), "2026-12-07T12:00:00Z");
    }

    #[test]
    fn refilled_it_forgets_what_it_was() {
        let mut k = Kept::default();
        k.fill(&event(), "2026-12-07T12:00:00Z");
        let plain = Event {
            kind: EventKind::Message,
            username: "Yan".into(),
            message: "oi".into(),
            ..Event::default()
        };
        k.fill(&plain, "2026-12-07T12:00:01Z");
        let back = k.event("Sala");
        assert_eq!(back.reason, None);
        assert_eq!(back.msgid, None);
        assert_eq!(back.departed, Departed::Left);
        assert!(back.client_tags.is_empty());
        assert_eq!(
            (back.username.as_str(), back.message.as_str()),
            ("Yan", "oi")
        );
        assert_eq!(k.size(), 160 + "2026-12-07T12:00:01Z".len() + 5);
    }
}
