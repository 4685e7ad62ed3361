//! When to try a join again after the server said 503 (busy: at capacity,
//! this address's share taken, too many logins waiting): an exponential
//! backoff with jitter, never sooner than the server's own "try again in
//! N s", and a bounded number of tries. Without I/O; the caller sleeps.

use std::time::Duration;

/// Tries after the first refusal before giving up.
pub const MAX_RETRIES: u32 = 6;
/// The first pause, doubled each time up to [`MAX_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

/// The backoff state of one join.
#[derive(Debug, Default)]
pub struct Backoff {
    retries: u32,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// Tries made so far after a 503.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The pause before the next try after a 503 with `reason`, or `None`
    /// when the tries are spent. `jitter` in 0.0..1.0 adds up to half the
    /// pause, so that clients refused together do not come back together.
    pub fn next(&mut self, reason: &str, jitter: f64) -> Option<Duration> {
        if self.retries >= MAX_RETRIES {
            return None;
        }
        let base = FIRST_PAUSE.saturating_mul(1 << self.retries).min(MAX_PAUSE);
        self.retries += 1;
        let pause = base.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 2.0);
        let hinted = hint(reason).unwrap_or_default().min(MAX_PAUSE);
        Some(pause.max(hinted))
    }
}

impl Backoff {
    /// The pause before trying to reconnect: as [`Backoff::next`]'s, but
    /// the tries never run out (a lost room is worth waiting for); at
    /// most [`MAX_PAUSE`] and a half.
    pub fn forever(&mut self, jitter: f64) -> Duration {
        let base = FIRST_PAUSE
            .saturating_mul(1 << self.retries.min(5))
            .min(MAX_PAUSE);
        self.retries = self.retries.saturating_add(1);
        base.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// The server's "try again in N s", when the reason says it.
fn hint(reason: &str) -> Option<Duration> {
    let rest = &reason[reason.find("try again in ")? + "try again in ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Duration::from_secs)
}

/// A jitter fraction in 0.0..1.0 from the clock's nanoseconds (good
/// enough to spread clients; nothing depends on it being random).
pub fn clock_jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_the_tries_end() {
        let mut b = Backoff::new();
        let pauses: Vec<u64> = std::iter::from_fn(|| b.next("server full", 0.0))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30]);
    }

    #[test]
    fn reconnecting_never_gives_up_and_never_waits_past_the_cap() {
        let mut b = Backoff::new();
        let pauses: Vec<u64> = (0..9).map(|_| b.forever(0.0).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(b.forever(1.0), Duration::from_secs(45));
    }

    #[test]
    fn jitter_adds_up_to_half_and_the_server_s_hint_is_a_floor() {
        let mut b = Backoff::new();
        assert_eq!(b.next("busy", 1.0), Some(Duration::from_millis(1500)));
        let mut b = Backoff::new();
        assert_eq!(
            b.next("too many joins from 192.0.2.1; try again in 7 s", 0.0),
            Some(Duration::from_secs(7))
        );
        let mut b = Backoff::new();
        assert_eq!(b.next("try again in 99999 s", 0.0), Some(MAX_PAUSE));
        assert_eq!(hint("try again in a second"), None);
    }
}
