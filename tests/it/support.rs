//! Helpers shared by the integration tests: a running chatd on a free
//! loopback port with a private control socket, raw chat clients, and raw
//! control connections. Everything stays on 127.0.0.1 / ::1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CHATD: &str = env!("CARGO_BIN_EXE_chatd");
pub const CHATCTL: &str = env!("CARGO_BIN_EXE_chatctl");
pub const CHAT: &str = env!("CARGO_BIN_EXE_chat");

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("chatd-it-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A chatd process. Killed on drop if still running.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub control: PathBuf,
    /// Holds the control socket and `state/`; `None` only after `into_dir`.
    dir: Option<TempDir>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts chatd on 127.0.0.1:0 with a control socket in a fresh
    /// temporary directory, plus `extra` flags; waits until it listens.
    pub fn start(extra: &[&str]) -> Daemon {
        let dir = TempDir::new("d");
        Daemon::start_in(dir, extra)
    }

    pub fn start_in(dir: TempDir, extra: &[&str]) -> Daemon {
        Daemon::start_in_with(dir, extra, None)
    }

    /// [`Daemon::start`] with at most `nofile` descriptors (RLIMIT_NOFILE).
    pub fn start_limited(extra: &[&str], nofile: u64) -> Daemon {
        Daemon::start_in_with(TempDir::new("d"), extra, Some(nofile))
    }

    fn start_in_with(dir: TempDir, extra: &[&str], nofile: Option<u64>) -> Daemon {
        let control = dir.path().join("control.sock");
        let mut args = private_args(&control, &dir.path().join("state"));
        if extra.contains(&"--config") {
            args.truncate(args.len() - 2);
        }
        // CHATD_TEST_POLLER=epoll runs the suite against the epoll backend
        // (scripts/test does, for the protocol, fault and hardening tests).
        if let Ok(poller) = std::env::var("CHATD_TEST_POLLER")
            && !extra.contains(&"--poller")
        {
            args.push("--poller".into());
            args.push(poller);
        }
        if extra.contains(&"--listen") {
            args.drain(..2);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (child, log) = spawn_logged_with(&args, &[], nofile);
        let mut d = Daemon {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            control,
            dir: Some(dir),
            log,
        };
        // Listeners are logged before the control socket: the plaintext
        // one if there is one (`--listen none` leaves only TLS).
        d.wait_log("control socket at", Duration::from_secs(10));
        let lines = d.log_lines();
        let line = lines
            .iter()
            .find(|l| l.contains("listening on "))
            .or_else(|| lines.iter().find(|l| l.contains("listening for TLS on ")))
            .expect("a listener");
        let addr = line.rsplit(" on ").next().unwrap().trim();
        d.addr = addr.parse().unwrap();
        d
    }

    /// The daemon's private directory (control socket, `state/`).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir taken").path()
    }

    /// The state file chatd writes.
    pub fn state_file(&self) -> PathBuf {
        self.dir().join("state").join("rooms.json")
    }

    /// Waits for the process to end (after a signal sent by the caller) and
    /// hands back its directory, to start another chatd on the same state.
    pub fn into_dir(mut self) -> TempDir {
        self.wait_exit(Duration::from_secs(10));
        self.dir.take().expect("dir taken")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`; panics with the log if it
    /// does not come.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if Instant::now() > end {
                panic!(
                    "no log line with {needle:?}; log:\n{}",
                    self.log_lines().join("\n")
                );
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "chatd exited ({st}) before logging {needle:?}; log:\n{}",
                    self.log_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn join(&self, user: &str, room: &str) -> Client {
        let mut c = Client::connect(self.addr);
        c.handshake(user, room);
        c
    }

    /// Joins and waits for the own join notice.
    pub fn joined(&self, user: &str, room: &str) -> Client {
        let mut c = self.join(user, room);
        let ev = c.event();
        assert_eq!(ev["type"], "join", "{ev}");
        assert_eq!(ev["username"], user);
        c
    }

    /// Runs chatctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(CHATCTL)
            .arg("--socket")
            .arg(&self.control)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs chatctl against this daemon with `input` on its stdin (a
    /// password, for example).
    pub fn ctl_with_stdin(&self, args: &[&str], input: &str) -> Output {
        with_stdin(
            Command::new(CHATCTL)
                .arg("--socket")
                .arg(&self.control)
                .args(args),
            input,
        )
    }

    pub fn admin(&self) -> Admin {
        Admin::connect(&self.control)
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "chatd did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns chatd with `args`, collecting its stderr lines in the background.
pub fn spawn_logged(args: &[String], env: &[(&str, &str)]) -> (Child, Arc<Mutex<Vec<String>>>) {
    spawn_logged_with(args, env, None)
}

/// [`spawn_logged`], with the descriptor limit (RLIMIT_NOFILE) set to
/// `nofile` in the child when given.
pub fn spawn_logged_with(
    args: &[String],
    env: &[(&str, &str)],
    nofile: Option<u64>,
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(CHATD);
    if let Some(n) = nofile {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the
        // child between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                    .map_err(std::io::Error::from)
            });
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("CHATD_CONTROL")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (child, log)
}

/// Runs `cmd` to completion with `input` on its stdin, collecting its
/// output.
pub fn with_stdin(cmd: &mut Command, input: impl AsRef<[u8]>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let written = child.stdin.take().unwrap().write_all(input.as_ref());
    // A program that fails early (a refused TLS handshake, say) may exit
    // before it reads its input: a broken pipe then is its answer, not
    // the test's error.
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// chatd's flags for a private instance: 127.0.0.1:0 (first, two
/// items), the control socket `control`, the state directory `state`, and
/// no configuration file (last, two items: a host's /etc/chatd/chatd.toml
/// must not leak in).
pub fn private_args(control: &Path, state: &Path) -> Vec<String> {
    vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--control".into(),
        control.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
        "--config".into(),
        "none".into(),
    ]
}

/// Encodes a client frame with the prototype's left-aligned header.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = format!("{:<10}", payload.len()).into_bytes();
    f.extend_from_slice(payload);
    f
}

/// A raw chat client.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// A client on a connection the test set up itself.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// A second handle on the same connection (for a reader thread beside a
    /// writer).
    pub fn try_clone(&self) -> Client {
        Client {
            stream: self.stream.try_clone().unwrap(),
            buf: Vec::new(),
        }
    }

    pub fn handshake(&mut self, user: &str, room: &str) {
        let hs = serde_json::json!({ "username": user, "room": room }).to_string();
        self.send_frame(hs.as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send_frame(&mut self, payload: &[u8]) {
        self.send_raw(&frame(payload));
    }

    pub fn say(&mut self, text: &str) {
        self.send_frame(text.as_bytes());
    }

    /// The next raw event line (without the newline), or None on EOF or
    /// timeout.
    pub fn line_within(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.try_line(timeout).ok()
    }

    /// The next raw event line, or why there is none.
    pub fn try_line(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).take(nl).collect();
                return Ok(line);
            }
            let left = end
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("timeout after {timeout:?}"))?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(format!(
                        "EOF (unterminated: {:?})",
                        String::from_utf8_lossy(&self.buf)
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(format!("timeout after {timeout:?}"));
                }
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// The next event, parsed; panics if none arrives in time.
    pub fn event(&mut self) -> Value {
        let line = self
            .try_line(EVENT_TIMEOUT)
            .unwrap_or_else(|why| panic!("expected an event: {why}"));
        check_event_line(&line);
        serde_json::from_slice(&line).unwrap()
    }

    pub fn event_within(&mut self, timeout: Duration) -> Option<Value> {
        let line = self.line_within(timeout)?;
        check_event_line(&line);
        Some(serde_json::from_slice(&line).unwrap())
    }

    /// Asserts that nothing arrives for `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        if let Some(line) = self.line_within(wait) {
            panic!("expected silence, got {}", String::from_utf8_lossy(&line));
        }
    }

    /// Whether the server closed the connection (EOF) within `timeout`,
    /// after any pending events.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        read_until_closed(&mut self.stream, &mut self.buf, timeout)
    }

    pub fn close_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Every event line must be pure ASCII with exactly one literal `}`, its
/// last byte (PROTOCOL.md §1).
/// Reads what `stream` sends into `buf` until the peer closes (true) or
/// `timeout` passes (false); the stream's read timeout must be short.
pub fn read_until_closed(stream: &mut TcpStream, buf: &mut Vec<u8>, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    while Instant::now() < end {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

pub fn check_event_line(line: &[u8]) {
    assert!(
        line.is_ascii(),
        "not ASCII: {}",
        String::from_utf8_lossy(line)
    );
    assert_eq!(
        line.iter().filter(|&&b| b == b'}').count(),
        1,
        "more than one literal brace: {}",
        String::from_utf8_lossy(line)
    );
    assert_eq!(line.last(), Some(&b'}'));
    // The typed parser the client uses reads every line the same way an
    // independent JSON parser does.
    let typed = chatd::core::wire::Event::parse(line)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
    let raw: Value = serde_json::from_slice(line).unwrap();
    assert_eq!(raw["type"], typed.kind.as_str());
    assert_eq!(raw["username"], typed.username.as_str());
    assert_eq!(raw["message"], typed.message.as_str());
    assert_eq!(raw["room"].as_str(), typed.room.as_deref());
}

/// A raw control-socket client: one JSON request per line.
pub struct Admin {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Admin {
    pub fn connect(path: &Path) -> Admin {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Admin { stream, reader }
    }

    pub fn send_line(&mut self, line: &str) {
        self.try_send_line(line).unwrap();
    }

    /// The same, for a daemon that may be gone (killed mid-burst).
    pub fn try_send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.stream.write_all(format!("{line}\n").as_bytes())
    }

    pub fn read_json(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "incomplete response line {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    pub fn request(&mut self, req: Value) -> Value {
        self.send_line(&req.to_string());
        self.read_json()
    }
}

/// Polls `f` until it returns true or `timeout` passes.
/// A join whose handshake has `extra` fields too (features, a password).
pub fn join_with(d: &Daemon, user: &str, room: &str, extra: Value) -> Client {
    let mut hs = serde_json::json!({ "username": user, "room": room });
    if let (Some(hs), Some(extra)) = (hs.as_object_mut(), extra.as_object()) {
        hs.extend(extra.clone());
    }
    let mut c = Client::connect(d.addr);
    c.send_frame(hs.to_string().as_bytes());
    c
}

/// Events until one of `kind` comes (panics after the timeout).
pub fn until(c: &mut Client, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Some(ev) = c.event_within(Duration::from_millis(200))
            && ev["type"] == kind
        {
            return ev;
        }
    }
    panic!("no {kind} event");
}

/// A port free on 127.0.0.1 now (for a server that must come back on the
/// same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Raises our descriptor limit (inherited by the chatd we spawn) so that
/// floods of over 1100 sockets are possible.
pub fn allow_many_descriptors() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 8192 {
        let want = hard.min(8192);
        assert!(
            want >= 3000,
            "the descriptor hard limit ({hard}) is too low for this test"
        );
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
}

/// CPU seconds chatd has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A tmux server of our own with one window running a command.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(tag: &str, command: &str) -> Tmux {
        Tmux::start_sized(tag, command, 100, 30)
    }

    /// A window of `width` × `height` cells.
    pub fn start_sized(tag: &str, command: &str, width: u16, height: u16) -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "tmux is needed for the interactive tests (apt-get install tmux; scripts/test installs it)"
        );
        let socket = format!("chatd-it-{}-{tag}", std::process::id());
        let st = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .env("TERM", "xterm")
            // chat speaks Portuguese unless the locale says English: the
            // tests expect the prototype's language whatever the host's.
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", "C.UTF-8")
            .status()
            .unwrap();
        assert!(st.success());
        Tmux { socket }
    }

    /// A tmux format about the window (`#{window_bell_flag}`, say).
    pub fn format(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Types literal text (no key names).
    pub fn type_text(&self, text: &str) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-l", text])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Types a line and presses Enter.
    pub fn enter(&self, line: &str) {
        self.type_text(line);
        self.keys(&["Enter"]);
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `f`; panics with the screen if not.
    pub fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < end, "waiting for {what}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_for(&self, needle: &str) -> String {
        self.wait(needle, |s| s.contains(needle))
    }

    /// Resizes the window (the program gets SIGWINCH).
    pub fn resize(&self, width: u16, height: u16) {
        let st = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "resize-window",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Whether the window's command still runs (tmux ends the server with
    /// the last window).
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The last non-empty line on the screen.
    pub fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// A TCP connection to `addr` from the loopback address `from` (any of
/// 127.0.0.0/8), so a test can be several "addresses" on one machine.
pub fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let local: std::net::SocketAddrV4 = format!("{from}:0").parse().unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(local),
    )
    .unwrap();
    let SocketAddr::V4(to) = addr else {
        panic!("connect_from: IPv4 only")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).unwrap();
    TcpStream::from(fd)
}
