//! A lane's bytes again, in a memfd, so that a plaintext member's span
//! goes to its socket by sendfile(2): the kernel then hands the socket
//! references to the file's pages instead of copying the span into a
//! socket buffer, once per member. A line is copied once into the file
//! (one pwrite(2) per lane per pass, of what the pass added), and once
//! more by the kernel, into each reader's buffer, as with write(2).
//!
//! Invariants:
//! - File offsets are the ring's absolute offsets; the file holds the
//!   lane's bytes from `start` to `end` (`end` never passes the ring's).
//! - A page is only ever written past what any span sent from it covers,
//!   and only whole pages behind every reader are punched out: a page in
//!   a socket's queue is never changed (punching drops the file's
//!   reference; the socket keeps its own).
//! - The descriptor lives at or above select(2)'s FD_SETSIZE, so it never
//!   takes a number the loop could watch; where it cannot be put there,
//!   there is no mirror and the lane's members write from the ring.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::fcntl::{FallocateFlags, FcntlArg, fallocate, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::daemon::poller::FD_SETSIZE;

/// Mirrors alive at once, at most: each holds a descriptor (counted in
/// chatd's own at start, daemon/mod.rs). A lane beyond it writes from its
/// ring.
pub const MAX_MIRRORS: usize = 64;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Set once a mirror could not be put at or above FD_SETSIZE (the
/// descriptor limit is too low): no mirror is tried again.
static NO_ROOM: AtomicBool = AtomicBool::new(false);

/// Pages behind every reader are punched out once there are this many
/// bytes of them (a system call per page would cost more than it frees).
const PUNCH: u64 = 64 * 1024;

pub struct Mirror {
    file: File,
    /// The first offset held, and just past the last.
    start: u64,
    end: u64,
    page: u64,
}

impl Mirror {
    /// An empty mirror whose first byte will be at `at`; None when
    /// [`MAX_MIRRORS`] are alive, or once the descriptor limit left no
    /// room above FD_SETSIZE (that error is returned the first time only).
    pub fn new(at: u64) -> io::Result<Option<Mirror>> {
        if NO_ROOM.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if LIVE.fetch_add(1, Ordering::Relaxed) >= MAX_MIRRORS {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            return Ok(None);
        }
        let made = Mirror::made(at);
        if let Err(e) = &made {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            if e.raw_os_error() == Some(nix::libc::EINVAL) {
                NO_ROOM.store(true, Ordering::Relaxed);
                let why =
                    format!("the descriptor limit leaves none at or above {FD_SETSIZE} ({e})");
                return Err(io::Error::other(why));
            }
        }
        made.map(Some)
    }

    fn made(at: u64) -> io::Result<Mirror> {
        let fd = memfd_create(c"chatd-ring", MFdFlags::MFD_CLOEXEC)?;
        let high = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(FD_SETSIZE as i32))?;
        drop(fd);
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(high) };
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as u64;
        Ok(Mirror {
            file: File::from(fd),
            start: at,
            end: at,
            page,
        })
    }

    /// Just past the last byte held.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The lane's bytes before `at` are gone from its ring: the mirror
    /// goes on from there (nothing before `at` is ever asked of it).
    pub fn skip_to(&mut self, at: u64) {
        if at > self.end {
            self.end = at;
            self.release(at);
            self.start = self.start.max(at);
        }
    }

    /// Appends `bytes`, the lane's from `end()` on.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.end)?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// Whether it holds `from..from + len`.
    pub fn covers(&self, from: u64, len: usize) -> bool {
        self.start <= from && from + len as u64 <= self.end
    }

    /// Every reader is at or past `upto`: the whole pages before it go
    /// (once they are [`PUNCH`] bytes or more).
    pub fn release(&mut self, upto: u64) {
        let cut = upto.min(self.end) / self.page * self.page;
        if cut < self.start + PUNCH {
            return;
        }
        let from = self.start / self.page * self.page;
        let len = (cut - from) as i64;
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        // A failed punch keeps the pages a little longer: nothing is wrong.
        if fallocate(&self.file, flags, from as i64, len).is_ok() {
            self.start = cut;
        }
    }

    /// One sendfile(2) of `from..from + len` to `stream`: how many bytes
    /// the socket took (0 when it takes none now).
    pub fn send(&self, stream: &TcpStream, from: u64, len: usize) -> io::Result<usize> {
        let mut offset = from as i64;
        loop {
            // SAFETY: both descriptors are open for the call; the kernel
            // writes only `offset`.
            let n = unsafe {
                nix::libc::sendfile(stream.as_raw_fd(), self.file.as_raw_fd(), &mut offset, len)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::os::unix::fs::MetadataExt;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn what_is_sent_is_what_was_appended_at_the_rings_offsets() {
        let mut m = Mirror::new(1000).unwrap().unwrap();
        assert!(m.file.as_raw_fd() >= FD_SETSIZE as i32);
        m.append(b"hello ").unwrap();
        m.append(b"world\n").unwrap();
        assert_eq!(m.end(), 1012);
        assert!(m.covers(1000, 12) && m.covers(1006, 6));
        assert!(!m.covers(999, 2) && !m.covers(1006, 7));
        let (a, mut b) = pair();
        assert_eq!(m.send(&a, 1006, 6).unwrap(), 6);
        assert_eq!(m.send(&a, 1000, 6).unwrap(), 6);
        let mut got = [0u8; 12];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"world\nhello ");
    }

    #[test]
    fn pages_behind_every_reader_are_given_back_whole() {
        let mut m = Mirror::new(0).unwrap().unwrap();
        let chunk = vec![b'x'; 128 * 1024];
        m.append(&chunk).unwrap();
        m.append(b"tail").unwrap();
        let held = |m: &Mirror| m.file.metadata().unwrap().blocks();
        let before = held(&m);
        // Not a whole page behind the reader: nothing goes.
        let mut m2 = Mirror::new(0).unwrap().unwrap();
        m2.append(b"abc").unwrap();
        m2.release(2);
        assert!(m2.covers(0, 3));
        // Less than PUNCH behind: kept for now.
        m.release(40 * 1024 + 100);
        assert_eq!(held(&m), before);
        m.release(PUNCH + 40 * 1024 + 100);
        assert!(held(&m) < before, "{} blocks, {before} before", held(&m));
        assert!(!m.covers(0, 10));
        assert!(
            m.covers(PUNCH + 40 * 1024, 100),
            "the page the reader is in stays"
        );
        let (a, mut b) = pair();
        assert_eq!(m.send(&a, 128 * 1024, 4).unwrap(), 4);
        let mut got = [0u8; 4];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"tail");
    }
}
