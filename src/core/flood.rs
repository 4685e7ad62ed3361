//! Flood control: a token bucket on a connection's messages, and one on
//! their bytes (the `--flood-*` flags). Within the buckets a message goes
//! at once. Beyond them it is delayed until the buckets hold it again
//! (fakelag, as Ergo does): the shell reads nothing more from that
//! connection meanwhile, so TCP slows the flooder and nobody else pays.
//! A flooder delayed for [`Rule::refuse_after`] in a row has its messages
//! refused instead (read at once, answered with an error, not delivered)
//! until one arrives that the buckets hold.
//!
//! Pure: the times come in, no clock is read.

use std::time::{Duration, Instant};

use super::fair::{Bucket, Rate};

/// The server's rule (`--flood-burst`, `--flood-rate`,
/// `--flood-bytes-rate`, `--flood-lag`); a rate of 0 turns flood control
/// off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub messages: Rate,
    pub bytes: Rate,
    /// How long a flooder is delayed in a row before its messages are
    /// refused (zero: refused at once beyond the burst).
    pub refuse_after: Duration,
}

impl Rule {
    /// Flood control is on.
    pub fn on(&self) -> bool {
        self.messages.per_sec > 0.0
    }

    /// `burst` messages at once, then `rate` a second; bytes (unless
    /// `bytes_rate` is 0) at `bytes_rate` a second after a burst of 8 seconds' worth, at least
    /// `max_message`, so the largest message the door takes can always
    /// go; refused after 10 s of delays.
    pub fn new(burst: u32, rate: f64, bytes_rate: f64, max_message: usize) -> Rule {
        Rule {
            messages: Rate {
                per_sec: rate,
                burst: f64::from(burst.max(1)),
            },
            bytes: Rate {
                per_sec: bytes_rate,
                burst: (bytes_rate * 8.0).max(max_message as f64),
            },
            refuse_after: Duration::from_secs(10),
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the buckets: at once.
    Pass,
    /// Beyond them: at this time (it is counted already).
    Delay(Instant),
    /// Delayed too long in a row: refused.
    Refuse,
}

/// One connection's buckets.
#[derive(Debug, Clone)]
pub struct Flood {
    /// A delayed message spends its tokens at once: the debt is what
    /// its delay waits out.
    messages: Bucket,
    bytes: Bucket,
    /// The delays in a row since a message last went at once.
    lagged: Duration,
}

impl Flood {
    /// Full buckets at `now`.
    pub fn new(rule: &Rule, now: Instant) -> Flood {
        Flood {
            messages: Bucket::full(now, rule.messages),
            bytes: Bucket::full(now, rule.bytes),
            lagged: Duration::ZERO,
        }
    }

    /// A message of `len` bytes at `now`.
    pub fn message(&mut self, rule: &Rule, now: Instant, len: usize) -> Verdict {
        // A byte rate of 0: bytes are not limited.
        let len = if rule.bytes.per_sec > 0.0 {
            len as f64
        } else {
            0.0
        };
        let wait = self
            .messages
            .wait_for(now, rule.messages, 1.0)
            .max(self.bytes.wait_for(now, rule.bytes, len));
        if wait.is_zero() {
            self.lagged = Duration::ZERO;
        } else if rule.refuse_after.is_zero() || self.lagged + wait > rule.refuse_after {
            return Verdict::Refuse;
        } else {
            self.lagged += wait;
        }
        self.messages.spend(1.0);
        self.bytes.spend(len);
        if wait.is_zero() {
            Verdict::Pass
        } else {
            Verdict::Delay(now + wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule::new(10, 2.0, 4096.0, 16 * 1024)
    }

    #[test]
    fn a_burst_goes_then_two_a_second_then_refused_after_ten_seconds() {
        let r = rule();
        let t0 = Instant::now();
        let mut f = Flood::new(&r, t0);
        for _ in 0..10 {
            assert_eq!(f.message(&r, t0, 20), Verdict::Pass);
        }
        // The 11th waits half a second; the shell delivers it then, and
        // only then reads the next.
        let mut now = t0;
        let mut delayed = 0;
        loop {
            match f.message(&r, now, 20) {
                Verdict::Delay(at) => {
                    assert_eq!(at - now, Duration::from_millis(500));
                    now = at;
                    delayed += 1;
                }
                Verdict::Refuse => break,
                Verdict::Pass => panic!("a flooder never goes at once"),
            }
        }
        assert_eq!(delayed, 20, "10 s of delays, at 2 a second");
        // Refused while it keeps at it, until the bucket holds a message.
        assert_eq!(f.message(&r, now, 20), Verdict::Refuse);
        now += Duration::from_millis(500);
        assert_eq!(f.message(&r, now, 20), Verdict::Pass);
        assert_eq!(
            f.message(&r, now, 20),
            Verdict::Delay(now + Duration::from_millis(500))
        );
    }

    #[test]
    fn a_human_never_waits() {
        let r = rule();
        let t0 = Instant::now();
        let mut f = Flood::new(&r, t0);
        // A line a second for an hour, and a paste of 8 lines now and then.
        for s in 0..3600u64 {
            let now = t0 + Duration::from_secs(s);
            let lines = if s % 60 == 0 { 8 } else { 1 };
            for _ in 0..lines {
                assert_eq!(f.message(&r, now, 120), Verdict::Pass, "at {s} s");
            }
        }
    }

    #[test]
    fn bytes_are_a_bucket_too_and_the_largest_message_always_fits() {
        let r = rule();
        let t0 = Instant::now();
        let mut f = Flood::new(&r, t0);
        assert_eq!(r.bytes.burst, 32768.0);
        assert_eq!(f.message(&r, t0, 16 * 1024), Verdict::Pass);
        assert_eq!(f.message(&r, t0, 16 * 1024), Verdict::Pass);
        // Empty of bytes: the next 4 KiB waits a second.
        assert_eq!(
            f.message(&r, t0, 4096),
            Verdict::Delay(t0 + Duration::from_secs(1))
        );
    }
}
