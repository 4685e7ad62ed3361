//! The host chatd runs on: systemd's notifications, its watchdog, and
//! the allocator's heap. One part, fed the pass's `now`, that never blocks.
//!
//! systemd's readiness protocol (sd_notify): datagrams such as `READY=1`,
//! `STATUS=...` and `STOPPING=1` to the socket named by `$NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace). Without the variable
//! every call does nothing. Sends never block and failures are ignored:
//! notification must not be able to stop the daemon.
//!
//! The watchdog: with `WatchdogSec=` in the unit, systemd sets
//! `$WATCHDOG_USEC` (and `$WATCHDOG_PID`) and expects `WATCHDOG=1` more
//! often than that; the loop sends it every half interval, once per pass
//! at most, so a loop that is stuck anywhere gets chatd killed and
//! restarted.
//!
//! The heap: once no output has been written for [`TRIM_QUIET`], the
//! memory drained output queues held goes back to the kernel (see
//! [`Host::trim_heap`]).
//!
//! Invariants: `STATUS=` goes out on change only, at most once per
//! [`STATUS_INTERVAL`]; a trim never runs under steady traffic, and a
//! trim that is due is a deadline only while it lies in the future.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// How long the loop must have written nothing before the heap is
/// trimmed.
pub const TRIM_QUIET: Duration = Duration::from_secs(1);

/// At most one STATUS= notification per this interval.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What the host part needs to know of the daemon each pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub clients: usize,
    pub rooms: usize,
}

pub struct Host {
    notifier: Notifier,
    /// The counts last reported in STATUS= (None: never), and when.
    status_sent: (Option<Counts>, Instant),
    /// When the next WATCHDOG=1 is due (when systemd's watchdog is on).
    watchdog_due: Option<Instant>,
    /// Total bytes written at the last heap trim.
    trimmed_at_bytes: u64,
    /// When the heap may be trimmed: [`TRIM_QUIET`] after the last write.
    next_trim: Instant,
    /// Shutting down: STATUS= says so and is not updated.
    stopping: bool,
}

impl Host {
    pub fn new(notifier: Notifier, now: Instant) -> Host {
        Host {
            notifier,
            status_sent: (None, now),
            watchdog_due: None,
            trimmed_at_bytes: 0,
            next_trim: now,
            stopping: false,
        }
    }

    /// Start-up is done: the sockets are bound and the loop runs.
    pub fn ready(&self) {
        self.notifier.send("READY=1");
    }

    pub fn stopping(&mut self) {
        self.stopping = true;
        self.notifier.send("STOPPING=1\nSTATUS=shutting down");
    }

    /// The watchdog ping and the status, each when due.
    pub fn tick(&mut self, now: Instant, counts: Counts) {
        self.pet_watchdog(now);
        self.report_status(now, counts);
    }

    /// Sends WATCHDOG=1 when it is due.
    fn pet_watchdog(&mut self, now: Instant) {
        let Some(interval) = self.notifier.watchdog_interval() else {
            return;
        };
        if self.watchdog_due.is_none_or(|due| now >= due) {
            self.notifier.send("WATCHDOG=1");
            self.watchdog_due = Some(now + interval);
        }
    }

    /// Tells systemd how many clients and rooms there are (on change, at
    /// most once per [`STATUS_INTERVAL`]).
    fn report_status(&mut self, now: Instant, counts: Counts) {
        if !self.notifier.enabled() || self.stopping {
            return;
        }
        let (sent, at) = self.status_sent;
        if sent != Some(counts) && (sent.is_none() || now.duration_since(at) >= STATUS_INTERVAL) {
            self.notifier.send(&format!(
                "STATUS={} client(s), {} room(s)",
                counts.clients, counts.rooms
            ));
            self.status_sent = (Some(counts), now);
        }
    }

    /// Output was written: a trim waits until [`TRIM_QUIET`] from now.
    pub fn wrote(&mut self, now: Instant) {
        self.next_trim = now + TRIM_QUIET;
    }

    /// Once no output has been written for [`TRIM_QUIET`]: gives the
    /// memory the drained output queues held back to the kernel. glibc
    /// keeps freed heap pages otherwise, so a 10,000-client chatd would
    /// stay at the size of its largest burst. Never under steady traffic:
    /// a trim costs milliseconds with a large heap, and the pages it frees
    /// would be faulted back in at once (a rate sweep showed p99 spikes
    /// when it ran in every lull). Called only before a wait that may
    /// sleep. Returns whether it trimmed.
    pub fn trim_heap(&mut self, now: Instant, bytes_out: u64) -> bool {
        if bytes_out == self.trimmed_at_bytes || now < self.next_trim {
            return false;
        }
        self.trimmed_at_bytes = bytes_out;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory of the allocator.
        unsafe {
            nix::libc::malloc_trim(0);
        }
        true
    }

    /// The earliest moment the host part must be called again, if any: a
    /// watchdog ping, a changed status held back by the interval, a trim
    /// (only a future one: a due trim waits for a wait that may sleep, and
    /// a zero timeout would put it off forever).
    pub fn deadline(&self, now: Instant, counts: Counts, bytes_out: u64) -> Option<Instant> {
        let mut next = self.watchdog_due;
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.notifier.enabled() && !self.stopping && self.status_sent.0 != Some(counts) {
            earliest(self.status_sent.1 + STATUS_INTERVAL);
        }
        if bytes_out != self.trimmed_at_bytes && self.next_trim > now {
            earliest(self.next_trim);
        }
        next
    }
}

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&path).ok()?,
            };
            let sock = UnixDatagram::unbound().ok()?;
            sock.set_nonblocking(true).ok()?;
            Some((sock, addr))
        });
        let watchdog = target.as_ref().and(watchdog_from_env());
        Notifier { target, watchdog }
    }

    /// No notifications (and no watchdog).
    #[cfg(test)]
    pub fn none() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    #[cfg(test)]
    fn to(addr: SocketAddr, watchdog: Option<Duration>) -> Notifier {
        let sock = UnixDatagram::unbound().unwrap();
        sock.set_nonblocking(true).unwrap();
        Notifier {
            target: Some((sock, addr)),
            watchdog,
        }
    }

    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when the
    /// watchdog is on and meant for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    pub fn send(&self, message: &str) {
        if let Some((sock, addr)) = &self.target {
            let _ = sock.send_to_addr(message.as_bytes(), addr);
        }
    }
}

fn watchdog_from_env() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        let pid: u32 = pid.to_str()?.parse().ok()?;
        if pid != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notifier that sends to a socket the test reads.
    fn listening(watchdog: Option<Duration>) -> (Notifier, UnixDatagram, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "chatd-host-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        let n = Notifier::to(SocketAddr::from_pathname(&path).unwrap(), watchdog);
        (n, sock, dir)
    }

    fn received(sock: &UnixDatagram) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    }

    const ONE: Counts = Counts {
        clients: 1,
        rooms: 2,
    };
    const TWO: Counts = Counts {
        clients: 2,
        rooms: 2,
    };

    #[test]
    fn status_goes_out_on_change_at_most_once_an_interval() {
        let t0 = Instant::now();
        let (n, sock, dir) = listening(None);
        let mut host = Host::new(n, t0);
        host.tick(t0, ONE);
        assert_eq!(received(&sock), ["STATUS=1 client(s), 2 room(s)"]);
        host.tick(t0 + Duration::from_millis(10), ONE);
        host.tick(t0 + Duration::from_millis(20), TWO);
        assert!(received(&sock).is_empty(), "unchanged, then too soon");
        // The held-back change is a deadline, and goes out then.
        let later = t0 + Duration::from_millis(20);
        assert_eq!(host.deadline(later, TWO, 0), Some(t0 + STATUS_INTERVAL));
        host.tick(t0 + STATUS_INTERVAL, TWO);
        assert_eq!(received(&sock), ["STATUS=2 client(s), 2 room(s)"]);
        assert_eq!(host.deadline(t0 + STATUS_INTERVAL, TWO, 0), None);
        host.stopping();
        assert_eq!(received(&sock), ["STOPPING=1\nSTATUS=shutting down"]);
        host.tick(t0 + 5 * STATUS_INTERVAL, ONE);
        assert!(received(&sock).is_empty(), "no status while stopping");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_watchdog_is_petted_every_interval() {
        let t0 = Instant::now();
        let half = Duration::from_secs(5);
        let (n, sock, dir) = listening(Some(half));
        let mut host = Host::new(n, t0);
        host.tick(t0, ONE);
        let pings = |got: Vec<String>| got.iter().filter(|m| *m == "WATCHDOG=1").count();
        assert_eq!(pings(received(&sock)), 1);
        host.tick(t0 + Duration::from_secs(4), ONE);
        assert_eq!(pings(received(&sock)), 0);
        assert_eq!(host.deadline(t0, ONE, 0), Some(t0 + half));
        host.tick(t0 + half, ONE);
        assert_eq!(pings(received(&sock)), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_heap_is_trimmed_only_after_a_quiet_second() {
        let t0 = Instant::now();
        let mut host = Host::new(Notifier::none(), t0);
        assert!(!host.trim_heap(t0, 0), "nothing written since");
        host.wrote(t0);
        assert_eq!(host.deadline(t0, ONE, 100), Some(t0 + TRIM_QUIET));
        assert!(!host.trim_heap(t0 + Duration::from_millis(500), 100));
        assert!(host.trim_heap(t0 + TRIM_QUIET, 100));
        assert!(!host.trim_heap(t0 + 2 * TRIM_QUIET, 100), "once");
        // Due but not in the future: not a deadline (it waits for a wait).
        host.wrote(t0);
        assert_eq!(host.deadline(t0 + 2 * TRIM_QUIET, ONE, 200), None);
        // Without a notifier, nothing else is ever due.
        assert_eq!(host.deadline(t0, TWO, 200), Some(t0 + TRIM_QUIET));
    }
}
