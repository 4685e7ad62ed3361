//! The IRC door's codec on any bytes: no panic, every line either a
//! message or a reason, and every message chatd parses encodes to a line
//! that parses back the same (its text turned into a room's message too).
#![no_main]

use chatd::core::codec::{Codec, Decoded, Protocol};
use chatd::core::{irc, ircmap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::new(Protocol::Irc, 16384);
    for chunk in data.chunks(97) {
        let n = codec.space().min(chunk.len());
        codec.push(&chunk[..n]);
        while let Some(decoded) = codec.next(true) {
            let Ok(Decoded::Irc(Ok(msg))) = decoded else {
                continue;
            };
            let line = msg.encode();
            assert_eq!(irc::parse(&line[..line.len() - 1]).as_ref(), Ok(&msg));
            if let Some(text) = msg.params.last() {
                let _ = ircmap::room_text(text);
            }
        }
    }
});
