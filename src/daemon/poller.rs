//! The seam between the event loop and the kernel's readiness interface.
//! The loop says what each descriptor should be watched for, once, when it
//! changes ([`Poller::set`]); [`Poller::wait`] reports what is ready, by
//! token. [`Select`] implements it with select(2), the default, and owns
//! every FD_SETSIZE rule; an epoll implementation can plug in beside it.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::select::{FdSet, select};
use nix::sys::time::{TimeVal, TimeValLike};

/// select(2) cannot watch descriptors at or above this number.
pub const FD_SETSIZE: usize = nix::libc::FD_SETSIZE;

/// Names what a descriptor belongs to; chosen by the loop, never reused.
pub type Token = u64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

/// One ready descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
}

pub trait Poller {
    /// Whether a descriptor can be watched at all.
    fn can_watch(&self, fd: RawFd) -> bool;

    /// Watches `fd` (named `token`) for `interest`; no interest at all
    /// forgets it.
    fn set(&mut self, fd: RawFd, token: Token, interest: Interest);

    /// Forgets `fd` if it is still registered under `token` (a descriptor
    /// number reused by another connection is left alone). Call it before
    /// the descriptor is closed.
    fn remove(&mut self, fd: RawFd, token: Token);

    /// Waits until something is ready or `timeout` passes (`None`: no
    /// limit); appends what is ready to `out`. An interrupted wait returns
    /// with nothing.
    fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Ready>) -> io::Result<()>;
}

const WORDS: usize = FD_SETSIZE / 64;

/// select(2) over persistent interest bitmaps: each wait copies them into
/// fd sets, and reads back only the descriptors that were watched.
pub struct Select {
    read: [u64; WORDS],
    write: [u64; WORDS],
    tokens: Vec<Token>,
}

impl Default for Select {
    fn default() -> Select {
        Select {
            read: [0; WORDS],
            write: [0; WORDS],
            tokens: vec![0; FD_SETSIZE],
        }
    }
}

fn bit(fd: RawFd) -> (usize, u64) {
    (fd as usize / 64, 1 << (fd as usize % 64))
}

/// Borrows a raw descriptor for an FdSet.
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: every descriptor in the bitmaps was registered by the loop
    // for an object it owns, and is removed before that object is closed;
    // the sets built from them never outlive one wait.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// The descriptors whose bit is set in `words`.
fn members(words: &[u64; WORDS]) -> impl Iterator<Item = RawFd> + '_ {
    words.iter().enumerate().flat_map(|(w, &bits)| {
        let mut bits = bits;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            Some((w * 64 + b as usize) as RawFd)
        })
    })
}

impl Poller for Select {
    fn can_watch(&self, fd: RawFd) -> bool {
        fd >= 0 && (fd as usize) < FD_SETSIZE
    }

    fn set(&mut self, fd: RawFd, token: Token, interest: Interest) {
        if !self.can_watch(fd) {
            debug_assert!(false, "descriptor {fd} is beyond select(2)'s reach");
            return;
        }
        let (w, b) = bit(fd);
        self.tokens[fd as usize] = token;
        if interest.read {
            self.read[w] |= b;
        } else {
            self.read[w] &= !b;
        }
        if interest.write {
            self.write[w] |= b;
        } else {
            self.write[w] &= !b;
        }
    }

    fn remove(&mut self, fd: RawFd, token: Token) {
        if self.can_watch(fd) && self.tokens[fd as usize] == token {
            self.set(fd, token, Interest::default());
        }
    }

    fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Ready>) -> io::Result<()> {
        let mut rset = FdSet::new();
        let mut wset = FdSet::new();
        for fd in members(&self.read) {
            rset.insert(borrow(fd));
        }
        for fd in members(&self.write) {
            wset.insert(borrow(fd));
        }
        let mut tv =
            timeout.map(|t| TimeVal::microseconds(t.as_micros().min(i64::MAX as u128) as i64));
        match select(None, &mut rset, &mut wset, None, tv.as_mut()) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let mut ready = self.read;
        for (r, w) in ready.iter_mut().zip(self.write.iter()) {
            *r |= w;
        }
        for fd in members(&ready) {
            let readable = rset.contains(borrow(fd));
            let writable = wset.contains(borrow(fd));
            if readable || writable {
                out.push(Ready {
                    token: self.tokens[fd as usize],
                    readable,
                    writable,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_by_token_and_forgets_on_remove() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut p = Select::default();
        let fd = b.as_raw_fd();
        p.set(
            fd,
            7,
            Interest {
                read: true,
                write: true,
            },
        );
        let mut out = Vec::new();
        p.wait(Some(Duration::ZERO), &mut out).unwrap();
        assert_eq!(
            out,
            vec![Ready {
                token: 7,
                readable: false,
                writable: true
            }]
        );
        a.write_all(b"x").unwrap();
        out.clear();
        p.set(
            fd,
            7,
            Interest {
                read: true,
                write: false,
            },
        );
        p.wait(Some(Duration::from_secs(1)), &mut out).unwrap();
        assert_eq!(
            out,
            vec![Ready {
                token: 7,
                readable: true,
                writable: false
            }]
        );
        // A stale token does not remove the current registration.
        p.remove(fd, 6);
        out.clear();
        p.wait(Some(Duration::ZERO), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        p.remove(fd, 7);
        out.clear();
        p.wait(Some(Duration::ZERO), &mut out).unwrap();
        assert!(out.is_empty());
        assert!(!p.can_watch(FD_SETSIZE as RawFd));
    }
}
