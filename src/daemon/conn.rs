//! One chat client connection: its phase, its frame decoder (bounded input)
//! and its output queue (bounded by the caller against `--sendq`), with
//! non-blocking read and write helpers that do exactly one system call each.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::core::hub::ConnId;
use crate::core::wire::Decoder;

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
    /// How long this member has held its room back (see [`StallMeter`]).
    pub stall: StallMeter,
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
            stall: StallMeter::default(),
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

    /// Whether output is still on its way: queued here, or held by the
    /// kernel unacknowledged by a peer that has not closed.
    pub fn unflushed(&self) -> bool {
        self.pending() > 0 || (!self.read_closed && self.unacknowledged() > 0)
    }

    /// Sends FIN once the output is flushed.
    pub fn shutdown_write(&mut self) {
        if !self.write_closed {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.write_closed = true;
        }
    }
}

/// While a member's output is above the high-water mark, its whole room
/// waits (back-pressure). The stall meter bounds how long one member may do
/// that, also when it dips under the mark now and then (a reader that takes
/// 256 KiB once a second).
///
/// It keeps a debt: time spent above the mark adds to it one for one, time
/// below pays it back at 1/[`STALL_FORGIVENESS`] of the rate. A member whose
/// debt reaches the budget (`--write-timeout`) is dropped as a slow
/// consumer. So a member that stays above the mark for the whole budget is
/// dropped exactly then, as before; one that holds its room back more than
/// 1/(1 + [`STALL_FORGIVENESS`]) of the time (about 14 %) is dropped sooner or
/// later; and a healthy member's brief bursts above the mark are forgiven.
#[derive(Debug, Clone, Copy, Default)]
pub struct StallMeter {
    debt: Duration,
    /// When the meter was last brought up to date, and whether the member
    /// was above the mark since then.
    last: Option<(Instant, bool)>,
}

/// Time below the mark pays back stall debt at 1/this of its rate.
pub const STALL_FORGIVENESS: u32 = 6;

impl StallMeter {
    /// Accounts for the time since the last update, then records whether
    /// the member is above the mark from `now` on.
    pub fn update(&mut self, now: Instant, above: bool) {
        self.debt = self.debt_at(now);
        self.last = Some((now, above));
    }

    /// The debt as of `now`.
    pub fn debt_at(&self, now: Instant) -> Duration {
        match self.last {
            None => self.debt,
            Some((then, true)) => self.debt + now.saturating_duration_since(then),
            Some((then, false)) => self
                .debt
                .saturating_sub(now.saturating_duration_since(then) / STALL_FORGIVENESS),
        }
    }

    /// When the debt will reach `budget`, if the member is above the mark.
    pub fn exhausted_at(&self, budget: Duration) -> Option<Instant> {
        match self.last {
            Some((then, true)) => Some(then + budget.saturating_sub(self.debt)),
            _ => None,
        }
    }
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(10);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_member_above_the_mark_for_the_whole_budget_is_out_exactly_then() {
        let t0 = Instant::now();
        let mut m = StallMeter::default();
        m.update(t0, true);
        m.update(t0 + secs(4.0), true);
        assert_eq!(m.exhausted_at(BUDGET), Some(t0 + BUDGET));
        assert!(m.debt_at(t0 + secs(9.9)) < BUDGET);
        assert!(m.debt_at(t0 + BUDGET) >= BUDGET);
    }

    #[test]
    fn a_reader_that_dips_under_the_mark_now_and_then_runs_out() {
        // Above for 6 s, under for 0.5 s, again and again: the old rule
        // (10 s above without a break) never fired.
        let t0 = Instant::now();
        let mut m = StallMeter::default();
        let mut t = t0;
        let mut out_after = None;
        for _ in 0..10 {
            m.update(t, true);
            if m.debt_at(t + secs(6.0)) >= BUDGET {
                out_after = m.exhausted_at(BUDGET).map(|at| at - t0);
                break;
            }
            t += secs(6.0);
            m.update(t, false);
            t += secs(0.5);
        }
        let out_after = out_after.expect("dropped");
        assert!(out_after < secs(11.0), "{out_after:?}");
    }

    #[test]
    fn a_healthy_members_bursts_are_forgiven() {
        // 1 s above the mark every 10 s, for an hour: never out.
        let t0 = Instant::now();
        let mut m = StallMeter::default();
        for i in 0..360 {
            let t = t0 + secs(10.0 * f64::from(i));
            m.update(t, true);
            m.update(t + secs(1.0), false);
            assert!(m.debt_at(t + secs(10.0)) < secs(1.0));
        }
    }

    #[test]
    fn debt_is_paid_back_at_a_sixth_of_the_rate() {
        let t0 = Instant::now();
        let mut m = StallMeter::default();
        m.update(t0, true);
        m.update(t0 + secs(3.0), false);
        assert_eq!(m.debt_at(t0 + secs(9.0)), secs(2.0));
        assert_eq!(m.debt_at(t0 + secs(100.0)), Duration::ZERO);
        assert_eq!(m.exhausted_at(BUDGET), None);
    }
}
