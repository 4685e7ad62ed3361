//! Cluster mode's shared language, without I/O: how chatd nodes talk to
//! Redis (RESP3 frames through the redis-protocol crate), the keys and
//! channels they share, the Lua scripts that change shared state
//! atomically, and the events published on the channels.
//!
//! Shared state (all under `chatd:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `chatd:rooms` | hash | room name → [`RoomDef`] (JSON) |
//! | `chatd:roomorder` | sorted set | room names in creation order |
//! | `chatd:members:<room>` | hash | name's comparison key → [`MemberRecord`] (JSON) |
//! | `chatd:nodes` | set | node ids that hold members |
//! | `chatd:node:<id>` | string, TTL | the node's heartbeat (its instance token) |
//! | `chatd:nodemembers:<id>` | set | `<room>\n<key>` for each of its members |
//! | `chatd:people` | hash | name's comparison key → who holds it cluster-wide: `{"name","nick":node}` for an IRC nick, `{"name","n":count}` for the chat port's members sharing one spelling |
//! | `chatd:nodenicks:<id>` | set | comparison keys of the node's IRC nicks |
//! | `chatd:users` | hash | account name → its Argon2id hash |
//! | `chatd:epoch` | string | present once the shared state was seeded |
//!
//! Everything read from Redis is untrusted input (any client of that Redis
//! could have written it): records and messages are checked here
//! ([`MemberRecord::check`], [`ChatMessage::check`]) with the door's rules,
//! unknown fields and wrong types fail to parse, and payloads over
//! [`MAX_PAYLOAD`] are not parsed at all; the loop drops and counts what
//! fails.
//!
//! Channels: `chatd:events` (every node: joins, leaves, kicks, room
//! changes, closings, accounts, holds: back-pressure), `chatd:room:<room>` (chat messages; only nodes
//! with members in the room subscribe) and `chatd:nick:<key>` (direct
//! messages to an IRC nick; only the nick's node subscribes, so PUBLISH
//! answering 0 means nobody holds it).

use redis_protocol::resp3::decode::complete::decode;
use redis_protocol::resp3::encode::complete::encode;
use redis_protocol::resp3::types::{OwnedFrame, Resp3Frame};
use serde::{Deserialize, Serialize};

pub use redis_protocol::resp3::types::OwnedFrame as Frame;

pub const EVENTS: &str = "chatd:events";

/// The largest pub/sub payload parsed: a message of the largest frame,
/// every byte escaped, and room to spare.
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// A node id as `--node-id` takes it: 1 to 64 letters, digits, '.', '_'
/// or '-'.
pub fn check_node_id(node: &str) -> Result<(), String> {
    let ok = !node.is_empty()
        && node.len() <= 64
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("1 to 64 letters, digits, '.', '_' or '-'".into())
    }
}

fn check_node(node: &str) -> Result<(), String> {
    check_node_id(node)
        .map_err(|e| format!("node id '{}': {e}", crate::core::text::printable(node)))
}

/// A short, printable field (an address, a time).
fn check_short(what: &str, v: &str) -> Result<(), String> {
    if v.len() > 64 || v.chars().any(|c| c.is_control()) {
        return Err(format!("{what} is not a short printable string"));
    }
    Ok(())
}
pub const ROOMS: &str = "chatd:rooms";

/// The channel a room's chat messages go through.
pub fn room_channel(room: &str) -> String {
    format!("chatd:room:{room}")
}

/// The room a room channel belongs to.
pub fn channel_room(channel: &str) -> Option<&str> {
    channel.strip_prefix("chatd:room:")
}

/// The stream that keeps a history room's recent messages (the same
/// payloads as its channel), for a node that missed some to catch up.
pub fn log_key(room: &str) -> String {
    format!("chatd:log:{room}")
}

/// `XADD` of a message to a room's log, trimmed to about `keep` entries.
pub fn log_append(room: &str, keep: usize, payload: &[u8]) -> Vec<u8> {
    let key = log_key(room);
    let keep = keep.to_string();
    command(&[
        b"XADD",
        key.as_bytes(),
        b"MAXLEN",
        b"~",
        keep.as_bytes(),
        b"*",
        b"m",
        payload,
    ])
}

/// `XREVRANGE` of a room's newest `n` logged messages.
pub fn log_read(room: &str, n: usize) -> Vec<u8> {
    let key = log_key(room);
    let n = n.to_string();
    command(&[
        b"XREVRANGE",
        key.as_bytes(),
        b"+",
        b"-",
        b"COUNT",
        n.as_bytes(),
    ])
}

/// The payloads of an `XREVRANGE` reply (`[[id, [field, value, ...]], ...]`),
/// oldest first; entries of another shape are left out.
pub fn log_entries(frame: &OwnedFrame) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = items(frame)
        .iter()
        .filter_map(|entry| match items(entry) {
            [_id, fields] => match items(fields) {
                [field, value] if bytes(field) == Some(b"m") => bytes(value),
                _ => None,
            },
            _ => None,
        })
        .collect();
    out.reverse();
    out
}

fn no_age(secs: &u64) -> bool {
    *secs == 0
}

/// A room as the cluster shares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomDef {
    pub limit: usize,
    #[serde(default)]
    pub history: usize,
    /// Seconds (0: each node's `--history-age`).
    #[serde(default, skip_serializing_if = "no_age")]
    pub history_age: u64,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub allowed: Vec<String>,
    #[serde(default)]
    pub key_hash: Option<String>,
    /// Topic, operator accounts, bans, mutes, `+m`.
    #[serde(default, skip_serializing_if = "no_moderation")]
    pub moderation: crate::core::moderation::Moderation,
}

fn no_moderation(m: &crate::core::moderation::Moderation) -> bool {
    *m == crate::core::moderation::Moderation::default()
}

/// A member as the cluster shares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    pub name: String,
    pub node: String,
    pub addr: String,
    pub at: String,
    /// An IRC connection: its name is its nick (claimed in
    /// `chatd:people` on its own), not a shared chat-port name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub irc: bool,
}

impl MemberRecord {
    /// Whether a record read from Redis could have come from a node: a
    /// name that passes the door (so never `Sistema` or a look-alike), a
    /// valid node id, short printable address and time.
    pub fn check(&self) -> Result<(), String> {
        crate::core::names::check_username(&self.name)?;
        check_node(&self.node)?;
        check_short("the address", &self.addr)?;
        check_short("the join time", &self.at)
    }
}

/// What goes through `chatd:events`. The scripts publish these (built in
/// Lua, so field names are part of the scripts too).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClusterEvent {
    Join {
        room: String,
        member: MemberRecord,
    },
    Leave {
        room: String,
        name: String,
        node: String,
        why: String,
    },
    Kick {
        room: String,
        name: String,
        node: String,
        /// The kick's reason ('' none; absent from an older node).
        #[serde(default)]
        why: String,
    },
    Room {
        room: String,
        def: RoomDef,
    },
    Close {
        room: String,
    },
    /// A room's history was purged on one node: before a time in Unix ms
    /// (as text), or "all".
    Purge {
        room: String,
        before: String,
    },
    /// An account registered or changed (`hash` empty: deleted).
    User {
        name: String,
        hash: String,
    },
    /// The server-wide bans, as they now are.
    Bans {
        bans: Vec<crate::core::moderation::Rule>,
    },
    /// Back-pressure between nodes: `node` has a member of `room` backed
    /// up (`on`), so every node stops reading its members of that room,
    /// as it would for a member of its own; `on: false` lets it flow. A
    /// hold lasts [`HOLD_TTL`] unless renewed (a node renews its holds
    /// every heartbeat), so a node that dies holds nothing for long.
    Hold {
        room: String,
        node: String,
        on: bool,
    },
}

/// How long a hold lasts without renewal.
pub const HOLD_TTL: std::time::Duration = std::time::Duration::from_secs(3);

/// The `hold` event for `room` from `node` (published by the node itself,
/// not a script).
pub fn hold_event(room: &str, node: &str, on: bool) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"t": "hold", "room": room, "node": node, "on": on}))
        .expect("plain values serialise")
}

/// A chat message on a room's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub name: String,
    pub node: String,
    pub text: String,
    /// The id the sending node gave it, and when it was sent (Unix ms):
    /// every node keeps and shows it under the same id and time. (Absent
    /// from a node of before 2026-12-05: the receiver gives its own.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}

impl ChatMessage {
    /// Whether a message read from Redis is one a member could have sent
    /// at the door (at most `max_text` bytes). Who may send it, a member
    /// of the room on that node, is the mirror's to say.
    pub fn check(&self, max_text: usize) -> Result<(), String> {
        crate::core::names::check_username(&self.name)?;
        check_node(&self.node)?;
        if self.text.len() > max_text {
            return Err(format!("a message of {} bytes", self.text.len()));
        }
        if let Some(id) = &self.msgid {
            let fine = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !fine {
                return Err("a msgid that is not 1-64 letters, digits or '-'".into());
            }
        }
        crate::core::wire::validate_message(self.text.as_bytes())
            .map(|_| ())
            .map_err(str::to_string)
    }
}

/// The channel that reaches the node holding an IRC nick (`key`: its
/// comparison key).
pub fn nick_channel(key: &str) -> String {
    format!("chatd:nick:{key}")
}

/// The nick a nick channel is for (its comparison key).
pub fn channel_nick(channel: &str) -> Option<&str> {
    channel.strip_prefix("chatd:nick:")
}

/// A direct message to an IRC nick on another node, on its nick channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectMessage {
    /// The sender's nick, and its node.
    pub name: String,
    pub node: String,
    /// The recipient's nick as the sender wrote it.
    pub to: String,
    /// `PRIVMSG` or `NOTICE`.
    pub command: String,
    pub text: String,
}

impl DirectMessage {
    /// Whether a direct message read from Redis is one a node could have
    /// sent: names that pass the door, a known command, a message the
    /// door would take (at most `max_text` bytes).
    pub fn check(&self, max_text: usize) -> Result<(), String> {
        crate::core::names::check_username(&self.name)?;
        crate::core::names::check_username(&self.to)?;
        check_node(&self.node)?;
        if self.command != "PRIVMSG" && self.command != "NOTICE" {
            return Err(format!("a direct message by {:?}", self.command));
        }
        if self.text.len() > max_text {
            return Err(format!("a message of {} bytes", self.text.len()));
        }
        crate::core::wire::validate_message(self.text.as_bytes())
            .map(|_| ())
            .map_err(str::to_string)
    }
}

/// A join a node asks the cluster to decide: a chat-port handshake that
/// passed every local check, or an IRC JOIN.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub id: crate::core::ids::ConnId,
    pub peer: std::net::SocketAddr,
    pub hs: crate::core::wire::Handshake,
    pub username: String,
    /// How it logged in, for the log line (" (logged in)", or "").
    pub login: &'static str,
    /// An IRC JOIN (the member keeps its connection on a refusal).
    pub irc: bool,
}

/// What the cluster said of an IRC nick claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NickVerdict {
    Taken,
    /// Someone holds it (their spelling).
    HeldBy(String),
    /// Undecidable: Redis is unreachable.
    Unavailable,
}

/// Everything a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub rooms: Vec<RoomSnapshot>,
    /// (name, hash) of every account.
    pub users: Vec<(String, String)>,
    /// The server-wide bans.
    pub bans: Vec<crate::core::moderation::Rule>,
}

/// A room and its members as a snapshot lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSnapshot {
    pub name: String,
    pub def: RoomDef,
    pub members: Vec<MemberRecord>,
}

// -- RESP ---------------------------------------------------------------------

/// A command as RESP: an array of blob strings.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let frame = OwnedFrame::Array {
        data: args
            .iter()
            .map(|a| OwnedFrame::BlobString {
                data: a.to_vec(),
                attributes: None,
            })
            .collect(),
        attributes: None,
    };
    let mut buf = vec![0u8; frame.encode_len(false)];
    let n = encode(&mut buf, &frame, false).expect("buffer sized by encode_len");
    buf.truncate(n);
    buf
}

/// An EVAL of one of the scripts below, with no keys (the scripts name
/// their keys themselves: one Redis, not Redis Cluster; see SCALING.md).
pub fn eval(script: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"0"];
    all.extend_from_slice(args);
    command(&all)
}

/// The largest reply or push accepted from Redis (a snapshot of a big
/// cluster included); more is a broken link.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Frames from Redis, decoded as they complete.
#[derive(Debug, Default)]
pub struct RespReader {
    buf: Vec<u8>,
    start: usize,
}

impl RespReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame; `Err` when the stream is not RESP3 (or
    /// too large), after which the link must be dropped.
    pub fn next_frame(&mut self) -> Result<Option<OwnedFrame>, String> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            return Ok(None);
        }
        match decode(&self.buf[self.start..]) {
            Ok(Some((frame, used))) => {
                self.start += used;
                if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            Ok(None) if self.buf.len() - self.start > MAX_FRAME => {
                Err("a reply larger than 64 MiB".into())
            }
            Ok(None) => Ok(None),
            Err(e) => Err(format!("not RESP3: {e:?}")),
        }
    }
}

/// A frame's bytes, when it is a string of any kind.
pub fn bytes(frame: &OwnedFrame) -> Option<&[u8]> {
    match frame {
        OwnedFrame::BlobString { data, .. }
        | OwnedFrame::SimpleString { data, .. }
        | OwnedFrame::VerbatimString { data, .. } => Some(data),
        _ => None,
    }
}

pub fn text(frame: &OwnedFrame) -> Option<&str> {
    bytes(frame).and_then(|b| std::str::from_utf8(b).ok())
}

/// An error reply's text.
pub fn error(frame: &OwnedFrame) -> Option<String> {
    match frame {
        OwnedFrame::SimpleError { data, .. } => Some(data.clone()),
        OwnedFrame::BlobError { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}

/// The items of an array reply.
pub fn items(frame: &OwnedFrame) -> &[OwnedFrame] {
    match frame {
        OwnedFrame::Array { data, .. } | OwnedFrame::Push { data, .. } => data,
        _ => &[],
    }
}

/// A pub/sub message push: (channel, payload).
pub fn message(frame: &OwnedFrame) -> Option<(&str, &[u8])> {
    let OwnedFrame::Push { data, .. } = frame else {
        return None;
    };
    match data.as_slice() {
        [kind, channel, payload] if bytes(kind) == Some(b"message") => {
            Some((text(channel)?, bytes(payload)?))
        }
        _ => None,
    }
}

/// A join script's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinVerdict {
    Admitted,
    NoSuchRoom,
    /// Held by this member (its record).
    NameTaken(MemberRecord),
    /// Held elsewhere in the cluster, as spelled here: an IRC nick, a
    /// look-alike of it, or a chat-port name spelled differently; or
    /// (empty) this IRC joiner's own nick claim is gone.
    NameHeld(String),
    Full {
        members: usize,
        limit: usize,
    },
}

pub fn join_verdict(frame: &OwnedFrame) -> Result<JoinVerdict, String> {
    if let Some(e) = error(frame) {
        return Err(e);
    }
    let it = items(frame);
    let word = it.first().and_then(text).unwrap_or("");
    let arg = |i: usize| it.get(i).and_then(text).unwrap_or("");
    match word {
        "ok" => Ok(JoinVerdict::Admitted),
        "404" => Ok(JoinVerdict::NoSuchRoom),
        "held" => Ok(JoinVerdict::NameHeld(arg(1).to_string())),
        "409" => serde_json::from_str(arg(1))
            .map(JoinVerdict::NameTaken)
            .map_err(|e| format!("a member record: {e}")),
        "full" => Ok(JoinVerdict::Full {
            members: arg(1).parse().unwrap_or(0),
            limit: arg(2).parse().unwrap_or(0),
        }),
        other => Err(format!("unexpected join reply '{other}'")),
    }
}

/// A snapshot script's reply: rooms in creation order with their
/// members, and the accounts.
pub fn snapshot(frame: &OwnedFrame) -> Result<Snapshot, String> {
    if let Some(e) = error(frame) {
        return Err(e);
    }
    let parts = items(frame);
    let (Some(room_list), Some(user_list)) = (parts.first(), parts.get(1)) else {
        return Err("a snapshot without rooms and accounts".into());
    };
    let mut users = Vec::new();
    for pair in items(user_list).chunks(2) {
        let [name, hash] = pair else {
            return Err("an account without a hash".into());
        };
        let (Some(name), Some(hash)) = (text(name), text(hash)) else {
            return Err("an account that is not text".into());
        };
        users.push((name.to_string(), hash.to_string()));
    }
    let mut rooms = Vec::new();
    for room in items(room_list) {
        let parts = items(room);
        let (Some(name), Some(def)) = (parts.first().and_then(text), parts.get(1).and_then(text))
        else {
            return Err("a snapshot entry without a name or definition".into());
        };
        let def: RoomDef =
            serde_json::from_str(def).map_err(|e| format!("room '{name}' definition: {e}"))?;
        let mut members = Vec::new();
        for m in parts.get(2).map(items).unwrap_or(&[]) {
            let m = text(m).ok_or("a member record that is not text")?;
            members.push(serde_json::from_str(m).map_err(|e| format!("a member record: {e}"))?);
        }
        rooms.push(RoomSnapshot {
            name: name.to_string(),
            def,
            members,
        });
    }
    // An older snapshot (a node mid-upgrade) has no bans: none.
    let bans = match parts.get(2).and_then(text) {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| format!("the server-wide bans: {e}"))?
        }
        None => Vec::new(),
    };
    Ok(Snapshot { rooms, users, bans })
}

// -- scripts ----------------------------------------------------------------------

/// Lua shared by the scripts.
///
/// - `claim`/`unclaim`: a chat-port member takes (or gives back) its
///   name in `chatd:people`: shared by members spelling it the same,
///   refused when an IRC nick or another spelling holds it (returns the
///   holder's spelling).
/// - `nick_take`: `node` holds the nick; `nick_free`/`nicks_gone`: one
///   nick of a node, or all of a node's nicks, are free again.
/// - `remove`: removes one member entry (if `node` holds it), gives its
///   name back, and publishes its leave; returns 1 if removed.
const LUA_SHARED: &str = r#"
local function claim(key, name)
  local p = redis.call('HGET', 'chatd:people', key)
  local d = {name = name, n = 0}
  if p then
    d = cjson.decode(p)
    if d.nick or d.name ~= name then return d.name end
  end
  d.n = (d.n or 0) + 1
  redis.call('HSET', 'chatd:people', key, cjson.encode(d))
  return nil
end
local function unclaim(key)
  local p = redis.call('HGET', 'chatd:people', key)
  if not p then return end
  local d = cjson.decode(p)
  if d.nick then return end
  d.n = (d.n or 1) - 1
  if d.n <= 0 then
    redis.call('HDEL', 'chatd:people', key)
  else
    redis.call('HSET', 'chatd:people', key, cjson.encode(d))
  end
end
local function nick_take(key, name, node)
  redis.call('HSET', 'chatd:people', key, cjson.encode({name = name, nick = node}))
  redis.call('SADD', 'chatd:nodenicks:' .. node, key)
end
local function nick_free(key, node)
  local p = redis.call('HGET', 'chatd:people', key)
  if p and cjson.decode(p).nick == node then redis.call('HDEL', 'chatd:people', key) end
  redis.call('SREM', 'chatd:nodenicks:' .. node, key)
end
local function nicks_gone(node)
  for _, key in ipairs(redis.call('SMEMBERS', 'chatd:nodenicks:' .. node)) do
    nick_free(key, node)
  end
end
local function remove(room, key, node, why)
  local mkey = 'chatd:members:' .. room
  local held = redis.call('HGET', mkey, key)
  if not held then return 0 end
  local m = cjson.decode(held)
  if node and m.node ~= node then return 0 end
  redis.call('HDEL', mkey, key)
  redis.call('SREM', 'chatd:nodemembers:' .. m.node, room .. '\n' .. key)
  if not m.irc then unclaim(key) end
  redis.call('PUBLISH', 'chatd:events', cjson.encode({t='leave', room=room, name=m.name, node=m.node, why=why}))
  return 1
end
"#;

/// ARGV: room, comparison key, member record (JSON), node.
/// Admits the member if the room exists, the name is free in the room
/// and in the cluster (`chatd:people`: an IRC joiner must hold the nick,
/// a chat-port joiner shares it only with the same spelling) and the
/// room has space, all in one step: the cluster-wide limit.
pub fn join_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local room, key, record, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local def = redis.call('HGET', 'chatd:rooms', room)
if not def then return {'404'} end
local mkey = 'chatd:members:' .. room
local held = redis.call('HGET', mkey, key)
if held then return {'409', held} end
local limit = cjson.decode(def).limit
local n = redis.call('HLEN', mkey)
if n >= limit then return {'full', tostring(n), tostring(limit)} end
local m = cjson.decode(record)
if m.irc then
  local p = redis.call('HGET', 'chatd:people', key)
  if not p or cjson.decode(p).nick ~= node then return {'held', ''} end
else
  local holder = claim(key, m.name)
  if holder then return {'held', holder} end
end
redis.call('HSET', mkey, key, record)
redis.call('SADD', 'chatd:nodes', node)
redis.call('SADD', 'chatd:nodemembers:' .. node, room .. '\n' .. key)
redis.call('PUBLISH', 'chatd:events', '{"t":"join","room":' .. cjson.encode(room) .. ',"member":' .. record .. '}')
return {'ok'}
"#
    )
}

/// ARGV: comparison key, nick, node, the key of the node's nick it
/// replaces ('' for none). Claims an IRC nick cluster-wide: refused with
/// {'taken', holder's spelling} when anyone else holds it (another nick,
/// chat-port members, a look-alike); a change of case of one's own nick
/// is taken. Returns {'ok'}.
pub fn nick_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local key, name, node, old = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local p = redis.call('HGET', 'chatd:people', key)
if p then
  local d = cjson.decode(p)
  if not (d.nick == node and key == old) then return {'taken', d.name} end
end
if old ~= '' and old ~= key then nick_free(old, node) end
nick_take(key, name, node)
redis.call('SADD', 'chatd:nodes', node)
return {'ok'}
"#
    )
}

/// ARGV: comparison key, node. The node's nick is free again.
pub fn nick_free_script() -> String {
    format!("{LUA_SHARED}\nnick_free(ARGV[1], ARGV[2])\nreturn 1")
}

/// A nick script's verdict: Ok, or the holder's spelling.
pub fn nick_verdict(frame: &OwnedFrame) -> Result<Result<(), String>, String> {
    if let Some(e) = error(frame) {
        return Err(e);
    }
    let it = items(frame);
    match it.first().and_then(text) {
        Some("ok") => Ok(Ok(())),
        Some("taken") => Ok(Err(it.get(1).and_then(text).unwrap_or("").to_string())),
        other => Err(format!("unexpected nick reply {other:?}")),
    }
}

/// ARGV: room, comparison key, node, why. A member of `node` left.
pub fn leave_script() -> String {
    format!("{LUA_SHARED}\nreturn remove(ARGV[1], ARGV[2], ARGV[3], ARGV[4])")
}

/// ARGV: room, comparison key. Removes whoever holds the name (any node)
/// and tells its node to disconnect it; 0 when nobody does.
pub fn kick_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local room, key, why = ARGV[1], ARGV[2], ARGV[3] or ''
local mkey = 'chatd:members:' .. room
local held = redis.call('HGET', mkey, key)
if not held then return 0 end
local m = cjson.decode(held)
redis.call('HDEL', mkey, key)
redis.call('SREM', 'chatd:nodemembers:' .. m.node, room .. '\n' .. key)
if not m.irc then unclaim(key) end
redis.call('PUBLISH', 'chatd:events', cjson.encode({t='kick', room=room, name=m.name, node=m.node, why=why}))
return 1
"#
    )
}

/// ARGV: room, a time in Unix ms or 'all'. Forgets a room's logged
/// messages from before it (the stream's ids are the times Redis logged
/// them, a moment after they were sent), and tells every node to purge
/// its own.
pub const PURGE: &str = r#"
local room, before = ARGV[1], ARGV[2]
local log = 'chatd:log:' .. room
if before == 'all' then
  redis.call('DEL', log)
else
  redis.call('XTRIM', log, 'MINID', before)
end
redis.call('PUBLISH', 'chatd:events', cjson.encode({t='purge', room=room, before=before}))
return 1
"#;

/// What a purge's `before` says: a time in Unix ms, or "all".
pub fn purge_before(before_ms: i64) -> String {
    if before_ms == i64::MAX {
        "all".to_string()
    } else {
        before_ms.to_string()
    }
}

/// A purge event's `before`, as Unix ms (`i64::MAX`: all).
pub fn purge_before_ms(before: &str) -> Option<i64> {
    if before == "all" {
        Some(i64::MAX)
    } else {
        before.parse().ok()
    }
}

/// ARGV: room, definition (JSON), '1' to create (refused when it exists:
/// returns {'exists', definition}) or '0' to update (refused when it does
/// not: {'404'}; but into an emptied store, where the room is missing
/// only because everything is, the update is written, so that an
/// acknowledged change survives the re-seeding that follows).
/// Only the sync script marks the store seeded (`chatd:epoch`).
pub const ROOM_PUT: &str = r#"
local room, def, create = ARGV[1], ARGV[2], ARGV[3] == '1'
local old = redis.call('HGET', 'chatd:rooms', room)
if create and old then return {'exists', old} end
local seeded = redis.call('EXISTS', 'chatd:epoch') == 1
if not create and not old and seeded then return {'404'} end
redis.call('HSET', 'chatd:rooms', room, def)
if not old then
  redis.call('ZADD', 'chatd:roomorder', redis.call('INCR', 'chatd:roomseq'), room)
end
redis.call('PUBLISH', 'chatd:events', '{"t":"room","room":' .. cjson.encode(room) .. ',"def":' .. def .. '}')
return {'ok'}
"#;

/// ARGV: room. Deletes the room and its members' entries (their nodes
/// disconnect them on the `close` event); 0 when there was no such room.
pub fn room_del_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local room = ARGV[1]
if redis.call('HDEL', 'chatd:rooms', room) == 0 then return 0 end
redis.call('ZREM', 'chatd:roomorder', room)
local mkey = 'chatd:members:' .. room
local all = redis.call('HGETALL', mkey)
for i = 1, #all, 2 do
  local m = cjson.decode(all[i + 1])
  redis.call('SREM', 'chatd:nodemembers:' .. m.node, room .. '\n' .. all[i])
  if not m.irc then unclaim(all[i]) end
end
redis.call('DEL', mkey)
redis.call('DEL', 'chatd:log:' .. room)
redis.call('PUBLISH', 'chatd:events', cjson.encode({t='close', room=room}))
return 1
"#
    )
}

/// ARGV: node, instance token, TTL in ms. Renews the node's heartbeat
/// (refused with {'taken', token} when another instance holds the id),
/// then removes the members of every node whose heartbeat expired,
/// announcing their leaves. Returns {'ok', members removed, seeded}:
/// seeded '0' when the shared state is gone (FLUSHALL, eviction, a Redis
/// restarted without persistence), and the node must seed it again.
pub fn heartbeat_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local node, token, ttl = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('GET', 'chatd:node:' .. node)
if cur and cur ~= token then return {'taken', cur} end
redis.call('SET', 'chatd:node:' .. node, token, 'PX', ttl)
redis.call('SADD', 'chatd:nodes', node)
local reaped = 0
for _, n in ipairs(redis.call('SMEMBERS', 'chatd:nodes')) do
  if redis.call('EXISTS', 'chatd:node:' .. n) == 0 then
    for _, entry in ipairs(redis.call('SMEMBERS', 'chatd:nodemembers:' .. n)) do
      local nl = string.find(entry, '\n', 1, true)
      if nl then
        reaped = reaped + remove(string.sub(entry, 1, nl - 1), string.sub(entry, nl + 1), n, 'node ' .. n .. ' stopped answering')
      end
    end
    redis.call('DEL', 'chatd:nodemembers:' .. n)
    nicks_gone(n)
    redis.call('SREM', 'chatd:nodes', n)
  end
end
return {'ok', tostring(reaped), tostring(redis.call('EXISTS', 'chatd:epoch'))}
"#
    )
}

/// ARGV: node, instance token. A node leaving cleanly: its members are
/// removed and announced now, and its heartbeat deleted.
pub fn bye_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local node, token = ARGV[1], ARGV[2]
for _, entry in ipairs(redis.call('SMEMBERS', 'chatd:nodemembers:' .. node)) do
  local nl = string.find(entry, '\n', 1, true)
  if nl then remove(string.sub(entry, 1, nl - 1), string.sub(entry, nl + 1), node, 'node ' .. node .. ' stopped') end
end
redis.call('DEL', 'chatd:nodemembers:' .. node)
nicks_gone(node)
redis.call('SREM', 'chatd:nodes', node)
if redis.call('GET', 'chatd:node:' .. node) == token then redis.call('DEL', 'chatd:node:' .. node) end
return 1
"#
    )
}

/// ARGV: node, R (number of rooms), then R × (name, definition, '1' if
/// given with --room), then N (number of IRC nicks) and N × (key, nick),
/// then (room, key, record) for each of the node's members. Run after every (re)connect: if the shared state was never
/// seeded (a new or emptied Redis), the node's rooms seed it; its --room
/// rooms are added when missing in any case. Then the node's entries are made
/// what it holds: its nicks claimed again (stale ones freed), stale
/// members removed (leaves announced), missing ones added (joins
/// announced). Returns the nicks and members it could not re-add, as
/// {room, key, why} triples ('gone': no such room; 'taken': held by
/// another node; 'nick', with an empty room: the nick is someone
/// else's now).
pub fn sync_script() -> String {
    format!(
        "{LUA_SHARED}\n{}",
        r#"
local node = ARGV[1]
local nrooms = tonumber(ARGV[2])
local seed = redis.call('EXISTS', 'chatd:epoch') == 0
for i = 0, nrooms - 1 do
  local room, def, flagged = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  if (seed or flagged == '1') and redis.call('HSETNX', 'chatd:rooms', room, def) == 1 then
    redis.call('ZADD', 'chatd:roomorder', redis.call('INCR', 'chatd:roomseq'), room)
    redis.call('PUBLISH', 'chatd:events', '{"t":"room","room":' .. cjson.encode(room) .. ',"def":' .. def .. '}')
  end
end
redis.call('SET', 'chatd:epoch', '1')
local mine = {}
local failed = {}
local at = 3 + 3 * nrooms
local nnicks = tonumber(ARGV[at])
local mynicks = {}
for i = at + 1, at + 2 * nnicks, 2 do
  local key, name = ARGV[i], ARGV[i + 1]
  local p = redis.call('HGET', 'chatd:people', key)
  if p and cjson.decode(p).nick ~= node then
    table.insert(failed, ''); table.insert(failed, key); table.insert(failed, 'nick')
  else
    mynicks[key] = true
    nick_take(key, name, node)
  end
end
for _, key in ipairs(redis.call('SMEMBERS', 'chatd:nodenicks:' .. node)) do
  if not mynicks[key] then nick_free(key, node) end
end
local first = at + 1 + 2 * nnicks
for i = first, #ARGV, 3 do
  local room, key, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local entry = room .. '\n' .. key
  mine[entry] = true
  local mkey = 'chatd:members:' .. room
  if redis.call('HEXISTS', 'chatd:rooms', room) == 0 then
    table.insert(failed, room); table.insert(failed, key); table.insert(failed, 'gone')
  else
    local held = redis.call('HGET', mkey, key)
    local m = cjson.decode(record)
    local free = true
    if not held then
      if m.irc then
        free = mynicks[key] == true
      else
        free = claim(key, m.name) == nil
      end
    end
    if not free then
      table.insert(failed, room); table.insert(failed, key); table.insert(failed, 'taken')
    elseif not held then
      redis.call('HSET', mkey, key, record)
      redis.call('SADD', 'chatd:nodemembers:' .. node, entry)
      redis.call('PUBLISH', 'chatd:events', '{"t":"join","room":' .. cjson.encode(room) .. ',"member":' .. record .. '}')
    elseif cjson.decode(held).node ~= node then
      table.insert(failed, room); table.insert(failed, key); table.insert(failed, 'taken')
    else
      redis.call('SADD', 'chatd:nodemembers:' .. node, entry)
    end
  end
end
for _, entry in ipairs(redis.call('SMEMBERS', 'chatd:nodemembers:' .. node)) do
  if not mine[entry] then
    local nl = string.find(entry, '\n', 1, true)
    if nl then remove(string.sub(entry, 1, nl - 1), string.sub(entry, nl + 1), node, 'left while the cluster store was away') end
    redis.call('SREM', 'chatd:nodemembers:' .. node, entry)
  end
end
redis.call('SADD', 'chatd:nodes', node)
return failed
"#
    )
}

/// No ARGV. Every room in creation order, {name, definition, {records}},
/// and every account, {name, hash, ...}.
pub const SNAPSHOT: &str = r#"
local out = {}
for _, room in ipairs(redis.call('ZRANGE', 'chatd:roomorder', 0, -1)) do
  local def = redis.call('HGET', 'chatd:rooms', room)
  if def then
    table.insert(out, {room, def, redis.call('HVALS', 'chatd:members:' .. room)})
  end
end
return {out, redis.call('HGETALL', 'chatd:users'), redis.call('GET', 'chatd:bans') or '[]'}
"#;

/// ARGV: account name, its hash ('' deletes it). Records and announces an
/// account change.
pub const USER_PUT: &str = r#"
local name, hash = ARGV[1], ARGV[2]
if hash == '' then
  redis.call('HDEL', 'chatd:users', name)
else
  redis.call('HSET', 'chatd:users', name, hash)
end
redis.call('PUBLISH', 'chatd:events', cjson.encode({t='user', name=name, hash=hash}))
return 1
"#;

/// ARGV: the server-wide bans (a JSON list), kept in `chatd:bans` and
/// published to every node.
pub const BANS_PUT: &str = r#"
redis.call('SET', 'chatd:bans', ARGV[1])
redis.call('PUBLISH', 'chatd:events', '{"t":"bans","bans":' .. ARGV[1] .. '}')
return 1
"#;

/// ARGV: the node's server-wide bans (JSON). When the shared state was
/// never seeded, they seed it (as USERS_SEED does for accounts).
pub const BANS_SEED: &str = r#"
if redis.call('EXISTS', 'chatd:epoch') == 1 then return 0 end
redis.call('SET', 'chatd:bans', ARGV[1])
return 1
"#;

/// ARGV: (name, hash) pairs. When the shared state was never seeded (a
/// new or emptied Redis), the node's accounts seed it. Runs just before
/// the sync script (which marks the state seeded).
pub const USERS_SEED: &str = r#"
if redis.call('EXISTS', 'chatd:epoch') == 1 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('HSETNX', 'chatd:users', ARGV[i], ARGV[i + 1])
end
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_log_reads_back_oldest_first_and_skips_odd_entries() {
        let blob = |b: &[u8]| OwnedFrame::BlobString {
            data: b.to_vec(),
            attributes: None,
        };
        let array = |data: Vec<OwnedFrame>| OwnedFrame::Array {
            data,
            attributes: None,
        };
        let entry = |id: &[u8], field: &[u8], value: &[u8]| {
            array(vec![blob(id), array(vec![blob(field), blob(value)])])
        };
        // XREVRANGE: newest first.
        let reply = array(vec![
            entry(b"2-0", b"m", b"two"),
            entry(b"1-5", b"x", b"not ours"),
            blob(b"garbage"),
            entry(b"1-0", b"m", b"one"),
        ]);
        assert_eq!(log_entries(&reply), [&b"one"[..], &b"two"[..]]);
        assert!(log_entries(&blob(b"not an array")).is_empty());
        assert_eq!(
            log_append("R", 50, b"{}"),
            command(&[
                b"XADD",
                b"chatd:log:R",
                b"MAXLEN",
                b"~",
                b"50",
                b"*",
                b"m",
                b"{}"
            ])
        );
        assert_eq!(purge_before_ms(&purge_before(i64::MAX)), Some(i64::MAX));
        assert_eq!(purge_before_ms(&purge_before(42)), Some(42));
        assert_eq!(purge_before_ms("soon"), None);
    }

    #[test]
    fn commands_are_arrays_of_blob_strings() {
        assert_eq!(
            command(&[b"PUBLISH", b"chatd:room:Teste", b"oi"]),
            b"*3\r\n$7\r\nPUBLISH\r\n$16\r\nchatd:room:Teste\r\n$2\r\noi\r\n"
        );
    }

    #[test]
    fn the_reader_waits_for_whole_frames_and_splits_pushes() {
        let mut r = RespReader::default();
        r.push(b">3\r\n$7\r\nmessage\r\n$12\r\nchatd:events\r\n$2\r\n{}");
        assert_eq!(r.next_frame(), Ok(None));
        r.push(b"\r\n+OK\r\n");
        let push = r.next_frame().unwrap().unwrap();
        assert_eq!(message(&push), Some(("chatd:events", &b"{}"[..])));
        let ok = r.next_frame().unwrap().unwrap();
        assert_eq!(text(&ok), Some("OK"));
        assert_eq!(r.next_frame(), Ok(None));
        r.push(b"?garbage\r\n");
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn join_verdicts_are_read() {
        let arr = |words: &[&str]| OwnedFrame::Array {
            data: words
                .iter()
                .map(|w| OwnedFrame::BlobString {
                    data: w.as_bytes().to_vec(),
                    attributes: None,
                })
                .collect(),
            attributes: None,
        };
        assert_eq!(join_verdict(&arr(&["ok"])), Ok(JoinVerdict::Admitted));
        assert_eq!(join_verdict(&arr(&["404"])), Ok(JoinVerdict::NoSuchRoom));
        assert_eq!(
            join_verdict(&arr(&["full", "5", "5"])),
            Ok(JoinVerdict::Full {
                members: 5,
                limit: 5
            })
        );
        let rec = r#"{"name":"Yan","node":"b","addr":"1.2.3.4:5","at":"t"}"#;
        assert!(matches!(
            join_verdict(&arr(&["409", rec])),
            Ok(JoinVerdict::NameTaken(m)) if m.node == "b"
        ));
        assert!(join_verdict(&arr(&["what"])).is_err());
    }

    #[test]
    fn what_redis_holds_is_checked_like_what_comes_to_the_door() {
        let m = |name: &str, node: &str| MemberRecord {
            name: name.into(),
            node: node.into(),
            addr: "192.0.2.1:5000".into(),
            at: "2026-11-24T10:00:00Z".into(),
            irc: false,
        };
        assert_eq!(m("Yan", "chat1").check(), Ok(()));
        for (bad, why) in [
            (m("Sistema", "a"), "reserved"),
            (m("Sist\u{435}ma", "a"), "reserved"),
            (m("a\u{200b}b", "a"), "U+200B"),
            (m("Yan", "no spaces"), "node id"),
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let msg = |name: &str, text: &str| ChatMessage {
            name: name.into(),
            node: "a".into(),
            text: text.into(),
            msgid: None,
            at_ms: None,
        };
        assert_eq!(msg("Yan", "oi").check(100), Ok(()));
        let with_id = |id: &str| ChatMessage {
            msgid: Some(id.into()),
            ..msg("Yan", "oi")
        };
        assert_eq!(with_id("19ae0-00000001").check(100), Ok(()));
        assert!(with_id("").check(100).is_err());
        assert!(with_id("a b").check(100).is_err());
        assert!(with_id(&"a".repeat(65)).check(100).is_err());
        // A node of before msgids is understood.
        let old: ChatMessage =
            serde_json::from_str(r#"{"name":"Yan","node":"a","text":"oi"}"#).unwrap();
        assert_eq!(old.msgid, None);
        assert!(msg("Sistema", "*** SALA ENCERRADA ***").check(100).is_err());
        assert!(msg("Yan", "bell\u{7}").check(100).is_err());
        assert!(msg("Yan", &"x".repeat(101)).check(100).is_err());
        // Unknown fields and wrong types do not parse.
        assert!(
            serde_json::from_str::<ChatMessage>(
                r#"{"name":"Yan","node":"a","text":"oi","admin":true}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<ChatMessage>(r#"{"name":"Yan","node":"a","text":5}"#).is_err()
        );
        assert!(
            serde_json::from_str::<ClusterEvent>(r#"{"t":"close","room":"R","extra":1}"#).is_err()
        );
    }

    #[test]
    fn events_parse_as_the_scripts_write_them() {
        let e: ClusterEvent = serde_json::from_str(
            r#"{"t":"join","room":"Teste","member":{"name":"Yan","node":"a","addr":"x","at":"y"}}"#,
        )
        .unwrap();
        assert!(matches!(e, ClusterEvent::Join { ref room, .. } if room == "Teste"));
        // cjson writes fields in any order.
        let e: ClusterEvent =
            serde_json::from_str(r#"{"why":"w","node":"a","name":"Yan","room":"R","t":"leave"}"#)
                .unwrap();
        assert!(matches!(e, ClusterEvent::Leave { .. }));
        let e: ClusterEvent =
            serde_json::from_str(r#"{"t":"room","room":"R","def":{"limit":5,"history":0,"private":false,"allowed":[],"key_hash":null}}"#)
                .unwrap();
        assert!(matches!(e, ClusterEvent::Room { def, .. } if def.limit == 5));
    }
}
