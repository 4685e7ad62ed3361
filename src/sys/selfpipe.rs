//! Signals as input to a select(2) loop: the handlers (signal-hook) only set
//! a flag and write a byte to a pipe; the loop watches the pipe's read end,
//! drains it, then reads the flags, so no signal that arrived before the
//! drain is missed, and nothing is done inside a handler.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct SelfPipe {
    read: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl SelfPipe {
    /// Installs handlers for `signals`.
    pub fn install(signals: &[i32]) -> io::Result<SelfPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for &sig in signals {
            let flag = Arc::new(AtomicBool::new(false));
            // The flag first: the pipe wakes the loop, which must then see it.
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
            flags.push((sig, flag));
        }
        Ok(SelfPipe { read, flags })
    }

    /// The descriptor to watch for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe, then takes the flags: the signals that arrived
    /// since the last call.
    pub fn take(&mut self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.read).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        self.flags
            .iter()
            .filter(|(_, flag)| flag.swap(false, Ordering::SeqCst))
            .map(|(sig, _)| *sig)
            .collect()
    }
}
