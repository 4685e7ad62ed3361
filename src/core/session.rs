//! One chat connection's protocol state, without the socket and without a
//! clock: its phase, the handshake deadline, its protocol's codec (bounded
//! input, frames decoded into commands; core/codec.rs), the output queue with its `--sendq` bound, back-pressure (above
//! the high-water mark), the slow-consumer rule (the stall budget) and the
//! close linger.
//!
//! The shape is quinn-proto's `Connection` and smoltcp's `poll_at`: the
//! shell feeds what happened through [`Session::handle`]`(now, input)` and
//! carries out the [`Action`] it gets back; it reads what the peer asked
//! with [`Session::poll_frame`], writes [`Session::output`], and wakes the
//! session at [`Session::poll_timeout`]. Every rule is therefore a function
//! of (state, now, input), tested below with virtual time and no sockets.
//!
//! What the session does not know: rooms. Whether a member's room is backed
//! up (and so whether to read from it) is the hub's business, asked by the
//! shell through [`Session::backlogged`].

use std::time::{Duration, Instant};

use super::codec::{Codec, Decoded, Protocol};
use super::wire::FrameError;

/// The bounds a session enforces (from chatd's flags).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_frame: usize,
    /// `--handshake-timeout`.
    pub handshake_timeout: Duration,
    /// `--sendq`: most unsent output.
    pub sendq: usize,
    /// Above this much unsent output the member is backlogged.
    pub hwm: usize,
    /// `--write-timeout`: the stall budget.
    pub stall_budget: Duration,
    /// How long closing may take before the socket is closed regardless.
    pub linger: Duration,
    /// A protocol with pings (IRC): after this long without a byte from
    /// the peer it is pinged, and after as long again it is gone.
    pub ping: Duration,
}

/// Bytes read and thrown away per read while closing.
pub const DISCARD_CHUNK: usize = 64 * 1024;

/// How often a closing session whose output is out asks the shell whether
/// the peer has acknowledged it (nothing signals that).
pub const ACK_POLL: Duration = Duration::from_millis(10);

/// Above this many bytes, a drained prefix of the output queue is reclaimed.
const RECLAIM: usize = 64 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected; the handshake frame must be complete by `deadline`.
    Handshake { deadline: Instant },
    /// Joined a room (the hub knows which).
    Member,
    /// Finishing: output is flushed, then the write side is shut down, and
    /// the socket is closed once the peer has acknowledged every byte (or
    /// closed its side, or `deadline` passed). Input is discarded meanwhile:
    /// closing with unread input would make the kernel send a reset and
    /// drop the output not yet sent, the last event included.
    Closing { deadline: Instant },
}

/// What happened, as the shell tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Bytes read from the peer (at most [`Session::read_budget`]).
    Received(&'a [u8]),
    /// The peer closed its side, or reading failed.
    ReadClosed,
    /// The socket took `n` bytes from the front of [`Session::output`].
    Sent(usize),
    /// The socket took less than offered: wait for writability.
    SendBlocked,
    /// The socket is writable again.
    Writable,
    /// The hub accepted the handshake.
    Joined,
    /// An event line for this peer.
    Deliver(&'a [u8]),
    /// A last event line (if any), then close: a refusal, a protocol error,
    /// a kick, a closed room, shutdown. Ignored once closing.
    Finish(Option<&'a [u8]>),
    /// While closing with everything sent: bytes the kernel still holds
    /// unacknowledged (SIOCOUTQ).
    Unacknowledged(usize),
    /// Time passed; the shell calls this at or after [`Session::poll_timeout`].
    Timeout,
}

/// What the shell must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The connection is gone as a participant: take it out of its room
    /// (the room gets `leave`) and close it at once.
    Drop(DropReason),
    /// No complete handshake in time: answer 408 and close (`Finish`).
    HandshakeExpired,
    /// Everything is sent while closing: shut down the write side (FIN).
    ShutdownWrite,
    /// Ask the kernel how much is unacknowledged and report it
    /// (`Unacknowledged`).
    CheckAcknowledged,
    /// Closing is complete: close the socket and forget the session.
    Release,
    /// The linger ran out before closing completed: close the socket now.
    LingerExpired,
    /// A member silent for `ping`: send it a ping (IRC).
    Ping,
    /// Silent for twice `ping`, the ping unanswered: tell it and close
    /// (`Finish`).
    PingTimeout,
}

/// Why a connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its output would exceed `--sendq`.
    Sendq,
    /// It held its room back for its whole stall budget.
    StallBudget,
}

/// The next thing the peer sent, from [`Session::poll_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A complete frame, decoded by the protocol: the handshake, or a
    /// message once a member.
    Decoded(Decoded),
    /// A framing error: answer it (400/413) and close.
    Error(FrameError),
    /// The peer closed its side and everything it sent is consumed;
    /// `mid_frame` when it stopped in the middle of a frame.
    Gone { mid_frame: bool },
    /// Nothing for now.
    Nothing,
}

#[derive(Debug)]
pub struct Session {
    limits: Limits,
    phase: Phase,
    codec: Codec,
    out: Vec<u8>,
    /// Start of the unsent output in `out`.
    out_pos: usize,
    /// Output waiting in its room's ring (core/ring.rs), after `out`: the
    /// chat part's count, brought up to date when the ring moves.
    ring_pending: usize,
    /// Ring output moved out of the ring but not into `out`: a web sub's
    /// frames, waiting in its web layer (at most what that holds; a u32,
    /// saturating, so it sits beside the flags below and costs no memory).
    outside: u32,
    read_closed: bool,
    /// `Gone` was already reported.
    gone: bool,
    write_blocked: bool,
    write_closed: bool,
    stall: StallMeter,
    /// While closing with everything sent: when to ask about the peer's
    /// acknowledgement next.
    ack_check_at: Option<Instant>,
    /// A protocol with pings: when the peer was last heard from, and
    /// whether it was pinged since.
    liveness: Option<(Instant, bool)>,
}

impl Session {
    pub fn new(now: Instant, limits: Limits, protocol: Protocol) -> Session {
        Session {
            limits,
            phase: Phase::Handshake {
                deadline: now + limits.handshake_timeout,
            },
            codec: Codec::new(protocol, limits.max_frame),
            out: Vec::new(),
            out_pos: 0,
            ring_pending: 0,
            outside: 0,
            read_closed: false,
            gone: false,
            write_blocked: false,
            write_closed: false,
            stall: StallMeter::default(),
            ack_check_at: None,
            liveness: (protocol == Protocol::Irc).then_some((now, false)),
        }
    }

    /// Liveness for a transport with pings of its own (a WebSocket), for
    /// either protocol: pinged after `ping` of silence, gone after as long
    /// again.
    pub fn with_pings(mut self, now: Instant) -> Session {
        self.liveness = Some((now, false));
        self
    }

    /// The peer was heard from below the codec (a WebSocket ping or pong).
    pub fn heard(&mut self, now: Instant) {
        if let Some(heard) = &mut self.liveness {
            *heard = (now, false);
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The wire protocol its codec speaks.
    pub fn protocol(&self) -> Protocol {
        self.codec.protocol()
    }

    pub fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing { .. })
    }

    pub fn read_closed(&self) -> bool {
        self.read_closed
    }

    /// How many bytes the shell may read now (0: do not watch for reading).
    /// A member's room may forbid reading still (back-pressure).
    pub fn read_budget(&self) -> usize {
        if self.read_closed {
            0
        } else if self.is_closing() {
            DISCARD_CHUNK
        } else {
            self.codec.space()
        }
    }

    /// Bytes of its own to write (before any waiting in its room's ring).
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Bytes queued but not yet written: its own, and its ring's.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos + self.ring_pending + self.outside as usize
    }

    /// Its room's ring moved (lines came, or some were written): this
    /// many bytes wait there now. Past `--sendq` in all, the member is to
    /// be dropped, as for a line of its own.
    pub fn ring_moved(&mut self, now: Instant, pending: usize) -> Option<Action> {
        self.ring_pending = pending;
        if self.is_closing() {
            return None;
        }
        if self.pending() > self.limits.sendq {
            return Some(Action::Drop(DropReason::Sendq));
        }
        self.stall.update(now, self.backlogged());
        None
    }

    /// The ring's waiting bytes, taken out of it (`Feed::take_all`), join
    /// its own output, so that a line of its own follows them.
    pub fn ring_taken(&mut self, bytes: &[u8]) {
        self.queue(bytes);
        self.ring_pending = 0;
    }

    /// The ring's waiting bytes were taken out of it into a layer below
    /// the session (a web sub's frames), which now holds `held` bytes.
    pub fn ring_taken_outside(&mut self, held: usize) {
        self.ring_pending = 0;
        self.outside = u32::try_from(held).unwrap_or(u32::MAX);
    }

    /// The first `own` bytes of its output, then the ring's waiting bytes,
    /// went to the layer below, which now holds `held` bytes (a web sub's
    /// frames: a line of its own is to follow them).
    pub fn moved_outside(&mut self, own: usize, held: usize) {
        self.consume(own);
        self.ring_taken_outside(held);
    }

    /// The layer below now holds `left` bytes: no more of them are ring
    /// bytes than that.
    pub fn outside_left(&mut self, left: usize) {
        self.outside = self.outside.min(u32::try_from(left).unwrap_or(u32::MAX));
    }

    /// How many more ring bytes it can take before something must be
    /// decided: it crosses the high-water mark (its room stops), or, above
    /// the mark already, it reaches `--sendq`.
    pub fn ring_headroom(&self) -> usize {
        let bound = if self.backlogged() {
            self.limits.sendq
        } else {
            self.limits.hwm
        };
        bound.saturating_sub(self.pending())
    }

    /// There is output and the socket was not reported full.
    pub fn wants_write(&self) -> bool {
        self.pending() > 0 && !self.write_blocked
    }

    /// There is output and the socket was full: watch for writability.
    pub fn wants_writable(&self) -> bool {
        self.pending() > 0 && self.write_blocked
    }

    /// Above the high-water mark: the member's room should not be read.
    pub fn backlogged(&self) -> bool {
        self.pending() > self.limits.hwm
    }

    /// Whether output is still on its way from here (the kernel may hold
    /// more; the shell asks it).
    pub fn has_unsent(&self) -> bool {
        self.pending() > 0
    }

    /// Whether [`Session::poll_frame`] has something to say.
    pub fn frame_ready(&self) -> bool {
        !self.is_closing() && (self.codec.frame_ready() || (self.read_closed && !self.gone))
    }

    /// The next frame the peer sent, decoded (nothing while closing).
    pub fn poll_frame(&mut self) -> Next {
        if self.is_closing() {
            return Next::Nothing;
        }
        match self.codec.next(self.phase == Phase::Member) {
            Some(Ok(decoded)) => Next::Decoded(decoded),
            Some(Err(e)) => Next::Error(e),
            None if self.read_closed && !self.gone => {
                self.gone = true;
                Next::Gone {
                    mid_frame: self.codec.buffered() > 0,
                }
            }
            None => Next::Nothing,
        }
    }

    /// When the session wants [`Input::Timeout`]: the handshake deadline,
    /// the moment the stall budget runs out, the linger's end, or the next
    /// acknowledgement check.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Handshake { deadline } => Some(deadline),
            Phase::Member => {
                let stall = self.stall.exhausted_at(self.limits.stall_budget);
                match (stall, self.ping_due()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Phase::Closing { deadline } => Some(match self.ack_check_at {
                Some(t) => t.min(deadline),
                None => deadline,
            }),
        }
    }

    /// Feeds one input; returns what the shell must do, if anything.
    pub fn handle(&mut self, now: Instant, input: Input) -> Option<Action> {
        match input {
            Input::Received(bytes) => {
                if !self.is_closing() {
                    self.codec.push(bytes);
                    if let Some(heard) = &mut self.liveness {
                        *heard = (now, false);
                    }
                }
                None
            }
            Input::ReadClosed => {
                self.read_closed = true;
                self.closing_progress(now)
            }
            Input::Sent(n) => {
                self.consume(n);
                self.stall.update(now, self.backlogged());
                self.closing_progress(now)
            }
            Input::SendBlocked => {
                self.write_blocked = true;
                None
            }
            Input::Writable => {
                self.write_blocked = false;
                None
            }
            Input::Joined => {
                if let Phase::Handshake { .. } = self.phase {
                    self.phase = Phase::Member;
                    self.codec.joined(self.limits.max_frame);
                }
                None
            }
            Input::Deliver(line) => {
                if self.is_closing() {
                    return None;
                }
                if self.pending() + line.len() > self.limits.sendq {
                    return Some(Action::Drop(DropReason::Sendq));
                }
                self.queue(line);
                self.stall.update(now, self.backlogged());
                None
            }
            Input::Finish(line) => {
                if self.is_closing() {
                    return None;
                }
                if let Some(line) = line {
                    // A last notice is worth going past the sendq by one line.
                    self.queue(line);
                }
                self.phase = Phase::Closing {
                    deadline: now + self.limits.linger,
                };
                self.closing_progress(now)
            }
            Input::Unacknowledged(n) => {
                if !self.is_closing() || !self.write_closed {
                    return None;
                }
                if n == 0 {
                    return Some(Action::Release);
                }
                self.ack_check_at = Some(now + ACK_POLL);
                None
            }
            Input::Timeout => self.on_timeout(now),
        }
    }

    fn on_timeout(&mut self, now: Instant) -> Option<Action> {
        match self.phase {
            Phase::Handshake { deadline } if now >= deadline => Some(Action::HandshakeExpired),
            Phase::Member if self.stall.debt_at(now) >= self.limits.stall_budget => {
                Some(Action::Drop(DropReason::StallBudget))
            }
            Phase::Member if self.ping_due().is_some_and(|t| now >= t) => {
                let (_, pinged) = self.liveness.as_mut().expect("ping_due checked");
                if *pinged {
                    Some(Action::PingTimeout)
                } else {
                    *pinged = true;
                    Some(Action::Ping)
                }
            }
            Phase::Closing { deadline } if now >= deadline => Some(Action::LingerExpired),
            Phase::Closing { .. } if self.ack_check_at.is_some_and(|t| now >= t) => {
                self.ack_check_at = None;
                Some(Action::CheckAcknowledged)
            }
            _ => None,
        }
    }

    /// When the silent peer is to be pinged, or (pinged) given up on.
    fn ping_due(&self) -> Option<Instant> {
        let (heard, pinged) = self.liveness?;
        let silent = if pinged { 2 } else { 1 };
        Some(heard + self.limits.ping * silent)
    }

    /// While closing: once everything is sent, FIN; then done when the
    /// peer has closed too, else ask about its acknowledgement.
    fn closing_progress(&mut self, now: Instant) -> Option<Action> {
        if !self.is_closing() || self.pending() > 0 {
            return None;
        }
        if !self.write_closed {
            self.write_closed = true;
            // Check the acknowledgement right after the FIN goes out.
            self.ack_check_at = Some(now);
            return Some(Action::ShutdownWrite);
        }
        if self.read_closed {
            return Some(Action::Release);
        }
        None
    }

    fn queue(&mut self, line: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(line);
    }

    /// `n` bytes of its own output were written (the ring's part is
    /// counted by [`Session::ring_moved`]).
    fn consume(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            // An idle connection keeps no output buffer (the fan-out
            // bench's idle scenario measures memory per client).
            self.out.shrink_to(0);
        } else if self.out_pos > RECLAIM && self.out_pos * 2 > self.out.len() {
            // Reclaim the written prefix so a long-lived backlog does not
            // keep growing the buffer.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
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
/// dropped exactly then; one that holds its room back more than
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
        // The debt grows (or shrinks) linearly while the side of the mark
        // stays the same, so only a change of side needs the arithmetic
        // (this runs once per delivery).
        if self.last.is_some_and(|(_, was)| was == above) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::codec::Command;
    use crate::core::wire::encode_frame;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    const LIMITS: Limits = Limits {
        max_frame: 100,
        handshake_timeout: Duration::from_secs(10),
        sendq: 1000,
        hwm: 100,
        stall_budget: Duration::from_secs(10),
        linger: Duration::from_secs(2),
        ping: Duration::from_secs(60),
    };

    /// A session that has joined, at `t0`.
    fn member(t0: Instant) -> Session {
        let mut s = Session::new(t0, LIMITS, Protocol::Prototype);
        assert_eq!(s.handle(t0, Input::Joined), None);
        s
    }

    // -- the handshake deadline (408) --------------------------------------

    #[test]
    fn no_handshake_by_the_deadline_is_408() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, LIMITS, Protocol::Prototype);
        assert_eq!(s.poll_timeout(), Some(t0 + secs(10.0)));
        // Half a header, then silence.
        s.handle(t0, Input::Received(b"36   "));
        assert_eq!(s.poll_frame(), Next::Nothing);
        assert_eq!(s.handle(t0 + secs(9.9), Input::Timeout), None);
        assert_eq!(
            s.handle(t0 + secs(10.0), Input::Timeout),
            Some(Action::HandshakeExpired)
        );
        // The shell answers 408 and closes: the deadline is the linger's.
        let line = b"{\"408\"}\n";
        assert_eq!(s.handle(t0 + secs(10.0), Input::Finish(Some(line))), None);
        assert_eq!(s.output(), line);
        assert_eq!(s.poll_timeout(), Some(t0 + secs(12.0)));
    }

    #[test]
    fn a_handshake_in_time_is_a_frame_and_joining_ends_the_deadline() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, LIMITS, Protocol::Prototype);
        for b in encode_frame(b"{\"username\":\"Yan\",\"room\":\"Teste\"}") {
            s.handle(t0, Input::Received(&[b]));
        }
        assert!(matches!(
            s.poll_frame(),
            Next::Decoded(Decoded::Command(Command::Join(hs))) if hs.room == "Teste"
        ));
        s.handle(t0 + secs(1.0), Input::Joined);
        assert_eq!(s.phase(), Phase::Member);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.handle(t0 + secs(60.0), Input::Timeout), None);
    }

    // -- slow consumers ------------------------------------------------------

    #[test]
    fn output_past_the_sendq_drops_the_member() {
        let t0 = Instant::now();
        let mut s = member(t0);
        let line = [b'x'; 300];
        for _ in 0..3 {
            assert_eq!(s.handle(t0, Input::Deliver(&line)), None);
        }
        assert_eq!(s.pending(), 900);
        assert_eq!(
            s.handle(t0, Input::Deliver(&line)),
            Some(Action::Drop(DropReason::Sendq))
        );
        assert_eq!(s.pending(), 900, "the line that did not fit is not queued");
    }

    #[test]
    fn above_the_mark_for_the_whole_budget_is_a_slow_consumer() {
        let t0 = Instant::now();
        let mut s = member(t0);
        s.handle(t0, Input::Deliver(&[b'x'; 200]));
        assert!(s.backlogged());
        assert_eq!(s.poll_timeout(), Some(t0 + secs(10.0)));
        s.handle(t0 + secs(1.0), Input::SendBlocked);
        assert_eq!(s.handle(t0 + secs(9.0), Input::Timeout), None);
        assert_eq!(
            s.handle(t0 + secs(10.0), Input::Timeout),
            Some(Action::Drop(DropReason::StallBudget))
        );
    }

    #[test]
    fn a_silent_irc_member_is_pinged_then_given_up_on_and_any_byte_answers() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, LIMITS, Protocol::Irc);
        s.handle(t0, Input::Joined);
        assert_eq!(s.poll_timeout(), Some(t0 + secs(60.0)));
        assert_eq!(s.handle(t0 + secs(59.0), Input::Timeout), None);
        assert_eq!(
            s.handle(t0 + secs(60.0), Input::Timeout),
            Some(Action::Ping)
        );
        assert_eq!(s.poll_timeout(), Some(t0 + secs(120.0)));
        // Any line counts as an answer (a PONG, or anything else).
        s.handle(t0 + secs(70.0), Input::Received(b"PONG x\r\n"));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(130.0)));
        assert_eq!(
            s.handle(t0 + secs(130.0), Input::Timeout),
            Some(Action::Ping)
        );
        assert_eq!(s.handle(t0 + secs(189.0), Input::Timeout), None);
        assert_eq!(
            s.handle(t0 + secs(190.0), Input::Timeout),
            Some(Action::PingTimeout)
        );
        // The prototype's protocol has no pings.
        let p = member(t0);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_reader_in_bursts_runs_out_of_budget_too() {
        // Above the mark for 0.9 s, then drained for 0.1 s, again and again:
        // never 10 s in a row, yet the room is held back 90 % of the time.
        let t0 = Instant::now();
        let mut s = member(t0);
        let mut t = t0;
        let dropped_at = loop {
            s.handle(t, Input::Deliver(&[b'x'; 200]));
            let above_until = t + secs(0.9);
            if let Some(at) = s.poll_timeout()
                && at <= above_until
            {
                break s.handle(at, Input::Timeout).map(|a| (a, at));
            }
            s.handle(above_until, Input::Sent(200));
            assert!(!s.backlogged());
            t = above_until + secs(0.1);
            assert!(t < t0 + secs(60.0), "never dropped");
        };
        let (action, at) = dropped_at.unwrap();
        assert_eq!(action, Action::Drop(DropReason::StallBudget));
        assert!(at - t0 < secs(12.0), "{:?}", at - t0);
    }

    #[test]
    fn a_healthy_members_bursts_are_forgiven() {
        let t0 = Instant::now();
        let mut s = member(t0);
        for i in 0..360 {
            let t = t0 + secs(10.0 * f64::from(i));
            s.handle(t, Input::Deliver(&[b'x'; 200]));
            s.handle(t + secs(1.0), Input::Sent(200));
            assert_eq!(s.handle(t + secs(10.0), Input::Timeout), None);
        }
    }

    // -- back-pressure -----------------------------------------------------

    #[test]
    fn back_pressure_goes_on_above_the_mark_and_off_below() {
        let t0 = Instant::now();
        let mut s = member(t0);
        s.handle(t0, Input::Deliver(&[b'x'; 60]));
        assert!(!s.backlogged());
        assert!(s.wants_write());
        s.handle(t0, Input::Deliver(&[b'x'; 60]));
        assert!(s.backlogged(), "120 bytes > 100");
        // The socket takes 10 and is full: wait for writability.
        s.handle(t0, Input::Sent(10));
        s.handle(t0, Input::SendBlocked);
        assert!(!s.wants_write() && s.wants_writable());
        assert!(s.backlogged());
        s.handle(t0, Input::Writable);
        s.handle(t0, Input::Sent(30));
        assert!(!s.backlogged(), "80 bytes left");
        assert_eq!(s.output().len(), 80);
    }

    #[test]
    fn a_member_reads_within_the_decoders_bound() {
        let t0 = Instant::now();
        let mut s = member(t0);
        assert_eq!(s.read_budget(), 110);
        s.handle(t0, Input::Received(&encode_frame(b"hello")));
        assert_eq!(s.read_budget(), 95);
        assert_eq!(
            s.poll_frame(),
            Next::Decoded(Decoded::Command(Command::Say("hello".into())))
        );
        assert_eq!(s.poll_frame(), Next::Nothing);
        // EOF mid-frame: the member is gone, said once.
        s.handle(t0, Input::Received(b"99        abc"));
        s.handle(t0, Input::ReadClosed);
        assert_eq!(s.read_budget(), 0);
        assert!(s.frame_ready());
        assert_eq!(s.poll_frame(), Next::Gone { mid_frame: true });
        assert_eq!(s.poll_frame(), Next::Nothing);
        assert!(!s.frame_ready());
    }

    // -- the close linger ----------------------------------------------------

    #[test]
    fn closing_flushes_then_fin_then_waits_for_the_acknowledgement() {
        let t0 = Instant::now();
        let mut s = member(t0);
        s.handle(t0, Input::Received(b"unread input"));
        assert_eq!(s.handle(t0, Input::Finish(Some(b"bye\n"))), None);
        assert!(s.is_closing());
        assert_eq!(
            s.read_budget(),
            DISCARD_CHUNK,
            "input is read and discarded"
        );
        assert_eq!(s.poll_frame(), Next::Nothing);
        assert_eq!(
            s.handle(t0, Input::Sent(4)),
            Some(Action::ShutdownWrite),
            "everything sent: FIN"
        );
        assert_eq!(s.poll_timeout(), Some(t0));
        assert_eq!(
            s.handle(t0, Input::Timeout),
            Some(Action::CheckAcknowledged)
        );
        assert_eq!(s.handle(t0, Input::Unacknowledged(4)), None);
        assert_eq!(s.poll_timeout(), Some(t0 + ACK_POLL));
        assert_eq!(
            s.handle(t0 + ACK_POLL, Input::Timeout),
            Some(Action::CheckAcknowledged)
        );
        assert_eq!(
            s.handle(t0 + ACK_POLL, Input::Unacknowledged(0)),
            Some(Action::Release)
        );
    }

    #[test]
    fn closing_ends_when_the_peer_closes_too() {
        let t0 = Instant::now();
        let mut s = member(t0);
        s.handle(t0, Input::Finish(None));
        assert_eq!(s.handle(t0, Input::ReadClosed), Some(Action::Release));
        // With output still queued, the FIN comes first.
        let mut s = member(t0);
        s.handle(t0, Input::Finish(Some(b"bye\n")));
        assert_eq!(s.handle(t0, Input::ReadClosed), None);
        assert_eq!(s.handle(t0, Input::Sent(4)), Some(Action::ShutdownWrite));
        assert_eq!(s.handle(t0, Input::ReadClosed), Some(Action::Release));
    }

    #[test]
    fn the_linger_runs_out_on_a_peer_that_never_reads() {
        let t0 = Instant::now();
        let mut s = member(t0);
        s.handle(t0, Input::Finish(Some(&[b'x'; 500])));
        s.handle(t0, Input::Sent(100));
        s.handle(t0, Input::SendBlocked);
        assert!(s.has_unsent());
        assert_eq!(s.poll_timeout(), Some(t0 + LIMITS.linger));
        assert_eq!(s.handle(t0 + secs(1.0), Input::Timeout), None);
        assert_eq!(
            s.handle(t0 + LIMITS.linger, Input::Timeout),
            Some(Action::LingerExpired)
        );
    }

    #[test]
    fn a_closing_session_takes_no_more_deliveries_or_finishes() {
        let t0 = Instant::now();
        let mut s = member(t0);
        s.handle(t0, Input::Finish(Some(b"last\n")));
        assert_eq!(s.handle(t0, Input::Deliver(b"more\n")), None);
        assert_eq!(s.handle(t0, Input::Finish(Some(b"again\n"))), None);
        assert_eq!(s.output(), b"last\n");
    }

    // -- the stall meter on its own ----------------------------------------

    #[test]
    fn stall_debt_is_paid_back_at_a_sixth_of_the_rate() {
        let t0 = Instant::now();
        let mut m = StallMeter::default();
        m.update(t0, true);
        m.update(t0 + secs(3.0), false);
        assert_eq!(m.debt_at(t0 + secs(9.0)), secs(2.0));
        assert_eq!(m.debt_at(t0 + secs(100.0)), Duration::ZERO);
        assert_eq!(m.exhausted_at(secs(10.0)), None);
        m.update(t0 + secs(9.0), true);
        assert_eq!(m.exhausted_at(secs(10.0)), Some(t0 + secs(17.0)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Received(Vec<u8>),
            ReadClosed,
            Sent(usize),
            SendBlocked,
            Writable,
            Joined,
            Deliver(usize),
            Finish(Option<usize>),
            Unacknowledged(usize),
            Timeout,
            Frame,
        }

        fn steps() -> impl Strategy<Value = Vec<(u64, Step)>> {
            let step = prop_oneof![
                prop::collection::vec(any::<u8>(), 0..40).prop_map(Step::Received),
                Just(Step::ReadClosed),
                (0usize..400).prop_map(Step::Sent),
                Just(Step::SendBlocked),
                Just(Step::Writable),
                Just(Step::Joined),
                (1usize..300).prop_map(Step::Deliver),
                prop::option::of(1usize..300).prop_map(Step::Finish),
                (0usize..3).prop_map(Step::Unacknowledged),
                Just(Step::Timeout),
                Just(Step::Frame),
            ];
            prop::collection::vec((0u64..3000, step), 0..60)
        }

        proptest! {
            /// Whatever happens, in any order and at any pace: no panic,
            /// output within --sendq (plus one last notice), input within
            /// the decoder's bound, a closing session stays closing, and
            /// a session in handshake or closing always has a timer.
            #[test]
            fn any_sequence_keeps_the_bounds(seq in steps()) {
                let t0 = Instant::now();
                let mut now = t0;
                let mut s = Session::new(now, LIMITS, Protocol::Prototype);
                let mut closing = false;
                let mut last_notice = 0;
                for (ms, step) in seq {
                    now += Duration::from_millis(ms);
                    let action = match step {
                        Step::Received(b) => {
                            let n = b.len().min(s.read_budget());
                            s.handle(now, Input::Received(&b[..n]))
                        }
                        Step::ReadClosed => s.handle(now, Input::ReadClosed),
                        Step::Sent(k) => {
                            let k = k.min(s.pending());
                            s.handle(now, Input::Sent(k))
                        }
                        Step::SendBlocked => s.handle(now, Input::SendBlocked),
                        Step::Writable => s.handle(now, Input::Writable),
                        Step::Joined => s.handle(now, Input::Joined),
                        Step::Deliver(n) => s.handle(now, Input::Deliver(&vec![b'x'; n])),
                        Step::Finish(n) => {
                            let line = n.map(|n| vec![b'y'; n]);
                            if !s.is_closing() {
                                last_notice = line.as_ref().map_or(0, Vec::len);
                            }
                            s.handle(now, Input::Finish(line.as_deref()))
                        }
                        Step::Unacknowledged(n) => s.handle(now, Input::Unacknowledged(n)),
                        Step::Timeout => s.handle(now, Input::Timeout),
                        Step::Frame => {
                            let _ = s.poll_frame();
                            None
                        }
                    };
                    prop_assert!(s.pending() <= LIMITS.sendq + last_notice);
                    prop_assert!(s.read_budget() <= (10 + LIMITS.max_frame.max(crate::core::wire::MAX_HANDSHAKE_FRAME)).max(DISCARD_CHUNK));
                    if closing {
                        prop_assert!(s.is_closing());
                    }
                    closing = s.is_closing();
                    if matches!(s.phase(), Phase::Handshake { .. } | Phase::Closing { .. }) {
                        prop_assert!(s.poll_timeout().is_some());
                    }
                    if matches!(action, Some(Action::Release | Action::LingerExpired | Action::ShutdownWrite)) {
                        prop_assert!(s.is_closing());
                    }
                    if matches!(action, Some(Action::Drop(_) | Action::Release | Action::LingerExpired)) {
                        break;
                    }
                }
            }
        }
    }
}
