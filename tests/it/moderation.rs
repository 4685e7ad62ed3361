//! Moderation (issue #27) through the real programs: topics, kicks with
//! a reason, bans (by name, account, address; with expiry; per room and
//! server-wide), mutes and `+m`, room operators by account, on the
//! prototype's protocol and on IRC; saved across a restart.

use std::time::Duration;

use crate::irc::{Irc, irc_daemon};
use crate::support::*;

const PASSWORD: &str = "correct horse battery";

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "chatctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_ban_removes_keeps_out_on_both_protocols_and_lapses() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:10"]);
    let mut ana = d.joined("Ana", "Teste");
    let mut yan = d.joined("Yan", "Teste");
    let _ = ana.event(); // Yan's join
    let out = ok(d.ctl(&[
        "room", "ban", "Teste", "yan", "--for", "2s", "--reason", "spam",
    ]));
    assert!(
        out.contains("banned 'yan' from room 'Teste' (spam) until"),
        "{out}"
    );
    // Yan is told why, and the room sees him go with the reason.
    let kicked = until(&mut yan, "kicked");
    assert_eq!(kicked["message"], "*** REMOVIDO DA SALA ***");
    assert!(
        kicked["reason"].as_str().unwrap().contains("spam"),
        "{kicked}"
    );
    assert!(yan.closed_within(Duration::from_secs(3)));
    let left = until(&mut ana, "leave");
    assert_eq!(left["username"], "Yan");
    assert!(left["reason"].as_str().unwrap().contains("spam"), "{left}");
    // A look-alike is kept out with 403 and the reason; so is the IRC nick.
    let mut again = d.join("YAN", "Teste");
    let ev = again.event();
    assert_eq!(ev["message"], "403", "{ev}");
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("banned from room 'Teste': spam (until ")
    );
    let mut irc = Irc::register(irc_addr, "yan");
    irc.send("JOIN #Teste");
    irc.expect("474", |l| l.contains(" 474 "));
    // IRC sees the ban as +b.
    irc.send("MODE #Teste +b");
    irc.expect("the ban list", |l| {
        l.contains(" 367 ") && l.contains("yan!*@*")
    });
    irc.send("QUIT");
    assert!(irc.closed_within(Duration::from_secs(3)));
    // Two seconds later it has lapsed: in again, and gone from the list.
    std::thread::sleep(Duration::from_millis(2300));
    d.joined("Yan", "Teste");
    assert!(eventually(Duration::from_secs(3), || {
        !ok(d.ctl(&["room", "bans", "Teste"])).contains("banned:")
    }));
}

#[test]
fn bans_by_address_and_server_wide_and_unban() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:10", "--room", "Outra:10"]);
    // A range that is not ours stops no one; ours does, on IRC too.
    ok(d.ctl(&["room", "ban", "Teste", "198.51.100.0/24"]));
    d.joined("Ana", "Teste");
    ok(d.ctl(&["room", "ban", "Teste", "127.0.0.0/8", "--reason", "local"]));
    let mut irc = Irc::register(irc_addr, "bia");
    irc.send("JOIN #Teste");
    irc.expect("474", |l| l.contains(" 474 "));
    ok(d.ctl(&["room", "unban", "Teste", "127.0.0.0/8"]));
    irc.send("JOIN #Teste");
    irc.expect("the JOIN", |l| l.contains("JOIN #Teste"));
    // A server-wide ban by name keeps one out of every room and removes
    // them where they are, IRC included (KICK, the connection stays).
    let out = ok(d.ctl(&["ban", "bia", "--reason", "everywhere"]));
    assert!(
        out.contains("banned 'bia' from every room (everywhere) for good"),
        "{out}"
    );
    irc.expect("a KICK", |l| {
        l.contains("KICK #Teste bia") && l.contains("everywhere")
    });
    irc.send("JOIN #Outra");
    irc.expect("474", |l| l.contains(" 474 "));
    irc.send("QUIT");
    assert!(irc.closed_within(Duration::from_secs(3)));
    let mut c = d.join("Bia", "Outra");
    assert_eq!(c.event()["message"], "403");
    assert!(ok(d.ctl(&["bans"])).contains("bia"));
    ok(d.ctl(&["unban", "bia"]));
    assert!(ok(d.ctl(&["bans"])).contains("no server-wide bans"));
    d.joined("Bia", "Outra");
    // Bad targets are refused in words.
    let out = d.ctl(&["room", "ban", "Teste", "10.0.0.0/99"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefix length"));
}

#[test]
fn mutes_and_moderated_rooms_answer_the_speaker_on_both_protocols() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:10"]);
    let mut ana = d.joined("Ana", "Teste");
    let mut yan = d.joined("Yan", "Teste");
    let _ = ana.event();
    let mut irc = Irc::register(irc_addr, "bia");
    irc.send("JOIN #Teste");
    irc.expect("the names", |l| l.contains(" 366 "));
    let _ = ana.event(); // bia's join
    let _ = yan.event();
    ok(d.ctl(&["room", "mute", "Teste", "yan", "--reason", "calma"]));
    yan.say("posso falar?");
    let ev = until(&mut yan, "error");
    assert_eq!(ev["message"], "403");
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("you are muted in room 'Teste': calma")
    );
    ana.expect_silence(Duration::from_millis(300));
    // Still in the room, still reading.
    irc.send("PRIVMSG #Teste :oi");
    assert_eq!(until(&mut yan, "message")["message"], "oi");
    assert_eq!(until(&mut ana, "message")["message"], "oi");
    ok(d.ctl(&["room", "unmute", "Teste", "yan"]));
    yan.say("agora sim");
    assert_eq!(until(&mut ana, "message")["message"], "agora sim");
    // +m: nobody but operators and voiced members.
    ok(d.ctl(&["room", "moderated", "Teste", "on"]));
    irc.send("PRIVMSG #Teste :e eu?");
    irc.expect("404", |l| l.contains(" 404 ") && l.contains("+m"));
    ana.say("e eu?");
    let ev = until(&mut ana, "error");
    assert!(ev["reason"].as_str().unwrap().contains("moderated"), "{ev}");
    irc.send("MODE #Teste");
    irc.expect("+m in the modes", |l| {
        l.contains(" 324 ") && l.contains('m')
    });
    ok(d.ctl(&["room", "moderated", "Teste", "off"]));
    ana.say("livre");
    assert_eq!(until(&mut yan, "message")["message"], "livre");
}

#[test]
fn topics_are_told_on_join_and_change_and_survive_a_restart() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:10"]);
    let mut ana = join_with(
        &d,
        "Ana",
        "Teste",
        serde_json::json!({"features": ["topic"]}),
    );
    assert_eq!(ana.event()["type"], "join");
    ok(d.ctl_with_stdin(&["user", "add", "bia"], &format!("{PASSWORD}\n")));
    ok(d.ctl(&["room", "op", "Teste", "bia"]));
    let mut irc = Irc::login(irc_addr, "bia", PASSWORD);
    irc.send("JOIN #Teste");
    irc.expect("the names", |l| l.contains(" 366 "));
    ok(d.ctl(&["room", "topic", "Teste", "Reunião às 10h"]));
    let ev = until(&mut ana, "topic");
    assert_eq!(ev["message"], "Reunião às 10h");
    assert_eq!(ev["reason"], "admin");
    irc.expect("TOPIC", |l| l.contains("TOPIC #Teste :Reunião às 10h"));
    // An IRC operator's TOPIC reaches the prototype's members, and lasts.
    irc.send("TOPIC #Teste :Nova pauta");
    let ev = until(&mut ana, "topic");
    assert_eq!(ev["message"], "Nova pauta");
    assert!(ev["reason"].as_str().unwrap().starts_with("bia!"), "{ev}");
    let shown = ok(d.ctl(&["room", "topic", "Teste"]));
    assert!(shown.contains("topic: Nova pauta (set by bia!"), "{shown}");
    drop((ana, irc));
    d.signal("TERM");
    let dir = d.into_dir();
    let d = Daemon::start_in(dir, &["--irc-listen", "127.0.0.1:0"]);
    let mut late = join_with(
        &d,
        "Caio",
        "Teste",
        serde_json::json!({"features": ["topic"]}),
    );
    assert_eq!(late.event()["type"], "join");
    assert_eq!(until(&mut late, "topic")["message"], "Nova pauta");
    // The prototype's own client (no features) never sees a topic event.
    let mut plain = d.joined("Davi", "Teste");
    ok(d.ctl(&["room", "topic", "Teste", ""]));
    plain.expect_silence(Duration::from_millis(300));
    assert!(ok(d.ctl(&["room", "topic", "Teste"])).contains("has no topic"));
}

#[test]
fn a_room_operator_moderates_from_chat_and_from_irc() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:10"]);
    for name in ["Yan", "Ana"] {
        ok(d.ctl_with_stdin(&["user", "add", name], &format!("{PASSWORD}\n")));
    }
    ok(d.ctl(&["room", "op", "Teste", "Yan"]));
    let out = d.ctl(&["room", "op", "Teste", "Ninguem"]);
    assert!(!out.status.success(), "an op must be an account");
    let features = serde_json::json!({"password": PASSWORD, "features": ["commands", "topic"]});
    let mut yan = join_with(&d, "Yan", "Teste", features);
    assert_eq!(yan.event()["type"], "join");
    let mut caio = join_with(
        &d,
        "Caio",
        "Teste",
        serde_json::json!({"features": ["commands"]}),
    );
    assert_eq!(caio.event()["type"], "join");
    let _ = yan.event();
    // Not an operator: refused in words, nothing sent to the room.
    caio.say("/kick Yan");
    let ev = until(&mut caio, "error");
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("only the operators"),
        "{ev}"
    );
    // `//` sends a slash as it is.
    caio.say("//shrug");
    assert_eq!(until(&mut yan, "message")["message"], "/shrug");
    // The operator: topic, mute, kick with a reason; each acknowledged.
    yan.say("/topic Sem spam, por favor");
    assert!(
        until(&mut yan, "notice")["message"]
            .as_str()
            .unwrap()
            .contains("done: room-topic")
    );
    assert_eq!(until(&mut yan, "topic")["message"], "Sem spam, por favor");
    yan.say("/mute Caio 10m chega");
    assert!(
        until(&mut yan, "notice")["message"]
            .as_str()
            .unwrap()
            .contains("room-mute 'Caio'")
    );
    caio.say("oi");
    assert!(
        until(&mut caio, "error")["reason"]
            .as_str()
            .unwrap()
            .contains("chega")
    );
    yan.say("/kick Caio tchau");
    let kicked = until(&mut caio, "kicked");
    assert_eq!(kicked["reason"], "tchau");
    yan.say("/limit 0");
    assert!(until(&mut yan, "error")["reason"].is_string());
    yan.say("/nonsense");
    assert!(
        until(&mut yan, "error")["reason"]
            .as_str()
            .unwrap()
            .contains("unknown command")
    );
    // On IRC the operator account gets +o on join, and may ban with +b
    // (saved, so it keeps the banned out of the chat port too); a
    // member who operates nothing may not.
    let mut bia = Irc::register(irc_addr, "bia");
    bia.send("JOIN #Teste");
    bia.expect("the names", |l| l.contains(" 366 "));
    bia.send("MODE #Teste +b caio!*@*");
    bia.expect("not an operator", |l| l.contains(" 482 "));
    ok(d.ctl(&["room", "op", "Teste", "Ana"]));
    let mut ana = Irc::login(irc_addr, "Ana", PASSWORD);
    ana.send("JOIN #Teste");
    ana.expect("+o", |l| l.contains("MODE #Teste +o Ana"));
    ana.send("MODE #Teste +b caio!*@*");
    ana.expect("the +b", |l| l.contains("MODE #Teste +b caio!*@*"));
    // As on ircds, +b keeps out who joins next and removes no one.
    ana.send("MODE #Teste +b bia!*@*");
    ana.expect("the +b", |l| l.contains("MODE #Teste +b bia!*@*"));
    bia.send("PING ainda");
    let next = bia.expect("the PONG or a KICK", |l| {
        l.contains("PONG") || l.contains("KICK")
    });
    assert!(next.contains("PONG"), "{next}");
    bia.send("PART #Teste");
    bia.send("JOIN #Teste");
    bia.expect("474", |l| l.contains(" 474 "));
    let mut back = d.join("Caio", "Teste");
    assert_eq!(back.event()["message"], "403");
    let bans = ok(d.ctl(&["room", "bans", "Teste"]));
    assert!(
        bans.contains("banned: caio") && bans.contains("operators: Yan, Ana"),
        "{bans}"
    );
    // Everything they did is in the audit log, with who did it.
    let logs = ok(d.ctl(&["logs", "-n", "200"]));
    assert!(logs.contains("by room operator 'Yan'"), "{logs}");
}

#[test]
fn members_that_ask_hear_the_room_s_limit_and_privacy_and_each_change() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:5"]);
    let mut ana = join_with(
        &d,
        "Ana",
        "Teste",
        serde_json::json!({"features": ["room"]}),
    );
    assert_eq!(ana.event()["type"], "join");
    let ev = until(&mut ana, "room");
    assert_eq!(
        (ev["limit"].as_u64(), ev["private"].as_bool()),
        (Some(5), Some(false)),
        "{ev}"
    );
    ok(d.ctl(&["room", "set-limit", "Teste", "7"]));
    assert_eq!(until(&mut ana, "room")["limit"], 7);
    // An IRC operator's +l too, and it lasts.
    ok(d.ctl_with_stdin(&["user", "add", "bia"], &format!("{PASSWORD}\n")));
    ok(d.ctl(&["room", "op", "Teste", "bia"]));
    let mut irc = Irc::login(irc_addr, "bia", PASSWORD);
    irc.send("JOIN #Teste");
    irc.expect("+o", |l| l.contains("MODE #Teste +o bia"));
    irc.send("MODE #Teste +l 9");
    irc.expect("the +l", |l| l.contains("MODE #Teste +l 9"));
    assert_eq!(until(&mut ana, "room")["limit"], 9);
    assert!(eventually(Duration::from_secs(3), || {
        std::fs::read_to_string(d.state_file()).is_ok_and(|s| s.contains("\"limit\": 9"))
    }));
    // A private room says so.
    let out = d.ctl_with_stdin(
        &[
            "room",
            "create",
            "Secreta",
            "--limit",
            "3",
            "--private",
            "--key",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let extra = serde_json::json!({"features": ["room"], "key": PASSWORD});
    let mut caio = join_with(&d, "Caio", "Secreta", extra);
    assert_eq!(caio.event()["type"], "join");
    let ev = until(&mut caio, "room");
    assert_eq!(
        (ev["limit"].as_u64(), ev["private"].as_bool()),
        (Some(3), Some(true)),
        "{ev}"
    );
}
