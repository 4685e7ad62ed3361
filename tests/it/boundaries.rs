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
