//! systemd's readiness protocol (sd_notify): datagrams such as `READY=1`,
//! `STATUS=...` and `STOPPING=1` to the socket named by `$NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace). Without the variable
//! every call does nothing. Sends never block and failures are ignored:
//! notification must not be able to stop the daemon.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
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
        Notifier { target }
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
