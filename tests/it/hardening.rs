//! Regressions from the hardening round: each test names the way chatd
//! could be stalled, forged, exhausted or confused before, and checks it no
//! longer can, through the real programs.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Reads from a non-blocking FIFO until `needle` has been seen (or panics
/// after `timeout`); returns everything read.
fn read_fifo_until(fifo: &mut std::fs::File, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains(needle) {
        assert!(Instant::now() < end, "no {needle:?} in:\n{text}");
        match fifo.read(&mut buf) {
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("fifo: {e}"),
        }
    }
    text
}

/// A chatd whose stderr is a FIFO that the test holds open and reads only
/// when it chooses. Killed on drop.
struct FifoDaemon {
    child: std::process::Child,
    reader: std::fs::File,
    addr: std::net::SocketAddr,
    control: std::path::PathBuf,
    _dir: TempDir,
}

impl FifoDaemon {
    fn start(extra: &[&str]) -> FifoDaemon {
        let dir = TempDir::new("fifo");
        let fifo_path = dir.path().join("stderr.fifo");
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo_path)
            .unwrap();
        let writer = OpenOptions::new().write(true).open(&fifo_path).unwrap();
        let control = dir.path().join("c.sock");
        let child = Command::new(CHATD)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--control")
            .arg(&control)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(writer))
            .spawn()
            .unwrap();
        let start = read_fifo_until(&mut reader, "control socket at", Duration::from_secs(10));
        let addr = start
            .lines()
            .find_map(|l| l.split("listening on ").nth(1))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        FifoDaemon {
            child,
            reader,
            addr,
            control,
            _dir: dir,
        }
    }
}

impl Drop for FifoDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bug: log lines were written to stderr with blocking writes from inside
/// the loop, so a stderr nobody read (`chatd 2>&1 | less` left alone)
/// stopped chatd after a few hundred lines: no joins, no chatctl, no exit on
/// SIGTERM.
#[test]
fn a_log_reader_that_never_reads_does_not_stop_chatd() {
    let mut d = FifoDaemon::start(&["--room", "Big:5000", "--log-messages"]);
    let addr = d.addr;
    // Each join and leave is logged, and so is each message: far more than
    // the pipe (64 KiB) and the sink's queue can hold.
    for i in 0..3000 {
        let mut c = Client::connect(addr);
        let user = format!("user{i}");
        c.handshake(&user, "Big");
        let ev = c.event();
        assert_eq!(ev["type"], "join", "join {i}: {ev}");
        c.say("a line that --log-messages writes to the log as well");
    }
    let list = Command::new(CHATCTL)
        .arg("--socket")
        .arg(&d.control)
        .arg("list")
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    assert!(String::from_utf8_lossy(&list.stdout).contains("Big"));

    // SIGTERM still stops it, with nobody reading its log.
    Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "chatd did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

/// The other half of the same bug: once the reader catches up, the log
/// says how many entries it missed, once.
#[test]
fn a_log_reader_that_catches_up_is_told_what_it_missed() {
    let mut d = FifoDaemon::start(&["--room", "Big:5000"]);
    let addr = d.addr;
    for i in 0..3000 {
        let mut c = Client::connect(addr);
        c.handshake(&format!("user{i}"), "Big");
        assert_eq!(c.event()["type"], "join");
    }
    let rest = read_fifo_until(
        &mut d.reader,
        "log entries dropped",
        Duration::from_secs(10),
    );
    let note = rest
        .lines()
        .find(|l| l.contains("log entries dropped"))
        .unwrap();
    let n: u64 = note
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{note}"));
    assert!(n > 0, "{note}");
}

/// With systemd's watchdog on, the loop pings it: a loop that stops (the
/// blocked log sink above, or anything else) gets chatd restarted.
#[test]
fn the_loop_pets_systemds_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("watchdog");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let args = private_args(&dir.path().join("c.sock"), &dir.path().join("state"));
    let (mut child, _log) = spawn_logged(
        &args,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let start = Instant::now();
    let mut pings = 0;
    while pings < 4 {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification");
        if &buf[..n] == b"WATCHDOG=1" {
            pings += 1;
        }
    }
    // Every half interval (100 ms), not in a burst and not late.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let _ = child.kill();
    let _ = child.wait();
}

/// chatd with the given state and control paths, expected to fail at
/// start-up: killed (and the test failed) if it is still running after 10 s.
fn run_chatd(
    state: &std::path::Path,
    control: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut child = Command::new(CHATD)
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .arg("--control")
        .arg(control)
        .args(extra)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "chatd started instead of failing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Bug: two chatds could share one state directory and overwrite each
/// other's acknowledged rooms.
#[test]
fn a_second_chatd_on_the_same_state_directory_is_refused() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let state_dir = d.state_file().parent().unwrap().to_path_buf();
    let before = std::fs::read(d.state_file()).unwrap();
    let other = TempDir::new("second");
    let out = run_chatd(
        &state_dir,
        &other.path().join("c.sock"),
        &["--room", "Intruder:3"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&state_dir.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");
    assert_eq!(std::fs::read(d.state_file()).unwrap(), before);
    assert!(!other.path().join("c.sock").exists());
    // The first one is unaffected and still saves.
    let r = d
        .admin()
        .request(serde_json::json!({"cmd":"create-room","name":"Mine","limit":2}));
    assert_eq!(r["ok"], true, "{r}");
}

/// Bug: a chatd refused because the control socket was in use had already
/// rewritten rooms.json with its --room additions.
#[test]
fn a_chatd_that_fails_to_start_never_writes_the_state_file() {
    let d = Daemon::start(&[]);
    let fresh = TempDir::new("fresh");
    let state_dir = fresh.path().join("state");
    let out = run_chatd(&state_dir, &d.control, &["--room", "Novo:2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{out:?}"
    );
    assert!(!state_dir.join("rooms.json").exists());
}

/// Bug: the temporary file had a fixed name and was opened following
/// symlinks, so a link planted there redirected the save.
#[test]
fn a_symlink_planted_at_the_temporary_name_cannot_redirect_a_save() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let state_dir = d.state_file().parent().unwrap().to_path_buf();
    let victim = d.dir().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    for name in [
        "rooms.json.tmp".to_string(),
        format!("rooms.json.tmp.{}", d.pid()),
    ] {
        std::os::unix::fs::symlink(&victim, state_dir.join(name)).unwrap();
    }
    let r = d
        .admin()
        .request(serde_json::json!({"cmd":"create-room","name":"Safe","limit":2}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let saved = std::fs::read_to_string(d.state_file()).unwrap();
    assert!(saved.contains("Safe"), "{saved}");
    assert!(
        !std::fs::symlink_metadata(d.state_file())
            .unwrap()
            .is_symlink()
    );
}

/// rooms.json as a symbolic link is refused at start-up, and left alone.
#[test]
fn a_state_file_that_is_a_symlink_is_refused() {
    let dir = TempDir::new("statelink");
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let target = dir.path().join("elsewhere.json");
    let content = b"{\"version\":1,\"rooms\":[{\"name\":\"x\",\"limit\":2}]}\n";
    std::fs::write(&target, content).unwrap();
    std::os::unix::fs::symlink(&target, state_dir.join("rooms.json")).unwrap();
    let out = run_chatd(&state_dir, &dir.path().join("c.sock"), &["--room", "y:2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(
        std::fs::symlink_metadata(state_dir.join("rooms.json"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), content);
}

/// A command with the control socket left to the fallback rule, under a
/// private $TMPDIR (a relative $XDG_RUNTIME_DIR must be ignored).
fn with_fallback_env(program: &str, tmpdir: &std::path::Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("CHATD_CONTROL")
        .env_remove("RUNTIME_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .env("XDG_RUNTIME_DIR", "relative/run")
        .env("TMPDIR", tmpdir)
        .stdin(Stdio::null());
    cmd
}

/// Bug: /tmp/chatd-$UID made in advance by someone else, or with mode 0777,
/// was used as it was, so its owner could swap the control socket.
#[test]
fn the_fallback_runtime_directory_must_be_private() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = TempDir::new("tmpdir");
    let uid = nix::unistd::getuid().as_raw();
    let runtime = tmp.path().join(format!("chatd-{uid}"));
    let state = tmp.path().join("state");

    // Missing: chatd creates it, 0700, and chatctl finds the socket there.
    let (mut child, log) = {
        let mut cmd = with_fallback_env(CHATD, tmp.path());
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--room",
            "Teste:2",
            "--state-dir",
        ])
        .arg(&state)
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        (child, log)
    };
    let sock = runtime.join("control.sock");
    assert!(
        eventually(Duration::from_secs(10), || sock.exists()),
        "{}",
        log.lock().unwrap()
    );
    let meta = std::fs::metadata(&runtime).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o700);
    let list = with_fallback_env(CHATCTL, tmp.path())
        .arg("list")
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_file(&sock).unwrap();

    let refused = |why: &str| {
        let out = with_fallback_env(CHATD, tmp.path())
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&runtime.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
        let out = with_fallback_env(CHATCTL, tmp.path())
            .arg("list")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    };
    // World-writable.
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused("writable by group or others");
    // Someone else's (as root, the test can give it away).
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    if uid == 0 {
        std::os::unix::fs::chown(&runtime, Some(65534), Some(65534)).unwrap();
        refused("owned by uid 65534");
    }
    // A symlink to a directory that would pass.
    std::fs::remove_dir(&runtime).unwrap();
    let decoy = tmp.path().join("decoy");
    std::fs::create_dir(&decoy).unwrap();
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&decoy, &runtime).unwrap();
    refused("not a directory");
}

/// Bug: a control path too long for sun_path failed at bind(2), after its
/// directory had been created.
#[test]
fn a_control_path_longer_than_sun_path_leaves_no_directory() {
    let tmp = TempDir::new("longpath");
    let parent = tmp.path().join("x".repeat(60)).join("y".repeat(60));
    let out = run_chatd(&tmp.path().join("state"), &parent.join("control.sock"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 107"), "{err}");
    assert!(!tmp.path().join("x".repeat(60)).exists());
    assert!(!tmp.path().join("state").join("rooms.json").exists());
}

/// Bug: accept(2) on the control socket at EMFILE was not handled: the
/// loop spun at 100 % CPU logging tens of thousands of lines a second, and
/// chatctl was never answered.
#[test]
fn control_socket_out_of_descriptors_answers_and_does_not_spin() {
    let mut d = Daemon::start_limited(&["--room", "Teste:100"], 40);
    // Hold more chat connections than chatd has descriptors.
    let mut held: Vec<std::net::TcpStream> = (0..60)
        .filter_map(|_| std::net::TcpStream::connect(d.addr).ok())
        .collect();
    d.wait_log("out of file descriptors", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    let warnings_before = d
        .log_lines()
        .iter()
        .filter(|l| l.contains("out of file descriptors"))
        .count();
    let before = cpu_secs(d.pid());
    let start = Instant::now();
    // chatctl is told, promptly, rather than left waiting.
    let out = d.ctl(&["list"]);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("out of file descriptors"),
        "{out:?}"
    );
    // More control connections keep arriving; the loop must not spin.
    let mut pending = Vec::new();
    while start.elapsed() < Duration::from_secs(1) {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&d.control) {
            pending.push(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_secs(d.pid()) - before;
    assert!(used < 0.5, "chatd used {used} s of CPU in 1 s");
    let warnings = d
        .log_lines()
        .iter()
        .filter(|l| l.contains("out of file descriptors"))
        .count()
        - warnings_before;
    assert!(warnings <= 3, "{warnings} warnings in about a second");
    // Descriptors come back: so does chatctl.
    held.clear();
    pending.clear();
    assert!(eventually(Duration::from_secs(5), || d
        .ctl(&["list"])
        .status
        .success()));
}

/// Bug: control connections had no count limit and no timeout, so a
/// thousand half-written requests filled select(2)'s slots and locked out
/// chat joins.
#[test]
fn half_written_control_requests_lock_out_nobody() {
    use std::io::Write;
    allow_many_descriptors();
    let mut d = Daemon::start(&["--room", "Teste:5", "--control-timeout", "1"]);
    let mut a = d.joined("witness-a", "Teste");
    let mut b = d.joined("witness-b", "Teste");
    a.event();
    // As many connections as the backlog takes, each with half a request.
    let mut stalled = Vec::new();
    for _ in 0..1000 {
        let Ok(fd) = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        ) else {
            break;
        };
        let addr = nix::sys::socket::UnixAddr::new(&d.control).unwrap();
        if nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).is_err() {
            continue;
        }
        let mut s = std::os::unix::net::UnixStream::from(fd);
        let _ = s.write(br#"{"cmd":"li"#);
        stalled.push(s);
    }
    assert!(stalled.len() >= 100, "only {} connected", stalled.len());
    // Chat is not locked out: every free seat up to --max-clients can be
    // taken, and nobody is refused for lack of a descriptor slot.
    let conns: Vec<std::net::TcpStream> = (0..998)
        .map(|_| std::net::TcpStream::connect(d.addr).unwrap())
        .collect();
    let probe = "still talking";
    a.say(probe);
    assert_eq!(b.event()["message"], probe);
    std::thread::sleep(Duration::from_millis(300));
    let log = d.log_lines().join("\n");
    assert!(!log.contains("no descriptor slot"), "{log}");
    assert!(!log.contains("--max-clients 1000 reached"), "{log}");
    // Stalled requests are cut off after --control-timeout.
    d.wait_log("stalled mid-request", Duration::from_secs(5));
    drop(conns);
    drop(stalled);
    assert!(eventually(Duration::from_secs(10), || d
        .ctl(&["list"])
        .status
        .success()));
}

/// Bug: output per control connection was not bounded across pipelined
/// requests: 16 KiB of `logs` requests never read made chatd build about
/// 100 MB of replies per peer.
#[test]
fn pipelined_requests_never_read_keep_memory_bounded() {
    use std::io::Write;
    let d = Daemon::start(&["--room", "Teste:2000"]);
    // Fill the log ring (1000 entries): each join and leave is an entry.
    for i in 0..500 {
        let mut c = d.join(&format!("filler{i}"), "Teste");
        assert_eq!(c.event()["type"], "join");
    }
    let full = d
        .admin()
        .request(serde_json::json!({"cmd":"logs","limit":1000}));
    assert!(full["logs"].as_array().unwrap().len() >= 900);
    let rss_before = d.rss_kib();
    let request = b"{\"cmd\":\"logs\",\"limit\":1000}\n";
    let flood: Vec<u8> = request.repeat(16 * 1024 / request.len());
    // Every control slot but one flooded (the slots are what select(2)'s
    // descriptor budget leaves: "control: up to N connections").
    let line = d
        .log_lines()
        .into_iter()
        .find(|l| l.contains("control: up to "))
        .expect("the control budget is logged");
    let slots: usize = line
        .split("up to ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a number of connections");
    assert!(slots >= 2, "{line}");
    let mut peers = Vec::new();
    for _ in 0..slots - 1 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.control).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&flood).unwrap();
        peers.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = d.rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    // Everyone else is still answered.
    let r = d.admin().request(serde_json::json!({"cmd":"list"}));
    assert_eq!(r["ok"], true);
    // And a peer that reads after all gets every answer, in order.
    use std::io::{BufRead, BufReader};
    let mut reader = BufReader::new(peers.pop().unwrap());
    let mut answers = 0;
    let mut line = String::new();
    while answers < flood.len() / request.len() {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"ok\":true,\"logs\":["), "{line}");
        answers += 1;
    }
}

/// Bug: a member that read in bursts (256 KiB once a second) dipped under
/// the high-water mark just before --write-timeout ran out, so it was never
/// dropped, and every healthy member of its room received nothing for most
/// of each second, for as long as it stayed.
#[test]
fn a_reader_in_bursts_cannot_hold_its_room_back_forever() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut d = Daemon::start(&[
        "--room",
        "Teste:5",
        "--write-timeout",
        "1",
        "--flood-rate",
        "0",
    ]);
    let mut sender = d.joined("sender", "Teste");
    let mut healthy = d.joined("healthy", "Teste");
    // The burst reader's receive buffer is kept small (set before connect,
    // so the window stays small), so that what it does not read backs up in
    // chatd within milliseconds instead of in megabytes of kernel buffers.
    let slow = {
        use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::setsockopt(&fd, sockopt::RcvBuf, &8192).unwrap();
        let std::net::SocketAddr::V4(v4) = d.addr else {
            unreachable!("chatd listens on 127.0.0.1")
        };
        socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)).unwrap();
        let mut c = Client::from_stream(std::net::TcpStream::from(fd));
        c.handshake("slow", "Teste");
        assert_eq!(c.event()["username"], "slow");
        c
    };
    sender.event();
    sender.event();
    healthy.event();

    // The burst reader: drains everything for 50 ms, then sleeps 600 ms,
    // so it is above the mark for about half a second at a time, under
    // --write-timeout.
    let stop = Arc::new(AtomicBool::new(false));
    let slow_thread = {
        let mut s = slow.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let start = Instant::now();
            // Until chatd closes the connection (or long after the test).
            while start.elapsed() < Duration::from_secs(15) {
                let burst = Instant::now();
                while burst.elapsed() < Duration::from_millis(50) {
                    match s.read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return true,
                    }
                }
                std::thread::sleep(Duration::from_millis(600));
            }
            false
        })
    };
    // The sender sends numbered 4 KB messages flat out for up to 6 s.
    let sender_thread = {
        let stop = Arc::clone(&stop);
        let mut s = sender.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            let start = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(6) {
                let text = format!("{n:08} {}", "x".repeat(4000));
                match s.write_all(&frame(text.as_bytes())) {
                    Ok(()) => n += 1,
                    Err(_) => continue,
                }
            }
            n
        })
    };
    // The healthy member gets every message in order, and sees the slow
    // one leave.
    let mut next = 0u64;
    let mut left_at = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let Some(ev) = healthy.event_within(Duration::from_secs(3)) else {
            break;
        };
        match ev["type"].as_str() {
            Some("message") => {
                let seq: u64 = ev["message"].as_str().unwrap()[..8].parse().unwrap();
                assert_eq!(seq, next, "healthy member missed a message");
                next += 1;
            }
            Some("leave") if ev["username"] == "slow" => {
                left_at = Some(start.elapsed());
                break;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender_thread.join().unwrap();
    let slow_saw_eof = slow_thread.join().unwrap();
    let left_at = left_at.unwrap_or_else(|| {
        panic!(
            "the burst reader was never dropped ({next} of {sent} messages reached the healthy member); log:\n{}", d.log_lines().join("\n")
        )
    });
    eprintln!("burst reader dropped after {left_at:?}");
    assert!(
        left_at < Duration::from_secs(5),
        "dropped after {left_at:?}"
    );
    assert!(slow_saw_eof);
    d.wait_log("dropping 'slow'", Duration::from_secs(2));
    d.wait_log("stall budget", Duration::from_secs(2));
    let _ = sender.stream.flush();
}

/// Bug: `Sistema` with a zero-width space, a word joiner, a soft hyphen,
/// Cyrillic е or Ѕ, fullwidth letters or a dotless ı was accepted, and
/// `chat` printed `Sistema > *** SALA ENCERRADA ***` from it,
/// indistinguishable from the real notice.
#[test]
fn the_reserved_name_cannot_be_forged() {
    let d = Daemon::start(&["--room", "Teste:50"]);
    for forged in [
        "Sis\u{200b}tema",
        "Sis\u{2060}tema",
        "Sis\u{ad}tema",
        "Sist\u{435}ma",
        "\u{405}istema",
        "Ｓｉｓｔｅｍａ",
        "S\u{131}stema",
        "SISTEMA",
        "Sistem\u{430}",
    ] {
        let mut c = d.join(forged, "Teste");
        let ev = c.event();
        assert_eq!(ev["type"], "error", "{forged:?}: {ev}");
        assert_eq!(ev["message"], "400", "{forged:?}: {ev}");
        assert_eq!(ev["room"], "Teste", "{forged:?}: {ev}");
        assert!(c.closed_within(Duration::from_secs(5)), "{forged:?}");
    }
    let list = d
        .admin()
        .request(serde_json::json!({"cmd":"participants","room":"Teste"}));
    assert_eq!(list["participants"], serde_json::json!([]));
}

/// Bug: "name already taken" compared bytes, so `yan` or `Yаn` (Cyrillic а)
/// could join beside `Yan` and speak as them.
#[test]
fn look_alike_names_are_taken() {
    let d = Daemon::start(&["--room", "Teste:50"]);
    let _yan = d.joined("Yan", "Teste");
    for look_alike in ["yan", "YAN", "Y\u{430}n"] {
        let mut c = d.join(look_alike, "Teste");
        let ev = c.event();
        assert_eq!(ev["message"], "409", "{look_alike:?}: {ev}");
        assert!(
            ev["reason"].as_str().unwrap().contains("looks like 'Yan'"),
            "{ev}"
        );
    }
    // Names that only need canonical spelling are told which one.
    let mut c = d.join("Ｙａｎｉ", "Teste");
    let ev = c.event();
    assert_eq!(ev["message"], "400");
    assert!(
        ev["reason"].as_str().unwrap().contains("use 'Yani'"),
        "{ev}"
    );
    // An admin may kick by a look-alike; the answer names who was removed.
    let r = d
        .admin()
        .request(serde_json::json!({"cmd":"kick","room":"Teste","username":"YAN"}));
    assert_eq!(r["username"], "Yan", "{r}");
}

/// Bug: a JSON array handshake (`["a","H"]`) was accepted as user a in
/// room H; and handshake-time 400s did not carry the room they named.
#[test]
fn the_handshake_must_be_an_object_and_400s_name_the_room() {
    let d = Daemon::start(&["--room", "H:5"]);
    let mut c = Client::connect(d.addr);
    c.send_frame(br#"["a","H"]"#);
    let ev = c.event();
    assert_eq!(ev["message"], "400", "{ev}");
    assert!(ev.get("room").is_none(), "{ev}");
    let mut c = Client::connect(d.addr);
    c.send_frame(br#"{"username":"bad\u0007name","room":"H"}"#);
    let ev = c.event();
    assert_eq!(ev["message"], "400", "{ev}");
    assert_eq!(ev["room"], "H", "{ev}");
    let ps = d
        .admin()
        .request(serde_json::json!({"cmd":"participants","room":"H"}));
    assert_eq!(ps["participants"], serde_json::json!([]));
}

/// Bug: the shutdown log line said "0 client(s) closed before their output
/// was flushed" even when clients were cut off.
#[test]
fn shutdown_counts_the_clients_it_cut_off() {
    let mut d = Daemon::start(&[
        "--room",
        "Teste:5",
        "--write-timeout",
        "60",
        "--flood-rate",
        "0",
    ]);
    let mut a = d.joined("A", "Teste");
    let mut b = d.joined("B", "Teste");
    let stalled = d.joined("Stalled", "Teste");
    a.event();
    a.event();
    b.event();
    // Stalled never reads: its kernel buffers and then its queue in chatd
    // fill up, and the room stops flowing. A writes from its own thread
    // (its writes block once chatd stops reading the room).
    let mut writer = a.try_clone();
    std::thread::spawn(move || {
        let text = "z".repeat(8000);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if writer.stream.write_all(&frame(text.as_bytes())).is_err() {
                return;
            }
        }
    });
    // B reads everything to the end; Stalled still reads nothing.
    let reader = std::thread::spawn(move || {
        while let Some(ev) = b.event_within(Duration::from_secs(10)) {
            if ev["type"] == "shutdown" {
                return b.closed_within(Duration::from_secs(5));
            }
        }
        false
    });
    std::thread::sleep(Duration::from_secs(1));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
    assert!(reader.join().unwrap(), "B did not get shutdown and EOF");
    let line = d.wait_log("stopped (", Duration::from_secs(2));
    assert!(
        line.contains("stopped (1 client(s) closed before their output was flushed)"),
        "{line}"
    );
    drop(stalled);
    drop(a);
}

/// The IRC door holds the same line on names: the reserved name and its
/// forgeries are 432, look-alikes of a member are 433, and terminal
/// escapes in a message never reach the room.
#[test]
fn the_irc_door_refuses_forged_and_look_alike_nicks_and_escapes() {
    use crate::irc::{Irc, irc_daemon};
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:50"]);
    let mut yan = d.joined("Yan", "Teste");
    let mut c = Irc::connect(irc_addr);
    for forged in ["Sistema", "Sist\u{435}ma", "Sis\u{200b}tema", "SISTEMA"] {
        c.send(&format!("NICK {forged}"));
        c.expect("432", |l| l.contains(" 432 "));
    }
    for look_alike in ["yan", "YAN", "Y\u{430}n"] {
        c.send(&format!("NICK {look_alike}"));
        c.expect("433", |l| l.contains(" 433 "));
    }
    c.send("NICK visita");
    c.send("USER v 0 * :v");
    c.expect("registered", |l| l.contains(" 376 "));
    c.send("JOIN #Teste");
    c.expect("NAMES", |l| l.contains(" 366 "));
    assert_eq!(yan.event()["username"], "visita");
    c.send("PRIVMSG #Teste :\u{1b}[2Jclear\u{7}");
    c.expect("404 for control characters", |l| l.contains(" 404 "));
    c.send("PRIVMSG #Teste :limpo");
    let ev = yan.event();
    assert_eq!(
        (ev["username"].as_str(), ev["message"].as_str()),
        (Some("visita"), Some("limpo"))
    );
}
