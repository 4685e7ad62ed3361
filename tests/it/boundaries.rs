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
    let (mut d, _) = tls_daemon(
        &cert,
        &live_key,
        &["--config", config.to_str().unwrap()],
    );
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
