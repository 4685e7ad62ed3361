//! The fan-out benchmark: chatd side by side with ngircd and Redis pub/sub
//! (RESP3) on loopback, and the floor: what a bare writer spends per write.
//!
//!     scripts/bench                      # installs ngircd if missing, then this
//!     cargo bench --bench fanout -- [--runs N] [--only SERVER[,SERVER]] [--scenario NAME]
//!         [--baseline PATH] [--tls] [--irc] [--epoll] [--cluster] [--history] [--ws]
//!
//! `--baseline PATH` adds another chatd binary (an older build, say) as a
//! third server, alternated with the others: before/after comparisons of a
//! change on the same machine in the same minutes. `--tls` adds chatd over
//! TLS (certificates made for the run with rcgen) as another server, and
//! measures full TLS handshakes per second. `--epoll` adds chatd with
//! `--poller epoll` as another server, and the scenarios beyond select's
//! 1,000 clients (10 rooms × 1,000 members, idle and talking), which only
//! it runs. `--irc` adds chatd's IRC door (`chatd+irc`), driven by the same
//! IRC client as ngircd. `--cluster` adds one room of 900 members, on one chatd and on
//! three chatd nodes in cluster mode (300 each, one Redis): the cost of
//! the hop, with the CPU of all four processes counted. `--history` adds
//! chatd with every room keeping its last 1000 events in the history file
//! (`chatd+history`: each message in the journal before it is delivered,
//! in the database within 250 ms), and a second CPU figure for every
//! server, `settled`: its CPU from the first send until it is quiet again
//! after the run (1.5 s of next to no CPU), so the work chatd defers past
//! the burst (the database's commit, the Syncer's checkpoint) counts.
//! `--ws` adds chatd's web port (`chatd+ws`: the same protocol over a
//! WebSocket) and, beside it, a Node.js server written with the `ws`
//! package (`node-ws`, tests/web/bench-ws-server.mjs), same generator;
//! with `--baseline` too, the older build's web port (`baseline+ws`).
//!
//! Server CPU per delivery (utime+stime of the server process over the
//! run, divided by deliveries) is the headline: on a 2-core machine the
//! generator saturates its own core, so deliveries/s mostly measure the
//! generator (BENCHMARKS.md).
//!
//! Every scenario runs `--runs` times (default 3) against a fresh server
//! each time, alternating which server goes first; the table shows medians
//! and the chatd/ngircd ratio. Numbers go to stdout; progress to stderr.

mod loadgen;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen::{Proto, Report, Scenario, Target};

const CHATD: &str = env!("CARGO_BIN_EXE_chatd");

fn scenarios() -> Vec<Scenario> {
    let flat = |rooms, members, msgs| Scenario {
        name: format!("{rooms}x{members}x{msgs}"),
        rooms,
        members,
        msgs,
        rate: None,
        payload: 40,
    };
    vec![
        flat(1, 10, 100),
        flat(1, 100, 100),
        flat(1, 100, 500),
        flat(10, 100, 20),
        Scenario {
            name: "latency 10x100 @2000/s".into(),
            rooms: 10,
            members: 100,
            msgs: 10,
            rate: Some(2000.0),
            payload: 40,
        },
        Scenario {
            name: "idle 1000".into(),
            rooms: 10,
            members: 100,
            msgs: 0,
            rate: None,
            payload: 40,
        },
        Scenario {
            name: BIG_IDLE.into(),
            rooms: 10,
            members: 1000,
            msgs: 0,
            rate: None,
            payload: 40,
        },
        Scenario {
            name: BIG_FANOUT.into(),
            rooms: 10,
            members: 1000,
            msgs: 1,
            rate: None,
            payload: 40,
        },
        Scenario {
            name: CLUSTER_BURST.into(),
            rooms: 1,
            members: 900,
            msgs: 10,
            rate: None,
            payload: 40,
        },
        Scenario {
            name: CLUSTER_LATENCY.into(),
            rooms: 1,
            members: 900,
            msgs: 2,
            rate: Some(200.0),
            payload: 40,
        },
    ]
}

/// One room of 900: on one node, and spread over three cluster nodes
/// (300 each) through Redis (`--cluster`).
const CLUSTER_BURST: &str = "1x900x10 (cluster)";
const CLUSTER_LATENCY: &str = "1x900 @200/s (cluster)";

fn cluster_only(sc: &Scenario) -> bool {
    sc.name == CLUSTER_BURST || sc.name == CLUSTER_LATENCY
}

/// Scenarios beyond select(2)'s 1,000 clients: epoll only.
const BIG_IDLE: &str = "idle 10k (epoll)";
const BIG_FANOUT: &str = "10x1000x1 (epoll)";

fn epoll_only(sc: &Scenario) -> bool {
    sc.name == BIG_IDLE || sc.name == BIG_FANOUT
}

/// A server under test, killed on drop.
struct Server {
    child: Child,
    target: Target,
    _dir: TempDir,
    /// The rest of a cluster: other nodes and Redis (killed on drop too).
    others: Vec<Server>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("chatd-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA and a certificate for 127.0.0.1 it signed, for chatd's TLS port,
/// and a client configuration trusting the CA.
struct Pki {
    cert: PathBuf,
    key: PathBuf,
    client: Arc<rustls::ClientConfig>,
    _dir: TempDir,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = TempDir::new("pki");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let cert_path = dir.0.join("server.pem");
    let key_path = dir.0.join("server.key");
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    Pki {
        cert: cert_path,
        key: key_path,
        client: chatd::client::transport::client_config(roots).unwrap(),
        _dir: dir,
    }
}

fn start_chatd(bin: &Path, rooms: usize, tls: Option<&Pki>, epoll: bool) -> Result<Server, String> {
    start_chatd_with(bin, rooms, tls, epoll, &[], "listening")
}

/// chatd with only its IRC door open, for the IRC client (as ngircd is
/// driven).
fn start_chatd_irc(rooms: usize) -> Result<Server, String> {
    let extra: Vec<String> = ["--listen", "none", "--irc-listen", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut server = start_chatd_with(
        Path::new(CHATD),
        rooms,
        None,
        false,
        &extra,
        "listening for IRC",
    )?;
    server.target.proto = Proto::Irc;
    Ok(server)
}

/// Whether a chatd binary's --help names `flag`.
fn knows_flag(bin: &Path, flag: &str) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

/// chatd with `extra` flags, ready once it logged `ready` (after it
/// logged where it listens).
fn start_chatd_with(
    bin: &Path,
    rooms: usize,
    tls: Option<&Pki>,
    epoll: bool,
    extra: &[String],
    ready: &str,
) -> Result<Server, String> {
    let dir = TempDir::new("chatd");
    let mut cmd = Command::new(bin);
    cmd.args(extra);
    if bin == Path::new(CHATD) {
        // (A --baseline build may predate the configuration file.)
        cmd.args(["--config", "none"]);
    }
    if epoll {
        cmd.args(["--poller", "epoll", "--max-clients", "12000"]);
    }
    // The generator opens every connection before any handshake is done:
    // more than --max-handshakes (3/4 of --max-clients) would evict the
    // oldest, as it should for real clients. (Older builds lack the flag.)
    if knows_flag(bin, "--max-handshakes") {
        let most = if epoll { "12000" } else { "1000" };
        cmd.args(["--max-handshakes", most]);
    }
    // The generator is a bot at full speed, measured unthrottled (as
    // ngircd is, with its penalties off). (Older builds lack the flag.)
    if knows_flag(bin, "--flood-rate") {
        cmd.args(["--flood-rate", "0"]);
    }
    match tls {
        None if extra.iter().any(|a| a == "--listen") => &mut cmd,
        None => cmd.args(["--listen", "127.0.0.1:0"]),
        Some(pki) => cmd
            .args([
                "--listen",
                "none",
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
            ])
            .arg(&pki.cert)
            .arg("--tls-key")
            .arg(&pki.key),
    };
    cmd.arg("--control")
        .arg(dir.0.join("c.sock"))
        .arg("--state-dir")
        .arg(dir.0.join("state"));
    for r in 0..rooms {
        cmd.args([
            "--room",
            &format!("{}:1000", loadgen::room_name(Proto::Chatd, r)),
        ]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start chatd: {e}"))?;
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut addr: Option<SocketAddr> = None;
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .ok_or("chatd exited before it was ready")?
            .map_err(|e| e.to_string())?;
        if let Some(a) = line.split(" on ").nth(1)
            && line.contains("listening")
        {
            addr = Some(a.trim().parse().map_err(|e| format!("{e}"))?);
        }
        if let Some(a) = line.split("web port on http://").nth(1) {
            let a = a.split('/').next().unwrap_or("");
            addr = Some(a.parse().map_err(|e| format!("{e}"))?);
        }
        if let Some(a) = addr
            && line.contains(ready)
        {
            break a;
        }
    };
    // Keep draining its log so chatd never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let mut target = Target::single(
        Proto::Chatd,
        addr,
        child.id(),
        tls.map(|p| Arc::clone(&p.client)),
    );
    target.control = Some(dir.0.join("c.sock"));
    Ok(Server {
        target,
        others: Vec::new(),
        child,
        _dir: dir,
    })
}

/// chatd (this build, or `bin`) with only its web port open, for the
/// WebSocket client.
fn start_chatd_ws(bin: &Path, rooms: usize) -> Result<Server, String> {
    let extra: Vec<String> = ["--listen", "none", "--web-listen", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut server = start_chatd_with(bin, rooms, None, false, &extra, "web port")?;
    server.target.proto = Proto::Ws;
    Ok(server)
}

/// The Node.js `ws` broadcast server (tests/web/bench-ws-server.mjs), if
/// node and tests/web/node_modules/ws are there (`cd tests/web && npm ci`).
fn ws_server_script() -> Option<PathBuf> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let node = Command::new("node").arg("--version").output().is_ok();
    (node && web.join("node_modules/ws").exists()).then(|| web.join("bench-ws-server.mjs"))
}

fn start_node_ws(script: &Path) -> Result<Server, String> {
    let dir = TempDir::new("node-ws");
    let port = free_port();
    let child = Command::new("node")
        .arg(script)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start node: {e}"))?;
    listening(child, dir, Proto::Ws, port, "node ws")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ngircd_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/ngircd",
        "/usr/local/sbin/ngircd",
        "/usr/bin/ngircd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn start_ngircd(bin: &Path) -> Result<Server, String> {
    let dir = TempDir::new("ngircd");
    let port = free_port();
    // Limits out of the way; an operator block so clients can set +F
    // (relaxed flood protection) and be measured without throttling.
    let conf = format!(
        "[Global]\nName = bench.localhost\nInfo = bench\nListen = 127.0.0.1\nPorts = {port}\n\
         MotdPhrase = bench\nPidFile = {pid}\n\
         [Limits]\nMaxConnections = 0\nMaxConnectionsIP = 0\nMaxJoins = 0\nMaxNickLength = 30\n\
         PingTimeout = 600\nPongTimeout = 600\n\
         [Options]\nDNS = no\nIdent = no\nPAM = no\n\
         [Operator]\nName = bench\nPassword = bench\nMask = *\n",
        pid = dir.0.join("ngircd.pid").display()
    );
    let path = dir.0.join("ngircd.conf");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .args(["-n", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start ngircd: {e}"))?;
    listening(child, dir, Proto::Irc, port, "ngircd")
}

/// A yardstick server once it accepts connections on `port` (10 s at most).
fn listening(
    child: Child,
    dir: TempDir,
    proto: Proto,
    port: u16,
    what: &str,
) -> Result<Server, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > end {
            return Err(format!("{what} did not start listening"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server {
        target: Target::single(proto, addr, child.id(), None),
        child,
        _dir: dir,
        others: Vec::new(),
    })
}

fn redis_binary() -> Option<PathBuf> {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// redis-server as a pub/sub yardstick: no persistence, no output-buffer
/// limit on subscribers (chatd's sendq is larger than the default's).
fn start_redis(bin: &Path) -> Result<Server, String> {
    let dir = TempDir::new("redis");
    let port = free_port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .args([
            "--maxclients",
            "20000",
            "--client-output-buffer-limit",
            "pubsub 0 0 0",
        ])
        .arg("--dir")
        .arg(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start redis-server: {e}"))?;
    listening(child, dir, Proto::Redis, port, "redis-server")
}

/// Cluster mode: three chatd nodes sharing their rooms through one Redis.
/// The target's CPU is all four processes'.
fn start_cluster(redis: &Path, rooms: usize, epoll: bool) -> Result<Server, String> {
    let r = start_redis(redis)?;
    let url = format!("redis://{}", r.target.addr);
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        let extra: Vec<String> = ["--cluster", &url, "--node-id", id]
            .iter()
            .map(|s| s.to_string())
            .collect();
        nodes.push(start_chatd_with(
            Path::new(CHATD),
            rooms,
            None,
            epoll,
            &extra,
            "cluster: in sync",
        )?);
    }
    let mut first = nodes.remove(0);
    first.target.control = None;
    first.target.more_addrs = nodes.iter().map(|n| n.target.addr).collect();
    first.target.more_pids = nodes.iter().map(|n| n.target.pid).collect();
    first.target.more_pids.push(r.target.pid);
    first.others = nodes;
    first.others.push(r);
    Ok(first)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A row of the table: its label and how to read it off a report.
type Figure = (&'static str, fn(&Report) -> f64);

/// The figures shown for a scenario.
fn figures(sc: &Scenario, settled: bool) -> Vec<Figure> {
    if sc.msgs == 0 {
        return vec![
            ("RSS per client (KiB)", |r| r.rss_per_client_kib),
            ("server RSS (KiB)", |r| r.rss_peak_kib as f64),
        ];
    }
    let mut figures: Vec<Figure> = vec![
        ("deliveries/s", |r| r.deliveries_per_sec),
        ("server CPU/delivery (ns)", |r| r.cpu_ns_per_delivery),
    ];
    if settled {
        // Until quiet again after the run: deferred work counts too.
        figures.push(("  settled (ns)", |r| r.cpu_ns_settled));
    }
    figures.extend::<[Figure; 3]>([
        // chatd's own count of its writes (others: "-"), and the floor
        // at that write size: the issue's "≤ 2.5× the floor at the same
        // write size".
        ("bytes per write", |r| {
            r.written_bytes as f64 / r.writes as f64
        }),
        ("floor at that size (ns)", |r| r.floor_ns),
        ("  × floor", |r| r.cpu_ns_per_delivery / r.floor_ns),
    ]);
    figures.extend::<[Figure; 5]>([
        ("lost", |r| r.lost() as f64),
        ("latency p50 (µs)", |r| r.p50_us as f64),
        ("latency p99 (µs)", |r| r.p99_us as f64),
        ("latency max (µs)", |r| r.max_us as f64),
        ("server RSS peak (KiB)", |r| r.rss_peak_kib as f64),
    ]);
    figures
}

struct Args {
    runs: usize,
    only: Option<String>,
    scenario: Option<String>,
    /// Drive an already running chatd (for profiling it): its address and pid.
    attach: Option<(SocketAddr, u32)>,
    /// With `attach`: its control socket, for its writes (`--control`).
    attach_control: Option<PathBuf>,
    /// Another chatd binary to measure beside this build.
    baseline: Option<PathBuf>,
    /// Also measure chatd over TLS.
    tls: bool,
    /// Also measure chatd's IRC door, driven by the IRC client as ngircd is.
    irc: bool,
    /// Also measure chatd with --poller epoll.
    epoll: bool,
    /// Also measure three chatd nodes in cluster mode against one.
    cluster: bool,
    /// Also measure chatd with every room keeping its history on disk.
    history: bool,
    /// Also measure chatd's web port (WebSocket, subprotocol chatd)
    /// beside a Node.js `ws` broadcast server.
    ws: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 3,
        only: None,
        scenario: None,
        attach: None,
        attach_control: None,
        baseline: None,
        tls: false,
        irc: false,
        epoll: false,
        cluster: false,
        history: false,
        ws: false,
    };
    let mut attach_addr: Option<SocketAddr> = None;
    let mut attach_pid: Option<u32> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--only" => args.only = it.next(),
            "--scenario" => args.scenario = it.next(),
            "--attach" => attach_addr = it.next().and_then(|v| v.parse().ok()),
            "--pid" => attach_pid = it.next().and_then(|v| v.parse().ok()),
            "--control" => args.attach_control = it.next().map(PathBuf::from),
            "--baseline" => args.baseline = it.next().map(PathBuf::from),
            "--tls" => args.tls = true,
            "--irc" => args.irc = true,
            "--epoll" => args.epoll = true,
            "--cluster" => args.cluster = true,
            "--history" => args.history = true,
            "--ws" => args.ws = true,
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => {
                eprintln!("fanout: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if let (Some(addr), Some(pid)) = (attach_addr, attach_pid) {
        args.attach = Some((addr, pid));
    }
    args
}

/// Runs the chosen scenarios against a chatd started by someone else (it
/// must have rooms bench0.. with room for the members).
fn run_attached(args: &Args, addr: SocketAddr, pid: u32) {
    for sc in scenarios() {
        if args.scenario.as_deref().is_some_and(|s| s != sc.name) {
            continue;
        }
        let mut target = Target::single(Proto::Chatd, addr, pid, None);
        target.control = args.attach_control.clone();
        let mut reps = Vec::new();
        for _ in 0..args.runs {
            match loadgen::run(&target, &sc) {
                Ok(r) => reps.push(with_floor(r)),
                Err(e) => eprintln!("fanout: {e}"),
            }
        }
        print_table(&sc, &[("chatd", reps)]);
    }
}

fn main() {
    let args = parse_args();
    if let Some((addr, pid)) = args.attach {
        run_attached(&args, addr, pid);
        return;
    }
    let ngircd = ngircd_binary();
    let redis = redis_binary();
    let pki = args.tls.then(make_pki);
    let ws_script = ws_server_script();
    if args.ws && ws_script.is_none() {
        eprintln!(
            "fanout: node or tests/web/node_modules/ws missing; measuring chatd+ws alone (cd tests/web && npm ci)"
        );
    }
    let all_servers: Vec<&str> = [
        "chatd",
        "chatd+epoll",
        "chatd+tls",
        "chatd+irc",
        "chatd+history",
        "chatd+ws",
        "node-ws",
        "baseline",
        "baseline+ws",
        "ngircd",
        "redis",
        "cluster",
    ]
    .into_iter()
    .filter(|s| *s != "cluster" || (args.cluster && redis.is_some()))
    .filter(|s| !s.starts_with("baseline") || args.baseline.is_some())
    .filter(|s| *s != "chatd+tls" || args.tls)
    .filter(|s| *s != "chatd+irc" || args.irc)
    .filter(|s| *s != "chatd+history" || args.history)
    .filter(|s| !s.ends_with("ws") || args.ws)
    .filter(|s| *s != "node-ws" || ws_script.is_some())
    .filter(|s| *s != "chatd+epoll" || args.epoll)
    .filter(|s| {
        // --only chatd,redis: those servers (and the ones other flags add,
        // but for node-ws, which --only must name).
        args.only.as_deref().is_none_or(|o| {
            o.split(',').any(|o| o == *s)
                || [
                    "baseline",
                    "baseline+ws",
                    "chatd+tls",
                    "chatd+epoll",
                    "chatd+irc",
                    "chatd+history",
                    "chatd+ws",
                    "cluster",
                ]
                .contains(s)
        })
    })
    .filter(|s| *s != "ngircd" || ngircd.is_some())
    .filter(|s| *s != "redis" || redis.is_some())
    .collect();
    if ngircd.is_none() {
        eprintln!("fanout: ngircd not found; measuring without it (scripts/bench installs it)");
    }
    if redis.is_none() {
        eprintln!(
            "fanout: redis-server not found; measuring without it (scripts/bench installs it)"
        );
    }
    println!(
        "fanout benchmark: {} run(s) per scenario, medians; {} core(s)",
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if args.scenario.as_deref().is_none_or(|s| s == "floor") {
        floor_table(args.runs);
    }
    let start = |name: &str, rooms: usize| match name {
        "chatd" => start_chatd(Path::new(CHATD), rooms, None, false),
        "chatd+epoll" => start_chatd(Path::new(CHATD), rooms, None, true),
        "chatd+tls" => start_chatd(Path::new(CHATD), rooms, pki.as_ref(), false),
        "chatd+irc" => start_chatd_irc(rooms),
        "chatd+history" => start_chatd_with(
            Path::new(CHATD),
            rooms,
            None,
            false,
            &["--history".to_string(), "1000".to_string()],
            "listening",
        ),
        "baseline" => start_chatd(args.baseline.as_deref().unwrap(), rooms, None, false),
        "chatd+ws" => start_chatd_ws(Path::new(CHATD), rooms),
        "baseline+ws" => start_chatd_ws(args.baseline.as_deref().unwrap(), rooms),
        "node-ws" => start_node_ws(ws_script.as_deref().unwrap()),
        "redis" => start_redis(redis.as_deref().unwrap()),
        "cluster" => start_cluster(redis.as_deref().unwrap(), rooms, false),
        _ => start_ngircd(ngircd.as_deref().unwrap()),
    };
    if args.scenario.as_deref() == Some("sweep") {
        let servers: Vec<&str> = all_servers
            .iter()
            .copied()
            .filter(|s| *s != "chatd+tls" && *s != "cluster")
            .collect();
        rate_sweep(&servers, args.runs, &start);
        return;
    }
    for sc in scenarios() {
        if args.scenario.as_deref().is_some_and(|s| s != sc.name) {
            continue;
        }
        if epoll_only(&sc) && !args.epoll || cluster_only(&sc) && !args.cluster {
            continue;
        }
        let servers: Vec<&str> = all_servers
            .iter()
            .copied()
            .filter(|s| !epoll_only(&sc) || *s == "chatd+epoll")
            .filter(|s| *s != "cluster" || cluster_only(&sc))
            .filter(|s| !cluster_only(&sc) || *s == "chatd" || *s == "cluster")
            .collect();
        let mut results: Vec<(&str, Vec<Report>)> =
            servers.iter().map(|s| (*s, Vec::new())).collect();
        for run in 0..args.runs {
            // Alternate which server goes first.
            let order: Vec<usize> = if run % 2 == 0 {
                (0..servers.len()).collect()
            } else {
                (0..servers.len()).rev().collect()
            };
            for i in order {
                let server = start(servers[i], sc.rooms);
                let server = match server {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("fanout: {e}");
                        std::process::exit(1);
                    }
                };
                eprintln!("  {} run {} on {} ...", sc.name, run + 1, servers[i]);
                let mut target = server.target.clone();
                // With history measured, every server's deferred work
                // (chatd's commit and sync) counts in a second figure.
                target.settle = args.history;
                match loadgen::run(&target, &sc) {
                    Ok(r) => {
                        // Each run's figure too, to see the spread behind
                        // the medians.
                        match target.settle {
                            true => eprintln!(
                                "    {:.1} ns per delivery, settled {:.1}",
                                r.cpu_ns_per_delivery, r.cpu_ns_settled
                            ),
                            false => {
                                eprintln!("    {:.1} ns per delivery", r.cpu_ns_per_delivery)
                            }
                        }
                        // An idle scenario's figure is memory: finer
                        // than the table's one decimal.
                        if sc.msgs == 0 {
                            eprintln!("    {:.3} KiB per client", r.rss_per_client_kib);
                        }
                        results[i].1.push(with_floor(r))
                    }
                    Err(e) => eprintln!(
                        "  {} run {} on {} failed: {e}",
                        sc.name,
                        run + 1,
                        servers[i]
                    ),
                }
            }
        }
        print_table(&sc, &results);
    }
    if let Some(pki) = &pki
        && args
            .scenario
            .as_deref()
            .is_none_or(|s| s == "tls handshakes")
    {
        tls_handshake_table(pki, args.runs);
    }
}

/// The latency scenario (10 rooms × 100 members) at rising offered rates,
/// `--runs` alternated runs per server and rate, each at least 1.5 s of
/// messages: each server's median p99, and the offered load at which it
/// first reaches 10 ms (`--scenario sweep`; not part of the default set,
/// it takes minutes).
fn rate_sweep(
    servers: &[&str],
    runs: usize,
    start: &dyn Fn(&str, usize) -> Result<Server, String>,
) {
    const RATES: [f64; 11] = [
        2_000.0, 4_000.0, 8_000.0, 12_000.0, 16_000.0, 20_000.0, 24_000.0, 28_000.0, 32_000.0,
        40_000.0, 48_000.0,
    ];
    const KNEE_US: f64 = 10_000.0;
    println!();
    println!(
        "## sweep (10 rooms × 100 members, each point ≥ 1.5 s of messages, offered msg/s; median p99 of {runs} run(s), µs)"
    );
    let mut header = format!("{:<12}", "offered");
    for s in servers {
        header.push_str(&format!("{s:>14}"));
    }
    println!("{header}");
    let mut knee: Vec<Option<f64>> = vec![None; servers.len()];
    // The rate from which p99 stays ≥ 10 ms at every higher rate: a lone
    // spike at a low rate does not make the knee.
    let mut sustained: Vec<Option<f64>> = vec![None; servers.len()];
    for (k, rate) in RATES.iter().enumerate() {
        // Long enough at every rate that a p99 is more than a few
        // unlucky messages: 1,000 members × msgs ≥ 1.5 s of offered load.
        let msgs = ((rate * 1.5 / 1000.0).ceil() as usize).max(10);
        let sc = Scenario {
            name: format!("sweep @{rate}"),
            rooms: 10,
            members: 100,
            msgs,
            rate: Some(*rate),
            payload: 40,
        };
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        for run in 0..runs {
            let order: Vec<usize> = if (k + run) % 2 == 0 {
                (0..servers.len()).collect()
            } else {
                (0..servers.len()).rev().collect()
            };
            for i in order {
                eprintln!("  sweep @{rate} run {} on {} ...", run + 1, servers[i]);
                let server = match start(servers[i], sc.rooms) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("fanout: {e}");
                        continue;
                    }
                };
                if let Ok(r) = loadgen::run(&server.target, &sc) {
                    samples[i].push(r.p99_us as f64);
                }
            }
        }
        let p99: Vec<f64> = samples.into_iter().map(median).collect();
        for (i, v) in p99.iter().enumerate() {
            if *v >= KNEE_US {
                knee[i] = knee[i].or(Some(*rate));
                sustained[i] = sustained[i].or(Some(*rate));
            } else {
                sustained[i] = None;
            }
        }
        let mut line = format!("{:<12}", fmt_num(*rate));
        for v in &p99 {
            line.push_str(&format!("{:>14}", fmt_num(*v)));
        }
        println!("{line}");
    }
    for (label, knees) in [("first ≥ 10 ms", &knee), ("≥ 10 ms from", &sustained)] {
        let mut line = format!("{label:<12}");
        for k in knees {
            line.push_str(&format!(
                "{:>14}",
                k.map_or(format!("> {}", fmt_num(RATES[RATES.len() - 1])), fmt_num)
            ));
        }
        println!("{line}");
    }
}

/// This thread's CPU time so far, in seconds.
fn thread_cpu_secs() -> f64 {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// A run's report with [`Report::floor_ns`]: a bare writer's CPU per
/// delivery at the run's own bytes per write (one write of that size
/// carries writes/received of the run's deliveries).
fn with_floor(mut r: Report) -> Report {
    r.floor_ns = f64::NAN;
    if r.writes > 0 && r.received > 0 {
        let size = (r.written_bytes / r.writes).max(1) as usize;
        let per_write = floor_per_write(size);
        r.floor_ns = per_write * 1e9 * r.writes as f64 / r.received as f64;
    }
    r
}

/// The CPU a bare writer spends per write(2) of `size` bytes to a
/// loopback TCP socket whose reader (another thread) is awake.
fn floor_per_write(size: usize) -> f64 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut w = TcpStream::connect(addr).unwrap();
    w.set_nodelay(true).unwrap();
    let chunk = vec![b'x'; size];
    // About 200 MB or 200,000 writes, whichever is fewer.
    let n = (200_000_000 / size).min(200_000);
    let before = thread_cpu_secs();
    for _ in 0..n {
        w.write_all(&chunk).unwrap();
    }
    let per_write = (thread_cpu_secs() - before) / n as f64;
    drop(w);
    reader.join().unwrap();
    per_write
}

/// The floor under every server: the CPU a bare writer spends per write(2)
/// to a loopback TCP socket whose reader (another thread) is awake, for a
/// write of one delivery (110 bytes) and for batches of them. A server's
/// CPU per delivery can approach it, not beat it.
fn floor_table(runs: usize) {
    let sizes = [
        110usize,
        4 * 1024,
        8 * 1024,
        14 * 1024,
        32 * 1024,
        64 * 1024,
    ];
    println!();
    println!("## floor (a bare writer to an awake loopback reader; {runs} run(s), medians)");
    println!(
        "{:<12}{:>22}{:>30}",
        "write size", "CPU per write (µs)", "per 110-byte delivery (ns)"
    );
    for size in sizes {
        let m = median((0..runs).map(|_| floor_per_write(size)).collect());
        println!(
            "{:<12}{:>22}{:>30}",
            size,
            fmt_num(m * 1e6),
            fmt_num(m * 1e9 / (size as f64 / 110.0))
        );
    }
}

/// Full TLS handshakes per second (each client: connect, handshake, join,
/// read its join notice, close), one after another, fresh chatd per run.
fn tls_handshake_table(pki: &Pki, runs: usize) {
    const N: usize = 500;
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for run in 0..runs {
        let server = match start_chatd(Path::new(CHATD), 1, Some(pki), false) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("fanout: {e}");
                return;
            }
        };
        eprintln!("  tls handshakes run {} ...", run + 1);
        match loadgen::tls_handshakes(&server.target, N) {
            Ok((rate, cpu)) => {
                rates.push(rate);
                cpus.push(cpu);
            }
            Err(e) => eprintln!("  tls handshakes run {} failed: {e}", run + 1),
        }
    }
    println!();
    println!(
        "## tls handshakes ({N} clients one after another: connect, TLS handshake, join, close)"
    );
    println!("{:<24}{:>14}", "figure", "chatd+tls");
    println!("{:<24}{:>14}", "handshakes/s", fmt_num(median(rates)));
    println!(
        "{:<24}{:>14}",
        "server CPU/handshake (µs)",
        fmt_num(median(cpus) / 1000.0)
    );
}

fn print_table(sc: &Scenario, results: &[(&str, Vec<Report>)]) {
    println!();
    println!(
        "## {} ({} room(s) × {} members, {} msg(s) each{})",
        sc.name,
        sc.rooms,
        sc.members,
        sc.msgs,
        sc.rate
            .map_or(String::new(), |r| format!(", {r} msg/s offered"))
    );
    let mut header = format!("{:<24}", "figure");
    for (name, _) in results {
        header.push_str(&format!("{:>14}", name));
    }
    if results.len() == 2 {
        header.push_str(&format!(
            "{:>16}",
            format!("{}/{}", results[0].0, results[1].0)
        ));
    }
    println!("{header}");
    let settled = results
        .iter()
        .any(|(_, reps)| reps.iter().any(|r| r.cpu_ns_settled > 0.0));
    for (label, get) in figures(sc, settled) {
        let mut line = format!("{label:<24}");
        let meds: Vec<f64> = results
            .iter()
            .map(|(_, reps)| median(reps.iter().map(get).collect()))
            .collect();
        for m in &meds {
            line.push_str(&format!("{:>14}", fmt_num(*m)));
        }
        if meds.len() == 2 {
            let ratio = meds[0] / meds[1];
            line.push_str(&format!(
                "{:>16}",
                if ratio.is_finite() {
                    format!("{ratio:.2}")
                } else {
                    "-".into()
                }
            ));
        }
        println!("{line}");
    }
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}
