//! One chat connection in the shell: the socket, the transport (plain, or
//! a rustls server connection between the socket and the session), the
//! core [`Session`] that decides everything about it, and the event loop's
//! bookkeeping (what the poller watches it for, when its timer is set,
//! which work lists it is on). Each I/O helper does one socket system call;
//! none decides anything.
//!
//! The session sees plaintext only: `--sendq` and the high-water mark count
//! plaintext. rustls holds at most [`TLS_BUFFER`] more per connection
//! (ciphertext not yet taken by the socket), and takes plaintext from the
//! session only while it is under that.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use rustls::{ServerConfig, ServerConnection};

use super::irc::IrcClient;
use super::mirror::Mirror;
use super::web::{Fed, Web};
use crate::core::hub::RoomId;
use crate::core::ring::Feed;
use crate::core::session::{Action, Input, Session};
use crate::daemon::door::Seat;
use crate::daemon::poller::Interest;
use crate::sys::nonblock::{
    MAX_PARTS, ReadOutcome, interrupted, read_some, would_block, write_some, write_some_vectored,
};

/// Most bytes rustls buffers for one connection on the way out.
pub const TLS_BUFFER: usize = 64 * 1024;

pub enum Transport {
    Plain,
    Tls(Box<ServerConnection>),
}

/// What one read did.
#[derive(Debug, Default)]
pub struct Received {
    /// Plaintext bytes now at the front of the scratch buffer.
    pub plaintext: usize,
    /// The peer closed (EOF, or TLS close_notify).
    pub closed: bool,
    /// The TLS layer failed (garbage, a bad handshake): why.
    pub tls_error: Option<String>,
    /// The web layer's news (a web port's connection only).
    pub web: Fed,
}

/// What one write did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Plaintext taken from the session's output.
    pub taken: usize,
    /// Bytes written to the socket.
    pub written: usize,
    /// The socket did not take everything: wait for writability.
    pub blocked: bool,
}

pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub session: Session,
    pub transport: Transport,
    /// The socket was full at the last write.
    pub blocked: bool,
    /// TLS: close_notify is queued; the FIN follows once it is out.
    fin_pending: bool,
    /// TLS: decrypted bytes rustls holds that the session has not taken.
    tls_plaintext: usize,
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
    /// On the list of connections to drop after the current delivery.
    pub doomed: bool,
    /// Its handshake waits for a password check in a later pass.
    pub parked: bool,
    /// Cluster mode: its join waits for the cluster's verdict; its later
    /// frames wait with it.
    pub awaiting_verdict: bool,
    /// The seat it holds at the door: who it is for the per-address
    /// limits, and whether they apply.
    pub seat: Seat,
    /// Its join has been counted against its address's join rate.
    pub join_paid: bool,
    /// An IRC connection's registration, capabilities and away message
    /// (daemon/chat/irc.rs); None for the prototype's protocol.
    pub irc: Option<Box<IrcClient>>,
    /// Counted among the users (LUSERS) until removed.
    pub counted_user: bool,
    /// Flood control: its buckets (from its first message), and a
    /// message delayed until a time, its later frames waiting with it.
    pub flood: Option<Box<crate::core::flood::Flood>>,
    pub lagged: Option<Box<(std::time::Instant, crate::core::codec::Decoded)>>,
    /// A web port's connection: HTTP, then a WebSocket, between the
    /// transport and the session (web.rs).
    pub web: Option<Box<Web>>,
    /// Web: a close frame is queued; the transport's close follows once
    /// the layer's output is out.
    web_fin: bool,
    /// The prototype's protocol: the account it logged in as (IRC keeps
    /// its own in `irc`).
    pub account: Option<String>,
    /// It asked for `topic` events.
    pub wants_topic: bool,
    /// It asked for `"commands"`: a message starting with `/` is a room
    /// operator's command.
    pub wants_commands: bool,
    /// It asked for `room` events (limit and privacy).
    pub wants_room: bool,
    /// It asked for `direct` events (direct messages).
    pub wants_direct: bool,
    /// The name it takes direct messages under (while a member).
    pub direct_name: Option<String>,
    /// The room ring it reads its room's lines from, and its place in it
    /// (rings.rs); its own output comes before them.
    pub ring: Option<RingSeat>,
}

/// A connection's place in a room's ring: the room, the lane (the
/// prototype's lines, or IRC's for one set of tags) and its feed.
#[derive(Debug)]
pub struct RingSeat {
    pub room: RoomId,
    pub lane: usize,
    pub feed: Feed,
}

/// What appending a delivered line to a connection's session gave
/// ([`Conn::take_line`]).
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    pub action: Option<Action>,
    /// Its backlog crossed the high-water mark (either way).
    pub crossed: bool,
    /// It was not on the touched list yet (it is marked now).
    pub first_touch: bool,
}

impl Conn {
    /// Appends one delivered line to the session: the delivery hot path,
    /// shared by both protocols.
    #[inline]
    pub fn take_line(&mut self, now: Instant, line: &[u8]) -> Taken {
        let action = self.session.handle(now, Input::Deliver(line));
        let crossed = self.session.backlogged() != self.counted_in.is_some();
        let first_touch = !std::mem::replace(&mut self.touched, true);
        Taken {
            action,
            crossed,
            first_touch,
        }
    }

    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        seat: Seat,
        session: Session,
        tls: Option<&Arc<ServerConfig>>,
    ) -> io::Result<Conn> {
        let transport = match tls {
            None => Transport::Plain,
            Some(config) => {
                let mut c = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
                c.set_buffer_limit(Some(TLS_BUFFER));
                Transport::Tls(Box::new(c))
            }
        };
        Ok(Conn {
            stream,
            peer,
            session,
            transport,
            blocked: false,
            fin_pending: false,
            tls_plaintext: 0,
            interest: Interest::default(),
            scheduled: None,
            counted_in: None,
            touched: false,
            on_write_list: false,
            on_run_list: false,
            doomed: false,
            parked: false,
            awaiting_verdict: false,
            seat,
            join_paid: false,
            irc: None,
            counted_user: false,
            flood: None,
            lagged: None,
            web: None,
            web_fin: false,
            account: None,
            wants_topic: false,
            wants_commands: false,
            wants_direct: false,
            direct_name: None,
            wants_room: false,
            ring: None,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// TLS and its handshake is not complete.
    pub fn tls_handshaking(&self) -> bool {
        match &self.transport {
            Transport::Tls(c) => c.is_handshaking(),
            Transport::Plain => false,
        }
    }

    /// Whether to watch the socket for reading (before the room's say).
    pub fn wants_read(&self) -> bool {
        if self.session.read_budget() == 0 {
            return false;
        }
        if !self.session.is_closing() && self.input_budget() == 0 {
            return false;
        }
        match &self.transport {
            Transport::Tls(c) if !self.session.is_closing() => c.wants_read(),
            _ => true,
        }
    }

    /// Decrypted input waits inside rustls for the session to take it.
    pub fn has_buffered_input(&self) -> bool {
        self.tls_plaintext > 0 || self.web.as_ref().is_some_and(|w| w.has_input())
    }

    /// How many bytes the transport may hand in now: what the session may
    /// take, or what the web layer may.
    fn input_budget(&self) -> usize {
        match &self.web {
            None => self.session.read_budget(),
            Some(w) if self.session.read_budget() > 0 => w.read_budget(),
            Some(_) => 0,
        }
    }

    /// Output to write now (the socket was not full).
    pub fn wants_write(&self) -> bool {
        !self.blocked && self.has_output()
    }

    /// Output waits for the socket to become writable.
    pub fn wants_writable(&self) -> bool {
        self.blocked && self.has_output()
    }

    fn has_output(&self) -> bool {
        if self.web_fin || self.web.as_ref().is_some_and(|w| !w.pending().is_empty()) {
            return true;
        }
        match &self.transport {
            Transport::Plain => self.session.pending() > 0,
            Transport::Tls(c) => self.session.pending() > 0 || c.wants_write() || self.fin_pending,
        }
    }

    /// One read from the socket; plaintext (at most what the session may
    /// take) lands at the front of `scratch`. While closing, whatever comes
    /// is read and discarded.
    pub fn read_once(&mut self, scratch: &mut [u8]) -> io::Result<Received> {
        let mut got = Received::default();
        if self.session.is_closing() {
            got.closed = read_some(&mut self.stream, scratch)? == ReadOutcome::Eof;
            return Ok(got);
        }
        let budget = self.input_budget();
        let Transport::Tls(tls) = &mut self.transport else {
            let want = budget.min(scratch.len());
            if want > 0 {
                match read_some(&mut self.stream, &mut scratch[..want])? {
                    ReadOutcome::Data(n) => got.plaintext = n,
                    ReadOutcome::Eof => got.closed = true,
                    ReadOutcome::WouldBlock => {}
                }
            }
            if let Some(web) = &mut self.web {
                got.web = web.feed(&scratch[..got.plaintext]);
                got.closed |= got.web.closed;
                got.plaintext = web.drain_into(scratch, self.session.read_budget());
            }
            return Ok(got);
        };
        if tls.wants_read() {
            match tls.read_tls(&mut self.stream) {
                Ok(0) => got.closed = true,
                Ok(_) => {}
                Err(e) if would_block(&e) || interrupted(&e) => {}
                Err(e) => return Err(e),
            }
            match tls.process_new_packets() {
                Ok(state) => {
                    self.tls_plaintext = state.plaintext_bytes_to_read();
                    got.closed |= state.peer_has_closed();
                }
                Err(e) => {
                    got.tls_error = Some(e.to_string());
                    return Ok(got);
                }
            }
        }
        if self.web.is_some() {
            got.web = self.pull_web(scratch);
            got.closed |= got.web.closed;
            got.plaintext = self.drain_web(scratch);
        } else {
            got.plaintext = self.pull_plaintext(scratch);
        }
        // Closed only once everything decrypted has been taken.
        got.closed &= self.tls_plaintext == 0;
        Ok(got)
    }

    /// Web over TLS: decrypted input rustls holds, into the web layer (as
    /// much as it may take now).
    fn pull_web(&mut self, scratch: &mut [u8]) -> Fed {
        let want = self
            .input_budget()
            .min(scratch.len())
            .min(self.tls_plaintext);
        let (Transport::Tls(tls), Some(web)) = (&mut self.transport, &mut self.web) else {
            return Fed::default();
        };
        if want == 0 {
            return Fed::default();
        }
        match tls.reader().read(&mut scratch[..want]) {
            Ok(n) => {
                self.tls_plaintext -= n;
                web.feed(&scratch[..n])
            }
            Err(_) => Fed::default(),
        }
    }

    /// Web: input waiting in rustls into the layer (when the layer has
    /// nothing left for the session), then decoded input to the front of
    /// `scratch`; with the layer's news.
    pub fn pull_web_input(&mut self, scratch: &mut [u8]) -> (usize, Fed) {
        let mut fed = Fed::default();
        if self.web.as_ref().is_some_and(|w| !w.has_input()) {
            fed = self.pull_web(scratch);
        }
        (self.drain_web(scratch), fed)
    }

    /// Web: decoded input to the front of `scratch`, what the session may
    /// take.
    fn drain_web(&mut self, scratch: &mut [u8]) -> usize {
        let budget = self.session.read_budget();
        self.web
            .as_mut()
            .map_or(0, |w| w.drain_into(scratch, budget))
    }

    /// TLS: moves decrypted input from rustls to the front of `scratch`, at
    /// most what the session may take now.
    pub fn pull_plaintext(&mut self, scratch: &mut [u8]) -> usize {
        let Transport::Tls(tls) = &mut self.transport else {
            return 0;
        };
        let want = self
            .session
            .read_budget()
            .min(scratch.len())
            .min(self.tls_plaintext);
        if want == 0 {
            return 0;
        }
        match tls.reader().read(&mut scratch[..want]) {
            Ok(n) => {
                self.tls_plaintext -= n;
                n
            }
            Err(_) => 0,
        }
    }

    /// One write to the socket: the session's own output, then `spans`
    /// (its waiting lines in its room's ring), as they are (one writev);
    /// or (TLS) as much of them as rustls takes, encrypted, then one write
    /// of what rustls has for the socket. `taken` counts both, own first.
    pub fn write_once(&mut self, spans: &[&[u8]]) -> io::Result<Sent> {
        if self.web.is_some() {
            return self.write_web(spans);
        }
        let mut sent = Sent::default();
        match &mut self.transport {
            Transport::Plain => {
                let output = self.session.output();
                let n = write_first_then(&mut self.stream, output, spans)?;
                let offered = output.len() + spans.iter().map(|s| s.len()).sum::<usize>();
                sent.taken = n;
                sent.written = n;
                sent.blocked = n < offered;
            }
            Transport::Tls(tls) => {
                let output = self.session.output();
                if !output.is_empty() {
                    sent.taken = tls.writer().write(output)?;
                }
                if sent.taken == output.len() {
                    sent.taken += plaintext_spans(tls, spans)?;
                }
                if tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(n) => sent.written = n,
                        Err(e) if would_block(&e) || interrupted(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                sent.blocked = tls.wants_write();
                if self.fin_pending && !tls.wants_write() {
                    self.fin_pending = false;
                    let _ = self.stream.shutdown(Shutdown::Write);
                }
            }
        }
        self.blocked = sent.blocked;
        Ok(sent)
    }

    /// Whether it speaks plaintext TCP (no TLS, no web layer): its ring
    /// spans may go by sendfile(2) from a mirror.
    pub fn is_plain(&self) -> bool {
        self.web.is_none() && matches!(self.transport, Transport::Plain)
    }

    /// A lane's mirror's spans (`(offset, length)`, the whole write), one
    /// sendfile(2) each until the socket takes one only in part: `taken`
    /// counts what it took.
    pub fn send_mirrored(&mut self, m: &Mirror, spans: &[(u64, usize)]) -> io::Result<Sent> {
        let mut sent = Sent::default();
        for &(from, len) in spans {
            let n = m.send(&self.stream, from, len)?;
            sent.taken += n;
            if n < len {
                sent.blocked = true;
                break;
            }
        }
        sent.written = sent.taken;
        self.blocked = sent.blocked;
        Ok(sent)
    }

    /// The web layer's write: the session's output framed into the layer,
    /// then one write of the layer's bytes and, once the session's output
    /// is all in the layer, of `spans` (ring frames: io.rs); through rustls
    /// with TLS. `taken` counts the session's output taken, then the ring
    /// bytes written.
    fn write_web(&mut self, spans: &[&[u8]]) -> io::Result<Sent> {
        let mut sent = Sent::default();
        let web = self.web.as_mut().expect("a web connection");
        sent.taken = web.take(self.session.output());
        let spans = if sent.taken == self.session.output().len() {
            spans
        } else {
            &[]
        };
        let ring: usize = spans.iter().map(|s| s.len()).sum();
        match &mut self.transport {
            Transport::Plain => {
                let layer = web.pending().len();
                let n = write_first_then(&mut self.stream, web.pending(), spans)?;
                web.consumed(n.min(layer));
                sent.taken += n.saturating_sub(layer);
                sent.written = n;
                sent.blocked = n < layer + ring;
            }
            Transport::Tls(tls) => {
                if !web.pending().is_empty() {
                    let n = tls.writer().write(web.pending())?;
                    web.consumed(n);
                }
                let took = if web.pending().is_empty() {
                    plaintext_spans(tls, spans)?
                } else {
                    0
                };
                sent.taken += took;
                if tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(n) => sent.written = n,
                        Err(e) if would_block(&e) || interrupted(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                sent.blocked = tls.wants_write() || !web.pending().is_empty() || took < ring;
            }
        }
        self.session.outside_left(web.pending().len());
        if self.web_fin && web.pending().is_empty() {
            self.web_fin = false;
            self.end_transport();
            sent.blocked &= !self.fin_pending;
        }
        if let Transport::Tls(tls) = &mut self.transport
            && self.fin_pending
            && !tls.wants_write()
        {
            self.fin_pending = false;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        self.blocked = sent.blocked;
        Ok(sent)
    }

    /// Ends our side: FIN, after TLS's close_notify when there is TLS
    /// (and a WebSocket's close frame before both).
    pub fn shutdown_write(&mut self) {
        if let Some(web) = &mut self.web {
            web.close(tungstenite::protocol::frame::coding::CloseCode::Normal, "");
            self.web_fin = true;
            self.blocked = false;
            let _ = self.write_once(&[]);
            return;
        }
        self.end_transport();
        if self.fin_pending {
            let _ = self.write_once(&[]);
        }
    }

    /// The transport's own end: the FIN, or (TLS) close_notify, the FIN
    /// following once it is out.
    fn end_transport(&mut self) {
        match &mut self.transport {
            Transport::Plain => {
                let _ = self.stream.shutdown(Shutdown::Write);
            }
            Transport::Tls(tls) => {
                tls.send_close_notify();
                self.fin_pending = true;
                self.blocked = false;
            }
        }
    }

    /// Bytes still on their way to the peer: held by rustls, or by the
    /// kernel unacknowledged (SIOCOUTQ).
    pub fn unacknowledged(&self) -> usize {
        let web = self
            .web
            .as_ref()
            .map_or(0, |w| w.pending().len() + usize::from(self.web_fin));
        let tls = web
            + match &self.transport {
                Transport::Tls(c) => usize::from(c.wants_write()) + usize::from(self.fin_pending),
                Transport::Plain => 0,
            };
        let mut n: nix::libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer,
        // which points at a live c_int; the descriptor is our open socket.
        let rc = unsafe { nix::libc::ioctl(self.stream.as_raw_fd(), nix::libc::TIOCOUTQ, &mut n) };
        tls + if rc == 0 { n.max(0) as usize } else { 0 }
    }

    /// Whether output is still on its way: queued in the session, or held
    /// by rustls or the kernel for a peer that has not closed.
    pub fn unflushed(&self) -> bool {
        self.session.has_unsent() || (!self.session.read_closed() && self.unacknowledged() > 0)
    }

    /// Best effort, for a connection about to be dropped: one write of
    /// what rustls has queued (a TLS alert, say).
    pub fn flush_tls_once(&mut self) {
        if let Transport::Tls(tls) = &mut self.transport
            && tls.wants_write()
        {
            let _ = tls.write_tls(&mut self.stream);
        }
    }
}

/// One write of `first`, then `spans` (a writev when there are spans):
/// how many bytes the socket took, in that order.
fn write_first_then(stream: &mut TcpStream, first: &[u8], spans: &[&[u8]]) -> io::Result<usize> {
    if spans.is_empty() {
        return write_some(stream, first);
    }
    let mut parts: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
    parts[0] = first;
    let k = spans.len().min(parts.len() - 1);
    parts[1..=k].copy_from_slice(&spans[..k]);
    write_some_vectored(stream, &parts[..=k])
}

/// `spans` into rustls as plaintext, in order, until it takes one only in
/// part: how many bytes it took.
fn plaintext_spans(tls: &mut ServerConnection, spans: &[&[u8]]) -> io::Result<usize> {
    let mut took = 0;
    for span in spans {
        let n = tls.writer().write(span)?;
        took += n;
        if n < span.len() {
            break;
        }
    }
    Ok(took)
}
