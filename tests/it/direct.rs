//! Direct messages on the prototype's protocol (issue #28): `/msg` from a
//! member that asked for `"commands"`, a `direct` event to one connection
//! of a person that asked for `"direct"`, from IRC too; refusals that
//! leave the connection open; nothing changes for the prototype's client.

use std::time::Duration;

use serde_json::json;

use crate::irc::{Irc, irc_daemon};
use crate::support::*;

#[test]
fn a_direct_message_reaches_one_connection_of_the_person() {
    let (d, irc_addr) = irc_daemon(&["--room", "Teste:10", "--room", "Lobby:10"]);
    let mut ana = join_with(&d, "Ana", "Teste", json!({"features": ["commands"]}));
    until(&mut ana, "join");
    // Bob sits in two rooms (two connections, one name), both asking.
    let direct = json!({"features": ["direct"]});
    let mut bob1 = join_with(&d, "Bob", "Teste", direct.clone());
    until(&mut bob1, "join");
    let mut bob2 = join_with(&d, "Bob", "Lobby", direct);
    until(&mut bob2, "join");
    until(&mut ana, "join"); // Bob's

    ana.say("/msg bob oi, só pra você");
    let ev = until(&mut bob1, "direct");
    assert_eq!(ev["username"], "Ana");
    assert_eq!(ev["message"], "oi, só pra você");
    assert!(ev["ts"].is_string(), "{ev}");
    assert!(ev.get("room").is_none(), "no room: {ev}");
    bob2.expect_silence(Duration::from_millis(300));
    // Nobody in the room saw it.
    ana.expect_silence(Duration::from_millis(100));

    // From IRC: PRIVMSG to the name.
    let mut carl = Irc::register(irc_addr, "carl");
    carl.send("PRIVMSG Bob :e de IRC");
    let ev = until(&mut bob1, "direct");
    assert_eq!(
        (ev["username"].as_str(), ev["message"].as_str()),
        (Some("carl"), Some("e de IRC"))
    );
    // To IRC: a chat-port member's /msg is a PRIVMSG from name!name@chat.
    ana.say("/msg carl olá carl");
    carl.expect("Ana's PRIVMSG", |l| {
        l.contains("PRIVMSG carl :olá carl") && l.starts_with(":Ana!")
    });
    // Actions both ways: `/me` is a CTCP ACTION on IRC.
    ana.say("/msg carl /me acena");
    carl.expect("Ana's ACTION", |l| {
        l.ends_with("PRIVMSG carl :\u{1}ACTION acena\u{1}")
    });
    carl.send("PRIVMSG Bob :\u{1}ACTION sorri\u{1}");
    let ev = until(&mut bob1, "direct");
    assert_eq!(ev["message"], "/me sorri");

    // The oldest connection gone, the other one gets them.
    drop(bob1);
    until(&mut ana, "leave");
    ana.say("/msg Bob ainda aí?");
    let ev = until(&mut bob2, "direct");
    assert_eq!(ev["message"], "ainda aí?");
}

#[test]
fn refusals_say_why_and_the_prototype_s_client_is_unchanged() {
    let d = Daemon::start(&["--room", "Teste:10"]);
    let mut ana = join_with(&d, "Ana", "Teste", json!({"features": ["commands"]}));
    until(&mut ana, "join");
    // The prototype's client: asks for nothing.
    let mut old = d.joined("Velho", "Teste");
    until(&mut ana, "join");

    ana.say("/msg Velho oi");
    let ev = until(&mut ana, "error");
    assert_eq!(ev["message"], "404");
    assert_eq!(
        ev["reason"],
        "that person's client cannot receive direct messages"
    );
    ana.say("/msg ninguem oi");
    let ev = until(&mut ana, "error");
    assert_eq!(ev["reason"], "no one called 'ninguem' is here");
    ana.say("/msg Velho");
    let ev = until(&mut ana, "error");
    assert_eq!(ev["message"], "400");
    old.expect_silence(Duration::from_millis(300));

    // A `/msg` from a client without "commands" is a message, as before.
    old.say("/msg Ana isto é uma mensagem");
    let ev = until(&mut ana, "message");
    assert_eq!(ev["message"], "/msg Ana isto é uma mensagem");
    // Ana is still connected and talks.
    ana.say("ainda aqui");
    let ev = old.event();
    assert_eq!(ev["message"], "ainda aqui");
}
