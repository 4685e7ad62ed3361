//! A bounded line splitter: bytes in, complete lines out, never more than
//! `max` bytes of one line kept. A longer line is reported once as
//! [`Line::TooLong`] and skipped up to its newline, so the stream stays in
//! step. Used for control requests (chatd) and event lines (the client).
//! Pure.

/// What [`LineBuffer::next_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline.
    Complete(Vec<u8>),
    /// A line longer than the bound (its bytes are discarded).
    TooLong,
}

#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Discarding the rest of an over-long line.
    skipping: bool,
}

impl LineBuffer {
    pub fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held (a partial line, or complete lines not yet taken).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether a complete line is waiting.
    pub fn has_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf).is_some()
    }

    /// The next complete line, or `TooLong` once for an over-long one.
    pub fn next_line(&mut self) -> Option<Line> {
        while let Some(nl) = memchr::memchr(b'\n', &self.buf) {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.len() > self.max {
                return Some(Line::TooLong);
            }
            return Some(Line::Complete(line));
        }
        if self.buf.len() > self.max {
            self.buf.clear();
            if !std::mem::replace(&mut self.skipping, true) {
                return Some(Line::TooLong);
            }
        } else if self.skipping {
            self.buf.clear();
        }
        None
    }

    /// At end of input: the last line if it had no newline (and was not
    /// being skipped).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.skipping || self.buf.is_empty() {
            self.buf.clear();
            return None;
        }
        Some(std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut b = LineBuffer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            b.push(c);
            while let Some(l) = b.next_line() {
                out.push(l);
            }
        }
        if let Some(last) = b.finish() {
            out.push(Line::Complete(last));
        }
        out
    }

    #[test]
    fn splits_in_any_chunking() {
        let whole = b"one\ntwo\n\nthree";
        let want = vec![
            Line::Complete(b"one".to_vec()),
            Line::Complete(b"two".to_vec()),
            Line::Complete(Vec::new()),
            Line::Complete(b"three".to_vec()),
        ];
        assert_eq!(lines(100, &[whole]), want);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(lines(100, &bytes), want);
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_skipped() {
        let long = vec![b'x'; 50];
        let got = lines(10, &[&long, &long, b"\nok\n"]);
        assert_eq!(got, vec![Line::TooLong, Line::Complete(b"ok".to_vec())]);
        let got = lines(10, &[b"01234567890123\nok\n"]);
        assert_eq!(got, vec![Line::TooLong, Line::Complete(b"ok".to_vec())]);
        // The memory held never exceeds the bound by more than one push.
        let mut b = LineBuffer::new(10);
        for _ in 0..100 {
            b.push(&long);
            while b.next_line().is_some() {}
            assert!(b.len() <= 10);
        }
    }
}
