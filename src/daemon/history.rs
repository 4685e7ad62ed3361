//! The history file (issue #25): rooms' messages and join and leave
//! events in one SQLite database in the state directory
//! (`history.sqlite3`, WAL mode), for history that outlives a restart.
//!
//! Chosen by measurement over redb (BENCHMARKS.md, "History storage"):
//! both take about 430,000 messages a second in batches of 1,000 on this
//! machine, but SQLite's file is less than half the size (121 MB per
//! million messages against 270), its queries (the latest N, before or
//! after a message, by age) are SQL rather than hand-walked ranges, and
//! an operator can open the file with the `sqlite3` shell.
//!
//! Durability follows Redis's `appendfsync everysec`: WAL with
//! `synchronous=NORMAL` and no automatic checkpoint on the loop's
//! connection, so a commit is a write(2) into the operating system and
//! never an fsync. [`History`] commits what a pass kept in one transaction
//! before the pass writes to any client: whatever a client was sent is in
//! the operating system first, and survives kill -9 of chatd. The one
//! thread chatd has, the [`Syncer`], only checkpoints (fsyncs the WAL and
//! the database) about once a second on its own connection, so a power
//! cut may lose about the last second; the loop never waits for it.
//!
//! The file has an application id and a schema version: a file that is
//! not chatd's history, is damaged, or has a newer version is refused
//! with a clear message and never written, like rooms.json; a symlink in
//! its place is refused too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

/// The file's name in the state directory.
pub const FILE: &str = "history.sqlite3";
/// `PRAGMA application_id`: "chat".
const APPLICATION_ID: i64 = 0x6368_6174;
/// `PRAGMA user_version` this chatd writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
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

/// What is kept of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its place in the file (grows); 0 before it is stored.
    pub seq: i64,
    pub room: String,
    pub msgid: String,
    pub kind: Kind,
    pub name: String,
    pub body: String,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
}

impl Stored {
    /// The event as it was sent (its `ts` to the second).
    pub fn event(&self) -> crate::core::wire::Event {
        use crate::core::wire::{Event, EventKind};
        Event {
            kind: match self.kind {
                Kind::Message => EventKind::Message,
                Kind::Join => EventKind::Join,
                Kind::Leave => EventKind::Leave,
            },
            username: self.name.clone(),
            message: self.body.clone(),
            room: Some(self.room.clone()),
            msgid: Some(self.msgid.clone()),
            ts: Some(crate::timefmt::rfc3339(self.at_ms.max(0) as u64 / 1000)),
            ..Event::default()
        }
    }
}

/// The kinds of event kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Join,
    Leave,
}

impl Kind {
    fn code(self) -> i64 {
        match self {
            Kind::Message => 0,
            Kind::Join => 1,
            Kind::Leave => 2,
        }
    }

    fn from_code(c: i64) -> Option<Kind> {
        match c {
            0 => Some(Kind::Message),
            1 => Some(Kind::Join),
            2 => Some(Kind::Leave),
            _ => None,
        }
    }
}

pub struct HistoryStore {
    db: Connection,
    path: PathBuf,
}

impl HistoryStore {
    /// Opens (or creates) the history file in `dir`; refuses one that is
    /// not chatd's, is damaged, has a newer schema, or is a symlink.
    pub fn open(dir: &Path) -> Result<HistoryStore, String> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && !meta.file_type().is_file()
        {
            return Err(format!(
                "{shown}: not a regular file (a symlink or a directory?); refusing to use it"
            ));
        }
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
        let db = Connection::open_with_flags(&path, flags).map_err(|e| format!("{shown}: {e}"))?;
        let refuse = |why: String| {
            format!(
                "{shown}: {why}; chatd will not use or overwrite it (move it away to start afresh)"
            )
        };
        let pragma = |name: &str| -> Result<i64, String> {
            db.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| refuse(format!("cannot be read as a database ({e})")))
        };
        let (app, version) = (pragma("application_id")?, pragma("user_version")?);
        let tables: i64 = db
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| refuse(format!("cannot be read as a database ({e})")))?;
        match (app, version, tables) {
            (0, 0, 0) => {
                db.execute_batch(&format!(
                    "PRAGMA journal_mode=WAL; PRAGMA application_id={APPLICATION_ID}; \
                     BEGIN; {SCHEMA_V1} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(|e| format!("{shown}: creating the schema: {e}"))?;
            }
            (APPLICATION_ID, v, _) if v > SCHEMA_VERSION => {
                return Err(refuse(format!(
                    "its schema version {v} is newer than this chatd's ({SCHEMA_VERSION})"
                )));
            }
            (APPLICATION_ID, SCHEMA_VERSION, _) => {}
            (APPLICATION_ID, v, _) => {
                return Err(refuse(format!("schema version {v} is unknown")));
            }
            _ => return Err(refuse("it is not chatd's history file".into())),
        }
        let check: String = db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| refuse(format!("cannot be checked ({e})")))?;
        if check != "ok" {
            return Err(refuse(format!("it is damaged ({check})")));
        }
        // The loop's connection never checkpoints (that fsyncs): the
        // Syncer does. A busy moment (the Syncer's checkpoint) is waited
        // out briefly rather than failing a commit.
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;",
        )
        .map_err(|e| format!("{shown}: {e}"))?;
        db.busy_timeout(Duration::from_millis(200))
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(HistoryStore { db, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a batch in one transaction; returns the last `seq` given.
    pub fn append(&mut self, batch: &[Stored]) -> Result<i64, String> {
        let tx = self.db.transaction().map_err(|e| format!("history: {e}"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (room, msgid, kind, name, body, at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| format!("history: {e}"))?;
            for s in batch {
                insert
                    .execute(params![
                        s.room,
                        s.msgid,
                        s.kind.code(),
                        s.name,
                        s.body,
                        s.at_ms
                    ])
                    .map_err(|e| format!("history: storing {}: {e}", s.msgid))?;
            }
        }
        let last = tx.last_insert_rowid();
        tx.commit().map_err(|e| format!("history: {e}"))?;
        Ok(last)
    }

    /// A room's newest `n` events, oldest first.
    pub fn latest(&self, room: &str, n: usize) -> Result<Vec<Stored>, String> {
        self.latest_since(room, n, i64::MIN)
    }

    /// A room's newest `n` events at or after `since_ms`, oldest first.
    pub fn latest_since(&self, room: &str, n: usize, since_ms: i64) -> Result<Vec<Stored>, String> {
        let mut rows = self.select(
            "SELECT seq, room, msgid, kind, name, body, at_ms FROM events \
             WHERE room = ?1 AND at_ms >= ?2 ORDER BY seq DESC LIMIT ?3",
            params![room, since_ms, n as i64],
        )?;
        rows.reverse();
        Ok(rows)
    }

    /// Deletes a room's events older than `before_ms`; returns how many.
    pub fn purge(&mut self, room: &str, before_ms: i64) -> Result<usize, String> {
        self.db
            .execute(
                "DELETE FROM events WHERE room = ?1 AND at_ms < ?2",
                params![room, before_ms],
            )
            .map_err(|e| format!("history: {e}"))
    }

    /// Up to `n` of a room's events just before the one with `msgid`,
    /// oldest first (CHATHISTORY BEFORE).
    pub fn before(&self, room: &str, msgid: &str, n: usize) -> Result<Vec<Stored>, String> {
        let mut rows = self.select(
            "SELECT seq, room, msgid, kind, name, body, at_ms FROM events \
             WHERE room = ?1 AND seq < (SELECT seq FROM events WHERE msgid = ?2) \
             ORDER BY seq DESC LIMIT ?3",
            params![room, msgid, n as i64],
        )?;
        rows.reverse();
        Ok(rows)
    }

    /// Keeps a room's newest `keep` events and none older than
    /// `oldest_ms`; returns how many went.
    pub fn trim(&mut self, room: &str, keep: usize, oldest_ms: i64) -> Result<usize, String> {
        let gone = self
            .db
            .execute(
                "DELETE FROM events WHERE room = ?1 AND (at_ms < ?2 OR seq <= \
                 (SELECT seq FROM events WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?3))",
                params![room, oldest_ms, keep as i64],
            )
            .map_err(|e| format!("history: {e}"))?;
        Ok(gone)
    }

    /// Moves the write-ahead log into the database and syncs it (what the
    /// writer does about once a second).
    pub fn checkpoint(&self) -> Result<(), String> {
        self.db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| format!("history: checkpoint: {e}"))
    }

    fn select(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Stored>, String> {
        let mut st = self
            .db
            .prepare_cached(sql)
            .map_err(|e| format!("history: {e}"))?;
        let rows = st
            .query_map(args, |r| {
                Ok(Stored {
                    seq: r.get(0)?,
                    room: r.get(1)?,
                    msgid: r.get(2)?,
                    kind: Kind::from_code(r.get(3)?).unwrap_or(Kind::Message),
                    name: r.get(4)?,
                    body: r.get(5)?,
                    at_ms: r.get(6)?,
                })
            })
            .map_err(|e| format!("history: {e}"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("history: {e}"))
    }
}

/// How often the Syncer checkpoints: the most a power cut may lose.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The thread that makes the history durable: it opens its own
/// connection and checkpoints the WAL into the database (fsyncing both)
/// every [`SYNC_EVERY`], and once more when told to stop. It writes no
/// event and the loop never waits for it.
pub struct Syncer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(path: &Path) -> Result<Syncer, String> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let db = Connection::open_with_flags(path, flags)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        db.busy_timeout(Duration::from_secs(1))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (stop, told) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("history-sync".into())
            .spawn(move || {
                let checkpoint = |mode: &str| {
                    let _ = db.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
                };
                while let Err(mpsc::RecvTimeoutError::Timeout) = told.recv_timeout(SYNC_EVERY) {
                    checkpoint("PASSIVE");
                }
                checkpoint("TRUNCATE");
            })
            .map_err(|e| format!("history: the sync thread: {e}"))?;
        Ok(Syncer { stop, thread })
    }

    /// A last checkpoint, then the thread ends (at shutdown: chatd may
    /// wait for it then).
    fn finish(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The loop's history: what this pass kept, committed in one transaction
/// by [`History::commit`] before the pass writes to clients; rooms
/// trimmed to their length in batches; the [`Syncer`].
pub struct History {
    store: HistoryStore,
    pending: Vec<Stored>,
    /// Events stored per room since it was last trimmed.
    since_trim: HashMap<String, usize>,
    syncer: Option<Syncer>,
    /// Commits that failed (a full disk, say): their events are lost to
    /// the file (memory still has them), and logged.
    pub failures: u64,
    /// When `--history-age` is next applied (the first pass: at once).
    pub expire_at: Option<std::time::Instant>,
}

/// A room is trimmed to its length after this many more events.
const TRIM_EVERY: usize = 256;

impl History {
    /// Opens the history file in `dir` (see [`HistoryStore::open`]) and
    /// starts the Syncer.
    pub fn open(dir: &Path) -> Result<History, String> {
        let store = HistoryStore::open(dir)?;
        let syncer = Syncer::start(store.path())?;
        Ok(History {
            store,
            pending: Vec::new(),
            since_trim: HashMap::new(),
            syncer: Some(syncer),
            failures: 0,
            expire_at: None,
        })
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// An event to store with this pass's commit.
    pub fn keep(&mut self, s: Stored) {
        self.pending.push(s);
    }

    /// Stores what this pass kept, in one transaction, then trims the
    /// rooms that grew by [`TRIM_EVERY`] to `keep(room)` events. An error
    /// is returned for the log; the events stay in memory.
    pub fn commit(&mut self, keep: impl Fn(&str) -> usize) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        if let Err(e) = self.store.append(&batch) {
            self.failures += 1;
            return Err(format!(
                "{e}; {} event(s) not stored (they stay in memory)",
                batch.len()
            ));
        }
        for s in &batch {
            *self.since_trim.entry(s.room.clone()).or_default() += 1;
        }
        let due: Vec<String> = self
            .since_trim
            .iter()
            .filter(|(_, n)| **n >= TRIM_EVERY)
            .map(|(r, _)| r.clone())
            .collect();
        for room in due {
            self.since_trim.remove(&room);
            self.store.trim(&room, keep(&room), 0)?;
        }
        Ok(())
    }

    /// A room's newest `n` events, oldest first.
    pub fn latest(&self, room: &str, n: usize) -> Result<Vec<Stored>, String> {
        self.store.latest(room, n)
    }

    /// `--history-age`: each of `rooms` (name, length) forgets what is
    /// older than `oldest_ms`; returns how many events went.
    pub fn expire(&mut self, rooms: &[(String, usize)], oldest_ms: i64) -> Result<usize, String> {
        let mut gone = 0;
        for (room, keep) in rooms {
            gone += self.store.trim(room, *keep, oldest_ms)?;
        }
        Ok(gone)
    }

    /// `chatctl room history`: a room's newest `n` events at or after
    /// `since_ms` (what this pass kept included), oldest first.
    pub fn read(
        &mut self,
        room: &str,
        n: usize,
        since_ms: i64,
        keep: impl Fn(&str) -> usize,
    ) -> Result<Vec<Stored>, String> {
        self.commit(keep)?;
        self.store.latest_since(room, n, since_ms)
    }

    /// `chatctl room purge`: a room's events older than `before_ms` are
    /// deleted (what this pass kept first stored, so it is purged too).
    pub fn purge(
        &mut self,
        room: &str,
        before_ms: i64,
        keep: impl Fn(&str) -> usize,
    ) -> Result<usize, String> {
        self.commit(keep)?;
        self.store.purge(room, before_ms)
    }

    /// At exit: what is pending is committed, the Syncer checkpoints a
    /// last time and ends.
    pub fn close(mut self, keep: impl Fn(&str) -> usize) -> Result<(), String> {
        let committed = self.commit(keep);
        if let Some(s) = self.syncer.take() {
            s.finish();
        }
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .before("A", "m26", 2)
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
        newer.execute_batch("PRAGMA user_version=2;").unwrap();
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
