//! Persistent history (issue #25): what a room keeps survives restarts,
//! and every message chatd delivered to anyone survives kill -9.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Room Teste (limit 5) keeping its last `history` events.
fn create_teste(d: &Daemon, history: usize) {
    let n = history.to_string();
    let out = d.ctl(&["room", "create", "Teste", "--limit", "5", "--history", &n]);
    assert!(out.status.success(), "{out:?}");
}

/// The room's replay, as a joiner asking for history gets it.
fn replay(d: &Daemon, who: &str) -> Vec<Value> {
    let mut c = Client::connect(d.addr);
    let hs = serde_json::json!({"username": who, "room": "Teste", "features": ["history"]});
    c.send_frame(hs.to_string().as_bytes());
    let mut got = Vec::new();
    loop {
        let ev = c.event();
        if ev["history"] != true {
            assert_eq!(ev["type"], "join", "{ev}");
            return got;
        }
        got.push(ev);
    }
}

#[test]
fn every_delivered_message_survives_kill_9_in_a_loop() {
    let flags = ["--flood-rate", "0"];
    let mut d = Daemon::start(&flags);
    create_teste(&d, 1000);
    let mut seen_by_anyone: Vec<String> = Vec::new();
    for round in 0..5 {
        let mut reader = d.joined(&format!("leitora{round}"), "Teste");
        let mut sender = d.joined(&format!("fala{round}"), "Teste");
        reader.event(); // the sender's join
        // The sender sends 150 as fast as it can; the reader reads some;
        // chatd is killed mid-stream. (Five rounds stay within the room's
        // 1000 kept events.)
        for i in 0..150 {
            sender.say(&format!("r{round} m{i}"));
        }
        let wanted = 50 + round * 20;
        let mut seen = 0;
        while seen < wanted {
            let ev = reader.event();
            if ev["type"] == "message" {
                seen_by_anyone.push(ev["message"].as_str().unwrap().to_string());
                seen += 1;
            }
        }
        d.child.kill().unwrap();
        // Whatever else the reader had been sent before the kill counts too.
        while let Some(ev) = reader.event_within(Duration::from_millis(200)) {
            if ev["type"] == "message" {
                seen_by_anyone.push(ev["message"].as_str().unwrap().to_string());
            }
        }
        let dir = d.into_dir();
        d = Daemon::start_in(dir, &flags);
        let kept: HashSet<String> = replay(&d, &format!("olhe{round}"))
            .iter()
            .filter(|e| e["type"] == "message")
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect();
        let lost: Vec<&String> = seen_by_anyone
            .iter()
            .filter(|m| !kept.contains(*m))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: delivered, then lost: {lost:?}"
        );
    }
}

#[test]
fn the_replay_keeps_joins_and_leaves_in_order_and_marks_everything_as_history() {
    let d = Daemon::start(&[]);
    create_teste(&d, 10);
    let mut ana = d.joined("Ana", "Teste");
    let mut bia = d.joined("Bia", "Teste");
    ana.event();
    ana.say("oi Bia");
    bia.event();
    drop(bia);
    ana.event(); // Bia's leave
    drop(ana);
    let mut d = d;
    d.wait_log("'Ana' left room 'Teste'", Duration::from_secs(5));
    d.signal("TERM");
    let dir = d.into_dir();
    let d = Daemon::start_in(dir, &[]);
    let got: Vec<(String, String)> = replay(&d, "Caio")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["username"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("join", "Ana"),
        ("join", "Bia"),
        ("message", "Ana"),
        ("leave", "Bia"),
        ("leave", "Ana"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
    // The file is private, like the state file.
    let meta = std::fs::metadata(d.dir().join("state").join("history.sqlite3")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{meta:?}");
}

#[test]
fn chatctl_shows_and_purges_a_rooms_history() {
    let d = Daemon::start(&[]);
    create_teste(&d, 100);
    let mut ana = d.joined("Ana", "Teste");
    for i in 0..3 {
        ana.say(&format!("fala {i}"));
    }
    let out = d.ctl(&["room", "history", "Teste", "-n", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with("Ana > fala 1") && lines[1].ends_with("Ana > fala 2"),
        "{text}"
    );
    let out = d.ctl(&["--json", "room", "history", "Teste", "--since", "1h"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join", "message", "message", "message"]);
    assert!(v["history"][1]["msgid"].is_string());
    // A time in the future keeps everything; no time purges it all, from
    // the file and from memory.
    let out = d.ctl(&["room", "purge", "Teste", "--before", "2000-01-01T00:00:00Z"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 0 event(s)"));
    let out = d.ctl(&["room", "purge", "Teste"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed 4 event(s)"),
        "{out:?}"
    );
    assert!(replay(&d, "Bia").is_empty());
    let out = d.ctl(&["room", "history", "Nada"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no room named 'Nada'"));
}

#[test]
fn history_age_forgets_what_is_older_at_start_and_keeps_the_rest() {
    let d = Daemon::start(&[]);
    create_teste(&d, 100);
    let mut ana = d.joined("Ana", "Teste");
    for i in 0..4 {
        ana.say(&format!("fala {i}"));
    }
    drop(ana);
    let mut d = d;
    d.wait_log("'Ana' left room 'Teste'", Duration::from_secs(5));
    d.signal("TERM");
    let dir = d.into_dir();
    // Make Ana's join and first two messages three days old.
    let db = rusqlite::Connection::open(dir.path().join("state").join("history.sqlite3")).unwrap();
    let aged = db
        .execute(
            "UPDATE events SET at_ms = at_ms - 3 * 86400000 WHERE seq IN \
             (SELECT seq FROM events ORDER BY seq LIMIT 3)",
            [],
        )
        .unwrap();
    assert_eq!(aged, 3);
    drop(db);
    let mut d = Daemon::start_in(dir, &["--history-age", "2d"]);
    d.wait_log(
        "3 event(s) older than --history-age",
        Duration::from_secs(5),
    );
    let left: Vec<String> = replay(&d, "Bia")
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["fala 2", "fala 3", "*** SAIU DA SALA ***"]);
    // The file agrees (Bia's own join and leave came since).
    let out = d.ctl(&["room", "history", "Teste"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("fala 1") && text.contains("fala 2"),
        "{text}"
    );
}

#[test]
fn an_irc_joiner_gets_the_kept_messages_played_back_in_a_batch() {
    use crate::irc::{Irc, irc_daemon};
    let (d, irc_addr) = irc_daemon(&[]);
    create_teste(&d, 10);
    let mut ana = d.joined("Ana", "Teste");
    ana.say("antes de todos");
    ana.say("/me acena");
    // With batch and server-time: a chathistory batch of the messages
    // (no joins), each with its own time.
    let mut yan = Irc::connect(irc_addr);
    yan.send("CAP LS 302");
    yan.send("NICK yan");
    yan.send("USER yan 0 * :yan");
    yan.send("CAP REQ :batch server-time");
    yan.expect("ACK", |l| l.contains("ACK"));
    yan.send("CAP END");
    yan.expect("registered", |l| l.contains(" 376 "));
    yan.send("JOIN #Teste");
    yan.expect("NAMES", |l| l.contains(" 366 "));
    let open = yan.expect("the batch", |l| l.contains("BATCH +"));
    assert!(open.ends_with("chathistory #Teste"), "{open}");
    let reference = open
        .split('+')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let first = yan.expect("the first message", |l| l.contains("PRIVMSG #Teste"));
    assert!(
        first.starts_with(&format!("@batch={reference};time=")),
        "{first}"
    );
    assert!(first.ends_with(":antes de todos"), "{first}");
    let second = yan.expect("the ACTION", |l| l.contains("PRIVMSG #Teste"));
    assert!(second.contains("\u{1}ACTION acena\u{1}"), "{second}");
    yan.expect("the batch's end", |l| {
        l.contains(&format!("BATCH -{reference}"))
    });
    // Without capabilities: the same messages, plain, after the names.
    let mut plain = Irc::register(irc_addr, "simples");
    plain.send("JOIN #Teste");
    plain.expect("NAMES", |l| l.contains(" 366 "));
    let l = plain.expect("the message", |l| l.contains("PRIVMSG #Teste"));
    assert!(
        l.starts_with(":Ana!") && l.ends_with(":antes de todos"),
        "{l}"
    );
}
