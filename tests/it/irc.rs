//! The IRC door (issue #24) through the real programs: IRC clients (raw
//! lines over TCP, and over TLS with rustls) beside the prototype's
//! protocol in the same rooms, chatctl's view of them, the room model's
//! mapping (+l, +i, close, kick), who may make rooms, liveness, and what
//! a hostile IRC client gets. irctest (scripts/irctest) covers the IRC
//! commands themselves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// One IRC connection, read line by line.
pub struct Irc {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every line read, for failure messages.
    seen: Vec<String>,
}

impl Irc {
    pub fn connect(addr: SocketAddr) -> Irc {
        Irc::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// Over a stream made elsewhere (from another loopback address, say).
    pub fn from_stream(stream: TcpStream) -> Irc {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Irc {
            stream,
            buf: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Connects, logs in to the account `nick` with PASS and registers;
    /// returns once the MOTD ended.
    pub fn login(addr: SocketAddr, nick: &str, password: &str) -> Irc {
        let mut c = Irc::connect(addr);
        c.send(&format!("PASS :{password}"));
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER {nick} 0 * :{nick} of the tests"));
        c.expect("the end of the MOTD", |l| l.contains(" 376 "));
        c
    }

    /// Connects and registers as `nick`; returns once the MOTD ended.
    pub fn register(addr: SocketAddr, nick: &str) -> Irc {
        let mut c = Irc::connect(addr);
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER {nick} 0 * :{nick} of the tests"));
        c.expect("the end of the MOTD", |l| l.contains(" 376 "));
        c
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next line within `timeout`, without its CR LF.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&raw).trim_end().to_string();
                self.seen.push(line.clone());
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads until a line matches; panics with what came instead.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(l) = self.line(Duration::from_millis(100))
                && pred(&l)
            {
                return l;
            }
        }
        panic!("no {what}; lines seen:\n{}", self.seen.join("\n"));
    }

    /// The socket, to reset or clone it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether the server closed the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        read_until_closed(&mut self.stream, &mut self.buf, timeout)
    }
}

/// chatd with its IRC door open on 127.0.0.1:0; the door's address.
pub fn irc_daemon(extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--irc-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(&args);
    let line = d.wait_log("listening for IRC on ", Duration::from_secs(5));
    let addr = line.rsplit("listening for IRC on ").next().unwrap().trim();
    let addr = addr.parse().unwrap();
    (d, addr)
}

fn events_until(c: &mut Client, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(ev) = c.event_within(Duration::from_millis(200))
            && pred(&ev)
        {
            return ev;
        }
    }
    panic!("the awaited event did not come");
}

#[test]
fn an_irc_client_and_the_prototypes_talk_in_one_room() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5"]);
    let mut yan = Irc::register(irc_addr, "yan");
    yan.send("JOIN #Teste");
    yan.expect("its own JOIN", |l| l.ends_with("JOIN #Teste"));
    yan.expect("the names", |l| {
        l.contains(" 353 yan = #Teste ") && l.ends_with("yan")
    });

    let mut ana = d.joined("Ana", "Teste");
    yan.expect("Ana's JOIN", |l| l == ":Ana!Ana@chat JOIN #Teste");

    ana.say("olá, IRC");
    yan.expect("Ana's message", |l| {
        l == ":Ana!Ana@chat PRIVMSG #Teste :olá, IRC"
    });

    yan.send("PRIVMSG #Teste :oi Ana \x02de\x02 weechat");
    let ev = events_until(&mut ana, |ev| ev["type"] == "message");
    assert_eq!(ev["username"], "yan");
    assert_eq!(ev["message"], "oi Ana de weechat", "formatting is removed");
    assert_eq!(ev["room"], "Teste");

    yan.send("PRIVMSG #Teste :\x01ACTION acena\x01");
    let ev = events_until(&mut ana, |ev| ev["type"] == "message");
    assert_eq!(ev["message"], "/me acena");
    ana.say("/me responde");
    yan.expect("an action", |l| {
        l == ":Ana!Ana@chat PRIVMSG #Teste :\u{1}ACTION responde\u{1}"
    });

    // chatctl sees both people, whatever their protocol.
    let out = d.ctl(&["participants", "Teste"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("yan") && text.contains("Ana"), "{text}");

    // A direct message to someone on the prototype's protocol: it cannot
    // show one, and the sender is told.
    yan.send("PRIVMSG Ana :só pra você");
    yan.expect("401 for the prototype's member", |l| {
        l.contains(" 401 yan Ana :") && l.contains("cannot receive direct messages")
    });
    // A direct message between IRC users.
    let mut bia = Irc::register(irc_addr, "bia");
    yan.send("PRIVMSG bia :oi bia");
    bia.expect("the direct message", |l| {
        l == ":yan!yan@irc PRIVMSG bia :oi bia"
    });

    // Parting: the prototype's members see the leave.
    yan.send("PART #Teste :tchau");
    yan.expect("its own PART", |l| l.contains("PART #Teste"));
    let ev = events_until(&mut ana, |ev| ev["type"] == "leave");
    assert_eq!(ev["username"], "yan");
    // Quitting from another room: QUIT once; the log has both.
    yan.send("JOIN #Teste");
    events_until(&mut ana, |ev| ev["type"] == "join");
    yan.send("QUIT :até logo");
    yan.expect("the closing ERROR", |l| {
        l.starts_with("ERROR :Closing Link: yan (Quit: até logo)")
    });
    let ev = events_until(&mut ana, |ev| ev["type"] == "leave");
    assert_eq!(ev["username"], "yan");
    let mut d = d;
    d.wait_log("irc: 'yan' registered from", Duration::from_secs(2));
    d.wait_log("join: 'yan' entered room 'Teste'", Duration::from_secs(2));
}

#[test]
fn a_name_is_one_person_across_protocols() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5", "--room", "Outra:5"]);
    let _yan = Irc::register(irc_addr, "yan");
    // The prototype keeps its 409, look-alikes included.
    for name in ["Yan", "YAN", "Yаn"] {
        let mut dup = d.join(name, "Teste");
        let ev = dup.event();
        assert_eq!(ev["type"], "error", "{name}: {ev}");
        assert_eq!(ev["message"], "409", "{name}: {ev}");
    }
    // And the other way round.
    let _ana = d.joined("Ana", "Teste");
    let mut other = Irc::connect(irc_addr);
    other.send("NICK ana");
    other.expect("433", |l| l.contains(" 433 * ana :"));
    // The prototype's one person in two rooms keeps working.
    let _ana2 = d.joined("Ana", "Outra");
    // The reserved name, and IRC's own rules, get 432.
    other.send("NICK Sistema");
    other.expect("432 for Sistema", |l| l.contains(" 432 * Sistema :"));
    other.send("NICK 9lives");
    other.expect("432 for a digit", |l| l.contains(" 432 * 9lives :"));
    // A nick change is seen by the prototype's members as a leave and a
    // join under the new name.
    let mut caio = Irc::register(irc_addr, "caio");
    caio.send("JOIN #Teste");
    caio.expect("its JOIN", |l| l.ends_with("JOIN #Teste"));
    let mut watcher = d.joined("Dora", "Teste");
    caio.send("NICK caio2");
    caio.expect("its NICK", |l| l == ":caio!caio@irc NICK caio2");
    let ev = events_until(&mut watcher, |ev| ev["type"] == "leave");
    assert_eq!(ev["username"], "caio");
    let ev = events_until(&mut watcher, |ev| ev["type"] == "join");
    assert_eq!(ev["username"], "caio2");
}

#[test]
fn the_room_model_maps_to_channel_modes() {
    let (d, irc_addr) = irc_daemon(&["--room", "Cheia:1", "--room", "Teste:5"]);
    let _first = d.joined("Ana", "Cheia");
    let mut yan = Irc::register(irc_addr, "yan");
    yan.send("JOIN #Cheia");
    yan.expect("471 for a full room", |l| l.contains(" 471 yan #Cheia :"));
    yan.send("MODE #Cheia");
    yan.expect("the limit as +l", |l| {
        l.contains(" 324 yan #Cheia +nt") && l.ends_with("l 1")
    });
    // A private room is +i: 473 without a place on its list.
    let out = d.ctl(&["room", "create", "Segredo", "--limit", "5", "--private"]);
    assert!(out.status.success(), "{out:?}");
    yan.send("JOIN #Segredo");
    yan.expect("473", |l| l.contains(" 473 yan #Segredo :"));
    yan.send("LIST");
    yan.expect("the end of LIST", |l| l.contains(" 323 "));
    assert!(
        !yan.seen
            .iter()
            .any(|l| l.contains(" 322 ") && l.contains("#Segredo")),
        "a private room is not listed: {:?}",
        yan.seen
    );
    // A room's key is +k: 475 with a wrong one, in with the right one.
    let out = d.ctl_with_stdin(
        &[
            "room",
            "create",
            "Chave",
            "--limit",
            "5",
            "--private",
            "--key",
        ],
        "chave-secreta\n",
    );
    assert!(out.status.success(), "{out:?}");
    yan.send("JOIN #Chave errada");
    yan.expect("475", |l| l.contains(" 475 yan #Chave :"));
    yan.send("JOIN #Chave chave-secreta");
    yan.expect("in with the key", |l| l.ends_with("JOIN #Chave"));

    // chatctl kick is a KICK, and the IRC user stays connected.
    yan.send("JOIN #Teste");
    yan.expect("its JOIN", |l| l.ends_with("JOIN #Teste"));
    let mut ana = d.joined("Bia", "Teste");
    let out = d.ctl(&["room", "kick", "Teste", "yan"]);
    assert!(out.status.success(), "{out:?}");
    yan.expect("the KICK", |l| l.contains(" KICK #Teste yan :"));
    let ev = events_until(&mut ana, |ev| ev["type"] == "leave");
    assert_eq!(ev["username"], "yan");
    yan.send("PING still-here");
    yan.expect("the PONG", |l| {
        l.contains("PONG") && l.ends_with("still-here")
    });
    // chatctl close parts everyone: KICK for IRC, `closed` for the prototype.
    yan.send("JOIN #Teste");
    yan.expect("its JOIN again", |l| l.ends_with("JOIN #Teste"));
    let out = d.ctl(&["room", "close", "Teste"]);
    assert!(out.status.success(), "{out:?}");
    yan.expect("the KICK of the close", |l| {
        l.contains(" KICK #Teste yan :the room was closed")
    });
    let ev = events_until(&mut ana, |ev| ev["type"] == "closed");
    assert_eq!(ev["room"], "Teste");
    yan.send("PING after-close");
    yan.expect("the PONG", |l| l.ends_with("after-close"));
}

#[test]
fn who_may_make_a_room_by_joining_it_is_the_operators_choice() {
    // admin (the default): nobody, on either protocol.
    let (d, irc_addr) = irc_daemon(&[]);
    let mut yan = Irc::register(irc_addr, "yan");
    yan.send("JOIN #nova");
    yan.expect("403", |l| l.contains(" 403 yan #nova :"));
    let mut c = d.join("Ana", "nova");
    assert_eq!(c.event()["message"], "404");
    drop(d);

    // anyone: the first member is its operator; the room is never saved
    // and is gone when empty.
    let (d, irc_addr) = irc_daemon(&["--room-creation", "anyone", "--room-limit", "2"]);
    let mut yan = Irc::register(irc_addr, "yan");
    yan.send("JOIN #nova");
    yan.expect("the creator is its operator", |l| {
        l.contains(" 353 yan = #nova ") && l.ends_with("@yan")
    });
    yan.send("MODE #nova");
    yan.expect("the default limit", |l| l.contains(" 324 yan #nova +ntl 2"));
    let _ana = d.joined("Ana", "nova");
    let out = d.ctl(&["list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nova"),
        "{out:?}"
    );
    let saved = std::fs::read_to_string(d.state_file()).unwrap_or_default();
    assert!(!saved.contains("nova"), "not saved: {saved}");
    // The prototype may make one too.
    let _bia = d.joined("Bia", "outra");
    drop(_bia);
    drop(_ana);
    yan.send("PART #nova");
    yan.expect("its PART", |l| l.contains("PART #nova"));
    assert!(
        eventually(Duration::from_secs(3), || {
            let out = d.ctl(&["list"]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            !text.contains("nova") && !text.contains("outra")
        }),
        "empty rooms made by joining are gone"
    );

    // accounts: logged-in users only.
    let (d, irc_addr) = irc_daemon(&["--room-creation", "accounts"]);
    let out = d.ctl_with_stdin(&["user", "add", "dono"], "senha-do-dono\n");
    assert!(out.status.success(), "{out:?}");
    let mut anon = Irc::register(irc_addr, "anon");
    anon.send("JOIN #sala");
    anon.expect("403 for the unregistered", |l| {
        l.contains(" 403 anon #sala :") && l.contains("logged-in")
    });
    let mut owner = Irc::login(irc_addr, "dono", "senha-do-dono");
    owner.send("JOIN #sala");
    owner.expect("its JOIN", |l| l.ends_with("JOIN #sala"));
}

#[test]
fn accounts_log_in_with_pass_or_sasl_and_a_wrong_password_is_refused() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5"]);
    let out = d.ctl_with_stdin(&["user", "add", "yan"], "a-good-password\n");
    assert!(out.status.success(), "{out:?}");
    // A registered nick without its password: 464 and closed.
    let mut thief = Irc::connect(irc_addr);
    thief.send("NICK yan");
    thief.send("USER x 0 * :x");
    thief.expect("464", |l| l.contains(" 464 "));
    assert!(thief.closed_within(Duration::from_secs(2)));
    // SASL PLAIN.
    let mut c = Irc::connect(irc_addr);
    c.send("CAP LS 302");
    c.expect("sasl offered", |l| l.contains("sasl=PLAIN"));
    c.send("CAP REQ :sasl");
    c.expect("ACK", |l| l.contains(" ACK ") && l.ends_with("sasl"));
    c.send("AUTHENTICATE PLAIN");
    c.expect("the go-ahead", |l| l == "AUTHENTICATE +");
    // base64("\0yan\0a-good-password")
    c.send("AUTHENTICATE AHlhbgBhLWdvb2QtcGFzc3dvcmQ=");
    c.expect("903", |l| l.contains(" 903 "));
    c.send("NICK yan");
    c.send("USER yan 0 * :Yan");
    c.send("CAP END");
    c.expect("the welcome", |l| l.contains(" 001 yan "));
    c.send("WHOIS yan");
    c.expect("330 logged in as", |l| l.contains(" 330 yan yan yan :"));
}

#[test]
fn a_silent_irc_client_is_pinged_then_dropped() {
    let (mut d, irc_addr) = irc_daemon(&["--irc-ping", "0.4"]);
    let mut c = Irc::register(irc_addr, "quieto");
    c.expect("a PING", |l| l.starts_with(":chatd PING"));
    c.expect("the ping timeout", |l| {
        l.starts_with("ERROR :Closing Link: quieto (Ping timeout")
    });
    assert!(c.closed_within(Duration::from_secs(3)));
    d.wait_log("Ping timeout", Duration::from_secs(2));
    // One that answers stays.
    let mut awake = Irc::register(irc_addr, "acordado");
    for _ in 0..3 {
        let ping = awake.expect("a PING", |l| l.starts_with(":chatd PING"));
        let token = ping
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_start_matches(':')
            .to_string();
        awake.send(&format!("PONG :{token}"));
    }
    awake.send("PING x");
    awake.expect("still there", |l| l.contains("PONG") && l.ends_with(" x"));
}

/// PING is a barrier: a client's PONG comes after every message that
/// reached chatd before its PING, whichever descriptor is read first
/// (select(2) reports readiness in descriptor order, not arrival order).
/// chatd is stopped while both arrive, so they are read in one pass.
#[test]
fn a_pong_comes_after_what_others_sent_before_the_ping() {
    for poller in ["select", "epoll"] {
        let (d, irc_addr) = irc_daemon(&["--poller", poller]);
        // `first` has the lower descriptor, so it is read first.
        let mut first = Irc::register(irc_addr, "primeiro");
        let mut second = Irc::register(irc_addr, "segundo");
        d.signal("STOP");
        second.send("PRIVMSG primeiro :antes do ping");
        std::thread::sleep(Duration::from_millis(50));
        first.send("PING barreira");
        std::thread::sleep(Duration::from_millis(50));
        d.signal("CONT");
        let next = first.expect("the message or the PONG", |l| {
            l.contains("PRIVMSG primeiro") || l.contains("PONG")
        });
        assert!(
            next.contains("PRIVMSG primeiro :antes do ping"),
            "{poller}: the PONG overtook the message: {next}"
        );
        first.expect("the PONG after it", |l| {
            l.contains("PONG") && l.ends_with("barreira")
        });
    }
}

#[test]
fn a_hostile_irc_client_gets_answers_not_a_crash() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5", "--handshake-timeout", "0.5"]);
    // Unregistered commands: 451.
    let mut c = Irc::connect(irc_addr);
    c.send("JOIN #Teste");
    c.expect("451", |l| l.contains(" 451 "));
    // Registration must finish within the handshake timeout.
    c.expect("the registration timeout", |l| {
        l.starts_with("ERROR :Closing Link")
    });
    assert!(c.closed_within(Duration::from_secs(2)));

    let mut c = Irc::register(irc_addr, "hostil");
    c.send("JOIN #Teste");
    c.expect("its JOIN", |l| l.ends_with("JOIN #Teste"));
    // A line over 512 bytes: 417, and the connection goes on.
    c.send(&format!("PRIVMSG #Teste :{}", "x".repeat(600)));
    c.expect("417", |l| l.contains(" 417 "));
    // Invalid UTF-8: FAIL INVALID_UTF8.
    c.send_raw(b"PRIVMSG #Teste :\xff\xfe\r\n");
    c.expect("INVALID_UTF8", |l| l.contains("FAIL * INVALID_UTF8"));
    // Terminal escapes in a message never reach the room.
    c.send("PRIVMSG #Teste :\x1b[2Jlimpo");
    c.expect("404 for control characters", |l| {
        l.contains(" 404 hostil #Teste :")
    });
    // A megabyte without a newline: one 417, the stream stays in step.
    c.send_raw(&vec![b'a'; 1 << 20]);
    c.send_raw(b"\r\nPING depois\r\n");
    c.expect("the PONG after", |l| l.ends_with(" depois"));
    let mut ana = d.joined("Ana", "Teste");
    c.send("PRIVMSG #Teste :ainda aqui");
    let ev = events_until(&mut ana, |ev| ev["type"] == "message");
    assert_eq!(ev["message"], "ainda aqui");
}

#[test]
fn an_irc_reader_that_never_reads_is_dropped_and_the_room_goes_on() {
    let (mut d, irc_addr) = irc_daemon(&[
        "--flood-rate",
        "0",
        "--room",
        "Teste:5",
        "--max-frame",
        "1024",
        "--sendq",
        "65536",
        "--write-timeout",
        "1",
    ]);
    let mut stuck = Irc::register(irc_addr, "parado");
    stuck.send("JOIN #Teste");
    stuck.expect("its JOIN", |l| l.ends_with("JOIN #Teste"));
    nix::sys::socket::setsockopt(&stuck.stream, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
    let mut talker = d.joined("Ana", "Teste");
    let mut listener = Irc::register(irc_addr, "ouvinte");
    listener.send("JOIN #Teste");
    listener.expect("its JOIN", |l| l.ends_with("JOIN #Teste"));
    let line = "y".repeat(1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut dropped = false;
    let mut i = 0;
    while Instant::now() < deadline && !dropped {
        talker.say(&format!("{i} {line}"));
        i += 1;
        if i % 50 == 0 {
            dropped = d
                .log_lines()
                .iter()
                .any(|l| l.contains("dropping 'parado'") && l.contains("slow consumer"));
            while listener.line(Duration::from_millis(1)).is_some() {}
        }
    }
    assert!(dropped, "the reader that never reads is dropped");
    d.wait_log("dropping 'parado'", Duration::from_secs(1));
    talker.say("depois");
    let log = d.log_lines().join("\n");
    assert!(!log.contains("dropping 'ouvinte'"), "{log}");
    listener.expect("the room goes on", |l| l.ends_with(" depois"));
}

#[test]
fn irc_over_tls_with_the_same_certificate() {
    let pki = crate::tls::Pki::new();
    let (cert, key) = pki.server("server");
    let mut d = Daemon::start(&[
        "--irc-tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--room",
        "Teste:5",
    ]);
    let line = d.wait_log("listening for IRC over TLS on ", Duration::from_secs(5));
    let addr: SocketAddr = line.rsplit(" on ").next().unwrap().trim().parse().unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(pki.client_config(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"NICK seguro\r\nUSER s 0 * :S\r\nJOIN #Teste\r\n")
        .unwrap();
    let mut ana = d.joined("Ana", "Teste");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains("JOIN #Teste") {
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).unwrap();
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains(" 001 seguro "));
    tls.write_all(b"PRIVMSG #Teste :por TLS\r\n").unwrap();
    let ev = events_until(&mut ana, |ev| ev["type"] == "message");
    assert_eq!(
        (ev["username"].as_str(), ev["message"].as_str()),
        (Some("seguro"), Some("por TLS"))
    );
}

#[test]
fn what_the_irc_door_cannot_do_yet_is_refused_at_start() {
    let dir = TempDir::new("ircflags");
    let empty = dir.path().join("empty-password");
    std::fs::write(&empty, "\n").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(CHATD)
            .args(["--config", "none", "--control"])
            .arg(dir.path().join("c.sock"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let empty = empty.to_str().unwrap();
    for (args, want) in [
        (
            vec![
                "--room-creation",
                "anyone",
                "--cluster",
                "redis://127.0.0.1:1",
            ],
            "does not work with --cluster yet",
        ),
        (
            vec!["--irc-listen", "127.0.0.1:0", "--irc-password-file", empty],
            "the first line is empty",
        ),
        (
            vec!["--irc-listen", "127.0.0.1:0", "--irc-server-name", "a b"],
            "is not a server name",
        ),
    ] {
        let out = run(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn monitor_sees_people_of_both_protocols_come_and_go() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5"]);
    let mut w = Irc::register(irc_addr, "vigia");
    w.send("MONITOR + Ana,bia");
    w.expect("both offline", |l| {
        l.contains(" 731 vigia ") && l.ends_with("Ana,bia")
    });
    // The chat port's Ana comes with her first room, goes with her last.
    let ana = d.joined("Ana", "Teste");
    w.expect("Ana online", |l| {
        l.contains(" 730 vigia ") && l.ends_with("Ana!Ana@chat")
    });
    drop(ana);
    w.expect("Ana offline", |l| {
        l.contains(" 731 vigia ") && l.ends_with("Ana")
    });
    // An IRC user comes with its registration, goes with its QUIT.
    let mut bia = Irc::register(irc_addr, "bia");
    w.expect("bia online", |l| {
        l.contains(" 730 vigia ") && l.ends_with("bia!bia@irc")
    });
    w.send("WHO bia %tnaf,42");
    w.expect("a WHOX reply", |l| l.contains(" 354 vigia 42 bia H 0"));
    bia.send("QUIT");
    w.expect("bia offline", |l| {
        l.contains(" 731 vigia ") && l.ends_with("bia")
    });
    w.send("MONITOR L");
    w.expect("the list", |l| {
        l.contains(" 732 vigia ") && l.ends_with("Ana,bia")
    });
}

/// Room rings (issue #29) through the real programs: IRC members with
/// different tags read different lanes of one room; one that asks for a
/// tag after joining moves lanes; each gets every line, in order, in its
/// own form, beside a member of the prototype's protocol.
#[test]
fn irc_members_with_other_tags_get_every_line_in_their_own_form() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5", "--flood-rate", "0"]);
    let mut plain = Irc::register(irc_addr, "plain");
    let mut timed = Irc::connect(irc_addr);
    timed.send("CAP REQ :server-time");
    timed.send("NICK timed");
    timed.send("USER timed 0 * :timed");
    timed.send("CAP END");
    timed.expect("the end of the MOTD", |l| l.contains(" 376 "));
    let mut late = Irc::register(irc_addr, "late");
    for c in [&mut plain, &mut timed, &mut late] {
        c.send("JOIN #Teste");
        c.expect("its names", |l| l.contains(" 366 "));
    }
    let mut ana = d.joined("Ana", "Teste");
    for c in [&mut plain, &mut timed, &mut late] {
        c.expect("Ana's JOIN", |l| l.ends_with(":Ana!Ana@chat JOIN #Teste"));
    }
    let lines = |c: &mut Irc, from: usize, to: usize, tagged: bool| {
        for i in from..to {
            let l = c.expect("the next message", |l| l.contains(" PRIVMSG #Teste :"));
            assert!(l.ends_with(&format!("PRIVMSG #Teste :linha {i}")), "{l}");
            assert_eq!(l.starts_with("@time="), tagged, "{l}");
        }
    };
    for i in 0..50 {
        ana.say(&format!("linha {i}"));
    }
    lines(&mut plain, 0, 50, false);
    lines(&mut timed, 0, 50, true);
    lines(&mut late, 0, 50, false);
    late.send("CAP REQ :server-time");
    late.expect("the ACK", |l| {
        l.contains(" ACK ") && l.contains("server-time")
    });
    for i in 50..100 {
        ana.say(&format!("linha {i}"));
    }
    lines(&mut plain, 50, 100, false);
    lines(&mut timed, 50, 100, true);
    lines(&mut late, 50, 100, true);
    // An IRC member's message: the others get it, the sender does not.
    plain.send("PRIVMSG #Teste :de plain");
    let ev = events_until(&mut ana, |ev| ev["type"] == "message");
    assert_eq!(ev["message"], "de plain");
    for c in [&mut timed, &mut late] {
        c.expect("plain's message", |l| {
            l.ends_with(":plain!plain@irc PRIVMSG #Teste :de plain")
        });
    }
    plain.send("PING :fim");
    plain.expect("the PONG", |l| l.contains("PONG") && l.ends_with("fim"));
    assert!(
        plain.seen.iter().all(|l| !l.contains(":de plain")),
        "no echo without echo-message"
    );
}
