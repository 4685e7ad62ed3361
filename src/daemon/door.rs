//! The door: the chat listeners and who may come in through them.
//!
//! One part that owns the listening sockets, the seats each address
//! holds ([`Occupancy`]), the unfinished handshakes oldest first, the
//! per-address join rate, and the spare descriptor for EMFILE. It decides
//! and remembers; the loop carries out (creates the connection, writes
//! the 503, logs). Time is passed in.
//!
//! Invariants: a seat taken with [`Door::seat`] is given back exactly
//! once, with [`Door::closed`]; a handshake is in the oldest-first set
//! from [`Door::opened`] until [`Door::joined`] or [`Door::closed`]; the
//! listeners are not watched while accepting is paused (no spare
//! descriptor left) or after [`Door::close`].

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::poller::{Interest, Poller, Token};
use crate::core::codec::Protocol;
use crate::core::fair::{
    AddressKey, Bucket, DoorLimits, Exempt, JOIN_RATE, Lru, Occupancy, REQUEST_RATE,
};
use crate::core::hub::ConnId;
use crate::sys::nonblock::{interrupted, would_block, write_some};

/// The first listener's poller token; listener `i` has `FIRST_LISTENER + i`.
pub const FIRST_LISTENER: Token = u64::MAX - 1024;

/// How long accepting pauses when descriptors run out and no spare is left.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Addresses whose join rate is remembered, at most.
const JOIN_RATES_TRACKED: usize = 4096;

/// What a listener speaks: TLS or plain, and which protocol inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tls: bool,
    pub protocol: Protocol,
    /// A web port: HTTP, then a WebSocket carrying `protocol` (chosen by
    /// the subprotocol; `Prototype` until then).
    pub web: bool,
}

/// What one accept(2) on a listener gave.
#[derive(Debug)]
pub enum Knock {
    /// A connection, and what its listener speaks.
    Stream(TcpStream, SocketAddr, Entry),
    /// Nobody waits (or no such listener).
    Empty,
    /// EMFILE/ENFILE: see [`Door::out_of_descriptors`].
    OutOfDescriptors,
    Failed(io::Error),
}

/// The seat a new connection took: its address key, and whether the
/// per-address limits apply to it (not exempt).
#[derive(Debug, Clone, Copy)]
pub struct Seat {
    pub key: AddressKey,
    pub limited: bool,
}

pub struct Door {
    /// Chat listeners, each with what it speaks.
    listeners: Vec<(TcpListener, Entry)>,
    seats: Occupancy,
    /// Connections still in their handshake, oldest first (ids grow).
    handshaking: BTreeSet<ConnId>,
    join_rates: Lru<AddressKey, Bucket>,
    /// Web requests per address (`REQUEST_RATE`).
    request_rates: Lru<AddressKey, Bucket>,
    /// A descriptor kept in reserve: when accept(2) fails with EMFILE, it
    /// is closed so the pending connection can be accepted, refused, and
    /// closed.
    spare: Option<File>,
    paused_until: Option<Instant>,
    last_fd_warning: Option<Instant>,
    /// Handshakes closed to make room since the last log line, and when
    /// that was.
    evicted: u64,
    last_eviction_log: Option<Instant>,
}

impl Door {
    pub fn new(listeners: Vec<(TcpListener, Entry)>) -> Door {
        Door {
            listeners,
            seats: Occupancy::default(),
            handshaking: BTreeSet::new(),
            join_rates: Lru::new(JOIN_RATES_TRACKED),
            request_rates: Lru::new(JOIN_RATES_TRACKED),
            spare: File::open("/dev/null").ok(),
            paused_until: None,
            last_fd_warning: None,
            evicted: 0,
            last_eviction_log: None,
        }
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// The addresses listened on for one kind of entry.
    pub fn addresses(&self, entry: Entry) -> Vec<String> {
        self.listeners
            .iter()
            .filter(|(_, e)| *e == entry)
            .filter_map(|(l, _)| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect()
    }

    /// The addresses of every kind of entry, into `status`'s fields.
    pub fn fill_addresses(&self, v: &mut crate::core::control::StatusView) {
        let of =
            |tls: bool, protocol: Protocol, web: bool| self.addresses(Entry { tls, protocol, web });
        v.listen = of(false, Protocol::Prototype, false);
        v.tls_listen = of(true, Protocol::Prototype, false);
        v.irc_listen = of(false, Protocol::Irc, false);
        v.irc_tls_listen = of(true, Protocol::Irc, false);
        v.web_listen = of(false, Protocol::Prototype, true);
        v.web_tls_listen = of(true, Protocol::Prototype, true);
    }

    /// One accept(2) on listener `index` (an interrupted or aborted one is
    /// retried).
    pub fn knock(&self, index: usize) -> Knock {
        let Some((listener, entry)) = self.listeners.get(index) else {
            return Knock::Empty;
        };
        loop {
            return match listener.accept() {
                Ok((stream, peer)) => Knock::Stream(stream, peer, *entry),
                Err(e) if would_block(&e) => Knock::Empty,
                Err(e) if interrupted(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if is_fd_exhaustion(&e) => Knock::OutOfDescriptors,
                Err(e) => Knock::Failed(e),
            };
        }
    }

    /// Takes a seat for a connection from `peer`, or says why not (the
    /// reason for the 503).
    pub fn seat(
        &mut self,
        peer: SocketAddr,
        exempt: &Exempt,
        l: DoorLimits,
    ) -> Result<Seat, String> {
        let seat = Seat {
            key: AddressKey::of(peer.ip()),
            limited: !exempt.contains(peer.ip()),
        };
        self.seats.admit(seat.key, seat.limited, l)?;
        Ok(seat)
    }

    /// When unfinished handshakes fill their share of the seats: the
    /// oldest, which should make room for the new connection (a real
    /// client finishes in milliseconds), so stalled handshakes from many
    /// addresses can never shut the door.
    pub fn oldest_handshake_if_full(&self, l: DoorLimits) -> Option<ConnId> {
        if self.handshaking.len() < l.handshakes_total {
            return None;
        }
        self.handshaking.iter().next().copied()
    }

    /// A connection entered the loop, in its handshake.
    pub fn opened(&mut self, id: ConnId) {
        self.handshaking.insert(id);
    }

    /// A handshake became a member.
    pub fn joined(&mut self, id: ConnId, seat: Seat) {
        if self.handshaking.remove(&id) {
            self.seats.joined(seat.key, seat.limited);
        }
    }

    /// A connection is gone (`id` None: it never entered the loop); its
    /// seat is free again.
    pub fn closed(&mut self, id: Option<ConnId>, seat: Seat) {
        let handshaking = id.is_none_or(|id| self.handshaking.remove(&id));
        self.seats.closed(seat.key, seat.limited, handshaking);
    }

    /// One more handshake was closed to make room; a log line (at most
    /// one a second) says how many since the last.
    pub fn evicted(&mut self, now: Instant, latest: &str, l: DoorLimits) -> Option<String> {
        self.evicted += 1;
        if self
            .last_eviction_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_eviction_log = Some(now);
        let line = format!(
            "{} unfinished handshake(s) closed to make room (oldest first, latest {latest}): --max-handshakes {} reached",
            self.evicted, l.handshakes_total
        );
        self.evicted = 0;
        Some(line)
    }

    /// A join from `key` (10 at once, then one every 2 s), or the reason
    /// it must wait.
    pub fn take_join(&mut self, key: AddressKey, now: Instant) -> Result<(), String> {
        let bucket = self.join_rates.entry(key, || Bucket::full(now, JOIN_RATE));
        bucket.take(now, JOIN_RATE).map_err(|wait| {
            format!(
                "too many joins from {key}; try again in {} s",
                wait.as_secs().max(1)
            )
        })
    }

    /// A web request from `key` (60 at once, then 10 a second), or the
    /// reason it must wait.
    pub fn take_request(&mut self, key: AddressKey, now: Instant) -> Result<(), String> {
        let bucket = self
            .request_rates
            .entry(key, || Bucket::full(now, REQUEST_RATE));
        bucket.take(now, REQUEST_RATE).map_err(|wait| {
            format!(
                "too many requests from {key}; try again in {} s",
                wait.as_secs().max(1)
            )
        })
    }

    /// accept(2) said EMFILE/ENFILE. The pending connection would keep
    /// the listener readable and the loop spinning. Returns the warning
    /// to log (at most one a second), and whether the spare descriptor was
    /// given up: then the caller accepts and refuses the connection, and
    /// calls [`Door::spare_back`]. Without a spare, accepting pauses.
    pub fn out_of_descriptors(&mut self, now: Instant) -> (Option<&'static str>, bool) {
        let warn = self
            .last_fd_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if warn {
            self.last_fd_warning = Some(now);
        }
        let warning =
            warn.then_some("out of file descriptors: refusing new connections until some close");
        let freed = self.spare.take().is_some();
        if !freed {
            self.paused_until = Some(now + ACCEPT_PAUSE);
        }
        (warning, freed)
    }

    /// Takes the spare descriptor back after a refusal; if there is none
    /// to take, accepting pauses a moment.
    pub fn spare_back(&mut self, now: Instant) {
        self.spare = File::open("/dev/null").ok();
        if self.spare.is_none() {
            self.paused_until = Some(now + ACCEPT_PAUSE);
        }
    }

    /// Ends a pause that is over.
    pub fn tick(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|t| now >= t) {
            self.paused_until = None;
        }
    }

    /// Accepting is paused (descriptors ran out with no spare left).
    pub fn paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// When a pause ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Watches the listeners for readability, unless paused or `closing`.
    pub fn register(&self, poller: &mut dyn Poller, closing: bool) {
        let interest = Interest {
            read: !closing && !self.paused(),
            write: false,
        };
        for (i, (l, _)) in self.listeners.iter().enumerate() {
            poller.set(l.as_raw_fd(), FIRST_LISTENER + i as u64, interest);
        }
    }

    /// Closes the listeners (shutdown).
    pub fn close(&mut self, poller: &mut dyn Poller) {
        for (i, (l, _)) in self.listeners.drain(..).enumerate() {
            poller.remove(l.as_raw_fd(), FIRST_LISTENER + i as u64);
        }
    }
}

/// Answers with `line` (one best-effort write; none on TLS, whose client
/// could not read it) and closes at once.
pub fn turn_away(mut stream: TcpStream, entry: Entry, line: &[u8]) {
    let _ = stream.set_nonblocking(true);
    if !entry.tls {
        let _ = write_some(&mut stream, line);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Answers a control connection that cannot be served (no descriptor for
/// it) and closes at once.
pub fn turn_away_control(mut stream: std::os::unix::net::UnixStream, line: &[u8]) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write(line);
}

pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fair::door_tests::L; // 3 per address, 2 handshakes, 4 in all
    use std::io::Read;

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const PLAIN: Entry = Entry {
        tls: false,
        protocol: Protocol::Prototype,
        web: false,
    };

    fn no_exemption() -> Exempt {
        Exempt(Vec::new())
    }

    fn door() -> Door {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Door::new(vec![(l, PLAIN)])
    }

    #[test]
    fn a_listener_is_knocked_on_until_empty() {
        let d = door();
        let addr: SocketAddr = d.addresses(PLAIN)[0].parse().unwrap();
        let tls = Entry { tls: true, ..PLAIN };
        assert!(d.addresses(tls).is_empty());
        assert!(matches!(d.knock(0), Knock::Empty));
        let _c = TcpStream::connect(addr).unwrap();
        // The connection is in the backlog once connect returns.
        let mut got = None;
        for _ in 0..100 {
            match d.knock(0) {
                Knock::Stream(_, p, entry) => {
                    got = Some((p.ip(), entry.tls));
                    break;
                }
                Knock::Empty => std::thread::sleep(Duration::from_millis(5)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, Some((peer("127.0.0.1:1").ip(), false)));
        assert!(matches!(d.knock(0), Knock::Empty));
        assert!(matches!(d.knock(7), Knock::Empty), "no such listener");
    }

    #[test]
    fn seats_are_per_address_and_given_back_once() {
        let mut d = door();
        let ex = no_exemption();
        let a = d.seat(peer("192.0.2.1:1"), &ex, L).unwrap();
        d.opened(1);
        d.seat(peer("192.0.2.1:2"), &ex, L).unwrap();
        d.opened(2);
        let full = d.seat(peer("192.0.2.1:3"), &ex, L).unwrap_err();
        assert!(full.contains("2 unfinished handshakes"), "{full}");
        // Another address has its own seats.
        let b = d.seat(peer("192.0.2.2:1"), &ex, L).unwrap();
        d.opened(3);
        d.joined(1, a);
        d.joined(1, a); // a second time changes nothing
        d.closed(Some(1), a);
        d.seat(peer("192.0.2.1:4"), &ex, L).unwrap();
        d.closed(Some(3), b);
        // Exempt addresses are not counted at all.
        let loopback = Exempt::loopback();
        for port in 1..10 {
            let s = d.seat(peer(&format!("127.0.0.1:{port}")), &loopback, L);
            assert!(!s.unwrap().limited);
        }
    }

    #[test]
    fn the_oldest_handshake_makes_room_when_they_fill_their_share() {
        let mut d = door();
        let ex = no_exemption();
        let four = [
            (5, "192.0.2.1:1"),
            (6, "192.0.2.2:1"),
            (7, "192.0.2.3:1"),
            (8, "192.0.2.4:1"),
        ];
        for (id, p) in four {
            assert_eq!(d.oldest_handshake_if_full(L), None);
            d.seat(peer(p), &ex, L).unwrap();
            d.opened(id);
        }
        assert_eq!(d.oldest_handshake_if_full(L), Some(5));
        let s6 = Seat {
            key: AddressKey::of(peer("192.0.2.2:1").ip()),
            limited: true,
        };
        d.joined(6, s6);
        assert_eq!(
            d.oldest_handshake_if_full(L),
            None,
            "a member is no handshake"
        );
    }

    #[test]
    fn evictions_are_logged_once_a_second_with_the_count() {
        let mut d = door();
        let t0 = Instant::now();
        let first = d.evicted(t0, "192.0.2.1:1", L).unwrap();
        assert!(first.starts_with("1 unfinished"), "{first}");
        assert!(first.contains("--max-handshakes 4"), "{first}");
        assert_eq!(d.evicted(t0 + Duration::from_millis(10), "x", L), None);
        assert_eq!(d.evicted(t0 + Duration::from_millis(20), "x", L), None);
        let next = d
            .evicted(t0 + Duration::from_secs(1), "192.0.2.9:1", L)
            .unwrap();
        assert!(next.starts_with("3 unfinished"), "{next}");
        assert!(next.contains("latest 192.0.2.9:1"), "{next}");
    }

    #[test]
    fn joins_are_rate_limited_per_address() {
        let mut d = door();
        let t0 = Instant::now();
        let key = AddressKey::of(peer("192.0.2.1:1").ip());
        for _ in 0..10 {
            d.take_join(key, t0).unwrap();
        }
        let why = d.take_join(key, t0).unwrap_err();
        assert!(why.contains("try again in 2 s"), "{why}");
        d.take_join(AddressKey::of(peer("192.0.2.2:1").ip()), t0)
            .unwrap();
        d.take_join(key, t0 + Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn without_a_spare_descriptor_accepting_pauses() {
        let mut d = door();
        let t0 = Instant::now();
        let (warning, freed) = d.out_of_descriptors(t0);
        assert!(warning.is_some() && freed);
        assert!(!d.paused(), "the spare lets one connection be refused");
        // The spare is not back yet: the next exhaustion pauses.
        let (warning, freed) = d.out_of_descriptors(t0 + Duration::from_millis(1));
        assert!(warning.is_none() && !freed, "one warning a second");
        assert!(d.paused());
        assert_eq!(
            d.deadline(),
            Some(t0 + Duration::from_millis(1) + ACCEPT_PAUSE)
        );
        d.tick(t0 + Duration::from_millis(50));
        assert!(d.paused());
        d.tick(t0 + Duration::from_secs(1));
        assert!(!d.paused());
        d.spare_back(t0);
        assert!(!d.paused());
        assert!(d.out_of_descriptors(t0 + Duration::from_secs(2)).1);
    }

    #[test]
    fn turned_away_plain_clients_read_the_line() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        turn_away(s, PLAIN, b"503\n");
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "503\n");
    }
}
