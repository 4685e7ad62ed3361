//! The chat wire format (PROTOCOL.md §1): the incremental frame decoder for
//! client → server frames (10-byte ASCII length header + payload), handshake
//! and message validation, and the encoder for server → client events.
//!
//! This module is pure: it never touches a socket, a clock or the logger, and
//! no input makes it panic. Bad input becomes an error value that the caller
//! turns into an error event.

/// Length of the frame header: the payload length in ASCII decimal digits,
/// padded with spaces (or zeros) to exactly this many bytes.
pub const HEADER_LEN: usize = 10;

pub use crate::core::names::{MAX_USERNAME_CHARS, SYSTEM_USER};

pub const JOINED: &str = "*** ENTROU NA SALA ***";
pub const LEFT: &str = "*** SAIU DA SALA ***";
pub const CLOSED: &str = "*** SALA ENCERRADA ***";
pub const KICKED: &str = "*** REMOVIDO DA SALA ***";
pub const SHUTDOWN: &str = "*** SERVIDOR ENCERRANDO ***";

pub const MAX_ROOM_CHARS: usize = 64;

/// Longest password accepted in a handshake (and by `user add`).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Longest bearer token accepted in a handshake.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The largest handshake frame, whatever `--max-frame` says: room for the
/// largest token, password and key with every other field beside them, so
/// a token PROTOCOL.md allows never gets 413. Frames after the join are
/// bounded by `--max-frame` again.
pub const MAX_HANDSHAKE_FRAME: usize = MAX_TOKEN_BYTES + 2 * MAX_PASSWORD_BYTES + 4 * 1024;

/// The error codes of the `error` event, as the prototype's client knows them
/// (404, 501) plus the ones chatd adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: malformed handshake or frame, or a message that is not clean UTF-8.
    BadRequest,
    /// 401: a login is needed (a registered name, or `--require-login`), or
    /// the credentials are wrong, or too many logins failed.
    Unauthorized,
    /// 403: not allowed in this room.
    Forbidden,
    /// 404: no room of that name.
    NoSuchRoom,
    /// 408: no complete handshake within the timeout.
    Timeout,
    /// 409: that username is already in that room.
    NameTaken,
    /// 413: frame longer than the limit.
    TooLarge,
    /// 501: the room's participant limit is reached.
    RoomFull,
    /// 503: the server is at capacity.
    Unavailable,
    /// *chatd:* 429: flood control refused a message (the connection
    /// stays).
    TooManyRequests,
}

impl ErrorCode {
    /// The code as it travels in the event's `message` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "400",
            ErrorCode::Unauthorized => "401",
            ErrorCode::Forbidden => "403",
            ErrorCode::NoSuchRoom => "404",
            ErrorCode::Timeout => "408",
            ErrorCode::NameTaken => "409",
            ErrorCode::TooLarge => "413",
            ErrorCode::RoomFull => "501",
            ErrorCode::Unavailable => "503",
            ErrorCode::TooManyRequests => "429",
        }
    }
}

// ---------------------------------------------------------------------------
// Frame decoding
// ---------------------------------------------------------------------------

/// A framing error: the byte stream cannot be resynchronised after it, so the
/// connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The header is not ASCII digits surrounded by spaces.
    BadHeader([u8; HEADER_LEN]),
    /// The announced length is over the limit.
    TooLong { len: u64, max: usize },
}

impl FrameError {
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::BadHeader(_) => ErrorCode::BadRequest,
            FrameError::TooLong { .. } => ErrorCode::TooLarge,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            FrameError::BadHeader(h) => format!(
                "bad frame header {}: expected {} bytes of ASCII digits padded with spaces",
                escape_for_log(h),
                HEADER_LEN
            ),
            FrameError::TooLong { len, max } => {
                format!("frame of {len} bytes is over the limit of {max} bytes")
            }
        }
    }
}

/// Parses a 10-byte header: digits, optionally surrounded by spaces
/// ("26        ", "        26" and "0000000026" all mean 26).
pub fn parse_header(header: &[u8; HEADER_LEN], max_frame: usize) -> Result<usize, FrameError> {
    let bad = || FrameError::BadHeader(*header);
    let start = header.iter().position(|&b| b != b' ').ok_or_else(bad)?;
    let end = header.iter().rposition(|&b| b != b' ').ok_or_else(bad)? + 1;
    let digits = &header[start..end];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    // At most ten digits: always fits in a u64.
    let len = digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    if len > max_frame as u64 {
        return Err(FrameError::TooLong {
            len,
            max: max_frame,
        });
    }
    Ok(len as usize)
}

/// Input buffer capacity a decoder keeps once everything is consumed.
const IDLE_CAPACITY: usize = 1024;

/// Incremental frame decoder. Bytes go in with [`Decoder::push`] in any
/// chunking; whole payloads come out of [`Decoder::next_frame`].
///
/// The buffer never holds more than `HEADER_LEN + max_frame` bytes: callers
/// ask [`Decoder::space`] how much they may read before pushing.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    max_frame: usize,
    failed: bool,
}

impl Decoder {
    pub fn new(max_frame: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            start: 0,
            max_frame,
            failed: false,
        }
    }

    /// Changes the bound for the frames not yet decoded (the handshake's
    /// allowance ends once a connection has joined).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How many more bytes may be pushed without exceeding the bound.
    pub fn space(&self) -> usize {
        if self.failed {
            return 0;
        }
        (HEADER_LEN + self.max_frame).saturating_sub(self.buffered())
    }

    /// Whether [`Decoder::next_frame`] would return something now (a frame,
    /// or a framing error).
    pub fn frame_ready(&self) -> bool {
        let avail = &self.buf[self.start..];
        if self.failed || avail.len() < HEADER_LEN {
            return false;
        }
        let header: &[u8; HEADER_LEN] = avail[..HEADER_LEN].try_into().expect("length checked");
        match parse_header(header, self.max_frame) {
            Ok(len) => avail.len() >= HEADER_LEN + len,
            Err(_) => true,
        }
    }

    /// Appends received bytes. Pushing more than [`Decoder::space`] is
    /// allowed but defeats the memory bound; the daemon never does.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, `None` when more bytes are needed,
    /// or the framing error (after which the decoder yields nothing more).
    /// Frames of length 0 are skipped, as the protocol says.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            if self.failed {
                return None;
            }
            if self.start == self.buf.len() {
                // Everything consumed: an idle connection keeps little memory.
                self.buf.clear();
                self.buf.shrink_to(IDLE_CAPACITY);
                self.start = 0;
                return None;
            }
            let avail = &self.buf[self.start..];
            if avail.len() < HEADER_LEN {
                return None;
            }
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&avail[..HEADER_LEN]);
            let len = match parse_header(&header, self.max_frame) {
                Ok(len) => len,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            if avail.len() < HEADER_LEN + len {
                return None;
            }
            let payload = avail[HEADER_LEN..HEADER_LEN + len].to_vec();
            self.start += HEADER_LEN + len;
            if len > 0 {
                return Some(Ok(payload));
            }
        }
    }
}

/// Encodes one client → server frame (used by the `chat` client and tests).
/// The header is left-aligned, as the prototype's client writes it.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:<width$}", payload.len(), width = HEADER_LEN).into_bytes();
    out.extend_from_slice(payload);
    out
}

// ---------------------------------------------------------------------------
// Handshake and message validation
// ---------------------------------------------------------------------------

/// The first frame of a connection: who is joining which room, with a
/// password when the name is a registered account.
#[derive(Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Absent when a token says who it is.
    pub username: Option<String>,
    pub room: String,
    pub password: Option<String>,
    /// An OpenID Connect bearer token (a JWT).
    pub token: Option<String>,
    /// A private room's key.
    pub key: Option<String>,
    /// chatd: `"features": ["members"]`: send a `members` snapshot after
    /// the join.
    pub members: bool,
    /// chatd: `"features": ["history"]`: replay the room's recent
    /// messages before the join.
    pub history: bool,
    /// chatd: `"features": ["topic"]`: the room's topic after the join,
    /// and each change (`topic` events).
    pub topic: bool,
    /// chatd: `"features": ["commands"]`: a message that starts with `/`
    /// (not `//`) is a room operator's command, answered with `notice`
    /// or `error` events.
    pub commands: bool,
    /// chatd: `"features": ["room"]`: the room's limit and privacy after
    /// the join, and each change (`room` events).
    pub room_events: bool,
    /// chatd: `"features": ["direct"]`: this connection may receive
    /// direct messages (`direct` events; one connection per person).
    pub direct: bool,
}

/// What a connection's first frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// To join a room.
    Join(Handshake),
    /// chatd: `{"list": "rooms"}`: the public rooms, then the connection
    /// closes.
    ListRooms,
}

impl std::fmt::Debug for Handshake {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("username", &self.username)
            .field("room", &self.room)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("key", &self.key.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A refused handshake: the reason for the 400, and the room it named, when
/// it named a valid one (PROTOCOL.md: handshake-time errors carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    pub reason: String,
    pub room: Option<String>,
}

/// An optional string field of the handshake (absent and `null` are
/// `None`): 1 to `max` bytes, else the detail of what is wrong.
fn optional_string(
    fields: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= max => {
            Ok(Some(s.clone()))
        }
        Some(serde_json::Value::String(_)) => Err(format!("\"{name}\" must be 1 to {max} bytes")),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    }
}

/// Parses and validates the handshake payload: a JSON object in UTF-8 with
/// string fields `username` and `room` (other fields are ignored). Any
/// other JSON value (an array in particular, which serde would otherwise
/// read as the struct's fields in order) is refused.
pub fn parse_handshake(payload: &[u8]) -> Result<Handshake, HandshakeError> {
    match parse_hello(payload)? {
        Hello::Join(hs) => Ok(hs),
        Hello::ListRooms => Err(malformed("a room listing, not a join".into(), None)),
    }
}

fn malformed(detail: String, room: Option<String>) -> HandshakeError {
    HandshakeError {
        reason: format!(
            "malformed handshake: expected {{\"username\": ..., \"room\": ...}}: {detail}"
        ),
        room,
    }
}

/// Parses the first frame: a join ([`parse_handshake`]'s rules), or
/// chatd's `{"list": "rooms"}`.
pub fn parse_hello(payload: &[u8]) -> Result<Hello, HandshakeError> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| malformed(e.to_string(), None))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(malformed("not a JSON object".into(), None));
    };
    match fields.get("list") {
        None => {}
        Some(serde_json::Value::String(what)) if what == "rooms" => return Ok(Hello::ListRooms),
        Some(_) => {
            return Err(malformed(
                "\"list\" must be \"rooms\" (the only listing)".into(),
                None,
            ));
        }
    }
    let room = match fields.get("room") {
        Some(serde_json::Value::String(r)) => r.clone(),
        Some(_) => return Err(malformed("\"room\" is not a string".into(), None)),
        None => return Err(malformed("no \"room\"".into(), None)),
    };
    let named_room = validate_room_name(&room).is_ok().then(|| room.clone());
    let key = optional_string(&fields, "key", MAX_PASSWORD_BYTES).map_err(|_| {
        malformed(
            format!("\"key\" must be a string of 1 to {MAX_PASSWORD_BYTES} bytes"),
            named_room.clone(),
        )
    })?;
    let token = optional_string(&fields, "token", MAX_TOKEN_BYTES)
        .map_err(|detail| malformed(detail, named_room.clone()))?;
    let username = match fields.get("username") {
        Some(serde_json::Value::String(u)) => Some(u.clone()),
        Some(_) => return Err(malformed("\"username\" is not a string".into(), named_room)),
        None if token.is_some() => None,
        None => return Err(malformed("no \"username\"".into(), named_room)),
    };
    let password = optional_string(&fields, "password", MAX_PASSWORD_BYTES)
        .map_err(|detail| malformed(detail, named_room.clone()))?;
    if password.is_some() && token.is_some() {
        return Err(malformed(
            "a password or a token, not both".into(),
            named_room,
        ));
    }
    validate_room_name(&room).map_err(|reason| HandshakeError { reason, room: None })?;
    if let Some(u) = &username {
        validate_username(u).map_err(|reason| HandshakeError {
            reason,
            room: named_room,
        })?;
    }
    let features: Vec<String> = match fields.get("features") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            malformed(
                "\"features\" is not a list of strings".into(),
                Some(room.clone()),
            )
        })?,
    };
    let wants = |f: &str| features.iter().any(|x| x == f);
    Ok(Hello::Join(Handshake {
        username,
        room,
        password,
        token,
        key,
        members: wants("members"),
        history: wants("history"),
        topic: wants("topic"),
        commands: wants("commands"),
        direct: wants("direct"),
        room_events: wants("room"),
    }))
}

fn validate_name(what: &str, name: &str, max_chars: usize) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(format!("{what} must be 1 to {max_chars} characters"));
    }
    if name.chars().any(crate::core::text::is_hazard) {
        return Err(format!(
            "{what} must not contain control or invisible characters"
        ));
    }
    if name.trim() != name {
        return Err(format!("{what} must not start or end with spaces"));
    }
    Ok(())
}

/// A username is a canonical PRECIS nickname of 1–32 characters that is
/// not, and does not look like, `Sistema` (see [`crate::core::names`]).
pub fn validate_username(name: &str) -> Result<(), String> {
    crate::core::names::check_username(name)
}

/// A room name is 1–64 characters, no control or invisible characters, no
/// leading or trailing spaces.
pub fn validate_room_name(name: &str) -> Result<(), String> {
    validate_name("room name", name, MAX_ROOM_CHARS)
}

/// A chat message must be UTF-8 with no control characters (C0, DEL, C1);
/// tab is allowed. Returns the text, or the reason for a 400.
pub fn validate_message(payload: &[u8]) -> Result<&str, &'static str> {
    let text = std::str::from_utf8(payload).map_err(|_| "message is not valid UTF-8")?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("message contains control characters");
    }
    if crate::core::text::longest_combining_run(text) > crate::core::text::MAX_COMBINING_RUN {
        return Err("message stacks more than 8 combining marks on one character");
    }
    Ok(text)
}

// ---------------------------------------------------------------------------
// Events: typed, with encode and parse
// ---------------------------------------------------------------------------

/// The `type` field of a server → client event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    Join,
    #[default]
    Message,
    Leave,
    Error,
    Closed,
    Kicked,
    Shutdown,
    /// chatd: who is in the room, to a joiner that asked.
    Members,
    /// chatd: the public rooms, to a `{"list": "rooms"}` handshake.
    Rooms,
    /// chatd: a room's topic (the text; `reason` names who set it), to
    /// members that asked (`"topic"` feature), on join and on change.
    Topic,
    /// chatd: what a command did, to the member that sent it.
    Notice,
    /// chatd: a room's limit and privacy (`limit`, `private`), to members
    /// that asked (`"room"` feature), on join and on change.
    Room,
    /// chatd: a direct message from `username` (a chat-port `/msg`, or an
    /// IRC PRIVMSG to a nick), to one connection of the person that asked
    /// (`"direct"` feature).
    Direct,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Join => "join",
            EventKind::Message => "message",
            EventKind::Leave => "leave",
            EventKind::Error => "error",
            EventKind::Closed => "closed",
            EventKind::Kicked => "kicked",
            EventKind::Shutdown => "shutdown",
            EventKind::Members => "members",
            EventKind::Topic => "topic",
            EventKind::Notice => "notice",
            EventKind::Room => "room",
            EventKind::Direct => "direct",
            EventKind::Rooms => "rooms",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "join" => EventKind::Join,
            "message" => EventKind::Message,
            "leave" => EventKind::Leave,
            "error" => EventKind::Error,
            "closed" => EventKind::Closed,
            "kicked" => EventKind::Kicked,
            "shutdown" => EventKind::Shutdown,
            "members" => EventKind::Members,
            "rooms" => EventKind::Rooms,
            "topic" => EventKind::Topic,
            "notice" => EventKind::Notice,
            "room" => EventKind::Room,
            "direct" => EventKind::Direct,
            _ => return None,
        })
    }
}

/// One server → client event. The hub produces them; each shell encodes
/// them for its protocol (chatd's: [`Event::encode`]), once per event
/// however many recipients it has; clients read them with
/// [`Event::parse`].
#[derive(Debug, PartialEq, Eq, Default)]
pub struct Event {
    pub kind: EventKind,
    pub username: String,
    pub message: String,
    pub room: Option<String>,
    pub reason: Option<String>,
    /// chatd: when the server sent it (or, replayed, first sent it), RFC
    /// 3339 UTC. The shell stamps it; the core reads no clock.
    pub ts: Option<String>,
    /// chatd: a message replayed from the room's history.
    pub history: bool,
    /// chatd: `members`: the room's members, in join order.
    pub members: Option<Vec<String>>,
    /// chatd: `rooms`: the public rooms.
    pub rooms: Option<Vec<RoomEntry>>,
    /// Not on the prototype's wire: how a `leave` came about, for a
    /// protocol that shows it (IRC's PART, QUIT and KICK).
    pub departed: Departed,
    /// Not on the prototype's wire: a message's id (IRCv3 `msgid`), and
    /// the client-only tags (`+name`) its sender attached, for protocols
    /// with tags.
    pub msgid: Option<String>,
    pub client_tags: Vec<(String, Option<String>)>,
    /// chatd: `room`: the room's limit and whether it is private.
    pub facts: Option<RoomFacts>,
}

/// Field by field, so that [`Clone::clone_from`] reuses the strings'
/// memory: a room's history overwrites its oldest kept event with each
/// new one, with no allocation once the strings are long enough.
impl Clone for Event {
    fn clone(&self) -> Event {
        let mut e = Event::default();
        e.clone_from(self);
        e
    }

    fn clone_from(&mut self, from: &Event) {
        // Every field named: a new one must be added here to compile.
        let Event {
            kind,
            username,
            message,
            room,
            reason,
            ts,
            history,
            members,
            rooms,
            departed,
            msgid,
            client_tags,
            facts,
        } = self;
        *kind = from.kind;
        username.clone_from(&from.username);
        message.clone_from(&from.message);
        room.clone_from(&from.room);
        reason.clone_from(&from.reason);
        ts.clone_from(&from.ts);
        *history = from.history;
        members.clone_from(&from.members);
        rooms.clone_from(&from.rooms);
        departed.clone_from(&from.departed);
        msgid.clone_from(&from.msgid);
        client_tags.clone_from(&from.client_tags);
        *facts = from.facts;
    }
}

/// What a `room` event tells of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomFacts {
    pub limit: usize,
    pub private: bool,
}

/// How a member came to leave a room (see [`Event::departed`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Departed {
    /// It left, or its connection ended (the prototype's one room).
    #[default]
    Left,
    /// It parted this room, with a reason (may be empty).
    Parted(String),
    /// Its connection ended, with a reason.
    Quit(String),
    /// It was removed, with a reason.
    Kicked(String),
}

/// One room of a `rooms` event: on the wire `[name, members, limit]`, an
/// array so that the event keeps its one literal `}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    pub name: String,
    pub members: usize,
    pub limit: usize,
}

impl Event {
    /// An `error` event from `Sistema` with its code and reason.
    pub fn error(code: ErrorCode, room: Option<&str>, reason: &str) -> Event {
        Event {
            kind: EventKind::Error,
            username: SYSTEM_USER.to_string(),
            message: code.as_str().to_string(),
            room: room.map(str::to_string),
            reason: Some(reason.to_string()),
            ..Event::default()
        }
    }

    /// A notice from `Sistema` (`closed`, `kicked`, `shutdown`).
    pub fn system(kind: EventKind, message: &str, room: Option<&str>) -> Event {
        Event {
            kind,
            username: SYSTEM_USER.to_string(),
            message: message.to_string(),
            room: room.map(str::to_string),
            reason: None,
            ..Event::default()
        }
    }

    /// Encodes the event as one line: a flat JSON object, pure ASCII, whose
    /// only literal `}` is the byte before the final `\n`.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_inner(None)
    }

    /// [`Event::encode`] with `ts` as its time, unless it carries its own.
    pub fn encode_at(&self, ts: &str) -> Vec<u8> {
        self.encode_inner(Some(ts))
    }

    fn encode_inner(&self, now: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.username.len() + self.message.len());
        out.extend_from_slice(b"{\"username\":");
        push_json_string(&mut out, &self.username);
        out.extend_from_slice(b",\"message\":");
        push_json_string(&mut out, &self.message);
        out.extend_from_slice(b",\"type\":");
        push_json_string(&mut out, self.kind.as_str());
        if let Some(room) = &self.room {
            out.extend_from_slice(b",\"room\":");
            push_json_string(&mut out, room);
        }
        if let Some(reason) = &self.reason {
            out.extend_from_slice(b",\"reason\":");
            push_json_string(&mut out, reason);
        }
        if self.history {
            out.extend_from_slice(b",\"history\":true");
        }
        if let Some(members) = &self.members {
            out.extend_from_slice(b",\"members\":[");
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_string(&mut out, m);
            }
            out.push(b']');
        }
        if let Some(rooms) = &self.rooms {
            out.extend_from_slice(b",\"rooms\":[");
            for (i, r) in rooms.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                push_json_string(&mut out, &r.name);
                out.extend_from_slice(format!(",{},{}]", r.members, r.limit).as_bytes());
            }
            out.push(b']');
        }
        if let Some(f) = &self.facts {
            out.extend_from_slice(
                format!(",\"limit\":{},\"private\":{}", f.limit, f.private).as_bytes(),
            );
        }
        if let Some(ts) = self.ts.as_deref().or(now) {
            out.extend_from_slice(b",\"ts\":");
            push_json_string(&mut out, ts);
        }
        out.extend_from_slice(b"}\n");
        out
    }

    /// Parses one event line (without or with its newline). `username` and
    /// `message` are required strings; other fields are ignored. An event
    /// without `type` (the prototype's server sends none) is read by its
    /// content: a join or leave notice by its text, `Sistema` with a code
    /// as an error, anything else as a message.
    pub fn parse(line: &[u8]) -> Result<Event, String> {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON event: {e}"))?;
        let serde_json::Value::Object(fields) = value else {
            return Err("not a JSON object".into());
        };
        let string = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let username = string("username").ok_or("no \"username\" string")?;
        let message = string("message").ok_or("no \"message\" string")?;
        let kind = match fields.get("type") {
            Some(serde_json::Value::String(t)) => {
                EventKind::parse(t).ok_or_else(|| format!("unknown event type {t:?}"))?
            }
            Some(_) => return Err("\"type\" is not a string".into()),
            None if message == JOINED => EventKind::Join,
            None if message == LEFT => EventKind::Leave,
            None if username == SYSTEM_USER && message.bytes().all(|b| b.is_ascii_digit()) => {
                EventKind::Error
            }
            None => EventKind::Message,
        };
        let members = match fields.get("members") {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<Vec<String>>(v.clone())
                    .map_err(|_| "\"members\" is not a list of names")?,
            ),
        };
        let rooms = match fields.get("rooms") {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<Vec<(String, usize, usize)>>(v.clone())
                    .map_err(|_| "\"rooms\" is not a list of [name, members, limit]")?
                    .into_iter()
                    .map(|(name, members, limit)| RoomEntry {
                        name,
                        members,
                        limit,
                    })
                    .collect(),
            ),
        };
        Ok(Event {
            kind,
            username,
            message,
            room: string("room"),
            reason: string("reason"),
            ts: string("ts"),
            history: fields.get("history") == Some(&serde_json::Value::Bool(true)),
            members,
            rooms,
            departed: Departed::Left,
            msgid: None,
            client_tags: Vec::new(),
            facts: fields
                .get("limit")
                .and_then(serde_json::Value::as_u64)
                .map(|limit| RoomFacts {
                    limit: limit as usize,
                    private: fields.get("private") == Some(&serde_json::Value::Bool(true)),
                }),
        })
    }
}

/// Appends `s` as a JSON string literal that is pure ASCII and contains no
/// literal `{` or `}`: everything else is written as `\uXXXX` escapes
/// (UTF-16 surrogate pairs above U+FFFF).
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            ' '..='~' if c != '{' && c != '}' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u_escape(out, *unit);
                }
            }
        }
    }
    out.push(b'"');
}

fn push_u_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

/// Renders bytes for a log line: printable ASCII as is, the rest as `\xNN`.
pub fn escape_for_log(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            b' '..=b'~' => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> [u8; HEADER_LEN] {
        s.as_bytes().try_into().unwrap()
    }

    #[test]
    fn header_forms_accepted() {
        assert_eq!(parse_header(&header("26        "), 100), Ok(26));
        assert_eq!(parse_header(&header("        26"), 100), Ok(26));
        assert_eq!(parse_header(&header("0000000026"), 100), Ok(26));
        assert_eq!(parse_header(&header("   26     "), 100), Ok(26));
        assert_eq!(parse_header(&header("0         "), 100), Ok(0));
    }

    #[test]
    fn header_garbage_rejected() {
        for h in [
            "          ",
            "2 6       ",
            "-1        ",
            "+5        ",
            "abcdefghij",
            "26\n       ",
        ] {
            assert!(
                matches!(parse_header(&header(h), 100), Err(FrameError::BadHeader(_))),
                "{h:?}"
            );
        }
    }

    #[test]
    fn header_over_limit_is_413() {
        let err = parse_header(&header("4294967296"), 16384).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLong {
                len: 4294967296,
                max: 16384
            }
        );
        assert_eq!(err.code(), ErrorCode::TooLarge);
        assert_eq!(
            parse_header(&header("9999999999"), 16384)
                .unwrap_err()
                .code(),
            ErrorCode::TooLarge
        );
        assert_eq!(parse_header(&header("16384     "), 16384), Ok(16384));
    }

    fn stream_of(payloads: &[&[u8]]) -> Vec<u8> {
        payloads.iter().flat_map(|p| encode_frame(p)).collect()
    }

    fn decode_all(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(f) = d.next_frame() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn split_at_every_byte_yields_same_frames() {
        let payloads: Vec<&[u8]> = vec![
            br#"{"username": "Yan", "room": "Teste"}"#,
            b"Ol\xc3\xa1",
            b"",
            b"x",
            b"{}}}",
        ];
        let stream = stream_of(&payloads);
        let expected: Vec<Result<Vec<u8>, FrameError>> = payloads
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Ok(p.to_vec()))
            .collect();
        assert_eq!(decode_all(&[&stream], 100), expected, "one read");
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(decode_all(&[a, b], 100), expected, "cut at {cut}");
            for cut2 in cut..=stream.len() {
                let (b1, b2) = b.split_at(cut2 - cut);
                assert_eq!(decode_all(&[a, b1, b2], 100), expected, "cuts {cut},{cut2}");
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes, 100), expected, "byte by byte");
    }

    #[test]
    fn framing_error_stops_the_decoder() {
        let mut stream = stream_of(&[b"hello"]);
        stream.extend_from_slice(b"xx        ");
        stream.extend_from_slice(&encode_frame(b"after"));
        let out = decode_all(&[&stream], 100);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Ok(b"hello".to_vec()));
        assert!(matches!(out[1], Err(FrameError::BadHeader(_))));
    }

    #[test]
    fn decoder_space_is_bounded() {
        let mut d = Decoder::new(20);
        assert_eq!(d.space(), 30);
        d.push(b"20        0123456789");
        assert_eq!(d.space(), 10);
        assert_eq!(d.next_frame(), None);
        d.push(b"0123456789");
        assert_eq!(d.space(), 0);
        assert_eq!(d.next_frame(), Some(Ok(b"01234567890123456789".to_vec())));
        assert_eq!(d.space(), 30);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn handshake_valid_and_extra_fields_ignored() {
        let h = parse_handshake(br#"{"username": "Yan", "room": "Teste", "x": 1}"#).unwrap();
        assert_eq!(h.username.as_deref(), Some("Yan"));
        assert_eq!(h.room, "Teste");
    }

    #[test]
    fn handshake_rejections() {
        let bad: &[&[u8]] = &[
            b"not json",
            b"[]",
            br#"{"username": "Yan"}"#,
            br#"{"username": 5, "room": "Teste"}"#,
            br#"{"username": "", "room": "Teste"}"#,
            br#"{"username": " Yan", "room": "Teste"}"#,
            br#"{"username": "Yan", "room": "Teste "}"#,
            br#"{"username": "sIsTeMa", "room": "Teste"}"#,
            br#"{"username": "a\u001bb", "room": "Teste"}"#,
            br#"{"username": "a\u0085b", "room": "Teste"}"#,
            br#"{"username": "123456789012345678901234567890123", "room": "Teste"}"#,
            b"{\"username\": \"\xff\", \"room\": \"Teste\"}",
        ];
        for b in bad {
            assert!(parse_handshake(b).is_err(), "{}", escape_for_log(b));
        }
        // A JSON array is not a handshake, even with the fields in order.
        assert!(parse_handshake(br#"["a","H"]"#).is_err());
        assert!(parse_handshake(br#""a""#).is_err());
        let room65 = format!(r#"{{"username": "Yan", "room": "{}"}}"#, "r".repeat(65));
        assert!(parse_handshake(room65.as_bytes()).is_err());
        let room64 = format!(r#"{{"username": "Yan", "room": "{}"}}"#, "é".repeat(64));
        assert!(
            parse_handshake(room64.as_bytes()).is_ok(),
            "64 characters, 128 bytes"
        );
        let user32 = format!(r#"{{"username": "{}", "room": "x"}}"#, "ü".repeat(32));
        assert!(parse_handshake(user32.as_bytes()).is_ok());
    }

    #[test]
    fn a_token_may_stand_for_the_username() {
        let h = parse_handshake(br#"{"room": "T", "token": "a.b.c"}"#).unwrap();
        assert_eq!(h.username, None);
        assert_eq!(h.token.as_deref(), Some("a.b.c"));
        assert!(!format!("{h:?}").contains("a.b.c"));
        assert!(parse_handshake(br#"{"room": "T"}"#).is_err());
        assert!(parse_handshake(br#"{"room": "T", "token": "x", "password": "y"}"#).is_err());
        assert!(parse_handshake(br#"{"room": "T", "token": 7}"#).is_err());
    }

    #[test]
    fn a_password_is_optional_and_never_shown() {
        let h =
            parse_handshake(br#"{"username": "Yan", "room": "T", "password": "s3cret"}"#).unwrap();
        assert_eq!(h.password.as_deref(), Some("s3cret"));
        assert!(!format!("{h:?}").contains("s3cret"));
        let h = parse_handshake(br#"{"username": "Yan", "room": "T", "password": null}"#).unwrap();
        assert_eq!(h.password, None);
        for bad in [
            &br#"{"username": "Yan", "room": "T", "password": 5}"#[..],
            br#"{"username": "Yan", "room": "T", "password": ""}"#,
        ] {
            let e = parse_handshake(bad).unwrap_err();
            assert_eq!(e.room.as_deref(), Some("T"));
            assert!(!e.reason.contains('5') || e.reason.contains("1 to"));
        }
    }

    #[test]
    fn handshake_errors_carry_the_room_when_one_was_named() {
        let e = parse_handshake(br#"{"username": "Sistema", "room": "Teste"}"#).unwrap_err();
        assert_eq!(e.room.as_deref(), Some("Teste"));
        let e = parse_handshake(br#"{"username": 5, "room": "Teste"}"#).unwrap_err();
        assert_eq!(e.room.as_deref(), Some("Teste"));
        let e = parse_handshake(br#"{"username": "Yan"}"#).unwrap_err();
        assert_eq!(e.room, None);
        let e = parse_handshake(br#"{"username": "Yan", "room": "bad\u0000"}"#).unwrap_err();
        assert_eq!(e.room, None);
        let e = parse_handshake(br#"["Yan","Teste"]"#).unwrap_err();
        assert_eq!(e.room, None);
    }

    #[test]
    fn optional_fields_say_what_is_wrong_with_them() {
        let reason = |payload: &str| parse_handshake(payload.as_bytes()).unwrap_err().reason;
        let cases = [
            (
                r#"{"username": "Yan", "room": "T", "key": 5}"#,
                "\"key\" must be a string of 1 to 1024 bytes",
            ),
            (
                r#"{"username": "Yan", "room": "T", "key": ""}"#,
                "\"key\" must be a string of 1 to 1024 bytes",
            ),
            (r#"{"room": "T", "token": 5}"#, "\"token\" is not a string"),
            (
                r#"{"room": "T", "token": ""}"#,
                "\"token\" must be 1 to 16384 bytes",
            ),
            (
                r#"{"username": "Yan", "room": "T", "password": []}"#,
                "\"password\" is not a string",
            ),
            (
                r#"{"username": "Yan", "room": "T", "password": ""}"#,
                "\"password\" must be 1 to 1024 bytes",
            ),
        ];
        for (payload, detail) in cases {
            let r = reason(payload);
            assert!(r.starts_with("malformed handshake: "), "{payload}: {r}");
            assert!(r.ends_with(detail), "{payload}: {r}");
        }
        let ok = parse_handshake(br#"{"room": "T", "token": "a.b.c", "key": null}"#).unwrap();
        assert_eq!(ok.token.as_deref(), Some("a.b.c"));
        assert_eq!(ok.key, None);
    }

    #[test]
    fn message_validation() {
        assert_eq!(validate_message(b"Ol\xc3\xa1\tok"), Ok("Olá\tok"));
        assert!(validate_message(b"\xff").is_err());
        assert!(validate_message(b"a\x1b[31mred").is_err());
        assert!(validate_message(b"line\nbreak").is_err());
        assert!(validate_message("c1\u{9b}".as_bytes()).is_err());
        assert!(validate_message(b"del\x7f").is_err());
        let zalgo = format!("a{}", "\u{301}".repeat(8000));
        assert!(validate_message(zalgo.as_bytes()).is_err());
        assert!(validate_message("Tiếng Việt שָׁלוֹם".as_bytes()).is_ok());
    }

    #[test]
    fn event_is_ascii_with_one_closing_brace() {
        let text = "Olá {ok} \"q\" \\ 😀 \u{7f}";
        let line = Event {
            kind: EventKind::Message,
            username: "Yan}".into(),
            message: text.into(),
            room: Some("Teste{".into()),
            reason: None,
            ..Event::default()
        }
        .encode();
        assert!(line.is_ascii());
        assert_eq!(line.iter().filter(|&&b| b == b'}').count(), 1);
        assert_eq!(line.iter().filter(|&&b| b == b'{').count(), 1);
        assert!(line.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["message"], text);
        assert_eq!(v["username"], "Yan}");
        assert_eq!(v["room"], "Teste{");
        assert_eq!(v["type"], "message");
    }

    #[test]
    fn event_matches_protocol_example() {
        let line = Event {
            kind: EventKind::Message,
            username: "Yan".into(),
            message: "Olá {ok}".into(),
            room: Some("Teste".into()),
            reason: None,
            ..Event::default()
        }
        .encode();
        assert_eq!(
            line,
            b"{\"username\":\"Yan\",\"message\":\"Ol\\u00e1 \\u007bok\\u007d\",\"type\":\"message\",\"room\":\"Teste\"}\n"
        );
    }

    #[test]
    fn error_event_fields() {
        let line = Event::error(ErrorCode::NoSuchRoom, Some("X"), "no room named 'X'").encode();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["username"], "Sistema");
        assert_eq!(v["message"], "404");
        assert_eq!(v["type"], "error");
        assert_eq!(v["reason"], "no room named 'X'");
    }

    #[test]
    fn events_parse_back_and_prototype_events_are_read_by_content() {
        let e = Event::system(EventKind::Closed, CLOSED, Some("Teste"));
        assert_eq!(Event::parse(&e.encode()), Ok(e));
        let join = Event::parse(br#"{"username":"Yan","message":"*** ENTROU NA SALA ***"}"#);
        assert_eq!(join.map(|e| e.kind), Ok(EventKind::Join));
        let refused = Event::parse(br#"{"username":"Sistema","message":"404"}"#);
        assert_eq!(refused.map(|e| e.kind), Ok(EventKind::Error));
        let said = Event::parse(br#"{"username":"Yan","message":"404"}"#);
        assert_eq!(said.map(|e| e.kind), Ok(EventKind::Message));
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"username":"a"}"#,
            br#"{"username":"a","message":"b","type":"x"}"#,
            b"\xff",
        ] {
            assert!(Event::parse(bad).is_err());
        }
    }

    #[test]
    fn frame_encoding_is_left_aligned() {
        assert_eq!(encode_frame(b"abc"), b"3         abc");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Decodes `stream` split at the given cut points (as fractions of
        /// the length), pushing at most `space()` bytes at a time.
        fn decode_chunked(
            stream: &[u8],
            cuts: &[usize],
            max: usize,
        ) -> Vec<Result<Vec<u8>, FrameError>> {
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            bounds.push(stream.len());
            bounds.sort_unstable();
            let mut d = Decoder::new(max);
            let mut out = Vec::new();
            let mut pos = 0;
            for end in bounds {
                while pos < end {
                    let n = d.space().min(end - pos);
                    if n == 0 {
                        return out;
                    }
                    d.push(&stream[pos..pos + n]);
                    pos += n;
                    while let Some(f) = d.next_frame() {
                        let failed = f.is_err();
                        out.push(f);
                        if failed {
                            return out;
                        }
                    }
                }
            }
            out
        }

        /// Streams that are mostly well-formed frames, with garbage mixed in.
        fn streams() -> impl Strategy<Value = Vec<u8>> {
            let frame = prop::collection::vec(any::<u8>(), 0..40).prop_map(|p| encode_frame(&p));
            let garbage = prop::collection::vec(any::<u8>(), 0..12);
            let piece = prop_oneof![4 => frame, 1 => garbage];
            prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
        }

        proptest! {
            #[test]
            fn any_chunking_yields_the_same_frames_and_errors(
                stream in streams(),
                cuts in prop::collection::vec(any::<usize>(), 0..12),
                max in 1usize..64,
            ) {
                let whole = decode_chunked(&stream, &[], max);
                prop_assert_eq!(decode_chunked(&stream, &cuts, max), whole.clone());
                let bytes: Vec<usize> = (0..stream.len()).collect();
                prop_assert_eq!(decode_chunked(&stream, &bytes, max), whole);
            }

            #[test]
            fn handshakes_with_any_fields_never_panic_or_show_the_password(
                username in any::<String>(),
                room in "[A-Za-z]{1,8}",
                password in prop::option::of("[a-z]{12,20}"),
                extra in any::<i64>(),
            ) {
                let mut v = serde_json::json!({"username": username, "room": room, "x": extra});
                if let Some(p) = &password {
                    v["password"] = serde_json::Value::from(p.clone());
                }
                let bytes = v.to_string().into_bytes();
                match parse_handshake(&bytes) {
                    Ok(h) => {
                        prop_assert_eq!(&h.password, &password);
                        if let Some(p) = &password {
                            let shown = format!("{:?}", h);
                            prop_assert!(!shown.contains(p.as_str()));
                        }
                    }
                    Err(e) => {
                        if let Some(p) = &password {
                            prop_assert!(!e.reason.contains(p.as_str()));
                        }
                    }
                }
            }

            #[test]
            fn events_are_ascii_with_one_brace_and_round_trip(
                username in any::<String>(),
                message in any::<String>(),
                room in any::<String>(),
                reason in any::<String>(),
            ) {
                let event = Event {
                    kind: EventKind::Error,
                    username: username.clone(),
                    message: message.clone(),
                    room: Some(room.clone()),
                    reason: Some(reason.clone()),
                    ..Event::default()
                };
                let line = event.encode();
                prop_assert!(line.is_ascii());
                prop_assert_eq!(line.iter().filter(|&&b| b == b'}').count(), 1);
                prop_assert_eq!(line.last_chunk::<2>(), Some(b"}\n"));
                let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
                prop_assert_eq!(v["username"].as_str(), Some(username.as_str()));
                prop_assert_eq!(v["message"].as_str(), Some(message.as_str()));
                prop_assert_eq!(v["room"].as_str(), Some(room.as_str()));
                prop_assert_eq!(v["reason"].as_str(), Some(reason.as_str()));
                prop_assert_eq!(Event::parse(&line), Ok(event));
            }
        }
    }
}
