//! Persistent history (issue #25): what a room keeps survives restarts,
//! and every message chatd delivered to anyone survives kill -9.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use chatd::daemon::history::{HistoryStore, Kind, Stored};

use crate::support::*;

/// In a stopped chatd's history file: the first `first` events of `room`
/// made `by_ms` older (written again through the store); returns how
/// many.
fn age(dir: &TempDir, room: &str, first: usize, by_ms: i64) -> usize {
    let mut store = HistoryStore::open(&dir.path().join("state")).unwrap();
    let mut events = store.room_events(room).unwrap();
    store.purge(room, i64::MAX).unwrap();
    let n = first.min(events.len());
    for e in &mut events[..n] {
        e.at_ms -= by_ms;
    }
    store.append(&events).unwrap();
    n
}

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
    let mut from_journal = 0;
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
        d.wait_log("accounts: ", Duration::from_secs(5));
        if d.log_lines()
            .iter()
            .any(|l| l.contains("taken from history.journal"))
        {
            from_journal += 1;
        }
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
    // Killed within a commit's wait, what was delivered came back from
    // the journal (the database had not taken it yet), at least once.
    assert!(from_journal > 0, "no round needed the journal");
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
    let aged = age(&dir, "Teste", 3, 3 * 86_400_000);
    assert_eq!(aged, 3);
    let mut d = Daemon::start_in(dir, &["--history-age", "2d"]);
    d.wait_log(
        "3 event(s) older than their room's age limit",
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
    let reference = batch_reference(&open);
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

/// The IRC door's address, from the log of a chatd started with
/// `--irc-listen 127.0.0.1:0`.
fn irc_door(d: &mut Daemon) -> std::net::SocketAddr {
    let line = d.wait_log("listening for IRC on ", Duration::from_secs(5));
    line.rsplit("listening for IRC on ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// An IRC client with history's capabilities, logged in to `login`
/// (name, password) with SASL PLAIN when given.
fn irc_with_history(
    addr: std::net::SocketAddr,
    nick: &str,
    login: Option<(&str, &str)>,
) -> crate::irc::Irc {
    use base64::Engine;
    let mut c = crate::irc::Irc::connect(addr);
    c.send("CAP LS 302");
    let mut caps = "batch server-time message-tags draft/chathistory".to_string();
    if login.is_some() {
        caps.push_str(" sasl");
    }
    c.send(&format!("CAP REQ :{caps}"));
    c.expect("ACK", |l| l.contains(" ACK "));
    if let Some((name, password)) = login {
        c.send("AUTHENTICATE PLAIN");
        c.expect("the go-ahead", |l| l == "AUTHENTICATE +");
        let plain = format!("\0{name}\0{password}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        c.send(&format!("AUTHENTICATE {b64}"));
        c.expect("903", |l| l.contains(" 903 "));
    }
    c.send(&format!("NICK {nick}"));
    c.send(&format!("USER {nick} 0 * :{nick}"));
    c.send("CAP END");
    c.expect("the end of the MOTD", |l| l.contains(" 376 "));
    c
}

/// A line's tags, `@a=b;c=d ...`.
fn tags(line: &str) -> std::collections::HashMap<String, String> {
    let Some(rest) = line.strip_prefix('@') else {
        return Default::default();
    };
    let raw = rest.split(' ').next().unwrap();
    raw.split(';')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

/// What identifies a message in history: (time, msgid, its text).
fn key(line: &str) -> (String, String, String) {
    let t = tags(line);
    // Past the tags and the source: the command's last parameter.
    let rest = line.split_once(" :").map_or(line, |(_, r)| r);
    let text = match rest.split_once(" :") {
        Some((_, trailing)) => trailing,
        None => rest.rsplit(' ').next().unwrap(),
    };
    (t["time"].clone(), t["msgid"].clone(), text.to_string())
}

/// The reference a `BATCH +ref type ...` line opens.
fn batch_reference(open: &str) -> String {
    let after = open.split(" BATCH +").nth(1).expect("a BATCH + line");
    after.split(' ').next().unwrap().to_string()
}

/// A CHATHISTORY answer: the batch's PRIVMSG and NOTICE lines, as keys
/// (the batch opened for `target`, and closed).
fn history_batch(c: &mut crate::irc::Irc, target: &str) -> Vec<(String, String, String)> {
    let open = c.expect("the batch", |l| l.contains(" BATCH +"));
    assert!(open.ends_with(&format!(" chathistory {target}")), "{open}");
    let reference = batch_reference(&open);
    let mut got = Vec::new();
    loop {
        let l = c.expect("the batch's lines", |_| true);
        if l.contains(&format!("BATCH -{reference}")) {
            return got;
        }
        assert!(l.starts_with(&format!("@batch={reference};")), "{l}");
        if l.contains(" PRIVMSG ") || l.contains(" NOTICE ") {
            got.push(key(&l));
        }
    }
}

#[test]
fn chathistory_gives_back_each_message_with_its_live_msgid_and_time_after_a_restart() {
    let mut d = Daemon::start(&["--irc-listen", "127.0.0.1:0", "--flood-rate", "0"]);
    let addr = irc_door(&mut d);
    create_teste(&d, 100);
    let mut yan = irc_with_history(addr, "yan", None);
    yan.send("JOIN #Teste");
    yan.expect("NAMES", |l| l.contains(" 366 "));
    // Five messages from the chat port, as yan saw them live.
    let mut ana = d.joined("Ana", "Teste");
    let mut live = Vec::new();
    for i in 0..5 {
        ana.say(&format!("mensagem {i}"));
        let l = yan.expect("the live message", |l| l.contains(" PRIVMSG #Teste "));
        live.push(key(&l));
        std::thread::sleep(Duration::from_millis(5));
    }
    let times: HashSet<&String> = live.iter().map(|k| &k.0).collect();
    assert_eq!(times.len(), 5, "server-time has milliseconds: {live:?}");
    yan.send("CHATHISTORY LATEST #Teste * 10");
    assert_eq!(history_batch(&mut yan, "#Teste"), live, "joins left out");
    yan.send(&format!("CHATHISTORY BEFORE #Teste msgid={} 2", live[3].1));
    assert_eq!(history_batch(&mut yan, "#Teste"), live[1..3]);
    // Someone outside the room is refused, in words.
    let mut outsider = irc_with_history(addr, "fora", None);
    outsider.send("CHATHISTORY LATEST #Teste * 10");
    let fail = outsider.expect("FAIL", |l| l.contains("FAIL"));
    assert!(
        fail.contains("FAIL CHATHISTORY INVALID_TARGET LATEST #Teste :"),
        "{fail}"
    );
    outsider.send("CHATHISTORY SIDEWAYS #Teste * 10");
    outsider.expect("UNKNOWN_COMMAND", |l| {
        l.contains("FAIL CHATHISTORY UNKNOWN_COMMAND")
    });
    drop((yan, ana, outsider));
    // After a restart: the same ids and times, on JOIN and on request.
    d.signal("TERM");
    let dir = d.into_dir();
    let mut d = Daemon::start_in(dir, &["--irc-listen", "127.0.0.1:0"]);
    let addr = irc_door(&mut d);
    let mut bia = irc_with_history(addr, "bia", None);
    bia.send("JOIN #Teste");
    bia.expect("NAMES", |l| l.contains(" 366 "));
    assert_eq!(history_batch(&mut bia, "#Teste"), live, "JOIN playback");
    bia.send(&format!(
        "CHATHISTORY AFTER #Teste timestamp={} 2",
        live[0].0
    ));
    assert_eq!(history_batch(&mut bia, "#Teste"), live[1..3]);
    bia.send(&format!(
        "CHATHISTORY BETWEEN #Teste msgid={} msgid={} 10",
        live[4].1, live[0].1
    ));
    assert_eq!(history_batch(&mut bia, "#Teste"), live[1..4]);
    bia.send(&format!("CHATHISTORY AROUND #Teste msgid={} 3", live[2].1));
    assert_eq!(history_batch(&mut bia, "#Teste"), live[1..4]);
}

#[test]
fn direct_messages_are_kept_for_each_logged_in_side_and_shown_to_it_only() {
    let flags = ["--irc-listen", "127.0.0.1:0", "--direct-history", "10"];
    let mut d = Daemon::start(&flags);
    let addr = irc_door(&mut d);
    for name in ["ana", "bia"] {
        let out = d.ctl_with_stdin(&["user", "add", name], &format!("senha da {name}\n"));
        assert!(out.status.success(), "{out:?}");
    }
    let mut ana = irc_with_history(addr, "ana", Some(("ana", "senha da ana")));
    let mut bia = irc_with_history(addr, "bia", Some(("bia", "senha da bia")));
    let mut caio = irc_with_history(addr, "caio", None);
    ana.send("PRIVMSG bia :oi bia");
    let first = key(&bia.expect("ana's", |l| l.contains("PRIVMSG bia :oi bia")));
    bia.send("PRIVMSG ana :oi ana");
    let second = key(&ana.expect("bia's", |l| l.contains("PRIVMSG ana :oi ana")));
    caio.send("PRIVMSG ana :sou o caio");
    let third = key(&ana.expect("caio's", |l| l.contains("sou o caio")));
    drop((ana, bia, caio));
    d.signal("TERM");
    let dir = d.into_dir();
    let mut d = Daemon::start_in(dir, &flags);
    let addr = irc_door(&mut d);
    let mut ana = irc_with_history(addr, "ana", Some(("ana", "senha da ana")));
    ana.send("CHATHISTORY LATEST bia * 10");
    assert_eq!(
        history_batch(&mut ana, "bia"),
        [first.clone(), second.clone()]
    );
    ana.send("CHATHISTORY LATEST CAIO * 10");
    assert_eq!(
        history_batch(&mut ana, "CAIO"),
        std::slice::from_ref(&third)
    );
    ana.send(
        "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00Z timestamp=2100-01-01T00:00:00Z 10",
    );
    ana.expect("the targets' batch", |l| {
        l.contains("draft/chathistory-targets")
    });
    let bia_line = ana.expect("bia", |l| l.contains("CHATHISTORY TARGETS"));
    assert!(
        bia_line.ends_with(&format!("TARGETS bia {}", second.0)),
        "{bia_line}"
    );
    let caio_line = ana.expect("caio", |l| l.contains("CHATHISTORY TARGETS"));
    assert!(
        caio_line.ends_with(&format!("TARGETS caio {}", third.0)),
        "{caio_line}"
    );
    // Bia sees her side only; caio, not logged in, kept nothing.
    let mut bia = irc_with_history(addr, "bia", Some(("bia", "senha da bia")));
    bia.send("CHATHISTORY LATEST ana * 10");
    assert_eq!(history_batch(&mut bia, "ana"), [first, second]);
    bia.send("CHATHISTORY LATEST caio * 10");
    assert!(history_batch(&mut bia, "caio").is_empty());
    let mut caio = irc_with_history(addr, "caio", None);
    caio.send("CHATHISTORY LATEST ana * 10");
    assert!(history_batch(&mut caio, "ana").is_empty());
}

#[test]
fn each_room_keeps_its_own_age_and_the_server_default_length() {
    let flags = [
        "--irc-listen",
        "127.0.0.1:0",
        "--room-creation",
        "anyone",
        "--history",
        "20",
    ];
    let mut d = Daemon::start(&flags);
    let addr = irc_door(&mut d);
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let made = ok(d.ctl(&[
        "room",
        "create",
        "Curta",
        "--limit",
        "5",
        "--history",
        "10",
        "--history-age",
        "1d",
    ]));
    assert!(made.contains("Curta"), "{made}");
    ok(d.ctl(&["room", "create", "Longa", "--limit", "5"]));
    let rooms: Value = serde_json::from_str(&ok(d.ctl(&["--json", "list"]))).unwrap();
    let by_name = |n: &str| {
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("Curta")["history"], 10);
    assert_eq!(by_name("Curta")["history_age"], 86400);
    assert_eq!(by_name("Longa")["history"], 20, "the server's --history");
    // A room made by joining it keeps the server's length too.
    let mut yan = irc_with_history(addr, "yan", None);
    yan.send("JOIN #Nova");
    yan.expect("NAMES", |l| l.contains(" 366 "));
    yan.send("PRIVMSG #Nova :primeira");
    yan.send("CHATHISTORY LATEST #Nova * 10");
    let got = history_batch(&mut yan, "#Nova");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, "primeira");
    drop(yan);
    for room in ["Curta", "Longa"] {
        let mut c = d.joined("Ana", room);
        c.say(&format!("em {room}"));
        drop(c);
        d.wait_log(&format!("'Ana' left room '{room}'"), Duration::from_secs(5));
    }
    d.signal("TERM");
    let dir = d.into_dir();
    // Everything two days old: Curta (1d) forgets it, Longa (no age) not.
    for room in ["Curta", "Longa"] {
        age(&dir, room, usize::MAX, 2 * 86_400_000);
    }
    let mut d = Daemon::start_in(dir, &flags);
    d.wait_log(
        "older than their room's age limit forgotten",
        Duration::from_secs(5),
    );
    let history = |room: &str| ok(d.ctl(&["room", "history", room]));
    assert!(
        !history("Curta").contains("em Curta"),
        "{}",
        history("Curta")
    );
    assert!(
        history("Longa").contains("em Longa"),
        "{}",
        history("Longa")
    );
    // Closing a room forgets its conversation.
    let closed = ok(d.ctl(&["room", "close", "Longa"]));
    assert!(closed.contains("Longa"), "{closed}");
    d.wait_log(
        "room 'Longa' closed; 0 member(s) disconnected; its 3 kept event(s) forgotten",
        Duration::from_secs(5),
    );
}

#[test]
fn the_history_file_is_held_to_its_size_limit_oldest_first() {
    let d = Daemon::start(&[]);
    create_teste(&d, 1000);
    d.signal("TERM");
    let dir = d.into_dir();
    // 3,000 events of 1 KB in the file (about 3 MiB), in 30 passes' worth
    // of chunks: over a 1 MiB limit.
    let mut store = HistoryStore::open(&dir.path().join("state")).unwrap();
    let body = "x".repeat(1000);
    for pass in 0..30 {
        let batch: Vec<Stored> = (pass * 100..pass * 100 + 100)
            .map(|i| Stored {
                seq: 0,
                room: "Teste".into(),
                msgid: format!("big-{i}"),
                kind: Kind::Message,
                name: "Ana".into(),
                body: body.clone(),
                at_ms: 1_796_000_000_000 + i,
                target: String::new(),
            })
            .collect();
        store.append(&batch).unwrap();
    }
    drop(store);
    let mut d = Daemon::start_in(dir, &["--history-size", "1"]);
    let line = d.wait_log("reached --history-size (1 MiB)", Duration::from_secs(5));
    assert!(line.contains("oldest event(s) were forgotten"), "{line}");
    let out = d.ctl(&["room", "history", "Teste", "-n", "5000", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let left = v["history"].as_array().unwrap();
    assert!(left.len() < 1000, "{} left", left.len());
    assert_eq!(left.last().unwrap()["msgid"], "big-2999", "the newest stay");
    let size = std::fs::metadata(d.dir().join("state").join("history.sqlite3"))
        .unwrap()
        .len();
    assert!(size > 0);
}
