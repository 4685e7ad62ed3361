//! The cluster part on its own, in the shape of quinn-proto's `Pair`: a
//! [`Cluster`] whose link counts as connected without a socket, fed the
//! replies and pushes a real redis-server sent (frames/*.resp, recorded
//! by `record_frames_from_a_real_redis` below: `cargo test --lib --
//! --ignored record_frames`), over the same `Shared` as the chat part's
//! tests, with virtual time. What it sends Redis is read back as
//! commands; what it asks of the chat part is its `ClusterOut`s.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::{Cluster, ClusterLink, ClusterOut, Here, LinkEvent, Purpose, target};
use crate::core::cluster::{self as shared, Frame, RespReader};
use crate::core::control::Change;
use crate::core::hub::{ConnId, Hub, RoomId};
use crate::core::names::comparison_key;
use crate::core::wire::{ErrorCode, EventKind, Handshake};
use crate::daemon::shared::{Shared, testing};

/// This node's chat connections, as the cluster part may ask of them.
#[derive(Default)]
struct FakeHere {
    conns: HashSet<ConnId>,
    holding: Vec<RoomId>,
}

impl Here for FakeHere {
    fn has(&self, id: ConnId) -> bool {
        self.conns.contains(&id)
    }

    fn holding(&self) -> Vec<RoomId> {
        self.holding.clone()
    }

    fn speaks_irc(&self, _: ConnId) -> bool {
        false
    }

    fn nick_claimed(&self, _: ConnId) -> bool {
        false
    }

    fn direct_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Node `b` of a cluster whose other node, `a`, has `Ana` in `Teste`.
struct Node {
    cluster: Cluster,
    sh: Shared,
    here: FakeHere,
}

/// A recorded frame.
fn frame(bytes: &[u8]) -> Frame {
    let mut r = RespReader::default();
    r.push(bytes);
    let f = r.next_frame().expect("RESP3").expect("a whole frame");
    assert_eq!(r.next_frame(), Ok(None), "one frame per file");
    f
}

const HELLO: &[u8] = include_bytes!("frames/hello.resp");
const HEARTBEAT_UNSEEDED: &[u8] = include_bytes!("frames/heartbeat-unseeded.resp");
const HEARTBEAT_SEEDED: &[u8] = include_bytes!("frames/heartbeat-seeded.resp");
const HEARTBEAT_TAKEN: &[u8] = include_bytes!("frames/heartbeat-taken.resp");
const SYNC_NOTHING_FAILED: &[u8] = include_bytes!("frames/sync-nothing-failed.resp");
const SNAPSHOT: &[u8] = include_bytes!("frames/snapshot.resp");
const JOIN_OK: &[u8] = include_bytes!("frames/join-ok.resp");
const JOIN_FULL: &[u8] = include_bytes!("frames/join-full.resp");
const JOIN_TAKEN: &[u8] = include_bytes!("frames/join-taken.resp");
const JOIN_NO_ROOM: &[u8] = include_bytes!("frames/join-404.resp");
const ROOM_EXISTS: &[u8] = include_bytes!("frames/room-exists.resp");
const PUSH_MESSAGE_ANA: &[u8] = include_bytes!("frames/push-message-ana.resp");
const PUSH_MESSAGE_STRANGER: &[u8] = include_bytes!("frames/push-message-stranger.resp");
const PUSH_JOIN_CAIO: &[u8] = include_bytes!("frames/push-join-caio.resp");
const PUSH_LEAVE_CAIO: &[u8] = include_bytes!("frames/push-leave-caio.resp");
const PUSH_HOLD: &[u8] = include_bytes!("frames/push-hold.resp");
const PUSH_KICK_BIA: &[u8] = include_bytes!("frames/push-kick-bia.resp");
const PUSH_CLOSE: &[u8] = include_bytes!("frames/push-close.resp");

impl Node {
    /// Node `b`, connected to Redis but not yet greeted.
    fn new() -> Node {
        let mut hub = Hub::new();
        hub.set_node("b");
        let sh = testing::shared(&[], hub);
        let now = sh.now;
        let t = target("redis://127.0.0.1:6379", None, None).expect("a literal address");
        let mut link = ClusterLink::new(&t, now);
        link.up_without_socket(now);
        Node {
            cluster: Cluster::new(link, "b", "token-b".into(), now),
            sh,
            here: FakeHere::default(),
        }
    }

    /// Node `b`, greeted, synchronised and holding the snapshot.
    fn synced() -> Node {
        let mut n = Node::new();
        n.link(LinkEvent::Connected);
        n.reply(Purpose::Hello, HELLO);
        n.reply(Purpose::Heartbeat, HEARTBEAT_UNSEEDED);
        n.reply(Purpose::Ignore, b":1\r\n");
        n.reply(Purpose::Sync, SYNC_NOTHING_FAILED);
        n.reply(Purpose::Snapshot, SNAPSHOT);
        n.sent();
        n.out();
        assert!(n.cluster.ready());
        n
    }

    fn link(&mut self, event: LinkEvent) {
        self.cluster.on_link(&mut self.sh, &self.here, vec![event]);
    }

    fn reply(&mut self, purpose: Purpose, bytes: &[u8]) {
        self.link(LinkEvent::Reply(purpose, frame(bytes)));
    }

    fn push(&mut self, bytes: &[u8]) {
        self.link(LinkEvent::Push(frame(bytes)));
    }

    /// What was sent to Redis since the last call: each command's words
    /// (an EVAL's script named by `script_name`), and each reply's purpose.
    fn sent(&mut self) -> (Vec<Vec<String>>, Vec<Purpose>) {
        let (bytes, purposes) = self.cluster.link.take_sent();
        let mut r = RespReader::default();
        r.push(&bytes);
        let mut commands = Vec::new();
        while let Some(f) = r.next_frame().expect("commands are RESP") {
            let mut words: Vec<String> = shared::items(&f)
                .iter()
                .map(|w| String::from_utf8_lossy(shared::bytes(w).unwrap()).into_owned())
                .collect();
            if words[0] == "EVAL" {
                words[1] = script_name(&words[1]).to_string();
            }
            commands.push(words);
        }
        (commands, purposes)
    }

    fn out(&mut self) -> Vec<ClusterOut> {
        self.cluster.take_out()
    }

    /// Local connection `id` asks for a seat in `room` as `username`.
    fn join(&mut self, id: ConnId, room: &str, username: &str) {
        self.here.conns.insert(id);
        let hs = Handshake {
            username: Some(username.into()),
            room: room.into(),
            password: None,
            token: None,
            key: None,
            members: false,
            history: false,
            topic: false,
            commands: false,
            direct: false,
            room_events: false,
        };
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let req = shared::JoinRequest {
            id,
            peer,
            hs,
            username: username.into(),
            login: "",
            irc: false,
        };
        self.cluster.join(&mut self.sh, req);
    }
}

fn script_name(script: &str) -> &'static str {
    let named = [
        (shared::join_script(), "JOIN"),
        (shared::leave_script(), "LEAVE"),
        (shared::kick_script(), "KICK"),
        (shared::ROOM_PUT.to_string(), "ROOM_PUT"),
        (shared::room_del_script(), "ROOM_DEL"),
        (shared::heartbeat_script(), "HEARTBEAT"),
        (shared::bye_script(), "BYE"),
        (shared::sync_script(), "SYNC"),
        (shared::nick_script(), "NICK"),
        (shared::nick_free_script(), "NICK_FREE"),
        (shared::SNAPSHOT.to_string(), "SNAPSHOT"),
        (shared::USER_PUT.to_string(), "USER_PUT"),
        (shared::USERS_SEED.to_string(), "USERS_SEED"),
        (shared::BANS_SEED.to_string(), "BANS_SEED"),
        (shared::BANS_PUT.to_string(), "BANS_PUT"),
    ];
    named
        .into_iter()
        .find(|(s, _)| s == script)
        .map(|(_, n)| n)
        .expect("one of chatd's scripts")
}

fn words(c: &[String]) -> Vec<&str> {
    c.iter().map(String::as_str).collect()
}

#[test]
fn connecting_says_hello_and_the_first_heartbeat_starts_the_sync() {
    let mut n = Node::new();
    n.link(LinkEvent::Connected);
    let (commands, purposes) = n.sent();
    assert_eq!(words(&commands[0]), ["HELLO", "3", "SETNAME", "chatd-b"]);
    assert_eq!(
        words(&commands[1])[..5],
        ["EVAL", "HEARTBEAT", "0", "b", "token-b"]
    );
    assert_eq!(purposes, [Purpose::Hello, Purpose::Heartbeat]);
    n.reply(Purpose::Hello, HELLO);
    assert!(n.sent().0.is_empty(), "a good HELLO needs nothing more");
    // Redis was never seeded: this node's rooms, accounts and bans seed it.
    n.reply(Purpose::Heartbeat, HEARTBEAT_UNSEEDED);
    let (commands, purposes) = n.sent();
    let names: Vec<&str> = commands
        .iter()
        .map(|c| if c[0] == "EVAL" { &c[1] } else { &c[0] }.as_str())
        .collect();
    assert_eq!(
        names,
        ["USERS_SEED", "BANS_SEED", "SUBSCRIBE", "SYNC", "SNAPSHOT"]
    );
    assert_eq!(words(&commands[2]), ["SUBSCRIBE", shared::EVENTS]);
    assert_eq!(
        purposes,
        [
            Purpose::Ignore,
            Purpose::Ignore,
            Purpose::Sync,
            Purpose::Snapshot
        ],
        "SUBSCRIBE has no reply of its own in RESP3"
    );
    assert!(!n.cluster.ready(), "not before the snapshot");
    assert!(n.cluster.status().starts_with("synchronising as node 'b'"));
    // A second heartbeat while the sync is under way starts no other.
    n.reply(Purpose::Heartbeat, HEARTBEAT_SEEDED);
    assert!(n.sent().0.is_empty());
}

#[test]
fn the_snapshot_makes_the_hub_a_mirror_of_the_cluster() {
    let mut n = Node::new();
    n.link(LinkEvent::Connected);
    n.reply(Purpose::Heartbeat, HEARTBEAT_UNSEEDED);
    n.reply(Purpose::Sync, SYNC_NOTHING_FAILED);
    n.reply(Purpose::Snapshot, SNAPSHOT);
    assert!(n.cluster.ready());
    assert!(
        n.cluster
            .status()
            .starts_with("up as node 'b' via redis://")
    );
    let info = n.sh.hub.room("Teste").expect("the room is mirrored");
    assert_eq!(info.limit, 2);
    let members = n.sh.hub.participants("Teste").unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].username.as_str(), members[0].node.as_str()),
        ("Ana", "a")
    );
    // Ana's arrival is delivered like a local join (to nobody here yet);
    // the heartbeat that came first let other nodes' stale holds lapse.
    let out = n.out();
    assert!(
        matches!(&out[..], [ClusterOut::ExpireHolds, ClusterOut::Deliver(d)] if d.event.kind == EventKind::Join && d.event.username == "Ana"),
        "{out:?}"
    );
    // Gone from the next snapshot: closed here too.
    let empty = b"*2\r\n*0\r\n*0\r\n";
    n.reply(Purpose::Snapshot, empty);
    assert!(n.sh.hub.room("Teste").is_err());
}

#[test]
fn a_join_waits_for_redis_and_is_admitted_with_the_seat() {
    let mut n = Node::synced();
    n.join(7, "Teste", "bia");
    let (commands, purposes) = n.sent();
    assert_eq!(words(&commands[0]), ["SUBSCRIBE", "chatd:room:Teste"]);
    let join = words(&commands[1]);
    assert_eq!(join[..6], ["EVAL", "JOIN", "0", "Teste", "bia", join[5]]);
    assert!(join[5].contains(r#""name":"bia","node":"b","addr":"127.0.0.1:40000""#));
    assert_eq!(join[6], "b");
    assert_eq!(purposes, [Purpose::Join(7)]);
    assert!(n.out().is_empty(), "nothing happens before the verdict");
    n.reply(Purpose::Join(7), JOIN_OK);
    let out = n.out();
    assert!(matches!(out[0], ClusterOut::VerdictGiven(7)), "{out:?}");
    assert!(
        matches!(&out[1], ClusterOut::Joined { id: 7, username, delivery, .. }
            if username == "bia" && delivery.event.kind == EventKind::Join),
        "{out:?}"
    );
    assert_eq!(n.sh.hub.participants("Teste").unwrap().len(), 2);
    assert!(
        n.sent().0.is_empty(),
        "the room's channel stays: bia is in it"
    );
}

#[test]
fn refused_joins_say_why_in_the_prototypes_words() {
    let mut n = Node::synced();
    for (id, name, room, verdict, code, reason) in [
        (
            7,
            "caio",
            "Teste",
            JOIN_FULL,
            ErrorCode::RoomFull,
            "room 'Teste' is full (2 of 2)",
        ),
        (
            8,
            "ana",
            "Teste",
            JOIN_TAKEN,
            ErrorCode::NameTaken,
            "username 'ana' looks like 'Ana', who is already in room 'Teste' (on node 'a')",
        ),
        (
            9,
            "dani",
            "Nada",
            JOIN_NO_ROOM,
            ErrorCode::NoSuchRoom,
            "no room named 'Nada'",
        ),
    ] {
        n.join(id, room, name);
        n.sent();
        n.reply(Purpose::Join(id), verdict);
        let out = n.out();
        assert!(matches!(out[0], ClusterOut::VerdictGiven(v) if v == id));
        match &out[1] {
            ClusterOut::Refused {
                id: i,
                code: c,
                reason: r,
                room: ro,
                ..
            } => {
                assert_eq!((*i, *c, r.as_str(), ro.as_str()), (id, code, reason, room));
            }
            other => panic!("{other:?}"),
        }
        // Nobody local is left in the room: its channel is dropped.
        let (commands, _) = n.sent();
        let channel = shared::room_channel(room);
        assert_eq!(words(&commands[0]), ["UNSUBSCRIBE", channel.as_str()]);
    }
}

#[test]
fn a_join_whose_connection_left_before_the_verdict_gives_the_seat_back() {
    let mut n = Node::synced();
    n.join(7, "Teste", "bia");
    n.sent();
    n.here.conns.remove(&7);
    n.reply(Purpose::Join(7), JOIN_OK);
    let out = n.out();
    assert!(matches!(&out[..], [ClusterOut::VerdictGiven(7)]), "{out:?}");
    assert_eq!(n.sh.hub.participants("Teste").unwrap().len(), 1);
    let (commands, _) = n.sent();
    let leave = words(&commands[0]);
    assert_eq!(
        leave[1..7],
        [
            "LEAVE",
            "0",
            "Teste",
            "bia",
            "b",
            "left before its join was confirmed"
        ]
    );
    assert_eq!(words(&commands[1]), ["UNSUBSCRIBE", "chatd:room:Teste"]);
}

#[test]
fn losing_redis_answers_waiting_joins_with_503_and_is_not_ready() {
    let mut n = Node::synced();
    n.join(7, "Teste", "bia");
    let (_, purposes) = n.sent();
    n.join(8, "Teste", "caio");
    n.link(LinkEvent::Lost {
        why: "Redis at 127.0.0.1:6379 closed the link".into(),
        unanswered: purposes,
    });
    let out = n.out();
    let mut finished = Vec::new();
    for o in &out {
        if let ClusterOut::Finish(id, Some(event)) = o {
            assert_eq!(event.message, "503", "{event:?}");
            finished.push(*id);
        }
    }
    finished.sort();
    assert_eq!(finished, [7, 8], "the sent join and the queued one");
    assert_eq!(n.sh.counters.refusals, 2);
    assert!(!n.cluster.ready(), "admin changes are refused until it is");
    // Still down: a new join is refused at once, and said in the log.
    n.join(9, "Teste", "dani");
    assert!(matches!(n.out()[1], ClusterOut::Finish(9, Some(_))));
}

#[test]
fn another_nodes_message_is_delivered_only_from_a_member_of_the_room() {
    let mut n = Node::synced();
    n.push(PUSH_MESSAGE_ANA);
    let out = n.out();
    match &out[..] {
        [ClusterOut::FromElsewhere(d)] => {
            assert_eq!(d.event.kind, EventKind::Message);
            assert_eq!(
                (d.event.username.as_str(), d.event.message.as_str()),
                ("Ana", "oi")
            );
            assert_eq!(
                d.to.len(),
                1,
                "every member's id; the chat part skips the remote ones"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(n.sh.counters.messages_relayed, 1);
    // Someone who is not in the room: dropped and counted.
    n.push(PUSH_MESSAGE_STRANGER);
    assert!(n.out().is_empty());
    assert_eq!(n.sh.counters.cluster_dropped, 1);
    // What is not chatd's JSON is dropped the same way.
    let junk = b">3\r\n$7\r\nmessage\r\n$16\r\nchatd:room:Teste\r\n$5\r\n{not}\r\n";
    n.push(junk);
    assert!(n.out().is_empty());
    assert_eq!(n.sh.counters.cluster_dropped, 2);
}

#[test]
fn other_nodes_joins_leaves_kicks_and_closes_change_the_mirror() {
    let mut n = Node::synced();
    n.push(PUSH_JOIN_CAIO);
    assert!(n.sh.hub.conn_of("Teste", "Caio").is_some());
    assert!(matches!(&n.out()[..], [ClusterOut::Deliver(d)] if d.event.kind == EventKind::Join));
    n.push(PUSH_LEAVE_CAIO);
    assert!(n.sh.hub.conn_of("Teste", "Caio").is_none());
    assert!(matches!(&n.out()[..], [ClusterOut::Deliver(d)] if d.event.kind == EventKind::Leave));
    // bia, a member here, is kicked by an admin on node a.
    n.join(7, "Teste", "bia");
    n.reply(Purpose::Join(7), JOIN_OK);
    n.out();
    n.push(PUSH_KICK_BIA);
    let out = n.out();
    assert!(
        matches!(&out[..], [ClusterOut::Finish(7, Some(_)), ClusterOut::Deliver(d)] if d.event.kind == EventKind::Leave),
        "{out:?}"
    );
    assert!(n.sh.hub.conn_of("Teste", "bia").is_none());
    n.push(PUSH_CLOSE);
    assert!(n.sh.hub.room("Teste").is_err());
}

#[test]
fn holds_from_other_nodes_last_a_ttl_and_this_nodes_are_renewed() {
    let mut n = Node::synced();
    n.push(PUSH_HOLD);
    let out = n.out();
    let room = n.sh.hub.room_id_of("Teste").unwrap();
    match &out[..] {
        [
            ClusterOut::HeldBy {
                room: r,
                node,
                until,
            },
        ] => {
            assert_eq!((*r, node.as_str()), (room, "a"));
            assert_eq!(*until, Some(n.sh.now + shared::HOLD_TTL));
        }
        other => panic!("{other:?}"),
    }
    // This node holds Teste back: every heartbeat says so again.
    n.here.holding = vec![room];
    n.sh.now += super::HEARTBEAT_EVERY;
    n.cluster.tick(&mut n.sh, &n.here);
    let (commands, _) = n.sent();
    assert_eq!(words(&commands[0])[1], "HEARTBEAT");
    assert_eq!(words(&commands[1])[..2], ["PUBLISH", shared::EVENTS]);
    assert!(commands[1][2].contains(r#""t":"hold""#));
    assert!(matches!(&n.out()[..], [ClusterOut::ExpireHolds]));
}

#[test]
fn admin_changes_go_to_redis_and_a_room_made_elsewhere_first_wins() {
    let mut n = Node::synced();
    n.sh.hub.create_room("Nova", 5).unwrap();
    n.cluster.forward(
        &n.sh,
        &Change::RoomCreated {
            room: "Nova".into(),
        },
    );
    n.cluster.forward(
        &n.sh,
        &Change::Kicked {
            room: "Teste".into(),
            username: "Ana".into(),
            reason: "spam".into(),
        },
    );
    let (commands, purposes) = n.sent();
    assert_eq!(
        words(&commands[0])[1..5],
        ["ROOM_PUT", "0", "Nova", commands[0][4].as_str()]
    );
    assert!(commands[0][4].contains(r#""limit":5"#));
    assert_eq!(commands[0][5], "1", "create");
    assert_eq!(words(&commands[1])[1..5], ["KICK", "0", "Teste", "ana"]);
    assert_eq!(commands[1][4], comparison_key("Ana"));
    assert_eq!(
        purposes,
        [Purpose::RoomCreate("Nova".into()), Purpose::Ignore]
    );
    // Another node created Teste first (limit 2): its settings apply here.
    n.sh.hub.set_limit("Teste", 9).unwrap();
    n.reply(Purpose::RoomCreate("Teste".into()), ROOM_EXISTS);
    assert_eq!(n.sh.hub.room("Teste").unwrap().limit, 2);
}

#[test]
fn a_second_chatd_with_this_node_id_is_refused_and_the_link_dropped() {
    let mut n = Node::new();
    n.link(LinkEvent::Connected);
    n.sent();
    n.reply(Purpose::Heartbeat, HEARTBEAT_TAKEN);
    assert!(!n.cluster.link.connected(), "dropped; it retries later");
    assert!(n.cluster.status().starts_with("down"));
    assert!(n.cluster.failure_logged);
}

/// Makes frames/*.resp again from a real redis-server (on a free loopback
/// port, no persistence): node `a` seeds `Teste` (limit 2) with `Ana`;
/// node `b` asks what the tests above feed it; a subscriber records the
/// pushes.
#[test]
#[ignore = "needs redis-server; run to record the frames again"]
fn record_frames_from_a_real_redis() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let connect = || {
        for _ in 0..100 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server did not start");
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon/cluster/frames");
    std::fs::create_dir_all(&dir).unwrap();
    // One frame's bytes, exactly.
    let mut pending: std::collections::HashMap<u16, Vec<u8>> = Default::default();
    let mut read_frame = |s: &mut TcpStream| -> Vec<u8> {
        let key = s.local_addr().unwrap().port();
        let got = pending.entry(key).or_default();
        loop {
            if let Ok(Some((_, used))) =
                redis_protocol::resp3::decode::complete::decode(got.as_slice())
            {
                return got.drain(..used).collect();
            }
            let mut buf = [0u8; 65536];
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "redis closed");
            got.extend_from_slice(&buf[..k]);
        }
    };
    let ask = |s: &mut TcpStream, cmd: &[u8], rf: &mut dyn FnMut(&mut TcpStream) -> Vec<u8>| {
        s.write_all(cmd).unwrap();
        rf(s)
    };
    let save = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let def = |limit: usize| {
        serde_json::to_string(&shared::RoomDef {
            limit,
            history: 0,
            history_age: 0,
            private: false,
            allowed: Vec::new(),
            key_hash: None,
            moderation: Default::default(),
        })
        .unwrap()
    };
    let record = |name: &str, node: &str| {
        format!(
            r#"{{"name":"{name}","node":"{node}","addr":"192.0.2.1:5000","at":"2026-12-04T10:00:00Z"}}"#
        )
    };
    let hello = shared::command(&[b"HELLO", b"3", b"SETNAME", b"chatd-b"]);
    let beat = |node: &str, token: &str| {
        shared::eval(
            &shared::heartbeat_script(),
            &[node.as_bytes(), token.as_bytes(), b"3000"],
        )
    };
    let join = |room: &str, name: &str, node: &str| {
        shared::eval(
            &shared::join_script(),
            &[
                room.as_bytes(),
                comparison_key(name).as_bytes(),
                record(name, node).as_bytes(),
                node.as_bytes(),
            ],
        )
    };
    let leave = |room: &str, name: &str, node: &str| {
        shared::eval(
            &shared::leave_script(),
            &[
                room.as_bytes(),
                comparison_key(name).as_bytes(),
                node.as_bytes(),
                b"quit",
            ],
        )
    };

    let mut sub = connect();
    let mut a = connect();
    let mut b = connect();
    ask(&mut sub, &hello, &mut read_frame);
    ask(&mut a, &hello, &mut read_frame);
    save("hello.resp", &ask(&mut b, &hello, &mut read_frame));
    sub.write_all(&shared::command(&[b"SUBSCRIBE", shared::EVENTS.as_bytes()]))
        .unwrap();
    read_frame(&mut sub);
    sub.write_all(&shared::command(&[b"SUBSCRIBE", b"chatd:room:Teste"]))
        .unwrap();
    read_frame(&mut sub);

    save(
        "heartbeat-unseeded.resp",
        &ask(&mut b, &beat("b", "token-b"), &mut read_frame),
    );
    // Node a seeds Teste with Ana.
    ask(&mut a, &beat("a", "token-a"), &mut read_frame);
    let d2 = def(2);
    let ana = record("Ana", "a");
    let key = comparison_key("Ana");
    let sync: Vec<&[u8]> = vec![
        b"a",
        b"1",
        b"Teste",
        d2.as_bytes(),
        b"0",
        b"0",
        b"Teste",
        key.as_bytes(),
        ana.as_bytes(),
    ];
    ask(
        &mut a,
        &shared::eval(&shared::sync_script(), &sync),
        &mut read_frame,
    );
    read_frame(&mut sub); // the room
    read_frame(&mut sub); // Ana's join
    let nothing: Vec<&[u8]> = vec![b"b", b"0", b"0"];
    save(
        "sync-nothing-failed.resp",
        &ask(
            &mut b,
            &shared::eval(&shared::sync_script(), &nothing),
            &mut read_frame,
        ),
    );
    save(
        "snapshot.resp",
        &ask(
            &mut b,
            &shared::eval(shared::SNAPSHOT, &[]),
            &mut read_frame,
        ),
    );
    save(
        "heartbeat-seeded.resp",
        &ask(&mut b, &beat("b", "token-b"), &mut read_frame),
    );
    save(
        "heartbeat-taken.resp",
        &ask(&mut b, &beat("a", "another-token"), &mut read_frame),
    );
    save(
        "join-404.resp",
        &ask(&mut b, &join("Nada", "dani", "b"), &mut read_frame),
    );
    save(
        "join-taken.resp",
        &ask(&mut b, &join("Teste", "ana", "b"), &mut read_frame),
    );
    ask(&mut a, &join("Teste", "Caio", "a"), &mut read_frame);
    save("push-join-caio.resp", &read_frame(&mut sub));
    ask(&mut a, &leave("Teste", "Caio", "a"), &mut read_frame);
    save("push-leave-caio.resp", &read_frame(&mut sub));
    save(
        "join-ok.resp",
        &ask(&mut b, &join("Teste", "bia", "b"), &mut read_frame),
    );
    read_frame(&mut sub); // bia's join
    save(
        "join-full.resp",
        &ask(&mut b, &join("Teste", "caio", "b"), &mut read_frame),
    );
    save(
        "room-exists.resp",
        &ask(
            &mut b,
            &shared::eval(shared::ROOM_PUT, &[b"Teste", def(5).as_bytes(), b"1"]),
            &mut read_frame,
        ),
    );
    let say = |name: &str| {
        let m = format!(r#"{{"name":"{name}","node":"a","text":"oi"}}"#);
        shared::command(&[b"PUBLISH", b"chatd:room:Teste", m.as_bytes()])
    };
    ask(&mut a, &say("Ana"), &mut read_frame);
    save("push-message-ana.resp", &read_frame(&mut sub));
    ask(&mut a, &say("Zeca"), &mut read_frame);
    save("push-message-stranger.resp", &read_frame(&mut sub));
    let hold = shared::hold_event("Teste", "a", true);
    ask(
        &mut a,
        &shared::command(&[b"PUBLISH", shared::EVENTS.as_bytes(), &hold]),
        &mut read_frame,
    );
    save("push-hold.resp", &read_frame(&mut sub));
    let kick = shared::eval(
        &shared::kick_script(),
        &[b"Teste", comparison_key("bia").as_bytes()],
    );
    ask(&mut a, &kick, &mut read_frame);
    save("push-kick-bia.resp", &read_frame(&mut sub));
    ask(
        &mut a,
        &shared::eval(&shared::room_del_script(), &[b"Teste"]),
        &mut read_frame,
    );
    save("push-close.resp", &read_frame(&mut sub));
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn an_irc_nick_is_claimed_freed_and_reached_through_its_channel() {
    use crate::core::cluster::{DirectMessage, NickVerdict};
    let mut n = Node::synced();
    n.cluster.claim_nick(7, "Yan", None);
    let (commands, purposes) = n.sent();
    assert_eq!(
        words(&commands[0])[..7],
        ["EVAL", "NICK", "0", "yan", "Yan", "b", ""]
    );
    assert_eq!(purposes, [Purpose::Nick(7)]);
    // Taken: the nick's channel is subscribed.
    n.reply(Purpose::Nick(7), b"*1\r\n$2\r\nok\r\n");
    assert!(
        matches!(&n.out()[..], [ClusterOut::NickVerdict { id: 7, nick, verdict: NickVerdict::Taken }] if nick == "Yan")
    );
    assert_eq!(words(&n.sent().0[0]), ["SUBSCRIBE", "chatd:nick:yan"]);
    // Held elsewhere: the holder's spelling comes back.
    n.cluster.claim_nick(8, "bia", None);
    n.sent();
    n.reply(Purpose::Nick(8), b"*2\r\n$5\r\ntaken\r\n$3\r\nBia\r\n");
    assert!(
        matches!(&n.out()[..], [ClusterOut::NickVerdict { id: 8, verdict: NickVerdict::HeldBy(h), .. }] if h == "Bia")
    );
    // A direct message goes to the nick's channel; nobody there is a 401.
    let msg = DirectMessage {
        name: "Yan".into(),
        node: String::new(),
        to: "caio".into(),
        command: "PRIVMSG".into(),
        text: "oi".into(),
    };
    n.cluster.direct(7, msg);
    let (commands, purposes) = n.sent();
    let publish = words(&commands[0]);
    assert_eq!(publish[..2], ["PUBLISH", "chatd:nick:caio"]);
    assert!(publish[2].contains(r#""node":"b""#), "{publish:?}");
    assert_eq!(purposes, [Purpose::Direct(7, "caio".into())]);
    n.reply(Purpose::Direct(7, "caio".into()), b":0\r\n");
    assert!(matches!(&n.out()[..], [ClusterOut::NoSuchNick { id: 7, target }] if target == "caio"));
    // A message on a nick channel for another nick is a forgery: dropped.
    let forged = br#"{"name":"Zeca","node":"a","to":"bia","command":"PRIVMSG","text":"x"}"#;
    let push = |channel: &str, payload: &[u8]| {
        let mut f = format!(
            ">3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n",
            channel.len(),
            payload.len()
        )
        .into_bytes();
        f.extend_from_slice(payload);
        f.extend_from_slice(b"\r\n");
        f
    };
    n.push(&push("chatd:nick:yan", forged));
    assert!(n.out().is_empty());
    assert_eq!(n.sh.counters.cluster_dropped, 1);
    let real = br#"{"name":"Zeca","node":"a","to":"YAN","command":"PRIVMSG","text":"oi"}"#;
    n.push(&push("chatd:nick:yan", real));
    assert!(matches!(&n.out()[..], [ClusterOut::Direct(m)] if m.name == "Zeca" && m.text == "oi"));
    // Quit: unsubscribed and freed.
    n.cluster.free_nick("Yan");
    let (commands, _) = n.sent();
    assert_eq!(words(&commands[0]), ["UNSUBSCRIBE", "chatd:nick:yan"]);
    assert_eq!(
        words(&commands[1])[..5],
        ["EVAL", "NICK_FREE", "0", "yan", "b"]
    );
    // While Redis is away, a claim cannot be decided.
    n.link(LinkEvent::Lost {
        why: "gone".into(),
        unanswered: Vec::new(),
    });
    n.out();
    n.cluster.claim_nick(9, "zeca", None);
    assert!(matches!(
        &n.out()[..],
        [ClusterOut::NickVerdict {
            id: 9,
            verdict: NickVerdict::Unavailable,
            ..
        }]
    ));
}
