//! The history's journal (`history.journal` beside the database): what
//! the loop kept since the database's last commit, copied into a shared
//! memory map of the file before the pass writes to any client, in place
//! of a SQLite commit per pass (passes are small, and each commit wrote
//! whole pages). A store into a `MAP_SHARED` mapping is in the operating
//! system's page cache at once, with no system call, and stays there if
//! chatd is killed; the database takes the events in one transaction
//! every [`super::COMMIT_EVERY`]. The mapping holds no descriptor open
//! (select's budget counts them).
//!
//! What the journal holds survives kill -9 of chatd, as a commit did. It
//! is not fsynced (the operating system writes it back in its own time):
//! it holds at most [`super::COMMIT_EVERY`] of events, and the database
//! is synced every second. The database records the last record it took (`journal.applied`), so a
//! record is applied once even when chatd stopped between a commit and the
//! journal's emptying. At start, the records the database lacks are
//! applied, then the journal is emptied.
//!
//! The file is [`SIZE`] bytes, records from its start, then a zero length.
//! A record: `u32` length of what follows, `u64` record number, `u16` room
//! length and the room's name, the events as a chunk ([`super::chunk`]),
//! then a CRC-32 (IEEE) over number, room and chunk; a record whose sum
//! is the FNV-1a of the same bytes (what chatd wrote before 2026-12-07)
//! is read too. All little-endian.
//! Reading stops at a zero length, a torn record (chatd killed in the
//! middle of a copy: its events were never sent) or a damaged one; what
//! precedes it is applied, and the rest is reported. Emptying writes a
//! zero length at the start: older records left behind are numbered at
//! or below what the database took, and are skipped.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Stored;
use super::chunk::{self, Building};

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
    /// Bytes after the last whole record that are not zero (a torn or
    /// damaged record), not applied.
    pub ignored: u64,
}

/// The journal's size: room for [`super::COMMIT_EVERY`] of a busy
/// server's events (a full journal makes the database commit at once).
pub const SIZE: usize = 8 << 20;

pub struct Journal {
    path: PathBuf,
    map: Map,
    /// Where the next record goes.
    at: usize,
    /// The next record's number.
    next: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("at", &self.at)
            .field("next", &self.next)
            .finish()
    }
}

/// A shared, writable memory map of the whole journal file.
struct Map {
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

impl Map {
    fn of(file: &File, len: usize) -> std::io::Result<Map> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap};
        let size = std::num::NonZeroUsize::new(len).expect("a journal has a size");
        // SAFETY: a fresh mapping of a file chatd made private (0640 in
        // its state directory) and sized to `len` first; it is only
        // reached through `bytes`, within `len`, and unmapped on drop.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file,
                0,
            )
        }
        .map_err(std::io::Error::from)?;
        Ok(Map { ptr, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, and
        // lives as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are the mapping made in `Map::of`.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr, self.len) };
    }
}

/// The record's checksum: CRC-32, which crc32fast computes with the
/// processor's carry-less multiply (FNV-1a, the first sum, costs a
/// multiply per byte: a few nanoseconds per message).
fn sum(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// The first journals' checksum, still accepted when read back.
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

/// A record's bytes: `events` are a chunk's events without its version
/// byte (see [`super::chunk::Building::fresh`]).
fn record_len(room: &[u8], events: &[u8]) -> usize {
    4 + 8 + 2 + room.len() + 1 + events.len() + 4
}

/// A room's name as a record holds it (at most 65,535 bytes).
fn room_bytes(room: &str) -> &[u8] {
    &room.as_bytes()[..room.len().min(u16::MAX as usize)]
}

/// Writes the record of `room`'s `events` numbered `number` at the
/// start of `out`, which is [`record_len`] bytes.
fn write_record(out: &mut [u8], number: u64, room: &[u8], events: &[u8]) {
    let len = out.len() - 4;
    let num = number.to_le_bytes();
    let version = [chunk::VERSION];
    let check = sum(&[&num, room, &version, events]).to_le_bytes();
    let parts: [&[u8]; 7] = [
        &(len as u32).to_le_bytes(),
        &num,
        &(room.len() as u16).to_le_bytes(),
        room,
        &version,
        events,
        &check,
    ];
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

/// The record of `room` for `events` (all of that room), numbered
/// `number`, appended to `out`.
pub fn encode(out: &mut Vec<u8>, number: u64, room: &str, events: &[&Stored]) {
    let room = room_bytes(room);
    let body = chunk::encode(events);
    let at = out.len();
    out.resize(at + record_len(room, &body[1..]), 0);
    write_record(&mut out[at..], number, room, &body[1..]);
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
    // The rest of a mapped file is zeros, or records of before the last
    // emptying; only what is not zero right after the last record counts.
    let rest = &bytes[at..];
    let declared = match rest.get(..4) {
        Some(len) => u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize,
        None => rest.len(),
    };
    found.ignored = match declared {
        0 => 0,
        n => (4 + n).min(rest.len()) as u64,
    };
    found
}

fn record(bytes: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if len == 0 {
        return None; // the end
    }
    let rest = bytes.get(4..4 + len)?;
    if len < 8 + 2 + 4 {
        return None;
    }
    let num = &rest[..8];
    let room_len = u16::from_le_bytes(rest[8..10].try_into().ok()?) as usize;
    let room = rest.get(10..10 + room_len)?;
    let body = rest.get(10 + room_len..len - 4)?;
    let check = u32::from_le_bytes(rest[len - 4..].try_into().ok()?);
    if sum(&[num, room, body]) != check && fnv(&[num, room, body]) != check {
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
    /// refusing a symlink or anything but a regular file, reads what it
    /// holds, and maps it. Records are numbered on from `after` (the
    /// database's last applied) or from what the file holds, whichever is
    /// later.
    pub fn open(dir: &Path, after: u64) -> Result<(Journal, Found), String> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        super::store::refuse_unless_regular(&path)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("{shown}: {e}"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: {e}"))?;
        let found = decode(&bytes);
        let last = found.records.iter().map(|r| r.number).max().unwrap_or(0);
        if bytes.len() != SIZE {
            file.set_len(SIZE as u64)
                .map_err(|e| format!("{shown}: {e}"))?;
        }
        let map = Map::of(&file, SIZE).map_err(|e| format!("{shown}: mapping it: {e}"))?;
        // What it held is the caller's to apply before it empties the
        // journal (`clear`); appends start at the beginning either way.
        let journal = Journal {
            path,
            map,
            at: 0,
            next: after.max(last) + 1,
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

    /// Copies one record per room of `rooms` that has events not in the
    /// journal yet (straight into the map), then a zero length after
    /// them; returns the last record's number (None: nothing to copy). A
    /// full journal is an error (the caller commits, which empties it).
    pub fn append(&mut self, rooms: &mut [Building]) -> Result<Option<u64>, String> {
        let size: usize = rooms
            .iter()
            .filter(|b| !b.fresh().is_empty())
            .map(|b| record_len(room_bytes(&b.room), b.fresh()))
            .sum();
        if size == 0 {
            return Ok(None);
        }
        let end = self.at + size;
        if end + 4 > SIZE {
            return Err(format!(
                "{}: full ({SIZE} bytes before the next commit)",
                self.path.display()
            ));
        }
        let bytes = self.map.bytes();
        // The terminator first, then the records: a reader never runs
        // past what was copied.
        bytes[end..end + 4].fill(0);
        let mut at = self.at;
        for b in rooms.iter_mut().filter(|b| !b.fresh().is_empty()) {
            let room = room_bytes(&b.room);
            let len = record_len(room, b.fresh());
            write_record(&mut bytes[at..at + len], self.next, room, b.fresh());
            b.journaled();
            at += len;
            self.next += 1;
        }
        self.at = end;
        Ok(Some(self.next - 1))
    }

    /// Empties the journal (what it held is in the database).
    pub fn clear(&mut self) -> Result<(), String> {
        self.map.bytes()[..4].fill(0);
        self.at = 0;
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
    fn a_record_summed_with_fnv_as_before_is_read_too() {
        let a = said("Teste", "um");
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, "Teste", &[&a]);
        let n = bytes.len();
        // Number, room and chunk: all but the lengths.
        let old = fnv(&[&bytes[4..12], &bytes[14..n - 4]]).to_le_bytes();
        bytes[n - 4..].copy_from_slice(&old);
        let found = decode(&bytes);
        assert_eq!((found.records.len(), found.ignored), (1, 0));
        assert_eq!(found.records[0].events[0].body, "um");
    }

    #[test]
    fn a_journal_appends_empties_and_numbers_on() {
        let dir = std::env::temp_dir().join(format!("chatd-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (mut j, found) = Journal::open(&dir, 41).unwrap();
        assert!(found.records.is_empty());
        let m = said("Teste", "oi");
        let mut rooms = [Building::new("Teste"), Building::new("B")];
        assert_eq!(j.append(&mut rooms).unwrap(), None, "nothing kept");
        rooms[0].push(&m.fields());
        assert_eq!(j.append(&mut rooms).unwrap(), Some(42));
        assert_eq!(j.append(&mut rooms).unwrap(), None, "all journaled");
        rooms[0].push(&m.fields());
        rooms[1].push(&m.fields());
        assert_eq!(j.append(&mut rooms).unwrap(), Some(44));
        drop(j);
        let (mut j, found) = Journal::open(&dir, 0).unwrap();
        let numbers: Vec<u64> = found.records.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [42, 43, 44]);
        let rooms: Vec<&str> = found.records.iter().map(|r| r.room.as_str()).collect();
        assert_eq!(rooms, ["Teste", "Teste", "B"]);
        assert!(
            found
                .records
                .iter()
                .all(|r| r.events.len() == 1 && r.events[0].body == "oi")
        );
        assert_eq!(j.next_number(), 45);
        j.clear().unwrap();
        drop(j);
        let (j, found) = Journal::open(&dir, 44).unwrap();
        assert!(found.records.is_empty(), "emptied");
        assert_eq!(
            std::fs::metadata(dir.join(FILE)).unwrap().len(),
            SIZE as u64
        );
        assert_eq!(j.next_number(), 45);
        drop(j);
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
