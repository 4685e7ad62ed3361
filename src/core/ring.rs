//! A room's output, encoded once: the [`Ring`] holds the room's lines in
//! order, and each member reading from it keeps a [`Feed`], a cursor into
//! it. A write sends a member's span straight from the ring, so a line for
//! a hundred members is copied once (here) and then only by the kernel.
//!
//! Offsets are absolute (bytes since the ring was made), so a cursor stays
//! valid while the ring lets go of what every member has written
//! ([`Ring::release`]). A line that is not for one member (its own
//! message) is a skip in that member's feed: the member's spans go around
//! it. Pure data: no sockets, no clock.

use std::collections::VecDeque;

/// The written prefix is given back once it is this large and more than
/// half of what the ring holds.
const RECLAIM: usize = 64 * 1024;

/// A room's lines, from absolute offset `base` on.
#[derive(Debug, Default)]
pub struct Ring {
    bytes: Vec<u8>,
    base: u64,
}

impl Ring {
    /// The offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.base
    }

    /// Where `span`, a slice [`Ring::bytes`] or [`Feed::spans`] gave,
    /// starts.
    pub fn offset_of(&self, span: &[u8]) -> u64 {
        self.base + (span.as_ptr() as usize - self.bytes.as_ptr() as usize) as u64
    }

    /// The offset just past the newest line.
    pub fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Appends one line; returns where it starts and ends.
    pub fn push(&mut self, line: &[u8]) -> (u64, u64) {
        let start = self.end();
        self.bytes.extend_from_slice(line);
        (start, self.end())
    }

    /// The bytes between two offsets (cut to what the ring holds).
    pub fn bytes(&self, from: u64, to: u64) -> &[u8] {
        let lo = from.saturating_sub(self.base) as usize;
        let hi = to.saturating_sub(self.base) as usize;
        let hi = hi.min(self.bytes.len());
        &self.bytes[lo.min(hi)..hi]
    }

    /// Every reader's cursor is at or past `upto`: what lies before it may
    /// go. An emptied ring keeps its buffer only up to `keep` bytes of
    /// capacity.
    pub fn release(&mut self, upto: u64, keep: usize) {
        let upto = upto.min(self.end());
        if upto == self.end() {
            self.base = upto;
            if self.bytes.capacity() > keep {
                self.bytes = Vec::new();
            } else {
                self.bytes.clear();
            }
            return;
        }
        let dead = (upto - self.base) as usize;
        if dead > RECLAIM && dead * 2 > self.bytes.len() {
            self.bytes.drain(..dead);
            self.base = upto;
        }
    }

    /// Bytes held (written or not).
    pub fn held(&self) -> usize {
        self.bytes.len()
    }
}

/// One member's place in its room's ring: everything from `cursor` to the
/// ring's end is its output, but for the skips (lines not for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    cursor: u64,
    /// Ranges past the cursor to leave out, oldest first, not overlapping.
    skips: VecDeque<(u64, u64)>,
    /// Their total length.
    skipped: u64,
}

impl Feed {
    /// A feed that starts at `end`: only what comes next is for it.
    pub fn at(end: u64) -> Feed {
        Feed {
            cursor: end,
            skips: VecDeque::new(),
            skipped: 0,
        }
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The line at `start..end` (the newest) is not for this member.
    pub fn skip(&mut self, start: u64, end: u64) {
        if end <= start || end <= self.cursor {
            return;
        }
        let start = start.max(self.cursor);
        if self.cursor == start && self.skips.is_empty() {
            // Nothing waits before it: step over it at once.
            self.cursor = end;
            return;
        }
        match self.skips.back_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.skips.push_back((start, end)),
        }
        self.skipped += end - start;
    }

    /// Bytes waiting for this member in a ring that ends at `end`.
    pub fn pending(&self, end: u64) -> usize {
        (end.saturating_sub(self.cursor).saturating_sub(self.skipped)) as usize
    }

    /// The waiting bytes as spans of `ring`, at most `out.len()` of them;
    /// returns how many were filled.
    pub fn spans<'a>(&self, ring: &'a Ring, out: &mut [&'a [u8]]) -> usize {
        let end = ring.end();
        let mut at = self.cursor;
        let mut n = 0;
        for &(s, e) in self.skips.iter().chain(std::iter::once(&(end, end))) {
            if n == out.len() {
                break;
            }
            if s > at {
                out[n] = ring.bytes(at, s);
                n += 1;
            }
            at = e;
        }
        n
    }

    /// `n` of the waiting bytes were written: the cursor moves past them
    /// (and past any skip it reaches).
    pub fn advance(&mut self, mut n: usize) {
        loop {
            if let Some(&(s, e)) = self.skips.front()
                && self.cursor >= s
            {
                self.cursor = self.cursor.max(e);
                self.skipped -= e - s;
                self.skips.pop_front();
                continue;
            }
            if n == 0 {
                return;
            }
            let room = match self.skips.front() {
                Some(&(s, _)) => (s - self.cursor) as usize,
                None => n,
            };
            let step = room.min(n);
            self.cursor += step as u64;
            n -= step;
        }
    }

    /// Moves everything waiting into `into` (a line of the member's own is
    /// to follow it); the feed is then at the ring's end.
    pub fn take_all(&mut self, ring: &Ring, into: &mut Vec<u8>) {
        self.take_upto(ring, usize::MAX, into);
        *self = Feed::at(ring.end());
    }

    /// Moves the first `max` waiting bytes (or all there are) into `into`,
    /// as if written.
    pub fn take_upto(&mut self, ring: &Ring, mut max: usize, into: &mut Vec<u8>) {
        let mut spans: [&[u8]; 8] = [&[]; 8];
        while max > 0 {
            let n = self.spans(ring, &mut spans);
            if n == 0 {
                break;
            }
            let mut moved = 0;
            for s in &spans[..n] {
                let s = &s[..s.len().min(max - moved)];
                into.extend_from_slice(s);
                moved += s.len();
                if moved == max {
                    break;
                }
            }
            self.advance(moved);
            max -= moved;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(f: &Feed, r: &Ring) -> Vec<u8> {
        let mut spans: [&[u8]; 4] = [&[]; 4];
        let n = f.spans(r, &mut spans);
        spans[..n].concat()
    }

    #[test]
    fn a_feed_gives_up_its_first_bytes_around_its_skips() {
        let mut r = Ring::default();
        let mut f = Feed::at(r.end());
        r.push(b"one\n");
        let (s, e) = r.push(b"mine\n");
        f.skip(s, e);
        r.push(b"two\n");
        let mut got = Vec::new();
        f.take_upto(&r, 6, &mut got);
        assert_eq!(got, b"one\ntw");
        assert_eq!(waiting(&f, &r), b"o\n");
        f.take_upto(&r, 100, &mut got);
        assert_eq!(got, b"one\ntwo\n");
        assert_eq!(f.pending(r.end()), 0);
    }

    #[test]
    fn a_feed_sees_what_came_after_it_without_its_skips() {
        let mut r = Ring::default();
        r.push(b"old\n");
        let mut f = Feed::at(r.end());
        r.push(b"a\n");
        let (s, e) = r.push(b"mine\n");
        f.skip(s, e);
        r.push(b"b\n");
        assert_eq!(waiting(&f, &r), b"a\nb\n");
        assert_eq!(f.pending(r.end()), 4);
        f.advance(1);
        assert_eq!(waiting(&f, &r), b"\nb\n");
        f.advance(1);
        // At the skip's start: stepped over.
        assert_eq!(f.cursor(), e);
        assert_eq!(f.pending(r.end()), 2);
        f.advance(2);
        assert_eq!(f.pending(r.end()), 0);
        assert_eq!(waiting(&f, &r), b"");
    }

    #[test]
    fn a_skip_at_the_cursor_is_stepped_over_at_once() {
        let mut r = Ring::default();
        let mut f = Feed::at(r.end());
        let (s, e) = r.push(b"mine\n");
        f.skip(s, e);
        assert_eq!(f.cursor(), e);
        assert_eq!(f.pending(r.end()), 0);
        let (s2, e2) = r.push(b"x\n");
        let (s3, e3) = r.push(b"mine too\n");
        f.skip(s3, e3);
        assert_eq!(f.pending(r.end()), (e2 - s2) as usize);
    }

    #[test]
    fn take_all_moves_the_waiting_bytes_and_ends_at_the_end() {
        let mut r = Ring::default();
        let mut f = Feed::at(0);
        for i in 0..20u8 {
            let (s, e) = r.push(&[b'a' + i, b'\n']);
            if i % 3 == 0 {
                f.skip(s, e);
            }
        }
        let mut own = b"x".to_vec();
        f.take_all(&r, &mut own);
        let want: Vec<u8> = (0..20u8)
            .filter(|i| i % 3 != 0)
            .flat_map(|i| [b'a' + i, b'\n'])
            .collect();
        assert_eq!(&own[1..], &want[..]);
        assert_eq!(f, Feed::at(r.end()));
    }

    #[test]
    fn release_keeps_the_offsets_and_frees_an_emptied_ring() {
        let mut r = Ring::default();
        let big = vec![b'x'; 100 * 1024];
        r.push(&big);
        let f = Feed::at(r.end() - 10);
        r.push(b"tail\n");
        r.release(f.cursor(), 0);
        assert_eq!(r.held(), 15);
        assert_eq!(r.bytes(f.cursor(), r.end()), b"xxxxxxxxxxtail\n");
        r.release(r.end(), 0);
        assert_eq!(r.held(), 0);
        assert_eq!(r.bytes.capacity(), 0);
        let (s, _) = r.push(b"next\n");
        assert_eq!(s, 100 * 1024 + 5);
    }

    #[test]
    fn spans_stop_at_the_array_and_advance_crosses_many_skips() {
        let mut r = Ring::default();
        let mut f = Feed::at(0);
        for i in 0..10 {
            let (s, e) = r.push(b"ab");
            if i % 2 == 1 {
                f.skip(s, e);
            }
        }
        let mut two: [&[u8]; 2] = [&[]; 2];
        assert_eq!(f.spans(&r, &mut two), 2);
        assert_eq!(f.pending(r.end()), 10);
        f.advance(7);
        assert_eq!(f.pending(r.end()), 3);
        assert_eq!(waiting(&f, &r), b"bab");
    }
}
