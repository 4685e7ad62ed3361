//! systemd's readiness protocol (sd_notify): datagrams such as `READY=1`,
//! `STATUS=...` and `STOPPING=1` to the socket named by `$NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace). Without the variable
//! every call does nothing. Sends never block and failures are ignored:
//! notification must not be able to stop the daemon.
//!
//! The watchdog: with `WatchdogSec=` in the unit, systemd sets
//! `$WATCHDOG_USEC` (and `$WATCHDOG_PID`) and expects `WATCHDOG=1` more
//! often than that; the event loop sends it every half interval, so a loop
//! that is stuck anywhere gets chatd killed and restarted.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

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
