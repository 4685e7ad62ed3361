//! Regressions from the hardening round: each test names the way chatd
//! could be stalled, forged, exhausted or confused before, and checks it no
//! longer can, through the real programs.

use std::fs::OpenOptions;
use std::io::Read;
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
    let args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--control".into(),
        dir.path().join("c.sock").display().to_string(),
        "--state-dir".into(),
        dir.path().join("state").display().to_string(),
    ];
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
