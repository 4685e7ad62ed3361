//! `chat` as a daily driver (issue #28), in real terminals (tmux): it
//! rides out a chatd restart and shows what was missed, sits in two rooms
//! and a direct conversation at once, speaks English when the locale
//! says so, and trusts a self-signed server by its fingerprint (pinned,
//! or remembered on first use with a loud warning when it changes).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::irc::{Irc, irc_daemon};
use crate::support::*;
use crate::tls::self_signed;

/// Sends `lines` as `user` in `room` with the scripted client.
fn say(addr: &str, user: &str, room: &str, lines: &str) {
    let out = with_stdin(
        Command::new(CHAT).args(["--server", addr, "--user", user, "--room", room]),
        lines,
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_full_screen_rides_out_a_restart_and_shows_what_was_missed() {
    let addr = format!("127.0.0.1:{}", free_port());
    let flags = ["--listen", addr.as_str()];
    let d = Daemon::start(&flags);
    let out = d.ctl(&["room", "create", "Teste", "--limit", "5", "--history", "20"]);
    assert!(out.status.success(), "{out:?}");
    let t = Tmux::start_sized(
        "desk-restart",
        &format!("{CHAT} --server {addr} --user Yan --room Teste"),
        80,
        24,
    );
    t.wait_for("→ Yan entrou na sala");
    say(&addr, "Bia", "Teste", "antes da queda\n");
    t.wait_for("Bia > antes da queda");

    d.signal("TERM");
    let dir = d.into_dir();
    // Down: the status bar counts down to the next try.
    t.wait_for("-- Conexão perdida: O servidor está encerrando.");
    t.wait_for("reconectando em");
    let d = Daemon::start_in(dir, &flags);
    say(&addr, "Bia", "Teste", "durante a queda\n");
    let s = t.wait_for("-- Reconectado.");
    let s = if s.contains("Bia > durante a queda") {
        s
    } else {
        t.wait_for("Bia > durante a queda")
    };
    assert_eq!(
        s.matches("Bia > antes da queda").count(),
        1,
        "what was seen is not replayed again:\n{s}"
    );
    t.wait("the status bar says nothing of the link", |s| {
        !s.contains("reconectando")
    });
    // Still in the room: a message reaches the others.
    let mut bia = Client::connect(addr.parse().unwrap());
    bia.handshake("Bia", "Teste");
    t.wait_for("→ Bia entrou na sala");
    t.enter("olá Bia");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = bia.event();
        if ev["type"] == "message" {
            assert_eq!(
                (ev["username"].as_str(), ev["message"].as_str()),
                (Some("Yan"), Some("olá Bia"))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no message from Yan");
    }
    drop(d);
}

#[test]
fn two_rooms_and_a_direct_conversation_in_one_client() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5", "--room", "Lobby:10"]);
    let t = Tmux::start_sized(
        "desk-rooms",
        &format!("{CHAT} --server {} --user Yan --room Teste", d.addr),
        100,
        24,
    );
    t.wait_for("→ Yan entrou na sala");
    t.enter("/join lobby");
    t.wait_for(" 1:Teste [2:Lobby] · 1/10 ·");
    let mut ana = Irc::register(irc_addr, "ana");
    ana.send("JOIN #Lobby");
    ana.expect("the join", |l| l.contains(" 366 "));
    t.wait_for("→ ana entrou na sala");
    // Ctrl-P: back to Teste; what comes to Lobby marks it.
    t.keys(&["C-p"]);
    t.wait_for(" [1:Teste] 2:Lobby ·");
    ana.send("PRIVMSG #Lobby :alguém aí?");
    t.wait_for(" [1:Teste] 2:Lobby+ ·");
    ana.send("PRIVMSG Yan :psiu, yan");
    t.wait_for(" [1:Teste] 2:Lobby+ 3:@ana! ·");
    assert_eq!(
        t.format("#{window_bell_flag}"),
        "1",
        "a direct message rings"
    );
    // Alt-3: the conversation; a reply goes to ana alone.
    t.keys(&["M-3"]);
    t.wait_for("ana > psiu, yan");
    t.enter("oi ana, tudo bem?");
    ana.expect("the reply", |l| {
        l.contains("PRIVMSG ana :oi ana, tudo bem?") && l.starts_with(":Yan!")
    });
    // /msg with a text from a room's window: the room stays shown, the
    // words are kept in the person's window; /query goes there.
    t.keys(&["M-1"]);
    t.enter("/msg ana mais uma");
    ana.expect("the second", |l| l.contains("PRIVMSG ana :mais uma"));
    t.wait_for(" [1:Teste] 2:Lobby+ 3:@ana ·");
    t.enter("/query ana");
    t.wait_for(" 1:Teste 2:Lobby+ [3:@ana] ·");
    t.wait_for("Yan > mais uma");
    // /part leaves Lobby (ana sees Yan go) and closes its window.
    t.keys(&["M-2"]);
    t.wait_for("ana > alguém aí?");
    t.enter("/part");
    ana.expect("Yan's part", |l| {
        l.contains("PART #Lobby") && l.starts_with(":Yan!")
    });
    t.wait_for(" [1:Teste] 2:@ana ·");
    // Someone that does not exist: said in the window, nothing breaks.
    t.enter("/msg ninguem oi?");
    t.wait_for("Mensagem recusada (404): não encontrado");
    // A room that does not exist: its window says so; the rest goes on.
    t.enter("/join Nope");
    t.wait_for("-- Entrada recusada (404): não encontrado");
    t.wait_for("-- /join Nope tenta entrar de novo.");
    // Kicked from one room of several: that window says why, the others stay.
    t.enter("/join Lobby");
    t.wait_for("[5:Lobby]");
    let out = d.ctl(&["room", "kick", "Lobby", "Yan", "--reason", "chega"]);
    assert!(out.status.success(), "{out:?}");
    t.wait_for("Sistema > Você foi removido da sala: chega");
    t.wait_for("-- /join Lobby tenta entrar de novo.");
    t.keys(&["M-1"]);
    t.wait_for(" [1:Teste] 2:@ana 3:@ninguem 4:Nope 5:Lobby");
    t.enter("ainda em Teste");
    t.wait_for("Yan > ainda em Teste");
}

#[test]
fn english_when_the_locale_says_so_and_no_line_mixes_languages() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let add = d.ctl_with_stdin(&["user", "add", "Yan"], "hidden treasure 42\n");
    assert!(add.status.success(), "{add:?}");
    let t = Tmux::start_sized(
        "desk-en",
        &format!("env LANG=en_GB.UTF-8 {CHAT} --server {}", d.addr),
        80,
        24,
    );
    t.wait_for("Username:");
    t.enter("Bia");
    t.wait_for("Rooms: 1) Teste (0/5)");
    t.wait_for("Choose a room:");
    t.enter("teste");
    t.wait_for("→ Bia joined the room");
    t.wait_for("To leave, type /SAIR. /help lists the commands.");
    t.enter("/help");
    t.wait_for("-- Commands: /help this help");
    t.enter("/SAIR");
    t.wait_for("Leaving the room...");

    // Portuguese: the server's English reason in the client's own words.
    let t = Tmux::start_sized(
        "desk-pt",
        &format!("{CHAT} --server {} --user Yan --room Teste", d.addr),
        80,
        24,
    );
    let s = t.wait_for("Senha:");
    assert!(
        s.contains(
            "Login necessário ou senha incorreta: esse nome é registrado: é preciso a senha"
        ),
        "{s}"
    );
    assert!(!s.contains("registered name"), "{s}");
}

fn tls_flags<'a>(addr: &'a str, cert: &'a Path, key: &'a Path) -> Vec<&'a str> {
    vec![
        "--tls-listen",
        addr,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--room",
        "Teste:5",
    ]
}

#[test]
fn a_self_signed_server_is_trusted_by_its_pin_or_on_first_use() {
    let dir = TempDir::new("pins");
    let (cert_a, key_a, fp_a) = self_signed(dir.path(), "a");
    let (cert_b, key_b, fp_b) = self_signed(dir.path(), "b");
    let tls = format!("127.0.0.1:{}", free_port());
    let d = Daemon::start(&tls_flags(&tls, &cert_a, &key_a));

    // --tls-pin, as openssl prints the fingerprint: joins; another
    // certificate's pin is refused in words.
    let pinned = |pin: &str| {
        with_stdin(
            Command::new(CHAT)
                .args(["--server", &tls, "--tls-pin", &format!("sha256:{pin}")])
                .args(["--user", "u", "--room", "Teste", "--connect-timeout", "5"]),
            "oi\n",
        )
    };
    let out = pinned(&fp_a);
    assert!(out.status.success(), "{out:?}");
    let out = pinned(&fp_b);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not the pinned one"), "{err}");

    // --tofu: the first certificate is remembered (said on the screen).
    let known = dir.path().join("conf").join("known_hosts");
    let tofu = format!(
        "sh -c '{CHAT} --server {tls} --tofu --known-hosts {} --user Yan --room Teste; echo exit=$?; sleep 30'",
        known.display()
    );
    let t = Tmux::start_sized("desk-tofu", &tofu, 120, 24);
    t.wait_for("→ Yan entrou na sala");
    let hex_a = fp_a.replace(':', "").to_lowercase();
    t.wait_for(&format!("Primeira conexão com {tls}: certificado guardado"));
    t.wait_for(&format!("(sha256:{hex_a})"));
    t.wait_for(" Teste · 1/5 · ");
    let text = std::fs::read_to_string(&known).unwrap();
    assert_eq!(text.trim(), format!("{tls} sha256:{hex_a}"));
    t.enter("/quit");
    t.wait_for("exit=0");

    // Same address, another certificate: refused, loudly, with the fix.
    d.signal("TERM");
    let state = d.into_dir();
    let _d = Daemon::start_in(state, &tls_flags(&tls, &cert_b, &key_b));
    let t = Tmux::start_sized("desk-tofu-changed", &tofu, 120, 30);
    let s = t.wait_for("exit=3");
    let hex_b = fp_b.replace(':', "").to_lowercase();
    for want in [
        "ATENÇÃO: o certificado de ".to_string(),
        "MUDOU".to_string(),
        format!("guardado: sha256:{hex_a}"),
        format!("recebido: sha256:{hex_b}"),
        format!("apague a linha de {tls} em {}", known.display()),
    ] {
        assert!(s.contains(&want), "{want:?} in:\n{s}");
    }
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        text,
        "the remembered one stays"
    );
}
