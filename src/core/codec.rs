//! Protocols as codecs: a chat connection's wire protocol, sans-IO. A
//! [`Codec`] takes the plaintext the transport read (plain or TLS: the
//! codec never sees TLS), frames it within its bound, and turns each frame
//! into a protocol-neutral [`Command`] (join, list the rooms, say), or a
//! refusal in the protocol's terms; [`encode`] turns an [`Event`] into the
//! protocol's bytes. The chat part drives the commands and never parses a
//! frame itself, so a second protocol is a new [`Protocol`] arm here, not a
//! change to the chat part's frame handling or to the loop.
//!
//! Two protocols: the prototype's (PROTOCOL.md: 10-byte length headers, a
//! JSON handshake, UTF-8 messages, JSON event lines), and IRC (lines split
//! by core/lines.rs within IRC's bounds, each parsed by core/irc.rs into a
//! [`Decoded::Irc`] message; what a command means is the IRC door's
//! business, daemon/chat/irc.rs, since most IRC commands ask about state).

use super::irc;
use super::lines::{Line, LineBuffer};
use super::wire::{self, Decoder, ErrorCode, Event, FrameError, Handshake, Hello};

/// The wire protocols chatd speaks to chat clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The prototype's framing and JSON (docs/PROTOCOL.md).
    Prototype,
    /// IRC (RFC 1459/2812, the Modern IRC documents, IRCv3 tags).
    Irc,
}

/// The longest IRC line kept whole, without its LF: the tags' bound and
/// the message's (its CR included).
const IRC_LINE_MAX: usize = irc::MAX_TAGS + irc::MAX_LINE;

/// What a peer asked, whatever its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Join a room (the handshake).
    Join(Handshake),
    /// List the public rooms, then close (the prototype's `{"list":"rooms"}`).
    ListRooms,
    /// A member's message to its room.
    Say(String),
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Command(Command),
    /// A member's frame refused (400) with the stream still in sync: the
    /// member is told and stays.
    Rejected(&'static str),
    /// A handshake refused (400): the connection is told and closes; the
    /// room it named, when it named a valid one.
    Refused {
        code: ErrorCode,
        reason: String,
        room: Option<String>,
    },
    /// An IRC line: a message, or why it is not one (an empty line is
    /// skipped, never given). The stream stays in sync either way.
    Irc(Result<irc::Message, irc::ParseError>),
}

/// How a protocol splits its input.
#[derive(Debug)]
enum Framing {
    Frames(Decoder),
    Lines(LineBuffer),
}

/// One connection's decoder: framing with a bound, then parsing.
#[derive(Debug)]
pub struct Codec {
    protocol: Protocol,
    frames: Framing,
}

impl Codec {
    /// A codec whose frames may be `max_frame` bytes (a handshake may be
    /// [`wire::MAX_HANDSHAKE_FRAME`] whatever the bound says).
    /// An IRC line is bounded by IRC's limits, whatever `max_frame` says.
    pub fn new(protocol: Protocol, max_frame: usize) -> Codec {
        let frames = match protocol {
            Protocol::Prototype => {
                Framing::Frames(Decoder::new(max_frame.max(wire::MAX_HANDSHAKE_FRAME)))
            }
            Protocol::Irc => Framing::Lines(LineBuffer::new(IRC_LINE_MAX)),
        };
        Codec { protocol, frames }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Plaintext from the transport.
    pub fn push(&mut self, bytes: &[u8]) {
        match &mut self.frames {
            Framing::Frames(d) => d.push(bytes),
            Framing::Lines(l) => l.push(bytes),
        }
    }

    /// How many more bytes the codec takes now (for lines: up to one
    /// line past the bound, so an over-long one is seen and skipped).
    pub fn space(&self) -> usize {
        match &self.frames {
            Framing::Frames(d) => d.space(),
            Framing::Lines(l) => (IRC_LINE_MAX + 1).saturating_sub(l.len()),
        }
    }

    /// Bytes held that are not yet a whole frame (a peer that stops here
    /// stopped mid-frame).
    pub fn buffered(&self) -> usize {
        match &self.frames {
            Framing::Frames(d) => d.buffered(),
            Framing::Lines(l) => l.len(),
        }
    }

    /// Whether [`Codec::next`] has a frame or an error to give.
    pub fn frame_ready(&self) -> bool {
        match &self.frames {
            Framing::Frames(d) => d.frame_ready(),
            Framing::Lines(l) => l.has_line() || l.len() > IRC_LINE_MAX,
        }
    }

    /// After the join: frames are bounded by `--max-frame` from now on
    /// (an IRC line keeps IRC's bound).
    pub fn joined(&mut self, max_frame: usize) {
        if let Framing::Frames(d) = &mut self.frames {
            d.set_max_frame(max_frame);
        }
    }

    /// The next frame, decoded for a connection still in its handshake or
    /// (`member`) in a room; `Err` for a framing error, after which the
    /// stream is out of sync (400/413, then close).
    pub fn next(&mut self, member: bool) -> Option<Result<Decoded, FrameError>> {
        let frames = match &mut self.frames {
            Framing::Frames(d) => d,
            Framing::Lines(lines) => return irc_line(lines).map(Ok),
        };
        let frame = match frames.next_frame()? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(match self.protocol {
            Protocol::Prototype if member => prototype_message(frame),
            Protocol::Prototype => prototype_hello(&frame),
            Protocol::Irc => unreachable!("IRC is framed by lines"),
        }))
    }
}

/// An event as the prototype's bytes, stamped `ts`. (An IRC line depends
/// on who sends and who receives it: daemon/chat/irc.rs renders it with
/// core/irc.rs.)
pub fn encode(event: &Event, ts: &str) -> Vec<u8> {
    event.encode_at(ts)
}

/// The next IRC line, parsed; empty lines are skipped.
fn irc_line(lines: &mut LineBuffer) -> Option<Decoded> {
    loop {
        return match lines.next_line()? {
            Line::TooLong => Some(Decoded::Irc(Err(irc::ParseError::TooLong))),
            Line::Complete(line) => match irc::parse(&line) {
                Err(irc::ParseError::Empty) => continue,
                parsed => Some(Decoded::Irc(parsed)),
            },
        };
    }
}

fn prototype_hello(frame: &[u8]) -> Decoded {
    match wire::parse_hello(frame) {
        Ok(Hello::Join(hs)) => Decoded::Command(Command::Join(hs)),
        Ok(Hello::ListRooms) => Decoded::Command(Command::ListRooms),
        Err(e) => Decoded::Refused {
            code: ErrorCode::BadRequest,
            reason: e.reason,
            room: e.room,
        },
    }
}

fn prototype_message(frame: Vec<u8>) -> Decoded {
    if let Err(reason) = wire::validate_message(&frame) {
        return Decoded::Rejected(reason);
    }
    let text = String::from_utf8(frame).expect("validated as UTF-8");
    Decoded::Command(Command::Say(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wire::encode_frame;

    fn codec() -> Codec {
        Codec::new(Protocol::Prototype, 100)
    }

    #[test]
    fn a_handshake_is_a_join_or_a_room_list() {
        let mut c = codec();
        c.push(&encode_frame(br#"{"username":"Yan","room":"Teste"}"#));
        match c.next(false) {
            Some(Ok(Decoded::Command(Command::Join(hs)))) => {
                assert_eq!(
                    (hs.username.as_deref(), hs.room.as_str()),
                    (Some("Yan"), "Teste")
                );
            }
            other => panic!("{other:?}"),
        }
        c.push(&encode_frame(br#"{"list":"rooms"}"#));
        assert_eq!(
            c.next(false),
            Some(Ok(Decoded::Command(Command::ListRooms)))
        );
        assert_eq!(c.next(false), None);
    }

    #[test]
    fn a_bad_handshake_is_refused_with_the_room_it_named() {
        let mut c = codec();
        c.push(&encode_frame(br#"{"username":"Sistema","room":"Teste"}"#));
        match c.next(false) {
            Some(Ok(Decoded::Refused { code, room, .. })) => {
                assert_eq!(
                    (code, room.as_deref()),
                    (ErrorCode::BadRequest, Some("Teste"))
                );
            }
            other => panic!("{other:?}"),
        }
        c.push(&encode_frame(b"not json"));
        assert!(matches!(
            c.next(false),
            Some(Ok(Decoded::Refused { room: None, .. }))
        ));
    }

    #[test]
    fn a_members_frame_is_a_message_or_rejected_in_sync() {
        let mut c = codec();
        c.joined(100);
        c.push(&encode_frame("olá".as_bytes()));
        c.push(&encode_frame(b"\xff\xfe"));
        c.push(&encode_frame(b"ainda aqui"));
        assert_eq!(
            c.next(true),
            Some(Ok(Decoded::Command(Command::Say("olá".into()))))
        );
        assert_eq!(
            c.next(true),
            Some(Ok(Decoded::Rejected("message is not valid UTF-8")))
        );
        assert_eq!(
            c.next(true),
            Some(Ok(Decoded::Command(Command::Say("ainda aqui".into()))))
        );
    }

    #[test]
    fn a_framing_error_is_an_error_and_events_encode_as_the_prototype_does() {
        let mut c = codec();
        c.joined(10);
        c.push(&encode_frame(&[b'x'; 11]));
        assert!(matches!(c.next(true), Some(Err(_))));
        let event = Event::error(ErrorCode::BadRequest, None, "no");
        let ts = "2026-12-04T10:00:00Z";
        assert_eq!(encode(&event, ts), event.encode_at(ts));
    }

    #[test]
    fn irc_lines_are_messages_an_over_long_one_is_refused_in_sync() {
        let mut c = Codec::new(Protocol::Irc, 100);
        c.push(b"NICK yan\r\n\r\nUSER y 0 * :Yan");
        assert!(c.frame_ready());
        assert_eq!(
            c.next(false),
            Some(Ok(Decoded::Irc(Ok(irc::Message::new(
                None,
                "NICK",
                &["yan"]
            )))))
        );
        assert_eq!(c.next(false), None, "the empty line is skipped, USER waits");
        c.push(b" An\n");
        assert!(matches!(c.next(false), Some(Ok(Decoded::Irc(Ok(m)))) if m.command == "USER"));
        let long = vec![b'x'; IRC_LINE_MAX + 10];
        let mut pushed = 0;
        while pushed < long.len() {
            let n = c.space().min(long.len() - pushed);
            assert!(n > 0, "the codec keeps taking input");
            c.push(&long[pushed..pushed + n]);
            pushed += n;
            while let Some(d) = c.next(true) {
                assert_eq!(d, Ok(Decoded::Irc(Err(irc::ParseError::TooLong))));
            }
        }
        c.push(b"\r\nPING x\r\n");
        assert!(matches!(c.next(true), Some(Ok(Decoded::Irc(Ok(m)))) if m.command == "PING"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The IRC codec on any bytes, in any chunking: no panic, and
            /// every message re-encodes to a line that parses back the same.
            #[test]
            fn irc_lines_decode_or_are_refused_and_round_trip(
                bytes in proptest::collection::vec(any::<u8>(), 0..2000),
                chunk in 1usize..300,
            ) {
                let mut c = Codec::new(Protocol::Irc, 100);
                for piece in bytes.chunks(chunk) {
                    let n = c.space().min(piece.len());
                    c.push(&piece[..n]);
                    while let Some(decoded) = c.next(true) {
                        if let Ok(Decoded::Irc(Ok(msg))) = decoded {
                            let line = msg.encode();
                            prop_assert_eq!(irc::parse(&line[..line.len() - 1]), Ok(msg));
                        }
                    }
                }
            }
        }
    }
}
