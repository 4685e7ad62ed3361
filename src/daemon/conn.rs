//! One chat connection in the shell: the socket, the peer's address, the
//! core [`Session`] that decides everything about it, and the event loop's
//! bookkeeping (what the poller watches it for, when its timer is set,
//! which work lists it is on). Each I/O helper does exactly one system
//! call; none decides anything.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use super::poller::Interest;
use crate::core::hub::RoomId;
use crate::core::session::Session;
use crate::sys::nonblock::{ReadOutcome, read_some, write_some};

pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub session: Session,
    /// What the poller watches this connection for.
    pub interest: Interest,
    /// The deadline this connection's timer is set for.
    pub scheduled: Option<Instant>,
    /// The room whose backlog count includes this connection.
    pub counted_in: Option<RoomId>,
    /// On the pass's list of connections to settle.
    pub touched: bool,
    /// On the list of connections with output to write.
    pub on_write_list: bool,
    /// On the list of connections with frames to process.
    pub on_run_list: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, session: Session) -> Conn {
        Conn {
            stream,
            peer,
            session,
            interest: Interest::default(),
            scheduled: None,
            counted_in: None,
            touched: false,
            on_write_list: false,
            on_run_list: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// One read(2) of at most what the session takes now.
    pub fn read_once(&mut self, scratch: &mut [u8]) -> io::Result<(ReadOutcome, usize)> {
        let want = self.session.read_budget().min(scratch.len());
        if want == 0 {
            return Ok((ReadOutcome::WouldBlock, 0));
        }
        let outcome = read_some(&mut self.stream, &mut scratch[..want])?;
        let n = match outcome {
            ReadOutcome::Data(n) => n,
            _ => 0,
        };
        Ok((outcome, n))
    }

    /// One write(2) of the session's output; how much the socket took.
    pub fn write_once(&mut self) -> io::Result<usize> {
        write_some(&mut self.stream, self.session.output())
    }

    /// Bytes the kernel still holds for the peer: not sent, or not yet
    /// acknowledged (SIOCOUTQ).
    pub fn unacknowledged(&self) -> usize {
        let mut n: nix::libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer,
        // which points at a live c_int; the descriptor is our open socket.
        let rc = unsafe { nix::libc::ioctl(self.stream.as_raw_fd(), nix::libc::TIOCOUTQ, &mut n) };
        if rc == 0 { n.max(0) as usize } else { 0 }
    }

    /// Whether output is still on its way: queued in the session, or held
    /// by the kernel unacknowledged by a peer that has not closed.
    pub fn unflushed(&self) -> bool {
        self.session.has_unsent() || (!self.session.read_closed() && self.unacknowledged() > 0)
    }

    /// Sends FIN.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
