//! Fair shares: what one source address may take of what everyone shares
//! (seats, unfinished handshakes, joins, password checks). Pure: times come
//! in as arguments.
//!
//! - [`AddressKey`]: who "one address" is: an IPv4 address, or an IPv6 /64
//!   (one subscriber's prefix, as ngircd and Ergo count them); an
//!   IPv4-mapped IPv6 address is its IPv4 address.
//! - [`Exempt`]: the CIDR ranges the per-address limits do not apply to
//!   (by default the loopback: the operator's own bridges, bots, proxies
//!   and benchmarks).
//! - [`Bucket`]: a token bucket: a rate with a burst, refilled by time.
//! - [`Lru`]: a map with a fixed number of entries; the least recently
//!   used goes when a new one comes, so memory and insert cost stay flat
//!   whatever number of addresses shows up.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// One address, for the limits: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    AddressKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// An IP range: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `ADDR` or `ADDR/LEN` (IPv4 or IPv6).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("'{s}' is not an address or range such as 10.0.0.0/8 or ::1");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The ranges the per-address limits leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exempt(pub Vec<Cidr>);

impl Exempt {
    /// The default: the loopback (127.0.0.0/8 and ::1).
    pub fn loopback() -> Exempt {
        Exempt(vec![
            Cidr {
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Cidr {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// A token bucket: up to `burst` at once, refilled at `per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Bucket {
    /// A full bucket.
    pub fn full(now: Instant, rate: Rate) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: Rate) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_sec).min(rate.burst);
        self.at = now;
    }

    /// The tokens there are now.
    pub fn level(&mut self, now: Instant, rate: Rate) -> f64 {
        self.refill(now, rate);
        self.tokens
    }

    /// Takes one token if there is one above `keep`; else how long until
    /// there will be.
    pub fn take_above(&mut self, now: Instant, rate: Rate, keep: f64) -> Result<(), Duration> {
        self.refill(now, rate);
        if self.tokens >= 1.0 + keep {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 + keep - self.tokens;
        Err(Duration::from_secs_f64(missing / rate.per_sec.max(1e-9)))
    }

    /// How long until `n` tokens are there (zero: they are now).
    pub fn wait_for(&mut self, now: Instant, rate: Rate, n: f64) -> Duration {
        self.refill(now, rate);
        let missing = (n - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / rate.per_sec.max(1e-9))
    }

    /// Spends `n` tokens, going into debt if there are fewer (the debt is
    /// refilled first).
    pub fn spend(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Takes one token if there is one; else how long until there will be.
    pub fn take(&mut self, now: Instant, rate: Rate) -> Result<(), Duration> {
        self.take_above(now, rate, 0.0)
    }

    /// Whether the bucket is full again (an entry that may be forgotten).
    pub fn is_full(&mut self, now: Instant, rate: Rate) -> bool {
        self.level(now, rate) >= rate.burst
    }
}

/// A map of at most `cap` entries; inserting into a full one evicts the
/// least recently used. Every operation is O(log n).
#[derive(Debug)]
pub struct Lru<K, V> {
    cap: usize,
    entries: HashMap<K, (u64, V)>,
    by_use: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(cap: usize) -> Lru<K, V> {
        Lru {
            cap: cap.max(1),
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks an entry up without counting it as a use.
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.entries.get(k).map(|(_, v)| v)
    }

    /// The entry for `k`, made with `make` if absent (evicting the least
    /// recently used when full); counts as a use.
    pub fn entry(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        self.clock += 1;
        let stamp = self.clock;
        if let Some((old, _)) = self.entries.get(&k) {
            self.by_use.remove(old);
        } else {
            if self.entries.len() >= self.cap
                && let Some((_, oldest)) = self.by_use.pop_first()
            {
                self.entries.remove(&oldest);
            }
            self.entries.insert(k.clone(), (0, make()));
        }
        self.by_use.insert(stamp, k.clone());
        let slot = self.entries.get_mut(&k).expect("just inserted");
        slot.0 = stamp;
        &mut slot.1
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (stamp, v) = self.entries.remove(k)?;
        self.by_use.remove(&stamp);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a = AddressKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = AddressKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = AddressKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            AddressKey::of("::ffff:192.0.2.7".parse().unwrap()),
            AddressKey::of("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn ranges_parse_and_match() {
        let lo = Exempt::loopback();
        assert!(lo.contains("127.0.0.1".parse().unwrap()));
        assert!(lo.contains("127.9.9.9".parse().unwrap()));
        assert!(lo.contains("::1".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        let net = Cidr::parse("192.168.0.0/16").unwrap();
        assert!(net.contains("192.168.44.1".parse().unwrap()));
        assert!(!net.contains("192.169.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
    }

    #[test]
    fn a_bucket_has_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let rate = Rate {
            per_sec: 2.0,
            burst: 3.0,
        };
        let mut b = Bucket::full(t0, rate);
        for _ in 0..3 {
            assert!(b.take(t0, rate).is_ok());
        }
        let wait = b.take(t0, rate).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(t0 + Duration::from_millis(500), rate).is_ok());
        // A reserve: only what is above it can be taken.
        let mut b = Bucket::full(t0, rate);
        assert!(b.take_above(t0, rate, 2.0).is_ok());
        assert!(b.take_above(t0, rate, 2.0).is_err());
        assert!(b.take(t0, rate).is_ok());
    }

    #[test]
    fn an_lru_keeps_its_bound_and_evicts_the_least_recently_used() {
        let mut l: Lru<u32, u32> = Lru::new(3);
        for k in 0..3 {
            *l.entry(k, || 0) += k;
        }
        l.entry(0, || 99); // 0 used again: 1 is now the oldest
        l.entry(7, || 7);
        assert_eq!(l.len(), 3);
        assert!(l.peek(&1).is_none());
        assert_eq!(l.peek(&0), Some(&0));
        for k in 100..10_000 {
            l.entry(k, || k);
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.remove(&9_999), Some(9_999));
        assert_eq!(l.len(), 2);
    }
}

/// What one address may hold at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorLimits {
    /// Connections per address (members and handshakes).
    pub per_address: usize,
    /// Unfinished handshakes per address.
    pub handshakes_per_address: usize,
    /// Unfinished handshakes over all addresses; past it, a new
    /// connection takes the seat of the oldest unfinished one (the loop's
    /// part), so stalled handshakes can never shut the door.
    pub handshakes_total: usize,
}

/// Joins (handshakes that asked for a room) one address may make: 10 at
/// once, then one every 2 s.
pub const JOIN_RATE: Rate = Rate {
    per_sec: 0.5,
    burst: 10.0,
};

/// Web requests (pages, metrics, WebSocket upgrades) one address may
/// make: 60 at once (a few page loads), then 10 a second.
pub const REQUEST_RATE: Rate = Rate {
    per_sec: 10.0,
    burst: 60.0,
};

/// Who holds what at the door: connections and unfinished handshakes per
/// address. The loop calls [`Occupancy::admit`] at accept,
/// [`Occupancy::joined`] when a handshake becomes a member, and
/// [`Occupancy::closed`] when a connection goes; exempt addresses are not
/// counted.
#[derive(Debug, Default)]
pub struct Occupancy {
    by_key: HashMap<AddressKey, (usize, usize)>,
}

impl Occupancy {
    /// Takes a seat for a new connection from `key`, or says why not (the
    /// reason for the 503). `limited` is false for an exempt address.
    pub fn admit(&mut self, key: AddressKey, limited: bool, l: DoorLimits) -> Result<(), String> {
        if limited {
            let (conns, hs) = self.by_key.get(&key).copied().unwrap_or((0, 0));
            if conns >= l.per_address {
                return Err(format!(
                    "{key} has {conns} connections, the most one address may have"
                ));
            }
            if hs >= l.handshakes_per_address {
                return Err(format!(
                    "{key} has {hs} unfinished handshakes, the most one address may have"
                ));
            }
            let e = self.by_key.entry(key).or_insert((0, 0));
            e.0 += 1;
            e.1 += 1;
        }
        Ok(())
    }

    /// A handshake from `key` became a member.
    pub fn joined(&mut self, key: AddressKey, limited: bool) {
        if limited && let Some(e) = self.by_key.get_mut(&key) {
            e.1 = e.1.saturating_sub(1);
        }
    }

    /// A connection from `key` is gone, still in its handshake or not.
    pub fn closed(&mut self, key: AddressKey, limited: bool, handshaking: bool) {
        if !limited {
            return;
        }
        if let Some(e) = self.by_key.get_mut(&key) {
            e.0 = e.0.saturating_sub(1);
            if handshaking {
                e.1 = e.1.saturating_sub(1);
            }
            if e.0 == 0 {
                self.by_key.remove(&key);
            }
        }
    }

    /// Addresses holding a connection (exempt ones not counted).
    pub fn addresses(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
pub mod door_tests {
    use super::*;

    /// Small limits for tests (also the daemon's door tests).
    pub const L: DoorLimits = DoorLimits {
        per_address: 3,
        handshakes_per_address: 2,
        handshakes_total: 4,
    };

    fn key(s: &str) -> AddressKey {
        AddressKey::of(s.parse().unwrap())
    }

    #[test]
    fn one_address_cannot_take_everyone_s_seats() {
        let mut o = Occupancy::default();
        let a = key("192.0.2.1");
        assert!(o.admit(a, true, L).is_ok());
        assert!(o.admit(a, true, L).is_ok());
        // Two stalled handshakes: the third waits for one to finish.
        assert!(
            o.admit(a, true, L)
                .unwrap_err()
                .contains("unfinished handshakes")
        );
        o.joined(a, true);
        assert!(o.admit(a, true, L).is_ok());
        o.joined(a, true);
        // Three connections (two members, one handshake): full.
        assert!(o.admit(a, true, L).unwrap_err().contains("3 connections"));
        // Another address is not affected.
        assert!(o.admit(key("192.0.2.2"), true, L).is_ok());
        o.closed(a, true, false);
        assert!(o.admit(a, true, L).is_ok());
    }

    #[test]
    fn exempt_addresses_are_not_counted() {
        let mut o = Occupancy::default();
        for _ in 0..10 {
            assert!(o.admit(key("127.0.0.1"), false, L).is_ok());
        }
        assert_eq!(o.addresses(), 0);
        assert!(o.admit(key("198.51.100.1"), true, L).is_ok());
        assert_eq!(o.addresses(), 1);
        o.closed(key("198.51.100.1"), true, true);
        assert_eq!(o.addresses(), 0);
    }
}
