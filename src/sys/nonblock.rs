//! Non-blocking reads and writes in one system call each: "would block"
//! and "interrupted" are not errors, they are "nothing this time".

use std::io::{self, Read, Write};

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// What one read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    Eof,
    WouldBlock,
}

/// One read(2) into `buf`.
pub fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    match r.read(buf) {
        Ok(0) => Ok(ReadOutcome::Eof),
        Ok(n) => Ok(ReadOutcome::Data(n)),
        Err(e) if would_block(&e) || interrupted(&e) => Ok(ReadOutcome::WouldBlock),
        Err(e) => Err(e),
    }
}

/// One write(2) of `bytes`; how many the socket took (0 when it is full).
pub fn write_some(w: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    if bytes.is_empty() {
        return Ok(0);
    }
    match w.write(bytes) {
        Ok(n) => Ok(n),
        Err(e) if would_block(&e) || interrupted(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Parts one [`write_some_vectored`] sends at most (the rest wait).
pub const MAX_PARTS: usize = 17;

/// One writev(2) of `parts` in order; how many bytes the socket took (0
/// when it is full).
pub fn write_some_vectored(w: &mut impl Write, parts: &[&[u8]]) -> io::Result<usize> {
    let mut slices = [io::IoSlice::new(&[]); MAX_PARTS];
    let mut n = 0;
    for part in parts.iter().filter(|p| !p.is_empty()).take(slices.len()) {
        slices[n] = io::IoSlice::new(part);
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    if n == 1 {
        // One part: a plain write(2), the kernel's cheaper path.
        return write_some(w, &slices[0]);
    }
    match w.write_vectored(&slices[..n]) {
        Ok(n) => Ok(n),
        Err(e) if would_block(&e) || interrupted(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// One write of a buffer's front; what was taken leaves the buffer.
/// Returns the number of bytes written.
pub fn flush_once(w: &mut impl Write, out: &mut Vec<u8>) -> io::Result<usize> {
    let n = write_some(w, out)?;
    out.drain(..n);
    Ok(n)
}
