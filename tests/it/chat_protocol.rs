//! PROTOCOL.md §1 against the real chatd over real sockets: framing, the
//! handshake, every event and error code, and what happens to the
//! connection after each.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn short() -> Duration {
    Duration::from_millis(300)
}

#[test]
fn dialogue_join_message_leave() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    let mut yan = d.joined("Yan", "Teste");
    let mut bue = d.joined("Buendia", "Teste");
    // The joiner's notice goes to the members already there too.
    let ev = yan.event();
    assert_eq!(ev["type"], "join");
    assert_eq!(ev["username"], "Buendia");
    assert_eq!(ev["message"], "*** ENTROU NA SALA ***");
    assert_eq!(ev["room"], "Teste");

    yan.say("Olá");
    let ev = bue.event();
    assert_eq!(ev["type"], "message");
    assert_eq!(ev["username"], "Yan");
    assert_eq!(ev["message"], "Olá");
    assert_eq!(ev["room"], "Teste");
    // No echo to the sender.
    yan.expect_silence(short());

    drop(bue);
    let ev = yan.event();
    assert_eq!(ev["type"], "leave");
    assert_eq!(ev["username"], "Buendia");
    assert_eq!(ev["message"], "*** SAIU DA SALA ***");
    assert_eq!(ev["room"], "Teste");
}

#[test]
fn header_alignments_are_all_accepted() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut reader = d.joined("R", "Teste");
    let mut c = Client::connect(d.addr);
    let hs = br#"{"username": "W", "room": "Teste"}"#;
    c.send_raw(format!("{:>10}", hs.len()).as_bytes());
    c.send_raw(hs);
    assert_eq!(c.event()["type"], "join");
    assert_eq!(reader.event()["username"], "W");
    c.send_raw(b"0000000005right");
    c.send_raw(b"         5left!");
    c.send_raw(b"5         plain");
    for want in ["right", "left!", "plain"] {
        assert_eq!(reader.event()["message"], want);
    }
}

#[test]
fn frames_split_at_every_byte_and_batched() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut reader = d.joined("R", "Teste");
    let mut w = Client::connect(d.addr);
    let mut stream = frame(br#"{"username": "W", "room": "Teste"}"#);
    for i in 0..5 {
        stream.extend(frame(format!("msg {i} {{}}").as_bytes()));
    }
    // One byte per write, with pauses so they arrive in separate reads.
    for b in &stream[..40] {
        w.send_raw(&[*b]);
        thread::sleep(Duration::from_millis(2));
    }
    w.send_raw(&stream[40..]);
    assert_eq!(w.event()["type"], "join");
    assert_eq!(reader.event()["type"], "join");
    for i in 0..5 {
        assert_eq!(reader.event()["message"], format!("msg {i} {{}}"));
    }
}

#[test]
fn zero_length_frame_is_ignored() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut reader = d.joined("R", "Teste");
    let mut w = d.joined("W", "Teste");
    reader.event();
    w.send_raw(b"0         ");
    w.say("after");
    assert_eq!(reader.event()["message"], "after");
    w.expect_silence(short());
}

#[test]
fn events_are_ascii_with_one_brace_and_round_trip() {
    let d = Daemon::start(&["--room", "Sala {1}:5"]);
    let mut reader = d.joined("R", "Sala {1}");
    let mut w = d.joined("Wéb}", "Sala {1}");
    reader.event();
    let text = "Olá {ok} \"aspas\" \\ barra 😀 日本 \ttab";
    w.say(text);
    // Client::event checks the line: pure ASCII, one literal `}` at the end.
    let ev = reader.event();
    assert_eq!(ev["message"], text);
    assert_eq!(ev["username"], "Wéb}");
    assert_eq!(ev["room"], "Sala {1}");
}

#[test]
fn prototype_client_reads_up_to_first_brace() {
    // The prototype's client reads one byte at a time until the first `}`
    // and hands that to json.loads; the next read starts with "\n".
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut raw = TcpStream::connect(d.addr).unwrap();
    raw.write_all(&frame(br#"{"username": "Yan", "room": "Teste"}"#))
        .unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut decode_message = || {
        let mut msg = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            raw.read_exact(&mut byte).unwrap();
            msg.push(byte[0]);
            if byte[0] == b'}' {
                break;
            }
        }
        serde_json::from_slice::<Value>(&msg).unwrap()
    };
    let mut got = Vec::new();
    let mut w: Option<Client> = None;
    for i in 0..3 {
        if i == 1 {
            // Only once Yan is in the room, so the order below is certain.
            let mut c = d.joined("W", "Teste");
            c.say("chaves {} e acentuação");
            w = Some(c);
        }
        let m = decode_message();
        got.push(format!(
            "{} > {}",
            m["username"].as_str().unwrap(),
            m["message"].as_str().unwrap()
        ));
    }
    assert_eq!(
        got,
        [
            "Yan > *** ENTROU NA SALA ***",
            "W > *** ENTROU NA SALA ***",
            "W > chaves {} e acentuação"
        ]
    );
    drop(w);
}

fn expect_error_and_close(c: &mut Client, code: &str) -> Value {
    let ev = c.event();
    assert_eq!(ev["type"], "error", "{ev}");
    assert_eq!(ev["username"], "Sistema");
    assert_eq!(ev["message"], code, "{ev}");
    assert!(ev["reason"].as_str().is_some_and(|r| !r.is_empty()), "{ev}");
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "connection not closed after {code}"
    );
    ev
}

#[test]
fn refusals_404_501_409_close_the_connection() {
    let mut d = Daemon::start(&["--room", "Teste:2"]);
    let mut c = d.join("Yan", "Nope");
    expect_error_and_close(&mut c, "404");

    let _a = d.joined("Yan", "Teste");
    let mut dup = d.join("Yan", "Teste");
    expect_error_and_close(&mut dup, "409");

    let _b = d.joined("Buendia", "Teste");
    let mut full = d.join("Ana", "Teste");
    expect_error_and_close(&mut full, "501");
    d.wait_log("refused 501", Duration::from_secs(2));
    d.wait_log("refused 404", Duration::from_secs(2));
    d.wait_log("refused 409", Duration::from_secs(2));
}

#[test]
fn a_freed_slot_can_be_taken_again() {
    let d = Daemon::start(&["--room", "Teste:1"]);
    let a = d.joined("Yan", "Teste");
    let mut b = d.join("Ana", "Teste");
    expect_error_and_close(&mut b, "501");
    drop(a);
    assert!(eventually(Duration::from_secs(5), || {
        let mut c = d.join("Ana", "Teste");
        c.event()["type"] == "join"
    }));
}

#[test]
fn malformed_handshakes_get_400_and_close() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let cases: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"[1,2]".to_vec(),
        br#"{"username": "Yan"}"#.to_vec(),
        br#"{"username": "", "room": "Teste"}"#.to_vec(),
        br#"{"username": "SISTEMA", "room": "Teste"}"#.to_vec(),
        br#"{"username": " Yan", "room": "Teste"}"#.to_vec(),
        br#"{"username": "a\u001b[2Jb", "room": "Teste"}"#.to_vec(),
        format!(r#"{{"username": "{}", "room": "Teste"}}"#, "x".repeat(33)).into_bytes(),
        b"{\"username\": \"\xff\xfe\", \"room\": \"Teste\"}".to_vec(),
    ];
    for payload in cases {
        let mut c = Client::connect(d.addr);
        c.send_frame(&payload);
        expect_error_and_close(&mut c, "400");
    }
}

#[test]
fn bad_header_gets_400_and_close() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut c = Client::connect(d.addr);
    c.send_raw(b"hello worl");
    expect_error_and_close(&mut c, "400");
    // Also after joining.
    let mut m = d.joined("Yan", "Teste");
    m.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    expect_error_and_close(&mut m, "400");
}

#[test]
fn oversized_frame_gets_413_and_close() {
    let mut d = Daemon::start(&["--room", "Teste:5", "--max-frame", "100"]);
    let mut c = Client::connect(d.addr);
    // A 4 GiB length: refused from the header alone, nothing is buffered.
    c.send_raw(b"4294967296");
    c.send_raw(&[b'x'; 1000]);
    let ev = expect_error_and_close(&mut c, "413");
    // Before the join, the bound is the handshake's own (room for a token).
    assert!(ev["reason"].as_str().unwrap().contains("22528"), "{ev}");
    let mut m = d.joined("Yan", "Teste");
    m.send_raw(b"101       ");
    expect_error_and_close(&mut m, "413");
    let mut ok = d.joined("Ana", "Teste");
    ok.send_frame(&[b'y'; 100]);
    ok.expect_silence(short());
    d.wait_log("error 413", Duration::from_secs(2));
}

#[test]
fn bad_messages_get_400_and_connection_stays() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut r = d.joined("R", "Teste");
    let mut w = d.joined("W", "Teste");
    r.event();
    for bad in [
        &b"\xff\xfe invalid utf-8"[..],
        b"\x1b[31mred\x1b[0m",
        b"line\nbreak",
        "c1 \u{9b}31m".as_bytes(),
        b"bell\x07",
    ] {
        w.send_frame(bad);
        let ev = w.event();
        assert_eq!(ev["type"], "error");
        assert_eq!(ev["message"], "400");
    }
    w.say("still here\twith tab");
    assert_eq!(r.event()["message"], "still here\twith tab");
    r.expect_silence(short());
}

#[test]
fn rooms_are_isolated() {
    let d = Daemon::start(&["--room", "A:5", "--room", "B:5"]);
    let mut a1 = d.joined("Yan", "A");
    let mut a2 = d.joined("Ana", "A");
    let mut b1 = d.joined("Yan", "B");
    let mut b2 = d.joined("Bia", "B");
    a1.event();
    b1.event();
    a1.say("in A");
    b2.say("in B");
    assert_eq!(a2.event()["message"], "in A");
    assert_eq!(b1.event()["message"], "in B");
    assert_eq!(a2.event_within(short()), None);
    assert_eq!(b1.event_within(short()), None);
    drop(a2);
    assert_eq!(a1.event()["type"], "leave");
    b1.expect_silence(short());
    b2.expect_silence(Duration::from_millis(10));
}

#[test]
fn half_header_then_silence_gets_408_others_unaffected() {
    let mut d = Daemon::start(&["--room", "Teste:5", "--handshake-timeout", "1"]);
    let mut stalled = Client::connect(d.addr);
    stalled.send_raw(b"26  ");
    let mut a = d.joined("Yan", "Teste");
    let mut b = d.joined("Ana", "Teste");
    a.event();
    let start = Instant::now();
    b.say("during the stall");
    assert_eq!(a.event()["message"], "during the stall");
    let ev = expect_error_and_close(&mut stalled, "408");
    assert_eq!(ev["type"], "error");
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(4), "408 took {waited:?}");
    d.wait_log("error 408", Duration::from_secs(2));
    a.say("after");
    assert_eq!(b.event()["message"], "after");
}

#[test]
fn hundred_slowloris_handshakes_all_get_408() {
    let d = Daemon::start(&["--room", "Teste:5", "--handshake-timeout", "1"]);
    let mut slow: Vec<Client> = (0..100)
        .map(|_| {
            let mut c = Client::connect(d.addr);
            c.send_raw(b"3");
            c
        })
        .collect();
    let mut ok = d.joined("Yan", "Teste");
    ok.expect_silence(Duration::from_millis(10));
    for c in &mut slow {
        expect_error_and_close(c, "408");
    }
}

#[test]
fn max_clients_gives_503() {
    let d = Daemon::start(&["--room", "Teste:5", "--max-clients", "2"]);
    let _a = d.joined("A", "Teste");
    let _b = d.joined("B", "Teste");
    let mut c = Client::connect(d.addr);
    let ev = expect_error_and_close(&mut c, "503");
    assert!(ev["reason"].as_str().unwrap().contains("max-clients"));
}

#[test]
fn never_reading_member_is_dropped_and_nobody_loses_a_message() {
    let mut d = Daemon::start(&[
        "--room",
        "Teste:5",
        "--write-timeout",
        "1",
        "--flood-rate",
        "0",
    ]);
    let mut sender = d.joined("S", "Teste");
    let mut reader = d.joined("R", "Teste");
    let stalled = d.joined("X", "Teste");
    sender.event();
    sender.event();
    reader.event();
    // X never reads again. The sender floods far more than the kernel
    // buffers and X's sendq can hold.
    const N: usize = 2000;
    let body = "z".repeat(8000);
    let addr_sender = thread::spawn(move || {
        for i in 0..N {
            sender.say(&format!("{i:05} {body}"));
        }
        sender
    });
    let mut got = 0;
    let mut saw_leave = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < N && Instant::now() < deadline {
        let ev = reader.event();
        match ev["type"].as_str().unwrap() {
            "message" => {
                let m = ev["message"].as_str().unwrap();
                assert_eq!(&m[..5], format!("{got:05}"), "message lost or reordered");
                got += 1;
            }
            "leave" => {
                assert_eq!(ev["username"], "X");
                saw_leave = true;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(got, N);
    let mut sender = addr_sender.join().unwrap();
    if !saw_leave {
        assert_eq!(reader.event()["username"], "X");
    }
    // The sender got the leave notice too.
    let ev = sender.event();
    assert_eq!(ev["type"], "leave");
    assert_eq!(ev["username"], "X");
    d.wait_log("slow consumer", Duration::from_secs(2));
    drop(stalled);
}

#[test]
fn sigterm_sends_shutdown_to_everyone_and_exits_0() {
    let mut d = Daemon::start(&["--room", "Teste:5"]);
    let mut a = d.joined("Yan", "Teste");
    let mut pending = Client::connect(d.addr);
    pending.send_raw(b"12");
    let control = d.control.clone();
    d.signal("TERM");
    let ev = a.event();
    assert_eq!(ev["type"], "shutdown");
    assert_eq!(ev["username"], "Sistema");
    assert_eq!(ev["message"], "*** SERVIDOR ENCERRANDO ***");
    assert!(a.closed_within(Duration::from_secs(5)));
    assert_eq!(pending.event()["type"], "shutdown");
    let st = d.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "{st}");
    assert!(!control.exists(), "control socket left behind");
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let mut d = Daemon::start(&[]);
    d.signal("INT");
    assert!(d.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn listens_on_ipv6_loopback_and_several_addresses() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback here");
        return;
    }
    let mut d = Daemon::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "[::1]:0",
        "--room",
        "Teste:5",
    ]);
    let v6 = d.wait_log("listening on [::1]:", Duration::from_secs(2));
    let addr: std::net::SocketAddr = v6.rsplit("listening on ").next().unwrap().parse().unwrap();
    let mut a = d.joined("Yan", "Teste");
    let mut b = Client::connect(addr);
    b.handshake("Ana", "Teste");
    assert_eq!(b.event()["type"], "join");
    assert_eq!(a.event()["username"], "Ana");
    b.say("via v6");
    assert_eq!(a.event()["message"], "via v6");
}

#[test]
fn second_daemon_on_the_same_port_fails_clearly() {
    let d = Daemon::start(&[]);
    let dir = TempDir::new("second");
    let out = std::process::Command::new(CHATD)
        .args(["--listen", &d.addr.to_string(), "--control"])
        .arg(dir.path().join("c.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&d.addr.to_string()) && err.contains("in use"),
        "{err}"
    );
    // The first one still serves.
    let mut c = d.join("Yan", "Nope");
    assert_eq!(c.event()["message"], "404");
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["--max-clients", "5000"][..],
        &["--room", "NoLimit"],
        &["--listen", "nowhere"],
        &["--sendq", "100"],
        &["--handshake-timeout", "0"],
    ] {
        let out = std::process::Command::new(CHATD)
            .args(args)
            .arg("--control")
            .arg("/nonexistent-dir-for-test/c.sock")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(!out.stderr.is_empty());
    }
}

// ---------------------------------------------------------------------------
// chatd's additions for richer clients: ts, members, history, room listing
// ---------------------------------------------------------------------------

fn join_with_features(d: &Daemon, user: &str, room: &str, features: &[&str]) -> Client {
    let mut c = Client::connect(d.addr);
    let hs = serde_json::json!({ "username": user, "room": room, "features": features });
    c.send_frame(hs.to_string().as_bytes());
    c
}

#[test]
fn every_event_carries_its_time() {
    let d = Daemon::start(&["--room", "Teste:3"]);
    let mut a = d.joined("Ana", "Teste");
    let mut b = d.joined("Bia", "Teste");
    let _ = a.event(); // Bia's join
    b.say("oi");
    let ev = a.event();
    let ts = ev["ts"].as_str().expect("ts");
    assert_eq!(ts.len(), "2026-11-24T10:00:04Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
}

#[test]
fn members_snapshot_only_for_joiners_that_ask() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut yan = d.joined("Yan", "Teste");
    let mut bia = join_with_features(&d, "Bia", "Teste", &["members", "something-new"]);
    let join = bia.event();
    assert_eq!(join["type"], "join");
    let members = bia.event();
    assert_eq!(members["type"], "members", "{members}");
    assert_eq!(members["username"], "Sistema");
    assert_eq!(members["members"], serde_json::json!(["Yan", "Bia"]));
    // The prototype-style client got Bia's join and nothing else.
    assert_eq!(yan.event()["type"], "join");
    yan.expect_silence(Duration::from_millis(200));
}

#[test]
fn history_is_replayed_before_the_join_to_those_that_ask() {
    let d = Daemon::start(&[]);
    let out = d.ctl(&["room", "create", "Teste", "--limit", "5", "--history", "3"]);
    assert!(out.status.success(), "{out:?}");
    let mut ana = d.joined("Ana", "Teste");
    for i in 0..5 {
        ana.say(&format!("msg {i}"));
    }
    // A plain client sees no history.
    let mut plain = d.joined("Caio", "Teste");
    plain.expect_silence(Duration::from_millis(200));
    let mut bia = join_with_features(&d, "Bia", "Teste", &["history"]);
    // The last 3 events: two messages and Caio's join, marked as history.
    for i in 3..5 {
        let ev = bia.event();
        assert_eq!(ev["type"], "message", "{ev}");
        assert_eq!(ev["history"], true);
        assert_eq!(ev["message"], format!("msg {i}"));
        assert!(ev["ts"].is_string());
    }
    let ev = bia.event();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["username"].as_str(),
            ev["history"].as_bool()
        ),
        (Some("join"), Some("Caio"), Some(true)),
        "{ev}"
    );
    let join = bia.event();
    assert_eq!(
        (join["type"].as_str(), join["username"].as_str()),
        (Some("join"), Some("Bia"))
    );
    // The setting is part of the room's state.
    let list = d.ctl(&["--json", "room", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("\"history\":3"));
}

#[test]
fn a_listing_handshake_gets_the_public_rooms_and_a_close() {
    let d = Daemon::start(&["--room", "Teste:2", "--room", "Lobby:10"]);
    let out = d.ctl(&["room", "create", "Segredo", "--limit", "3", "--private"]);
    assert!(out.status.success());
    let _yan = d.joined("Yan", "Teste");
    let mut c = Client::connect(d.addr);
    c.send_frame(br#"{"list":"rooms"}"#);
    let ev = c.event();
    assert_eq!(ev["type"], "rooms", "{ev}");
    assert_eq!(
        ev["rooms"],
        serde_json::json!([["Teste", 1, 2], ["Lobby", 0, 10]])
    );
    assert!(c.closed_within(Duration::from_secs(2)));
    let mut bad = Client::connect(d.addr);
    bad.send_frame(br#"{"list":"users"}"#);
    assert_eq!(bad.event()["message"], "400");
}

/// Plaintext members of a room with 4 or more read its lines by
/// sendfile(2) from a memfd mirror of its ring (daemon/chat/mirror.rs).
/// Four readers stop reading during a burst of 20,000 lines, so their
/// writes are cut short and the mirror's pages behind them are given back
/// meanwhile; one says something of its own in the middle (its waiting
/// lines become its own output, and its cursor passes the mirror). All get
/// every line whole and in order, and the others get the aside.
#[test]
fn slow_plaintext_readers_get_every_line_whole_and_in_order() {
    const N: usize = 20_000;
    let d = Daemon::start(&[
        "--room",
        "Teste:6",
        "--sendq",
        "16777216",
        "--flood-rate",
        "0",
    ]);
    fn body(i: usize) -> String {
        format!("{i} {}", "x".repeat(i * 7 % 400))
    }
    let names = ["Ana", "Cai", "Dan", "Eva"];
    let mut readers: Vec<Client> = names.iter().map(|n| d.joined(n, "Teste")).collect();
    let mut bia = d.joined("Bia", "Teste");
    for (i, r) in readers.iter_mut().enumerate() {
        // The joins after its own.
        for _ in i + 1..=names.len() {
            assert_eq!(r.event()["type"], "join");
        }
    }
    let speaker = thread::spawn(move || {
        for i in 0..N {
            bia.say(&body(i));
        }
        bia
    });
    thread::sleep(Duration::from_millis(1000));
    readers[1].say("no meio");
    thread::sleep(Duration::from_millis(500));
    // Reads Bia's N lines in order, and Cai's aside (between them, or
    // after them if Bia was done first).
    fn read_all(mut c: Client, want_aside: bool) {
        let mut next = 0;
        let mut aside = false;
        while next < N || aside != want_aside {
            let ev = c.event();
            if ev["username"] == "Cai" {
                assert!(want_aside && !aside, "{ev}");
                assert_eq!(ev["message"], "no meio");
                aside = true;
                continue;
            }
            assert_eq!(ev["username"], "Bia", "{ev}");
            assert_eq!(ev["message"], body(next).as_str(), "line {next}");
            next += 1;
        }
        assert_eq!(aside, want_aside);
    }
    let threads: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(i, c)| thread::spawn(move || read_all(c, i != 1)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    speaker.join().unwrap();
}

/// A room of 4 or more with writes of 4 KiB or more gets its mirror: a
/// memfd at or above descriptor 1024, so select(2)'s descriptors stay for
/// clients. `--no-sendfile` makes none.
#[test]
fn a_busy_room_gets_a_mirror_above_selects_reach_unless_no_sendfile() {
    for (flag, want) in [(None, true), (Some("--no-sendfile"), false)] {
        let mut args = vec!["--room", "Teste:6", "--flood-rate", "0"];
        args.extend(flag);
        let d = Daemon::start(&args);
        let readers: Vec<Client> = ["Ana", "Cai", "Dan", "Eva"]
            .iter()
            .map(|n| d.joined(n, "Teste"))
            .collect();
        let mut bia = d.joined("Bia", "Teste");
        // In one write: chatd reads many lines a pass, so writes are big.
        let burst: Vec<u8> = (0..2000)
            .flat_map(|i| frame(format!("{i} {}", "x".repeat(100)).as_bytes()))
            .collect();
        bia.send_raw(&burst);
        let mut admin = d.admin();
        let deadline = Instant::now() + Duration::from_secs(10);
        while admin.request(serde_json::json!({"cmd":"stats"}))["stats"]["messages_relayed"] != 2000
        {
            assert!(Instant::now() < deadline, "the burst was not relayed");
            thread::sleep(Duration::from_millis(20));
        }
        let mirrors: Vec<i32> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                target
                    .to_string_lossy()
                    .contains("memfd:chatd-ring")
                    .then(|| e.file_name().to_string_lossy().parse().ok())?
            })
            .collect();
        match want {
            true => {
                assert_eq!(mirrors.len(), 1, "{mirrors:?}");
                assert!(mirrors[0] >= 1024, "{mirrors:?}");
            }
            false => assert!(mirrors.is_empty(), "{mirrors:?}"),
        }
        drop(readers);
    }
}
