//! The full-screen `chat`, in real terminals (tmux) at 80×24 and after a
//! resize to 40 columns: the room list at the prompt, history replay, the
//! member list following joins and leaves, editing by grapheme, input
//! history, status lines never mixed with typed text, client commands
//! that stay local, a room operator's commands.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// The row the input line is on, at 24 rows.
const INPUT_ROW: usize = 23;

fn row(t: &Tmux, n: usize) -> String {
    t.screen()
        .lines()
        .nth(n)
        .unwrap_or("")
        .trim_end()
        .to_string()
}

fn wait_row(t: &Tmux, n: usize, want: &str) {
    t.wait(&format!("row {n} = {want:?}"), |s| {
        s.lines().nth(n).unwrap_or("").trim_end() == want
    });
}

/// Sends `lines` as `user` in `room` with the scripted client.
fn say(d: &Daemon, user: &str, room: &str, lines: &str) {
    let out = with_stdin(
        Command::new(CHAT).args([
            "--server",
            &d.addr.to_string(),
            "--user",
            user,
            "--room",
            room,
        ]),
        lines,
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_full_screen_at_80_columns_then_40() {
    let d = Daemon::start(&["--room", "Lobby:10"]);
    let out = d.ctl(&["room", "create", "Teste", "--limit", "5", "--history", "10"]);
    assert!(out.status.success());
    say(&d, "Buendia", "Teste", "velha um\nvelha dois\n");

    let t = Tmux::start_sized("tui", &format!("{CHAT} --server {}", d.addr), 80, 24);
    t.wait_for("Username:");
    t.enter("Yan");
    // The room prompt offers the public rooms with occupancy and limit.
    t.wait_for("Salas disponíveis: 1) Lobby (0/10), 2) Teste (0/5)");
    // A number from the list picks that room.
    t.enter("2");

    // History first (before our join), then the join; the status bar
    // and the member list.
    let s = t.wait_for("→ Yan entrou na sala");
    let velha = s.find("Buendia > velha um").expect("history replayed");
    let dois = s.find("Buendia > velha dois").expect("history replayed");
    assert!(velha < dois && dois < s.find("→ Yan entrou na sala").unwrap());
    wait_row(
        &t,
        22,
        &format!(" Teste · 1/5 · {} · sem TLS · /help", d.addr),
    );
    assert_eq!(row(&t, 1), format!("{:<60}│Yan", ""));

    // Bia joins and talks while Yan is typing: the message goes to the
    // log, Yan's line stays as typed; the member list follows.
    t.type_text("digitando");
    wait_row(&t, INPUT_ROW, "Yan > digitando");
    let mut bia = d.joined("Bia", "Teste");
    t.wait("Bia listed", |s| s.contains("│Bia"));
    bia.say("oi Yan");
    t.wait_for("Bia > oi Yan");
    assert_eq!(row(&t, INPUT_ROW), "Yan > digitando");
    wait_row(
        &t,
        22,
        &format!(" Teste · 2/5 · {} · sem TLS · /help", d.addr),
    );
    drop(bia);
    t.wait_for("← Bia saiu da sala");
    t.wait("Bia gone from the list", |s| !s.contains("│Bia"));

    // Editing by grapheme: one Backspace takes é (e + combining accent)
    // or 👍🏽 whole; arrows, Home, Ctrl-W/U/K.
    t.keys(&["C-u"]);
    t.type_text("cafe\u{301} 👍🏽");
    wait_row(&t, INPUT_ROW, "Yan > cafe\u{301} 👍🏽");
    t.keys(&["BSpace"]);
    wait_row(&t, INPUT_ROW, "Yan > cafe\u{301}");
    t.keys(&["BSpace", "BSpace"]);
    wait_row(&t, INPUT_ROW, "Yan > caf");
    t.type_text("é bom");
    // Ctrl-W takes the word back to the space, as in readline.
    t.keys(&["C-w", "BSpace"]);
    wait_row(&t, INPUT_ROW, "Yan > café");
    t.keys(&["Home"]);
    t.type_text("um ");
    t.keys(&["End"]);
    t.type_text("!");
    wait_row(&t, INPUT_ROW, "Yan > um café!");
    t.keys(&["Left", "Left", "C-k"]);
    wait_row(&t, INPUT_ROW, "Yan > um caf");
    t.keys(&["C-u"]);
    t.enter("primeira");
    t.enter("segunda");
    t.wait_for("Yan > segunda");
    // History: ↑ twice is the first line sent.
    t.keys(&["Up", "Up"]);
    wait_row(&t, INPUT_ROW, "Yan > primeira");
    t.keys(&["Down", "Down"]);
    wait_row(&t, INPUT_ROW, "Yan >");

    // Client commands stay local; //text sends /text.
    let mut ana = d.joined("Ana", "Teste");
    t.wait("Ana listed", |s| s.contains("│Ana"));
    t.enter("/help");
    t.wait_for("-- Comandos: /help esta ajuda");
    t.enter("/who");
    t.wait_for("-- Na sala (2): Yan, Ana");
    t.enter("/salas");
    t.wait_for("-- Salas: 1) Lobby (0/10), 2) Teste (2/5)");
    t.enter("/shrug");
    t.wait_for("-- Comando desconhecido: /shrug (nada foi enviado");
    t.enter("//shrug");
    let ev = ana.event();
    assert_eq!(
        ev["message"], "/shrug",
        "only //shrug reached the room: {ev}"
    );
    ana.expect_silence(Duration::from_millis(300));

    // 40 columns: the member list gives way, long lines wrap under their
    // text, the status bar and the input line stay whole.
    ana.say("uma mensagem comprida que certamente passa de quarenta colunas");
    t.wait_for("Ana > uma mensagem");
    t.resize(40, 24);
    t.wait("wrapped at 40 columns", |s| {
        s.lines()
            .any(|l| l.trim_end().ends_with("Ana > uma mensagem comprida que"))
    });
    let s = t.screen();
    // Continuation rows start under the text (12 columns in), and lines
    // break between words.
    assert!(
        s.contains("\n            certamente passa de quarenta\n"),
        "{s}"
    );
    assert!(!s.contains('│'), "no member list at 40 columns:\n{s}");
    let status: String = format!(" Teste · 2/5 · {} · sem TLS · /help", d.addr)
        .chars()
        .take(40)
        .collect();
    assert_eq!(row(&t, 22), status.trim_end());
    t.type_text("depois do resize");
    wait_row(&t, INPUT_ROW, "Yan > depois do resize");

    // /SAIR leaves for the room prompt, the terminal back to normal.
    t.keys(&["C-u"]);
    t.enter("/SAIR");
    t.wait_for("Saindo da sala...");
    t.wait_for("Escolha a sala:");
}

#[test]
fn the_full_screen_says_why_the_session_ended() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let t = Tmux::start_sized(
        "tui-stop",
        &format!(
            "sh -c '{CHAT} --server {} --user Yan --room Teste; sleep 30'",
            d.addr
        ),
        80,
        24,
    );
    t.wait_for("→ Yan entrou na sala");
    let out = d.ctl(&["room", "kick", "Teste", "Yan", "--reason", "tchau"]);
    assert!(out.status.success(), "{out:?}");
    // The full screen is gone (its only room is over); the reason stays
    // on the normal screen, and another room is asked for. (A server
    // that stops is waited for: chat_desk.rs.)
    t.wait_for("Você foi removido da sala: tchau");
    t.wait_for("Escolha a sala:");
}

#[test]
fn the_full_screen_exits_when_its_terminal_goes_away() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let dir = TempDir::new("hup");
    let pidfile = dir.path().join("pid");
    let t = Tmux::start_sized(
        "tui-hup",
        &format!(
            "sh -c 'echo $$ > {}; exec {CHAT} --server {} --user Yan --room Teste'",
            pidfile.display(),
            d.addr
        ),
        80,
        24,
    );
    t.wait_for("→ Yan entrou na sala");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(t); // kill-server: the terminal is gone
    let gone = eventually(Duration::from_secs(5), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
    });
    assert!(gone, "chat {pid} still runs after its terminal went away");
}

#[test]
fn a_room_operator_moderates_from_the_full_screen() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let password = "correct horse battery";
    let out = d.ctl_with_stdin(&["user", "add", "Ana"], &format!("{password}\n"));
    assert!(out.status.success(), "{out:?}");
    assert!(d.ctl(&["room", "op", "Teste", "Ana"]).status.success());
    assert!(d.ctl(&["room", "topic", "Teste", "Pauta"]).status.success());
    let dir = TempDir::new("tui-op");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let t = Tmux::start_sized(
        "tui-op",
        &format!(
            "sh -c '{CHAT} --server {} --user Ana --room Teste --password-file {}; sleep 30'",
            d.addr,
            pw.display()
        ),
        100,
        24,
    );
    t.wait_for("Sistema > Tópico: Pauta");
    let mut yan = d.joined("Yan", "Teste");
    t.wait_for("→ Yan entrou na sala");
    t.enter("/topic Nova pauta");
    t.wait_for("done: room-topic 'Teste': Nova pauta");
    t.wait_for("Sistema > Tópico: Nova pauta");
    t.enter("/mute Yan 10m calma");
    t.wait_for("done: room-mute 'Yan' in 'Teste' for 10m (calma)");
    yan.say("oi?");
    assert_eq!(yan.event()["message"], "403", "muted");
    t.enter("//shrug");
    assert_eq!(yan.event()["message"], "/shrug");
    t.enter("/kick Yan tchau");
    t.wait_for("← Yan saiu da sala (tchau)");
    assert!(
        !t.screen().contains("oi?"),
        "a muted message reached the room"
    );
    // /help names the operators' commands.
    t.enter("/help");
    t.wait_for("Operadores da sala: /kick");
}

#[test]
fn tab_completes_names_me_is_an_action_and_a_mention_rings_the_bell() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let t = Tmux::start_sized(
        "tui-me",
        &format!("{CHAT} --server {} --user Yan --room Teste", d.addr),
        80,
        24,
    );
    t.wait_for("→ Yan entrou na sala");
    let mut ana = d.joined("Ana", "Teste");
    t.wait_for("→ Ana entrou na sala");
    // The status bar follows the room's limit.
    t.wait_for(" Teste · 2/5 ·");
    assert!(d.ctl(&["room", "set-limit", "Teste", "8"]).status.success());
    t.wait_for(" Teste · 2/8 ·");
    // Tab completes a name from the room.
    t.type_text("an");
    t.keys(&["Tab"]);
    t.type_text("oi");
    t.keys(&["Enter"]);
    assert_eq!(ana.event()["message"], "Ana: oi");
    t.enter("/me acena");
    t.wait_for("* Yan acena");
    assert_eq!(ana.event()["message"], "/me acena", "sent as a message");
    ana.say("/me sorri");
    t.wait_for("* Ana sorri");
    assert_eq!(
        t.format("#{window_bell_flag}"),
        "0",
        "no bell before a mention"
    );
    ana.say("yan: viu?");
    t.wait_for("Ana > yan: viu?");
    // The bell: tmux marks the window that rang it.
    assert!(eventually(Duration::from_secs(3), || t
        .format("#{window_bell_flag}")
        == "1"));
}
