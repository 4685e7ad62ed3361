//! Hardening, round 3: what one address may take (connections, unfinished
//! handshakes, joins, password checks), what a login refusal reveals,
//! liveness (ghosts), bounded file reads on SIGHUP, history memory, the
//! log ring under connection noise, and text that piles up marks.
//! Also run against `--poller epoll` (scripts/test).

use std::time::Duration;

use crate::support::*;

#[test]
fn a_message_that_piles_up_combining_marks_is_refused() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut a = d.joined("Ana", "Teste");
    let mut b = d.joined("Bia", "Teste");
    a.event(); // Bia's join
    b.say(&format!("a{}", "\u{301}".repeat(8000)));
    let ev = b.event();
    assert_eq!(ev["type"], "error", "{ev}");
    assert_eq!(ev["message"], "400", "{ev}");
    assert!(
        ev["reason"].as_str().unwrap().contains("combining marks"),
        "{ev}"
    );
    // The stream stays in sync, and the room never saw it.
    b.say("Tiếng Việt");
    let ev = a.event();
    assert_eq!(ev["message"], "Tiếng Việt", "{ev}");
}

#[test]
fn a_handshake_with_the_largest_token_is_not_413() {
    // PROTOCOL.md allows a 16 KiB token: the handshake around it is larger
    // than --max-frame's default, and must still be read (the token is
    // refused for what it is: this chatd accepts none).
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut c = Client::connect(d.addr);
    let hs = serde_json::json!({ "room": "Teste", "token": "e".repeat(16 * 1024) }).to_string();
    assert!(hs.len() > 16384);
    c.send_frame(hs.as_bytes());
    let ev = c.event();
    assert_eq!(ev["message"], "401", "{ev}");
    // After the join, --max-frame is the bound again.
    let mut m = d.joined("Yan", "Teste");
    m.send_frame(&vec![b'y'; 16385]);
    let ev = m.event();
    assert_eq!(ev["message"], "413", "{ev}");
}

#[test]
fn sighup_refuses_a_fifo_at_the_key_path_and_a_huge_config_without_stalling() {
    use crate::tls::{Pki, tls_daemon};
    let pki = Pki::new();
    let (cert, key) = pki.server("srv");
    let live_key = pki.dir.path().join("live.key");
    std::fs::copy(&key, &live_key).unwrap();
    let config = pki.dir.path().join("chatd.toml");
    std::fs::write(&config, "room = [\"Teste:5\"]\n").unwrap();
    let (mut d, _) = tls_daemon(&cert, &live_key, &["--config", config.to_str().unwrap()]);
    let mut a = d.joined("Ana", "Teste");

    // A FIFO with no writer where the key was: a blocking read would
    // freeze chatd until someone wrote to it.
    std::fs::remove_file(&live_key).unwrap();
    nix::unistd::mkfifo(&live_key, nix::sys::stat::Mode::S_IRWXU).unwrap();
    d.signal("HUP");
    let line = d.wait_log("not a regular file", Duration::from_secs(5));
    assert!(line.contains("reload failed"), "{line}");
    let mut b = d.joined("Bia", "Teste");
    assert_eq!(a.event()["username"], "Bia");
    b.say("ainda aqui");
    assert_eq!(a.event()["message"], "ainda aqui");

    // A 50 MB configuration file is refused by its size, not read.
    let mut huge = String::from("room = [\"Teste:5\"]\n");
    huge.push_str(&"#".repeat(50 * 1024 * 1024));
    std::fs::write(&config, huge).unwrap();
    d.signal("HUP");
    let line = d.wait_log("KiB such a file may have", Duration::from_secs(5));
    assert!(line.contains("running configuration stays"), "{line}");
    b.say("e agora");
    assert_eq!(a.event()["message"], "e agora");
}

/// A join from the loopback address `from`, with a password; the first
/// event back.
fn login_from(d: &Daemon, from: &str, user: &str, password: &str) -> (Client, serde_json::Value) {
    let mut c = Client::from_stream(connect_from(from, d.addr));
    let hs = serde_json::json!({"username": user, "room": "Teste", "password": password});
    c.send_frame(hs.to_string().as_bytes());
    let ev = c.event_within(Duration::from_secs(10)).unwrap_or_default();
    (c, ev)
}

const PASSWORD: &str = "correct horse battery";

fn with_accounts(names: &[&str]) -> Daemon {
    let d = Daemon::start(&["--room", "Teste:100"]);
    for n in names {
        let out = d.ctl_with_stdin(&["user", "add", n], &format!("{PASSWORD}\n"));
        assert!(out.status.success(), "{out:?}");
    }
    d
}

#[test]
fn a_success_for_another_account_does_not_wipe_an_address_s_failures() {
    let d = with_accounts(&["Yan", "Mia"]);
    let mut refused = None;
    'rounds: for round in 0..4 {
        for _ in 0..4 {
            let (_c, ev) = login_from(&d, "127.0.0.3", "Yan", "a guess");
            let why = ev["reason"].as_str().unwrap_or("").to_string();
            if why.contains("too many failed logins") {
                refused = Some(round);
                break 'rounds;
            }
            assert_eq!(why, "wrong name or password", "{ev}");
        }
        let (_c, ev) = login_from(&d, "127.0.0.3", "Mia", PASSWORD);
        assert_eq!(ev["type"], "join", "{ev}");
        std::thread::sleep(Duration::from_millis(2100)); // the address's share
    }
    assert_eq!(refused, Some(1), "the 6th guess is refused unchecked");
}

#[test]
fn wrong_logins_from_many_addresses_leave_the_right_user_a_way_in() {
    let d = with_accounts(&["Yan"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for i in 0..40 {
        let (addr, stop) = (d.addr, std::sync::Arc::clone(&stop));
        attackers.push(std::thread::spawn(move || {
            let from = format!("127.0.1.{}", i + 1);
            let mut tries = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && tries < 200 {
                tries += 1;
                let mut c = Client::from_stream(connect_from(&from, addr));
                let hs =
                    serde_json::json!({"username": "Yan", "room": "Teste", "password": "guess"});
                c.send_frame(hs.to_string().as_bytes());
                let _ = c.event_within(Duration::from_secs(5));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    // The right user logs in 4 times, retrying a 503 with backoff as chat does.
    let mut ok = 0;
    for _ in 0..4 {
        let mut wait = Duration::from_millis(100);
        for _ in 0..6 {
            let (_c, ev) = login_from(&d, "127.0.0.2", "Yan", PASSWORD);
            if ev["type"] == "join" {
                ok += 1;
                break;
            }
            assert_eq!(ev["message"], "503", "only busy, never refused: {ev}");
            std::thread::sleep(wait);
            wait *= 2;
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    assert_eq!(ok, 4, "the right user got in every time");
}

/// chatd whose per-address limits apply to the loopback too (the test's
/// "addresses" are 127.0.0.x), with `extra` flags.
fn limited(extra: &[&str]) -> Daemon {
    let mut args = vec!["--room", "Teste:200", "--address-limit-exempt", "none"];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn join_as_from(d: &Daemon, from: &str, user: &str) -> (Client, serde_json::Value) {
    let mut c = Client::from_stream(connect_from(from, d.addr));
    c.handshake(user, "Teste");
    let ev = c.event_within(Duration::from_secs(10)).unwrap_or_default();
    (c, ev)
}

#[test]
fn a_thousand_connections_from_one_address_leave_the_others_their_seats() {
    allow_many_descriptors();
    let mut d = limited(&[]);
    // One address opens 1000 connections and never sends a handshake.
    let mut hog = Vec::new();
    let mut refused = 0;
    for _ in 0..1000 {
        let mut c = Client::from_stream(connect_from("127.0.0.9", d.addr));
        if let Some(ev) = c.event_within(Duration::from_millis(if hog.len() < 4 { 1 } else { 200 }))
        {
            assert_eq!(ev["message"], "503", "{ev}");
            refused += 1;
        }
        hog.push(c);
    }
    assert_eq!(refused, 1000 - 4, "4 unfinished handshakes per address");
    // Everyone else joins: 42 people from 42 addresses.
    let mut joined = Vec::new();
    for i in 0..42 {
        let (c, ev) = join_as_from(&d, &format!("127.0.2.{}", i + 1), &format!("p{i}"));
        assert_eq!(ev["type"], "join", "{ev}");
        joined.push(c);
    }
    d.wait_log(
        "127.0.0.9 has 4 unfinished handshakes, the most one address may have",
        Duration::from_secs(2),
    );
    // Members count too: connections per address, however idle.
    drop(hog);
    let d = limited(&["--max-clients-per-address", "5"]);
    let mut idle = Vec::new();
    for i in 0..5 {
        let (c, ev) = join_as_from(&d, "127.0.0.10", &format!("idle{i}"));
        assert_eq!(ev["type"], "join", "{ev}");
        idle.push(c);
    }
    let (_c, ev) = join_as_from(&d, "127.0.0.10", "one-too-many");
    assert_eq!(ev["message"], "503", "{ev}");
    assert!(
        ev["reason"].as_str().unwrap().contains("5 connections"),
        "{ev}"
    );
    drop(joined);
}

#[test]
fn the_loopback_is_exempt_by_default_and_ranges_can_be_exempted() {
    let d = Daemon::start(&["--room", "Teste:100", "--max-handshakes-per-address", "1"]);
    let mut stalled = Vec::new();
    for _ in 0..5 {
        stalled.push(Client::connect(d.addr));
    }
    let (_c, ev) = join_as_from(&d, "127.0.0.1", "Ana");
    assert_eq!(ev["type"], "join", "{ev}");
    let d = limited(&[
        "--max-handshakes-per-address",
        "1",
        "--address-limit-exempt",
        "127.0.3.0/24",
    ]);
    let mut stalled = Vec::new();
    for _ in 0..5 {
        stalled.push(Client::from_stream(connect_from("127.0.3.7", d.addr)));
    }
    let (_c, ev) = join_as_from(&d, "127.0.3.7", "Ana");
    assert_eq!(ev["type"], "join", "{ev}");
    let _a = Client::from_stream(connect_from("127.0.4.7", d.addr));
    std::thread::sleep(Duration::from_millis(100));
    let (_c, ev) = join_as_from(&d, "127.0.4.7", "Bia");
    assert_eq!(ev["message"], "503", "{ev}");
}

#[test]
fn joins_from_one_address_are_rate_limited_so_history_cannot_be_pumped() {
    let d = limited(&[]);
    let mut refused = 0;
    for i in 0..14 {
        let (_c, ev) = join_as_from(&d, "127.0.0.11", &format!("j{i}"));
        if ev["message"] == "503" {
            assert!(
                ev["reason"]
                    .as_str()
                    .unwrap()
                    .contains("too many joins from 127.0.0.11"),
                "{ev}"
            );
            refused += 1;
        } else {
            assert_eq!(ev["type"], "join", "{ev}");
        }
    }
    assert_eq!(refused, 4, "10 joins at once, then one every 2 s");
    let (_c, ev) = join_as_from(&d, "127.0.0.12", "other");
    assert_eq!(ev["type"], "join", "another address is not affected: {ev}");
}

/// Runs `f` on a thread of its own inside a fresh network namespace
/// (its own loopback, brought up), so the test can take the loopback down
/// under chatd's feet. None where namespaces cannot be made (not root).
fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            return None;
        }
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .ok()?;
        up.success().then(f)
    })
    .join()
    .unwrap()
}

#[test]
fn a_member_that_vanishes_without_a_fin_is_dropped_by_keepalive() {
    let ran = in_private_netns(|| {
        let mut d = Daemon::start(&["--room", "Teste:5", "--tcp-keepalive", "1"]);
        let _ghost = d.joined("Yan", "Teste");
        let started = std::time::Instant::now();
        // The network goes away: no FIN, no RST, nothing more arrives.
        let down = std::process::Command::new("ip")
            .args(["link", "set", "lo", "down"])
            .status()
            .unwrap();
        assert!(down.success());
        let line = d.wait_log("leave: 'Yan' left room 'Teste'", Duration::from_secs(10));
        let gone_after = started.elapsed();
        assert!(gone_after < Duration::from_secs(5), "{gone_after:?} {line}");
        // The name is free again.
        std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        let _back = d.joined("Yan", "Teste");
    });
    if ran.is_none() {
        eprintln!("skipped: no private network namespace here (needs root and iproute2)");
    }
}

#[test]
fn unfinished_handshakes_from_many_addresses_cannot_shut_the_door() {
    allow_many_descriptors();
    let mut d = limited(&["--max-clients", "40"]);
    let mut a = d.joined("Ana", "Teste");
    // 60 addresses, one stalled handshake each: at most 30 (three quarters
    // of 40) are kept, the oldest closed to make room for the next...
    let mut stalled = Vec::new();
    for i in 0..60 {
        stalled.push(Client::from_stream(connect_from(
            &format!("127.0.5.{}", i + 1),
            d.addr,
        )));
    }
    d.wait_log("closed to make room", Duration::from_secs(5));
    let line = d.wait_log("--max-handshakes 30 reached", Duration::from_secs(5));
    assert!(line.contains("oldest first"), "{line}");
    assert!(stalled[0].closed_within(Duration::from_secs(2)));
    // ...so whoever finishes a handshake gets in at once.
    let mut kept = Vec::new();
    for (i, name) in ["Bia", "Caio", "Duda"].iter().enumerate() {
        let (c, ev) = join_as_from(&d, &format!("127.0.6.{}", i + 1), name);
        assert_eq!(ev["type"], "join", "{ev}");
        assert_eq!(a.event()["username"], *name);
        kept.push(c);
    }
    assert!(
        !d.log_lines()
            .iter()
            .any(|l| l.contains("--max-clients 40 reached"))
    );
}

#[test]
fn one_address_s_connection_noise_cannot_push_admin_entries_out_of_the_log() {
    let mut d = limited(&["--log-capacity", "50"]);
    let out = d.ctl(&["room", "create", "Auditada", "--limit", "3"]);
    assert!(out.status.success(), "{out:?}");
    // 300 refused joins from one address: each one a per-client line.
    for i in 0..300 {
        let mut c = Client::from_stream(connect_from("127.0.0.9", d.addr));
        c.handshake(&format!("u{i}"), "Nenhuma");
        let _ = c.event_within(Duration::from_secs(5));
    }
    d.wait_log("127.0.0.9", Duration::from_secs(5));
    let out = d.ctl(&["logs", "--lines", "1000"]);
    let logs = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        logs.contains("room 'Auditada' created with limit 3"),
        "the admin entry was evicted:\n{logs}"
    );
    let noise = logs.lines().filter(|l| l.contains("127.0.0.9")).count();
    assert!(
        (20..=30).contains(&noise),
        "{noise} lines from the address:\n{logs}"
    );
    let stats = d.admin().request(serde_json::json!({"cmd": "stats"}));
    let suppressed = stats["stats"]["log_lines_suppressed"].as_u64().unwrap();
    assert!(suppressed >= 250, "{stats}");
}

fn history_replayed(d: &Daemon, user: &str, room: &str) -> usize {
    let mut c = Client::connect(d.addr);
    let hs = serde_json::json!({ "username": user, "room": room, "features": ["history"] });
    c.send_frame(hs.to_string().as_bytes());
    let mut n = 0;
    loop {
        let ev = c.event();
        match ev["type"].as_str() {
            Some("message") if ev["history"] == true => n += 1,
            Some("join" | "leave") if ev["history"] == true => {}
            Some("join") => return n,
            _ => panic!("{ev}"),
        }
    }
}

#[test]
fn all_histories_together_stay_within_history_memory() {
    // A sendq big enough that the replay (at most half of it) shows it all.
    let d = Daemon::start(&[
        "--history-memory",
        "1",
        "--sendq",
        "4194304",
        "--flood-rate",
        "0",
    ]);
    for room in ["Calma", "Agitada"] {
        let out = d.ctl(&["room", "create", room, "--limit", "5", "--history", "1000"]);
        assert!(out.status.success(), "{out:?}");
    }
    // Each room: a speaker, and a reader who keeps up (senders get no echo).
    let mut quiet = d.joined("Ana", "Calma");
    let mut quiet_reader = d.joined("Eva", "Calma");
    for i in 0..3 {
        quiet.say(&format!("calm {i}"));
        assert_eq!(quiet_reader.event()["type"], "message");
    }
    let mut busy = d.joined("Bia", "Agitada");
    let mut busy_reader = d.joined("Gil", "Agitada");
    let long = "x".repeat(4000);
    for _ in 0..1000 {
        busy.say(&long);
        assert_eq!(busy_reader.event()["type"], "message");
    }
    // 1 MiB holds about 250 such messages: the busy room gave way, the
    // quiet room kept its three.
    let kept = history_replayed(&d, "Caio", "Agitada");
    assert!((200..=260).contains(&kept), "{kept} kept");
    assert_eq!(history_replayed(&d, "Duda", "Calma"), 3);
}

#[test]
fn the_irc_door_counts_against_the_same_per_address_limits_and_join_rate() {
    use crate::irc::{Irc, irc_daemon};
    let mut rooms: Vec<String> = vec!["--room".into(), "Teste:5".into()];
    for i in 0..14 {
        rooms.push("--room".into());
        rooms.push(format!("Sala{i}:5"));
    }
    let mut args: Vec<&str> = vec![
        "--address-limit-exempt",
        "none",
        "--max-clients-per-address",
        "3",
    ];
    args.extend(rooms.iter().map(String::as_str));
    let (d, irc_addr) = irc_daemon(&args);
    // Two on the chat port and one on IRC from one address: its share.
    let (_a, ev) = join_as_from(&d, "127.0.0.20", "ana");
    assert_eq!(ev["type"], "join", "{ev}");
    let (_b, ev) = join_as_from(&d, "127.0.0.20", "bia");
    assert_eq!(ev["type"], "join", "{ev}");
    let mut yan = Irc::from_stream(connect_from("127.0.0.20", irc_addr));
    yan.send("NICK yan");
    yan.send("USER yan 0 * :yan");
    yan.expect("yan registered", |l| l.contains(" 376 "));
    let mut fourth = Irc::from_stream(connect_from("127.0.0.20", irc_addr));
    fourth.expect("the door's ERROR", |l| {
        l.starts_with("ERROR :Closing Link")
            && l.contains("server at capacity")
            && l.contains("3 connections")
    });
    assert!(fourth.closed_within(Duration::from_secs(5)));
    // Each JOIN counts against the address's join rate (10 at once, then
    // one every 2 s; the two chat-port joins were the first two).
    let list: Vec<String> = (0..14).map(|i| format!("#Sala{i}")).collect();
    yan.send(&format!("JOIN {}", list.join(",")));
    let mut joined = 0;
    let mut refused = 0;
    while joined + refused < 14 {
        let l = yan.expect("a JOIN or a 437", |l| {
            l.contains(" 366 ") || l.contains(" 437 ")
        });
        if l.contains(" 437 ") {
            assert!(l.contains("too many joins"), "{l}");
            refused += 1;
        } else {
            joined += 1;
        }
    }
    assert_eq!(
        (joined, refused),
        (8, 6),
        "10 joins at once, 2 of them on the chat port: {joined} joined, {refused} refused"
    );
}
