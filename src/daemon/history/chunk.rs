//! A chunk: up to [`EVENTS`] of one room's events, as one row of the
//! history file (what a room kept between two commits is a few inserts,
//! not one per message). The loop encodes each event once, as it is kept
//! ([`Building`]); the journal copies those bytes and the commit inserts
//! them; trimming cuts a chunk without decoding its strings
//! ([`retain`]).
//!
//! The encoding is plain length-prefixed fields after a version byte:
//! per event its kind (1 byte), time (i64 ms, little-endian), msgid and
//! name (u16 length + UTF-8), body (u32 length + UTF-8). Decoding checks
//! every length and every string; a damaged chunk is an error, never a
//! panic.

use super::{Kind, Stored};

/// The first byte of every chunk this chatd writes.
pub const VERSION: u8 = 1;

/// One event's fields, borrowed: what [`push`] encodes (a message is
/// encoded from the delivery itself, with no copy of its strings).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub kind: Kind,
    pub at_ms: i64,
    pub msgid: &'a str,
    pub name: &'a str,
    pub body: &'a str,
}

impl Stored {
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            kind: self.kind,
            at_ms: self.at_ms,
            msgid: &self.msgid,
            name: &self.name,
            body: &self.body,
        }
    }
}

/// The events, which all belong to one room, as a chunk.
pub fn encode(events: &[&Stored]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| 15 + e.msgid.len() + e.name.len() + e.body.len())
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(VERSION);
    for e in events {
        push(&mut out, &e.fields());
    }
    out
}

/// Appends one event to a chunk's bytes (which start with [`VERSION`]).
pub fn push(out: &mut Vec<u8>, e: &Fields) {
    out.push(e.kind.code() as u8);
    out.extend_from_slice(&e.at_ms.to_le_bytes());
    short(out, e.msgid);
    short(out, e.name);
    out.extend_from_slice(&(e.body.len() as u32).to_le_bytes());
    out.extend_from_slice(e.body.as_bytes());
}

/// A string of at most 65,535 bytes (msgids and names are far shorter;
/// a longer one is cut at a character boundary).
fn short(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// A room's events kept since the database's last commit, encoded once
/// as they come: the journal copies what each pass added, the commit
/// inserts the whole as one row.
#[derive(Debug)]
pub struct Building {
    pub room: String,
    /// The chunk: [`VERSION`], then the events.
    bytes: Vec<u8>,
    pub n: usize,
    pub first_ms: i64,
    pub last_ms: i64,
    /// How many of `bytes` are in the journal already.
    journaled: usize,
}

/// The most events a chunk is built with (a busy room's commit is
/// several rows).
pub const EVENTS: usize = 256;

/// The capacity a [`Building`] keeps from one commit to the next
/// (reused, so a busy room's events do not fault in fresh memory).
const KEEP_CAPACITY: usize = 64 << 10;

impl Building {
    pub fn new(room: &str) -> Building {
        Building {
            room: room.to_string(),
            bytes: vec![VERSION],
            n: 0,
            first_ms: i64::MAX,
            last_ms: i64::MIN,
            journaled: 1,
        }
    }

    pub fn push(&mut self, e: &Fields) {
        push(&mut self.bytes, e);
        self.n += 1;
        self.first_ms = self.first_ms.min(e.at_ms);
        self.last_ms = self.last_ms.max(e.at_ms);
    }

    /// The whole chunk.
    pub fn chunk(&self) -> &[u8] {
        &self.bytes
    }

    /// The events not in the journal yet (without the version byte).
    pub fn fresh(&self) -> &[u8] {
        &self.bytes[self.journaled..]
    }

    /// They are in the journal now.
    pub fn journaled(&mut self) {
        self.journaled = self.bytes.len();
    }

    /// Committed: empty again, keeping some capacity.
    /// Emptied, for `room`'s events (its memory kept).
    pub fn reuse(&mut self, room: &str) {
        self.clear();
        self.room.clear();
        self.room.push_str(room);
    }

    pub fn clear(&mut self) {
        self.bytes.truncate(1);
        self.bytes.shrink_to(KEEP_CAPACITY);
        self.n = 0;
        self.first_ms = i64::MAX;
        self.last_ms = i64::MIN;
        self.journaled = 1;
    }
}

/// What [`retain`] kept of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Kept {
    /// The smaller chunk (with its version byte).
    pub bytes: Vec<u8>,
    pub n: usize,
    pub first_ms: i64,
    pub last_ms: i64,
    /// How many events the chunk held.
    pub of: usize,
}

/// The events of a chunk after its first `skip` that are no older than
/// `oldest_ms`, as a chunk: trimming walks the lengths and copies the
/// bytes that stay, decoding no string. A damaged chunk is an error.
pub fn retain(bytes: &[u8], skip: usize, oldest_ms: i64) -> Result<Kept, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(1)? != [VERSION] {
        return Err("a chunk of an unknown encoding".into());
    }
    let mut kept = Kept {
        bytes: vec![VERSION],
        n: 0,
        first_ms: i64::MAX,
        last_ms: i64::MIN,
        of: 0,
    };
    while r.at < bytes.len() {
        let start = r.at;
        Kind::from_code(i64::from(r.take(1)?[0])).ok_or("an unknown kind of event")?;
        let at_ms = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        r.skip_string(2)?;
        r.skip_string(2)?;
        r.skip_string(4)?;
        if kept.of >= skip && at_ms >= oldest_ms {
            kept.bytes.extend_from_slice(&bytes[start..r.at]);
            kept.n += 1;
            kept.first_ms = kept.first_ms.min(at_ms);
            kept.last_ms = kept.last_ms.max(at_ms);
        }
        kept.of += 1;
    }
    Ok(kept)
}

/// A chunk's events, in the order they were kept; each `seq` is
/// `first_seq` plus its place in the chunk.
pub fn decode(room: &str, first_seq: i64, bytes: &[u8]) -> Result<Vec<Stored>, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(1)? != [VERSION] {
        return Err("a chunk of an unknown encoding".into());
    }
    let mut events = Vec::new();
    while r.at < bytes.len() {
        let kind = Kind::from_code(i64::from(r.take(1)?[0])).ok_or("an unknown kind of event")?;
        let at_ms = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let msgid = r.string(2)?;
        let name = r.string(2)?;
        let body = r.string(4)?;
        events.push(Stored {
            seq: first_seq + events.len() as i64,
            room: room.to_string(),
            msgid,
            kind,
            name,
            body,
            at_ms,
            target: String::new(),
        });
    }
    Ok(events)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("a chunk cut short")?;
        let got = &self.bytes[self.at..end];
        self.at = end;
        Ok(got)
    }

    /// The bytes of a string after its length in `width` bytes (2 or 4).
    fn skip_string(&mut self, width: usize) -> Result<&'a [u8], String> {
        let raw = self.take(width)?;
        let len = match width {
            2 => u16::from_le_bytes([raw[0], raw[1]]) as usize,
            _ => u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
        };
        self.take(len)
    }

    /// A string after its length in `width` bytes (2 or 4).
    fn string(&mut self, width: usize) -> Result<String, String> {
        let text = self.skip_string(width)?;
        String::from_utf8(text.to_vec())
            .map_err(|_| "a chunk with a string that is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(i: i64, body: &str) -> Stored {
        Stored {
            seq: 0,
            room: "Sala é 👍🏽".into(),
            msgid: format!("m{i}"),
            kind: if i == 2 { Kind::Leave } else { Kind::Message },
            name: "Yan".into(),
            body: body.into(),
            at_ms: 1_796_400_000_000 + i,
            target: String::new(),
        }
    }

    #[test]
    fn events_come_back_as_they_went_in() {
        let events = [
            stored(1, "olá, mundo"),
            stored(2, ""),
            stored(3, &"x".repeat(70_000)),
        ];
        let refs: Vec<&Stored> = events.iter().collect();
        let back = decode("Sala é 👍🏽", 40, &encode(&refs)).unwrap();
        assert_eq!(back.len(), 3);
        for (i, (b, e)) in back.iter().zip(&events).enumerate() {
            assert_eq!(b.seq, 40 + i as i64);
            assert_eq!(
                (&b.msgid, b.kind, &b.body, b.at_ms),
                (&e.msgid, e.kind, &e.body, e.at_ms)
            );
        }
    }

    #[test]
    fn retain_keeps_the_tail_and_what_is_young_enough() {
        let events: Vec<Stored> = (1..=5).map(|i| stored(i, &format!("m{i}"))).collect();
        let refs: Vec<&Stored> = events.iter().collect();
        let chunk = encode(&refs);
        let kept = retain(&chunk, 2, i64::MIN).unwrap();
        assert_eq!(kept.bytes, encode(&refs[2..]));
        assert_eq!(
            (kept.n, kept.first_ms, kept.last_ms),
            (3, events[2].at_ms, events[4].at_ms)
        );
        // By age: the first four are older than the fourth's time.
        let kept = retain(&chunk, 0, events[3].at_ms).unwrap();
        assert_eq!(kept.bytes, encode(&refs[3..]));
        let none = retain(&chunk, 9, i64::MIN).unwrap();
        assert_eq!((none.bytes, none.n), (vec![VERSION], 0));
        for cut in 2..chunk.len() {
            assert!(
                retain(&chunk[..cut], 0, i64::MIN).is_err()
                    || decode("r", 0, &chunk[..cut]).is_ok()
            );
        }
    }

    #[test]
    fn a_building_chunk_is_what_encode_makes_and_hands_out_the_fresh_part() {
        let events: Vec<Stored> = (1..=3).map(|i| stored(i, "olá")).collect();
        let mut b = Building::new("Sala é 👍🏽");
        b.push(&events[0].fields());
        assert_eq!(b.fresh(), &encode(&[&events[0]])[1..]);
        b.journaled();
        b.push(&events[1].fields());
        b.push(&events[2].fields());
        assert_eq!(b.fresh(), &encode(&[&events[1], &events[2]])[1..]);
        let refs: Vec<&Stored> = events.iter().collect();
        assert_eq!(b.chunk(), encode(&refs).as_slice());
        assert_eq!(
            (b.n, b.first_ms, b.last_ms),
            (3, events[0].at_ms, events[2].at_ms)
        );
        b.clear();
        assert_eq!((b.chunk(), b.fresh(), b.n), (&[VERSION][..], &[][..], 0));
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_a_panic() {
        let events = [stored(1, "olá")];
        let good = encode(&[&events[0]]);
        for cut in 0..good.len() {
            assert!(
                decode("r", 0, &good[..cut]).is_err() || cut == 1,
                "cut at {cut}"
            );
        }
        let mut bad = good.clone();
        bad[0] = 9;
        assert!(decode("r", 0, &bad).is_err());
        let mut bad = good.clone();
        bad[1] = 77;
        assert!(decode("r", 0, &bad).is_err());
        let mut huge = good.clone();
        let body_len_at = good.len() - 3 - 4;
        huge[body_len_at..body_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode("r", 0, &huge).is_err());
    }
}
