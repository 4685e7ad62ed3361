//! Cluster mode: three chatd nodes sharing rooms through a real
//! redis-server (started here on a free loopback port, in a temporary
//! directory, without persistence).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Client, Daemon, TempDir, eventually, join_with, until};

/// A redis-server of our own. Killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    /// More arguments for redis-server (an ACL, say).
    extra: Vec<String>,
    /// Credentials for `cli`: (user, password).
    login: Option<(String, String)>,
    /// TLS only (certificate, key, CA files): the port is a TLS port.
    tls: Option<[PathBuf; 3]>,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(&[], None)
    }

    /// With an ACL: the default user off, and `chatd` limited to chatd's
    /// keys and channels (the line docs/SCALING.md gives).
    fn start_with_acl(password: &str) -> Redis {
        let pw = format!(">{password}");
        Redis::start_with(
            &[
                "--user",
                "default",
                "off",
                "--user",
                "chatd",
                "on",
                &pw,
                "~chatd:*",
                "&chatd:*",
                "+@all",
                "-@dangerous",
            ],
            None,
        )
    }

    /// Speaking TLS only, with a certificate from `pki` for the loopback.
    fn start_tls(pki: &crate::tls::Pki) -> Redis {
        let (cert, key) = pki.server("redis");
        let mut r = Redis::start_with(&[], None);
        r.kill();
        r.tls = Some([cert, key, pki.ca()]);
        r.spawn();
        r
    }

    fn start_with(extra: &[&str], login: Option<(String, String)>) -> Redis {
        // A free port: bound by us for a moment, then given to Redis
        // (`--port 0` would disable TCP).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            child: None,
            port,
            dir: TempDir::new("redis"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            login,
            tls: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("redis-server is installed (scripts/test installs it)");
        let mut cmd = Command::new(bin);
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some([cert, key, ca]) => cmd
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let up = eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(up, "redis-server did not start listening");
    }

    /// Stops Redis (its data is lost: no persistence).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs redis-cli against this Redis (as anyone with access could);
    /// its output.
    fn cli(&self, args: &[&str]) -> String {
        self.cli_with_last(args, None)
    }

    /// The same, with the last argument given on stdin (`redis-cli -x`),
    /// for one larger than exec(2) takes.
    fn cli_with_last(&self, args: &[&str], last: Option<&str>) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string(), "--no-auth-warning"]);
        if let Some((user, pw)) = &self.login {
            cmd.args(["--user", user, "--pass", pw]);
        }
        let out = match last {
            Some(input) => {
                cmd.arg("-x").args(args);
                crate::support::with_stdin(&mut cmd, input)
            }
            None => cmd
                .args(args)
                .output()
                .expect("redis-cli comes with redis-server"),
        };
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn node(redis: &Redis, id: &str) -> Daemon {
    node_with(redis, id, &[])
}

fn node_with(redis: &Redis, id: &str, extra: &[&str]) -> Daemon {
    let url = redis.url();
    let mut args = vec!["--cluster", &url, "--node-id", id];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(&args);
    d.wait_log("cluster: in sync", Duration::from_secs(10));
    d
}

fn nodes(redis: &Redis) -> (Daemon, Daemon, Daemon) {
    (node(redis, "a"), node(redis, "b"), node(redis, "c"))
}

fn ctl_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.ctl(args);
    assert!(
        out.status.success(),
        "chatctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads events until one matches; panics (showing what came) if none
/// does in time.
fn wait_for(c: &mut Client, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < end {
        if let Some(ev) = c.event_within(Duration::from_millis(200)) {
            if pred(&ev) {
                return ev;
            }
            seen.push(ev.to_string());
        }
    }
    panic!("no {what}; saw:\n{}", seen.join("\n"));
}

fn is(kind: &'static str, user: &'static str) -> impl Fn(&Value) -> bool {
    move |ev| ev["type"] == kind && ev["username"] == user
}

fn message(user: &'static str, text: &'static str) -> impl Fn(&Value) -> bool {
    move |ev| ev["type"] == "message" && ev["username"] == user && ev["message"] == text
}

/// A join that succeeds once the room has reached the node (a room
/// created on another node takes a moment).
fn joined_soon(d: &Daemon, user: &str, room: &str) -> Client {
    let mut c = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            c = Some(d.join(user, room));
            c.as_mut().unwrap().event()["type"] == "join"
        }),
        "{user} could not join {room}"
    );
    c.unwrap()
}

/// `chatctl participants`'s rows: (name, node).
fn participants(d: &Daemon, room: &str) -> Vec<(String, String)> {
    let out = ctl_ok(d, &["--json", "participants", room]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["username"].as_str().unwrap().to_string(),
                p["node"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn three_nodes_share_rooms_members_messages_kicks_and_closings() {
    let redis = Redis::start();
    let (a, b, c) = nodes(&redis);
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "10"]);
    for d in [&b, &c] {
        assert!(
            eventually(Duration::from_secs(5), || ctl_ok(d, &["list"])
                .contains("Teste")),
            "room not mirrored"
        );
    }
    let mut ana = a.joined("Ana", "Teste");
    let mut bia = b.joined("Bia", "Teste");
    wait_for(&mut ana, "Bia's join on node a", is("join", "Bia"));
    let mut caio = c.joined("Caio", "Teste");
    wait_for(&mut ana, "Caio's join", is("join", "Caio"));
    wait_for(&mut bia, "Caio's join", is("join", "Caio"));

    // Every node lists every member, with its node.
    let expected: Vec<(String, String)> = [("Ana", "a"), ("Bia", "b"), ("Caio", "c")]
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect();
    for d in [&a, &b, &c] {
        assert_eq!(participants(d, "Teste"), expected);
    }
    assert!(ctl_ok(&b, &["participants", "Teste"]).contains("NODE"));

    // Messages cross nodes, each sender's in order.
    for i in 0..20 {
        ana.say(&format!("a{i}"));
    }
    caio.say("oi de c");
    for i in 0..20 {
        let ev = wait_for(&mut bia, "Ana's messages", |ev| ev["type"] == "message");
        if ev["username"] == "Caio" {
            // Another sender may come in between; Ana's order is what counts.
            let ev = wait_for(&mut bia, "Ana's next message", |ev| ev["username"] == "Ana");
            assert_eq!(ev["message"], format!("a{i}"));
        } else {
            assert_eq!(ev["message"], format!("a{i}"), "{ev}");
        }
    }
    wait_for(&mut ana, "Caio's message", message("Caio", "oi de c"));

    // Names are unique cluster-wide (409, look-alikes too).
    let mut dup = Client::connect(c.addr);
    dup.handshake("bia", "Teste");
    let ev = dup.event();
    assert_eq!(ev["type"], "error", "{ev}");
    assert_eq!(ev["message"], "409", "{ev}");
    assert!(ev["reason"].as_str().unwrap().contains("node 'b'"), "{ev}");

    // A kick from node c removes a member of node a.
    assert!(ctl_ok(&c, &["room", "kick", "Teste", "Ana"]).contains("removed"));
    wait_for(&mut ana, "the kick", |ev| ev["type"] == "kicked");
    assert!(ana.closed_within(Duration::from_secs(5)));
    wait_for(&mut bia, "Ana's leave", is("leave", "Ana"));
    wait_for(&mut caio, "Ana's leave", is("leave", "Ana"));

    // A member leaving on node b is seen leaving on c.
    drop(bia);
    wait_for(&mut caio, "Bia's leave", is("leave", "Bia"));
    assert!(eventually(Duration::from_secs(5), || participants(
        &a, "Teste"
    )
    .len()
        == 1));

    // Closing on node b closes the room everywhere.
    let mut bruno = b.joined("Bruno", "Teste");
    wait_for(&mut caio, "Bruno's join", is("join", "Bruno"));
    ctl_ok(&b, &["room", "close", "Teste"]);
    for cl in [&mut bruno, &mut caio] {
        wait_for(cl, "the closing", |ev| ev["type"] == "closed");
        assert!(cl.closed_within(Duration::from_secs(5)));
    }
    for d in [&a, &b, &c] {
        assert!(eventually(Duration::from_secs(5), || !ctl_ok(d, &["list"])
            .contains("Teste")));
    }
    let status = ctl_ok(&a, &["status"]);
    assert!(status.contains("up as node 'a'"), "{status}");
}

#[test]
fn a_limit_of_five_holds_across_three_nodes_joining_at_once() {
    let redis = Redis::start();
    let (a, b, c) = nodes(&redis);
    ctl_ok(&b, &["room", "create", "Cinco", "--limit", "5"]);
    for d in [&a, &c] {
        assert!(eventually(Duration::from_secs(5), || ctl_ok(d, &["list"])
            .contains("Cinco")));
    }
    // Connect 12 clients (4 per node) first, then send every handshake at
    // once: the nodes ask Redis concurrently.
    let mut clients: Vec<(String, Client)> = Vec::new();
    for (i, d) in [&a, &b, &c].iter().cycle().take(12).enumerate() {
        clients.push((format!("u{i}"), Client::connect(d.addr)));
    }
    for (name, cl) in &mut clients {
        cl.handshake(name, "Cinco");
    }
    let mut admitted = Vec::new();
    let mut refused = 0;
    for (name, cl) in &mut clients {
        let ev = cl.event();
        if ev["type"] == "join" && ev["username"] == name.as_str() {
            admitted.push(name.clone());
        } else {
            assert_eq!(ev["type"], "error", "{ev}");
            assert_eq!(ev["message"], "501", "{ev}");
            assert!(
                ev["reason"].as_str().unwrap().contains("is full (5 of 5)"),
                "{ev}"
            );
            refused += 1;
        }
    }
    assert_eq!(admitted.len(), 5, "admitted: {admitted:?}");
    assert_eq!(refused, 7);
    for d in [&a, &b, &c] {
        assert!(eventually(Duration::from_secs(5), || participants(
            d, "Cinco"
        )
        .len()
            == 5));
    }
}

#[test]
fn a_killed_node_members_leave_and_a_second_node_with_its_id_is_refused() {
    let redis = Redis::start();
    let (a, _b, mut c) = nodes(&redis);
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "10"]);
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&c, &["list"])
        .contains("Teste")));
    let mut ana = a.joined("Ana", "Teste");
    let _caio = c.joined("Caio", "Teste");
    wait_for(&mut ana, "Caio's join", is("join", "Caio"));

    // A second chatd calling itself "a" is refused while "a" lives.
    let mut twin = Daemon::start(&["--cluster", &redis.url(), "--node-id", "a"]);
    twin.wait_log("is held by another live chatd", Duration::from_secs(10));
    let mut x = Client::connect(twin.addr);
    x.handshake("Xico", "Teste");
    assert_eq!(x.event()["message"], "503");
    drop(twin);

    c.signal("KILL");
    c.wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    let ev = wait_for(&mut ana, "Caio's leave", is("leave", "Caio"));
    let took = killed.elapsed();
    // Heartbeat TTL 3 s, renewed every second by the survivors.
    assert!(took < Duration::from_secs(6), "took {took:?}: {ev}");
    assert_eq!(
        participants(&a, "Teste"),
        vec![("Ana".to_string(), "a".to_string())]
    );
}

#[test]
fn while_redis_is_away_local_members_talk_joins_get_503_and_all_resynchronises() {
    let mut redis = Redis::start();
    let (mut a, mut b, _c) = nodes(&redis);
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "10"]);
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&b, &["list"])
        .contains("Teste")));
    let mut ana = a.joined("Ana", "Teste");
    let mut alice = a.joined("Alice", "Teste");
    let mut bia = b.joined("Bia", "Teste");
    wait_for(&mut ana, "Bia's join", is("join", "Bia"));

    redis.kill();
    a.wait_log("joins get 503", Duration::from_secs(10));
    b.wait_log("joins get 503", Duration::from_secs(10));
    // Local members keep talking.
    ana.say("still here");
    wait_for(&mut alice, "a local message", message("Ana", "still here"));
    // Joins and room changes are refused, clearly.
    let mut late = Client::connect(b.addr);
    late.handshake("Late", "Teste");
    let ev = late.event();
    assert_eq!(ev["message"], "503", "{ev}");
    let out = a.ctl(&["room", "create", "Outra", "--limit", "3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    assert!(ctl_ok(&a, &["status"]).contains("down as node 'a'"));

    // Redis comes back empty: the nodes reconnect, seed the rooms and
    // their members again, and talk across nodes as before.
    redis.spawn();
    for d in [&a, &b] {
        let synced_twice = || {
            d.log_lines()
                .iter()
                .filter(|l| l.contains("cluster: in sync"))
                .count()
                >= 2
        };
        assert!(eventually(Duration::from_secs(15), synced_twice));
    }
    assert!(eventually(Duration::from_secs(10), || {
        participants(&a, "Teste").len() == 3 && participants(&b, "Teste").len() == 3
    }));
    ana.say("back");
    wait_for(
        &mut bia,
        "a message after the restart",
        message("Ana", "back"),
    );
    bia.say("oi");
    wait_for(&mut alice, "a message from node b", message("Bia", "oi"));
    let _late = b.joined("Late", "Teste");
    wait_for(&mut ana, "a join after the restart", is("join", "Late"));
}

/// A join with a password, and the first event back.
fn join_with_password(d: &Daemon, user: &str, room: &str, password: &str) -> Value {
    let mut c = Client::connect(d.addr);
    let hs = serde_json::json!({"username": user, "room": room, "password": password});
    c.send_frame(hs.to_string().as_bytes());
    c.event()
}

#[test]
fn accounts_and_private_rooms_are_shared_by_every_node() {
    let redis = Redis::start();
    let (a, b, c) = nodes(&redis);
    const PASSWORD: &str = "correct horse battery";
    let out = a.ctl_with_stdin(&["user", "add", "Yan"], &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctl_ok(&a, &["room", "create", "Sala", "--limit", "5"]);
    ctl_ok(
        &a,
        &["room", "create", "Secreta", "--limit", "5", "--private"],
    );
    ctl_ok(&a, &["room", "allow", "Secreta", "Yan"]);
    assert!(eventually(Duration::from_secs(5), || ctl_ok(
        &c,
        &["user", "list"]
    )
    .contains("Yan")));
    // The account registered on node a logs in on node c, and only with
    // its password.
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&c, &["list"])
        .contains("Secreta")));
    let ev = join_with_password(&c, "Yan", "Sala", "wrong password!!");
    assert_eq!(ev["message"], "401", "{ev}");
    let ev = join_with_password(&c, "Yan", "Secreta", PASSWORD);
    assert_eq!(ev["type"], "join", "{ev}");
    // The private room's allow-list holds on node b too.
    let mut outsider = Client::connect(b.addr);
    outsider.handshake("Zeca", "Secreta");
    assert_eq!(outsider.event()["message"], "403");
    // An account deleted on node b is gone on node a.
    let out = b.ctl(&["user", "del", "Yan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(eventually(Duration::from_secs(5), || !ctl_ok(
        &a,
        &["user", "list"]
    )
    .contains("Yan")));
}

#[test]
fn nodes_log_in_to_redis_as_an_acl_user_with_the_password_in_the_url_or_a_file() {
    let redis = Redis::start_with_acl("s3cret p@ss");
    let port = redis.port;
    // a: the password in the URL (percent-encoded); b: in a file (as
    // systemd's LoadCredential would hand it over).
    let mut a = Daemon::start(&[
        "--cluster",
        &format!("redis://chatd:s3cret%20p%40ss@127.0.0.1:{port}"),
        "--node-id",
        "a",
    ]);
    a.wait_log("cluster: in sync", Duration::from_secs(10));
    let dir = TempDir::new("redis-credential");
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "s3cret p@ss\n").unwrap();
    let mut b = Daemon::start(&[
        "--cluster",
        &format!("redis://chatd@127.0.0.1:{port}"),
        "--cluster-password-file",
        file.to_str().unwrap(),
        "--node-id",
        "b",
    ]);
    b.wait_log("cluster: in sync", Duration::from_secs(10));
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "5"]);
    let mut ana = joined_soon(&b, "Ana", "Teste");
    let mut bia = a.joined("Bia", "Teste");
    bia.say("oi");
    wait_for(&mut ana, "Bia's message", message("Bia", "oi"));
    // The password shows nowhere: not in the log, not in status.
    let status = ctl_ok(&a, &["status"]);
    assert!(status.contains("redis://chatd:***@"), "{status}");
    for d in [&a, &b] {
        let logs = ctl_ok(d, &["logs", "--lines", "1000"]);
        assert!(!logs.contains("s3cret"), "{logs}");
    }
    // A wrong password: the node says why and keeps retrying; joins 503.
    let mut c = Daemon::start(&[
        "--cluster",
        &format!("redis://chatd:wrong@127.0.0.1:{port}"),
        "--node-id",
        "c",
    ]);
    let line = c.wait_log("refused the login", Duration::from_secs(10));
    assert!(line.contains("WRONGPASS"), "{line}");
    assert!(!line.contains("wrong@"), "{line}");
    let mut cid = c.join("Cid", "Teste");
    assert_eq!(cid.event()["message"], "503");
}

#[test]
fn a_flushed_store_is_seeded_again_on_the_next_heartbeat_and_keeps_an_acknowledged_limit() {
    let redis = Redis::start();
    let (mut a, b) = (node(&redis, "a"), node(&redis, "b"));
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "5"]);
    let _ana = joined_soon(&b, "Ana", "Teste");
    let _bia = a.joined("Bia", "Teste");
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    // An admin change right after: acknowledged (then it must last) or
    // refused while the node re-seeds (then it is made again).
    if !a.ctl(&["room", "set-limit", "Teste", "7"]).status.success() {
        a.wait_log("cluster: in sync", Duration::from_secs(10));
        ctl_ok(&a, &["room", "set-limit", "Teste", "7"]);
    }
    a.wait_log("seeding it again", Duration::from_secs(5));
    // Joins work again within a heartbeat or two, on either node.
    let _cid = joined_soon(&b, "Cid", "Teste");
    let held = redis.cli(&["HGET", "chatd:rooms", "Teste"]);
    assert!(held.contains("\"limit\":7"), "{held}");
    assert!(eventually(Duration::from_secs(5), || {
        let mut p = participants(&b, "Teste");
        p.sort();
        p == [
            ("Ana".to_string(), "b".to_string()),
            ("Bia".to_string(), "a".to_string()),
            ("Cid".to_string(), "b".to_string()),
        ]
    }));
    let list = ctl_ok(&b, &["--json", "list"]);
    assert!(list.contains("\"limit\":7"), "{list}");
}

#[test]
fn what_comes_from_redis_is_checked_forgeries_are_dropped_and_counted() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "5"]);
    let mut ana = joined_soon(&a, "Ana", "Teste");
    let mut bia = b.joined("Bia", "Teste");
    wait_for(&mut ana, "Bia's join", is("join", "Bia"));
    let big = format!(
        r#"{{"name":"Ana","node":"a","text":"{}"}}"#,
        "x".repeat(200_000)
    );
    let forged = [
        r#"{"name":"Sistema","node":"a","text":"*** SALA ENCERRADA ***"}"#,
        r#"{"name":"Ana","node":"c","text":"not Ana's node"}"#,
        r#"{"name":"Eve","node":"a","text":"not a member"}"#,
        r#"{"name":"Ana","node":"a","text":"an unknown field","admin":true}"#,
        r#"{"name":"Ana","node":"a","text":7}"#,
    ];
    for payload in forged {
        let n = redis.cli(&["PUBLISH", "chatd:room:Teste", payload]);
        assert_eq!(n.trim(), "2", "both nodes subscribe");
    }
    let n = redis.cli_with_last(&["PUBLISH", "chatd:room:Teste"], Some(&big));
    assert_eq!(n.trim(), "2");
    let fake_join =
        r#"{"t":"join","room":"Teste","member":{"name":"Sistema","node":"z","addr":"x","at":"y"}}"#;
    redis.cli(&["PUBLISH", "chatd:events", fake_join]);
    // A server-wide ban list past chatd's bound, and a room whose
    // moderation is: dropped, the bans and the room as they were.
    let rule = r#"{"target":"x","by":"a","at":1}"#;
    let many = vec![rule; 101].join(",");
    let bans = format!(r#"{{"t":"bans","bans":[{many}]}}"#);
    redis.cli_with_last(&["PUBLISH", "chatd:events"], Some(&bans));
    let room = format!(
        r#"{{"t":"room","room":"Teste","def":{{"limit":5,"moderation":{{"bans":[{many}]}}}}}}"#
    );
    redis.cli_with_last(&["PUBLISH", "chatd:events"], Some(&room));
    // Redis hands pushes over in the order published: once Ana's real
    // message is through, every forgery before it was looked at.
    ana.say("real");
    let first = wait_for(&mut bia, "a message", |ev| ev["type"] == "message");
    assert_eq!(
        (first["username"].as_str(), first["message"].as_str()),
        (Some("Ana"), Some("real")),
        "{first}"
    );
    let stats = b.admin().request(serde_json::json!({"cmd": "stats"}));
    assert_eq!(stats["stats"]["cluster_dropped"], 9, "{stats}");
    assert!(ctl_ok(&b, &["bans"]).contains("no server-wide bans"));
    assert!(!ctl_ok(&b, &["room", "bans", "Teste"]).contains("banned"));
    let mut p = participants(&b, "Teste");
    p.sort();
    assert_eq!(
        p,
        [
            ("Ana".to_string(), "a".to_string()),
            ("Bia".to_string(), "b".to_string())
        ]
    );
    let logs = ctl_ok(&b, &["logs", "--lines", "1000"]);
    assert!(logs.contains("cluster: dropped"), "{logs}");
}

/// Reads `n` messages, pausing `pause` after every 100 (a reader that
/// keeps reading, at its own pace); how many arrived before the end.
fn read_paced(mut c: Client, n: usize, pause: Duration) -> usize {
    use std::os::fd::AsFd;
    nix::sys::socket::setsockopt(&c.stream.as_fd(), nix::sys::socket::sockopt::RcvBuf, &65536)
        .unwrap();
    let mut got = 0;
    while got < n {
        match c.event_within(Duration::from_secs(10)) {
            Some(ev) if ev["type"] == "message" => got += 1,
            Some(_) => {}
            None => break, // dropped (EOF) or nothing more
        }
        if got % 100 == 0 {
            std::thread::sleep(pause);
        }
    }
    got
}

#[test]
fn a_reader_on_another_node_loses_nothing_to_a_flooding_sender() {
    let redis = Redis::start();
    // Bia is slower than the sender, so she holds the room back nearly
    // all the time: a stall budget longer than any run keeps the test
    // about losing messages, not about --write-timeout (which would drop
    // her, as documented, after that long in all). The default --sendq:
    // what is in flight while a hold travels waits in node b's inbox.
    let slow_ok = ["--write-timeout", "300", "--flood-rate", "0"];
    let (a, b) = (
        node_with(&redis, "a", &slow_ok),
        node_with(&redis, "b", &slow_ok),
    );
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "5"]);
    let reader_b = joined_soon(&b, "Bia", "Teste");
    let mut reader_a = a.joined("Ana", "Teste");
    let mut sender = a.joined("Sil", "Teste");
    wait_for(&mut reader_a, "Sil's join", is("join", "Sil"));
    const N: usize = 20_000;
    // Bia, on the other node, reads at half Ana's pace.
    let ta = std::thread::spawn(move || read_paced(reader_a, N, Duration::from_millis(5)));
    let tb = std::thread::spawn(move || read_paced(reader_b, N, Duration::from_millis(10)));
    let line = "x".repeat(1000);
    let ts = std::thread::spawn(move || {
        for _ in 0..N {
            sender.say(&line);
        }
        sender
    });
    let (got_a, got_b) = (ta.join().unwrap(), tb.join().unwrap());
    let _sender = ts.join().unwrap();
    assert_eq!(
        (got_a, got_b),
        (N, N),
        "messages read on node a and node b; node b's log:\n{}",
        b.log_lines().join("\n")
    );
    let stats = b.admin().request(serde_json::json!({"cmd": "stats"}));
    assert_eq!(stats["stats"]["slow_consumer_drops"], 0, "{stats}");
    assert_eq!(stats["stats"]["cluster_inbox_overflows"], 0, "{stats}");
}

#[test]
fn nodes_reach_redis_over_tls_verifying_its_certificate() {
    let pki = crate::tls::Pki::new();
    let redis = Redis::start_tls(&pki);
    let url = format!("rediss://localhost:{}", redis.port);
    let tls_node = |ca: &std::path::Path, id: &str| {
        Daemon::start(&[
            "--cluster",
            &url,
            "--cluster-ca",
            ca.to_str().unwrap(),
            "--node-id",
            id,
        ])
    };
    let start = |id: &str| {
        let mut d = tls_node(&pki.ca(), id);
        d.wait_log("cluster: in sync", Duration::from_secs(10));
        d
    };
    let (a, b) = (start("a"), start("b"));
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "5"]);
    let mut ana = joined_soon(&b, "Ana", "Teste");
    let mut bia = a.joined("Bia", "Teste");
    bia.say("oi");
    wait_for(&mut ana, "Bia's message", message("Bia", "oi"));
    // Another CA does not vouch for Redis: the node says so, never syncs.
    let mut c = tls_node(&crate::tls::Pki::new().ca(), "c");
    let line = c.wait_log("certificate", Duration::from_secs(10));
    assert!(line.contains("not signed by a trusted CA"), "{line}");
}

/// A cluster node with its IRC door open too; the door's address.
fn irc_node(redis: &Redis, id: &str) -> (Daemon, std::net::SocketAddr) {
    let mut d = node_with(redis, id, &["--irc-listen", "127.0.0.1:0"]);
    let line = d.wait_log("listening for IRC on ", Duration::from_secs(5));
    let addr = line.rsplit("listening for IRC on ").next().unwrap().trim();
    (d, addr.parse().unwrap())
}

/// Whether `nick` registers at the IRC door `addr` (else it got 433).
fn registers(addr: std::net::SocketAddr, nick: &str) -> bool {
    let mut c = crate::irc::Irc::connect(addr);
    c.send(&format!("NICK {nick}"));
    c.send(&format!("USER {nick} 0 * :{nick}"));
    c.expect("an answer", |l| l.contains(" 376 ") || l.contains(" 433 "))
        .contains(" 376 ")
}

#[test]
fn irc_users_on_three_nodes_are_people_of_one_cluster() {
    use crate::irc::Irc;
    let redis = Redis::start();
    let (a, a_irc) = irc_node(&redis, "a");
    let (b, b_irc) = irc_node(&redis, "b");
    let (c, c_irc) = irc_node(&redis, "c");
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "3"]);

    // A nick is one person cluster-wide, whatever the protocol.
    let mut yan = Irc::register(a_irc, "yan");
    let mut twin = Irc::connect(b_irc);
    twin.send("NICK Yan");
    twin.send("USER twin 0 * :twin");
    twin.expect("433 from node b for node a's nick", |l| {
        l.contains(" 433 ") && l.contains("Yan")
    });
    twin.send("NICK bia");
    twin.expect("bia registered on b", |l| l.contains(" 376 "));
    let mut bia = twin;
    let mut look_alike = c.join("Y\u{430}n", "Teste"); // Cyrillic а
    let ev = look_alike.event();
    assert_eq!(
        (ev["type"].as_str(), ev["message"].as_str()),
        (Some("error"), Some("409")),
        "{ev}"
    );

    // Rooms across nodes: IRC on a and b, the prototype's protocol on c.
    yan.send("JOIN #Teste");
    yan.expect("yan's NAMES", |l| l.contains(" 366 "));
    bia.send("JOIN #Teste");
    bia.expect("bia's NAMES", |l| l.contains(" 366 "));
    yan.expect("bia's JOIN, seen on a", |l| {
        l.starts_with(":bia!") && l.contains("JOIN")
    });
    let mut ana = joined_soon(&c, "Ana", "Teste");
    yan.expect("Ana's JOIN from c", |l| {
        l.starts_with(":Ana!") && l.contains("JOIN")
    });
    bia.expect("Ana's JOIN from c", |l| {
        l.starts_with(":Ana!") && l.contains("JOIN")
    });
    // The limit (3) holds across nodes: 471 on IRC.
    let mut late = Irc::register(c_irc, "caio");
    late.send("JOIN #Teste");
    late.expect("471: full across the cluster", |l| l.contains(" 471 "));

    yan.send("PRIVMSG #Teste :oi de a");
    bia.expect("yan's message on b", |l| {
        l.starts_with(":yan!") && l.ends_with("PRIVMSG #Teste :oi de a")
    });
    wait_for(&mut ana, "yan's message on c", message("yan", "oi de a"));
    ana.say("oi de c");
    yan.expect("Ana's message on a", |l| {
        l.ends_with("PRIVMSG #Teste :oi de c")
    });
    bia.expect("Ana's message on b", |l| {
        l.ends_with("PRIVMSG #Teste :oi de c")
    });

    // Direct messages reach a nick on another node; nobody is a 401.
    late.send("PRIVMSG yan :particular");
    yan.expect("caio's direct message from c", |l| {
        l.starts_with(":caio!") && l.contains(" PRIVMSG yan ") && l.ends_with("particular")
    });
    late.send("PRIVMSG ninguem :alo");
    late.expect("401 for nobody", |l| {
        l.contains(" 401 ") && l.contains("ninguem")
    });

    // In a room, a nick stays (the other nodes know members by name);
    // outside, it changes, and the old one is free cluster-wide.
    yan.send("NICK yan2");
    yan.expect("447 in a room", |l| l.contains(" 447 "));
    late.send("NICK caio2");
    late.expect("caio is caio2", |l| {
        l.starts_with(":caio!") && l.contains("NICK")
    });
    let mut caio = Irc::register(a_irc, "caio");

    // A PART and a QUIT reach the other nodes; the nick is free again.
    bia.send("PART #Teste :tchau");
    yan.expect("bia's PART", |l| {
        l.starts_with(":bia!") && l.contains("PART #Teste")
    });
    wait_for(&mut ana, "bia's leave", is("leave", "bia"));
    bia.send("QUIT :fim");
    assert!(bia.closed_within(Duration::from_secs(5)));
    assert!(
        eventually(Duration::from_secs(5), || registers(c_irc, "bia")),
        "bia's nick was not freed"
    );

    // A node that dies (kill -9) lets its nicks go when its heartbeat
    // lapses.
    drop(b);
    caio.send("PRIVMSG #Teste :still here");
    drop(a);
    assert!(
        eventually(Duration::from_secs(15), || registers(c_irc, "yan")),
        "node a's nick 'yan' was not reaped"
    );
    wait_for(&mut ana, "yan's leave when node a died", is("leave", "yan"));
    drop(c);
}

#[test]
fn an_irc_member_is_kicked_by_another_nodes_admin_and_its_nick_survives_a_flushed_store() {
    use crate::irc::Irc;
    let redis = Redis::start();
    let (a, a_irc) = irc_node(&redis, "a");
    let (b, b_irc) = irc_node(&redis, "b");
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "5"]);
    ctl_ok(&a, &["room", "create", "Outra", "--limit", "5"]);
    let mut yan = Irc::register(a_irc, "yan");
    assert!(eventually(Duration::from_secs(5), || {
        yan.send("JOIN #Teste,#Outra");
        yan.expect("NAMES of #Outra, or 403", |l| {
            l.contains(" 366 yan #Outra") || l.contains(" 403 ")
        })
        .contains(" 366 ")
    }));
    // An admin on node b kicks yan from Teste: a KICK, and yan stays in
    // Outra; closing Outra on b is a KICK too.
    ctl_ok(&b, &["room", "kick", "Teste", "yan"]);
    yan.expect("the KICK from Teste", |l| l.contains("KICK #Teste yan"));
    ctl_ok(&b, &["room", "close", "Outra"]);
    yan.expect("the KICK from the closed Outra", |l| {
        l.contains("KICK #Outra yan")
    });
    yan.send("PING :still");
    yan.expect("yan is still connected", |l| {
        l.contains("PONG") && l.contains("still")
    });

    // The store is flushed: node a claims yan's nick again, so node b
    // still refuses it once the cluster is re-seeded.
    redis.cli(&["FLUSHALL"]);
    let mut a = a;
    a.wait_log("seeding it again", Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(10), || {
        redis
            .cli(&["HGET", "chatd:people", "yan"])
            .contains("\"nick\":\"a\"")
    }));
    let mut twin = Irc::connect(b_irc);
    twin.send("NICK YAN");
    twin.send("USER twin 0 * :twin");
    twin.expect("433 for the re-claimed nick", |l| l.contains(" 433 "));
    drop(b);
}

/// A node's kept messages of a room, from `chatctl room history --json`:
/// (msgid, ts, who, text), joins and leaves left out (each node keeps
/// those as it saw them).
fn kept_messages(d: &Daemon, room: &str) -> Vec<(String, String, String, String)> {
    let out = ctl_ok(d, &["--json", "room", "history", room, "-n", "1000"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("msgid"), s("ts"), s("username"), s("message"))
        })
        .collect()
}

fn texts(kept: &[(String, String, String, String)]) -> Vec<&str> {
    kept.iter().map(|k| k.3.as_str()).collect()
}

#[test]
fn every_node_keeps_the_same_history_and_catches_up_after_being_away() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    ctl_ok(
        &a,
        &[
            "room",
            "create",
            "Teste",
            "--limit",
            "10",
            "--history",
            "50",
        ],
    );
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&b, &["list"])
        .contains("Teste")));
    // Nobody is in the room on b, and b keeps what is said on a anyway,
    // under the same msgids and times.
    let mut ana = a.joined("Ana", "Teste");
    ana.say("um");
    ana.say("dois");
    assert!(
        eventually(Duration::from_secs(5), || texts(&kept_messages(
            &b, "Teste"
        )) == ["um", "dois"]),
        "b kept {:?}",
        kept_messages(&b, "Teste")
    );
    assert_eq!(kept_messages(&a, "Teste"), kept_messages(&b, "Teste"));

    // b goes away; what is said meanwhile reaches it from the room's log
    // in Redis once it is back.
    b.signal("TERM");
    let dir = b.into_dir();
    ana.say("três, com b fora");
    let url = redis.url();
    let mut b = Daemon::start_in(dir, &["--cluster", &url, "--node-id", "b"]);
    b.wait_log("cluster: in sync", Duration::from_secs(10));
    b.wait_log("kept from the cluster's log", Duration::from_secs(5));
    assert_eq!(
        texts(&kept_messages(&b, "Teste")),
        ["um", "dois", "três, com b fora"]
    );
    assert_eq!(kept_messages(&a, "Teste"), kept_messages(&b, "Teste"));
    // A joiner on b who asks for history gets it too.
    let mut bia = Client::connect(b.addr);
    let hs = serde_json::json!({"username": "Bia", "room": "Teste", "features": ["history"]});
    bia.send_frame(hs.to_string().as_bytes());
    let replayed: Vec<String> = std::iter::from_fn(|| {
        let ev = bia.event();
        (ev["history"] == true).then(|| ev["message"].as_str().unwrap_or("").to_string())
    })
    .filter(|m| !m.is_empty())
    .collect();
    assert!(
        replayed.contains(&"três, com b fora".to_string()),
        "{replayed:?}"
    );

    // A purge on one node purges every node, and the log: a node that
    // comes back later does not bring the messages back.
    let out = ctl_ok(&b, &["room", "purge", "Teste"]);
    assert!(out.contains("removed"), "{out}");
    assert!(
        eventually(Duration::from_secs(5), || kept_messages(&a, "Teste")
            .is_empty()),
        "a kept {:?}",
        kept_messages(&a, "Teste")
    );
    assert_eq!(redis.cli(&["XLEN", "chatd:log:Teste"]).trim(), "0");
    // Closing the room drops its log.
    ana.say("depois da limpeza");
    assert!(eventually(Duration::from_secs(5), || redis
        .cli(&["XLEN", "chatd:log:Teste"])
        .trim()
        == "1"));
    ctl_ok(&a, &["room", "close", "Teste"]);
    assert!(eventually(Duration::from_secs(5), || redis
        .cli(&["EXISTS", "chatd:log:Teste"])
        .trim()
        == "0"));
}

#[test]
fn bans_mutes_and_topics_set_on_one_node_hold_on_every_node() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    ctl_ok(&a, &["room", "create", "Sala", "--limit", "10"]);
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&b, &["list"])
        .contains("Sala")));
    let mut yan = joined_soon(&b, "Yan", "Sala");
    let mut ana = joined_soon(&b, "Ana", "Sala");
    // An admin's kick on node a carries its reason to node b's member.
    let mut caio = joined_soon(&b, "Caio", "Sala");
    ctl_ok(&a, &["room", "kick", "Sala", "Caio", "--reason", "fora"]);
    assert_eq!(
        wait_for(&mut caio, "kicked", |e| e["type"] == "kicked")["reason"],
        "fora"
    );
    let left = wait_for(&mut ana, "Caio's leave", is("leave", "Caio"));
    assert_eq!(left["reason"], "fora");
    // A room ban set on node a removes the member node b holds, and
    // keeps the name out of both nodes.
    ctl_ok(&a, &["room", "ban", "Sala", "yan", "--reason", "spam"]);
    let kicked = wait_for(&mut yan, "kicked", |e| e["type"] == "kicked");
    assert_eq!(kicked["reason"], "banned from room 'Sala': spam");
    wait_for(&mut ana, "Yan's leave", is("leave", "Yan"));
    for d in [&a, &b] {
        let mut c = Client::connect(d.addr);
        c.handshake("Yan", "Sala");
        assert_eq!(c.event()["message"], "403");
    }
    // A mute and a topic set on node b hold on node a.
    ctl_ok(&b, &["room", "mute", "Sala", "ana"]);
    ctl_ok(&b, &["room", "topic", "Sala", "Pauta"]);
    assert!(eventually(Duration::from_secs(5), || {
        let shown = ctl_ok(&a, &["room", "bans", "Sala"]);
        shown.contains("muted: ana") && shown.contains("topic: Pauta")
    }));
    ana.say("oi");
    assert_eq!(
        wait_for(&mut ana, "403", |e| e["type"] == "error")["message"],
        "403"
    );
    // A server-wide ban set on node b holds on node a, and a node that
    // starts later finds it in the store.
    ctl_ok(&b, &["ban", "account:zeca", "--reason", "bot"]);
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&a, &["bans"])
        .contains("account:zeca (bot)")));
    let mut c = node(&redis, "c");
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&c, &["bans"])
        .contains("account:zeca")));
    c.signal("TERM");
    c.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_direct_message_reaches_a_chat_port_person_on_another_node() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    ctl_ok(&a, &["room", "create", "Teste", "--limit", "10"]);
    assert!(eventually(Duration::from_secs(5), || ctl_ok(&b, &["list"])
        .contains("Teste")));
    // Bob, on b, takes direct messages; Ana, on a, sends one.
    let mut bob = join_with(
        &b,
        "Bob",
        "Teste",
        serde_json::json!({"features": ["direct"]}),
    );
    until(&mut bob, "join");
    let mut ana = join_with(
        &a,
        "Ana",
        "Teste",
        serde_json::json!({"features": ["commands"]}),
    );
    until(&mut ana, "join");
    ana.say("/msg bob oi de a");
    let ev = wait_for(&mut bob, "the direct message", |e| e["type"] == "direct");
    assert_eq!(
        (ev["username"].as_str(), ev["message"].as_str()),
        (Some("Ana"), Some("oi de a"))
    );
    // Bob gone, no node listens for him: Ana is told, and stays.
    drop(bob);
    wait_for(&mut ana, "Bob's leave", is("leave", "Bob"));
    ana.say("/msg Bob ainda aí?");
    let ev = wait_for(&mut ana, "the refusal", |e| e["type"] == "error");
    assert_eq!(ev["message"], "404");
    assert_eq!(ev["reason"], "no one called 'Bob' is here");
    ana.say("tudo bem");
    assert!(!ana.closed_within(Duration::from_millis(200)));
}
