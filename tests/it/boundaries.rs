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
