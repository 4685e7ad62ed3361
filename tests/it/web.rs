//! The web port: HTTP answers, WebSockets carrying both protocols (with
//! tungstenite as the client), and the web client in a real browser
//! (tests/web/browser.mjs: Debian's chromium driven by playwright-core,
//! which .ci/run installs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::support::{CHAT, Daemon, TempDir, free_port};

fn web_addr(d: &mut Daemon) -> SocketAddr {
    let line = d.wait_log("web port on http://", Duration::from_secs(5));
    let rest = line.rsplit("http://").next().unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

/// chatd with a web port on 127.0.0.1:0 and `extra` flags, and the
/// web port's address.
fn web_daemon(extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--web-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(&args);
    let addr = web_addr(&mut d);
    (d, addr)
}

/// One HTTP request, the whole answer (chatd closes after it).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
}

fn ws(
    addr: SocketAddr,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<WebSocket<TcpStream>, String> {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match tungstenite::client(req, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A `chatd` WebSocket upgrade request with the handshake `hello` right
/// behind it, as one client frame (masked with the all-zero key).
fn upgrade_with(addr: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: chatd\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(&[0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0]);
    req.extend_from_slice(hello);
    req
}

fn text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    }
}

fn event(ws: &mut WebSocket<TcpStream>) -> Value {
    serde_json::from_str(&text(ws)).unwrap()
}

#[test]
fn the_web_port_serves_the_client_health_metrics_and_words_for_refusals() {
    let (mut d, addr) = web_daemon(&["--room", "Teste:5", "--handshake-timeout", "2"]);
    // The metrics first, while the scrape is the only connection (an
    // answered request lingers a moment while it closes).
    let metrics = get(addr, "/metrics");
    assert!(metrics.contains("chatd_rooms 1\n"), "{metrics}");
    assert!(
        metrics.contains("chatd_connections{protocol=\"http\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let page = get(addr, "/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Security-Policy: default-src 'self'"));
    assert!(page.contains("<script src=\"/app.js\""));
    assert!(get(addr, "/app.js").contains("new WebSocket(url, \"chatd\")"));
    assert!(get(addr, "/healthz").ends_with("\r\n\r\nok\n"));
    let missing = get(addr, "/nope");
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(missing.ends_with("404 Not Found: nothing at /nope\n"));
    let post = http(addr, "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let garbage = http(addr, "\x16\x03\x01\x02\x00\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    let huge = http(
        addr,
        &format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)),
    );
    assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
    // Half a head, then silence: 408 after the handshake timeout.
    let slow = http(addr, "GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(slow.starts_with("HTTP/1.1 408 "), "{slow}");
    // Requests per address are bounded (60, then 10 a second); loopback
    // is exempt unless told otherwise.
    let (_strict, strict_addr) = web_daemon(&["--address-limit-exempt", "none"]);
    let answers: Vec<String> = (0..70).map(|_| get(strict_addr, "/healthz")).collect();
    assert!(answers[0].starts_with("HTTP/1.1 200 "));
    let last = answers.last().unwrap();
    assert!(
        last.starts_with("HTTP/1.1 429 ") && last.contains("too many requests"),
        "{last}"
    );
    // X-Forwarded-For names the client only when it comes from a proxy.
    let xff = "GET /nope HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n\r\n";
    assert!(http(addr, xff).starts_with("HTTP/1.1 404 "));
    let (mut proxied, proxied_addr) = web_daemon(&["--web-proxy", "127.0.0.1"]);
    assert!(http(proxied_addr, xff).starts_with("HTTP/1.1 404 "));
    proxied.wait_log("web: 404 to 203.0.113.9:0", Duration::from_secs(5));
    d.wait_log("web: 404 to 127.0.0.1:", Duration::from_secs(5));
    assert!(!d.log_lines().iter().any(|l| l.contains("203.0.113.9")));
    // A chatd with them turned off.
    let (_off, addr) = web_daemon(&["--no-metrics", "--no-healthz"]);
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 404 "));
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 404 "));
}

#[test]
fn websockets_carry_the_chat_protocol_and_irc_into_one_room() {
    let (d, addr) = web_daemon(&["--room", "Teste:5", "--handshake-timeout", "2"]);
    let mut ana = ws(addr, Some("chatd"), Some(&format!("http://{addr}"))).unwrap();
    ana.send(Message::Text(
        r#"{"username":"Ana","room":"Teste","features":["members"]}"#.into(),
    ))
    .unwrap();
    assert_eq!(event(&mut ana)["type"], "join");
    assert_eq!(event(&mut ana)["members"], serde_json::json!(["Ana"]));
    let mut tcp = d.joined("Carla", "Teste");
    assert_eq!(event(&mut ana)["username"], "Carla");

    let mut irc = ws(addr, Some("binary.ircv3.net, text.ircv3.net"), None).unwrap();
    for line in ["NICK bob", "USER bob 0 * :Bob"] {
        irc.send(Message::Binary(line.as_bytes().to_vec().into()))
            .unwrap();
    }
    while !text(&mut irc).contains(" 376 ") {}
    irc.send(Message::Binary(b"JOIN #Teste".to_vec().into()))
        .unwrap();
    assert_eq!(event(&mut ana)["username"], "bob");

    ana.send(Message::Text("Olá 👋 mundo".into())).unwrap();
    let said = loop {
        let e = tcp.event();
        if e["type"] == "message" {
            break e;
        }
    };
    assert_eq!(said["message"], "Olá 👋 mundo");
    loop {
        let line = text(&mut irc);
        if line.contains("PRIVMSG") {
            assert!(line.ends_with("PRIVMSG #Teste :Olá 👋 mundo"), "{line}");
            assert!(!line.ends_with("\r\n"));
            break;
        }
    }
    irc.send(Message::Binary(b"PRIVMSG #Teste :oi".to_vec().into()))
        .unwrap();
    let e = event(&mut ana);
    assert_eq!(
        (e["username"].as_str(), e["message"].as_str()),
        (Some("bob"), Some("oi"))
    );

    // A bad message is a 400 and the socket stays; ping frames are answered.
    ana.send(Message::Text("bad\u{7}".into())).unwrap();
    assert_eq!(event(&mut ana)["message"], "400");
    ana.send(Message::Ping(b"p".to_vec().into())).unwrap();
    loop {
        if let Message::Pong(p) = ana.read().unwrap() {
            assert_eq!(&p[..], b"p");
            break;
        }
    }
    // Closing the socket is leaving the room.
    ana.close(None).unwrap();
    let left = loop {
        let e = tcp.event();
        if e["type"] == "leave" {
            break e;
        }
    };
    assert_eq!(left["username"], "Ana");

    // A client that sends its handshake with the upgrade request, in one
    // write (masked with the all-zero key), is joined all the same.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&upgrade_with(
        addr,
        br#"{"username":"Dora","room":"Teste"}"#,
    ))
    .unwrap();
    let joined = loop {
        let e = tcp.event();
        if e["type"] == "join" {
            break e;
        }
    };
    assert_eq!(joined["username"], "Dora");
    drop(raw);

    // Refusals at the upgrade.
    let evil = ws(addr, Some("chatd"), Some("http://evil.example")).unwrap_err();
    assert!(evil.contains("403"), "{evil}");
    let other = ws(addr, Some("mqtt"), None).unwrap_err();
    assert!(other.contains("400"), "{other}");
    // A 404 on the chat protocol is the chat protocol's.
    let mut lost = ws(addr, Some("chatd"), None).unwrap();
    lost.send(Message::Text(
        r#"{"username":"Ana","room":"Nenhuma"}"#.into(),
    ))
    .unwrap();
    assert_eq!(event(&mut lost)["message"], "404");
    // An over-long message ends the socket with 1009.
    let mut big = ws(addr, Some("chatd"), None).unwrap();
    big.send(Message::Text("x".repeat(40_000).into())).unwrap();
    let closed = loop {
        match big.read() {
            Ok(Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(closed, Some(1009));
    // A WebSocket that never says who it is: 408 after the timeout.
    let mut mute = ws(addr, Some("chatd"), None).unwrap();
    assert_eq!(event(&mut mute)["message"], "408");
}

/// WebSocket members read their room from its ring, framed once: two
/// that stop reading while a burst fills their sockets (writes cut short
/// inside frames), then send a ping and read on, get every message whole,
/// in order, and the pong; a joiner's history comes before its join.
#[test]
fn slow_websocket_readers_get_every_frame_whole_and_in_order() {
    const N: usize = 20_000;
    let (d, addr) = web_daemon(&[
        "--room",
        "Teste:5",
        "--history",
        "10",
        "--sendq",
        "16777216",
        "--flood-rate",
        "0",
    ]);
    let mut early = d.joined("Zé", "Teste");
    early.say("antes de todos");
    drop(early);
    let mut ana = ws(addr, Some("chatd"), None).unwrap();
    ana.send(Message::Text(
        r#"{"username":"Ana","room":"Teste","features":["history"]}"#.into(),
    ))
    .unwrap();
    let first = event(&mut ana);
    assert_eq!(
        (first["type"].as_str(), first["history"].as_bool()),
        (Some("join"), Some(true)),
        "history first: {first}"
    );
    while event(&mut ana)["username"] != "Ana" {}
    let mut irc = ws(addr, Some("binary.ircv3.net"), None).unwrap();
    for line in ["NICK bob", "USER bob 0 * :Bob", "JOIN #Teste"] {
        irc.send(Message::Binary(line.as_bytes().to_vec().into()))
            .unwrap();
    }
    while !text(&mut irc).contains(" 366 ") {}

    // Lengths up to 400 bytes (an IRC line stays whole): frames with 1-
    // and 3-byte lengths.
    fn body(i: usize) -> String {
        format!("{i} {}", "x".repeat(i * 7 % 400))
    }
    let mut bia = d.joined("Bia", "Teste");
    let speaker = std::thread::spawn(move || {
        for i in 0..N {
            bia.say(&body(i));
        }
        bia
    });
    std::thread::sleep(Duration::from_millis(1500));
    // Both read at once: one that stops reading stops the room.
    let readers: Vec<_> = [(ana, "a"), (irc, "b")]
        .into_iter()
        .map(|(mut sock, ping)| std::thread::spawn(move || read_all(&mut sock, ping, N, body)))
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    speaker.join().unwrap();
}

/// A WebSocket that sends ping frames and never reads: chatd stops
/// reading it once its pongs fill the layer, so its memory stays put.
#[test]
fn a_peer_that_pings_and_never_reads_is_not_read_either() {
    let (d, addr) = web_daemon(&["--room", "Teste:5"]);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&upgrade_with(addr, br#"{"username":"Pin","room":"Teste"}"#))
        .unwrap();
    let before = d.rss_kib();
    // Masked (all-zero key) pings of 125 bytes, as fast as they go in.
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'p'; 125]);
    let batch = ping.repeat(512);
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sent = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        match s.write(&batch) {
            Ok(n) if n == batch.len() => sent += n,
            // Cut short or timed out: chatd stopped reading.
            _ => break,
        }
    }
    let grown = d.rss_kib().saturating_sub(before);
    assert!(sent < 64 << 20, "{sent} bytes taken: still read");
    assert!(
        grown < 16 * 1024,
        "grew {grown} KiB for {sent} bytes of pings"
    );
    // chatd itself goes on.
    let mut ana = d.joined("Ana", "Teste");
    ana.say("ainda aqui");
}

/// Pings, then reads `n` messages said as `body(0..n)` (either protocol)
/// and the pong.
fn read_all<S: Read + Write>(
    sock: &mut WebSocket<S>,
    ping: &str,
    n: usize,
    body: fn(usize) -> String,
) {
    sock.send(Message::Ping(ping.as_bytes().to_vec().into()))
        .unwrap();
    let mut next = 0;
    let mut ponged = false;
    while next < n || !ponged {
        let got = match sock.read().expect("a whole frame") {
            Message::Pong(p) => {
                assert_eq!(&p[..], ping.as_bytes());
                ponged = true;
                continue;
            }
            Message::Text(t) => serde_json::from_str::<Value>(&t).unwrap()["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            Message::Binary(b) => {
                let line = String::from_utf8(b.to_vec()).unwrap();
                assert!(!line.ends_with('\n'), "{line}");
                match line.split_once(" PRIVMSG #Teste :") {
                    Some((_, said)) => said.to_string(),
                    None => continue,
                }
            }
            _ => continue,
        };
        if got.is_empty() || got.contains("ENTROU") || got == "antes de todos" {
            continue;
        }
        assert_eq!(got, body(next), "message {next} whole and in order");
        next += 1;
    }
}

/// Two browser users and a `chat` user talk; refusals in words; both
/// pages reconnect after chatd restarts; screenshots at desktop and phone
/// width. Needs node, tests/web/node_modules and /usr/bin/chromium (.ci/run
/// installs them); elsewhere it says so and passes, unless
/// CHATD_REQUIRE_BROWSER is set (CI sets it).
#[test]
fn the_web_client_in_a_real_browser() {
    let web_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let ready = web_dir.join("node_modules/playwright-core").exists()
        && std::path::Path::new("/usr/bin/chromium").exists();
    if !ready {
        assert!(
            std::env::var_os("CHATD_REQUIRE_BROWSER").is_none(),
            "CHATD_REQUIRE_BROWSER: chromium or tests/web/node_modules missing"
        );
        eprintln!(
            "skipped: no chromium or playwright-core (cd tests/web && npm ci; apt-get install chromium)"
        );
        return;
    }
    let chat_port = free_port();
    let web_port = free_port();
    let listen = format!("127.0.0.1:{chat_port}");
    let web = format!("127.0.0.1:{web_port}");
    let flags = [
        "--listen",
        listen.as_str(),
        "--web-listen",
        web.as_str(),
        "--history",
        "50",
    ];
    let d = Daemon::start(&flags);
    for args in [
        &["room", "create", "Teste", "--limit", "5"][..],
        &["room", "create", "Cheia", "--limit", "1"],
        &["room", "topic", "Teste", "Pauta do dia"],
    ] {
        assert!(d.ctl(args).status.success());
    }
    let out = d.ctl_with_stdin(&["user", "add", "conta"], "uma senha longa o bastante\n");
    assert!(out.status.success(), "{out:?}");
    let _full = d.joined("Dono", "Cheia");
    let mut early = d.joined("Zé", "Teste");
    early.say("antes de todos");
    drop(early);

    let mut chat = Command::new(CHAT)
        .args(["--server", &listen, "--user", "Carla", "--room", "Teste"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut chat_in = chat.stdin.take().unwrap();
    let (tx, chat_lines) = channel();
    let chat_out = chat.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(chat_out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert!(
        chat_lines.recv_timeout(Duration::from_secs(5)).is_ok(),
        "chat joined"
    );

    let shots = TempDir::new("shots");
    let keep = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    let mut node = Command::new("node")
        .arg(web_dir.join("browser.mjs"))
        .env("WEB_URL", format!("http://{web}/"))
        .env("SHOT_DIR", shots.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node_in = node.stdin.take().unwrap();
    let node_out = BufReader::new(node.stdout.take().unwrap());
    let mut d = Some(d);
    let mut seen = Vec::new();
    for line in node_out.lines().map_while(Result::ok) {
        println!("browser: {line}");
        seen.push(line.clone());
        match line.as_str() {
            "SAY_CHAT" => {
                chat_in.write_all("oi do terminal\n".as_bytes()).unwrap();
                node_in.write_all(b"go\n").unwrap();
            }
            "RESTART" => {
                let old = d.take().unwrap();
                old.signal("TERM");
                let dir = old.into_dir();
                d = Some(Daemon::start_in(dir, &flags));
                node_in.write_all(b"go\n").unwrap();
            }
            _ => {}
        }
    }
    let status = node.wait().unwrap();
    // The screenshots outlive the test, for a person to look at.
    let _ = std::fs::create_dir_all(&keep);
    for name in [
        "desktop.png",
        "phone.png",
        "failure-ana.png",
        "failure-bia.png",
    ] {
        if std::fs::copy(shots.path().join(name), keep.join(name)).is_ok() {
            println!("screenshot: {}", keep.join(name).display());
        }
    }
    assert!(
        status.success(),
        "the browser test failed:\n{}",
        seen.join("\n")
    );
    assert_eq!(seen.last().map(String::as_str), Some("OK"));
    let heard: Vec<String> = chat_lines.try_iter().collect();
    let heard = heard.join("\n");
    assert!(heard.contains("Ana > Olá de Ana 👋"), "{heard}");
    assert!(heard.contains("Bia > مرحبا from Bia"), "{heard}");
    let _ = chat.kill();
    let _ = chat.wait();
}

#[test]
fn the_web_port_over_tls_serves_pages_and_websockets() {
    let pki = crate::tls::Pki::new();
    let (cert, key) = pki.server("web");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut d = Daemon::start(&[
        "--web-tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--room",
        "Teste:5",
        "--sendq",
        "16777216",
        "--flood-rate",
        "0",
    ]);
    let line = d.wait_log("web port on https://", Duration::from_secs(5));
    let rest = line.rsplit("https://").next().unwrap();
    let addr: SocketAddr = rest.split('/').next().unwrap().parse().unwrap();
    let tls = |addr: SocketAddr| {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(pki.client_config(), name).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    };
    let mut s = tls(addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = Vec::new();
    let _ = s.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.starts_with("HTTP/1.1 200 OK") && page.ends_with("\r\n\r\nok\n"),
        "{page}"
    );

    let mut req = format!("wss://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "chatd".parse().unwrap());
    let (mut ws, _) = tungstenite::client(req, tls(addr)).unwrap();
    ws.send(Message::Text(r#"{"username":"Ana","room":"Teste"}"#.into()))
        .unwrap();
    let mut read = || loop {
        if let Message::Text(t) = ws.read().unwrap() {
            return serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(read()["type"], "join");
    let mut tcp = d.joined("Bia", "Teste");
    tcp.say("oi");
    let e = loop {
        let e = read();
        if e["type"] == "message" {
            break e;
        }
    };
    assert_eq!(e["message"], "oi");

    // A burst while it does not read: over TLS too, the ring's frames
    // arrive whole and in order (rustls takes them a part at a time).
    const N: usize = 20_000;
    fn body(i: usize) -> String {
        format!("{i} {}", "y".repeat(i * 13 % 400))
    }
    let speaker = std::thread::spawn(move || {
        for i in 0..N {
            tcp.say(&body(i));
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    read_all(&mut ws, "t", N, body);
    speaker.join().unwrap();
}
