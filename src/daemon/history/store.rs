//! `HistoryStore`: the history file itself (`history.sqlite3`, SQLite in
//! WAL mode), opened, checked, upgraded, written and read.
//!
//! Rooms' events are kept in chunks (chunk.rs): what one pass kept for a
//! room is one row, so a busy pass costs one insert per room rather than
//! one per message (and a room, at most 1000 events, is read whole and
//! selected from in memory). Direct messages are one row each, a copy per
//! owning account.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, params};

use super::chunk::{self, Building};
use super::{DirectCopy, Kind, Stored, Stream, WAL_RESTART_AT};
use crate::core::chathistory::{self, Select};

/// The file's name in the state directory.
pub const FILE: &str = "history.sqlite3";
/// `PRAGMA application_id`: "chat".
pub(super) const APPLICATION_ID: i64 = 0x6368_6174;
/// `PRAGMA user_version` this chatd writes and reads.
pub const SCHEMA_VERSION: i64 = 3;

/// Version 1 (chatd of 2026-12-04): one row per event.
pub(super) const SCHEMA_V1: &str = "
CREATE TABLE events (
    seq   INTEGER PRIMARY KEY,
    room  TEXT    NOT NULL,
    msgid TEXT    NOT NULL UNIQUE,
    kind  INTEGER NOT NULL,
    name  TEXT    NOT NULL,
    body  TEXT    NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX events_by_room ON events (room, seq);
";

/// Version 2: rooms' events in chunks (one row per room per pass, from
/// the first to the last time in it), and direct messages (IRC), one copy
/// per side that is logged in to an account (`owner`, its comparison
/// key), so a conversation is shown only to the accounts in it.
const SCHEMA_V2: &str = "
CREATE TABLE chunks (
    seq      INTEGER PRIMARY KEY,
    room     TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    events   BLOB    NOT NULL
);
CREATE INDEX chunks_by_room ON chunks (room, seq);
CREATE TABLE direct (
    seq       INTEGER PRIMARY KEY,
    owner     TEXT    NOT NULL,
    peer      TEXT    NOT NULL,
    peer_name TEXT    NOT NULL,
    msgid     TEXT    NOT NULL,
    kind      INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL,
    UNIQUE (owner, msgid)
);
CREATE INDEX direct_by_peer ON direct (owner, peer, seq);
";

/// Version 3: the last journal record the database took (journal.rs),
/// so that a record is applied once.
const SCHEMA_V3: &str = "
CREATE TABLE journal (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    applied INTEGER NOT NULL
);
INSERT INTO journal (id, applied) VALUES (0, 0);
";

/// Version 1 to 2: the schema, then each room's events moved into
/// chunks of 256, in order.
fn to_v2(tx: &Transaction) -> Result<(), rusqlite::Error> {
    tx.execute_batch(SCHEMA_V2)?;
    let rooms: Vec<String> = {
        let mut st = tx.prepare("SELECT DISTINCT room FROM events")?;
        st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    for room in rooms {
        let events: Vec<Stored> = {
            let mut st = tx.prepare(
                "SELECT seq, msgid, kind, name, body, at_ms FROM events WHERE room = ?1 ORDER BY seq",
            )?;
            st.query_map([&room], |r| {
                Ok(Stored {
                    seq: r.get(0)?,
                    room: room.clone(),
                    msgid: r.get(1)?,
                    kind: Kind::from_code(r.get(2)?).unwrap_or(Kind::Message),
                    name: r.get(3)?,
                    body: r.get(4)?,
                    at_ms: r.get(5)?,
                    target: String::new(),
                })
            })?
            .collect::<Result<_, _>>()?
        };
        for part in events.chunks(256) {
            insert_chunk(tx, &room, &part.iter().collect::<Vec<_>>())?;
        }
    }
    tx.execute_batch("DROP TABLE events;")
}

/// A room's events as one chunk row.
fn insert_chunk(db: &Connection, room: &str, events: &[&Stored]) -> Result<(), rusqlite::Error> {
    let mut b = Building::new(room);
    for e in events {
        b.push(&e.fields());
    }
    insert_building(db, &b)
}

/// A room's events kept since the last commit, as one row.
fn insert_building(db: &Connection, b: &Building) -> Result<(), rusqlite::Error> {
    if b.n == 0 {
        return Ok(());
    }
    db.prepare_cached(
        "INSERT INTO chunks (room, n, first_ms, last_ms, events) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        b.room,
        b.n as i64,
        b.first_ms,
        b.last_ms,
        b.chunk()
    ])?;
    Ok(())
}

/// One chunk's place, size and times, without its events.
struct Head {
    seq: i64,
    n: usize,
    first_ms: i64,
    last_ms: i64,
}

/// A chunk's first event's `seq`: the chunk's row, spaced so that every
/// event of it has its own (a chunk holds far fewer than 2^20).
fn first_seq(row: i64) -> i64 {
    row << 20
}

fn err(e: rusqlite::Error) -> String {
    format!("history: {e}")
}

/// A history file that is there must be a regular file: a symlink or a
/// directory planted in its place is refused, never followed or replaced.
pub(super) fn refuse_unless_regular(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(format!(
            "{}: not a regular file (a symlink or a directory?); refusing to use it",
            path.display()
        )),
        _ => Ok(()),
    }
}

pub struct HistoryStore {
    pub(super) db: Connection,
    path: PathBuf,
}

impl HistoryStore {
    /// Opens (or creates) the history file in `dir`; refuses one that is
    /// not chatd's, is damaged, has a newer schema, or is a symlink.
    pub fn open(dir: &Path) -> Result<HistoryStore, String> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        refuse_unless_regular(&path)?;
        // Made private first, as rooms.json is (SQLite gives its -wal and
        // -shm files the database file's permissions).
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(&path)
                .map_err(|e| format!("{shown}: {e}"))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut db =
            Connection::open_with_flags(&path, flags).map_err(|e| format!("{shown}: {e}"))?;
        let refuse = |why: String| {
            format!(
                "{shown}: {why}; chatd will not use or overwrite it (move it away to start afresh)"
            )
        };
        let pragma = |db: &Connection, name: &str| -> Result<i64, String> {
            db.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| refuse(format!("cannot be read as a database ({e})")))
        };
        let (app, version) = (pragma(&db, "application_id")?, pragma(&db, "user_version")?);
        let tables: i64 = db
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| refuse(format!("cannot be read as a database ({e})")))?;
        let from = match (app, version, tables) {
            (0, 0, 0) => 0,
            (APPLICATION_ID, v, _) if v > SCHEMA_VERSION => {
                return Err(refuse(format!(
                    "its schema version {v} is newer than this chatd's ({SCHEMA_VERSION})"
                )));
            }
            (APPLICATION_ID, v, _) if v >= 1 => v,
            (APPLICATION_ID, v, _) => {
                return Err(refuse(format!("schema version {v} is unknown")));
            }
            _ => return Err(refuse("it is not chatd's history file".into())),
        };
        let check: String = db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| refuse(format!("cannot be checked ({e})")))?;
        if check != "ok" {
            return Err(refuse(format!("it is damaged ({check})")));
        }
        db.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA application_id={APPLICATION_ID};"
        ))
        .map_err(|e| format!("{shown}: {e}"))?;
        // Each step and its version number in one transaction: a crash
        // leaves the file at the old version or the new one.
        for to in (from + 1)..=SCHEMA_VERSION {
            let tx = db.transaction().map_err(|e| format!("{shown}: {e}"))?;
            match to {
                1 => tx.execute_batch(SCHEMA_V1),
                2 => to_v2(&tx),
                _ => tx.execute_batch(SCHEMA_V3),
            }
            .and_then(|_| tx.execute_batch(&format!("PRAGMA user_version={to};")))
            .and_then(|_| tx.commit())
            .map_err(|e| format!("{shown}: upgrading the schema to version {to}: {e}"))?;
        }
        // The loop's connection never checkpoints (that fsyncs): the
        // Syncer does. A busy moment (the Syncer's checkpoint) is waited
        // out briefly rather than failing a commit.
        db.execute_batch(&format!(
            "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; \
             PRAGMA journal_size_limit={WAL_RESTART_AT};"
        ))
        .map_err(|e| format!("{shown}: {e}"))?;
        db.busy_timeout(Duration::from_millis(200))
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(HistoryStore { db, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last journal record the database took.
    pub fn applied(&self) -> Result<u64, String> {
        self.db
            .query_row("SELECT applied FROM journal WHERE id = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(err)
    }

    /// Records, inside a transaction begun, that the database took the
    /// journal up to record `number`.
    pub fn set_applied(&self, number: u64) -> Result<(), String> {
        self.db
            .prepare_cached("UPDATE journal SET applied = ?1 WHERE id = 0")
            .and_then(|mut st| st.execute([number as i64]))
            .map(|_| ())
            .map_err(err)
    }

    /// Stores rooms' events (one chunk per room, in the order given).
    pub fn append(&mut self, batch: &[Stored]) -> Result<(), String> {
        self.append_all(batch, &[])
    }

    /// Stores rooms' events (one chunk per room) and direct messages'
    /// copies in one transaction.
    pub fn append_all(&mut self, batch: &[Stored], direct: &[DirectCopy]) -> Result<(), String> {
        let rooms = super::buildings(batch);
        self.atomically(|s| s.insert_all(&rooms, direct))
    }

    /// Runs `f` in one transaction: committed if it succeeds, rolled back
    /// if it fails. BEGIN and COMMIT are prepared once (rusqlite's
    /// `transaction()` parses them on every call, a cost on every pass).
    pub fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut HistoryStore) -> Result<T, String>,
    ) -> Result<T, String> {
        self.run_cached("BEGIN")?;
        let done = f(self).and_then(|t| self.run_cached("COMMIT").map(|_| t));
        if done.is_err() && !self.db.is_autocommit() {
            let _ = self.run_cached("ROLLBACK");
        }
        done
    }

    fn run_cached(&self, sql: &str) -> Result<(), String> {
        self.db
            .prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(|_| ())
            .map_err(err)
    }

    /// One room's events as one chunk, inside a transaction begun.
    pub fn append_room(&mut self, room: &str, events: &[Stored]) -> Result<(), String> {
        let events: Vec<&Stored> = events.iter().collect();
        insert_chunk(&self.db, room, &events).map_err(err)
    }

    /// [`HistoryStore::append_all`] inside a transaction already begun:
    /// each room's chunk as one row.
    pub fn insert_all(&mut self, rooms: &[Building], direct: &[DirectCopy]) -> Result<(), String> {
        for b in rooms {
            insert_building(&self.db, b).map_err(err)?;
        }
        if direct.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .db
            .prepare_cached(
                "INSERT OR IGNORE INTO direct \
                 (owner, peer, peer_name, msgid, kind, name, target, body, at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(err)?;
        for d in direct {
            let s = &d.event;
            insert
                .execute(params![
                    d.owner,
                    d.peer,
                    d.peer_name,
                    s.msgid,
                    s.kind.code(),
                    s.name,
                    s.target,
                    s.body,
                    s.at_ms
                ])
                .map_err(|e| format!("history: storing {}: {e}", s.msgid))?;
        }
        Ok(())
    }

    /// Every event a room keeps, oldest first (by time; the order kept
    /// among equal times).
    pub fn room_events(&self, room: &str) -> Result<Vec<Stored>, String> {
        let mut st = self
            .db
            .prepare_cached("SELECT seq, events FROM chunks WHERE room = ?1 ORDER BY seq")
            .map_err(err)?;
        let mut rows = st.query([room]).map_err(err)?;
        let mut events = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let seq: i64 = r.get(0).map_err(err)?;
            let bytes: Vec<u8> = r.get(1).map_err(err)?;
            let mut got = chunk::decode(room, first_seq(seq), &bytes)
                .map_err(|e| format!("history: room '{room}': {e}"))?;
            events.append(&mut got);
        }
        events.sort_by_key(|e| e.at_ms);
        Ok(events)
    }

    /// A room's newest `n` events, oldest first.
    pub fn latest(&self, room: &str, n: usize) -> Result<Vec<Stored>, String> {
        self.latest_since(room, n, i64::MIN)
    }

    /// A room's newest `n` events at or after `since_ms`, oldest first.
    pub fn latest_since(&self, room: &str, n: usize, since_ms: i64) -> Result<Vec<Stored>, String> {
        let mut events = self.room_events(room)?;
        events.retain(|e| e.at_ms >= since_ms);
        let cut = events.len().saturating_sub(n);
        events.drain(..cut);
        Ok(events)
    }

    /// The chunks of a room, oldest first, without their events.
    fn heads(&self, room: &str) -> Result<Vec<Head>, String> {
        let mut st = self
            .db
            .prepare_cached(
                "SELECT seq, n, first_ms, last_ms FROM chunks WHERE room = ?1 ORDER BY seq",
            )
            .map_err(err)?;
        let rows = st
            .query_map([room], |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    n: r.get::<_, i64>(1)? as usize,
                    first_ms: r.get(2)?,
                    last_ms: r.get(3)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// Keeps a room's newest `keep` events and none older than
    /// `oldest_ms`, in one transaction; returns how many went.
    pub fn trim(&mut self, room: &str, keep: usize, oldest_ms: i64) -> Result<usize, String> {
        self.atomically(|s| s.trim_in(room, keep, oldest_ms))
    }

    /// [`HistoryStore::trim`] inside a transaction already begun. Whole
    /// chunks go with one delete; the one chunk across the line is
    /// written again.
    pub fn trim_in(&mut self, room: &str, keep: usize, oldest_ms: i64) -> Result<usize, String> {
        let heads = self.heads(room)?;
        let total: usize = heads.iter().map(|h| h.n).sum();
        let mut extra = total.saturating_sub(keep);
        let mut gone = 0;
        for h in &heads {
            let all_too_old = h.last_ms < oldest_ms;
            if extra == 0 && h.first_ms >= oldest_ms {
                break;
            }
            if all_too_old || h.n <= extra {
                self.db
                    .prepare_cached("DELETE FROM chunks WHERE seq = ?1")
                    .and_then(|mut st| st.execute([h.seq]))
                    .map_err(err)?;
                extra = extra.saturating_sub(h.n);
                gone += h.n;
                continue;
            }
            // Across the line: its newest events stay.
            let bytes: Vec<u8> = self
                .db
                .prepare_cached("SELECT events FROM chunks WHERE seq = ?1")
                .and_then(|mut st| st.query_row([h.seq], |r| r.get(0)))
                .map_err(err)?;
            let stay = chunk::retain(&bytes, extra, oldest_ms)
                .map_err(|e| format!("history: room '{room}': {e}"))?;
            gone += stay.of - stay.n;
            extra = extra.saturating_sub(stay.of - stay.n);
            self.rewrite(h.seq, &stay)?;
        }
        Ok(gone)
    }

    /// A chunk's row with fewer events (none: the row goes).
    fn rewrite(&mut self, seq: i64, stay: &chunk::Kept) -> Result<(), String> {
        if stay.n == 0 {
            return self
                .db
                .prepare_cached("DELETE FROM chunks WHERE seq = ?1")
                .and_then(|mut st| st.execute([seq]))
                .map(|_| ())
                .map_err(err);
        }
        self.db
            .prepare_cached(
                "UPDATE chunks SET n = ?2, first_ms = ?3, last_ms = ?4, events = ?5 WHERE seq = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    seq,
                    stay.n as i64,
                    stay.first_ms,
                    stay.last_ms,
                    stay.bytes
                ])
            })
            .map(|_| ())
            .map_err(err)
    }

    /// Deletes a room's events older than `before_ms`; returns how many.
    pub fn purge(&mut self, room: &str, before_ms: i64) -> Result<usize, String> {
        self.trim(room, usize::MAX, before_ms)
    }

    /// Keeps one account's newest `keep` direct messages with one peer,
    /// and none older than `oldest_ms`; returns how many went.
    pub fn trim_direct(
        &mut self,
        owner: &str,
        peer: &str,
        keep: usize,
        oldest_ms: i64,
    ) -> Result<usize, String> {
        self.db
            .prepare_cached(
                "DELETE FROM direct WHERE owner = ?1 AND peer = ?2 AND (at_ms < ?3 OR seq <= \
                 (SELECT seq FROM direct WHERE owner = ?1 AND peer = ?2 \
                  ORDER BY seq DESC LIMIT 1 OFFSET ?4))",
            )
            .and_then(|mut st| {
                st.execute(params![
                    owner,
                    peer,
                    oldest_ms,
                    i64::try_from(keep).unwrap_or(i64::MAX)
                ])
            })
            .map_err(err)
    }

    /// What the file's events take: its pages in use, in bytes (deleted
    /// events' pages are reused, so the file stops growing at this).
    pub fn used_bytes(&self) -> Result<u64, String> {
        let pragma = |name: &str| -> Result<i64, String> {
            self.db
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(err)
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok((pages.max(0) * pragma("page_size")?) as u64)
    }

    /// The total size limit: when the events take more than `limit`
    /// bytes, the oldest of every room and conversation go (a share of
    /// each table's rows, enough to come under 90 % of the limit);
    /// returns how many events went.
    pub fn bound_size(&mut self, limit: u64) -> Result<usize, String> {
        let used = self.used_bytes()?;
        if limit == 0 || used <= limit {
            return Ok(0);
        }
        let share = (used - limit * 9 / 10) as f64 / used as f64;
        let count = |sql: &str| -> Result<i64, String> {
            self.db.query_row(sql, [], |r| r.get(0)).map_err(err)
        };
        let chunks = ((count("SELECT count(*) FROM chunks")? as f64) * share).ceil() as i64;
        let direct = ((count("SELECT count(*) FROM direct")? as f64) * share).ceil() as i64;
        let events: i64 = self
            .db
            .query_row(
                "SELECT coalesce(sum(n), 0) FROM (SELECT n FROM chunks ORDER BY seq LIMIT ?1)",
                [chunks],
                |r| r.get(0),
            )
            .map_err(err)?;
        self.db
            .execute(
                "DELETE FROM chunks WHERE seq IN (SELECT seq FROM chunks ORDER BY seq LIMIT ?1)",
                [chunks],
            )
            .map_err(err)?;
        let gone_direct = self
            .db
            .execute(
                "DELETE FROM direct WHERE seq IN (SELECT seq FROM direct ORDER BY seq LIMIT ?1)",
                [direct],
            )
            .map_err(err)?;
        Ok(events as usize + gone_direct)
    }

    /// The server's age limit for what no room's own limit covers: rooms
    /// that are gone (made by joining them, then emptied) and rooms that
    /// follow the server's; `own` are the rooms with their own age.
    /// Whole chunks older than `oldest_ms` go.
    pub fn expire_others(&mut self, oldest_ms: i64, own: &[String]) -> Result<usize, String> {
        let marks = vec!["?"; own.len()].join(",");
        let args = || {
            let mut a = vec![rusqlite::types::Value::Integer(oldest_ms)];
            a.extend(own.iter().map(|r| rusqlite::types::Value::Text(r.clone())));
            a
        };
        let which = format!("last_ms < ? AND room NOT IN ({marks})");
        let events: i64 = self
            .db
            .query_row(
                &format!("SELECT coalesce(sum(n), 0) FROM chunks WHERE {which}"),
                rusqlite::params_from_iter(args()),
                |r| r.get(0),
            )
            .map_err(err)?;
        self.db
            .execute(
                &format!("DELETE FROM chunks WHERE {which}"),
                rusqlite::params_from_iter(args()),
            )
            .map_err(err)?;
        Ok(events as usize)
    }

    /// Direct messages older than `oldest_ms` go; returns how many.
    pub fn expire_direct(&mut self, oldest_ms: i64) -> Result<usize, String> {
        self.db
            .execute("DELETE FROM direct WHERE at_ms < ?1", params![oldest_ms])
            .map_err(err)
    }

    /// A conversation's messages, oldest first: a room's (joins and
    /// leaves left out), or one account's direct messages with one peer.
    fn messages(&self, stream: Stream) -> Result<Vec<Stored>, String> {
        match stream {
            Stream::Room(room) => {
                let mut events = self.room_events(room)?;
                events.retain(|e| e.kind == Kind::Message);
                Ok(events)
            }
            Stream::Direct { owner, peer } => {
                let mut st = self
                    .db
                    .prepare_cached(
                        "SELECT seq, msgid, kind, name, body, at_ms, target FROM direct \
                         WHERE owner = ?1 AND peer = ?2 ORDER BY seq",
                    )
                    .map_err(err)?;
                let rows = st
                    .query_map([owner, peer], |r| {
                        Ok(Stored {
                            seq: r.get(0)?,
                            room: String::new(),
                            msgid: r.get(1)?,
                            kind: Kind::from_code(r.get(2)?).unwrap_or(Kind::Message),
                            name: r.get(3)?,
                            body: r.get(4)?,
                            at_ms: r.get(5)?,
                            target: r.get(6)?,
                        })
                    })
                    .map_err(err)?;
                let mut rows: Vec<Stored> = rows.collect::<Result<_, _>>().map_err(err)?;
                rows.sort_by_key(|s| s.at_ms);
                Ok(rows)
            }
        }
    }

    /// CHATHISTORY: up to `limit` messages of `stream` as `select` asks,
    /// oldest first (core/chathistory.rs's `window`).
    pub fn window(
        &self,
        stream: Stream,
        select: &Select,
        limit: usize,
    ) -> Result<Vec<Stored>, String> {
        let mut all = self.messages(stream)?;
        let points: Vec<(&str, i64)> = all.iter().map(|s| (s.msgid.as_str(), s.at_ms)).collect();
        let range = chathistory::window(&points, select, limit);
        all.truncate(range.end);
        all.drain(..range.start);
        Ok(all)
    }

    /// CHATHISTORY TARGETS: the conversations whose latest message lies
    /// strictly between `from` and `to` (Unix ms), earliest first: the
    /// `rooms` given (those the asker is in), and `owner`'s direct
    /// messages (None: not logged in, none). Each is (room or peer's
    /// name, whether a room, its latest message's time).
    pub fn targets(
        &self,
        owner: Option<&str>,
        rooms: &[String],
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(String, bool, i64)>, String> {
        let mut found = Vec::new();
        for room in rooms {
            let latest = self.messages(Stream::Room(room))?.last().map(|s| s.at_ms);
            if let Some(at) = latest.filter(|&t| from < t && t < to) {
                found.push((room.clone(), true, at));
            }
        }
        if let Some(owner) = owner {
            let mut st = self
                .db
                .prepare_cached(
                    "SELECT d.peer_name, d.at_ms FROM direct d JOIN \
                     (SELECT peer, max(seq) AS last FROM direct WHERE owner = ?1 GROUP BY peer) l \
                     ON d.seq = l.last WHERE d.at_ms > ?2 AND d.at_ms < ?3",
                )
                .map_err(err)?;
            let rows = st
                .query_map(params![owner, from, to], |r| {
                    Ok((r.get::<_, String>(0)?, false, r.get::<_, i64>(1)?))
                })
                .map_err(err)?;
            for row in rows {
                found.push(row.map_err(err)?);
            }
        }
        found.sort_by_key(|t| t.2);
        found.truncate(limit);
        Ok(found)
    }

    /// Moves the write-ahead log into the database and syncs it (what the
    /// writer does about once a second).
    pub fn checkpoint(&self) -> Result<(), String> {
        self.db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| format!("history: checkpoint: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chathistory::Ref;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("chatd-history-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn event(i: i64, room: &str) -> Stored {
        Stored {
            seq: 0,
            room: room.into(),
            msgid: format!("m{i}"),
            kind: if i % 10 == 0 {
                Kind::Join
            } else {
                Kind::Message
            },
            name: "Yan".into(),
            body: format!("mensagem {i}"),
            at_ms: 1_000 * i,
            target: String::new(),
        }
    }

    #[test]
    fn what_is_stored_comes_back_after_a_reopen_in_order() {
        let d = dir("reopen");
        let mut h = HistoryStore::open(&d).unwrap();
        let batch: Vec<Stored> = (1..=30)
            .map(|i| event(i, if i % 2 == 0 { "A" } else { "B" }))
            .collect();
        h.append(&batch).unwrap();
        drop(h);
        let h = HistoryStore::open(&d).unwrap();
        let got = h.latest("A", 3).unwrap();
        let ids: Vec<&str> = got.iter().map(|s| s.msgid.as_str()).collect();
        assert_eq!(ids, ["m26", "m28", "m30"]);
        assert_eq!(got[1].kind, Kind::Message);
        let before: Vec<String> = h
            .window(
                Stream::Room("A"),
                &Select::Before(Ref::Msgid("m26".into())),
                2,
            )
            .unwrap()
            .into_iter()
            .map(|s| s.msgid)
            .collect();
        assert_eq!(before, ["m22", "m24"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn retention_keeps_the_newest_and_nothing_too_old() {
        let d = dir("trim");
        let mut h = HistoryStore::open(&d).unwrap();
        h.append(&(1..=20).map(|i| event(i, "A")).collect::<Vec<_>>())
            .unwrap();
        h.append(&[event(99, "B")]).unwrap();
        assert_eq!(h.trim("A", 5, 0).unwrap(), 15);
        assert_eq!(h.latest("A", 100).unwrap().len(), 5);
        assert_eq!(
            h.trim("A", 100, 18_000).unwrap(),
            2,
            "m16 and m17 are too old"
        );
        assert_eq!(
            h.latest("B", 100).unwrap().len(),
            1,
            "other rooms untouched"
        );
        h.checkpoint().unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Ten messages in room A, one every 10 ms from t = 1000 (m1..m10),
    /// a join in between (not a message: CHATHISTORY skips it).
    fn ten(h: &mut HistoryStore) {
        let mut batch: Vec<Stored> = (1..=10)
            .map(|i| Stored {
                kind: Kind::Message,
                at_ms: 1000 + 10 * i,
                ..event(i, "A")
            })
            .collect();
        batch.insert(
            5,
            Stored {
                msgid: "j".into(),
                kind: Kind::Join,
                at_ms: 1055,
                ..event(0, "A")
            },
        );
        h.append(&batch).unwrap();
    }

    fn ids(h: &HistoryStore, select: Select, limit: usize) -> Vec<String> {
        h.window(Stream::Room("A"), &select, limit)
            .unwrap()
            .into_iter()
            .map(|s| s.msgid)
            .collect()
    }

    fn m(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
        range.map(|i| format!("m{i}")).collect()
    }

    #[test]
    fn chathistory_windows_follow_the_spec() {
        let d = dir("window");
        let mut h = HistoryStore::open(&d).unwrap();
        ten(&mut h);
        let id = |i: i64| Ref::Msgid(format!("m{i}"));
        let at = |i: i64| Ref::Time(1000 + 10 * i);
        assert_eq!(ids(&h, Select::Latest(None), 100), m(1..=10));
        assert_eq!(ids(&h, Select::Latest(None), 3), m(8..=10));
        assert_eq!(ids(&h, Select::Latest(Some(id(4))), 100), m(5..=10));
        assert_eq!(ids(&h, Select::Latest(Some(at(4))), 2), m(9..=10));
        assert_eq!(ids(&h, Select::Before(id(7)), 100), m(1..=6));
        assert_eq!(ids(&h, Select::Before(at(7)), 2), m(5..=6));
        assert_eq!(ids(&h, Select::After(id(3)), 100), m(4..=10));
        assert_eq!(ids(&h, Select::After(at(3)), 3), m(4..=6));
        assert_eq!(ids(&h, Select::Around(id(8)), 1), m(8..=8));
        assert_eq!(ids(&h, Select::Around(id(8)), 3), m(7..=9));
        assert_eq!(ids(&h, Select::Around(at(8)), 4), m(6..=9));
        assert_eq!(ids(&h, Select::Between(id(1), id(10)), 100), m(2..=9));
        assert_eq!(ids(&h, Select::Between(id(10), id(1)), 100), m(2..=9));
        assert_eq!(ids(&h, Select::Between(id(1), id(10)), 3), m(2..=4));
        assert_eq!(ids(&h, Select::Between(id(10), id(1)), 3), m(7..=9));
        assert_eq!(ids(&h, Select::Between(at(10), id(1)), 3), m(7..=9));
        // A message the room does not have selects nothing.
        assert!(ids(&h, Select::Before(Ref::Msgid("nope".into())), 5).is_empty());
        assert!(ids(&h, Select::Before(Ref::Msgid("j".into())), 5).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn direct_messages_are_each_accounts_own_and_targets_list_the_latest() {
        let d = dir("direct");
        let mut h = HistoryStore::open(&d).unwrap();
        ten(&mut h);
        let copy = |owner: &str, peer: &str, i: i64| DirectCopy {
            owner: owner.into(),
            peer: peer.to_lowercase(),
            peer_name: peer.into(),
            event: Stored {
                target: peer.into(),
                at_ms: 2000 + i,
                ..event(i, "")
            },
        };
        // Ana and Bia talk (a copy each); Ana writes to herself once,
        // stored once however often it is kept.
        h.append_all(
            &[],
            &[
                copy("ana", "Bia", 1),
                copy("bia", "Ana", 1),
                copy("ana", "Bia", 2),
                copy("ana", "Ana", 3),
                copy("ana", "Ana", 3),
            ],
        )
        .unwrap();
        fn mine(h: &HistoryStore, owner: &str, peer: &str) -> Vec<String> {
            h.window(Stream::Direct { owner, peer }, &Select::Latest(None), 10)
                .unwrap()
                .into_iter()
                .map(|s| s.msgid)
                .collect()
        }
        assert_eq!(mine(&h, "ana", "bia"), ["m1", "m2"]);
        assert_eq!(mine(&h, "bia", "ana"), ["m1"]);
        assert_eq!(mine(&h, "ana", "ana"), ["m3"]);
        assert!(mine(&h, "caio", "ana").is_empty());
        let t = h
            .targets(Some("ana"), &["A".into()], 0, i64::MAX, 10)
            .unwrap();
        assert_eq!(
            t,
            [
                ("A".to_string(), true, 1100),
                ("Bia".to_string(), false, 2002),
                ("Ana".to_string(), false, 2003)
            ]
        );
        // The span is exclusive, and a target counts by its latest only.
        let t = h
            .targets(Some("ana"), &["A".into()], 1100, 2003, 10)
            .unwrap();
        assert_eq!(t, [("Bia".to_string(), false, 2002)]);
        assert!(h.targets(None, &[], 0, i64::MAX, 10).unwrap().is_empty());
        assert_eq!(h.trim_direct("ana", "bia", 1, 0).unwrap(), 1);
        assert_eq!(mine(&h, "ana", "bia"), ["m2"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_version_1_file_is_upgraded_in_place_and_keeps_its_events() {
        let d = dir("migrate");
        let path = d.join(FILE);
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA application_id={APPLICATION_ID}; \
             {SCHEMA_V1} PRAGMA user_version=1; \
             INSERT INTO events (room, msgid, kind, name, body, at_ms) \
             VALUES ('A', 'old-1', 0, 'Yan', 'de antes', 5);"
        ))
        .unwrap();
        drop(old);
        let mut h = HistoryStore::open(&d).unwrap();
        let version: i64 =
            h.db.query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(h.latest("A", 10).unwrap()[0].body, "de antes");
        h.append_all(
            &[],
            &[DirectCopy {
                owner: "yan".into(),
                peer: "ana".into(),
                peer_name: "Ana".into(),
                event: event(1, ""),
            }],
        )
        .unwrap();
        drop(h);
        assert!(HistoryStore::open(&d).is_ok(), "opens again as version 2");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_size_limit_forgets_the_oldest_first() {
        let d = dir("size");
        let mut h = HistoryStore::open(&d).unwrap();
        let big = "x".repeat(1000);
        for b in 0..10 {
            let batch: Vec<Stored> = (0..100)
                .map(|i| Stored {
                    body: big.clone(),
                    ..event(b * 100 + i, "A")
                })
                .collect();
            h.append(&batch).unwrap();
        }
        let used = h.used_bytes().unwrap();
        assert!(used > 1_000_000, "{used}");
        assert_eq!(h.bound_size(0).unwrap(), 0, "0 is no limit");
        assert_eq!(h.bound_size(used * 2).unwrap(), 0, "under the limit");
        let gone = h.bound_size(used / 2).unwrap();
        assert!((500..=700).contains(&gone), "{gone}");
        let left = h.latest("A", 10_000).unwrap();
        assert_eq!(left.len(), 1000 - gone);
        assert_eq!(left.last().unwrap().msgid, "m999", "the newest stay");
        assert!(h.used_bytes().unwrap() <= used / 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_foreign_newer_damaged_or_linked_file_is_refused_and_left_alone() {
        let d = dir("refuse");
        let path = d.join(FILE);
        // Not a database at all.
        std::fs::write(&path, b"this is not sqlite, it is a note").unwrap();
        let err = HistoryStore::open(&d).err().unwrap();
        assert!(err.contains("will not use or overwrite"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"this is not sqlite, it is a note"
        );
        std::fs::remove_file(&path).unwrap();
        // Somebody else's database.
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE t (x); PRAGMA application_id=42;")
            .unwrap();
        drop(other);
        let err = HistoryStore::open(&d).err().unwrap();
        assert!(err.contains("not chatd's history"), "{err}");
        std::fs::remove_file(&path).unwrap();
        // A newer chatd's.
        drop(HistoryStore::open(&d).unwrap());
        let newer = Connection::open(&path).unwrap();
        newer
            .execute_batch(&format!("PRAGMA user_version={};", SCHEMA_VERSION + 1))
            .unwrap();
        drop(newer);
        let err = HistoryStore::open(&d).err().unwrap();
        assert!(err.contains("newer than this chatd's"), "{err}");
        std::fs::remove_file(&path).unwrap();
        // A symlink planted where the file goes.
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let err = HistoryStore::open(&d).err().unwrap();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
