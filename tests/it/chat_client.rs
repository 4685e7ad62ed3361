//! The `chat` client against a real chatd: scripted mode through pipes, and
//! interactive mode in real terminals (tmux, each test on its own tmux
//! server socket so tests run in parallel).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::support::*;

/// A scripted `chat` whose stdin we hold open and whose stdout we read.
struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Bot {
    fn start(d: &Daemon, user: &str, room: &str, extra: &[&str]) -> Bot {
        let mut child = Command::new(CHAT)
            .args([
                "--server",
                &d.addr.to_string(),
                "--user",
                user,
                "--room",
                room,
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Bot {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(5))
            .expect("expected a line from chat")
    }

    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < end, "chat did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a scripted `chat` with `input` on its stdin, to completion.
fn chat_with_stdin(d: &Daemon, user: &str, room: &str, input: &[u8]) -> std::process::Output {
    with_stdin(
        Command::new(CHAT).args([
            "--server",
            &d.addr.to_string(),
            "--user",
            user,
            "--room",
            room,
        ]),
        input,
    )
}

#[test]
fn scripted_clients_talk() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut bob = Bot::start(&d, "Bob", "Teste", &[]);
    assert_eq!(bob.line(), "Bob > *** ENTROU NA SALA ***");

    let out = chat_with_stdin(
        &d,
        "Ann",
        "Teste",
        b"hello {there}\r\nol\xc3\xa1\n\nlast line without newline",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Ann > *** ENTROU NA SALA ***\n"
    );

    assert_eq!(bob.line(), "Ann > *** ENTROU NA SALA ***");
    assert_eq!(bob.line(), "Ann > hello {there}");
    assert_eq!(bob.line(), "Ann > olá");
    assert_eq!(bob.line(), "Ann > last line without newline");
    assert_eq!(bob.line(), "Ann > *** SAIU DA SALA ***");

    bob.send("bye\n");
    let (code, err) = bob.finish();
    assert_eq!(code, Some(0), "{err}");
}

/// Bug: U+2028, U+2029, U+200B and other invisible format characters
/// reached the terminal as they were, so a message could break lines or
/// hide text; they are shown as escapes, as U+202E already was.
#[test]
fn invisible_characters_are_shown_not_hidden() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let bob = Bot::start(&d, "Bob", "Teste", &[]);
    assert_eq!(bob.line(), "Bob > *** ENTROU NA SALA ***");
    let mut ann = d.joined("Ann", "Teste");
    assert_eq!(bob.line(), "Ann > *** ENTROU NA SALA ***");
    ann.say("a\u{2028}b\u{2029}c\u{200b}d\u{2060}e\u{feff}f\u{ad}g");
    assert_eq!(
        bob.line(),
        "Ann > a\\u{2028}b\\u{2029}c\\u{200b}d\\u{2060}e\\u{feff}f\\u{ad}g"
    );
    // Emoji sequences keep their joiners.
    ann.say("👨\u{200d}👩\u{200d}👧 👍🏽");
    assert_eq!(bob.line(), "Ann > 👨\u{200d}👩\u{200d}👧 👍🏽");
}

/// Bug: a paste longer than the frame limit ended the session with 413.
#[test]
fn a_paste_past_the_frame_limit_arrives_in_parts() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut ana = d.joined("Ana", "Teste");
    let paste = "palavra ".repeat(5000); // 40,000 bytes
    let out = chat_with_stdin(&d, "Yan", "Teste", format!("{paste}\ndepois\n").as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ana.event()["type"], "join");
    let mut got = String::new();
    let mut parts = 0;
    loop {
        let ev = ana.event();
        assert_eq!(ev["type"], "message", "{ev}");
        let text = ev["message"].as_str().unwrap().to_string();
        got.push(' ');
        if text == "depois" {
            break;
        }
        assert!(text.len() <= 16384);
        got.push_str(&text);
        parts += 1;
    }
    assert_eq!(parts, 3);
    // Cut at spaces: every word arrives whole.
    let words: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(words.len(), 5000);
    assert!(words.iter().all(|w| *w == "palavra"));
}

#[test]
fn scripted_json_prints_event_lines_as_received() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let bot = Bot::start(&d, "Bob", "Teste", &["--json"]);
    let line = bot.line();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "join");
    assert_eq!(v["username"], "Bob");
    let (code, _) = bot.finish();
    assert_eq!(code, Some(0));
}

fn run_chat(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(CHAT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn scripted_refusals_and_errors_have_exit_statuses() {
    let d = Daemon::start(&["--room", "Teste:1"]);
    let server = d.addr.to_string();
    let (code, err) = run_chat(&["--server", &server, "--user", "A", "--room", "Nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("404") && err.contains("no room named 'Nope'"),
        "{err}"
    );

    let bob = Bot::start(&d, "Bob", "Teste", &[]);
    assert_eq!(bob.line(), "Bob > *** ENTROU NA SALA ***");
    let (code, err) = run_chat(&["--server", &server, "--user", "Bob", "--room", "Teste"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("409"), "{err}");
    let (code, err) = run_chat(&["--server", &server, "--user", "Cid", "--room", "Teste"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("501") && err.contains("full"), "{err}");

    let (code, err) = run_chat(&["--server", &server, "--room", "Teste"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--user"), "{err}");

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (code, err) = run_chat(&["--server", &port, "--user", "A", "--room", "B"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn scripted_rejected_message_is_reported() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let out = chat_with_stdin(&d, "A", "Teste", b"bell\x07\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("message rejected (400)"), "{err}");
}

#[test]
fn scripted_client_reports_room_closed_by_admin() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let bob = Bot::start(&d, "Bob", "Teste", &[]);
    assert_eq!(bob.line(), "Bob > *** ENTROU NA SALA ***");
    assert!(d.ctl(&["room", "close", "Teste"]).status.success());
    assert_eq!(bob.line(), "Sistema > *** SALA ENCERRADA ***");
    let (code, err) = bob.finish();
    assert_eq!(code, Some(1));
    assert!(err.contains("encerrada"), "{err}");
}

#[test]
fn hostile_server_cannot_drive_the_terminal() {
    // A fake server that sends escape sequences in every field.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(
            b"{\"username\":\"Bob\",\"message\":\"*** ENTROU NA SALA ***\",\"type\":\"join\"}\n\
              {\"username\":\"\\u001b[31mEvil\",\"message\":\"\\u001b]0;pwned\\u0007\\u009b2J\\u202eabc\",\"type\":\"message\"}\n\
              raw \x1b[2J garbage line\n",
        )
        .unwrap();
    });
    let out = Command::new(CHAT)
        .args(["--server", &addr, "--user", "Bob", "--room", "R"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    server.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.stdout.contains(&0x1b),
        "escape byte reached the terminal: {text:?}"
    );
    assert!(!text.contains('\u{9b}') && !text.contains('\u{202e}') && !text.contains('\u{7}'));
    assert!(text.contains("\\u{1b}[31mEvil > \\u{1b}]0;pwned"), "{text}");
}

// ---------------------------------------------------------------------------
// Interactive mode, in real terminals
// ---------------------------------------------------------------------------

#[test]
fn interactive_two_people_talk_and_leave_with_sair() {
    let d = Daemon::start(&["--room", "Teste:2"]);
    // --plain: the prototype's line-by-line dialogue.
    let cmd = format!("{CHAT} --plain --server {}", d.addr);
    let yan = Tmux::start("yan", &cmd);
    yan.wait_for("Username:");
    yan.enter("Yan");
    yan.wait_for("Escolha a sala:");
    yan.enter("Nope");
    // A room that does not exist: said so, and asked again.
    yan.wait_for("A sala escolhida não existe. Tente novamente.");
    yan.wait("second room prompt", |s| {
        s.matches("Escolha a sala:").count() == 2
    });
    yan.enter("Teste");
    yan.wait_for("Para sair, digite o comando /SAIR.");
    yan.wait_for("Yan > *** ENTROU NA SALA ***");

    let ana = Tmux::start("ana", &format!("{cmd} --user Ana --room Teste"));
    ana.wait_for("Ana > *** ENTROU NA SALA ***");
    yan.wait_for("Ana > *** ENTROU NA SALA ***");

    // Ana is half-way through a line when Yan's message arrives: the event
    // appears above, and her line is redrawn intact.
    ana.type_text("digitando");
    ana.wait("typed text", |s| {
        s.lines().any(|l| l.trim_end() == "Ana > digitando")
    });
    yan.enter("Olá {tudo bem}");
    ana.wait_for("Yan > Olá {tudo bem}");
    assert_eq!(ana.last_line(), "Ana > digitando");
    ana.keys(&["BSpace", "BSpace", "BSpace", "BSpace"]);
    ana.enter("!");
    yan.wait_for("Ana > digit!");

    // /SAIR: the other side sees the leave notice; Yan is asked for a room.
    yan.enter("/SAIR");
    ana.wait_for("Yan > *** SAIU DA SALA ***");
    yan.wait_for("Saindo da sala...");
    yan.wait("room prompt after /SAIR", |s| {
        s.matches("Escolha a sala:").count() == 3
    });
}

#[test]
fn interactive_full_room_and_taken_name_ask_again() {
    let d = Daemon::start(&["--room", "Cheia:1", "--room", "Livre:5"]);
    let _occupant = d.joined("Yan", "Cheia");
    let _other = d.joined("Yan", "Livre");
    let t = Tmux::start("full", &format!("{CHAT} --server {} --user Ana", d.addr));
    t.wait_for("Escolha a sala:");
    t.enter("Cheia");
    t.wait_for("A sala escolhida está cheia. Tente outra.");
    t.wait("room prompt again", |s| {
        s.matches("Escolha a sala:").count() == 2
    });
    t.enter("Livre");
    t.wait_for("→ Ana entrou na sala");

    let t2 = Tmux::start("taken", &format!("{CHAT} --server {} --room Livre", d.addr));
    t2.wait_for("Username:");
    t2.enter("Ana");
    t2.wait_for("Esse nome já está em uso nesta sala. Escolha outro.");
    t2.wait("username prompt again", |s| {
        s.matches("Username:").count() == 2
    });
    t2.enter("Bia");
    t2.wait_for("→ Bia entrou na sala");
}

#[test]
fn interactive_ctrl_c_and_ctrl_d_exit_and_restore_the_terminal() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let dir = TempDir::new("tty");
    for (tag, key) in [("cc", "C-c"), ("cd", "C-d")] {
        let report = dir.path().join(format!("{tag}.txt"));
        let cmd = format!(
            "sh -c '{CHAT} --server {} --user U{tag} --room Teste; echo exit=$? > {p}; stty -a >> {p}; sleep 30'",
            d.addr,
            p = report.display()
        );
        let t = Tmux::start(tag, &cmd);
        t.wait_for(&format!("→ U{tag} entrou na sala"));
        press_and_expect_a_clean_exit(&t, key, &report);
    }
}

/// Presses `key` in a terminal running `chat` under the report wrapper
/// (`echo exit=$? > report; stty -a >> report`): chat must exit 0 within
/// 5 s and leave the terminal as it found it.
fn press_and_expect_a_clean_exit(t: &Tmux, key: &str, report: &std::path::Path) {
    t.keys(&[key]);
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(report)
            .is_ok_and(|s| s.contains("icanon"))),
        "chat did not exit on {key}"
    );
    let text = std::fs::read_to_string(report).unwrap();
    assert!(text.starts_with("exit=0"), "{text}");
    // Canonical mode and echo are back on (stty prints "-icanon" when off).
    assert!(
        !text.contains("-icanon") && !text.contains("-echo "),
        "{text}"
    );
}

#[test]
fn interactive_client_says_when_the_server_stops() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let t = Tmux::start(
        "stop",
        &format!(
            "sh -c '{CHAT} --plain --server {} --user Yan --room Teste; sleep 30'",
            d.addr
        ),
    );
    t.wait_for("Yan > *** ENTROU NA SALA ***");
    assert!(d.stop().success());
    t.wait_for("Sistema > *** SERVIDOR ENCERRANDO ***");
    t.wait_for("O servidor está encerrando.");
}

/// Bug: `--plain` sent `/help` and `/who` to the room as messages; they
/// stay local, as on the full screen (README).
#[test]
fn plain_keeps_help_and_who_local() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut ana = d.joined("Ana", "Teste");
    let t = Tmux::start(
        "plain-local",
        &format!("{CHAT} --plain --server {} --user Yan --room Teste", d.addr),
    );
    t.wait_for("Yan > *** ENTROU NA SALA ***");
    assert_eq!(ana.event()["username"], "Yan");
    t.enter("/who");
    t.wait_for("Na sala (2): Ana, Yan");
    t.enter("/help");
    t.wait_for("Comandos: /help");
    assert!(
        !t.screen().contains("Sistema >"),
        "the members event is not printed"
    );
    t.enter("depois");
    let ev = ana.event();
    assert_eq!(
        ev["message"], "depois",
        "/who and /help never reached the room: {ev}"
    );
}

/// A server that accepts connections (as many as come, for up to 30 s) and
/// never answers: not a chatd, or a stuck one.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    addr
}

/// Bug: against a server that accepted but never answered the handshake,
/// `chat` waited forever.
#[test]
fn scripted_gives_up_on_a_server_that_never_answers() {
    let addr = silent_server();
    let start = Instant::now();
    let mut child = Command::new(CHAT)
        .args(["--server", &addr, "--user", "u", "--room", "r"])
        .args(["--connect-timeout", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take();
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "chat did not give up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not answer the join within 1 s"), "{err}");
}

/// Bug: in a terminal, Ctrl-C and Ctrl-D did nothing until the server had
/// answered the join.
#[test]
fn interactive_ctrl_c_and_ctrl_d_work_before_the_join_is_answered() {
    let addr = silent_server();
    let dir = TempDir::new("tty-early");
    for (tag, key) in [("ec", "C-c"), ("ed", "C-d")] {
        let report = dir.path().join(format!("{tag}.txt"));
        let cmd = format!(
            "sh -c '{CHAT} --server {addr} --user U{tag} --room Teste --connect-timeout 60; echo exit=$? > {p}; stty -a >> {p}; sleep 30'",
            p = report.display()
        );
        let t = Tmux::start(tag, &cmd);
        t.wait_for("Para sair, digite o comando /SAIR.");
        std::thread::sleep(Duration::from_millis(300));
        press_and_expect_a_clean_exit(&t, key, &report);
    }
}

/// A registered name: chat says a login is needed, asks for the password
/// without echoing it, and joins.
#[test]
fn interactive_asks_for_the_password_of_a_registered_name() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let add = d.ctl_with_stdin(&["user", "add", "Yan"], "hidden treasure 42\n");
    assert!(add.status.success(), "{add:?}");
    let t = Tmux::start(
        "login",
        &format!("{CHAT} --server {} --user Yan --room Teste", d.addr),
    );
    t.wait_for("Login necessário ou senha incorreta");
    t.wait_for("Senha:");
    t.enter("hidden treasure 42");
    let screen = t.wait_for("→ Yan entrou na sala");
    assert!(!screen.contains("hidden treasure"), "{screen}");
}

#[test]
fn a_busy_server_s_503_is_retried_with_backoff() {
    let d = Daemon::start(&["--room", "Teste:5", "--max-clients", "1"]);
    let hog = d.joined("Ana", "Teste");
    let mut bia = Bot::start(&d, "Bia", "Teste", &[]);
    // Refused at first (the one seat is taken); the seat frees up later.
    std::thread::sleep(Duration::from_millis(700));
    drop(hog);
    assert_eq!(bia.line(), "Bia > *** ENTROU NA SALA ***");
    bia.send("oi");
    let (code, err) = bia.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("the server is busy (503") && err.contains("trying again in"),
        "{err}"
    );
}
