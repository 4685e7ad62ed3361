//! The configuration file and SIGHUP, through the real chatd: keys set
//! flags, the command line wins, mistakes name the line, a reload applies
//! what can change live and names what needs a restart. And chatctl's
//! completions, which ask the running chatd for room names.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn write_config(d: &TempDir, text: &str) -> String {
    let path = d.path().join("chatd.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn ctl_stdout(d: &Daemon, args: &[&str]) -> String {
    let out = d.ctl(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_file_sets_flags_and_the_command_line_wins() {
    let dir = TempDir::new("cfg");
    let conf = write_config(
        &dir,
        "# rooms\nroom = [\"Teste:3\", \"Tech:4\"]\nlog-messages = true\n",
    );
    let mut d = Daemon::start_in(dir, &["--config", &conf, "--room", "Geral:2"]);
    d.wait_log(
        &format!("configuration read from {conf}"),
        Duration::from_secs(2),
    );
    // --room on the command line replaces the file's list.
    let list = ctl_stdout(&d, &["room", "list"]);
    assert!(list.contains("Geral") && !list.contains("Teste"), "{list}");
    // log-messages came from the file.
    let mut a = d.joined("Ana", "Geral");
    a.say("ola do arquivo");
    d.wait_log("ola do arquivo", Duration::from_secs(2));
}

#[test]
fn mistakes_stop_chatd_with_the_file_and_line_named() {
    let dir = TempDir::new("cfg");
    for (text, want) in [
        ("max-clients = 5\n\nbogus = 1\n", ":3: unknown key 'bogus'"),
        (
            "max_frame = 5\n",
            ":1: unknown key 'max_frame': did you mean 'max-frame'?",
        ),
        ("sendq = \"lots\"\n", ":1: sendq = \"lots\": "),
        ("room = [\"Bad:0\"]\n", "the limit must be at least 1"),
        ("listen = \n", ":1: "),
    ] {
        let conf = write_config(&dir, text);
        let out = Command::new(CHATD)
            .args(["--config", &conf, "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(&format!("config: {conf}")), "{text}: {err}");
        assert!(err.contains(want), "{text}: want {want:?} in {err}");
    }
    let missing = dir.path().join("nowhere.toml");
    let out = Command::new(CHATD)
        .args(["--config", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.toml"));
}

#[test]
fn sighup_applies_live_changes_and_names_those_that_need_a_restart() {
    let dir = TempDir::new("cfg");
    let conf = write_config(&dir, "max-clients = 5\nroom = [\"Teste:3\"]\n");
    let conf_path = dir.path().join("chatd.toml");
    let mut d = Daemon::start_in(dir, &["--config", &conf]);
    let _a = d.joined("Ana", "Teste");

    std::fs::write(
        &conf_path,
        "max-clients = 1\nroom = [\"Teste:3\", \"Nova:2\"]\nlog-level = \"warn\"\n",
    )
    .unwrap();
    d.signal("HUP");
    d.wait_log("reload: room", Duration::from_secs(2));
    let logs = ctl_stdout(&d, &["logs"]);
    assert!(
        logs.contains("reload: max-clients 5 -> 1 (in effect now)"),
        "{logs}"
    );
    assert!(
        logs.contains("reload: log-level info -> warn (in effect now)"),
        "{logs}"
    );
    let restart = d
        .log_lines()
        .into_iter()
        .find(|l| l.contains("reload: room"))
        .unwrap();
    assert!(
        restart.contains("WARN") && restart.contains("needs a restart"),
        "{restart}"
    );
    // max-clients 1 holds now: Ana has the one seat.
    let mut b = Client::connect(d.addr);
    b.handshake("Bia", "Teste");
    let ev = b.event();
    assert_eq!(ev["message"], "503", "{ev}");
    // log-level warn: info entries stay out of the log target, not out of
    // `chatctl logs`.
    ctl_stdout(&d, &["room", "create", "Quieta", "--limit", "2"]);
    let logs = ctl_stdout(&d, &["logs"]);
    assert!(logs.contains("Quieta"), "{logs}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!d.log_lines().join("\n").contains("Quieta"));

    // A broken file changes nothing.
    std::fs::write(&conf_path, "max-clients = 7\nbogus = true\n").unwrap();
    d.signal("HUP");
    let line = d.wait_log("the running configuration stays", Duration::from_secs(2));
    assert!(line.contains(":2: unknown key 'bogus'"), "{line}");
    let mut c = Client::connect(d.addr);
    c.handshake("Caio", "Teste");
    assert_eq!(c.event()["message"], "503");
}

#[test]
fn completions_ask_the_running_daemon_for_room_names() {
    let d = Daemon::start(&["--room", "Teste:2", "--room", "Tech:2", "--room", "Geral:2"]);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/completions/chatctl.bash");
    let bin_dir = std::path::Path::new(CHATCTL).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &str| {
        // As bash calls it: COMP_WORDS/COMP_CWORD set, then the function
        // with the command, the current word and the previous one.
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_TYPE=9; _clap_complete_chatctl chatctl \"${{COMP_WORDS[COMP_CWORD]}}\" \
             \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .env("PATH", &path)
            .env("CHATD_CONTROL", &d.control)
            .output()
            .unwrap();
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        got.sort();
        got
    };
    assert_eq!(complete("chatctl room members T"), ["Tech", "Teste"]);
    let all = complete("chatctl room close ''");
    for room in ["Geral", "Tech", "Teste"] {
        assert!(all.contains(&room.to_string()), "{all:?}");
    }
    assert!(complete("chatctl room ''").contains(&"members".to_string()));
}
