//! The load generator: R rooms × K members on one server, each member sends
//! M messages (as fast as possible, or at a fixed total rate), and every
//! delivery is counted and timed. Speaks chatd's protocol and IRC (for
//! ngircd). One thread, non-blocking sockets, one poll(2) loop: it can drive
//! thousands of connections.
//!
//! Each message carries "<sender> <seq> <send time in µs>" so the receiver
//! can tell loss and latency without any shared state. Used by
//! `benches/fanout.rs` and, in smoke mode, by the test suite
//! (`tests/it/bench_smoke.rs`), so it cannot rot.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Chatd,
    Irc,
    /// Redis pub/sub over RESP3: one connection both subscribes to its
    /// room's channel and publishes to it, so it also gets its own
    /// messages back (counted: they cost the server a delivery too).
    Redis,
    /// chatd's protocol over a WebSocket (subprotocol `chatd`): chatd's
    /// web port, or the Node.js `ws` server that mimics it
    /// (tests/web/bench-ws-server.mjs).
    Ws,
}

impl Proto {
    /// Whether a sender receives its own messages.
    fn echoes(self) -> bool {
        self == Proto::Redis
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub rooms: usize,
    pub members: usize,
    /// Messages each member sends (0: connect, join and stay idle).
    pub msgs: usize,
    /// Total messages per second over all members; None: as fast as possible.
    pub rate: Option<f64>,
    /// Message payload size in bytes.
    pub payload: usize,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// The server's pid, for its RSS.
    pub pid: u32,
    /// Speak TLS (chatd's TLS port), trusting this configuration's roots.
    pub tls: Option<Arc<ClientConfig>>,
    /// Cluster mode: the other nodes' addresses (members are spread over
    /// `addr` and these, round robin), and every other process whose CPU
    /// counts (the other nodes, Redis).
    pub more_addrs: Vec<SocketAddr>,
    pub more_pids: Vec<u32>,
    /// After the last delivery, wait until the server is quiet again and
    /// count its CPU to then as well ([`Report::cpu_ns_settled`]): work a
    /// server defers past the burst (chatd's history commit and sync)
    /// counts too.
    pub settle: bool,
    /// chatd's control socket: its `writes` and `bytes_out` are read
    /// before and after the run ([`Report::writes`]). None for other
    /// servers, and for a cluster (one node's writes would mislead).
    pub control: Option<PathBuf>,
}

impl Target {
    /// One server process (no cluster).
    pub fn single(
        proto: Proto,
        addr: SocketAddr,
        pid: u32,
        tls: Option<Arc<ClientConfig>>,
    ) -> Target {
        Target {
            proto,
            addr,
            pid,
            tls,
            more_addrs: Vec::new(),
            more_pids: Vec::new(),
            settle: false,
            control: None,
        }
    }

    /// Where the i-th client connects.
    fn addr_for(&self, i: usize) -> SocketAddr {
        let n = 1 + self.more_addrs.len();
        match i % n {
            0 => self.addr,
            k => self.more_addrs[k - 1],
        }
    }

    /// CPU seconds of every process serving the run.
    fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid) + self.more_pids.iter().map(|&p| cpu_secs(p)).sum::<f64>()
    }

    fn tls_connection(&self) -> Result<Option<ClientConnection>, String> {
        let Some(config) = &self.tls else {
            return Ok(None);
        };
        let name = ServerName::IpAddress(self.addr.ip().into());
        ClientConnection::new(Arc::clone(config), name)
            .map(Some)
            .map_err(|e| format!("tls: {e}"))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub expected: u64,
    pub received: u64,
    /// Seconds from the first send to the last delivery.
    pub secs: f64,
    pub deliveries_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// The server's peak RSS during the run, and before any client.
    pub rss_peak_kib: u64,
    pub rss_base_kib: u64,
    /// (RSS with all clients joined − RSS before) / clients.
    pub rss_per_client_kib: f64,
    /// The server's CPU time (user + system, from /proc) from the first
    /// send to the end of the run, per delivery, in nanoseconds.
    pub cpu_ns_per_delivery: f64,
    /// With [`Target::settle`]: the server's CPU from the first send until
    /// it was quiet again after the run (1.5 s of next to no CPU), per
    /// delivery; 0 otherwise.
    pub cpu_ns_settled: f64,
    /// With [`Target::control`]: the writes to clients that sent bytes,
    /// and those bytes, from the first send to the end of the run; 0
    /// otherwise.
    pub writes: u64,
    pub written_bytes: u64,
    /// What a bare writer spends per delivery at this run's bytes per
    /// write (filled in by the caller that measures it); NaN otherwise.
    pub floor_ns: f64,
}

impl Report {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

/// How long to wait for the last deliveries before counting the rest lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued per member per refill when sending flat out.
const BATCH: usize = 32;

struct Peer {
    stream: TcpStream,
    tls: Option<ClientConnection>,
    room: usize,
    nick: String,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    joined: bool,
    sent: usize,
    /// WebSocket: the 101 has come; the frames' payloads, one line each.
    ws_open: bool,
    ws_lines: Vec<u8>,
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

pub fn room_name(proto: Proto, r: usize) -> String {
    match proto {
        Proto::Chatd | Proto::Redis | Proto::Ws => format!("bench{r}"),
        Proto::Irc => format!("#bench{r}"),
    }
}

/// A client's WebSocket text frame: masked (RFC 6455 requires it), with
/// the all-zero key, so the payload goes as it is.
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Moves what a WebSocket peer received into `ws_lines`: the 101's head
/// dropped, then each text or binary frame's payload as one line.
fn ws_decode(p: &mut Peer) -> Result<(), String> {
    if !p.ws_open {
        let Some(end) = find(&p.inbuf, b"\r\n\r\n") else {
            return Ok(());
        };
        if !p.inbuf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&p.inbuf[..end]).into_owned();
            return Err(format!("{}: no WebSocket: {head}", p.nick));
        }
        p.inbuf.drain(..end + 4);
        p.ws_open = true;
    }
    let mut at = 0;
    loop {
        let rest = &p.inbuf[at..];
        if rest.len() < 2 {
            break;
        }
        let (len, head) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&rest[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if rest.len() < head + len {
            break;
        }
        match rest[0] & 0x0f {
            1 | 2 => {
                p.ws_lines.extend_from_slice(&rest[head..head + len]);
                p.ws_lines.push(b'\n');
            }
            8 => {
                let why = String::from_utf8_lossy(&rest[head..head + len]).into_owned();
                return Err(format!(
                    "{}: the server closed the WebSocket: {why:?}",
                    p.nick
                ));
            }
            _ => {}
        }
        at += head + len;
    }
    p.inbuf.drain(..at);
    Ok(())
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = format!("{:<10}", payload.len()).into_bytes();
    f.extend_from_slice(payload);
    f
}

/// Reads what comes until the server has been quiet (next to no CPU
/// used) for 1.5 s, or 60 s have passed.
fn wait_quiet(
    target: &Target,
    peers: &mut [Peer],
    stats: &mut Stats,
    now_us: &dyn Fn() -> u64,
) -> Result<(), String> {
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut cpu_seen = target.cpu_secs();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(1500) && Instant::now() < give_up {
        pump(
            peers,
            target.proto,
            stats,
            now_us,
            Duration::from_millis(100),
        )?;
        // The CPU clock is exact to the nanosecond, so a server's timer
        // ticks (a second's housekeeping) count as quiet: busy means
        // more than 2 ms of CPU since the quiet spell began, plus 1 % of
        // a core over it (Redis's housekeeping with 100 clients is above
        // 2 ms per 1.5 s, and every Redis run used to wait out the 60 s).
        let cpu = target.cpu_secs();
        if cpu - cpu_seen > 0.002 + 0.01 * quiet_since.elapsed().as_secs_f64() {
            cpu_seen = cpu;
            quiet_since = Instant::now();
        }
    }
    Ok(())
}

/// Runs one scenario against one server.
pub fn run(target: &Target, sc: &Scenario) -> Result<Report, String> {
    let clock = Instant::now();
    let now_us = || clock.elapsed().as_micros() as u64;
    let mut report = Report {
        rss_base_kib: rss_kib(target.pid),
        ..Report::default()
    };
    let n = sc.rooms * sc.members;
    let mut peers = Vec::with_capacity(n);
    for r in 0..sc.rooms {
        for k in 0..sc.members {
            let addr = target.addr_for(r * sc.members + k);
            let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            let nick = format!("u{r}x{k}");
            let out = match target.proto {
                Proto::Chatd => frame(
                    format!(
                        "{{\"username\": \"{nick}\", \"room\": \"{}\"}}",
                        room_name(Proto::Chatd, r)
                    )
                    .as_bytes(),
                ),
                Proto::Irc => format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").into_bytes(),
                Proto::Redis => {
                    format!("HELLO 3\r\nSUBSCRIBE {}\r\n", room_name(Proto::Redis, r)).into_bytes()
                }
                Proto::Ws => {
                    let mut out = format!(
                        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chatd\r\n\r\n"
                    )
                    .into_bytes();
                    let hello = format!(
                        "{{\"username\": \"{nick}\", \"room\": \"{}\"}}",
                        room_name(Proto::Ws, r)
                    );
                    out.extend_from_slice(&ws_frame(hello.as_bytes()));
                    out
                }
            };
            peers.push(Peer {
                stream,
                tls: target.tls_connection()?,
                room: r,
                nick,
                inbuf: Vec::new(),
                out,
                joined: false,
                sent: 0,
                ws_open: false,
                ws_lines: Vec::new(),
            });
        }
    }

    // Phase 1: everybody in their room.
    let mut stats = Stats::default();
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while peers.iter().any(|p| !p.joined) {
        if Instant::now() > join_deadline {
            let missing = peers.iter().filter(|p| !p.joined).count();
            return Err(format!("{missing} of {n} clients did not join within 60 s"));
        }
        pump(
            &mut peers,
            target.proto,
            &mut stats,
            &now_us,
            Duration::from_millis(100),
        )?;
    }
    // Read what the joins sent until the server has been quiet, so its
    // queues are drained and it is idle (chatd gives a burst's memory
    // back once idle) before its memory is read.
    wait_quiet(target, &mut peers, &mut stats, &now_us)?;
    let joined_rss = rss_kib(target.pid);
    report.rss_per_client_kib =
        joined_rss.saturating_sub(report.rss_base_kib) as f64 / n.max(1) as f64;
    report.rss_peak_kib = joined_rss;
    stats.latencies.clear();
    stats.received = 0;

    // Phase 2: send and receive.
    let written_before = written(target);
    let cpu_before = target.cpu_secs();
    let total = (n * sc.msgs) as u64;
    let receivers = if target.proto.echoes() {
        sc.members
    } else {
        sc.members - 1
    };
    report.expected = total * receivers as u64;
    let start_us = now_us();
    let mut scheduled: u64 = 0;
    let mut last_progress = Instant::now();
    let mut last_rss = Instant::now();
    let mut seen = 0;
    while stats.received < report.expected {
        // Queue what is due.
        match sc.rate {
            None => {
                for (i, p) in peers.iter_mut().enumerate() {
                    if p.out.is_empty() && p.sent < sc.msgs {
                        for _ in 0..BATCH.min(sc.msgs - p.sent) {
                            queue_message(p, i, target.proto, sc.payload, now_us());
                        }
                    }
                }
            }
            Some(rate) => {
                let due = (((now_us() - start_us) as f64 / 1e6) * rate) as u64;
                while scheduled < due.min(total) {
                    let i = (scheduled % n as u64) as usize;
                    queue_message(&mut peers[i], i, target.proto, sc.payload, now_us());
                    scheduled += 1;
                }
            }
        }
        let wait = match sc.rate {
            Some(_) => Duration::from_micros(200),
            None => Duration::from_millis(50),
        };
        pump(&mut peers, target.proto, &mut stats, &now_us, wait)?;
        if stats.received != seen {
            seen = stats.received;
            last_progress = Instant::now();
        }
        let all_sent = peers.iter().all(|p| p.sent >= sc.msgs && p.out.is_empty());
        if all_sent && last_progress.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        if last_rss.elapsed() > Duration::from_millis(100) {
            report.rss_peak_kib = report.rss_peak_kib.max(rss_kib(target.pid));
            last_rss = Instant::now();
        }
    }
    report.rss_peak_kib = report.rss_peak_kib.max(rss_kib(target.pid));
    report.received = stats.received;
    if report.received > 0 {
        let cpu = target.cpu_secs() - cpu_before;
        report.cpu_ns_per_delivery = cpu * 1e9 / report.received as f64;
    }
    let written_after = written(target);
    report.writes = written_after.0.saturating_sub(written_before.0);
    report.written_bytes = written_after.1.saturating_sub(written_before.1);
    if target.settle && report.received > 0 {
        wait_quiet(target, &mut peers, &mut stats, &now_us)?;
        let cpu = target.cpu_secs() - cpu_before;
        report.cpu_ns_settled = cpu * 1e9 / report.received as f64;
    }
    report.secs = stats.last_us.saturating_sub(start_us) as f64 / 1e6;
    if report.secs > 0.0 {
        report.deliveries_per_sec = report.received as f64 / report.secs;
    }
    let lat = &mut stats.latencies;
    lat.sort_unstable();
    if !lat.is_empty() {
        report.p50_us = lat[lat.len() / 2];
        report.p99_us = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
        report.max_us = lat[lat.len() - 1];
    }
    Ok(report)
}

/// chatd's (writes, bytes_out) so far, from its control socket; zeros
/// without one, or from a build that does not count writes.
fn written(target: &Target) -> (u64, u64) {
    use chatd::core::control::{Reply, Request, Response};
    let Some(path) = &target.control else {
        return (0, 0);
    };
    match chatd::control_client::ask(Some(path), &Request::Stats {}, Duration::from_secs(5)) {
        Ok(Response::Ok(Reply::Stats { stats })) => (stats.writes, stats.bytes_out),
        _ => (0, 0),
    }
}

/// CPU seconds a process has used (all its threads): its CPU-time clock
/// (clock_getcpuclockid, to the nanosecond), else utime + stime from
/// /proc (to the clock tick, 10 ms: too coarse to compare runs of a
/// tenth of a second); 0 when neither can be read.
pub fn cpu_secs(pid: u32) -> f64 {
    let mut clock: nix::libc::clockid_t = 0;
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both are plain out-parameters of the right types.
    let precise = unsafe {
        nix::libc::clock_getcpuclockid(pid as nix::libc::pid_t, &mut clock) == 0
            && nix::libc::clock_gettime(clock, &mut ts) == 0
    };
    if precise {
        return ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
    }
    cpu_ticks_secs(pid)
}

/// utime + stime from /proc/PID/stat, in seconds.
fn cpu_ticks_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may
    // contain spaces: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

#[derive(Default)]
struct Stats {
    received: u64,
    last_us: u64,
    latencies: Vec<u64>,
    /// The read buffer, allocated once.
    buf: Vec<u8>,
}

fn queue_message(p: &mut Peer, idx: usize, proto: Proto, payload: usize, t_us: u64) {
    let mut text = format!("{idx} {} {t_us} ", p.sent);
    while text.len() < payload {
        text.push('x');
    }
    match proto {
        Proto::Chatd => p.out.extend_from_slice(&frame(text.as_bytes())),
        Proto::Ws => p.out.extend_from_slice(&ws_frame(text.as_bytes())),
        Proto::Irc => {
            p.out.extend_from_slice(
                format!("PRIVMSG {} :{text}\r\n", room_name(Proto::Irc, p.room)).as_bytes(),
            );
        }
        Proto::Redis => {
            let channel = room_name(Proto::Redis, p.room);
            p.out.extend_from_slice(
                format!(
                    "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n{text}\r\n",
                    channel.len(),
                    text.len()
                )
                .as_bytes(),
            );
        }
    }
    p.sent += 1;
}

/// One poll over every peer: write what is queued, read what arrived, act
/// on complete lines.
fn pump(
    peers: &mut [Peer],
    proto: Proto,
    stats: &mut Stats,
    now_us: &dyn Fn() -> u64,
    wait: Duration,
) -> Result<(), String> {
    let ready: Vec<(bool, bool)> = {
        let mut fds: Vec<PollFd> = peers
            .iter()
            .map(|p| {
                let mut flags = PollFlags::POLLIN;
                if !p.out.is_empty() || p.tls.as_ref().is_some_and(|t| t.wants_write()) {
                    flags |= PollFlags::POLLOUT;
                }
                PollFd::new(p.stream.as_fd(), flags)
            })
            .collect();
        let ms = PollTimeout::from(wait.as_millis().clamp(1, 60_000) as u16);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        fds.iter()
            .map(|f| {
                let r = f.revents().unwrap_or(PollFlags::empty());
                (
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
                    r.contains(PollFlags::POLLOUT),
                )
            })
            .collect()
    };
    let mut buf = std::mem::take(&mut stats.buf);
    buf.resize(256 * 1024, 0);
    for (p, (readable, writable)) in peers.iter_mut().zip(ready) {
        if writable {
            write_peer(p)?;
        }
        if readable {
            read_peer(p, &mut buf)?;
            let t = now_us();
            if proto == Proto::Ws {
                ws_decode(p)?;
            }
            let input = if proto == Proto::Ws {
                &mut p.ws_lines
            } else {
                &mut p.inbuf
            };
            let mut start = 0;
            while let Some(nl) = find_byte(&input[start..], b'\n') {
                let line = &input[start..start + nl];
                start += nl + 1;
                handle_line(
                    p.nick.as_str(),
                    &mut p.joined,
                    &mut p.out,
                    line,
                    proto,
                    stats,
                    t,
                )?;
            }
            input.drain(..start);
        }
    }
    stats.buf = buf;
    Ok(())
}

/// One write: plaintext as it is, or through TLS (encrypted into rustls's
/// buffer, then one write of what it has for the socket).
fn write_peer(p: &mut Peer) -> Result<(), String> {
    let result = match &mut p.tls {
        None => p.stream.write(&p.out).map(|k| {
            p.out.drain(..k);
        }),
        Some(t) => {
            if !p.out.is_empty() {
                t.writer()
                    .write_all(&p.out)
                    .map_err(|e| format!("{}: tls write: {e}", p.nick))?;
                p.out.clear();
            }
            t.write_tls(&mut p.stream).map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(format!("{}: write: {e}", p.nick)),
    }
}

/// One read, decrypted when TLS, appended to the peer's input.
fn read_peer(p: &mut Peer, buf: &mut [u8]) -> Result<(), String> {
    let closed = || format!("{}: the server closed the connection", p.nick);
    let Some(t) = &mut p.tls else {
        return match p.stream.read(buf) {
            Ok(0) => Err(closed()),
            Ok(k) => {
                p.inbuf.extend_from_slice(&buf[..k]);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("{}: read: {e}", p.nick)),
        };
    };
    match t.read_tls(&mut p.stream) {
        Ok(0) => return Err(closed()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) => return Err(format!("{}: read: {e}", p.nick)),
    }
    t.process_new_packets()
        .map_err(|e| format!("{}: tls: {e}", p.nick))?;
    loop {
        match t.reader().read(buf) {
            Ok(0) => return Ok(()),
            Ok(k) => p.inbuf.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(format!("{}: tls read: {e}", p.nick)),
        }
    }
}

/// Full TLS handshakes per second: `n` clients one after another each
/// connect, complete the TLS handshake, join room 0 and read their join
/// notice, then close. Returns handshakes/s and the server's CPU time per
/// handshake in nanoseconds.
pub fn tls_handshakes(target: &Target, n: usize) -> Result<(f64, f64), String> {
    let cpu_before = target.cpu_secs();
    let start = Instant::now();
    for i in 0..n {
        let tcp = TcpStream::connect(target.addr).map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let conn = target.tls_connection()?.ok_or("the target has no TLS")?;
        let mut s = StreamOwned::new(conn, tcp);
        let hs = format!(
            "{{\"username\": \"hs{i}\", \"room\": \"{}\"}}",
            room_name(Proto::Chatd, 0)
        );
        s.write_all(&frame(hs.as_bytes()))
            .and_then(|()| s.flush())
            .map_err(|e| format!("handshake {i}: {e}"))?;
        let mut byte = [0u8; 1];
        loop {
            s.read_exact(&mut byte)
                .map_err(|e| format!("handshake {i}: {e}"))?;
            if byte[0] == b'}' {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = target.cpu_secs() - cpu_before;
    Ok((n as f64 / secs, cpu * 1e9 / n as f64))
}

fn handle_line(
    nick: &str,
    joined: &mut bool,
    out: &mut Vec<u8>,
    line: &[u8],
    proto: Proto,
    stats: &mut Stats,
    t_us: u64,
) -> Result<(), String> {
    match proto {
        Proto::Chatd | Proto::Ws => {
            if let Some(text) = chatd_message(line) {
                record(text, stats, t_us);
            } else if find(line, b"\"type\":\"join\"").is_some() {
                let own = format!("\"username\":\"{nick}\"");
                if find(line, own.as_bytes()).is_some() {
                    *joined = true;
                }
            } else if find(line, b"\"type\":\"error\"").is_some() {
                return Err(format!("{nick}: {}", String::from_utf8_lossy(line)));
            }
        }
        Proto::Redis => {
            // RESP3 arrives line by line here: a message push is
            // ">3", "$7", "message", "$6", "bench0", "$N", then the text;
            // the bench's texts are the only lines with a space in them.
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if find_byte(line, b' ').is_some() && !line.starts_with(b"-") {
                record(line, stats, t_us);
            } else if line == b"subscribe" {
                *joined = true;
            } else if line.starts_with(b"-") {
                return Err(format!("{nick}: {}", String::from_utf8_lossy(line)));
            }
        }
        Proto::Irc => {
            // ":prefix COMMAND params" or "COMMAND params".
            let mut tokens = line.split(|&b| b == b' ');
            let first = tokens.next().unwrap_or(b"");
            let command = if first.starts_with(b":") {
                tokens.next().unwrap_or(b"")
            } else {
                first
            };
            match command {
                b"PRIVMSG" => {
                    // ":nick!user@host PRIVMSG #room :text", or without the
                    // ':' when the text is one word (both are IRC).
                    let _target = tokens.next().ok_or("PRIVMSG without a target")?;
                    let rest: Vec<&[u8]> = tokens.collect();
                    let text = rest.join(&b' ');
                    let text = text.strip_prefix(b":").unwrap_or(&text);
                    record(text, stats, t_us);
                }
                b"PING" => {
                    out.extend_from_slice(b"PONG");
                    out.extend_from_slice(&line[4..]);
                    out.extend_from_slice(b"\n");
                }
                b"001" => {
                    out.extend_from_slice(
                        format!("OPER bench bench\r\nMODE {nick} +F\r\n").as_bytes(),
                    );
                    let room = nick[1..].split('x').next().unwrap_or("0");
                    out.extend_from_slice(format!("JOIN #bench{room}\r\n").as_bytes());
                }
                b"JOIN" if first.starts_with(format!(":{nick}!").as_bytes()) => *joined = true,
                // (OPER, for ngircd's flood exemption, may be refused
                // with 464 or 491 where there is no such operator: harmless.)
                b"ERROR" | b"433" | b"432" => {
                    return Err(format!("{nick}: {}", String::from_utf8_lossy(line)));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The text of a chatd `message` event; None for any other event. The
/// generator parses a few million lines a second and must stay faster than
/// the servers it measures, so this walks the fixed shape
/// `{"username":"U","message":"M","type":"message",...}` directly (the
/// bench's usernames and payloads contain no quote or backslash).
fn chatd_message(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"{\"username\":\"")?;
    let rest = &rest[find_byte(rest, b'"')?..];
    let rest = rest.strip_prefix(b"\",\"message\":\"")?;
    let (text, tail) = rest.split_at(find_byte(rest, b'"')?);
    tail.starts_with(b"\",\"type\":\"message\"").then_some(text)
}

/// "<sender> <seq> <t_us> ..." → one delivery and its latency.
fn record(text: &[u8], stats: &mut Stats, t_us: u64) {
    let sent_us = text
        .split(|&b| b == b' ')
        .nth(2)
        .and_then(parse_u64)
        .unwrap_or(t_us);
    stats.received += 1;
    stats.last_us = t_us;
    stats.latencies.push(t_us.saturating_sub(sent_us));
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// The first `byte` in `hay`, with glibc's vectorized memchr: the newline
/// scan over every received byte was the generator's hottest loop.
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    // SAFETY: memchr reads at most hay.len() bytes starting at hay's pointer,
    // all inside the slice; it returns null or a pointer into that range.
    let p = unsafe { nix::libc::memchr(hay.as_ptr().cast(), i32::from(byte), hay.len()) };
    (!p.is_null()).then(|| p as usize - hay.as_ptr() as usize)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
