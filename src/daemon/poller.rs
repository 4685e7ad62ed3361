//! The seam between the event loop and the kernel's readiness interface.
//! The loop says what each descriptor should be watched for, once, when it
//! changes ([`Poller::set`]); [`Poller::wait`] reports what is ready, by
//! token. [`Select`] implements it with select(2), the default, and owns
//! every FD_SETSIZE rule; [`Epoll`] (`--poller epoll`) with epoll(7),
//! level-triggered like select, without its ceiling and without a cost per
//! idle descriptor.

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

impl Interest {
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
    pub const WRITE: Interest = Interest {
        read: false,
        write: true,
    };
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

/// epoll(7), level-triggered (select's semantics). Wishes are recorded
/// and handed to the kernel at the next wait, only where the registration
/// really changes, so the loop may re-state a descriptor's interest every
/// pass at no cost. Dropping read interest is lazier still: back-pressure
/// turns reading off and on for a whole room at a time, and a member that
/// sends nothing meanwhile never needs a system call; the kernel is told
/// only when the descriptor is reported readable (and that report is
/// withheld from the loop).
#[derive(Default)]
pub struct Epoll {
    epoll: Option<nix::sys::epoll::Epoll>,
    /// By descriptor: what the loop wants watched, and what the kernel has.
    wanted: Vec<Option<(Token, Interest)>>,
    given: Vec<Option<(Token, Interest)>>,
    /// Descriptors whose wish changed since the last wait (each once).
    dirty: Vec<RawFd>,
    is_dirty: Vec<bool>,
    events: Vec<nix::sys::epoll::EpollEvent>,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        use nix::sys::epoll::{Epoll as Sys, EpollCreateFlags};
        Ok(Epoll {
            epoll: Some(Sys::new(EpollCreateFlags::EPOLL_CLOEXEC)?),
            events: vec![nix::sys::epoll::EpollEvent::empty(); 1024],
            ..Epoll::default()
        })
    }

    fn wish(&mut self, fd: RawFd, want: Option<(Token, Interest)>) {
        let i = fd as usize;
        if self.wanted.len() <= i {
            let n = (i + 1).next_power_of_two();
            self.wanted.resize(n, None);
            self.given.resize(n, None);
            self.is_dirty.resize(n, false);
        }
        self.wanted[i] = want;
        if !self.is_dirty[i] {
            self.is_dirty[i] = true;
            self.dirty.push(fd);
        }
    }

    /// Hands the changed wishes to the kernel, except read interest being
    /// dropped (see the type's comment).
    fn apply(&mut self) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        for &fd in &dirty {
            let i = fd as usize;
            self.is_dirty[i] = false;
            let lazy = match (self.wanted[i], self.given[i]) {
                (Some((t, w)), Some((gt, g))) => t == gt && g.read && !w.read && w.write == g.write,
                _ => false,
            };
            if !lazy {
                self.sync(fd)?;
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        Ok(())
    }

    /// Makes the kernel's registration of `fd` what the loop wants. A
    /// descriptor closed since it was registered has left the epoll set by
    /// itself, and its number may already be a new connection's: hence the
    /// fallbacks.
    fn sync(&mut self, fd: RawFd) -> io::Result<()> {
        use nix::sys::epoll::{EpollEvent, EpollFlags};
        let i = fd as usize;
        let epoll = self.epoll.as_ref().expect("created");
        let want = self.wanted[i].filter(|(_, w)| w.read || w.write);
        if want == self.given[i] {
            return Ok(());
        }
        let borrowed = borrow(fd);
        let Some((_, interest)) = want else {
            let _ = epoll.delete(borrowed);
            self.given[i] = None;
            return Ok(());
        };
        let mut flags = EpollFlags::empty();
        if interest.read {
            flags |= EpollFlags::EPOLLIN;
        }
        if interest.write {
            flags |= EpollFlags::EPOLLOUT;
        }
        // The descriptor, not the token, travels with the event: the
        // token is looked up, so a withheld or stale report is recognised.
        let mut event = EpollEvent::new(flags, fd as u64);
        let result = if self.given[i].is_some() {
            match epoll.modify(borrowed, &mut event) {
                Err(Errno::ENOENT) => epoll.add(borrowed, event),
                other => other,
            }
        } else {
            match epoll.add(borrowed, event) {
                Err(Errno::EEXIST) => epoll.modify(borrowed, &mut event),
                other => other,
            }
        };
        result?;
        self.given[i] = want;
        Ok(())
    }
}

impl Poller for Epoll {
    fn can_watch(&self, fd: RawFd) -> bool {
        fd >= 0
    }

    fn set(&mut self, fd: RawFd, token: Token, interest: Interest) {
        if fd >= 0 {
            self.wish(fd, Some((token, interest)));
        }
    }

    fn remove(&mut self, fd: RawFd, token: Token) {
        let i = fd as usize;
        if fd >= 0 && i < self.wanted.len() && self.wanted[i].is_some_and(|(t, _)| t == token) {
            self.wish(fd, None);
        }
    }

    fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Ready>) -> io::Result<()> {
        use nix::sys::epoll::{EpollFlags, EpollTimeout};
        self.apply()?;
        let timeout = match timeout {
            None => EpollTimeout::NONE,
            Some(t) => {
                // Rounded up: a deadline 0.3 ms away must not spin.
                let ms = t.as_micros().div_ceil(1000).min(i32::MAX as u128 - 1) as i32;
                EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE)
            }
        };
        let epoll = self.epoll.as_ref().expect("created");
        let n = match epoll.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let trouble = EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP;
        let mut resync = Vec::new();
        for ev in &self.events[..n] {
            let flags = ev.events();
            let fd = ev.data() as RawFd;
            let Some((token, want)) = self.wanted.get(fd as usize).copied().flatten() else {
                // Removed, not yet told to the kernel.
                resync.push(fd);
                continue;
            };
            // Errors and hang-ups surface as readiness, as select(2) shows
            // them: the read or write that follows finds out what happened.
            let broken = flags.intersects(trouble);
            let readable = (flags.contains(EpollFlags::EPOLLIN) || broken) && want.read;
            let writable = (flags.contains(EpollFlags::EPOLLOUT) || broken) && want.write;
            if flags.contains(EpollFlags::EPOLLIN) && !want.read {
                // Reading was turned off lazily: now the kernel must know.
                resync.push(fd);
            }
            if readable || writable {
                out.push(Ready {
                    token,
                    readable,
                    writable,
                });
            }
        }
        for fd in resync {
            self.sync(fd)?;
        }
        if n == self.events.len() {
            // A full batch: next time, room for more.
            let more = n * 2;
            self.events
                .resize(more, nix::sys::epoll::EpollEvent::empty());
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
        reports_by_token(&mut Select::default());
        reports_by_token(&mut Epoll::new().unwrap());
        assert!(!Select::default().can_watch(FD_SETSIZE as RawFd));
        assert!(Epoll::new().unwrap().can_watch(FD_SETSIZE as RawFd));
    }

    #[test]
    fn epoll_drops_read_interest_lazily_but_never_reports_it() {
        let mut p = Epoll::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        let read = Interest {
            read: true,
            write: false,
        };
        p.set(fd, 3, read);
        let mut out = Vec::new();
        p.wait(Some(Duration::ZERO), &mut out).unwrap();
        p.set(fd, 3, Interest::default());
        a.write_all(b"x").unwrap();
        // Readable, but not wanted: not reported, and (told to the kernel
        // now) not reported again either.
        for _ in 0..2 {
            out.clear();
            p.wait(Some(Duration::from_millis(50)), &mut out).unwrap();
            assert!(out.is_empty(), "{out:?}");
        }
        p.set(fd, 3, read);
        out.clear();
        p.wait(Some(Duration::from_secs(1)), &mut out).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn epoll_survives_a_closed_and_reused_descriptor() {
        let mut p = Epoll::new().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        let read = Interest {
            read: true,
            write: false,
        };
        p.set(fd, 1, read);
        let mut out = Vec::new();
        p.wait(Some(Duration::ZERO), &mut out).unwrap();
        // Closed without remove, then the number reused for a new socket.
        drop(b);
        drop(a);
        let (mut c, d) = UnixStream::pair().unwrap();
        let fd2 = if d.as_raw_fd() == fd {
            d.as_raw_fd()
        } else {
            c.as_raw_fd()
        };
        p.set(fd2, 2, read);
        if fd2 == c.as_raw_fd() {
            use std::io::Write;
            let mut d = d;
            d.write_all(b"x").unwrap();
        } else {
            c.write_all(b"x").unwrap();
        }
        out.clear();
        p.wait(Some(Duration::from_secs(1)), &mut out).unwrap();
        assert_eq!(
            out,
            vec![Ready {
                token: 2,
                readable: true,
                writable: false
            }]
        );
    }

    fn reports_by_token(p: &mut dyn Poller) {
        let (mut a, b) = UnixStream::pair().unwrap();
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
    }
}
