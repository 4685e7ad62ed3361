//! The chat part on its own, in the shape of quinn-proto's `Pair`: a
//! [`Chat`] and its [`Shared`] over a fake poller (it records interest
//! and never waits), loopback sockets for the clients, and virtual time
//! (the test moves `Shared::now`; nothing reads the clock).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::{Chat, ChatOut};
use crate::core::hub::{ConnId, Hub};
use crate::core::wire;
use crate::daemon::poller::Interest;
use crate::daemon::shared::{Shared, testing};

/// One chat part, its clients' ends, and the listener they came through.
struct Pair {
    chat: Chat,
    sh: Shared,
    listener: TcpListener,
    clients: HashMap<ConnId, TcpStream>,
}

impl Pair {
    /// A chat part with room `Teste` (limit 2), run with `flags`.
    fn new(clustered: bool, flags: &[&str]) -> Pair {
        let mut hub = Hub::new();
        hub.create_room("Teste", 2).unwrap();
        let sh = testing::shared(flags, hub);
        Pair {
            chat: Chat::new(clustered),
            sh,
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            clients: HashMap::new(),
        }
    }

    /// A new client, admitted; its connection id.
    fn connect(&mut self) -> ConnId {
        self.connect_with(false)
    }

    /// The same with the smallest socket buffers on both ends, so that a
    /// client who does not read backs up at once.
    fn connect_small(&mut self) -> ConnId {
        self.connect_with(true)
    }

    fn connect_with(&mut self, small: bool) -> ConnId {
        use nix::sys::socket::{setsockopt, sockopt};
        let client = TcpStream::connect(self.listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (stream, peer) = self.listener.accept().unwrap();
        if small {
            setsockopt(&client, sockopt::RcvBuf, &1).unwrap();
            setsockopt(&stream, sockopt::SndBuf, &1).unwrap();
        }
        let before = self.chat.len();
        let plain = crate::daemon::door::Entry {
            tls: false,
            protocol: crate::core::codec::Protocol::Prototype,
            web: false,
        };
        self.chat.admit(&mut self.sh, stream, peer, plain);
        assert_eq!(self.chat.len(), before + 1, "admitted");
        let id = *self
            .chat
            .conns
            .keys()
            .max()
            .expect("a connection was admitted");
        self.clients.insert(id, client);
        self.settle();
        id
    }

    /// The client sends `bytes`; the chat part reads and acts on them.
    fn send(&mut self, id: ConnId, bytes: &[u8]) {
        self.clients.get_mut(&id).unwrap().write_all(bytes).unwrap();
        self.readable(id);
    }

    fn readable(&mut self, id: ConnId) {
        // Loopback: what was written is there to read.
        assert!(self.chat.ready(&mut self.sh, id, true, false));
        self.settle();
    }

    fn join(&mut self, id: ConnId, name: &str) {
        self.join_room(id, name, "Teste");
    }

    fn join_room(&mut self, id: ConnId, name: &str, room: &str) {
        let hs = format!(r#"{{"username":"{name}","room":"{room}"}}"#);
        self.send(id, &wire::encode_frame(hs.as_bytes()));
    }

    /// `id`'s message delivered without a pass: no write in between.
    fn say_unflushed(&mut self, id: ConnId, text: &str) {
        let d = self.sh.hub.say(id, text).expect("a member");
        self.chat.deliver(&mut self.sh, &d);
    }

    fn say(&mut self, id: ConnId, text: &str) {
        self.send(id, &wire::encode_frame(text.as_bytes()));
    }

    /// One pass's work after the reads: frames, inboxes, writes.
    fn settle(&mut self) {
        self.chat.process_runnable(&mut self.sh);
        self.chat.drain_inboxes(&mut self.sh);
        self.chat.flush(&mut self.sh);
        self.chat.settle(&mut self.sh);
        self.chat.check_rings();
    }

    /// Moves virtual time on and fires what is due.
    fn advance(&mut self, by: Duration) {
        self.sh.now += by;
        self.chat.fire_timers(&mut self.sh);
        self.settle();
    }

    /// The event lines the client has received so far, parsed.
    fn received(&mut self, id: ConnId) -> Vec<serde_json::Value> {
        let client = self.clients.get_mut(&id).unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    bytes.extend_from_slice(&buf[..n]);
                    if bytes.ends_with(b"\n") {
                        client
                            .set_read_timeout(Some(Duration::from_millis(20)))
                            .unwrap();
                    }
                }
                Err(_) => break,
            }
        }
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("an event line"))
            .collect()
    }

    fn interest(&self, id: ConnId) -> Interest {
        self.chat.conns[&id].interest
    }
}

fn kinds(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn a_message_reaches_every_member_encoded_once_and_is_counted() {
    let mut p = Pair::new(false, &[]);
    let (a, b) = (p.connect(), p.connect());
    p.join(a, "ana");
    p.join(b, "bia");
    p.say(a, "olá");
    let got_a = p.received(a);
    let got_b = p.received(b);
    // The sender is not echoed (as the prototype).
    assert_eq!(kinds(&got_a), ["join", "join"]);
    assert_eq!(kinds(&got_b), ["join", "message"]);
    assert_eq!(got_b[1]["message"], "olá");
    assert_eq!(got_b[1]["username"], "ana");
    assert_eq!(got_a[1], got_b[0], "bia's join, the same bytes to both");
    // Two joins (ana sees 2, bia 1) and one message to bia.
    assert_eq!(p.sh.counters.deliveries, 4);
    assert_eq!(p.sh.counters.messages_relayed, 1);
}

#[test]
fn a_handshake_that_never_completes_gets_408_when_virtual_time_says_so() {
    let mut p = Pair::new(false, &["--handshake-timeout", "5"]);
    let a = p.connect();
    p.send(a, b"00000"); // half a header, then nothing
    p.advance(Duration::from_secs(4));
    assert!(p.received(a).is_empty(), "not yet");
    p.advance(Duration::from_secs(2));
    let got = p.received(a);
    assert_eq!(kinds(&got), ["error"]);
    assert_eq!(got[0]["message"], "408");
    assert_eq!(p.sh.counters.refusals, 1);
}

#[test]
fn a_full_room_refuses_with_501_and_the_name_rule_with_409() {
    let mut p = Pair::new(false, &[]);
    let (a, b, c, d) = (p.connect(), p.connect(), p.connect(), p.connect());
    p.join(a, "ana");
    p.join(b, "Ana");
    assert_eq!(p.received(b)[0]["message"], "409");
    p.join(c, "bia");
    p.join(d, "caio");
    let got = p.received(d);
    assert_eq!(got[0]["message"], "501", "{got:?}");
    assert_eq!(p.sh.hub.member_count(), 2);
}

#[test]
fn a_member_who_stops_reading_stops_the_room_and_is_dropped_past_the_sendq() {
    let mut p = Pair::new(false, &["--sendq", "65536", "--flood-rate", "0"]);
    let a = p.connect();
    let b = p.connect_small();
    p.join(a, "ana");
    p.join(b, "bia");
    let text = "x".repeat(1000);
    // bia never reads: her small socket buffers fill, then her queue
    // passes the high-water mark and the room stops being read from.
    let mut sent = 0;
    let mut stopped = false;
    for _ in 0..20_000 {
        p.say(a, &text);
        sent += 1;
        if !p.interest(a).read {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the room stopped being read");
    assert!(
        p.chat.conns[&b].counted_in.is_some(),
        "bia counted as backed up"
    );
    // A frame ana sends now waits (no write happens in between, so bia
    // cannot catch up meanwhile).
    let relayed = p.sh.counters.messages_relayed;
    let frame = wire::encode_frame(b"wait");
    p.clients.get_mut(&a).unwrap().write_all(&frame).unwrap();
    sent += 1;
    assert!(p.chat.ready(&mut p.sh, a, true, false));
    p.chat.process_runnable(&mut p.sh);
    assert_eq!(p.sh.counters.messages_relayed, relayed, "nothing relayed");
    // A delivery past the sendq (the admin's, another node's) drops her;
    // the room flows again and every frame ana sent goes.
    let big = crate::core::hub::Delivery {
        room: p.sh.hub.room_of(b).unwrap(),
        event: wire::Event::system(wire::EventKind::Message, &"y".repeat(70_000), None),
        to: vec![b],
    };
    p.chat.deliver(&mut p.sh, &big);
    assert!(!p.chat.has(b), "bia dropped");
    assert_eq!(p.sh.counters.slow_consumer_drops, 1);
    p.settle();
    assert!(p.interest(a).read, "the room flows again");
    // What still waits in the kernel comes as the poller reports ana
    // readable again.
    for _ in 0..100 {
        if p.sh.counters.messages_relayed == sent {
            break;
        }
        p.readable(a);
    }
    assert_eq!(p.sh.counters.messages_relayed, sent);
}

#[test]
fn a_bad_message_gets_400_and_the_member_stays() {
    let mut p = Pair::new(false, &[]);
    let (a, b) = (p.connect(), p.connect());
    p.join(a, "ana");
    p.join(b, "bia");
    p.send(a, &wire::encode_frame(b"\xff\xfe"));
    p.say(a, "still here");
    let got = p.received(a);
    assert_eq!(kinds(&got), ["join", "join", "error"]);
    assert_eq!(got[2]["message"], "400");
    assert!(p.chat.has(a));
    let got = p.received(b);
    assert_eq!(kinds(&got), ["join", "message"]);
    assert_eq!(got[1]["message"], "still here");
}

#[test]
fn in_cluster_mode_the_join_waits_for_the_verdict_and_frames_wait_with_it() {
    let mut p = Pair::new(true, &[]);
    let a = p.connect();
    // The handshake and a message in one write.
    let mut bytes = wire::encode_frame(br#"{"username":"ana","room":"Teste"}"#);
    bytes.extend(wire::encode_frame(b"first words"));
    p.send(a, &bytes);
    let out = p.chat.take_out();
    let [
        ChatOut::Join(crate::core::cluster::JoinRequest {
            id, hs, username, ..
        }),
    ] = &out[..]
    else {
        panic!("one join to decide: {out:?}");
    };
    assert_eq!(
        (*id, hs.room.as_str(), username.as_str()),
        (a, "Teste", "ana")
    );
    assert_eq!(
        p.sh.hub.member_count(),
        0,
        "not a member before the verdict"
    );
    p.settle();
    assert_eq!(p.sh.counters.messages_relayed, 0, "the message waits");
    // The cluster admits: the member joins, and its message goes out and
    // to the other nodes.
    let delivery =
        p.sh.hub
            .join_admitted(a, "ana", "Teste", "127.0.0.1:1", "now", "n1")
            .unwrap();
    p.chat.verdict_given(a);
    p.chat.joined(&mut p.sh, a, hs, "ana", "", &delivery);
    p.settle();
    assert_eq!(kinds(&p.received(a)), ["join"]);
    let out = p.chat.take_out();
    assert!(
        matches!(&out[..], [ChatOut::Said(e)] if e.message == "first words"),
        "{out:?}"
    );
}

#[test]
fn a_member_who_leaves_is_announced_and_in_cluster_mode_reported() {
    let mut p = Pair::new(true, &[]);
    let (a, b) = (p.connect(), p.connect());
    for (id, name) in [(a, "ana"), (b, "bia")] {
        p.join(id, name);
        let out = p.chat.take_out();
        let [ChatOut::Join(crate::core::cluster::JoinRequest { hs, .. })] = &out[..] else {
            panic!("{out:?}");
        };
        let d =
            p.sh.hub
                .join_admitted(id, name, "Teste", "127.0.0.1:1", "now", "n1")
                .unwrap();
        p.chat.verdict_given(id);
        p.chat.joined(&mut p.sh, id, hs, name, "", &d);
        p.settle();
    }
    p.received(b);
    drop(p.clients.remove(&a));
    p.readable(a);
    assert!(!p.chat.has(a), "gone");
    let got = p.received(b);
    assert_eq!(kinds(&got), ["leave"]);
    assert_eq!(got[0]["message"], wire::LEFT);
    let out = p.chat.take_out();
    assert!(
        matches!(&out[..], [ChatOut::Left(dep, _)] if dep.member.username == "ana"),
        "{out:?}"
    );
}

#[test]
fn ring_lines_skip_the_sender_and_a_line_of_ones_own_comes_after_them() {
    let mut p = Pair::new(false, &[]);
    let (a, b) = (p.connect(), p.connect());
    p.join(a, "ana");
    p.join(b, "bia");
    assert_eq!(kinds(&p.received(a)), ["join", "join"]);
    assert_eq!(kinds(&p.received(b)), ["join"]);
    // Two messages wait in the room's ring for bia (none for ana, who
    // said them); then a line of bia's own (a 400) comes after them.
    p.say_unflushed(a, "um");
    p.say_unflushed(a, "dois");
    // Counted in bia's session once the ring's subs are looked at.
    p.chat.settle(&mut p.sh);
    let waiting = p.chat.conns[&b].session.pending();
    assert!(waiting > 0 && waiting == p.chat.rings.held(), "{waiting}");
    assert_eq!(p.chat.conns[&a].session.pending(), 0);
    p.send(b, &wire::encode_frame(b"\xff"));
    let got = p.received(b);
    assert_eq!(kinds(&got), ["message", "message", "error"], "{got:?}");
    assert_eq!(got[0]["message"], "um");
    assert_eq!(got[1]["message"], "dois");
    assert!(
        p.received(a).is_empty(),
        "the sender's own lines are skipped"
    );
    // Everyone wrote everything: the ring holds nothing.
    p.say(b, "três");
    assert_eq!(p.received(a)[0]["message"], "três");
    assert_eq!(p.chat.rings.held(), 0);
    assert_eq!(p.sh.counters.deliveries, 3 + 3);
}

#[test]
fn a_member_who_keeps_reading_loses_nothing_beside_one_who_does_not() {
    let mut p = Pair::new(false, &["--sendq", "262144", "--flood-rate", "0"]);
    p.sh.hub.create_room("Grande", 3).unwrap();
    let (a, b, c) = (p.connect(), p.connect_small(), p.connect());
    p.join_room(a, "ana", "Grande");
    p.join_room(b, "bia", "Grande");
    p.join_room(c, "caio", "Grande");
    p.received(c);
    let text = "x".repeat(500);
    let mut got = Vec::new();
    let mut said: u64 = 0;
    while p.interest(a).read {
        p.say(a, &format!("{said} {text}"));
        said += 1;
        if said.is_multiple_of(50) {
            got.extend(p.received(c));
        }
        assert!(said < 5000, "the room stops");
    }
    // bia holds the room back: counted, within the sendq, and what waits
    // for her is in the ring.
    let waiting = p.chat.conns[&b].session.pending();
    assert!(p.chat.conns[&b].session.backlogged());
    assert!(waiting <= 262_144, "{waiting}");
    assert!(p.chat.rings.held() >= waiting);
    // Her stall budget runs out: she goes, the room flows again.
    p.advance(Duration::from_secs(11));
    assert!(!p.chat.has(b), "bia dropped");
    for _ in 0..100 {
        if p.sh.counters.messages_relayed == said {
            break;
        }
        p.readable(a);
    }
    assert_eq!(p.sh.counters.messages_relayed, said);
    got.extend(p.received(c));
    let numbers: Vec<usize> = got
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let want: Vec<usize> = (0..said as usize).collect();
    assert_eq!(numbers, want, "every line, in order");
}
