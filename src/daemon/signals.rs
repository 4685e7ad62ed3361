//! Signals arrive through a self-pipe (signal-hook): the handlers only set a
//! flag and write a byte, and the event loop sees the pipe become readable.
//! The loop drains the pipe first, then reads the flags, so no signal that
//! arrived before the drain is missed.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// What the drained signals ask for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// SIGINT or SIGTERM: shut down gracefully.
    pub terminate: bool,
    /// SIGHUP.
    pub hangup: bool,
}

pub struct Signals {
    pipe: UnixStream,
    terminate: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers for SIGINT, SIGTERM and SIGHUP.
    pub fn install() -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let terminate = Arc::new(AtomicBool::new(false));
        let hangup = Arc::new(AtomicBool::new(false));
        for (sig, flag) in [
            (SIGINT, &terminate),
            (SIGTERM, &terminate),
            (SIGHUP, &hangup),
        ] {
            // The flag first: the pipe wakes the loop, which must then see it.
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(Signals {
            pipe: read,
            terminate,
            hangup,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// Empties the pipe, then takes the flags.
    pub fn take(&mut self) -> Pending {
        let mut buf = [0u8; 64];
        while let Ok(n) = self.pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        Pending {
            terminate: self.terminate.swap(false, Ordering::SeqCst),
            hangup: self.hangup.swap(false, Ordering::SeqCst),
        }
    }
}
