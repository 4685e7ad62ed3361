//! One chat client connection: its phase, its frame decoder (bounded input)
//! and its output queue (bounded by the caller against `--sendq`), with
//! non-blocking read and write helpers that do exactly one system call each.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::hub::ConnId;
use crate::wire::Decoder;

/// Output buffer capacity kept once everything is written.
const IDLE_CAPACITY: usize = 0;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected; the handshake frame must be complete by `deadline`.
    Handshake { deadline: Instant },
    /// Joined a room (the hub knows which).
    Member,
    /// Finishing: output is flushed, then the write side is shut down, and
    /// the socket is closed once the peer has acknowledged every byte (or
    /// closed its side, or `deadline` passed). Input is discarded meanwhile.
    /// Closing earlier, with unread input, would make the kernel send a
    /// reset and drop the output not yet sent: the last event would be lost.
    Closing { deadline: Instant },
}

/// What one read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    Eof,
    WouldBlock,
}

pub struct Conn {
    pub id: ConnId,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub phase: Phase,
    pub decoder: Decoder,
    /// The peer closed its side (or read failed): no more reading.
    pub read_closed: bool,
    /// The write side was shut down after the final flush.
    pub write_closed: bool,
    /// Since when the output queue has been above the high-water mark.
    pub backlogged_since: Option<Instant>,
    /// The last write did not take everything: wait for write readiness
    /// before writing again.
    pub write_blocked: bool,
    out: Vec<u8>,
    out_pos: usize,
}

impl Conn {
    pub fn new(
        id: ConnId,
        stream: TcpStream,
        peer: SocketAddr,
        max_frame: usize,
        deadline: Instant,
    ) -> Conn {
        Conn {
            id,
            stream,
            peer,
            phase: Phase::Handshake { deadline },
            decoder: Decoder::new(max_frame),
            read_closed: false,
            write_closed: false,
            backlogged_since: None,
            write_blocked: false,
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// Bytes queued but not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Appends an encoded event. The caller checks the sendq bound first.
    pub fn queue(&mut self, line: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(line);
    }

    /// One write(2) of as much queued output as the socket takes. Returns
    /// the bytes written (0 when the socket is full).
    pub fn write_once(&mut self) -> io::Result<usize> {
        if self.pending() == 0 {
            return Ok(0);
        }
        match self.stream.write(&self.out[self.out_pos..]) {
            Ok(n) => {
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                    // An idle connection keeps little memory (the fan-out
                    // bench's idle scenario measures it per client).
                    self.out.shrink_to(IDLE_CAPACITY);
                } else if self.out_pos > 64 * 1024 && self.out_pos * 2 > self.out.len() {
                    // Reclaim the written prefix so a long-lived backlog does
                    // not keep growing the buffer.
                    self.out.drain(..self.out_pos);
                    self.out_pos = 0;
                }
                Ok(n)
            }
            Err(e) if would_block(&e) || interrupted(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// One read(2) of at most what the decoder has room for, into the
    /// decoder (or, when `discard` is set, nowhere).
    pub fn read_once(&mut self, scratch: &mut [u8], discard: bool) -> io::Result<ReadOutcome> {
        let want = if discard {
            scratch.len()
        } else {
            self.decoder.space().min(scratch.len())
        };
        if want == 0 {
            return Ok(ReadOutcome::WouldBlock);
        }
        match self.stream.read(&mut scratch[..want]) {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(n) => {
                if !discard {
                    self.decoder.push(&scratch[..n]);
                }
                Ok(ReadOutcome::Data(n))
            }
            Err(e) if would_block(&e) || interrupted(&e) => Ok(ReadOutcome::WouldBlock),
            Err(e) => Err(e),
        }
    }

    /// Bytes the kernel still holds for the peer: not sent, or not yet
    /// acknowledged (SIOCOUTQ).
    pub fn unacknowledged(&self) -> usize {
        let mut n: nix::libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer,
        // which points at a live c_int; the descriptor is our open socket.
        let rc = unsafe { nix::libc::ioctl(self.stream.as_raw_fd(), nix::libc::TIOCOUTQ, &mut n) };
        if rc == 0 { n.max(0) as usize } else { 0 }
    }

    /// Sends FIN once the output is flushed.
    pub fn shutdown_write(&mut self) {
        if !self.write_closed {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.write_closed = true;
        }
    }
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}
