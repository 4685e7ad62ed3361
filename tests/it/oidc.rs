//! OpenID Connect bearer tokens through the real programs. The identity
//! provider is played by the test: keys made here (rcgen: ES256 and
//! Ed25519), a JWKS file written here, tokens signed here (jsonwebtoken).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::KeyPair;
use serde_json::{Value, json};

use crate::support::*;

const ISSUER: &str = "https://id.example.test";
const AUDIENCE: &str = "chatd-test";

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A signing key of the test's identity provider.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: KeyPair,
    /// RS256 only: the private key (PEM) and the modulus (from openssl,
    /// since neither rcgen nor ring makes RSA keys).
    rsa: Option<(String, Vec<u8>)>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

impl Signer {
    fn es256(kid: &str) -> Signer {
        Signer {
            kid: kid.into(),
            alg: Algorithm::ES256,
            key: KeyPair::generate().unwrap(),
            rsa: None,
        }
    }

    fn ed25519(kid: &str) -> Signer {
        Signer {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            key: KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            rsa: None,
        }
    }

    fn rs256(kid: &str, dir: &Path) -> Signer {
        let pem_path = dir.join(format!("{kid}.pem"));
        let st = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem_path)
            .stderr(Stdio::null())
            .status()
            .expect("openssl is needed for this test (.ci/run installs it)");
        assert!(st.success());
        let out = Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&pem_path)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let modulus = hex(text.trim().trim_start_matches("Modulus="));
        Signer {
            kid: kid.into(),
            alg: Algorithm::RS256,
            key: KeyPair::generate().unwrap(),
            rsa: Some((std::fs::read_to_string(&pem_path).unwrap(), modulus)),
        }
    }

    fn jwk(&self) -> Value {
        if let Some((_, n)) = &self.rsa {
            return json!({
                "kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                "n": b64url(n), "e": "AQAB",
            });
        }
        let raw = self.key.public_key_raw();
        match self.alg {
            Algorithm::ES256 => json!({
                "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65]),
            }),
            _ => json!({
                "kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA", "use": "sig",
                "x": b64url(raw),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let pem = self.key.serialize_pem();
        let key = match self.alg {
            Algorithm::RS256 => {
                EncodingKey::from_rsa_pem(self.rsa.as_ref().unwrap().0.as_bytes()).unwrap()
            }
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `name`, valid for an hour, with `changes` applied.
fn claims(name: &str, changes: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("id-{name}"),
        "preferred_username": name, "iat": now(), "exp": now() + 3600,
    });
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn write_jwks(path: &Path, signers: &[&Signer]) {
    let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
    std::fs::write(path, json!({ "keys": keys }).to_string()).unwrap();
}

fn oidc_daemon(jwks: &Path, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--room",
        "Teste:10",
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        jwks.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn join_with_token(d: &Daemon, token: &str) -> Value {
    join_with_token_from(d, token, 1)
}

/// The same from source address 127.0.0.`host` (still loopback), so that
/// the per-address limit on failed logins does not mix the cases up.
fn join_with_token_from(d: &Daemon, token: &str, host: u8) -> Value {
    join_room_with_token_from(d, "Teste", token, host)
}

fn join_room_with_token_from(d: &Daemon, room: &str, token: &str, host: u8) -> Value {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, host, 0),
    )
    .unwrap();
    let std::net::SocketAddr::V4(v4) = d.addr else {
        unreachable!("chatd listens on 127.0.0.1")
    };
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)).unwrap();
    let mut c = Client::from_stream(std::net::TcpStream::from(fd));
    c.send_frame(json!({"room": room, "token": token}).to_string().as_bytes());
    c.event()
}

#[test]
fn tokens_are_verified_and_name_the_member() {
    let dir = TempDir::new("oidc");
    let es = Signer::es256("es-1");
    let ed = Signer::ed25519("ed-1");
    let rs = Signer::rs256("rs-1", dir.path());
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, &[&es, &ed, &rs]);
    let mut d = oidc_daemon(&jwks, &["--require-login"]);
    let mut watcher = {
        // A member the test can watch the room through: logged in by token.
        let mut c = Client::connect(d.addr);
        c.send_frame(
            json!({"room": "Teste", "token": es.sign(&claims("watcher", json!({})))})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(c.event()["username"], "watcher");
        c
    };

    // chat with --token-file: the name is the token's.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, es.sign(&claims("ana.silva", json!({})))).unwrap();
    let out = with_stdin(
        Command::new(CHAT)
            .args([
                "--server",
                &d.addr.to_string(),
                "--room",
                "Teste",
                "--token-file",
            ])
            .arg(&token_file),
        "entrei com token\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(watcher.event()["username"], "ana.silva");
    assert_eq!(watcher.event()["message"], "entrei com token");
    assert_eq!(watcher.event()["type"], "leave");

    // --user beside the token must be the token's name: refused, not
    // silently joined under another.
    let out = with_stdin(
        Command::new(CHAT)
            .args(["--server", &d.addr.to_string(), "--room", "Teste"])
            .args(["--user", "outra", "--token-file"])
            .arg(&token_file),
        "não deve chegar\n",
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the username is not the token's ('ana.silva')"),
        "{err}"
    );

    // EdDSA, through $CHAT_TOKEN.
    let out = Command::new(CHAT)
        .args(["--server", &d.addr.to_string(), "--room", "Teste"])
        .env("CHAT_TOKEN", ed.sign(&claims("bia", json!({}))))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(watcher.event()["username"], "bia");
    assert_eq!(watcher.event()["type"], "leave");
    // RS256, raw.
    let ev = join_with_token(&d, &rs.sign(&claims("rui", json!({}))));
    assert_eq!(ev["type"], "join", "{ev}");
    assert_eq!(ev["username"], "rui");

    // Refused: each with its reason, none with the token in it.
    let ok = es.sign(&claims("carla", json!({})));
    // One character in the middle of the signature changed.
    let sig_at = ok.rfind('.').unwrap() + 10;
    let mut tampered: Vec<char> = ok.chars().collect();
    tampered[sig_at] = if tampered[sig_at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let stranger = Signer::es256("es-stranger");
    for (i, (what, token, why)) in [
        (
            "expired",
            es.sign(&claims("c", json!({"exp": now() - 3600}))),
            "expired",
        ),
        (
            "not yet valid",
            es.sign(&claims("c", json!({"nbf": now() + 3600}))),
            "not valid yet",
        ),
        (
            "wrong audience",
            es.sign(&claims("c", json!({"aud": "someone-else"}))),
            "another audience",
        ),
        (
            "wrong issuer",
            es.sign(&claims("c", json!({"iss": "https://evil.test"}))),
            "another issuer",
        ),
        ("tampered", tampered, "signature does not verify"),
        (
            "unknown kid",
            stranger.sign(&claims("c", json!({}))),
            "not in the JWKS",
        ),
        (
            "no name",
            es.sign(&claims("c", json!({"preferred_username": null}))),
            "no 'preferred_username' claim",
        ),
        ("not a JWT", "not-a-token".to_string(), "not a JWT"),
    ]
    .into_iter()
    .enumerate()
    {
        let ev = join_with_token_from(&d, &token, 20 + i as u8);
        assert_eq!(ev["message"], "401", "{what}: {ev}");
        let reason = ev["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{what}: {reason}");
        assert!(
            !reason.contains(&token),
            "{what}: the token is in the reason"
        );
    }
    let logged = d.log_lines().join("\n");
    assert!(!logged.contains(&ok[..40]), "a token in the log");

    // A token for a name registered to a password account: refused.
    let add = d.ctl_with_stdin(&["user", "add", "dono"], "senha do dono 123\n");
    assert!(add.status.success(), "{add:?}");
    let ev = join_with_token(&d, &es.sign(&claims("dono", json!({}))));
    assert_eq!(ev["message"], "401");
    assert!(
        ev["reason"].as_str().unwrap().contains("password account"),
        "{ev}"
    );

    // A new key: accepted once the JWKS is re-read (SIGHUP).
    let next = Signer::es256("es-2");
    let token = next.sign(&claims("depois", json!({})));
    assert_eq!(join_with_token(&d, &token)["message"], "401");
    write_jwks(&jwks, &[&es, &ed, &rs, &next]);
    d.signal("HUP");
    d.wait_log("oidc: reloaded 4 key(s)", Duration::from_secs(5));
    assert_eq!(join_with_token(&d, &token)["type"], "join");
}

#[test]
fn without_oidc_tokens_are_refused_and_bad_flags_stop_start_up() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let ev = join_with_token(&d, "a.b.c");
    assert_eq!(ev["message"], "401");
    assert!(ev["reason"].as_str().unwrap().contains("accepts no tokens"));
    let dir = TempDir::new("oidcflags");
    let missing: PathBuf = dir.path().join("nope.json");
    for (args, want) in [
        (vec!["--oidc-issuer", ISSUER], "go together"),
        (
            vec![
                "--oidc-issuer",
                ISSUER,
                "--oidc-audience",
                AUDIENCE,
                "--oidc-jwks",
                missing.to_str().unwrap(),
            ],
            "nope.json",
        ),
    ] {
        let out = Command::new(CHATD)
            .args(["--listen", "127.0.0.1:0", "--control"])
            .arg(dir.path().join("c.sock"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{out:?}"
        );
    }
}

#[test]
fn a_private_room_admits_the_listed_token_name_and_no_look_alike() {
    let dir = TempDir::new("oidc-lookalike");
    let es = Signer::es256("es-1");
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, &[&es]);
    let d = oidc_daemon(&jwks, &[]);
    let out = d.ctl(&["room", "create", "Cofre", "--limit", "5", "--private"]);
    assert!(out.status.success(), "{out:?}");
    let out = d.ctl(&["room", "allow", "Cofre", "ana"]);
    assert!(out.status.success(), "{out:?}");
    // Each look-alike is its own identity at the provider (its own sub).
    for (host, name) in [(2, "Ana"), (3, "ANA"), (4, "\u{430}na")] {
        let ev = join_room_with_token_from(&d, "Cofre", &es.sign(&claims(name, json!({}))), host);
        assert_eq!(ev["type"], "error", "{name}: {ev}");
        assert_eq!(ev["message"], "403", "{name}: {ev}");
    }
    let ev = join_room_with_token_from(&d, "Cofre", &es.sign(&claims("ana", json!({}))), 5);
    assert_eq!(ev["type"], "join", "{ev}");
    assert_eq!(ev["username"], "ana", "{ev}");
}

#[test]
fn an_irc_client_logs_in_with_a_token_by_sasl_oauthbearer() {
    use crate::irc::Irc;
    use base64::Engine;
    let dir = TempDir::new("oidc-irc");
    let signer = Signer::es256("k1");
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, &[&signer]);
    let mut d = oidc_daemon(&jwks, &["--irc-listen", "127.0.0.1:0"]);
    let line = d.wait_log("listening for IRC on ", Duration::from_secs(5));
    let addr: std::net::SocketAddr = line.rsplit(" on ").next().unwrap().trim().parse().unwrap();
    let authenticate = |c: &mut Irc, token: &str| {
        let payload = format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
        for chunk in b64.as_bytes().chunks(400) {
            c.send(&format!(
                "AUTHENTICATE {}",
                std::str::from_utf8(chunk).unwrap()
            ));
        }
        if b64.len() % 400 == 0 {
            c.send("AUTHENTICATE +");
        }
    };
    let mut c = Irc::connect(addr);
    c.send("CAP LS 302");
    c.expect("OAUTHBEARER offered", |l| {
        l.contains("sasl=PLAIN,OAUTHBEARER")
    });
    c.send("CAP REQ sasl");
    c.expect("ACK", |l| l.contains(" ACK "));
    // A token another key signed is refused, in words.
    c.send("AUTHENTICATE OAUTHBEARER");
    c.expect("the go-ahead", |l| l == "AUTHENTICATE +");
    let forged = Signer::es256("k1").sign(&claims("tokuser", json!({})));
    authenticate(&mut c, &forged);
    c.expect("904", |l| l.contains(" 904 "));
    // The issuer's token logs in as its name.
    c.send("AUTHENTICATE OAUTHBEARER");
    c.expect("the go-ahead", |l| l == "AUTHENTICATE +");
    authenticate(&mut c, &signer.sign(&claims("tokuser", json!({}))));
    c.expect("900 logged in", |l| {
        l.contains(" 900 ") && l.contains(" tokuser ")
    });
    c.expect("903", |l| l.contains(" 903 "));
    c.send("NICK tokuser");
    c.send("USER t 0 * :T");
    c.send("CAP END");
    c.expect("the welcome", |l| l.contains(" 001 tokuser "));
    c.send("WHOIS tokuser");
    c.expect("330", |l| l.contains(" 330 tokuser tokuser tokuser "));
}
