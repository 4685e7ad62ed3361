//! The logbook: every log entry goes to one sink (stderr, or syslog; see
//! [`super::logsink`], which never blocks) and into an in-memory ring that
//! `chatctl logs` reads; entries not yet handed to `logs --follow` readers
//! wait in a queue the event loop drains each pass.
//!
//! Entries come in two kinds, each in its own ring of `--log-capacity`:
//! the daemon's own (start-up, admin commands, reload, cluster, security
//! summaries) and per-client lines (connections, joins, leaves, refusals,
//! failed logins). Per-client lines are limited per address
//! ([`CLIENT_LINES`], exempt addresses aside), and their ring is the only
//! one they can push entries out of: a client that connects a thousand
//! times a second cannot evict what an operator did.
//!
//! Entry text is made single-line and free of control characters here, so
//! nothing a client sends can forge log lines or drive an operator's
//! terminal.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::Instant;

pub use super::logsink::Sink;
pub use crate::core::control::Level;
use crate::core::control::LogEntry;
use crate::core::fair::{AddressKey, Bucket, Lru, Rate};
use crate::core::text;
use crate::timefmt;

/// syslog(3) priority, also used as the `<N>` prefix journald reads.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Increases by one per entry; lets followers resume without duplicates.
    pub seq: u64,
    pub ts: String,
    pub level: Level,
    pub message: String,
}

impl Entry {
    /// The entry as the control protocol shows it.
    pub fn view(&self) -> LogEntry {
        LogEntry {
            ts: self.ts.clone(),
            level: self.level,
            message: self.message.clone(),
        }
    }
}

/// Per-client lines one address may cause: 20 at once, then one a second.
pub const CLIENT_LINES: Rate = Rate {
    per_sec: 1.0,
    burst: 20.0,
};

/// Addresses whose line budget is remembered (the least recently seen
/// are forgotten first).
const ADDRESSES_TRACKED: usize = 4096;

/// One address's line budget and the lines it lost since the last one
/// that passed.
struct Quota {
    bucket: Bucket,
    suppressed: u64,
}

pub struct Logbook {
    /// The daemon's own entries.
    ring: VecDeque<Entry>,
    /// Per-client lines.
    clients: VecDeque<Entry>,
    capacity: usize,
    quotas: Lru<AddressKey, Quota>,
    /// Per-client lines not logged since start, over [`CLIENT_LINES`].
    pub suppressed: u64,
    sink: Sink,
    unsent: Vec<Entry>,
    last_seq: u64,
    /// Entries less severe than this stay out of the sink (not the ring).
    min_level: Level,
}

/// How severe a level is: the larger, the more.
fn severity(level: Level) -> u8 {
    7 - priority(level)
}

impl Logbook {
    pub fn new(sink: Sink, capacity: usize, min_level: Level) -> Logbook {
        Logbook {
            ring: VecDeque::with_capacity(capacity.min(4096)),
            clients: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            quotas: Lru::new(ADDRESSES_TRACKED),
            suppressed: 0,
            sink,
            unsent: Vec::new(),
            last_seq: 0,
            min_level,
        }
    }

    /// A new sink (SIGHUP changed `--log-target`). The old one gets one
    /// more write that cannot block; the bytes it still held are lost and
    /// counted in the result.
    pub fn set_sink(&mut self, sink: Sink) -> usize {
        let mut old = std::mem::replace(&mut self.sink, sink);
        old.flush();
        old.queued_bytes()
    }

    pub fn set_min_level(&mut self, level: Level) {
        self.min_level = level;
    }

    /// Keeps the newest `capacity` entries from now on.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.ring.len() > self.capacity {
            self.ring.pop_front();
        }
        while self.clients.len() > self.capacity {
            self.clients.pop_front();
        }
    }

    pub fn info(&mut self, message: impl Into<String>) {
        self.log(Level::Info, message.into());
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.log(Level::Warn, message.into());
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.log(Level::Error, message.into());
    }

    pub fn log(&mut self, level: Level, message: String) {
        self.push(false, level, message);
    }

    /// A line about one client from `from` (`None`: an exempt address,
    /// never limited). Over the address's [`CLIENT_LINES`] the line is
    /// dropped and counted; the next one that passes says how many were.
    pub fn client(
        &mut self,
        now: Instant,
        from: Option<AddressKey>,
        level: Level,
        message: String,
    ) {
        let Some(key) = from else {
            return self.push(true, level, message);
        };
        let quota = self.quotas.entry(key, || Quota {
            bucket: Bucket::full(now, CLIENT_LINES),
            suppressed: 0,
        });
        if quota.bucket.take(now, CLIENT_LINES).is_err() {
            quota.suppressed += 1;
            self.suppressed += 1;
            return;
        }
        let message = match std::mem::take(&mut quota.suppressed) {
            0 => message,
            n => format!(
                "{message} [{n} earlier line(s) about {key} not logged: over {} a second]",
                CLIENT_LINES.per_sec
            ),
        };
        self.push(true, level, message);
    }

    fn push(&mut self, client: bool, level: Level, message: String) {
        self.last_seq += 1;
        let entry = Entry {
            seq: self.last_seq,
            ts: timefmt::rfc3339(timefmt::unix_now()),
            level,
            message: text::printable(&message),
        };
        if severity(level) >= severity(self.min_level) {
            self.sink
                .push(priority(level), level.label(), &entry.ts, &entry.message);
        }
        let ring = if client {
            &mut self.clients
        } else {
            &mut self.ring
        };
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry.clone());
        self.unsent.push(entry);
    }

    /// The newest `limit` entries of both rings, oldest first.
    pub fn recent(&self, limit: usize) -> impl Iterator<Item = &Entry> {
        let mut all: Vec<&Entry> = self.ring.iter().chain(self.clients.iter()).collect();
        all.sort_unstable_by_key(|e| e.seq);
        let skip = all.len().saturating_sub(limit);
        all.into_iter().skip(skip)
    }

    /// The sequence number of the newest entry (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Entries logged since the last call, for `logs --follow` readers.
    pub fn take_unsent(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.unsent)
    }

    /// Writes what the sink takes without blocking; when a backlog has
    /// drained after drops, logs how many entries the sink missed.
    pub fn flush_sink(&mut self) {
        if let Some(dropped) = self.sink.flush() {
            self.warn(format!(
                "{dropped} log entries dropped: the log sink was not keeping up (chatctl logs has them)"
            ));
            self.sink.flush();
        }
    }

    /// The sink's descriptor while it is blocked with entries waiting.
    pub fn sink_blocked_fd(&self) -> Option<RawFd> {
        self.sink.blocked_fd()
    }

    /// select(2) reported the sink writable.
    pub fn sink_writable(&mut self) {
        self.sink.writable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ring_keeps_the_newest_and_follow_queue_drains() {
        let mut log = Logbook::new(Sink::none(), 3, Level::Info);
        for i in 0..5 {
            log.info(format!("e{i}"));
        }
        let all: Vec<&str> = log.recent(100).map(|e| e.message.as_str()).collect();
        assert_eq!(all, ["e2", "e3", "e4"]);
        let two: Vec<&str> = log.recent(2).map(|e| e.message.as_str()).collect();
        assert_eq!(two, ["e3", "e4"]);
        assert_eq!(log.take_unsent().len(), 5);
        assert!(log.take_unsent().is_empty());
    }

    #[test]
    fn client_lines_cannot_evict_the_daemon_s_and_are_limited_per_address() {
        let t = Instant::now();
        let mut log = Logbook::new(Sink::none(), 3, Level::Info);
        log.info("room created");
        let a = Some(AddressKey::of("192.0.2.1".parse().unwrap()));
        let b = Some(AddressKey::of("192.0.2.2".parse().unwrap()));
        for i in 0..100 {
            log.client(t, a, Level::Info, format!("a{i}"));
        }
        assert_eq!(log.suppressed, 80);
        log.client(t, b, Level::Info, "b0".into());
        log.client(t, None, Level::Info, "exempt".into());
        let all: Vec<&str> = log.recent(100).map(|e| e.message.as_str()).collect();
        assert_eq!(all, ["room created", "a19", "b0", "exempt"]);
        // A second later, one more line from a, saying what it lost.
        log.client(t + Duration::from_secs(1), a, Level::Info, "a-late".into());
        let last = log.recent(1).next().unwrap();
        assert!(
            last.message
                .starts_with("a-late [80 earlier line(s) about 192.0.2.1"),
            "{}",
            last.message
        );
        // The entries still come out in order and follow readers get all.
        let seqs: Vec<u64> = log.recent(100).map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(log.take_unsent().len(), 24);
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut log = Logbook::new(Sink::none(), 3, Level::Info);
        log.warn("a\nb\x1b[31m");
        let e = log.recent(1).next().unwrap();
        assert_eq!(e.message, "a\\u{a}b\\u{1b}[31m");
        assert_eq!(e.level, Level::Warn);
    }
}
