//! Rooms survive restarts and crashes; chatd behaves as a systemd service
//! (readiness notification, journal priorities).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn room_list(d: &Daemon) -> Value {
    d.admin().request(json!({"cmd":"list"}))["rooms"].clone()
}

#[test]
fn restart_keeps_rooms_and_limits() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let mut a = d.admin();
    for (name, limit) in [("Lobby", 10), ("Gone", 3), ("Último", 7)] {
        assert_eq!(
            a.request(json!({"cmd":"create-room","name":name,"limit":limit}))["ok"],
            true
        );
    }
    assert_eq!(
        a.request(json!({"cmd":"set-limit","room":"Teste","limit":5}))["ok"],
        true
    );
    assert_eq!(
        a.request(json!({"cmd":"close-room","room":"Gone"}))["ok"],
        true
    );
    let before = room_list(&d);
    d.signal("TERM");
    let dir = d.into_dir();

    // --room Teste:2 again: the saved limit (5) wins; a new --room is added.
    let mut d = Daemon::start_in(dir, &["--room", "Teste:2", "--room", "Novo:4"]);
    d.wait_log("state: 3 room(s) loaded", Duration::from_secs(2));
    let after = room_list(&d);
    let mut want = before.as_array().unwrap().clone();
    want.push(json!({"name":"Novo","limit":4,"members":0}));
    assert_eq!(after, Value::Array(want));
    assert_eq!(after[0], json!({"name":"Teste","limit":5,"members":0}));
}

#[test]
fn kill_9_during_a_burst_of_creates_loses_nothing_acknowledged() {
    let d = Daemon::start(&[]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let control = d.control.clone();
    let writer = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            let mut a = Admin::connect(&control);
            for i in 0.. {
                let name = format!("room-{i}");
                let request = json!({"cmd":"create-room","name":name,"limit":2}).to_string();
                if a.try_send_line(&request).is_err() {
                    return; // killed between an answer and the next request
                }
                let mut line = String::new();
                use std::io::BufRead;
                let mut r = std::io::BufReader::new(&a.stream);
                match r.read_line(&mut line) {
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        let v: Value = serde_json::from_str(&line).unwrap();
                        assert_eq!(v["ok"], true, "{v}");
                        acked.lock().unwrap().push(name);
                    }
                    _ => return,
                }
            }
        })
    };
    // Let the burst run, then kill without warning.
    assert!(eventually(Duration::from_secs(10), || acked
        .lock()
        .unwrap()
        .len()
        >= 50));
    d.signal("KILL");
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let dir = d.into_dir();

    let state = dir.path().join("state/rooms.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap())
        .expect("the state file is whole after kill -9");
    let saved_names: Vec<&str> = saved["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for name in &acked {
        assert!(
            saved_names.contains(&name.as_str()),
            "acknowledged {name} is lost"
        );
    }
    // At most the one in flight was saved without its acknowledgement.
    assert!(saved_names.len() <= acked.len() + 1);

    // And a new chatd starts from it, replacing the dead control socket.
    let d = Daemon::start_in(dir, &[]);
    assert_eq!(room_list(&d).as_array().unwrap().len(), saved_names.len());
}

#[test]
fn corrupt_state_file_is_refused_and_left_intact() {
    let dir = TempDir::new("corrupt");
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let state = state_dir.join("rooms.json");
    for bad in [
        &b"{\"version\":1,\"rooms\":[{\"name\":\"x\",\"limit\":"[..],
        b"\x00\xff garbage",
        b"{\"version\":1,\"rooms\":[{\"name\":\"\",\"limit\":2}]}",
        b"{\"version\":1,\"rooms\":[{\"name\":\"a\",\"limit\":2},{\"name\":\"a\",\"limit\":3}]}",
        b"{\"version\":99,\"rooms\":[]}",
    ] {
        std::fs::write(&state, bad).unwrap();
        let out = Command::new(CHATD)
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state_dir)
            .arg("--control")
            .arg(dir.path().join("c.sock"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(bad)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&state.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&state).unwrap(), bad, "the file was modified");
        assert!(!dir.path().join("c.sock").exists(), "bound before refusing");
    }
}

#[test]
fn failed_write_is_refused_and_nothing_changes() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let state = d.state_file();
    let before = std::fs::read(&state).unwrap();
    // A directory where the temporary file must go: every save fails (even
    // for root, unlike a permission change).
    let blocker = state.with_file_name(format!("rooms.json.tmp.{}", d.pid()));
    std::fs::create_dir(&blocker).unwrap();
    let mut a = d.admin();
    for req in [
        json!({"cmd":"create-room","name":"New","limit":2}),
        json!({"cmd":"set-limit","room":"Teste","limit":9}),
        json!({"cmd":"close-room","room":"Teste"}),
    ] {
        let r = a.request(req.clone());
        assert_eq!(r["error"]["code"], "failed", "{req}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rooms.json.tmp"),
            "{r}"
        );
    }
    assert_eq!(
        room_list(&d),
        json!([{"name":"Teste","limit":2,"members":0}])
    );
    assert_eq!(std::fs::read(&state).unwrap(), before);
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(
        a.request(json!({"cmd":"create-room","name":"New","limit":2}))["ok"],
        true
    );
}

#[test]
fn ready_status_and_stopping_reach_notify_socket() {
    let dir = TempDir::new("notify");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let args = private_args(&dir.path().join("c.sock"), &dir.path().join("state"));
    let (mut child, log) = spawn_logged(&args, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(), "READY=1");
    // READY comes after listening, so the port is already logged.
    assert!(eventually(Duration::from_secs(5), || log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("listening on"))));
    assert_eq!(recv(), "STATUS=0 client(s), 0 room(s)");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(recv().starts_with("STOPPING=1"));
    assert!(child.wait().unwrap().success());
}

#[test]
fn under_journald_stderr_lines_carry_priorities() {
    // systemd sets JOURNAL_STREAM to the "device:inode" of the stream it
    // connected to stderr; chatd then prefixes lines with <priority>.
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    let st = nix::sys::stat::fstat(write.as_fd()).unwrap();
    let dir = TempDir::new("journal");
    let mut child = Command::new(CHATD)
        .args(["--listen", "127.0.0.1:0", "--control"])
        .arg(dir.path().join("c.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("JOURNAL_STREAM", format!("{}:{}", st.st_dev, st.st_ino))
        .stdin(Stdio::null())
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    let mut reader = std::fs::File::from(read);
    let mut text = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    while !text.contains("control socket at") {
        assert!(Instant::now() < end, "{text}");
        let mut buf = [0u8; 4096];
        let n = reader.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("<6>chatd "), "{first}");

    // The same variable naming another stream (stderr was redirected) is
    // ignored: plain timestamped lines.
    let args = private_args(&dir.path().join("c2.sock"), &dir.path().join("state"));
    let (mut child, log) = spawn_logged(&args, &[("JOURNAL_STREAM", "1:1")]);
    assert!(eventually(Duration::from_secs(10), || log
        .lock()
        .unwrap()
        .len()
        >= 2));
    let _ = child.kill();
    let _ = child.wait();
    let first = log.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("20") && first.contains(" INFO  chatd "),
        "{first}"
    );
}

#[test]
fn systemd_unit_points_at_what_chatd_reads() {
    // The unit's directories are where chatd looks by default.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/chatd.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "RuntimeDirectory=chatd",
        "StateDirectory=chatd",
        "User=chatd",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    assert_eq!(chatd::paths::SYSTEM_SOCKET, "/run/chatd/control.sock");
}
