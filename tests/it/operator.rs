//! The operator's first steps, through the real programs: what chatd says
//! when it has no rooms or a --room disagrees with the state file, which
//! arguments are usage errors, host names where addresses go, and what
//! chatctl says when it cannot find chatd.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

#[test]
fn a_first_run_without_rooms_says_how_to_make_one() {
    let mut d = Daemon::start(&[]);
    let line = d.wait_log("no rooms yet", Duration::from_secs(2));
    assert!(
        line.contains("chatctl room create NAME --limit N"),
        "{line}"
    );
    assert!(line.contains(&d.control.display().to_string()), "{line}");
}

#[test]
fn a_room_flag_that_disagrees_with_the_state_file_is_warned_about() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    d.signal("TERM");
    let dir = d.into_dir();
    let mut d = Daemon::start_in(dir, &["--room", "Teste:2"]);
    let line = d.wait_log("--room Teste:2 ignored", Duration::from_secs(2));
    assert!(line.contains("WARN") && line.contains("limit 5"), "{line}");
    assert!(!d.log_lines().join("\n").contains("no rooms yet"));
}

#[test]
fn zero_limits_are_usage_errors() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    for args in [
        &["room", "set-limit", "Teste", "0"][..],
        &["room", "create", "X", "--limit", "0"],
    ] {
        let out = d.ctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    }
    let dir = TempDir::new("zero");
    let out = Command::new(CHATD)
        .args(["--room", "Bad:0", "--control"])
        .arg(dir.path().join("c.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!dir.path().join("state").join("rooms.json").exists());
}

#[test]
fn chatd_listens_on_a_host_name_as_chat_connects_to_one() {
    let mut d = Daemon::start(&["--listen", "localhost:0", "--room", "Teste:5"]);
    let line = d.wait_log("listening on ", Duration::from_secs(2));
    assert!(
        line.contains("127.0.0.1:") || line.contains("[::1]:"),
        "{line}"
    );
    let mut c = d.joined("Yan", "Teste");
    c.say("via localhost");
}

#[test]
fn chatctl_says_every_path_it_tried_and_asks_if_chatd_runs() {
    let tmp = TempDir::new("nochatd");
    let out = Command::new(CHATCTL)
        .arg("list")
        .env_remove("CHATD_CONTROL")
        .env_remove("RUNTIME_DIRECTORY")
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let uid = nix::unistd::getuid().as_raw();
    let first = tmp.path().join(format!("chatd-{uid}")).join("control.sock");
    assert!(err.contains(&first.display().to_string()), "{err}");
    assert!(err.contains("/run/chatd/control.sock"), "{err}");
    assert!(err.contains("is chatd running?"), "{err}");
}

#[test]
fn chatctl_status_tells_the_essentials() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let _c = d.joined("Yan", "Teste");
    let out = d.ctl(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        format!("pid              {}", d.pid()),
        format!("listening        {}", d.addr),
        format!("control socket   {}", d.control.display()),
        "clients          1".to_string(),
        "rooms            1".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} in\n{text}");
    }
    assert!(
        text.contains("uptime           ") && text.contains(" s\n"),
        "{text}"
    );
    let json = d.ctl(&["--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["status"]["pid"], d.pid());
    assert_eq!(v["status"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn logs_filter_by_time_and_priority_and_follow_ends_cleanly() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    // A warning: a refused join.
    let mut c = Client::connect(d.addr);
    c.handshake("Yan", "Nope");
    c.event();
    let warn = String::from_utf8_lossy(&d.ctl(&["logs", "--priority", "warn"]).stdout).into_owned();
    assert!(
        warn.contains("WARN") && warn.contains("refused 404"),
        "{warn}"
    );
    assert!(!warn.contains("INFO"), "{warn}");
    let recent = String::from_utf8_lossy(&d.ctl(&["logs", "--since", "1h"]).stdout).into_owned();
    assert!(recent.contains("started"), "{recent}");
    let future = d.ctl(&["logs", "--since", "2999-01-01T00:00:00Z"]);
    assert!(future.status.success());
    assert_eq!(String::from_utf8_lossy(&future.stdout), "");
    let bad = d.ctl(&["logs", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));

    // logs -f ends when chatd shuts down cleanly: exit 0, and it says so.
    let follower = Command::new(CHATCTL)
        .arg("--socket")
        .arg(&d.control)
        .args(["logs", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let st = d.stop();
    assert!(st.success());
    let out = follower.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chatd stopped (it shut down cleanly)"),
        "{out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("shutting down"));
}

#[test]
fn tables_align_wide_characters() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let _a = d.joined("王小明", "Teste");
    let _b = d.joined("Yan", "Teste");
    let out = d.ctl(&["participants", "Teste"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The ADDRESS column starts at the same display column on every row.
    let cols: Vec<usize> = text
        .lines()
        .map(|l| {
            let at = l.find("127.0.0.1").or_else(|| l.find("ADDRESS")).unwrap();
            unicode_width::UnicodeWidthStr::width(&l[..at])
        })
        .collect();
    assert!(cols.windows(2).all(|w| w[0] == w[1]), "{cols:?}\n{text}");
}

#[test]
fn one_noun_verb_grammar_with_the_old_spellings_kept() {
    let d = Daemon::start(&["--room", "Teste:5"]);
    let mut yan = d.joined("Yan", "Teste");
    let _ana = d.joined("Ana", "Teste");
    let new = d.ctl(&["room", "members", "Teste"]);
    let old = d.ctl(&["participants", "Teste"]);
    assert!(new.status.success() && old.status.success());
    assert_eq!(new.stdout, old.stdout);
    assert!(String::from_utf8_lossy(&new.stdout).contains("Ana"));
    let kicked = d.ctl(&["room", "kick", "Teste", "Yan"]);
    assert_eq!(
        String::from_utf8_lossy(&kicked.stdout),
        "removed 'Yan' from room 'Teste'\n"
    );
    assert_eq!(yan.event()["username"], "Ana");
    assert_eq!(yan.event()["type"], "kicked");
    // The old spelling still works, and help shows the new one.
    assert_eq!(d.ctl(&["kick", "Teste", "Ana"]).status.code(), Some(0));
    let help = Command::new(CHATCTL).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains("participants") && help.contains("room"),
        "{help}"
    );
}

#[test]
fn the_admin_shell_takes_chatctl_commands_and_the_prototype_menu() {
    let d = Daemon::start(&["--room", "Teste:2", "--room", "Tech:3"]);
    let _yan = d.joined("Yan", "Teste");
    let home = TempDir::new("home");
    // `chatctl` alone, on a terminal, opens the shell.
    let cmd = format!(
        "env HOME={} XDG_STATE_HOME= {CHATCTL} --socket {}",
        home.path().display(),
        d.control.display()
    );
    let t = Tmux::start("shell", &cmd);
    t.wait_for("/PARTICIPANTES -----> Listar participantes de uma determinada sala.");
    t.wait_for("Digite um comando:");

    // The prototype's /CRIAR, in any case, with its prompts.
    t.enter("/criar");
    t.wait_for("Nome da sala:");
    t.enter("Geral");
    t.wait_for("Limite de participantes:");
    t.enter("0");
    t.wait_for("Insira dados válidos.");
    t.enter("/CRIAR");
    t.wait_for("Nome da sala: Geral\nLimite de participantes: 0");
    t.enter("Geral");
    t.wait("the second limit prompt", |s| {
        s.matches("Limite de participantes:").count() == 2
    });
    t.enter("5");
    t.wait_for("Sala Geral criada.");
    let list = d.ctl(&["room", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("Geral"));

    // /PARTICIPANTES: the rooms, the question, the prototype's listing;
    // Tab completes the room name by asking chatd.
    t.enter("/PARTICIPANTES");
    t.wait_for("Digite o nome da sala que deseja ver os participantes:");
    t.type_text("Tes");
    t.keys(&["Tab"]);
    t.wait_for("participantes: Teste");
    t.keys(&["Enter"]);
    t.wait_for("****** PARTICIPANTES DA SALA \"Teste\" ******");
    t.wait_for("1 - Yan");

    // chatctl's own grammar, completed with Tab.
    t.type_text("room mem");
    t.keys(&["Tab"]);
    t.wait_for("Digite um comando: room members");
    // The space after "members" came with the completion.
    t.type_text("Tech");
    t.keys(&["Enter"]);
    t.wait_for("room 'Tech' has no participants");

    // Unknown menu commands stay local; history recalls the last line.
    t.enter("/XYZ");
    t.wait_for("Comando Inválido!");
    t.keys(&["Up"]);
    t.wait_for("Digite um comando: /XYZ");
    t.keys(&["C-u"]);

    // /ENCERRAR closes a room; /LOGS shows the log; /SAIR leaves.
    t.enter("/encerrar");
    t.wait_for("Digite o nome da sala a ser encerrada:");
    t.enter("Geral");
    t.wait_for("Sala encerrada.");
    t.enter("/logs");
    t.wait_for("****** LOGS ******");
    t.wait_for("- ");
    let screen = t.wait_for("room 'Geral' closed");
    assert!(screen.contains("INFO"), "{screen}");
    t.enter("/SAIR");
    assert!(eventually(Duration::from_secs(5), || !t.alive()));
    let history = std::fs::read_to_string(home.path().join(".local/state/chatd/chatctl_history"))
        .unwrap_or_default();
    assert!(
        history.contains("/CRIAR") && history.contains("room members Tech"),
        "{history}"
    );
}

#[test]
fn chatctl_alone_without_a_terminal_is_a_usage_error() {
    let out = Command::new(CHATCTL).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a command is needed"));
    let out = Command::new(CHATCTL)
        .arg("shell")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a terminal"));
}
