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
//! Durability follows Redis's `appendfsync everysec`. What a pass kept is
//! copied into the journal ([`journal`], a shared memory map: no system
//! call) before the pass writes to any client, so whatever a client was
//! sent is in the operating system first and survives kill -9 of chatd;
//! the database takes the journal's events in one transaction every
//! [`COMMIT_EVERY`] (WAL, `synchronous=NORMAL`, no automatic checkpoint
//! on the loop's connection: a commit is a write(2), never an fsync), and
//! before anything reads the file. The one thread chatd has, the
//! [`Syncer`], only makes the database durable: a checkpoint of the WAL
//! into it, with fsyncs, about once a second on its own connection. The
//! journal is not fsynced: what it holds is at most [`COMMIT_EVERY`] old,
//! so a power cut may lose about the last second and a quarter; the loop
//! never waits for the disk.
//!
//! The file has an application id and a schema version: a file that is
//! not chatd's history, is damaged, or has a newer version is refused
//! with a clear message and never written, like rooms.json; a symlink in
//! its place is refused too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::core::chathistory::Select;

mod chunk;
pub mod journal;
mod store;

use chunk::Building;
use journal::Journal;

pub use chunk::Fields;
pub use store::{FILE, HistoryStore, SCHEMA_VERSION};

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
    /// A direct message's target as it was addressed ("" in a room).
    pub target: String,
}

impl Stored {
    /// The event as it was sent (its `ts` to the second).
    pub fn event(&self) -> crate::core::wire::Event {
        use crate::core::wire::{Event, EventKind};
        Event {
            kind: match self.kind {
                Kind::Message | Kind::Notice => EventKind::Message,
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
    /// A direct NOTICE (a direct message is a `Message`).
    Notice,
}

impl Kind {
    pub(crate) fn code(self) -> i64 {
        match self {
            Kind::Message => 0,
            Kind::Join => 1,
            Kind::Leave => 2,
            Kind::Notice => 3,
        }
    }

    pub(crate) fn from_code(c: i64) -> Option<Kind> {
        match c {
            0 => Some(Kind::Message),
            1 => Some(Kind::Join),
            2 => Some(Kind::Leave),
            3 => Some(Kind::Notice),
            _ => None,
        }
    }
}

/// One conversation in the file: a room's messages (joins and leaves
/// left out), or one account's direct messages with one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream<'a> {
    Room(&'a str),
    Direct { owner: &'a str, peer: &'a str },
}

/// A direct message to keep for one account (see [`History::keep_direct`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectCopy {
    pub owner: String,
    pub peer: String,
    pub peer_name: String,
    pub event: Stored,
}

/// How often the Syncer checkpoints: the most a power cut may lose.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long kept events wait in the journal for the database's commit.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);

/// Kept events past which the database commits at once.
const MAX_PENDING: usize = 20_000;

/// The write-ahead log's size past which the Syncer makes it start over
/// (and the size it is cut back to then: `journal_size_limit`).
pub const WAL_RESTART_AT: u64 = 16 << 20;

/// The thread that makes the history durable: it opens its own
/// connection and checkpoints the WAL into the database (fsyncing both)
/// every [`SYNC_EVERY`] when the loop committed since its last one (an
/// idle chatd's file is left alone, so an idle chatd uses no CPU), and
/// once more when told to stop. It writes no event and the loop never
/// waits for it.
pub struct Syncer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    /// `commits`: how many commits the loop has made (it only grows).
    fn start(path: &Path, commits: Arc<AtomicU64>) -> Result<Syncer, String> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let db = Connection::open_with_flags(path, flags)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        db.busy_timeout(Duration::from_secs(1))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (stop, told) = mpsc::channel::<()>();
        let wal_path = PathBuf::from(format!("{}-wal", path.display()));
        let thread = std::thread::Builder::new()
            .name("history-sync".into())
            .spawn(move || {
                let checkpoint = |mode: &str| {
                    let _ = db.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
                };
                let mut synced = 0;
                while let Err(mpsc::RecvTimeoutError::Timeout) = told.recv_timeout(SYNC_EVERY) {
                    let now = commits.load(Ordering::Relaxed);
                    if now == synced {
                        continue;
                    }
                    synced = now;
                    checkpoint("PASSIVE");
                    // Under steady traffic the loop commits while each
                    // checkpoint runs, so the log is never wholly copied
                    // and never starts over: past WAL_RESTART_AT, a
                    // RESTART copies the little left (holding the loop's
                    // next commit for that long, about one fsync) and the
                    // log starts again from its beginning.
                    let wal = std::fs::metadata(&wal_path).map_or(0, |m| m.len());
                    if wal > WAL_RESTART_AT {
                        checkpoint("RESTART");
                    }
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

/// The loop's history: what passes kept, in the journal before each
/// pass writes to clients ([`History::pass`]) and committed to the
/// database in one transaction every [`COMMIT_EVERY`]
/// ([`History::commit`]); rooms trimmed to their length in batches; the
/// [`Syncer`].
pub struct History {
    store: HistoryStore,
    journal: Journal,
    /// Events kept and not yet committed to the database, as chunks of
    /// at most [`chunk::EVENTS`] per room, encoded as they came (what
    /// each pass added goes to the journal); chunks left empty since the
    /// last commit are dropped at it.
    pending: Vec<Building>,
    /// Emptied chunks for reuse ([`SPARE`] at most).
    spare: Vec<Building>,
    /// How many events `pending` holds.
    pending_events: usize,
    /// The journal's last record, applied with the next commit.
    last_record: u64,
    /// When the oldest pending event was journaled.
    pending_since: Option<std::time::Instant>,
    /// Events read back from the journal at start (chatd had stopped
    /// before their commit), and the torn bytes left out.
    pub recovered: (usize, u64),
    pending_direct: Vec<DirectCopy>,
    /// Direct messages kept per account and peer (`--direct-history`).
    pub direct_keep: usize,
    /// Direct copies stored per (owner, peer) since it was last trimmed.
    direct_since_trim: HashMap<(String, String), usize>,
    /// Events stored per room since it was last trimmed.
    since_trim: HashMap<String, usize>,
    syncer: Option<Syncer>,
    /// Commits made, for the Syncer (which skips its checkpoint when
    /// there was none since its last).
    commits: Arc<AtomicU64>,
    /// Commits that failed (a full disk, say): their events are lost to
    /// the file (memory still has them), and logged.
    pub failures: u64,
    /// Events (and direct-message copies) stored since start.
    pub stored: u64,
    /// When `--history-age` is next applied (the first pass: at once).
    pub expire_at: Option<std::time::Instant>,
}

/// A room is trimmed to its length after this many more events.
const TRIM_EVERY: usize = 256;

/// Counts the events of a pass per conversation (`counts`: a
/// conversation and how many events it got), and returns the
/// conversations that reached [`TRIM_EVERY`] since they were last
/// trimmed (their counts start again).
fn due<K: std::hash::Hash + Eq + Clone>(
    since_trim: &mut HashMap<K, usize>,
    counts: impl Iterator<Item = (K, usize)>,
) -> Vec<K> {
    let mut due = Vec::new();
    for (k, count) in counts {
        let n = since_trim.entry(k.clone()).or_default();
        *n += count;
        if *n >= TRIM_EVERY {
            *n = 0;
            if !due.contains(&k) {
                due.push(k);
            }
        }
    }
    due
}

/// Events as chunks per room, in the order the rooms first appear (a
/// batch holds few rooms: a linear search).
pub(super) fn buildings(batch: &[Stored]) -> Vec<Building> {
    let (mut rooms, mut spare) = (Vec::new(), Vec::new());
    for s in batch {
        building(&mut rooms, &mut spare, &s.room).push(&s.fields());
    }
    rooms
}

/// `room`'s chunk among `rooms` that has room for an event, added when
/// it has none: a busy room's commit is several rows of at most
/// [`chunk::EVENTS`], so that trimming rewrites a small row, and no blob
/// is big enough to be a fresh memory map for SQLite and for malloc.
///
/// A room's open chunk is its last one (a full one is followed by a new
/// one), so the search starts from the end: a burst in one room finds it
/// at once rather than past every chunk it filled. A new one is an
/// emptied one from `spare` when there is one (its memory already
/// grown and touched).
fn building<'a>(
    rooms: &'a mut Vec<Building>,
    spare: &mut Vec<Building>,
    room: &str,
) -> &'a mut Building {
    match rooms.iter().rposition(|b| b.room == room) {
        Some(i) if rooms[i].n < chunk::EVENTS => &mut rooms[i],
        _ => {
            let b = match spare.pop() {
                Some(mut b) => {
                    b.reuse(room);
                    b
                }
                None => Building::new(room),
            };
            rooms.push(b);
            rooms.last_mut().expect("just pushed")
        }
    }
}

/// What retention would take out in the very commit that stores it is
/// not written: a room that got more events since the last commit than
/// it keeps (`keep`) loses its oldest chunks of them, whole, as long as
/// the rest still hold its newest `keep` events (each goes to `spare`).
/// Returns the rooms that lost some: every row they have in the file is
/// older still, and goes with the commit's trim. (A busy room writes
/// what it keeps, not everything it was sent; a room under its length
/// writes every event.)
fn past_retention(
    rooms: &mut Vec<Building>,
    spare: &mut Vec<Building>,
    keep: &impl Fn(&str) -> usize,
) -> Vec<String> {
    let mut left: HashMap<String, usize> = HashMap::new();
    for b in rooms.iter() {
        *left.entry(b.room.clone()).or_default() += b.n;
    }
    let mut cut: Vec<String> = Vec::new();
    for mut b in std::mem::take(rooms) {
        let k = keep(&b.room);
        let total = left.get_mut(&b.room).expect("counted above");
        if k == 0 || *total - b.n < k {
            rooms.push(b);
            continue;
        }
        *total -= b.n;
        if !cut.contains(&b.room) {
            cut.push(b.room.clone());
        }
        if spare.len() < SPARE {
            b.clear();
            spare.push(b);
        }
    }
    cut
}

/// Emptied chunks kept for reuse, at most (each at most
/// `chunk::KEEP_CAPACITY`).
const SPARE: usize = 64;

/// After a commit: every chunk emptied, one kept per room (so a room's
/// open chunk is again its last), and the others kept in `spare` for
/// the next burst, so that it neither allocates nor faults in memory.
fn emptied(rooms: &mut Vec<Building>, spare: &mut Vec<Building>) {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for mut b in std::mem::take(rooms) {
        b.clear();
        match seen.insert(b.room.clone()) {
            true => rooms.push(b),
            false if spare.len() < SPARE => spare.push(b),
            false => {}
        }
    }
}

impl History {
    /// Opens the history file in `dir` (see [`HistoryStore::open`]) and
    /// its journal, applies the journal's records the database lacks,
    /// and starts the Syncer.
    pub fn open(dir: &Path) -> Result<History, String> {
        let mut store = HistoryStore::open(dir)?;
        let applied = store.applied()?;
        let (mut journal, found) = Journal::open(dir, applied)?;
        let records: Vec<&journal::Record> = found
            .records
            .iter()
            .filter(|r| r.number > applied)
            .collect();
        let recovered = records.iter().map(|r| r.events.len()).sum();
        if let Some(last) = records.iter().map(|r| r.number).max() {
            store
                .atomically(|s| {
                    for r in &records {
                        s.append_room(&r.room, &r.events)?;
                    }
                    s.set_applied(last)
                })
                .map_err(|e| format!("{}: applying its records: {e}", journal.path().display()))?;
        }
        journal.clear()?;
        let commits = Arc::new(AtomicU64::new(0));
        let syncer = Syncer::start(store.path(), Arc::clone(&commits))?;
        Ok(History {
            commits,
            store,
            journal,
            pending_events: 0,
            last_record: 0,
            pending_since: None,
            recovered: (recovered, found.ignored),
            pending: Vec::new(),
            spare: Vec::new(),
            pending_direct: Vec::new(),
            direct_keep: 0,
            direct_since_trim: HashMap::new(),
            since_trim: HashMap::new(),
            syncer: Some(syncer),
            failures: 0,
            stored: 0,
            expire_at: None,
        })
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// An event to store with this pass's commit.
    pub fn keep(&mut self, s: Stored) {
        self.keep_fields(&s.room, &s.fields());
    }

    /// [`History::keep`] from borrowed fields: encoded at once, nothing
    /// copied but the bytes.
    pub fn keep_fields(&mut self, room: &str, e: &chunk::Fields) {
        building(&mut self.pending, &mut self.spare, room).push(e);
        self.pending_events += 1;
    }

    /// A direct message's copy for one account, with this pass's commit
    /// (nothing when `--direct-history` is 0).
    pub fn keep_direct(&mut self, d: DirectCopy) {
        if self.direct_keep > 0 {
            self.pending_direct.push(d);
        }
    }

    /// The end of a pass, before it writes to clients: what it kept goes
    /// to the journal (a copy into its map); a direct message, which the journal
    /// does not hold, to the database at once. An error is returned for
    /// the log; the events stay in memory.
    pub fn pass(
        &mut self,
        now: std::time::Instant,
        keep: impl Fn(&str) -> usize,
    ) -> Result<(), String> {
        if !self.pending_direct.is_empty() {
            return self.commit(keep);
        }
        match self.journal.append(&mut self.pending) {
            Ok(None) => Ok(()),
            Ok(Some(last)) => {
                self.last_record = last;
                self.pending_since.get_or_insert(now);
                Ok(())
            }
            // The database, then, at once (the disk may be full).
            Err(e) => self
                .commit(keep)
                .and(Err(format!("{e}; committed instead"))),
        }
    }

    /// After the pass wrote to clients (what it kept is in the journal
    /// already, so nobody waits for this): the database's commit, when
    /// the oldest event has waited [`COMMIT_EVERY`] or many wait.
    pub fn commit_if_due(
        &mut self,
        now: std::time::Instant,
        keep: impl Fn(&str) -> usize,
    ) -> Result<(), String> {
        let due = self.pending_since.is_some_and(|t| now >= t + COMMIT_EVERY);
        if due || self.pending_events >= MAX_PENDING {
            return self.commit(keep);
        }
        Ok(())
    }

    /// When the journal's events are due in the database (the loop wakes
    /// for it).
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.pending_since.map(|t| t + COMMIT_EVERY)
    }

    /// Stores what was kept and trims the rooms (and direct
    /// conversations) that grew by [`TRIM_EVERY`] to their length, all in
    /// one transaction, then empties the journal. An error is returned
    /// for the log; the events stay in memory.
    pub fn commit(&mut self, keep: impl Fn(&str) -> usize) -> Result<(), String> {
        if self.pending_events == 0 && self.pending_direct.is_empty() {
            return Ok(());
        }
        self.pending_since = None;
        let last_record = self.last_record;
        let events = std::mem::take(&mut self.pending_events);
        // Rooms quiet since the last commit go; the others keep their
        // chunk's memory for the next.
        for b in self.pending.extract_if(.., |b| b.n == 0) {
            if self.spare.len() < SPARE {
                self.spare.push(b);
            }
        }
        let cut = past_retention(&mut self.pending, &mut self.spare, &keep);
        let batch = &self.pending;
        let direct = std::mem::take(&mut self.pending_direct);
        let counts = batch.iter().map(|b| (b.room.clone(), b.n));
        let mut rooms_due = due(&mut self.since_trim, counts);
        for room in cut {
            self.since_trim.insert(room.clone(), 0);
            if !rooms_due.contains(&room) {
                rooms_due.push(room);
            }
        }
        let direct_due = due(
            &mut self.direct_since_trim,
            direct
                .iter()
                .map(|d| ((d.owner.clone(), d.peer.clone()), 1)),
        );
        let direct_keep = self.direct_keep;
        let done = self.store.atomically(|store| {
            store.insert_all(batch, &direct)?;
            if last_record > 0 {
                store.set_applied(last_record)?;
            }
            for room in &rooms_due {
                store.trim_in(room, keep(room), i64::MIN)?;
            }
            for (owner, peer) in &direct_due {
                store.trim_direct(owner, peer, direct_keep, 0)?;
            }
            Ok(())
        });
        emptied(&mut self.pending, &mut self.spare);
        if let Err(e) = done {
            self.failures += 1;
            return Err(format!(
                "{e}; {events} event(s) and {} direct message(s) not stored (events stay in memory)",
                direct.len()
            ));
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.stored += (events + direct.len()) as u64;
        self.journal.clear()
    }

    /// A room's newest `n` events in the file, oldest first (what waits
    /// in the journal is not there: [`History::commit`] first).
    pub fn latest(&self, room: &str, n: usize) -> Result<Vec<Stored>, String> {
        self.store.latest(room, n)
    }

    /// Retention by age: each of `rooms` (name, length, the oldest time
    /// it keeps, Unix ms) forgets what is older; with the server's age
    /// limit (`server_oldest_ms`), so do direct messages and the rooms
    /// not among `own_age` (the rooms with their own limit), gone ones
    /// included. Returns how many events went.
    pub fn expire(
        &mut self,
        rooms: &[(String, usize, i64)],
        own_age: &[String],
        server_oldest_ms: Option<i64>,
    ) -> Result<usize, String> {
        let mut gone = 0;
        for (room, keep, oldest_ms) in rooms {
            gone += self.store.trim(room, *keep, *oldest_ms)?;
        }
        if let Some(oldest) = server_oldest_ms {
            gone += self.store.expire_direct(oldest)?;
            gone += self.store.expire_others(oldest, own_age)?;
        }
        self.wrote(gone);
        Ok(gone)
    }

    /// `--history-size` (see [`HistoryStore::bound_size`]).
    pub fn bound_size(&mut self, limit: u64) -> Result<usize, String> {
        let gone = self.store.bound_size(limit)?;
        self.wrote(gone);
        Ok(gone)
    }

    /// Tells the Syncer the file changed, when `n` events went from it.
    fn wrote(&self, n: usize) {
        if n > 0 {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// CHATHISTORY on one conversation (what this pass kept included).
    pub fn window(
        &mut self,
        stream: Stream,
        select: &Select,
        limit: usize,
        keep: impl Fn(&str) -> usize,
    ) -> Result<Vec<Stored>, String> {
        self.commit(keep)?;
        self.store.window(stream, select, limit)
    }

    /// CHATHISTORY TARGETS (see [`HistoryStore::targets`]).
    pub fn targets(
        &mut self,
        owner: Option<&str>,
        rooms: &[String],
        span: (i64, i64),
        limit: usize,
        keep: impl Fn(&str) -> usize,
    ) -> Result<Vec<(String, bool, i64)>, String> {
        self.commit(keep)?;
        self.store.targets(owner, rooms, span.0, span.1, limit)
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
        let gone = self.store.purge(room, before_ms)?;
        self.wrote(gone);
        Ok(gone)
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

    #[test]
    fn a_busy_room_is_several_chunks_in_order_and_rooms_keep_apart() {
        let mut rooms = Vec::new();
        let fields = |i: i64| Fields {
            kind: Kind::Message,
            at_ms: i,
            msgid: "m",
            name: "Ana",
            body: "oi",
        };
        let mut spare = Vec::new();
        for i in 0..600 {
            building(&mut rooms, &mut spare, "A").push(&fields(i));
            if i % 100 == 0 {
                building(&mut rooms, &mut spare, "B").push(&fields(i));
            }
        }
        let shape: Vec<(&str, usize, i64)> = rooms
            .iter()
            .map(|b| (b.room.as_str(), b.n, b.first_ms))
            .collect();
        assert_eq!(
            shape,
            [("A", 256, 0), ("B", 6, 0), ("A", 256, 256), ("A", 88, 512)]
        );
        // Emptied by a commit, a room keeps one chunk and fills it again.
        // The other two wait in `spare`, and a new chunk is one of them.
        emptied(&mut rooms, &mut spare);
        let left: Vec<(&str, usize)> = rooms.iter().map(|b| (b.room.as_str(), b.n)).collect();
        assert_eq!(left, [("A", 0), ("B", 0)]);
        assert_eq!(spare.len(), 2);
        building(&mut rooms, &mut spare, "A").push(&fields(7));
        building(&mut rooms, &mut spare, "B").push(&fields(8));
        assert_eq!((rooms.len(), rooms[0].n, rooms[1].n), (2, 1, 1));
        building(&mut rooms, &mut spare, "C").push(&fields(9));
        assert_eq!(
            (rooms[2].room.as_str(), rooms[2].n, spare.len()),
            ("C", 1, 1)
        );
    }

    #[test]
    fn only_whole_chunks_past_a_rooms_length_are_left_out() {
        let fields = Fields {
            kind: Kind::Message,
            at_ms: 1,
            msgid: "m",
            name: "Ana",
            body: "oi",
        };
        let (mut rooms, mut spare) = (Vec::new(), Vec::new());
        for _ in 0..600 {
            building(&mut rooms, &mut spare, "A").push(&fields);
        }
        for _ in 0..300 {
            building(&mut rooms, &mut spare, "B").push(&fields);
        }
        // A keeps 300 (its first chunk holds none of them), B keeps 300
        // (it has just that many: nothing goes).
        let cut = past_retention(&mut rooms, &mut spare, &|_: &str| 300);
        assert_eq!(cut, ["A"]);
        let shape: Vec<(&str, usize)> = rooms.iter().map(|b| (b.room.as_str(), b.n)).collect();
        assert_eq!(shape, [("A", 256), ("A", 88), ("B", 256), ("B", 44)]);
        assert_eq!((spare.len(), spare[0].n), (1, 0), "emptied, for reuse");
        // A room that keeps none is left to the trim.
        assert!(past_retention(&mut rooms, &mut spare, &|_: &str| 0).is_empty());
    }

    #[test]
    fn a_burst_past_retention_writes_only_what_is_kept() {
        let d = std::env::temp_dir().join(format!("chatd-history-burst-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut h = History::open(&d).unwrap();
        let ids: Vec<String> = (0..700).map(|i| format!("m{i:04}")).collect();
        let keep = |i: usize, h: &mut History| {
            let f = Fields {
                kind: Kind::Message,
                at_ms: i as i64,
                msgid: &ids[i],
                name: "Ana",
                body: "oi",
            };
            h.keep_fields("A", &f);
        };
        for i in 0..100 {
            keep(i, &mut h);
        }
        h.keep_fields(
            "B",
            &Fields {
                kind: Kind::Message,
                at_ms: 0,
                msgid: "b0",
                name: "Yan",
                body: "quiet",
            },
        );
        h.commit(|_| 300).unwrap();
        // 600 more in one commit: chunks of 256, 256 and 88, of which
        // the first holds none of the newest 300.
        for i in 100..700 {
            keep(i, &mut h);
        }
        let shape: Vec<usize> = h
            .pending
            .iter()
            .filter(|b| b.room == "A")
            .map(|b| b.n)
            .collect();
        assert_eq!(shape, [256, 256, 88]);
        h.commit(|_| 300).unwrap();
        let a = h.latest("A", 10_000).unwrap();
        assert_eq!(a.len(), 300, "the room's length, and nothing older");
        assert_eq!(a.first().unwrap().msgid, "m0400");
        assert_eq!(a.last().unwrap().msgid, "m0699");
        assert_eq!(
            h.latest("B", 10).unwrap().len(),
            1,
            "another room keeps its own"
        );
        drop(h);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
