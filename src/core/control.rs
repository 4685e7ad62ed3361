//! The control protocol (PROTOCOL.md §2), shared by chatd and chatctl: typed
//! requests and typed responses, the error codes and the size bound on a
//! request line. One JSON request per line, one JSON response per line;
//! this module owns both directions of the encoding, so chatd and chatctl
//! cannot disagree on it. (Where the socket is: [`crate::paths`].) An API
//! boundary: scripts rely on these lines byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest request line chatd accepts (newline excluded).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Default for `logs` when no `limit` is given.
pub const DEFAULT_LOG_LIMIT: usize = 100;

/// A change to the state the nodes share, as a command made it. Cluster
/// mode replicates each kind with an exhaustive `match`, so a new kind of
/// change cannot silently stay on one node: the compiler names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A room was created (with its limit, access and history settings).
    RoomCreated {
        room: String,
    },
    /// A room's settings changed: its limit, or its allow-list grew.
    RoomChanged {
        room: String,
    },
    /// A name left a private room's allow-list: its settings changed, and
    /// a member by that name leaves the room on every node.
    RoomDenied {
        room: String,
        username: String,
    },
    RoomClosed {
        room: String,
    },
    /// An account was registered, or its password changed.
    AccountPut {
        name: String,
    },
    AccountDeleted {
        name: String,
    },
    /// A member was kicked (on whichever node holds it).
    Kicked {
        room: String,
        username: String,
        /// Told to the kicked and the room ('' none).
        reason: String,
    },
    /// The server-wide bans changed.
    ServerBans,
    /// A room's history before `before_ms` (Unix ms; `i64::MAX`: all of
    /// it) was purged: on every node, and from the cluster's log.
    Purged {
        room: String,
        before_ms: i64,
    },
}

/// One control request. Unknown commands and unknown fields are refused
/// (`bad_request`), so a typo never silently does something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    CreateRoom {
        name: String,
        limit: usize,
        /// A private room: only its allow-list (logged in) and key holders.
        #[serde(default, skip_serializing_if = "is_false")]
        private: bool,
        /// The private room's key (a password; stored hashed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// Events kept for joiners that ask (0: none; absent: the
        /// server's `--history`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history: Option<usize>,
        /// The oldest a kept event may be, in seconds (absent: the
        /// server's `--history-age`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history_age: Option<u64>,
    },
    List {},
    Participants {
        room: String,
    },
    CloseRoom {
        room: String,
    },
    SetLimit {
        room: String,
        limit: usize,
    },
    Kick {
        room: String,
        username: String,
        /// Shown to the kicked and the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Sets a room's topic (an empty one clears it).
    RoomTopic {
        room: String,
        topic: String,
    },
    /// Bans a target (a name, `account:NAME`, an address or range, an
    /// IRC mask) from a room, for a while or for good; members it
    /// matches are removed.
    RoomBan {
        room: String,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RoomUnban {
        room: String,
        target: String,
    },
    /// Mutes a target in a room: it may read, not speak.
    RoomMute {
        room: String,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RoomUnmute {
        room: String,
        target: String,
    },
    /// Makes an account an operator of a room.
    RoomOp {
        room: String,
        account: String,
    },
    RoomDeop {
        room: String,
        account: String,
    },
    /// Turns a room's `+m` on or off: only its operators and voiced
    /// members speak.
    RoomModerated {
        room: String,
        on: bool,
    },
    /// A room's moderation: topic, operators, bans, mutes, `+m`.
    RoomModeration {
        room: String,
    },
    /// Bans a target from every room.
    Ban {
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unban {
        target: String,
    },
    /// The server-wide bans.
    Bans {},
    Logs {
        #[serde(default = "default_log_limit")]
        limit: usize,
        #[serde(default)]
        follow: bool,
        /// Only entries at or after this RFC 3339 time (UTC, `Z`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// Only entries at least this severe (error > warn > info).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<Level>,
    },
    /// A room's kept events from the history file, oldest first.
    History {
        room: String,
        #[serde(default = "default_history_limit")]
        limit: usize,
        /// Only events at or after this RFC 3339 time (UTC, `Z`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
    },
    /// Deletes a room's kept events (all, or those before an RFC 3339
    /// time), from the history file and from memory, on this node.
    Purge {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
    },
    Stats {},
    /// Version, pid, uptime, addresses, paths and counts.
    Status {},
    /// Puts a name on a private room's allow-list.
    RoomAllow {
        room: String,
        username: String,
    },
    /// Takes a name off a private room's allow-list; a member by that name
    /// inside is removed (told `kicked`).
    RoomDeny {
        room: String,
        username: String,
    },
    /// Registers an account (the password is hashed by chatd, never kept).
    UserAdd {
        name: String,
        password: String,
    },
    UserDel {
        name: String,
    },
    UserList {},
    UserPasswd {
        name: String,
        password: String,
    },
}

fn default_log_limit() -> usize {
    DEFAULT_LOG_LIMIT
}

fn default_history_limit() -> usize {
    50
}

/// One kept event, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `message`, `join` or `leave`.
    #[serde(rename = "type")]
    pub kind: String,
    pub username: String,
    pub message: String,
    pub ts: String,
    pub msgid: String,
}

impl Request {
    /// Whether the command changes the daemon's state (such commands are
    /// logged with the peer's uid and pid).
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Request::CreateRoom { .. }
                | Request::CloseRoom { .. }
                | Request::SetLimit { .. }
                | Request::Kick { .. }
                | Request::UserAdd { .. }
                | Request::UserDel { .. }
                | Request::UserPasswd { .. }
                | Request::RoomAllow { .. }
                | Request::RoomDeny { .. }
                | Request::Purge { .. }
                | Request::RoomTopic { .. }
                | Request::RoomBan { .. }
                | Request::RoomUnban { .. }
                | Request::RoomMute { .. }
                | Request::RoomUnmute { .. }
                | Request::RoomOp { .. }
                | Request::RoomDeop { .. }
                | Request::RoomModerated { .. }
                | Request::Ban { .. }
                | Request::Unban { .. }
        )
    }

    /// Parses one request line; the error is the `bad_request` message.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))
    }
}

/// The `code` of an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    Exists,
    Invalid,
    BadRequest,
    /// The request was valid but chatd could not carry it out (for example
    /// the state file could not be written).
    Failed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::Invalid => "invalid",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Failed => "failed",
        }
    }
}

impl ErrorCode {
    pub fn parse(s: &str) -> Option<ErrorCode> {
        Some(match s {
            "not_found" => ErrorCode::NotFound,
            "exists" => ErrorCode::Exists,
            "invalid" => ErrorCode::Invalid,
            "bad_request" => ErrorCode::BadRequest,
            "failed" => ErrorCode::Failed,
            _ => return None,
        })
    }
}

/// A room as `list`, `create-room` and `set-limit` show it; `private` and
/// `allowed` only for private rooms (public rooms look as they always did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub name: String,
    pub limit: usize,
    pub members: usize,
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// Messages kept for joiners (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history: usize,
    /// The oldest a kept event may be, in seconds (0: the server's).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub history_age: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A member as `participants` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub username: String,
    pub address: String,
    pub joined_at: String,
    /// In cluster mode, the node the member is connected to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// A log entry's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    /// As a column: `ERROR`, `WARN`, `INFO`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

/// One log entry as `logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub ts: String,
    pub level: Level,
    pub message: String,
}

/// What `stats` reports, in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_secs: u64,
    pub clients: usize,
    pub members: usize,
    pub rooms: usize,
    pub messages_relayed: u64,
    pub deliveries: u64,
    pub bytes_out: u64,
    pub slow_consumer_drops: u64,
    pub joins: u64,
    pub refusals: u64,
    /// Per-client log lines not logged: over the per-address rate.
    #[serde(default)]
    pub log_lines_suppressed: u64,
    /// Cluster mode: items read from Redis that failed the checks.
    #[serde(default)]
    pub cluster_dropped: u64,
    /// Cluster mode: times a held room's inbox overflowed (other nodes
    /// kept sending past the bound).
    #[serde(default)]
    pub cluster_inbox_overflows: u64,
    /// Messages flood control refused (delays are not counted).
    #[serde(default)]
    pub flood_refusals: u64,
    /// Writes to chat clients that sent bytes: bytes_out / writes is the
    /// bytes per write(2), how well output is batched.
    #[serde(default)]
    pub writes: u64,
}

impl Stats {
    /// Name and value of each counter, in the wire's order.
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("uptime_secs", self.uptime_secs),
            ("clients", self.clients as u64),
            ("members", self.members as u64),
            ("rooms", self.rooms as u64),
            ("messages_relayed", self.messages_relayed),
            ("deliveries", self.deliveries),
            ("bytes_out", self.bytes_out),
            ("slow_consumer_drops", self.slow_consumer_drops),
            ("joins", self.joins),
            ("refusals", self.refusals),
            ("log_lines_suppressed", self.log_lines_suppressed),
            ("cluster_dropped", self.cluster_dropped),
            ("cluster_inbox_overflows", self.cluster_inbox_overflows),
            ("flood_refusals", self.flood_refusals),
            ("writes", self.writes),
        ]
    }
}

/// A successful answer; which one follows from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `create-room`, `set-limit`.
    Room { room: RoomView },
    /// `list` (creation order).
    Rooms { rooms: Vec<RoomView> },
    /// `participants` (join order).
    Participants {
        room: String,
        participants: Vec<Participant>,
    },
    /// `close-room`.
    Closed { room: String, disconnected: usize },
    /// `kick`.
    Kicked { room: String, username: String },
    /// The moderation commands: a room's (or, `room` absent, the
    /// server's bans), as it now is.
    Moderation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        moderation: Box<crate::core::moderation::Moderation>,
    },
    /// `logs` (oldest first).
    Logs { logs: Vec<LogEntry> },
    /// `history` (oldest first).
    History {
        room: String,
        history: Vec<HistoryEntry>,
    },
    /// `purge`.
    Purged { room: String, removed: usize },
    /// `stats` (boxed: past the other answers' size).
    Stats { stats: Box<Stats> },
    /// `status` (boxed: the largest reply by far).
    Status { status: Box<StatusView> },
    /// `user-add`, `user-del`, `user-passwd`.
    User { user: UserView },
    /// `user-list` (by name).
    Users { users: Vec<UserView> },
}

/// What `status` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    /// The IRC door's addresses (none when it is closed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub irc_listen: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub irc_tls_listen: Vec<String>,
    /// The web port's addresses (none when it is closed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_listen: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_tls_listen: Vec<String>,
    pub control: String,
    pub state_file: String,
    pub clients: usize,
    pub members: usize,
    pub rooms: usize,
    /// Cluster mode: the link's state, the node id and the Redis URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl Level {
    /// Severity rank: error 0, warn 1, info 2.
    fn rank(self) -> u8 {
        match self {
            Level::Error => 0,
            Level::Warn => 1,
            Level::Info => 2,
        }
    }

    /// Whether an entry at this level passes a `priority` filter.
    pub fn at_least(self, min: Level) -> bool {
        self.rank() <= min.rank()
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" | "err" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            _ => None,
        }
    }
}

impl LogEntry {
    /// Whether the entry passes the `logs` filters.
    pub fn passes(&self, since: Option<&str>, priority: Option<Level>) -> bool {
        since.is_none_or(|t| self.ts.as_str() >= t)
            && priority.is_none_or(|p| self.level.at_least(p))
    }
}

/// After `logs --follow`, when chatd shuts down cleanly: `{"end":"shutdown"}`.
pub const FOLLOW_END: &[u8] = b"{\"end\":\"shutdown\"}\n";

/// An account as the control protocol shows it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
}

/// A refusal: `{"code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ok(Reply),
    Err(Refusal),
}

impl Response {
    pub fn error(code: ErrorCode, message: &str) -> Response {
        Response::Err(Refusal {
            code,
            message: message.to_string(),
        })
    }

    /// `{"ok":true,...reply}` or `{"ok":false,"error":{"code":...,"message":...}}`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        match self {
            Response::Ok(reply) => {
                m.insert("ok".into(), Value::Bool(true));
                if let Ok(Value::Object(fields)) = serde_json::to_value(reply) {
                    m.extend(fields);
                }
            }
            Response::Err(r) => {
                m.insert("ok".into(), Value::Bool(false));
                m.insert(
                    "error".into(),
                    serde_json::json!({ "code": r.code.as_str(), "message": r.message }),
                );
            }
        }
        Value::Object(m)
    }

    /// The response as one line, newline included (serde_json escapes
    /// control characters, so it is always one line).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(&self.to_value()).expect("a Value serializes");
        line.push(b'\n');
        line
    }

    /// Parses the response to `req`: the request says which reply to
    /// expect. The error describes a malformed line.
    pub fn parse(req: &Request, line: &[u8]) -> Result<Response, String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("ok") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                let code = v["error"]["code"].as_str().and_then(ErrorCode::parse);
                let message = v["error"]["message"].as_str();
                return match (code, message) {
                    (Some(code), Some(message)) => Ok(Response::error(code, message)),
                    _ => Err("an error without a known code and a message".into()),
                };
            }
            _ => return Err("no \"ok\" field".into()),
        }
        let field = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        let bad = |e: serde_json::Error| format!("unexpected reply: {e}");
        let reply = match req {
            Request::CreateRoom { .. }
            | Request::SetLimit { .. }
            | Request::RoomAllow { .. }
            | Request::RoomDeny { .. } => Reply::Room {
                room: serde_json::from_value(field("room")).map_err(bad)?,
            },
            Request::List {} => Reply::Rooms {
                rooms: serde_json::from_value(field("rooms")).map_err(bad)?,
            },
            Request::Participants { .. } => Reply::Participants {
                room: serde_json::from_value(field("room")).map_err(bad)?,
                participants: serde_json::from_value(field("participants")).map_err(bad)?,
            },
            Request::CloseRoom { .. } => Reply::Closed {
                room: serde_json::from_value(field("room")).map_err(bad)?,
                disconnected: serde_json::from_value(field("disconnected")).map_err(bad)?,
            },
            Request::Kick { .. } => Reply::Kicked {
                room: serde_json::from_value(field("room")).map_err(bad)?,
                username: serde_json::from_value(field("username")).map_err(bad)?,
            },
            Request::Logs { .. } => Reply::Logs {
                logs: serde_json::from_value(field("logs")).map_err(bad)?,
            },
            Request::History { .. } => Reply::History {
                room: serde_json::from_value(field("room")).map_err(bad)?,
                history: serde_json::from_value(field("history")).map_err(bad)?,
            },
            Request::Purge { .. } => Reply::Purged {
                room: serde_json::from_value(field("room")).map_err(bad)?,
                removed: serde_json::from_value(field("removed")).map_err(bad)?,
            },
            Request::Stats {} => Reply::Stats {
                stats: serde_json::from_value(field("stats")).map_err(bad)?,
            },
            Request::Status {} => Reply::Status {
                status: serde_json::from_value(field("status")).map_err(bad)?,
            },
            Request::UserAdd { .. } | Request::UserDel { .. } | Request::UserPasswd { .. } => {
                Reply::User {
                    user: serde_json::from_value(field("user")).map_err(bad)?,
                }
            }
            Request::UserList {} => Reply::Users {
                users: serde_json::from_value(field("users")).map_err(bad)?,
            },
            Request::RoomTopic { .. }
            | Request::RoomBan { .. }
            | Request::RoomUnban { .. }
            | Request::RoomMute { .. }
            | Request::RoomUnmute { .. }
            | Request::RoomOp { .. }
            | Request::RoomDeop { .. }
            | Request::RoomModerated { .. }
            | Request::RoomModeration { .. }
            | Request::Ban { .. }
            | Request::Unban { .. }
            | Request::Bans {} => Reply::Moderation {
                room: serde_json::from_value(field("room")).map_err(bad)?,
                moderation: serde_json::from_value(field("moderation")).map_err(bad)?,
            },
        };
        Ok(Response::Ok(reply))
    }
}

/// One streamed entry after `logs --follow`: `{"log":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowLine {
    pub log: LogEntry,
}

impl FollowLine {
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a log line serializes");
        line.push(b'\n');
        line
    }

    pub fn parse(line: &[u8]) -> Result<FollowLine, String> {
        serde_json::from_slice(line).map_err(|e| format!("unexpected log line: {e}"))
    }
}

/// A duration as a room operator types it: `90s`, `10m`, `2h`, `7d`,
/// `1w` (seconds).
pub fn parse_duration(s: &str) -> Option<u64> {
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(scale).filter(|&n| n > 0)
}

/// The room-operator commands a member of the chat port may send with
/// the `"commands"` feature: a message that starts with `/` (but not
/// `//`) is one of these, for the member's own room. Each is the
/// control request it stands for (so it runs exactly as `chatctl` does);
/// the error is what the member is told.
pub fn member_command(room: &str, text: &str) -> Result<Request, String> {
    let mut words = text.split_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_lowercase();
    let rest: Vec<&str> = words.collect();
    let room = room.to_string();
    let target = |i: usize| {
        rest.get(i)
            .map(|t| t.to_string())
            .ok_or_else(|| format!("{verb} needs a name (or account:NAME, an address or range)"))
    };
    // `/ban NAME [DURATION] [reason...]`
    let timed = || -> Result<(String, Option<u64>, Option<String>), String> {
        let t = target(0)?;
        let (secs, from) = match rest.get(1).and_then(|d| parse_duration(d)) {
            Some(secs) => (Some(secs), 2),
            None => (None, 1),
        };
        let reason = rest[from.min(rest.len())..].join(" ");
        Ok((t, secs, (!reason.is_empty()).then_some(reason)))
    };
    Ok(match verb.as_str() {
        "/kick" => {
            let reason = rest.get(1..).map(|r| r.join(" ")).unwrap_or_default();
            Request::Kick {
                room,
                username: target(0)?,
                reason: (!reason.is_empty()).then_some(reason),
            }
        }
        "/ban" | "/mute" => {
            let (target, for_secs, reason) = timed()?;
            if verb == "/ban" {
                Request::RoomBan {
                    room,
                    target,
                    for_secs,
                    reason,
                }
            } else {
                Request::RoomMute {
                    room,
                    target,
                    for_secs,
                    reason,
                }
            }
        }
        "/unban" => Request::RoomUnban {
            room,
            target: target(0)?,
        },
        "/unmute" => Request::RoomUnmute {
            room,
            target: target(0)?,
        },
        "/topic" if rest.is_empty() => Request::RoomModeration { room },
        "/topic" => {
            let topic = text.trim_start()[verb.len()..].trim().to_string();
            let topic = if topic == "-" { String::new() } else { topic };
            Request::RoomTopic { room, topic }
        }
        "/limit" => match rest.first().and_then(|n| n.parse::<usize>().ok()) {
            Some(limit) => Request::SetLimit { room, limit },
            None => return Err("/limit needs a number, at least 1".into()),
        },
        "/moderated" => match rest.first().copied() {
            Some("on") => Request::RoomModerated { room, on: true },
            Some("off") => Request::RoomModerated { room, on: false },
            _ => return Err("/moderated on, or /moderated off".into()),
        },
        _ => {
            return Err(format!(
                "unknown command {verb}: the room's operators have /kick, /ban, /unban, /mute, /unmute, /topic, /limit and /moderated (start a message with // to send it as it is)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_command_is_the_control_request_it_stands_for() {
        let r = member_command("Teste", "/ban Yan 1h spam again").unwrap();
        assert_eq!(
            r,
            Request::RoomBan {
                room: "Teste".into(),
                target: "Yan".into(),
                for_secs: Some(3600),
                reason: Some("spam again".into()),
            }
        );
        let r = member_command("Teste", "/mute 10.0.0.0/8").unwrap();
        assert!(matches!(
            r,
            Request::RoomMute {
                for_secs: None,
                reason: None,
                ..
            }
        ));
        let r = member_command("Teste", "/kick ana fora daqui").unwrap();
        assert!(matches!(r, Request::Kick { reason: Some(ref w), .. } if w == "fora daqui"));
        let r = member_command("Teste", "/topic  Olá, mundo ").unwrap();
        assert!(matches!(r, Request::RoomTopic { ref topic, .. } if topic == "Olá, mundo"));
        let r = member_command("Teste", "/topic -").unwrap();
        assert!(matches!(r, Request::RoomTopic { ref topic, .. } if topic.is_empty()));
        assert!(matches!(
            member_command("Teste", "/LIMIT 5").unwrap(),
            Request::SetLimit { limit: 5, .. }
        ));
        for bad in ["/ban", "/limit x", "/moderated maybe", "/shrug"] {
            assert!(member_command("Teste", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("2w"), Some(1_209_600));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("1y"), None);
    }

    #[test]
    fn responses_are_the_documented_lines_and_parse_back() {
        let room = RoomView {
            name: "Teste".into(),
            limit: 2,
            members: 0,
            private: false,
            allowed: Vec::new(),
            history: 0,
            history_age: 0,
        };
        let cases = [
            (
                Request::CreateRoom {
                    name: "Teste".into(),
                    limit: 2,
                    private: false,
                    key: None,
                    history: None,
                    history_age: None,
                },
                Response::Ok(Reply::Room { room: room.clone() }),
                r#"{"ok":true,"room":{"name":"Teste","limit":2,"members":0}}"#,
            ),
            (
                Request::List {},
                Response::Ok(Reply::Rooms { rooms: vec![room] }),
                r#"{"ok":true,"rooms":[{"name":"Teste","limit":2,"members":0}]}"#,
            ),
            (
                Request::CloseRoom {
                    room: "Teste".into(),
                },
                Response::Ok(Reply::Closed {
                    room: "Teste".into(),
                    disconnected: 1,
                }),
                r#"{"ok":true,"room":"Teste","disconnected":1}"#,
            ),
            (
                Request::Kick {
                    room: "Teste".into(),
                    username: "Yan".into(),
                    reason: None,
                },
                Response::Ok(Reply::Kicked {
                    room: "Teste".into(),
                    username: "Yan".into(),
                }),
                r#"{"ok":true,"room":"Teste","username":"Yan"}"#,
            ),
            (
                Request::Participants {
                    room: "Teste".into(),
                },
                Response::Ok(Reply::Participants {
                    room: "Teste".into(),
                    participants: vec![Participant {
                        username: "Yan".into(),
                        address: "127.0.0.1:50312".into(),
                        joined_at: "2026-11-24T10:00:00Z".into(),
                        node: String::new(),
                    }],
                }),
                r#"{"ok":true,"room":"Teste","participants":[{"username":"Yan","address":"127.0.0.1:50312","joined_at":"2026-11-24T10:00:00Z"}]}"#,
            ),
            (
                Request::Stats {},
                Response::Ok(Reply::Stats {
                    stats: Box::default(),
                }),
                r#"{"ok":true,"stats":{"uptime_secs":0,"clients":0,"members":0,"rooms":0,"messages_relayed":0,"deliveries":0,"bytes_out":0,"slow_consumer_drops":0,"joins":0,"refusals":0,"log_lines_suppressed":0,"cluster_dropped":0,"cluster_inbox_overflows":0,"flood_refusals":0,"writes":0}}"#,
            ),
            (
                Request::List {},
                Response::error(ErrorCode::NotFound, "no room named 'X'"),
                r#"{"ok":false,"error":{"code":"not_found","message":"no room named 'X'"}}"#,
            ),
        ];
        for (req, resp, line) in cases {
            let encoded = resp.to_line();
            assert_eq!(String::from_utf8_lossy(&encoded), format!("{line}\n"));
            assert_eq!(Response::parse(&req, &encoded), Ok(resp));
        }
        let follow = FollowLine {
            log: LogEntry {
                ts: "t".into(),
                level: Level::Warn,
                message: "m".into(),
            },
        };
        assert_eq!(
            follow.to_line(),
            b"{\"log\":{\"ts\":\"t\",\"level\":\"warn\",\"message\":\"m\"}}\n"
        );
        assert_eq!(FollowLine::parse(&follow.to_line()), Ok(follow));
    }

    #[test]
    fn request_parsing() {
        assert_eq!(
            Request::parse(br#"{"cmd":"create-room","name":"Teste","limit":2}"#),
            Ok(Request::CreateRoom {
                name: "Teste".into(),
                limit: 2,
                private: false,
                key: None,
                history: None,
                history_age: None,
            })
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"logs"}"#),
            Ok(Request::Logs {
                limit: 100,
                follow: false,
                since: None,
                priority: None,
            })
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"logs","limit":10,"follow":true}"#),
            Ok(Request::Logs {
                limit: 10,
                follow: true,
                since: None,
                priority: None,
            })
        );
        for bad in [
            &br#"{"cmd":"nope"}"#[..],
            br#"{"cmd":"create-room","name":"T","limit":-1}"#,
            br#"{"cmd":"create-room","name":"T","limt":2}"#,
            br#"{"cmd":"list","extra":1}"#,
            b"not json",
            b"{}",
            b"\xff",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }
}
