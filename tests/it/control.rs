//! PROTOCOL.md §2 and chatctl against the real chatd: every command, every
//! exit status, JSON output, the socket's life cycle and permissions.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn raw_session_many_requests_and_a_malformed_line() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let mut a = d.admin();
    let r = a.request(json!({"cmd":"create-room","name":"Sala","limit":3}));
    assert_eq!(
        r,
        json!({"ok":true,"room":{"name":"Sala","limit":3,"members":0}})
    );
    a.send_line("this is not json");
    let r = a.read_json();
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "bad_request");
    for bad in [
        r#"{"cmd":"explode"}"#,
        r#"{"cmd":"create-room","name":"X"}"#,
        r#"{"cmd":"create-room","name":"X","limit":-1}"#,
    ] {
        a.send_line(bad);
        assert_eq!(a.read_json()["error"]["code"], "bad_request", "{bad}");
    }
    // Still usable after the bad lines; blank lines are ignored.
    a.send_line("");
    let r = a.request(json!({"cmd":"list"}));
    assert_eq!(
        r,
        json!({"ok":true,"rooms":[
            {"name":"Teste","limit":2,"members":0},
            {"name":"Sala","limit":3,"members":0}
        ]})
    );
}

#[test]
fn pipelined_requests_in_one_write_get_answers_in_order() {
    let d = Daemon::start(&[]);
    let mut s = UnixStream::connect(&d.control).unwrap();
    s.write_all(
        b"{\"cmd\":\"create-room\",\"name\":\"A\",\"limit\":1}\n{\"cmd\":\"create-room\",\"name\":\"A\",\"limit\":1}\n{\"cmd\":\"list\"}",
    )
    .unwrap();
    // The last request has no newline: end of input completes it.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_to_string(&mut out).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["error"]["code"], "exists");
    assert_eq!(lines[2]["rooms"][0]["name"], "A");
}

#[test]
fn oversize_request_line_is_refused_and_connection_stays_usable() {
    let d = Daemon::start(&[]);
    let mut a = d.admin();
    let huge = format!(
        "{{\"cmd\":\"create-room\",\"name\":\"{}\",\"limit\":1}}",
        "x".repeat(200_000)
    );
    a.send_line(&huge);
    let r = a.read_json();
    assert_eq!(r["error"]["code"], "bad_request");
    assert!(r["error"]["message"].as_str().unwrap().contains("longer"));
    assert_eq!(a.request(json!({"cmd":"list"}))["ok"], true);
}

#[test]
fn error_codes_not_found_exists_invalid() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let mut a = d.admin();
    let code =
        |a: &mut Admin, v: Value| a.request(v)["error"]["code"].as_str().unwrap().to_string();
    assert_eq!(
        code(&mut a, json!({"cmd":"participants","room":"X"})),
        "not_found"
    );
    assert_eq!(
        code(&mut a, json!({"cmd":"close-room","room":"X"})),
        "not_found"
    );
    assert_eq!(
        code(
            &mut a,
            json!({"cmd":"kick","room":"Teste","username":"nobody"})
        ),
        "not_found"
    );
    assert_eq!(
        code(
            &mut a,
            json!({"cmd":"create-room","name":"Teste","limit":2})
        ),
        "exists"
    );
    assert_eq!(
        code(&mut a, json!({"cmd":"create-room","name":"","limit":2})),
        "invalid"
    );
    assert_eq!(
        code(&mut a, json!({"cmd":"create-room","name":"Y","limit":0})),
        "invalid"
    );
    assert_eq!(
        code(&mut a, json!({"cmd":"set-limit","room":"Teste","limit":0})),
        "invalid"
    );
    let r = a.request(json!({"cmd":"participants","room":"X"}));
    assert_eq!(r["error"]["message"], "no room named 'X'");
}

#[test]
fn participants_close_kick_and_set_limit() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let mut yan = d.joined("Yan", "Teste");
    let mut ana = d.joined("Ana", "Teste");
    yan.event();
    let mut a = d.admin();

    let r = a.request(json!({"cmd":"participants","room":"Teste"}));
    let p = r["participants"].as_array().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["username"], "Yan");
    assert_eq!(p[1]["username"], "Ana");
    assert!(p[0]["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(p[0]["joined_at"].as_str().unwrap().ends_with('Z'));

    // set-limit: members above the new limit stay; new joins obey it.
    let r = a.request(json!({"cmd":"set-limit","room":"Teste","limit":1}));
    assert_eq!(
        r,
        json!({"ok":true,"room":{"name":"Teste","limit":1,"members":2}})
    );
    let mut late = d.join("Bia", "Teste");
    assert_eq!(late.event()["message"], "501");

    // kick: the member is told and closed; the room gets leave.
    let r = a.request(json!({"cmd":"kick","room":"Teste","username":"Ana"}));
    assert_eq!(r, json!({"ok":true,"room":"Teste","username":"Ana"}));
    let ev = ana.event();
    assert_eq!(ev["type"], "kicked");
    assert_eq!(ev["username"], "Sistema");
    assert_eq!(ev["message"], "*** REMOVIDO DA SALA ***");
    assert!(ana.closed_within(Duration::from_secs(5)));
    let ev = yan.event();
    assert_eq!(ev["type"], "leave");
    assert_eq!(ev["username"], "Ana");

    // close-room: members get closed, are disconnected, room disappears.
    let r = a.request(json!({"cmd":"close-room","room":"Teste"}));
    assert_eq!(r, json!({"ok":true,"room":"Teste","disconnected":1}));
    let ev = yan.event();
    assert_eq!(ev["type"], "closed");
    assert_eq!(ev["message"], "*** SALA ENCERRADA ***");
    assert!(yan.closed_within(Duration::from_secs(5)));
    assert_eq!(
        a.request(json!({"cmd":"list"})),
        json!({"ok":true,"rooms":[]})
    );
    let mut gone = d.join("Yan", "Teste");
    assert_eq!(gone.event()["message"], "404");
}

#[test]
fn stats_count_what_happened() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut a = d.joined("A", "Teste");
    let mut b = d.joined("B", "Teste");
    a.event();
    a.say("one");
    b.event();
    let r = d.admin().request(json!({"cmd":"stats"}));
    let s = &r["stats"];
    assert_eq!(s["rooms"], 1);
    assert_eq!(s["clients"], 2);
    assert_eq!(s["members"], 2);
    assert_eq!(s["messages_relayed"], 1);
    assert_eq!(s["slow_consumer_drops"], 0);
    let bytes = s["bytes_out"].as_u64().unwrap();
    assert!(bytes > 100);
    // Each of A and B was written to at least once; no write was empty.
    let writes = s["writes"].as_u64().unwrap();
    assert!(
        (2..=bytes).contains(&writes),
        "{writes} writes of {bytes} bytes"
    );
    assert!(s["uptime_secs"].is_u64());
}

#[test]
fn logs_and_follow_stream_new_entries() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut a = d.admin();
    let r = a.request(json!({"cmd":"logs","limit":2}));
    let logs = r["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert!(
        logs[1]["message"]
            .as_str()
            .unwrap()
            .contains("room 'Teste' ready")
    );
    assert_eq!(logs[0]["level"], "info");

    let mut f = d.admin();
    let r = f.request(json!({"cmd":"logs","limit":1,"follow":true}));
    assert_eq!(r["logs"].as_array().unwrap().len(), 1);
    let mut c = d.joined("Yan", "Teste");
    let entry = f.read_json();
    assert!(
        entry["log"]["message"]
            .as_str()
            .unwrap()
            .contains("join: 'Yan'"),
        "{entry}"
    );
    assert!(entry["log"]["ts"].is_string());
    c.say("secret text");
    drop(c);
    let entry = f.read_json();
    assert!(
        entry["log"]["message"]
            .as_str()
            .unwrap()
            .contains("leave: 'Yan'"),
        "{entry}"
    );
    // Message text is not logged without --log-messages.
    let all = a.request(json!({"cmd":"logs","limit":1000}));
    assert!(!all.to_string().contains("secret text"));
}

#[test]
fn log_messages_flag_logs_message_text() {
    let mut d = Daemon::start(&["--room", "Teste:5", "--log-messages"]);
    let mut c = d.joined("Yan", "Teste");
    c.say("visible text");
    d.wait_log("visible text", Duration::from_secs(5));
}

#[test]
fn state_changes_are_logged_with_peer_uid_and_pid() {
    let mut d = Daemon::start(&[]);
    let out = d.ctl(&["room", "create", "Teste", "--limit", "2"]);
    assert!(out.status.success());
    let uid = nix::unistd::getuid().as_raw();
    let line = d.wait_log("control: create-room 'Teste'", Duration::from_secs(5));
    assert!(line.contains(&format!("by uid {uid} pid ")), "{line}");
    assert!(line.ends_with(": ok"), "{line}");
}

#[test]
fn chatctl_commands_human_and_json() {
    let d = Daemon::start(&[]);
    let out = d.ctl(&["room", "create", "Teste", "--limit", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "created room 'Teste' (limit 2)\n");

    let out = d.ctl(&["--json", "room", "create", "Lobby", "--limit", "10"]);
    assert_eq!(
        json_out(&out),
        json!({"ok":true,"room":{"name":"Lobby","limit":10,"members":0}})
    );

    let _m = d.joined("Yan", "Teste");
    for args in [&["list"][..], &["room", "list"]] {
        let out = d.ctl(args);
        assert!(out.status.success());
        assert_eq!(
            stdout(&out),
            "#  ROOM   MEMBERS\n1  Teste  1/2\n2  Lobby  0/10\n"
        );
    }
    let out = d.ctl(&["--json", "list"]);
    assert_eq!(
        json_out(&out)["rooms"][0],
        json!({"name":"Teste","limit":2,"members":1})
    );

    let out = d.ctl(&["participants", "Teste"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("#  USERNAME  ADDRESS"), "{text}");
    assert!(lines[1].starts_with("1  Yan       127.0.0.1:"), "{text}");
    let out = d.ctl(&["--json", "participants", "Teste"]);
    assert_eq!(json_out(&out)["participants"][0]["username"], "Yan");

    let out = d.ctl(&["room", "set-limit", "Lobby", "5"]);
    assert_eq!(stdout(&out), "room 'Lobby' limit is now 5 (0 member(s))\n");
    let out = d.ctl(&["kick", "Teste", "Yan"]);
    assert_eq!(stdout(&out), "removed 'Yan' from room 'Teste'\n");
    let out = d.ctl(&["room", "close", "Lobby"]);
    assert_eq!(
        stdout(&out),
        "closed room 'Lobby'; 0 member(s) disconnected\n"
    );

    let out = d.ctl(&["stats"]);
    assert!(stdout(&out).contains("messages_relayed"));
    let out = d.ctl(&["--json", "stats"]);
    assert!(json_out(&out)["stats"]["uptime_secs"].is_u64());

    let out = d.ctl(&["logs", "-n", "3"]);
    assert_eq!(stdout(&out).lines().count(), 3);
    let out = d.ctl(&["--json", "logs", "-n", "3"]);
    assert_eq!(json_out(&out)["logs"].as_array().unwrap().len(), 3);
}

#[test]
fn chatctl_exit_statuses() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    // 1: the daemon refused; its message on stderr.
    let out = d.ctl(&["room", "create", "Teste", "--limit", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "chatctl: a room named 'Teste' already exists\n"
    );
    let out = d.ctl(&["--json", "participants", "Nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_out(&out)["error"]["code"], "not_found");
    // 2: usage.
    for args in [
        &["room", "create", "X"][..],
        &["bogus"],
        &["room", "set-limit", "X", "many"],
    ] {
        assert_eq!(d.ctl(args).status.code(), Some(2), "{args:?}");
    }
    // 3: unreachable, naming the socket.
    let dir = TempDir::new("nosock");
    let path = dir.path().join("none.sock");
    let out = Command::new(CHATCTL)
        .arg("--socket")
        .arg(&path)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(&path.display().to_string()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn chatctl_finds_the_socket_through_chatd_control() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let out = Command::new(CHATCTL)
        .env("CHATD_CONTROL", &d.control)
        .args(["--json", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["rooms"][0]["name"], "Teste");
}

#[test]
fn chatctl_logs_follow_into_closed_pipe_exits_0() {
    let d = Daemon::start(&[]);
    let mut child = Command::new(CHATCTL)
        .arg("--socket")
        .arg(&d.control)
        .args(["logs", "-n", "1", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < end, "chatctl kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "");
}

#[test]
fn socket_mode_is_0660_and_removed_on_exit() {
    let d = Daemon::start(&[]);
    let meta = std::fs::metadata(&d.control).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let path = d.control.clone();
    assert!(d.stop().success());
    assert!(!path.exists());
}

#[test]
fn second_daemon_on_a_live_control_socket_is_refused() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let out = Command::new(CHATD)
        .args(["--listen", "127.0.0.1:0", "--control"])
        .arg(&d.control)
        .arg("--state-dir")
        .arg(d.dir().join("other-state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("already running") && err.contains(&d.control.display().to_string()),
        "{err}"
    );
    // The first daemon and its socket are untouched.
    let out = d.ctl(&["list"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Teste"));
}

#[test]
fn stale_control_socket_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.path().join("control.sock");
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a dead socket file is left behind");
    let mut d = Daemon::start_in(dir, &[]);
    d.wait_log("replaced a stale socket", Duration::from_secs(2));
    assert!(d.ctl(&["list"]).status.success());
}

#[test]
fn a_regular_file_at_the_socket_path_is_not_touched() {
    let dir = TempDir::new("regular");
    let path = dir.path().join("control.sock");
    std::fs::write(&path, "precious").unwrap();
    let out = Command::new(CHATD)
        .args(["--listen", "127.0.0.1:0", "--control"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a socket"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn many_concurrent_control_clients() {
    let d = Daemon::start(&[]);
    let mut admins: Vec<Admin> = (0..100).map(|_| d.admin()).collect();
    for (i, a) in admins.iter_mut().enumerate() {
        a.send_line(&json!({"cmd":"create-room","name":format!("r{i}"),"limit":1}).to_string());
    }
    for a in &mut admins {
        assert_eq!(a.read_json()["ok"], true);
    }
    let r = d.admin().request(json!({"cmd":"list"}));
    assert_eq!(r["rooms"].as_array().unwrap().len(), 100);
}

#[test]
fn a_follower_that_never_reads_does_not_stall_chatd() {
    let d = Daemon::start(&["--room", "Teste:5", "--log-messages", "--flood-rate", "0"]);
    let mut f = d.admin();
    f.send_line(r#"{"cmd":"logs","limit":1,"follow":true}"#);
    // Generate far more log output than the follower's backlog bound.
    let mut a = d.joined("A", "Teste");
    let mut b = d.joined("B", "Teste");
    a.event();
    let text = "x".repeat(8000);
    for _ in 0..400 {
        a.say(&text);
        assert_eq!(b.event()["message"].as_str().unwrap().len(), 8000);
    }
    let r = d.admin().request(json!({"cmd":"logs","limit":1000}));
    assert!(
        r.to_string().contains("logs --follow reader"),
        "the lagging follower was not dropped"
    );
}
