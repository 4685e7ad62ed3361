//! What the loop's parts share, and nothing else: the configuration and
//! the sessions' bounds, the hub (the rooms and who is in them), the log,
//! the poller, the door, the accounts and token keys, the counters, and
//! the pass's clock. Chat, control and cluster never hold one another; each
//! is handed this, with the pass's `now` in it, and returns what the
//! others must hear of as values.
//!
//! Invariant: the clock is read only in [`Shared::start_pass`], once a
//! pass (and once after the wait); everything below the loop takes `now`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::accounts::Accounts;
use super::config::Config;
use super::door::Door;
use super::logbook::{Level, Logbook};
use super::oidc::Oidc;
use super::poller::Poller;
use super::tls::TlsSetup;
use crate::core::codec;
use crate::core::control::Stats;
use crate::core::fair::AddressKey;
use crate::core::session::Limits;
use crate::core::wire::Event;
use crate::timefmt;

/// How long a closing connection may take to flush its last event and see
/// the peer's FIN before it is closed regardless.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// The bounds every new session gets.
pub fn session_limits(cfg: &Config) -> Limits {
    Limits {
        max_frame: cfg.max_frame,
        handshake_timeout: cfg.handshake_timeout,
        sendq: cfg.sendq,
        hwm: high_water_mark(cfg.sendq),
        stall_budget: cfg.write_timeout,
        linger: CLOSE_LINGER,
        ping: cfg.irc_ping,
    }
}

/// Above this much queued output a member is backed up: its room stops
/// being read. Low enough that buffers stay small (idle memory, cache) and
/// the kernel's socket buffer does the rest; never more than half the sendq.
pub fn high_water_mark(sendq: usize) -> usize {
    (sendq / 2).min(32 * 1024)
}

/// What `stats` counts.
#[derive(Debug, Default)]
pub struct Counters {
    pub messages_relayed: u64,
    pub deliveries: u64,
    pub bytes_out: u64,
    /// Writes to chat clients that sent bytes (bytes_out / writes: how
    /// well output is batched).
    pub writes: u64,
    pub slow_consumer_drops: u64,
    pub joins: u64,
    pub refusals: u64,
    /// Items read from Redis that failed the checks (cluster mode).
    pub cluster_dropped: u64,
    /// Held rooms whose inbox overflowed (cluster mode; see chat/inbox.rs).
    pub inbox_overflows: u64,
    /// Messages flood control refused.
    pub flood_refusals: u64,
    /// Cluster mode: whether the link was up and synchronised at the
    /// pass's start (the loop sets it; the metrics read it).
    pub cluster_up: Option<bool>,
}

pub struct Shared {
    pub cfg: Config,
    /// The bounds new sessions get (from `cfg`; open sessions keep theirs).
    pub limits: Limits,
    pub hub: crate::core::hub::Hub,
    pub log: Logbook,
    pub poller: Box<dyn Poller>,
    pub door: Door,
    pub accounts: Accounts,
    pub oidc: Option<Oidc>,
    /// The certificate and key for the TLS listeners.
    pub tls: Option<TlsSetup>,
    pub counters: Counters,
    /// The pass's time; nothing else in the loop reads the clock.
    pub now: Instant,
    /// Events' `ts` as of the pass.
    pub stamp: Stamp,
    /// Poller tokens for connections (chat and control).
    pub ids: Ids,
    /// The history file (None: memory only, as in the parts' tests).
    pub history: Option<super::history::History>,
}

/// The pass's wall-clock time: in milliseconds (IRCv3 server-time and
/// the history file's `at_ms`), and as events' `ts` (RFC 3339 UTC, to the
/// second, formatted once a second); and the message ids given out.
#[derive(Debug, Default)]
pub struct Stamp {
    ms: u64,
    secs: u64,
    text: String,
    /// Message ids given out, and the process's start in ms (their prefix).
    msgids: u64,
    started_ms: u64,
}

/// The next poller token for a connection; tokens are never reused.
#[derive(Debug)]
pub struct Ids(u64);

impl Stamp {
    /// The text: RFC 3339 UTC, to the second.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Default for Ids {
    fn default() -> Ids {
        Ids(1)
    }
}

impl Shared {
    /// Reads the clock for the pass: `now`, and the events' `ts` when the
    /// second changed (formatted once a second).
    pub fn start_pass(&mut self) {
        self.now = Instant::now();
        let ms = timefmt::unix_now_ms();
        let st = &mut self.stamp;
        if st.started_ms == 0 {
            // The process's start, for message ids (once).
            st.started_ms = ms.max(1);
        }
        // Never backwards within a run (a clock step): history's order
        // by time follows its order by arrival.
        st.ms = st.ms.max(ms);
        let wall = st.ms / 1000;
        if st.secs != wall || st.text.is_empty() {
            st.secs = wall;
            st.text = timefmt::rfc3339(wall);
        }
    }

    /// The pass's wall-clock time, in Unix seconds.
    pub fn unix(&self) -> u64 {
        self.stamp.secs
    }

    /// The pass's wall-clock time, in Unix milliseconds.
    pub fn unix_ms(&self) -> u64 {
        self.stamp.ms
    }

    /// The pass's time as IRCv3 server-time (`...T10:00:00.042Z`).
    pub fn irc_ts(&self) -> String {
        timefmt::rfc3339_ms(self.stamp.ms)
    }

    /// A message id no other message of this chatd has had, before or
    /// after a restart (IRCv3 `msgid`; the history file's key): the
    /// process's start in Unix milliseconds and a counter, in hex.
    pub fn msgid(&mut self) -> String {
        self.stamp.msgids += 1;
        // Fixed width: ids sort as they were given, so the history file's
        // index on them grows at its end.
        format!("{:x}-{:08x}", self.stamp.started_ms, self.stamp.msgids)
    }

    /// Keeps a delivered message, join or leave in its room's history,
    /// when the room keeps one: in memory, and in the history file with
    /// this pass's commit ([`Shared::commit_history`]).
    pub fn remember(&mut self, d: &crate::core::hub::Delivery) {
        self.remember_at(d, self.unix_ms());
    }

    /// [`Shared::remember`] for an event sent at `at_ms` (Unix ms): another
    /// node's message, kept at the time its node gave it.
    pub fn remember_at(&mut self, d: &crate::core::hub::Delivery, at_ms: u64) {
        // The pass's own second (nearly always) is borrowed, not copied.
        let kept = if at_ms / 1000 == self.stamp.secs {
            self.hub.remember(d, self.stamp.text())
        } else {
            self.hub.remember(d, &timefmt::rfc3339(at_ms / 1000))
        };
        if !kept || self.history.is_none() {
            return;
        }
        let made;
        let msgid = match &d.event.msgid {
            Some(m) => m.as_str(),
            None => {
                made = self.msgid();
                made.as_str()
            }
        };
        let kind = match d.event.kind {
            crate::core::wire::EventKind::Join => super::history::Kind::Join,
            crate::core::wire::EventKind::Leave => super::history::Kind::Leave,
            _ => super::history::Kind::Message,
        };
        // Encoded straight from the delivery: no copy of its strings.
        let fields = super::history::Fields {
            kind,
            at_ms: at_ms as i64,
            msgid,
            name: &d.event.username,
            body: &d.event.message,
        };
        let room = self.hub.room_name(d.room).unwrap_or("");
        if let Some(h) = &mut self.history {
            h.keep_fields(room, &fields);
        }
    }

    /// What this pass kept to the history's journal (and the database
    /// when due): called before the pass writes to any client, so what a
    /// client is sent is in the operating system first. A failure (a full
    /// disk) is logged; chat goes on.
    pub fn commit_history(&mut self) {
        self.store_history(Step::Journal);
    }

    /// After the pass's writes: the history database's commit, when due.
    pub fn commit_history_if_due(&mut self) {
        self.store_history(Step::IfDue);
    }

    /// [`Shared::commit_history`], and into the database at once (for a
    /// reader of the file).
    pub fn commit_history_now(&mut self) {
        self.store_history(Step::Now);
    }

    fn store_history(&mut self, step: Step) {
        let Some(h) = &mut self.history else {
            return;
        };
        let hub = &self.hub;
        let keep = |room: &str| hub.history_len(room);
        let done = match step {
            Step::Journal => h.pass(self.now, keep),
            Step::IfDue => h.commit_if_due(self.now, keep),
            Step::Now => h.commit(keep),
        };
        if let Err(e) = done {
            let n = h.failures;
            if n.is_power_of_two() {
                self.log
                    .error(format!("history: {e} ({n} failed commit(s) so far)"));
            }
        }
        self.expire_history();
    }

    /// Retention by age, once a minute (and on the first pass): each
    /// room's own age (`room create --history-age`) or else the server's
    /// `--history-age`; what is older goes from the history file and from
    /// memory (direct messages follow the server's).
    fn expire_history(&mut self) {
        let server_age = self.cfg.history_age.as_secs();
        let now = self.unix();
        let Some(h) = &mut self.history else {
            return;
        };
        if h.expire_at.is_some_and(|t| self.now < t) {
            return;
        }
        h.expire_at = Some(self.now + std::time::Duration::from_secs(60));
        let listed = self.hub.list();
        let own_age: Vec<String> = listed
            .iter()
            .filter(|r| r.history_age > 0)
            .map(|r| r.name.clone())
            .collect();
        let rooms: Vec<(String, usize, i64)> = listed
            .into_iter()
            .filter(|r| r.history > 0)
            .filter_map(|r| {
                let age = if r.history_age > 0 {
                    r.history_age
                } else {
                    server_age
                };
                (age > 0).then(|| (r.name, r.history, now.saturating_sub(age) as i64 * 1000))
            })
            .collect();
        match h.bound_size(self.cfg.history_size) {
            Ok(0) => {}
            Ok(n) => self.log.warn(format!(
                "history: the file reached --history-size ({} MiB): its {n} oldest event(s) were forgotten",
                self.cfg.history_size >> 20
            )),
            Err(e) => self.log.error(format!("history: --history-size: {e}")),
        }
        let direct = (server_age > 0).then(|| now.saturating_sub(server_age) as i64 * 1000);
        // (Direct messages, and rooms without their own limit, follow the
        // server's.)
        if rooms.is_empty() && direct.is_none() {
            return;
        }
        let gone = h.expire(&rooms, &own_age, direct);
        for (room, _, oldest_ms) in &rooms {
            let before = timefmt::rfc3339(*oldest_ms as u64 / 1000);
            if let Some(id) = self.hub.room_id_of(room) {
                self.hub.purge_history(id, Some(&before));
            }
        }
        match gone {
            Ok(0) => {}
            Ok(n) => self.log.info(format!(
                "history: {n} event(s) older than their room's age limit forgotten"
            )),
            Err(e) => self.log.error(format!("history: age limit: {e}")),
        }
    }

    /// The pass's wall-clock time as events carry it.
    pub fn ts(&self) -> &str {
        &self.stamp.text
    }

    /// An event as bytes for one or more clients, stamped now.
    pub fn encode(&self, event: &Event) -> Vec<u8> {
        codec::encode(event, &self.stamp.text)
    }

    /// A poller token no connection has had.
    pub fn fresh_id(&mut self) -> u64 {
        let id = self.ids.0;
        self.ids.0 += 1;
        id
    }

    /// `stats`: the counters, the hub's counts, the log's suppressions.
    pub fn stats(&self, uptime_secs: u64, clients: usize) -> Stats {
        Stats {
            uptime_secs,
            clients,
            members: self.hub.member_count(),
            rooms: self.hub.room_count(),
            messages_relayed: self.counters.messages_relayed,
            deliveries: self.counters.deliveries,
            bytes_out: self.counters.bytes_out,
            slow_consumer_drops: self.counters.slow_consumer_drops,
            joins: self.counters.joins,
            refusals: self.counters.refusals,
            log_lines_suppressed: self.log.suppressed,
            cluster_dropped: self.counters.cluster_dropped,
            cluster_inbox_overflows: self.counters.inbox_overflows,
            flood_refusals: self.counters.flood_refusals,
            writes: self.counters.writes,
        }
    }

    /// Logs a line about one client from `ip` (limited per address,
    /// unless the address is exempt; see [`Logbook::client`]).
    pub fn client_log(&mut self, ip: IpAddr, level: Level, line: String) {
        let from = (!self.cfg.exempt.contains(ip)).then(|| AddressKey::of(ip));
        self.log.client(self.now, from, level, line);
    }
}

/// What the parts' unit tests build on: a [`Shared`] over a fake poller
/// (it records interest and never waits) with virtual time (a test moves
/// `now`; nothing reads the clock after `shared` returns).
#[cfg(test)]
pub mod testing {
    use std::collections::HashMap;
    use std::io;
    use std::os::fd::RawFd;
    use std::time::{Duration, Instant};

    use super::{Shared, session_limits};
    use crate::core::hub::Hub;
    use crate::daemon::accounts::Accounts;
    use crate::daemon::config::Config;
    use crate::daemon::door::Door;
    use crate::daemon::logbook::{Level, Logbook, Sink};
    use crate::daemon::poller::{Interest, Poller, Ready, Token};

    /// Records what a part asks the poller for.
    #[derive(Default)]
    pub struct FakePoller {
        pub watched: HashMap<Token, Interest>,
    }

    impl Poller for FakePoller {
        fn can_watch(&self, _fd: RawFd) -> bool {
            true
        }

        fn set(&mut self, _fd: RawFd, token: Token, interest: Interest) {
            if interest == Interest::default() {
                self.watched.remove(&token);
            } else {
                self.watched.insert(token, interest);
            }
        }

        fn remove(&mut self, _fd: RawFd, token: Token) {
            self.watched.remove(&token);
        }

        fn wait(&mut self, _timeout: Option<Duration>, _out: &mut Vec<Ready>) -> io::Result<()> {
            unreachable!("a part never waits")
        }
    }

    /// `Shared` for chatd run with `flags` (no configuration file), over
    /// `hub`, a fake poller and a silent log.
    pub fn shared(flags: &[&str], hub: Hub) -> Shared {
        let mut argv = vec!["chatd", "--config", "none"];
        argv.extend_from_slice(flags);
        let cfg = Config::load(argv.iter().map(Into::into).collect()).expect("flags parse");
        let mut sh = Shared {
            limits: session_limits(&cfg),
            cfg,
            hub,
            log: Logbook::new(Sink::none(), 1000, Level::Info),
            poller: Box::new(FakePoller::default()),
            door: Door::new(Vec::new()),
            accounts: Accounts::default(),
            oidc: None,
            tls: None,
            counters: Default::default(),
            now: Instant::now(),
            stamp: Default::default(),
            ids: Default::default(),
            history: None,
        };
        sh.start_pass();
        sh
    }
}

/// How far [`Shared::commit_history`] and its kin take what was kept.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// To the journal (before the pass writes to clients).
    Journal,
    /// To the database, if its commit is due (after the writes).
    IfDue,
    /// To the database now (before reading it).
    Now,
}
