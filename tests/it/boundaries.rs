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
