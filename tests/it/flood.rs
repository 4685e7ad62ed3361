//! Flood control (`--flood-*`) on both protocols: a burst goes at once,
//! then messages are paced, and a flooder delayed for `--flood-lag` in a
//! row is refused (429 on the chat port, a NOTICE on IRC) while everyone
//! else is unaffected.

use std::time::{Duration, Instant};

use crate::irc::{Irc, irc_daemon};
use crate::support::*;

/// A quick rule for the tests: 5 at once, then 10 a second, refused
/// after 1 s of delays.
const PACED: [&str; 8] = [
    "--room",
    "Teste:5",
    "--flood-burst",
    "5",
    "--flood-rate",
    "10",
    "--flood-lag",
    "1",
];

/// Reads a client's events for `window`; (messages, 429 errors).
fn tally(c: &mut Client, window: Duration) -> (usize, usize) {
    let end = Instant::now() + window;
    let (mut messages, mut refused) = (0, 0);
    while Instant::now() < end {
        if let Some(ev) = c.event_within(Duration::from_millis(50)) {
            match ev["type"].as_str() {
                Some("message") => messages += 1,
                Some("error") if ev["message"] == "429" => refused += 1,
                _ => {}
            }
        }
    }
    (messages, refused)
}

#[test]
fn a_flooder_on_the_chat_port_is_paced_then_refused_and_stays_connected() {
    let (d, _) = irc_daemon(&PACED);
    let mut reader = d.joined("leitora", "Teste");
    let mut flooder = d.joined("enxurrada", "Teste");
    reader.event(); // the flooder's join
    let start = Instant::now();
    for i in 0..100 {
        flooder.say(&format!("spam {i}"));
    }
    // 5 at once, then 10 a second for the 1 s of --flood-lag: about 15
    // reach the room, and the rest are refused to the flooder alone.
    let (got, _) = tally(&mut reader, Duration::from_secs(3));
    let (_, refused) = tally(&mut flooder, Duration::from_millis(500));
    assert!((12..=20).contains(&got), "the reader got {got}");
    assert!(refused >= 75, "the flooder was refused {refused} times");
    assert!(start.elapsed() >= Duration::from_secs(1));
    // Still connected, and paced no more once it stopped.
    std::thread::sleep(Duration::from_millis(600));
    flooder.say("calma agora");
    let ev = reader.event();
    assert_eq!(ev["message"], "calma agora", "{ev}");
    let stats = d.admin().request(serde_json::json!({"cmd":"stats"}));
    assert!(
        stats["stats"]["flood_refusals"].as_u64().unwrap() >= 75,
        "{stats}"
    );
}

#[test]
fn a_flooder_on_irc_is_paced_then_told_with_a_notice() {
    let (d, irc_addr) = irc_daemon(&PACED);
    let mut reader = d.joined("leitora", "Teste");
    let mut flooder = Irc::register(irc_addr, "enxurrada");
    flooder.send("JOIN #Teste");
    flooder.expect("NAMES", |l| l.contains(" 366 "));
    reader.event(); // the flooder's join
    let mut burst = String::new();
    for i in 0..100 {
        burst.push_str(&format!("PRIVMSG #Teste :spam {i}\r\n"));
    }
    flooder.send_raw(burst.as_bytes());
    let (got, _) = tally(&mut reader, Duration::from_secs(3));
    assert!((12..=20).contains(&got), "the reader got {got}");
    flooder.expect("the flood NOTICE", |l| {
        l.contains("NOTICE enxurrada") && l.contains("flood control")
    });
    // PING is not a message: answered at once, even now.
    flooder.send("PING :ainda");
    flooder.expect("PONG", |l| l.contains("PONG") && l.contains("ainda"));
}

#[test]
fn people_who_type_are_never_paced_and_flood_control_can_be_off() {
    // Defaults: a burst of 10 goes at once.
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut reader = d.joined("leitora", "Teste");
    let mut paster = d.joined("colagem", "Teste");
    reader.event();
    let start = Instant::now();
    for i in 0..10 {
        paster.say(&format!("linha {i}"));
    }
    for _ in 0..10 {
        assert_eq!(reader.event()["type"], "message");
    }
    assert!(start.elapsed() < Duration::from_millis(400));
    // --flood-rate 0: a thousand at once, none delayed or refused.
    let d = Daemon::start(&["--room", "Teste:5", "--flood-rate", "0"]);
    let mut reader = d.joined("leitora", "Teste");
    let mut bot = d.joined("robo", "Teste");
    reader.event();
    for i in 0..1000 {
        bot.say(&format!("linha {i}"));
    }
    for _ in 0..1000 {
        assert_eq!(reader.event()["type"], "message");
    }
}
