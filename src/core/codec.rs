//! Protocols as codecs: a chat connection's wire protocol, sans-IO. A
//! [`Codec`] takes the plaintext the transport read (plain or TLS: the
//! codec never sees TLS), frames it within its bound, and turns each frame
//! into a protocol-neutral [`Command`] (join, list the rooms, say), or a
//! refusal in the protocol's terms; [`encode`] turns an [`Event`] into the
//! protocol's bytes. The chat part drives the commands and never parses a
//! frame itself, so a second protocol is a new [`Protocol`] arm here, not a
//! change to the chat part's frame handling or to the loop.
//!
//! Today there is one protocol, the prototype's (PROTOCOL.md): 10-byte
//! length headers, a JSON handshake, UTF-8 messages, JSON event lines.

use super::wire::{self, Decoder, ErrorCode, Event, FrameError, Handshake, Hello};

/// The wire protocols chatd speaks to chat clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The prototype's framing and JSON (docs/PROTOCOL.md).
    Prototype,
}

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
}

/// One connection's decoder: framing with a bound, then parsing.
#[derive(Debug)]
pub struct Codec {
    protocol: Protocol,
    frames: Decoder,
}

impl Codec {
    /// A codec whose frames may be `max_frame` bytes (a handshake may be
    /// [`wire::MAX_HANDSHAKE_FRAME`] whatever the bound says).
    pub fn new(protocol: Protocol, max_frame: usize) -> Codec {
        Codec {
            protocol,
            frames: Decoder::new(max_frame.max(wire::MAX_HANDSHAKE_FRAME)),
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Plaintext from the transport.
    pub fn push(&mut self, bytes: &[u8]) {
        self.frames.push(bytes);
    }

    /// How many more bytes the codec takes now.
    pub fn space(&self) -> usize {
        self.frames.space()
    }

    /// Bytes held that are not yet a whole frame (a peer that stops here
    /// stopped mid-frame).
    pub fn buffered(&self) -> usize {
        self.frames.buffered()
    }

    /// Whether [`Codec::next`] has a frame or an error to give.
    pub fn frame_ready(&self) -> bool {
        self.frames.frame_ready()
    }

    /// After the join: frames are bounded by `--max-frame` from now on.
    pub fn joined(&mut self, max_frame: usize) {
        self.frames.set_max_frame(max_frame);
    }

    /// The next frame, decoded for a connection still in its handshake or
    /// (`member`) in a room; `Err` for a framing error, after which the
    /// stream is out of sync (400/413, then close).
    pub fn next(&mut self, member: bool) -> Option<Result<Decoded, FrameError>> {
        let frame = match self.frames.next_frame()? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(match self.protocol {
            Protocol::Prototype if member => prototype_message(frame),
            Protocol::Prototype => prototype_hello(&frame),
        }))
    }
}

/// An event as `protocol`'s bytes, stamped `ts`.
pub fn encode(protocol: Protocol, event: &Event, ts: &str) -> Vec<u8> {
    match protocol {
        Protocol::Prototype => event.encode_at(ts),
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
        assert_eq!(encode(Protocol::Prototype, &event, ts), event.encode_at(ts));
    }
}
