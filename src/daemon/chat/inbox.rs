//! A backed-up room's queue of deliveries that wait until its members
//! here have read enough (cluster mode).
//!
//! When a member here is backed up, this node holds the room back: its
//! own senders are not read, and the other nodes are asked to stop too
//! (a hold event through Redis). A hold takes time to travel, and what
//! other nodes publish meanwhile still arrives. Without a queue it would
//! go straight into the members' output and push a reader who keeps
//! reading over `--sendq`. The inbox keeps it instead: one copy per room,
//! not per member, up to a bound ([`Inbox::BOUND_PER_SENDQ`] times
//! `--sendq`). Delivery resumes, in order, when the room's members are
//! below the high-water mark again; while anything waits, everything
//! for the room (joins, leaves, its own messages) queues behind it, so
//! order is kept.
//!
//! Invariant: an inbox is never empty (an emptied one is removed by its
//! owner), and its byte count is the sum of its lines' lengths.

use std::collections::VecDeque;

use crate::core::hub::ConnId;
use crate::core::wire::Event;

/// One delivery that waits: the line in the prototype's protocol, the
/// event (for the IRC recipients, rendered when it goes out) and who it
/// was for.
#[derive(Debug, PartialEq, Eq)]
pub struct Waiting {
    pub to: Vec<ConnId>,
    pub line: Vec<u8>,
    pub event: Event,
}

#[derive(Debug, Default)]
pub struct Inbox {
    waiting: VecDeque<Waiting>,
    bytes: usize,
}

impl Inbox {
    /// How many `--sendq`s of other nodes' messages a held room keeps.
    pub const BOUND_PER_SENDQ: usize = 8;

    /// Queues a delivery behind the others.
    pub fn push(&mut self, to: Vec<ConnId>, line: Vec<u8>, event: Event) {
        self.bytes += line.len();
        self.waiting.push_back(Waiting { to, line, event });
    }

    /// Whether `len` more bytes stay within `bound`.
    pub fn fits(&self, len: usize, bound: usize) -> bool {
        self.bytes + len <= bound
    }

    /// The oldest delivery, if any.
    pub fn pop(&mut self) -> Option<Waiting> {
        let w = self.waiting.pop_front()?;
        self.bytes -= w.line.len();
        Some(w)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_counts_bytes() {
        let mut inbox = Inbox::default();
        inbox.push(vec![1], b"one\n".to_vec(), Event::default());
        inbox.push(vec![1, 2], b"two!\n".to_vec(), Event::default());
        assert_eq!(inbox.bytes(), 9);
        assert!(inbox.fits(1, 10));
        assert!(!inbox.fits(2, 10));
        let first = inbox.pop().unwrap();
        assert_eq!((first.to, first.line), (vec![1], b"one\n".to_vec()));
        assert_eq!(inbox.bytes(), 5);
        assert_eq!(inbox.pop().unwrap().to, vec![1, 2]);
        assert!(inbox.is_empty());
        assert_eq!(inbox.bytes(), 0);
        assert!(inbox.pop().is_none());
    }
}
