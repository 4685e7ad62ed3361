//! A chunk: the events one pass of the loop kept for one room, as one
//! row of the history file (a room's whole chunk is written with one
//! insert, so a busy pass costs one row, not one per message).
//!
//! The encoding is plain length-prefixed fields after a version byte:
//! per event its kind (1 byte), time (i64 ms, little-endian), msgid and
//! name (u16 length + UTF-8), body (u32 length + UTF-8). Decoding checks
//! every length and every string; a damaged chunk is an error, never a
//! panic.

use super::{Kind, Stored};

/// The first byte of every chunk this chatd writes.
const VERSION: u8 = 1;

/// The events, which all belong to one room, as a chunk.
pub fn encode(events: &[&Stored]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| 15 + e.msgid.len() + e.name.len() + e.body.len())
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(VERSION);
    for e in events {
        out.push(e.kind.code() as u8);
        out.extend_from_slice(&e.at_ms.to_le_bytes());
        short(&mut out, &e.msgid);
        short(&mut out, &e.name);
        out.extend_from_slice(&(e.body.len() as u32).to_le_bytes());
        out.extend_from_slice(e.body.as_bytes());
    }
    out
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

    /// A string after its length in `width` bytes (2 or 4).
    fn string(&mut self, width: usize) -> Result<String, String> {
        let raw = self.take(width)?;
        let len = match width {
            2 => u16::from_le_bytes([raw[0], raw[1]]) as usize,
            _ => u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
        };
        let text = self.take(len)?;
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
