//! The logbook: every log entry goes to one sink (stderr, or syslog; see
//! [`super::logsink`], which never blocks) and into an in-memory ring that
//! `chatctl logs` reads; entries not yet handed to `logs --follow` readers
//! wait in a queue the event loop drains each pass.
//!
//! Entry text is made single-line and free of control characters here, so
//! nothing a client sends can forge log lines or drive an operator's
//! terminal.

use std::collections::VecDeque;
use std::os::fd::RawFd;

pub use super::logsink::Sink;
pub use crate::core::control::Level;
use crate::core::control::LogEntry;
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

pub struct Logbook {
    ring: VecDeque<Entry>,
    capacity: usize,
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
            capacity: capacity.max(1),
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
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(entry.clone());
        self.unsent.push(entry);
    }

    /// The newest `limit` entries, oldest first.
    pub fn recent(&self, limit: usize) -> impl Iterator<Item = &Entry> {
        self.ring.iter().skip(self.ring.len().saturating_sub(limit))
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
    fn control_characters_are_escaped() {
        let mut log = Logbook::new(Sink::none(), 3, Level::Info);
        log.warn("a\nb\x1b[31m");
        let e = log.recent(1).next().unwrap();
        assert_eq!(e.message, "a\\u{a}b\\u{1b}[31m");
        assert_eq!(e.level, Level::Warn);
    }
}
