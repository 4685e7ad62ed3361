//! The chat part's socket side: taking a connection in, one read per
//! readable connection, the frames that read produced, one write per
//! connection with output. Each system call is in conn.rs; what follows
//! from it is decided by the session.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;

use super::conn::Conn;
use super::rings::{MAX_SPANS, MIRROR_MIN_WRITE, MIRROR_SPANS};
use super::{Chat, Closing};
use crate::core::codec::{Decoded, Protocol};
use crate::core::hub::ConnId;
use crate::core::session::{Input, Next, Phase, Session};
use crate::core::wire::{ErrorCode, Event};
use crate::daemon::door::{self, Entry, Knock};
use crate::daemon::logbook::Level;
use crate::daemon::net;
use crate::daemon::shared::Shared;

impl Chat {
    // -- accepting ----------------------------------------------------------

    /// A connection the door let in: a seat for its address, then a
    /// session; or 503 at once.
    /// Takes in what waits on chat listener `index`, one accept(2) per
    /// knock; false when accept(2) ran out of descriptors (the loop
    /// frees the spare and calls [`Chat::refuse_one`]).
    pub fn accept(&mut self, sh: &mut Shared, index: usize) -> bool {
        loop {
            match sh.door.knock(index) {
                Knock::Stream(stream, peer, entry) => self.admit(sh, stream, peer, entry),
                Knock::Empty => return true,
                Knock::OutOfDescriptors => return false,
                Knock::Failed(e) => {
                    sh.log.warn(format!("accept: {e}"));
                    return true;
                }
            }
        }
    }

    /// With the spare descriptor freed: one connection waiting on
    /// listener `index` gets 503 and is closed.
    pub fn refuse_one(sh: &mut Shared, index: usize) {
        if let Knock::Stream(stream, peer, entry) = sh.door.knock(index) {
            Chat::refuse_at_door(sh, stream, peer, entry, "out of file descriptors");
        }
    }

    pub fn admit(&mut self, sh: &mut Shared, stream: TcpStream, peer: SocketAddr, entry: Entry) {
        let tls = entry.tls;
        if !sh.poller.can_watch(stream.as_raw_fd()) {
            Chat::refuse_at_door(
                sh,
                stream,
                peer,
                entry,
                "no descriptor slot left for select(2)",
            );
            return;
        }
        if self.conns.len() >= sh.cfg.max_clients {
            let why = format!("--max-clients {} reached", sh.cfg.max_clients);
            Chat::refuse_at_door(sh, stream, peer, entry, &why);
            return;
        }
        let limits = sh.cfg.door_limits();
        let seat = match sh.door.seat(peer, &sh.cfg.exempt, limits) {
            Ok(seat) => seat,
            Err(why) => return Chat::refuse_at_door(sh, stream, peer, entry, &why),
        };
        if let Some(oldest) = sh.door.oldest_handshake_if_full(limits) {
            self.evict_handshake(sh, oldest);
        }
        if let Err(e) = stream.set_nonblocking(true) {
            sh.log.warn(format!("client {peer}: set non-blocking: {e}"));
            sh.door.closed(None, seat);
            return;
        }
        // Chat lines are small and latency matters more than segment count.
        let _ = stream.set_nodelay(true);
        // A failure leaves the kernel's own sizing: nothing to report.
        let _ = net::set_send_buffer(&stream);
        if let Err(e) = net::set_liveness(&stream, sh.cfg.tcp_keepalive) {
            sh.client_log(
                peer.ip(),
                Level::Warn,
                format!("client {peer}: TCP keepalive: {e}"),
            );
        }
        let id = sh.fresh_id();
        let session = Session::new(sh.now, sh.limits, entry.protocol);
        let config = if tls {
            sh.tls.as_ref().map(|t| &t.config)
        } else {
            None
        };
        match Conn::new(stream, peer, seat, session, config) {
            Ok(mut conn) => {
                if entry.web {
                    conn.web = Some(Box::default());
                } else if entry.protocol == Protocol::Irc {
                    conn.irc = Some(Box::default());
                }
                self.conns.insert(id, Box::new(conn));
                sh.door.opened(id);
                self.touch(sh, id);
            }
            Err(e) => {
                sh.door.closed(None, seat);
                sh.client_log(peer.ip(), Level::Warn, format!("tls: client {peer}: {e}"));
            }
        }
    }

    /// Unfinished handshakes fill their share of the seats: the oldest
    /// makes room for the new connection (see `Door::oldest_handshake_if_full`).
    /// Counted in one log line a second.
    fn evict_handshake(&mut self, sh: &mut Shared, oldest: ConnId) {
        sh.counters.refusals += 1;
        let peer = self.peer_text(oldest);
        self.remove(sh, oldest);
        let limits = sh.cfg.door_limits();
        if let Some(line) = sh.door.evicted(sh.now, &peer, limits) {
            sh.log.warn(line);
        }
    }

    /// Answers 503 with one best-effort write and closes at once; such a
    /// connection never enters the loop.
    pub fn refuse_at_door(
        sh: &mut Shared,
        stream: TcpStream,
        peer: SocketAddr,
        entry: Entry,
        why: &str,
    ) {
        let why_full = format!("server at capacity: {why}");
        let line = match entry.protocol {
            _ if entry.web => crate::core::http::refusal(503, &why_full, false),
            Protocol::Prototype => {
                sh.encode(&Event::error(ErrorCode::Unavailable, None, &why_full))
            }
            Protocol::Irc => crate::core::irc::Message::new(
                None,
                "ERROR",
                &[&format!("Closing Link: * ({why_full})")],
            )
            .encode(),
        };
        door::turn_away(stream, entry, &line);
        sh.counters.refusals += 1;
        sh.client_log(
            peer.ip(),
            Level::Warn,
            format!("refused 503 to {peer}: {why}"),
        );
    }

    // -- reading ----------------------------------------------------------------

    /// What the poller said of connection `id`. Returns false if `id` is
    /// not a chat connection.
    pub fn ready(&mut self, sh: &mut Shared, id: ConnId, readable: bool, writable: bool) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        if writable {
            c.blocked = false;
            self.feed(sh, id, Input::Writable);
        }
        if readable {
            self.read(sh, id);
        }
        self.drop_doomed(sh);
        true
    }

    fn read(&mut self, sh: &mut Shared, id: ConnId) {
        let now = sh.now;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut got = match c.read_once(&mut self.scratch) {
            Ok(got) => got,
            Err(e) => {
                let closing = c.session.is_closing();
                let action = c.session.handle(now, Input::ReadClosed);
                if !closing {
                    self.doom(id, Closing::Failed(format!("read error: {e}")));
                    return;
                }
                self.touch(sh, id);
                if let Some(a) = action {
                    self.act(sh, id, a);
                }
                return;
            }
        };
        if let Some(why) = got.tls_error {
            self.tls_failed(sh, id, &why);
            return;
        }
        if c.web.is_some() && self.web_news(sh, id, std::mem::take(&mut got.web)) {
            self.touch(sh, id);
            return;
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if got.plaintext > 0 {
            let action = c
                .session
                .handle(now, Input::Received(&self.scratch[..got.plaintext]));
            debug_assert!(action.is_none());
        }
        if got.closed {
            let action = c.session.handle(now, Input::ReadClosed);
            if let Some(a) = action {
                self.touch(sh, id);
                self.act(sh, id, a);
                return;
            }
        }
        self.touch(sh, id);
        self.mark_runnable(id);
    }

    /// The TLS layer failed (garbage on the TLS port, a handshake the
    /// client broke off, a bad record): logged once, rustls's alert sent if
    /// the socket takes it, and the connection closed; a member leaves.
    fn tls_failed(&mut self, sh: &mut Shared, id: ConnId, why: &str) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.flush_tls_once();
        let peer = c.peer;
        if c.session.phase() == Phase::Member {
            self.doom(id, Closing::Failed(format!("tls: {why}")));
        } else {
            sh.counters.refusals += 1;
            sh.client_log(
                peer.ip(),
                Level::Warn,
                format!("tls: client {peer}: {why}; closing"),
            );
            self.remove(sh, id);
        }
    }

    // -- frames -------------------------------------------------------------------

    /// Decodes and acts on the frames waiting in the runnable connections;
    /// a member whose room is backed up waits for it to flow again.
    pub fn process_runnable(&mut self, sh: &mut Shared) {
        while let Some(id) = self.runnable.pop_front() {
            if let Some(c) = self.conns.get_mut(&id) {
                c.on_run_list = false;
            }
            self.process(sh, id);
            self.drop_doomed(sh);
        }
    }

    fn process(&mut self, sh: &mut Shared, id: ConnId) {
        loop {
            let Some(c) = self.conns.get(&id) else {
                return;
            };
            if c.session.phase() == Phase::Member && !self.room_flows(sh, id) {
                // Picked up again when the room flows (room_flow_changed).
                return;
            }
            if c.awaiting_verdict {
                // Picked up again once the cluster has decided the join.
                return;
            }
            if c.parked {
                // Picked up again when its password check runs.
                return;
            }
            if c.lagged.is_some() {
                // Flood control delayed a message: it runs when its time
                // comes (a timer), and the later frames wait behind it.
                let Some(decoded) = self.conns.get_mut(&id).and_then(|c| c.take_lagged(sh.now))
                else {
                    return;
                };
                self.on_decoded(sh, id, decoded);
                continue;
            }
            let c = self.conns.get_mut(&id).expect("checked");
            let next = c.session.poll_frame();
            self.touch(sh, id);
            match next {
                Next::Nothing => {
                    // Decrypted input may still wait inside rustls (or
                    // decoded input in the web layer).
                    let c = self.conns.get_mut(&id).expect("checked");
                    let n = if c.web.is_some() {
                        let (n, fed) = c.pull_web_input(&mut self.scratch);
                        if self.web_news(sh, id, fed) {
                            return;
                        }
                        n
                    } else {
                        c.pull_plaintext(&mut self.scratch)
                    };
                    if n == 0 {
                        return;
                    }
                    let c = self.conns.get_mut(&id).expect("checked");
                    let action = c
                        .session
                        .handle(sh.now, Input::Received(&self.scratch[..n]));
                    debug_assert!(action.is_none());
                }
                Next::Error(e) => {
                    self.close_with_error(sh, id, e.code(), &e.reason(), None);
                    return;
                }
                Next::Gone { mid_frame } => {
                    let why = if mid_frame {
                        "connection closed mid-frame"
                    } else {
                        "connection closed"
                    };
                    self.doom(id, Closing::Failed(why.to_string()));
                    return;
                }
                Next::Decoded(decoded) => {
                    let Some(decoded) = self.flood_gate(sh, id, decoded) else {
                        continue;
                    };
                    let Some(decoded) = self.ping_barrier(sh, id, decoded) else {
                        return;
                    };
                    self.on_decoded(sh, id, decoded);
                }
            }
        }
    }

    /// An IRC PING is answered after everything else read in the same
    /// pass: while other connections wait on the runnable list, the PING
    /// waits behind them (held as a message due now, so it runs first on
    /// its connection's next turn, and waits once only). Readiness comes
    /// in descriptor order, not arrival order, so without this a client's
    /// PING could overtake another client's message sent before it, and
    /// PING would not be the barrier clients (and irctest) use it as.
    fn ping_barrier(&mut self, sh: &mut Shared, id: ConnId, decoded: Decoded) -> Option<Decoded> {
        let is_ping = matches!(&decoded, Decoded::Irc(Ok(m)) if m.command == "PING");
        if !is_ping || self.runnable.is_empty() {
            return Some(decoded);
        }
        let c = self.conns.get_mut(&id)?;
        c.lagged = Some(Box::new((sh.now, decoded)));
        c.on_run_list = true;
        self.runnable.push_back(id);
        None
    }

    // -- writing --------------------------------------------------------------

    /// One write per connection with output that the socket may take,
    /// including output this very pass produced. Returns whether anything
    /// was written.
    pub fn flush(&mut self, sh: &mut Shared) -> bool {
        self.settle(sh);
        let mut wrote = false;
        while let Some(id) = self.writes.pop() {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            c.on_write_list = false;
            if !c.wants_write() {
                continue;
            }
            let own = c.session.output().len();
            let mirrored = !sh.cfg.no_sendfile;
            if mirrored
                && own == 0
                && c.is_plain()
                && self.rings.pending(c) >= MIRROR_MIN_WRITE
                && let Err(e) = self.rings.sync_mirror(c)
            {
                sh.log.warn(format!(
                    "sendfile mirror off (members write from their room's ring): {e}"
                ));
            }
            let mut spans: [&[u8]; MAX_SPANS] = [&[]; MAX_SPANS];
            let n = self.rings.spans(c, &mut spans);
            let mut from_mirror = [(0, 0); MIRROR_SPANS];
            let from = mirrored
                .then(|| self.rings.mirror_for(c, &spans[..n], own, &mut from_mirror))
                .flatten();
            let result = match from {
                Some((m, k)) => c.send_mirrored(m, &from_mirror[..k]),
                None => c.write_once(&spans[..n]),
            };
            match result {
                Ok(sent) => {
                    sh.counters.bytes_out += sent.written as u64;
                    sh.counters.writes += u64::from(sent.written > 0);
                    wrote |= sent.written > 0;
                    if sent.taken > own {
                        self.rings.wrote(c, sent.taken - own);
                        let pending = self.rings.pending(c);
                        // Less waits now: no drop can come of it.
                        let _ = c.session.ring_moved(sh.now, pending);
                    }
                    if sent.blocked {
                        self.feed(sh, id, Input::SendBlocked);
                    }
                    self.feed(sh, id, Input::Sent(sent.taken.min(own)));
                }
                Err(e) => {
                    if self.conns[&id].session.is_closing() {
                        self.remove(sh, id);
                    } else {
                        self.doom(id, Closing::Failed(format!("write error: {e}")));
                    }
                }
            }
        }
        self.release_rings();
        self.drop_doomed(sh);
        wrote
    }
}
