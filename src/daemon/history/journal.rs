//! The history's journal (`history.journal` beside the database): what
//! the loop kept since the database's last commit, appended with one
//! write(2) per pass before the pass writes to any client. A SQLite
//! commit per pass cost about a fifth of chatd's CPU per delivery
//! (BENCHMARKS.md); an append costs one system call, and the database
//! takes the events in one transaction every [`super::COMMIT_EVERY`].
//!
//! What the journal holds survives kill -9 of chatd (it is in the
//! operating system), as a commit did; the Syncer fsyncs it with the
//! database about once a second. The database records the last record it
//! took (`journal.applied`), so a record is applied once even when chatd
//! stopped between a commit and the journal's truncation. At start, the
//! records the database lacks are applied, then the journal is emptied.
//!
//! A record: `u32` length of what follows, `u64` record number, `u16`
//! room length and the room's name, the events as a chunk
//! ([`super::chunk`]), then an FNV-1a `u32` over number, room and chunk.
//! All little-endian. A torn or damaged tail (a power cut in the middle
//! of a write) ends the reading: what precedes it is applied, and the
//! rest is reported.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Stored, chunk};

pub const FILE: &str = "history.journal";

/// One room's events of one pass, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub number: u64,
    pub room: String,
    pub events: Vec<Stored>,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Found {
    pub records: Vec<Record>,
    /// Bytes after the last whole record (a torn write), not applied.
    pub ignored: u64,
}

#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    /// The next record's number.
    next: u64,
    /// Bytes written since the journal was last emptied.
    pub len: u64,
}

fn fnv(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for &b in *p {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// The records of `room` for `events` (all of that room), numbered from
/// `number`, appended to `out`.
pub fn encode(out: &mut Vec<u8>, number: u64, room: &str, events: &[&Stored]) {
    let room = &room.as_bytes()[..room.len().min(u16::MAX as usize)];
    let body = chunk::encode(events);
    let len = 8 + 2 + room.len() + body.len() + 4;
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let num = number.to_le_bytes();
    out.extend_from_slice(&num);
    out.extend_from_slice(&(room.len() as u16).to_le_bytes());
    out.extend_from_slice(room);
    out.extend_from_slice(&body);
    out.extend_from_slice(&fnv(&[&num, room, &body]).to_le_bytes());
}

/// The whole records at the start of `bytes`, and how many bytes follow
/// them that are not one.
pub fn decode(bytes: &[u8]) -> Found {
    let mut found = Found::default();
    let mut at = 0;
    while at < bytes.len() {
        match record(&bytes[at..]) {
            Some((r, used)) => {
                found.records.push(r);
                at += used;
            }
            None => break,
        }
    }
    found.ignored = (bytes.len() - at) as u64;
    found
}

fn record(bytes: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let rest = bytes.get(4..4 + len)?;
    if len < 8 + 2 + 4 {
        return None;
    }
    let num = &rest[..8];
    let room_len = u16::from_le_bytes(rest[8..10].try_into().ok()?) as usize;
    let room = rest.get(10..10 + room_len)?;
    let body = rest.get(10 + room_len..len - 4)?;
    let sum = u32::from_le_bytes(rest[len - 4..].try_into().ok()?);
    if fnv(&[num, room, body]) != sum {
        return None;
    }
    let room = std::str::from_utf8(room).ok()?.to_string();
    let number = u64::from_le_bytes(num.try_into().ok()?);
    let events = chunk::decode(&room, 0, body).ok()?;
    Some((
        Record {
            number,
            room,
            events,
        },
        4 + len,
    ))
}

impl Journal {
    /// Opens (or creates, 0640 like the database) the journal in `dir`,
    /// refusing a symlink or anything but a regular file, and reads what
    /// it holds. Records are numbered on from `after` (the database's
    /// last applied) or from what the file holds, whichever is later.
    pub fn open(dir: &Path, after: u64) -> Result<(Journal, Found), String> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && !meta.file_type().is_file()
        {
            return Err(format!(
                "{shown}: not a regular file (a symlink or a directory?); refusing to use it"
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("{shown}: {e}"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: {e}"))?;
        let found = decode(&bytes);
        let last = found.records.iter().map(|r| r.number).max().unwrap_or(0);
        let journal = Journal {
            file,
            path,
            next: after.max(last) + 1,
            len: bytes.len() as u64,
        };
        Ok((journal, found))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number the next record will have.
    pub fn next_number(&self) -> u64 {
        self.next
    }

    /// Appends one record per room of `rooms` with one write(2); returns
    /// the last record's number.
    pub fn append(&mut self, rooms: &[(&str, Vec<&Stored>)]) -> Result<u64, String> {
        let mut out = Vec::new();
        for (room, events) in rooms {
            encode(&mut out, self.next, room, events);
            self.next += 1;
        }
        self.file
            .write_all(&out)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.len += out.len() as u64;
        Ok(self.next - 1)
    }

    /// Empties the journal (what it held is in the database).
    pub fn clear(&mut self) -> Result<(), String> {
        if self.len == 0 {
            return Ok(());
        }
        self.file
            .set_len(0)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::history::Kind;

    fn said(room: &str, body: &str) -> Stored {
        Stored {
            seq: 0,
            room: room.into(),
            msgid: format!("id-{body}"),
            kind: Kind::Message,
            name: "Ana".into(),
            body: body.into(),
            at_ms: 1_700_000_000_000,
            target: String::new(),
        }
    }

    #[test]
    fn records_read_back_and_a_torn_tail_is_left_out() {
        let (a, b, c) = (
            said("Teste", "um"),
            said("Teste", "dois"),
            said("Sala é", "três"),
        );
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, "Teste", &[&a, &b]);
        encode(&mut bytes, 8, "Sala é", &[&c]);
        let whole = bytes.len();
        encode(&mut bytes, 9, "Teste", &[&a]);
        let found = decode(&bytes);
        assert_eq!(found.records.len(), 3);
        assert_eq!(found.records[1].room, "Sala é");
        assert_eq!(found.records[1].events[0].body, "três");
        assert_eq!(found.records[0].number, 7);
        // A write cut short, and one damaged: what precedes them counts.
        for end in [whole + 5, bytes.len() - 1] {
            let found = decode(&bytes[..end]);
            assert_eq!(found.records.len(), 2);
            assert_eq!(found.ignored, (end - whole) as u64);
        }
        let mut damaged = bytes.clone();
        damaged[whole + 20] ^= 1;
        assert_eq!(decode(&damaged).records.len(), 2);
        assert_eq!(decode(&[]).records.len(), 0);
    }

    #[test]
    fn a_journal_appends_empties_and_numbers_on() {
        let dir = std::env::temp_dir().join(format!("chatd-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (mut j, found) = Journal::open(&dir, 41).unwrap();
        assert!(found.records.is_empty());
        let m = said("Teste", "oi");
        assert_eq!(j.append(&[("Teste", vec![&m])]).unwrap(), 42);
        assert_eq!(
            j.append(&[("Teste", vec![&m]), ("B", vec![&m])]).unwrap(),
            44
        );
        drop(j);
        let (mut j, found) = Journal::open(&dir, 0).unwrap();
        let numbers: Vec<u64> = found.records.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [42, 43, 44]);
        assert_eq!(j.next_number(), 45);
        j.clear().unwrap();
        assert_eq!(std::fs::metadata(dir.join(FILE)).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
        // A symlink in its place is refused.
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join(FILE)).unwrap();
        assert!(
            Journal::open(&dir, 0)
                .unwrap_err()
                .contains("not a regular file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
