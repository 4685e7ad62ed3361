//! TLS through the real programs: certificates made here (rcgen), `chat
//! --tls` beside a plaintext member, openssl s_client as a third-party
//! client, certificate reloads, refused certificates, garbage and stalls on
//! the TLS port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};

use crate::support::*;

/// A private CA and certificates it signed, as PEM files in a directory.
pub struct Pki {
    pub dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::named("chatd test CA")
    }

    fn named(name: &str) -> Pki {
        let dir = TempDir::new("pki");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A TLS client configuration trusting only this CA, the way
    /// `chat --tls --ca` builds it.
    pub fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        let roots = chatd::client::transport::roots(Some(&self.ca())).unwrap();
        chatd::client::transport::client_config(roots).unwrap()
    }

    /// Issues a certificate for `names` valid over `valid` (years), into
    /// `<tag>.pem` and `<tag>.key`; returns both paths.
    fn issue(&self, tag: &str, names: &[&str], valid: (i32, i32)) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, tag);
        params.not_before = date_time_ymd(valid.0, 1, 1);
        params.not_after = date_time_ymd(valid.1, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{tag}.pem")),
            self.dir.path().join(format!("{tag}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A certificate for this machine's loopback names, valid now.
    pub fn server(&self, tag: &str) -> (PathBuf, PathBuf) {
        self.issue(tag, &["localhost", "127.0.0.1"], (2020, 2090))
    }
}

/// A self-signed certificate for 127.0.0.1 (as `openssl req -x509`
/// makes), and its fingerprint as openssl prints it (`AB:CD:…`).
pub fn self_signed(dir: &Path, tag: &str) -> (PathBuf, PathBuf, String) {
    let (c, k) = (
        dir.join(format!("{tag}.pem")),
        dir.join(format!("{tag}.key")),
    );
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(made.status.success(), "{made:?}");
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&c)
        .output()
        .unwrap();
    let text = String::from_utf8(fp.stdout).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap().to_string();
    (c, k, hex)
}

/// chatd with a plaintext and a TLS listener.
pub fn tls_daemon(cert: &Path, key: &Path, extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec![
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(&args);
    let line = d.wait_log("listening for TLS on ", Duration::from_secs(5));
    let addr = line.rsplit("listening for TLS on ").next().unwrap().trim();
    let addr = addr.parse().unwrap();
    (d, addr)
}

/// `chat` over TLS, scripted, with `input` on stdin.
fn chat_tls(server: &str, ca: &Path, user: &str, input: &[u8]) -> std::process::Output {
    with_stdin(
        Command::new(CHAT)
            .args(["--server", server, "--ca"])
            .arg(ca)
            .args(["--user", user, "--room", "Teste", "--connect-timeout", "5"]),
        input,
    )
}

#[test]
fn chat_over_tls_talks_with_a_plaintext_member_of_the_same_room() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (mut d, tls_addr) = tls_daemon(&cert, &key, &["--room", "Teste:5"]);
    let mut plain = d.joined("plain", "Teste");
    let out = chat_tls(
        &format!("localhost:{}", tls_addr.port()),
        &pki.ca(),
        "cifrado",
        "olá, cifrado {ok}\n".as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(plain.event()["username"], "cifrado");
    let ev = plain.event();
    assert_eq!(ev["message"], "olá, cifrado {ok}");
    assert_eq!(ev["username"], "cifrado");
    assert_eq!(plain.event()["type"], "leave");
    // The other way: a TLS member receives what a plaintext member says.
    let mut child = Command::new(CHAT)
        .args(["--server", &tls_addr.to_string(), "--ca"])
        .arg(pki.ca())
        .args(["--user", "ouvinte", "--room", "Teste"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(plain.event()["username"], "ouvinte");
    plain.say("em claro");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !seen.contains("plain > em claro") {
        assert!(Instant::now() < end, "{seen}");
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    d.wait_log(
        "entered room 'Teste' from 127.0.0.1",
        Duration::from_secs(1),
    );
    assert!(
        d.log_lines()
            .iter()
            .any(|l| l.contains("join: 'cifrado'") && l.ends_with("over TLS"))
    );
}

/// openssl s_client, reading and writing the prototype's framing.
struct SClient {
    child: Child,
}

impl SClient {
    fn start(addr: SocketAddr, ca: &Path) -> SClient {
        let child = Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(["-servername", "localhost", "-verify_return_error", "-quiet"])
            .arg("-CAfile")
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "openssl is needed for this test (apt-get install openssl; .ci/run installs it)",
            );
        SClient { child }
    }

    fn send_frame(&mut self, payload: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(&frame(payload)).unwrap();
        stdin.flush().unwrap();
    }

    /// Reads up to the first `}` (as the prototype's client does) and
    /// parses the event.
    fn event(&mut self) -> serde_json::Value {
        let stdout = self.child.stdout.as_mut().unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.last() != Some(&b'}') {
            let n = stdout.read(&mut b).unwrap();
            assert!(n == 1, "EOF after {:?}", String::from_utf8_lossy(&line));
            if !(line.is_empty() && b[0] == b'\n') {
                line.push(b[0]);
            }
        }
        serde_json::from_slice(&line).unwrap()
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn openssl_s_client_joins_with_the_prototypes_framing() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (d, tls_addr) = tls_daemon(&cert, &key, &["--room", "Teste:5"]);
    let mut plain = d.joined("plain", "Teste");
    let mut s = SClient::start(tls_addr, &pki.ca());
    s.send_frame(br#"{"username": "ossl", "room": "Teste"}"#);
    let ev = s.event();
    assert_eq!(ev["type"], "join", "{ev}");
    assert_eq!(ev["username"], "ossl");
    assert_eq!(plain.event()["username"], "ossl");
    s.send_frame("dito por openssl".as_bytes());
    assert_eq!(plain.event()["message"], "dito por openssl");
    plain.say("resposta");
    let ev = s.event();
    assert_eq!(ev["message"], "resposta");
    assert_eq!(ev["username"], "plain");
}

/// The certificate a TLS server presents, as seen by openssl (its subject).
fn presented_subject(addr: SocketAddr) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_string()
}

#[test]
fn sighup_reloads_the_certificate_and_open_sessions_stay() {
    let pki = Pki::new();
    let (cert, key) = pki.server("first");
    let live_cert = pki.dir.path().join("live.pem");
    let live_key = pki.dir.path().join("live.key");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let (mut d, tls_addr) = tls_daemon(&live_cert, &live_key, &["--room", "Teste:5"]);
    assert!(presented_subject(tls_addr).contains("first"));
    let mut plain = d.joined("plain", "Teste");
    let mut member = SClient::start(tls_addr, &pki.ca());
    member.send_frame(br#"{"username": "stays", "room": "Teste"}"#);
    assert_eq!(member.event()["type"], "join");
    plain.event();

    // A broken file: the old certificate stays, and the log says why.
    std::fs::write(&live_key, "not a key").unwrap();
    d.signal("HUP");
    d.wait_log("reload failed", Duration::from_secs(5));
    assert!(presented_subject(tls_addr).contains("first"));

    // The renewed pair: new connections see it, the member stays.
    let (cert2, key2) = pki.server("second");
    std::fs::copy(&cert2, &live_cert).unwrap();
    std::fs::copy(&key2, &live_key).unwrap();
    d.signal("HUP");
    d.wait_log("tls: reloaded certificate", Duration::from_secs(5));
    assert!(presented_subject(tls_addr).contains("second"));
    plain.say("still there?");
    assert_eq!(member.event()["message"], "still there?");
    member.send_frame(b"yes");
    assert_eq!(plain.event()["message"], "yes");
}

#[test]
fn chat_refuses_expired_wrong_host_and_unknown_certificates() {
    let pki = Pki::new();
    let other = Pki::named("someone else's CA");
    for (tag, (cert, key), why) in [
        (
            "expired",
            pki.issue("expired", &["localhost", "127.0.0.1"], (2020, 2021)),
            "it has expired",
        ),
        (
            "wronghost",
            pki.issue("wronghost", &["chat.example.invalid"], (2020, 2090)),
            "not valid for the name",
        ),
        (
            "stranger",
            other.server("stranger"),
            "not signed by a trusted CA",
        ),
    ] {
        let (d, tls_addr) = tls_daemon(&cert, &key, &["--room", "Teste:5"]);
        let out = chat_tls(&tls_addr.to_string(), &pki.ca(), "u", b"hello\n");
        assert_eq!(out.status.code(), Some(3), "{tag}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{tag}: {err}");
        assert!(err.contains("certificate"), "{tag}: {err}");
        let ps = d
            .admin()
            .request(serde_json::json!({"cmd":"participants","room":"Teste"}));
        assert_eq!(ps["participants"], serde_json::json!([]), "{tag}");
    }
}

#[test]
fn a_stalled_tls_handshake_is_dropped_at_the_timeout_and_garbage_is_refused() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (mut d, tls_addr) = tls_daemon(
        &cert,
        &key,
        &["--room", "Teste:5", "--handshake-timeout", "1"],
    );
    let mut a = d.joined("a", "Teste");
    let mut b = d.joined("b", "Teste");
    a.event();
    // Half a ClientHello, then silence.
    let mut stalled = TcpStream::connect(tls_addr).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    // Garbage: plaintext chat framing on the TLS port.
    let mut garbage = TcpStream::connect(tls_addr).unwrap();
    garbage
        .write_all(&frame(br#"{"username":"x","room":"Teste"}"#))
        .unwrap();
    // Others talk meanwhile.
    a.say("talking");
    assert_eq!(b.event()["message"], "talking");
    // The garbage is refused at once, logged once.
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 256];
    let start = Instant::now();
    loop {
        match garbage.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    d.wait_log("received corrupt message", Duration::from_secs(2));
    // The stalled one is closed at the handshake timeout.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let start = Instant::now();
    loop {
        match stalled.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    d.wait_log(
        "no complete handshake within 1 s (TLS)",
        Duration::from_secs(1),
    );
    let garbage_lines = d
        .log_lines()
        .iter()
        .filter(|l| l.contains("received corrupt message"))
        .count();
    assert_eq!(garbage_lines, 1);
    b.say("still");
    assert_eq!(a.event()["message"], "still");
}

#[test]
fn a_tls_only_chatd_and_tls_under_back_pressure() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (d, tls_addr) = tls_daemon(
        &cert,
        &key,
        &[
            "--flood-rate",
            "0",
            "--listen",
            "none",
            "--room",
            "Teste:5",
            "--write-timeout",
            "1",
        ],
    );
    assert!(
        !d.log_lines().iter().any(|l| l.contains("listening on ")),
        "a plaintext listener is open"
    );
    // Over TLS, a member that never reads is dropped as a slow consumer,
    // and a member that reads gets every message.
    let mut sender = SClient::start(tls_addr, &pki.ca());
    sender.send_frame(br#"{"username": "sender", "room": "Teste"}"#);
    sender.event();
    let mut stalled = SClient::start(tls_addr, &pki.ca());
    stalled.send_frame(br#"{"username": "stalled", "room": "Teste"}"#);
    stalled.event();
    sender.event();
    let big = "z".repeat(8000);
    let mut sender_in = sender.child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // Far more than the kernel's buffers on both sides can hold.
        for i in 0..3000 {
            let text = format!("{i:04} {big}");
            if sender_in.write_all(&frame(text.as_bytes())).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut d = d;
    d.wait_log("dropping 'stalled'", Duration::from_secs(15));
    d.wait_log("leave: 'stalled'", Duration::from_secs(2));
    drop(writer);
    let _ = d.stop();
}

#[test]
fn bad_tls_flags_and_files_are_refused_at_start() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let dir = TempDir::new("tlsflags");
    let run = |args: &[&str]| {
        Command::new(CHATD)
            .args(["--control"])
            .arg(dir.path().join("c.sock"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let cert_s = cert.to_str().unwrap();
    let key_s = key.to_str().unwrap();
    let missing = dir.path().join("nope.pem");
    for (args, want) in [
        (
            vec!["--tls-listen", "127.0.0.1:0"],
            "needs both --tls-cert and --tls-key",
        ),
        (vec!["--listen", "none"], "nothing to listen on"),
        (
            vec!["--tls-cert", cert_s, "--tls-key", key_s],
            "go with --tls-listen",
        ),
        (
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                missing.to_str().unwrap(),
                "--tls-key",
                key_s,
            ],
            "nope.pem",
        ),
        (
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert_s,
                "--tls-key",
                cert_s,
            ],
            "private key",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_tls_close_sends_close_notify() {
    use rustls::pki_types::ServerName;
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (d, tls_addr) = tls_daemon(&cert, &key, &["--room", "Teste:5"]);
    let conn = rustls::ClientConnection::new(
        pki.client_config(),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(tls_addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(&frame(br#"{"username": "leaving", "room": "Teste"}"#))
        .unwrap();
    s.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("ENTROU") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let kicked = d.ctl(&["kick", "Teste", "leaving"]);
    assert!(kicked.status.success(), "{kicked:?}");
    // rustls reports a close without close_notify as an error
    // (UnexpectedEof); a clean close reads as 0.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("not a clean TLS close: {e}"),
        }
    }
    assert!(String::from_utf8_lossy(&got).contains("REMOVIDO DA SALA"));
}

/// Mistakes a person makes on a LAN, each answered with the fix: the
/// plaintext client on the TLS port, --tls on the plaintext port, and a
/// self-signed `openssl req -x509` certificate given as its own CA.
#[test]
fn tls_mistakes_are_told_in_words_with_the_fix() {
    let pki = Pki::new();
    let (cert, key) = pki.server("lan");
    let (d, tls_addr) = tls_daemon(&cert, &key, &["--room", "Teste:5"]);
    let plain = |server: &str| {
        with_stdin(
            Command::new(CHAT).args([
                "--server",
                server,
                "--user",
                "u",
                "--room",
                "Teste",
                "--connect-timeout",
                "5",
            ]),
            b"oi\n",
        )
    };
    let out = plain(&tls_addr.to_string());
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this port speaks TLS; add --tls"), "{err}");
    let out = chat_tls(&d.addr.to_string(), &pki.ca(), "u", b"oi\n");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this looks like the plaintext port"), "{err}");
    drop(d);

    let dir = TempDir::new("selfsigned");
    let (c, k, _) = self_signed(dir.path(), "self");
    let (_d, addr) = tls_daemon(&c, &k, &["--room", "Teste:5"]);
    let out = chat_tls(&addr.to_string(), &c, "u", b"oi\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a CA certificate used as the server's own"),
        "{err}"
    );
    assert!(!err.contains("Other(OtherError"), "{err}");
}
