//! Private rooms through the real programs: an allow-list of logged-in
//! users, a room key, what `list` shows, edits with members inside, and
//! persistence.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn join(d: &Daemon, hs: Value) -> (Client, Value) {
    let mut c = Client::connect(d.addr);
    c.send_frame(hs.to_string().as_bytes());
    let ev = c.event();
    (c, ev)
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_allow_list_admits_logged_in_users_and_a_removal_kicks() {
    let d = Daemon::start(&["--room", "Lobby:10"]);
    ok(&d.ctl_with_stdin(&["user", "add", "yan"], "yan's password\n"));
    ok(&d.ctl_with_stdin(&["user", "add", "bia"], "bia's password\n"));
    let created = ok(&d.ctl(&["room", "create", "Secreta", "--limit", "5", "--private"]));
    assert_eq!(created, "created private room 'Secreta' (limit 5)\n");
    let allowed = ok(&d.ctl(&["room", "allow", "Secreta", "yan"]));
    assert_eq!(allowed, "private room 'Secreta' allows: yan\n");
    let list = ok(&d.ctl(&["list"]));
    assert!(list.contains("Secreta (private)  0/5"), "{list}");
    assert!(list.contains("Lobby  "), "{list}");
    let json_list = ok(&d.ctl(&["--json", "list"]));
    assert!(
        json_list.contains(r#"{"name":"Lobby","limit":10,"members":0}"#),
        "{json_list}"
    );
    assert!(
        json_list.contains(r#""private":true,"allowed":["yan"]"#),
        "{json_list}"
    );

    // yan, logged in and listed: in. ana (no account), bia (not listed),
    // and yan without logging in: 403 / 401.
    let (mut yan, ev) = join(
        &d,
        json!({"username": "yan", "room": "Secreta", "password": "yan's password"}),
    );
    assert_eq!(ev["type"], "join", "{ev}");
    for (hs, code) in [
        (json!({"username": "ana", "room": "Secreta"}), "403"),
        (
            json!({"username": "bia", "room": "Secreta", "password": "bia's password"}),
            "403",
        ),
        (json!({"username": "yan", "room": "Secreta"}), "401"),
    ] {
        let (_c, ev) = join(&d, hs.clone());
        assert_eq!(ev["message"], code, "{hs}: {ev}");
        assert_eq!(ev["room"], "Secreta");
    }
    // participants, as before.
    let ps = d
        .admin()
        .request(json!({"cmd":"participants","room":"Secreta"}));
    assert_eq!(ps["participants"][0]["username"], "yan");

    // bia allowed while yan is inside; then yan denied: kicked.
    ok(&d.ctl(&["room", "allow", "Secreta", "bia"]));
    let (mut bia, ev) = join(
        &d,
        json!({"username": "bia", "room": "Secreta", "password": "bia's password"}),
    );
    assert_eq!(ev["type"], "join", "{ev}");
    assert_eq!(yan.event()["username"], "bia");
    let denied = ok(&d.ctl(&["room", "deny", "Secreta", "yan"]));
    assert_eq!(denied, "private room 'Secreta' allows: bia\n");
    let ev = yan.event();
    assert_eq!(ev["type"], "kicked", "{ev}");
    assert!(yan.closed_within(Duration::from_secs(5)));
    let ev = bia.event();
    assert_eq!(
        (ev["type"].as_str(), ev["username"].as_str()),
        (Some("leave"), Some("yan"))
    );

    // A public room cannot get an allow-list.
    let out = d.ctl(&["room", "allow", "Lobby", "yan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("public"));
}

#[test]
fn a_room_key_admits_whoever_knows_it_and_everything_persists() {
    let d = Daemon::start(&[]);
    ok(&d.ctl_with_stdin(
        &[
            "room",
            "create",
            "Cofre",
            "--limit",
            "3",
            "--private",
            "--key",
        ],
        "the room's key\n",
    ));
    ok(&d.ctl_with_stdin(&["user", "add", "yan"], "yan's password\n"));
    ok(&d.ctl(&["room", "allow", "Cofre", "yan"]));
    let (_ana, ev) = join(
        &d,
        json!({"username": "ana", "room": "Cofre", "key": "the room's key"}),
    );
    assert_eq!(ev["type"], "join", "{ev}");
    let (_c, ev) = join(
        &d,
        json!({"username": "bob", "room": "Cofre", "key": "guess"}),
    );
    assert_eq!(ev["message"], "403");
    assert!(
        ev["reason"].as_str().unwrap().contains("wrong room key"),
        "{ev}"
    );
    // chat with --room-key-file.
    let dir = TempDir::new("roomkey");
    let keyfile = dir.path().join("key");
    std::fs::write(&keyfile, "the room's key\n").unwrap();
    let out = Command::new(CHAT)
        .args(["--server", &d.addr.to_string(), "--user", "carla", "--room"])
        .args(["Cofre", "--room-key-file"])
        .arg(&keyfile)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // On disk: the key only as a hash; after a restart all is as it was.
    let state = std::fs::read_to_string(d.state_file()).unwrap();
    assert!(!state.contains("the room's key"), "{state}");
    assert!(
        state.contains("$argon2id$") && state.contains("\"private\": true"),
        "{state}"
    );
    assert!(!d.log_lines().join("\n").contains("the room's key"));
    d.signal("TERM");
    let dir = d.into_dir();
    let d = Daemon::start_in(dir, &[]);
    let (_ana, ev) = join(
        &d,
        json!({"username": "ana", "room": "Cofre", "key": "the room's key"}),
    );
    assert_eq!(ev["type"], "join", "{ev}");
    let (_yan, ev) = join(
        &d,
        json!({"username": "yan", "room": "Cofre", "password": "yan's password"}),
    );
    assert_eq!(ev["type"], "join", "{ev}");
    // close works as before.
    let closed = ok(&d.ctl(&["room", "close", "Cofre"]));
    assert!(closed.contains("2 member(s) disconnected"), "{closed}");
}
