//! Accounts through the real programs: chatctl registers them (password
//! from a pipe), chat logs in (from a pipe, and asked in a real terminal),
//! chatd refuses the wrong and the missing password, limits failed logins
//! per address, keeps accounts across restarts, and never writes a
//! password anywhere.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

const PASSWORD: &str = "correct horse battery";

/// A raw join with an optional password; the first event back.
fn join_with(d: &Daemon, user: &str, password: Option<&str>) -> (Client, serde_json::Value) {
    let mut c = Client::connect(d.addr);
    let mut hs = json!({"username": user, "room": "Teste"});
    if let Some(p) = password {
        hs["password"] = json!(p);
    }
    c.send_frame(hs.to_string().as_bytes());
    let ev = c.event();
    (c, ev)
}

fn no_password_anywhere(d: &Daemon, password: &str) {
    let logs = d.ctl(&["--json", "logs", "-n", "1000"]);
    assert!(!String::from_utf8_lossy(&logs.stdout).contains(password));
    assert!(!d.log_lines().join("\n").contains(password));
    let users = std::fs::read_to_string(d.state_file().with_file_name("users.json")).unwrap();
    assert!(!users.contains(password), "a password in users.json");
}

#[test]
fn accounts_log_in_refuse_and_persist() {
    let d = Daemon::start(&["--room", "Teste:10"]);
    let out = d.ctl_with_stdin(&["user", "add", "Yan"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "registered account 'Yan'\n"
    );
    // Too short, and a look-alike of a registered name: refused.
    let out = d.ctl_with_stdin(&["user", "add", "Ana"], "short\n");
    assert_eq!(out.status.code(), Some(1));
    let out = d.ctl_with_stdin(&["user", "add", "YAN"], &format!("{PASSWORD}\n"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let list = d.ctl(&["user", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "Yan\n");
    // Stored as an Argon2id hash, readable by chatd alone.
    let users_file = d.state_file().with_file_name("users.json");
    let users = std::fs::read_to_string(&users_file).unwrap();
    assert!(users.contains("$argon2id$"), "{users}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&users_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The registered name: only with its password.
    for (user, password, why) in [
        ("Yan", None, "a password is needed"),
        ("Yan", Some("wrong password!"), "wrong name or password"),
        ("yan", None, "looks like the registered name"),
        // A look-alike or an unknown name with a password: the same words
        // as a wrong password (nothing revealed).
        ("yan", Some(PASSWORD), "wrong name or password"),
        ("Ana", Some(PASSWORD), "wrong name or password"),
    ] {
        let (mut c, ev) = join_with(&d, user, password);
        assert_eq!(ev["message"], "401", "{user} {password:?}: {ev}");
        assert_eq!(ev["room"], "Teste");
        assert!(ev["reason"].as_str().unwrap().contains(why), "{ev}");
        assert!(c.closed_within(Duration::from_secs(5)));
    }
    let (_yan, ev) = join_with(&d, "Yan", Some(PASSWORD));
    assert_eq!(ev["type"], "join", "{ev}");
    // Unregistered names still join public rooms, as the prototype did.
    let (_ana, ev) = join_with(&d, "Ana", None);
    assert_eq!(ev["type"], "join", "{ev}");
    no_password_anywhere(&d, PASSWORD);

    // Restart: the account is still there.
    d.signal("TERM");
    let dir = d.into_dir();
    let d = Daemon::start_in(dir, &["--room", "Teste:10"]);
    let (_yan, ev) = join_with(&d, "Yan", Some(PASSWORD));
    assert_eq!(ev["type"], "join", "{ev}");

    // A new password: the old one stops working.
    let new = "staple battery horse";
    let out = d.ctl_with_stdin(&["user", "passwd", "Yan"], &format!("{new}\n"));
    assert!(out.status.success(), "{out:?}");
    let (_c, ev) = join_with(&d, "Yan", Some(PASSWORD));
    assert_eq!(ev["message"], "401", "{ev}");
    // Deleted: the name is free again.
    assert!(d.ctl(&["user", "del", "Yan"]).status.success());
    let (_c, ev) = join_with(&d, "Yan", None);
    assert_eq!(ev["message"], "409", "still in the room from before: {ev}");
    no_password_anywhere(&d, new);
}

#[test]
fn chat_logs_in_from_a_pipe() {
    let d = Daemon::start(&["--room", "Teste:10"]);
    let out = d.ctl_with_stdin(&["user", "add", "Yan"], &format!("{PASSWORD}\n"));
    assert!(out.status.success());
    let mut ana = d.joined("Ana", "Teste");
    let out = with_stdin(
        Command::new(CHAT)
            .args(["--server", &d.addr.to_string(), "--user", "Yan", "--room"])
            .args(["Teste", "--password-stdin"]),
        format!("{PASSWORD}\nolá, sou eu\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(ana.event()["username"], "Yan");
    let ev = ana.event();
    assert_eq!(
        ev["message"], "olá, sou eu",
        "the password was not sent as a message"
    );
    // Without a password, chat says why and exits 1.
    let out = with_stdin(
        Command::new(CHAT)
            .args(["--server", &d.addr.to_string(), "--user", "Yan", "--room"])
            .arg("Teste"),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("join refused (401)"));
}

#[test]
fn require_login_admits_accounts_only() {
    let d = Daemon::start(&["--room", "Teste:10", "--require-login"]);
    let (_c, ev) = join_with(&d, "Ana", None);
    assert_eq!(ev["message"], "401", "{ev}");
    assert!(ev["reason"].as_str().unwrap().contains("login required"));
    let out = d.ctl_with_stdin(&["user", "add", "Ana"], &format!("{PASSWORD}\n"));
    assert!(out.status.success());
    // The prototype's framing with the optional password field.
    let (_c, ev) = join_with(&d, "Ana", Some(PASSWORD));
    assert_eq!(ev["type"], "join", "{ev}");
}

#[test]
fn failed_logins_are_rate_limited_per_address_and_logged() {
    let mut d = Daemon::start(&["--room", "Teste:10"]);
    let out = d.ctl_with_stdin(&["user", "add", "Yan"], &format!("{PASSWORD}\n"));
    assert!(out.status.success());
    let mut reasons = Vec::new();
    for i in 0..8 {
        let (_c, ev) = join_with(&d, "Yan", Some(&format!("guess number {i}")));
        assert_eq!(ev["message"], "401");
        reasons.push(ev["reason"].as_str().unwrap().to_string());
    }
    let wrong = reasons
        .iter()
        .filter(|r| *r == "wrong name or password")
        .count();
    let limited = reasons
        .iter()
        .filter(|r| r.contains("too many failed logins from 127.0.0.1"))
        .count();
    assert_eq!((wrong, limited), (5, 3), "{reasons:?}");
    // Even the right password waits out the window from this address.
    let (_c, ev) = join_with(&d, "Yan", Some(PASSWORD));
    assert!(
        ev["reason"]
            .as_str()
            .unwrap_or("")
            .contains("too many failed logins"),
        "{ev}"
    );
    let line = d.wait_log(
        "login refused (401) to 'Yan' from 127.0.0.1",
        Duration::from_secs(2),
    );
    assert!(!line.contains("guess"), "{line}");
    no_password_anywhere(&d, "guess number");
}

#[test]
fn a_failed_save_registers_nothing() {
    let d = Daemon::start(&["--room", "Teste:10"]);
    let blocker = d
        .state_file()
        .with_file_name(format!("users.json.tmp.{}", d.pid()));
    std::fs::create_dir(&blocker).unwrap();
    let out = d.ctl_with_stdin(&["user", "add", "Yan"], &format!("{PASSWORD}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not saved, nothing changed"));
    assert_eq!(
        String::from_utf8_lossy(&d.ctl(&["user", "list"]).stdout),
        "no accounts\n"
    );
    let (_c, ev) = join_with(&d, "Yan", None);
    assert_eq!(ev["type"], "join", "{ev}");
}
