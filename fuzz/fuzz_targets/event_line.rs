//! The client's side of the wire on any bytes from a server: no panic;
//! whatever `Event::parse` accepts re-encodes to a line that parses back
//! to the same event; and the client session splits any chunking the same
//! way.
#![no_main]

use chatd::client::session::ClientSession;
use chatd::core::wire::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::parse(data) {
        let line = event.encode();
        assert!(line.is_ascii());
        assert_eq!(Event::parse(&line), Ok(event));
    }
    let mut whole = ClientSession::new("u", "r");
    let at_once = whole.received(data);
    let mut split = ClientSession::new("u", "r");
    let mut in_pieces = Vec::new();
    for chunk in data.chunks(3) {
        in_pieces.extend(split.received(chunk));
        if in_pieces
            .iter()
            .any(|u| matches!(u, chatd::client::session::Update::End(_)))
        {
            break;
        }
    }
    assert_eq!(at_once, in_pieces);
});
