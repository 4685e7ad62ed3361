//! The handshake parser and message validation on any payload: no panic;
//! whatever they accept obeys the name and message rules, and encodes to an
//! event line that is pure ASCII with exactly one literal `}` (its last
//! byte) and parses back to the same strings.
#![no_main]

use chatd::core::wire::{self, Event, EventKind};
use libfuzzer_sys::fuzz_target;

fn check_event(username: &str, message: &str, room: &str) {
    let event = Event {
        kind: EventKind::Message,
        username: username.to_string(),
        message: message.to_string(),
        room: Some(room.to_string()),
        reason: None,
    };
    let line = event.encode();
    assert!(line.is_ascii());
    assert_eq!(line.iter().filter(|&&b| b == b'}').count(), 1);
    assert!(line.ends_with(b"}\n"));
    let v: serde_json::Value = serde_json::from_slice(&line).expect("event parses");
    assert_eq!(v["username"], username);
    assert_eq!(v["message"], message);
    assert_eq!(v["room"], room);
    assert_eq!(Event::parse(&line), Ok(event));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(hs) = wire::parse_handshake(data) {
        assert!(wire::validate_room_name(&hs.room).is_ok());
        // Without a token, a name; with one, maybe none (it is the token's).
        assert!(hs.username.is_some() || hs.token.is_some());
        assert!(!(hs.password.is_some() && hs.token.is_some()));
        if let Some(username) = &hs.username {
            assert!(wire::validate_username(username).is_ok());
            assert!(!username.chars().any(char::is_control));
            check_event(username, wire::JOINED, &hs.room);
        }
        // Credentials never show in the handshake's Debug form.
        let shown = format!("{hs:?}");
        for secret in [&hs.password, &hs.token, &hs.key].into_iter().flatten() {
            if secret.len() > 8 {
                assert!(!shown.contains(secret.as_str()));
            }
        }
    }
    if let Ok(text) = wire::validate_message(data) {
        assert!(!text.chars().any(|c| c.is_control() && c != '\t'));
        check_event("u", text, "r");
    }
    // Any string at all must encode safely, whatever the validators say.
    let lossy = String::from_utf8_lossy(data);
    check_event(&lossy, &lossy, &lossy);
});
