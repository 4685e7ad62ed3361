//! One stay in one room, seen from the client, without I/O: what to send
//! (the handshake frame, then one frame per message) and what each event
//! line received means. The run loop moves the bytes; this decides.

use crate::core::lines::{Line, LineBuffer};
use crate::core::wire::{self, Event, EventKind};

/// Longest event line accepted from the server.
pub const MAX_LINE: usize = 1024 * 1024;
/// Longest message sent in one frame: chatd's default `--max-frame`.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// `text` in parts of at most `max` bytes (none empty): each cut at the
/// last space in its second half, else at the last character boundary
/// that fits.
pub fn split_message(text: &[u8], max: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        // Never inside a UTF-8 sequence (continuation bytes are 10xxxxxx).
        while cut > 0 && rest[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        if let Some(space) = rest[max / 2..cut].iter().rposition(|&b| b == b' ') {
            cut = max / 2 + space + 1;
        }
        if cut == 0 {
            cut = max;
        }
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

/// How a stay in a room ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The person typed /SAIR.
    Left,
    /// Ctrl-C, Ctrl-D, SIGTERM, or (scripted) stdin ended and all was sent.
    Quit,
    /// The server refused the join with this error event.
    Refused { code: String, reason: String },
    /// A `closed`, `kicked` or `shutdown` event (how to say it), and the
    /// reason it gave, if any.
    Ended(EndedBy, Option<String>),
    /// The connection dropped without an event.
    Lost(String),
    /// The server accepted the connection but did not answer the join in
    /// time.
    NoAnswer,
    /// TLS failed: the server's certificate did not verify, or the
    /// handshake broke down.
    TlsFailed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Closed,
    Kicked,
    Shutdown,
}

impl EndedBy {
    /// As the prototype would say it (Portuguese), with the reason the
    /// server gave.
    pub fn say_why(self, reason: Option<&str>) -> String {
        match reason {
            Some(r) if !r.is_empty() => {
                let text = self.say().trim_end_matches('.');
                format!("{text}: {}", crate::core::text::printable(r))
            }
            _ => self.say().to_string(),
        }
    }

    /// As the prototype would say it (Portuguese).
    pub fn say(self) -> &'static str {
        use super::lang::{Text, t};
        match self {
            EndedBy::Closed => t(Text::RoomClosed),
            EndedBy::Kicked => t(Text::Kicked),
            EndedBy::Shutdown => t(Text::ServerStopping),
        }
    }
}

/// What one received line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// An event to show; `line` is it as received (for `--json`).
    Show { event: Box<Event>, line: Vec<u8> },
    /// A line that is not an event: shown as it is, escaped.
    Garbage(Vec<u8>),
    /// The server rejected one of our messages.
    Rejected { code: String, reason: String },
    /// The stay is over (after showing what came before).
    End(Ending),
}

pub struct ClientSession {
    /// Unknown until the join when a token says who we are.
    user: Option<String>,
    lines: LineBuffer,
    out: Vec<u8>,
    joined: bool,
    rejected: usize,
    /// The first bytes the server sent (what kind of port it is).
    first: Vec<u8>,
}

impl ClientSession {
    /// A stay of `user` in `room`: the handshake is the first output.
    pub fn new(user: &str, room: &str) -> ClientSession {
        ClientSession::with_password(user, room, None)
    }

    /// The same, logging in to a registered account with `password`.
    pub fn with_password(user: &str, room: &str, password: Option<&str>) -> ClientSession {
        let mut hs = serde_json::json!({ "username": user, "room": room });
        if let Some(p) = password {
            hs["password"] = serde_json::Value::from(p);
        }
        ClientSession::from_handshake(Some(user), &hs)
    }

    /// A stay in `room` as whoever the bearer `token` names: the server
    /// says the name in our join notice (the first event it sends).
    /// `user`, when given (`--user` beside `--token-file`), is sent too:
    /// chatd refuses the join (401) unless it is the token's name, rather
    /// than joining under a name the person did not ask for.
    pub fn with_token(room: &str, token: &str, user: Option<&str>) -> ClientSession {
        let mut hs = serde_json::json!({ "room": room, "token": token });
        if let Some(u) = user {
            hs["username"] = serde_json::Value::from(u);
        }
        ClientSession::from_handshake(user, &hs)
    }

    /// Adds a private room's key to the handshake.
    pub fn with_room_key(self, key: Option<&str>) -> ClientSession {
        let Some(key) = key else {
            return self;
        };
        self.with_field("key", serde_json::Value::from(key))
    }

    /// Asks for chatd's extras (`members`, `history`: PROTOCOL.md); a
    /// server without them ignores the field.
    pub fn with_features(self, features: &[&str]) -> ClientSession {
        if features.is_empty() {
            return self;
        }
        self.with_field("features", serde_json::Value::from(features.to_vec()))
    }

    fn with_field(self, name: &str, value: serde_json::Value) -> ClientSession {
        // The handshake is the only output so far: rebuild it.
        let payload = &self.out[wire::HEADER_LEN..];
        let mut hs: serde_json::Value =
            serde_json::from_slice(payload).expect("our own handshake parses");
        hs[name] = value;
        let user = self.user.clone();
        ClientSession::from_handshake(user.as_deref(), &hs)
    }

    fn from_handshake(user: Option<&str>, hs: &serde_json::Value) -> ClientSession {
        let hs = hs.to_string();
        ClientSession {
            user: user.map(str::to_string),
            lines: LineBuffer::new(MAX_LINE),
            out: wire::encode_frame(hs.as_bytes()),
            joined: false,
            rejected: 0,
            first: Vec::new(),
        }
    }

    /// Whether the server confirmed the join (our own `join` event).
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// Our name: given, or learned from the join after a token login.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// How many of our messages the server rejected.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// Bytes waiting to be written to the socket.
    /// What waits to be sent.
    pub fn pending(&self) -> &[u8] {
        &self.out
    }

    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Queues one line as a message frame; a trailing CR is dropped and an
    /// empty line is not sent.
    /// A message longer than chatd's default frame limit (a paste) goes
    /// as several, cut at a space where one is near, else at a character
    /// boundary, so the server never closes the session with 413.
    pub fn send(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for part in split_message(line, MAX_MESSAGE) {
            self.out.extend_from_slice(&wire::encode_frame(part));
        }
    }

    /// Why the server closed before the join, when its bytes tell: a TLS
    /// record (an alert, 0x15 0x03) means plaintext reached a TLS port.
    pub fn closed_why(&self) -> Option<&'static str> {
        let tls = self.first.len() >= 2 && matches!(self.first[..2], [0x15, 0x03] | [0x16, 0x03]);
        (!self.joined && tls).then_some("this port speaks TLS; add --tls")
    }

    /// What the bytes received mean, line by line; stops at an ending.
    pub fn received(&mut self, bytes: &[u8]) -> Vec<Update> {
        if self.first.len() < 2 {
            let n = (2 - self.first.len()).min(bytes.len());
            self.first.extend_from_slice(&bytes[..n]);
        }
        self.lines.push(bytes);
        let mut updates = Vec::new();
        while let Some(line) = self.lines.next_line() {
            let update = match line {
                Line::TooLong => Update::End(Ending::Lost(
                    "the server sent an over-long line".to_string(),
                )),
                Line::Complete(line) => self.on_line(line),
            };
            let ends = matches!(update, Update::End(_));
            updates.push(update);
            if ends {
                break;
            }
        }
        updates
    }

    fn on_line(&mut self, line: Vec<u8>) -> Update {
        let event = match Event::parse(&line) {
            Ok(e) => e,
            Err(_) => return Update::Garbage(line),
        };
        if event.kind == EventKind::Error {
            let reason = event.reason.clone().unwrap_or_default();
            if !self.joined {
                return Update::End(Ending::Refused {
                    code: event.message,
                    reason,
                });
            }
            self.rejected += 1;
            return Update::Rejected {
                code: event.message,
                reason,
            };
        }
        if event.kind == EventKind::Join && !self.joined {
            match &self.user {
                Some(user) if *user == event.username => self.joined = true,
                Some(_) => {}
                // The first event after a token login is our own join.
                None => {
                    self.user = Some(event.username.clone());
                    self.joined = true;
                }
            }
        }
        Update::Show {
            event: Box::new(event),
            line,
        }
    }
}

/// After an event has been shown: whether it ends the stay.
pub fn ending_after(event: &Event) -> Option<Ending> {
    match event.kind {
        EventKind::Closed => Some(Ending::Ended(EndedBy::Closed, None)),
        EventKind::Kicked => Some(Ending::Ended(EndedBy::Kicked, event.reason.clone())),
        EventKind::Shutdown => Some(Ending::Ended(EndedBy::Shutdown, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paste_past_the_frame_limit_goes_as_several_messages() {
        let text = format!("{} {}", "a".repeat(10), "é".repeat(20));
        let parts = split_message(text.as_bytes(), 16);
        assert!(parts.iter().all(|p| p.len() <= 16 && !p.is_empty()));
        assert_eq!(parts[0], "aaaaaaaaaa ".as_bytes(), "cut after the space");
        assert!(
            parts.iter().all(|p| std::str::from_utf8(p).is_ok()),
            "never inside a character"
        );
        assert_eq!(parts.concat(), text.as_bytes());
        assert_eq!(split_message(b"", 16), Vec::<&[u8]>::new());
        assert_eq!(split_message(b"short", 16), vec![b"short".as_slice()]);
        let mut s = ClientSession::new("Yan", "Teste");
        s.output().clear();
        s.send("x".repeat(MAX_MESSAGE * 2 + 5).as_bytes());
        assert_eq!(s.output().len(), 3 * wire::HEADER_LEN + MAX_MESSAGE * 2 + 5);
    }

    fn kinds(updates: &[Update]) -> Vec<String> {
        updates
            .iter()
            .map(|u| match u {
                Update::Show { event, .. } => format!("show {}", event.kind.as_str()),
                Update::Garbage(_) => "garbage".into(),
                Update::Rejected { code, .. } => format!("rejected {code}"),
                Update::End(e) => format!("end {e:?}"),
            })
            .collect()
    }

    #[test]
    fn the_handshake_goes_first_then_messages() {
        let mut s = ClientSession::new("Yan", "Teste");
        let hs = String::from_utf8(s.output().clone()).unwrap();
        assert_eq!(hs, "33        {\"username\":\"Yan\",\"room\":\"Teste\"}");
        s.output().clear();
        s.send(b"ola\r");
        s.send(b"");
        assert_eq!(s.output(), b"3         ola");
    }

    #[test]
    fn own_join_confirms_and_errors_before_it_are_refusals() {
        let mut s = ClientSession::new("Yan", "Teste");
        let u = s.received(
            b"{\"username\":\"Ana\",\"message\":\"*** ENTROU NA SALA ***\",\"type\":\"join\"}\n",
        );
        assert_eq!(kinds(&u), ["show join"]);
        assert!(!s.joined(), "someone else's join");
        let u = s.received(b"{\"username\":\"Yan\",\"message\":\"*** ENTROU NA SALA ***\",\"type\":\"join\"}\n{\"username\":\"Sistema\",\"message\":\"400\",\"type\":\"error\",\"reason\":\"bad\"}\n");
        assert_eq!(kinds(&u), ["show join", "rejected 400"]);
        assert!(s.joined());
        assert_eq!(s.rejected(), 1);

        let mut s = ClientSession::new("Yan", "Nope");
        let u = s.received(b"{\"username\":\"Sistema\",\"message\":\"404\",\"type\":\"error\",\"reason\":\"no room\"}\n{\"username\":\"x\",\"message\":\"after\"}\n");
        assert_eq!(
            u,
            [Update::End(Ending::Refused {
                code: "404".into(),
                reason: "no room".into()
            })]
        );
    }

    #[test]
    fn a_token_login_learns_its_name_from_the_first_join() {
        let mut s = ClientSession::with_token("Teste", "a.b.c", None);
        let hs = String::from_utf8(s.output().clone()).unwrap();
        assert!(
            hs.contains("\"token\":\"a.b.c\"") && !hs.contains("username"),
            "{hs}"
        );
        let u = s.received(
            b"{\"username\":\"yan.b\",\"message\":\"*** ENTROU NA SALA ***\",\"type\":\"join\"}\n",
        );
        assert_eq!(kinds(&u), ["show join"]);
        assert!(s.joined());
        assert_eq!(s.user(), Some("yan.b"));
    }

    #[test]
    fn split_lines_garbage_and_endings() {
        let mut s = ClientSession::new("Yan", "Teste");
        let line = b"{\"username\":\"Sistema\",\"message\":\"*** SALA ENCERRADA ***\",\"type\":\"closed\"}\n";
        let mut all = Vec::new();
        for b in line.chunks(7) {
            all.extend(s.received(b));
        }
        assert_eq!(kinds(&all), ["show closed"]);
        let Update::Show { event, .. } = &all[0] else {
            unreachable!()
        };
        assert_eq!(
            ending_after(event),
            Some(Ending::Ended(EndedBy::Closed, None))
        );
        assert_eq!(kinds(&s.received(b"raw \x1b[2J\n")), ["garbage"]);
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(
            kinds(&s.received(&long)),
            ["end Lost(\"the server sent an over-long line\")"]
        );
    }
}
