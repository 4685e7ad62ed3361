//! The core of chatd: rooms, their limits and their members, and what each
//! operation (join, say, leave, create, close, kick, set-limit) must send to
//! whom.
//!
//! The hub never touches a socket, a clock or the logger. Connections are
//! plain [`ConnId`]s chosen by the caller; times arrive as already-formatted
//! strings. Every method returns what to deliver (a typed [`Event`] and its
//! recipients, protocol-neutral: each shell encodes it once for its own
//! protocol) or a refusal, and the event loop carries that out. No input
//! makes it panic.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::core::kept::{self, Kept};
use crate::core::moderation::{Moderation, Rule};
use crate::core::modes::RoomModes;
use crate::core::names;
use crate::core::people::People;
use crate::core::wire::{self, ErrorCode, Event, EventKind};

pub use crate::core::ids::{BuildIdHasher, ConnId, IdHasher, IdMap, RoomId};

/// Upper bound for a room's participant limit.
pub const MAX_LIMIT: usize = 1_000_000;

/// The most messages a room may keep for joiners.
pub const MAX_HISTORY: usize = 1000;

/// The bytes all rooms' histories may hold together unless the shell says
/// otherwise ([`Hub::set_history_budget`]).
pub const DEFAULT_HISTORY_BUDGET: usize = 64 << 20;

/// One event, the room it happened in, and the connections it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub room: RoomId,
    pub event: Event,
    pub to: Vec<ConnId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub conn: ConnId,
    pub username: String,
    pub address: String,
    pub joined_at: String,
    /// The cluster node the member is connected to ("" without a cluster).
    pub node: String,
}

/// Who may enter a room. Public rooms (the default) admit anyone; a private
/// room admits the logged-in users on its allow-list, and whoever knows its
/// key (when it has one). The key is kept as a hash; checking it, and who is
/// logged in, is the shell's business.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub private: bool,
    pub allowed: BTreeSet<String>,
    pub key_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Room {
    name: String,
    limit: usize,
    access: Access,
    /// In join order.
    members: Vec<Member>,
    /// Each member's name as compared ([`names::comparison_key`]): a name
    /// that looks like a member's is taken.
    keys: HashMap<String, ConnId>,
    /// How many recent messages to keep for joiners who ask (0: none).
    history_len: usize,
    /// The oldest a kept event may be, in seconds (0: the server's
    /// `--history-age`).
    history_age: u64,
    /// The newest messages, joins and leaves, oldest first.
    history: VecDeque<Kept>,
    /// What `history` counts as ([`Kept::size`]).
    history_bytes: usize,
    /// Made by joining it (`--room-creation`): never saved, and gone when
    /// its last member leaves, like an IRC channel.
    temporary: bool,
    /// Its IRC-style modes (core/modes.rs): operators by connection,
    /// flags, key.
    modes: RoomModes,
    /// Its lasting rules (core/moderation.rs): topic, operator accounts,
    /// bans, mutes, `+m`; saved and shared like its limit.
    moderation: Moderation,
}

/// A room as the control protocol shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub name: String,
    pub limit: usize,
    pub members: usize,
    pub access: Access,
    /// Messages kept for joiners (0: none).
    pub history: usize,
    /// The oldest a kept event may be, in seconds (0: the server's).
    pub history_age: u64,
    /// Made by joining it: not saved, gone when empty.
    pub temporary: bool,
    pub moderation: Moderation,
}

/// Why an admin operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    NotFound(String),
    Exists(String),
    Invalid(String),
}

impl HubError {
    pub fn message(&self) -> &str {
        match self {
            HubError::NotFound(m) | HubError::Exists(m) | HubError::Invalid(m) => m,
        }
    }
}

/// A refused join: the error event to send before closing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub reason: String,
    pub event: Event,
}

/// A member who left (or was removed): who, from where, and the `leave`
/// notice for the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub room: String,
    pub member: Member,
    pub notice: Delivery,
}

/// A room an admin closed: its members get `event` and are disconnected.
/// Until that is done, [`Hub::reopen`] can undo the closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub room: String,
    pub members: Vec<ConnId>,
    pub event: Event,
    /// The room as it was, for [`Hub::reopen`].
    removed: (RoomId, Room),
}

/// A member an admin removed: `event` goes to `conn`, which is then closed;
/// the room gets `departure.notice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kick {
    pub conn: ConnId,
    pub event: Event,
    pub departure: Departure,
}

#[derive(Debug, Default)]
pub struct Hub {
    /// Keyed by id, so iteration is creation order.
    rooms: BTreeMap<RoomId, Room>,
    by_name: HashMap<String, RoomId>,
    /// The rooms each joined connection is in, in the order it joined
    /// them (one for the prototype's protocol, which joins once per
    /// connection; several for a protocol that joins many).
    member_of: IdMap<Vec<RoomId>>,
    /// Who holds each name, server-wide (IRC nicks and members).
    people: People,
    next_room: RoomId,
    /// This node's id in a cluster ("" alone): local members carry it.
    node: String,
    /// What all histories may hold together, and hold ([`Kept::size`]).
    history_budget: usize,
    history_bytes: usize,
    /// Rooms with kept messages, by the bytes they keep: the largest
    /// gives up its oldest message first when the budget is reached.
    by_history: BTreeSet<(usize, RoomId)>,
    /// Bans from every room (`chatctl ban`).
    server_bans: Vec<Rule>,
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            history_budget: DEFAULT_HISTORY_BUDGET,
            ..Hub::default()
        }
    }

    /// What all rooms' histories may hold together, in bytes; lowering it
    /// forgets messages at once (largest history first).
    pub fn set_history_budget(&mut self, bytes: usize) {
        self.history_budget = bytes;
        self.trim_histories();
    }

    /// What all rooms' histories hold now, in bytes (as counted).
    pub fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    /// Forgets `room`'s oldest kept message.
    fn forget_oldest(&mut self, id: RoomId) {
        let Some(room) = self.rooms.get_mut(&id) else {
            return;
        };
        let Some(old) = room.history.pop_front() else {
            return;
        };
        let size = old.size();
        self.by_history.remove(&(room.history_bytes, id));
        room.history_bytes -= size;
        self.history_bytes -= size;
        if room.history_bytes > 0 {
            self.by_history.insert((room.history_bytes, id));
        }
    }

    /// Within the total budget again: the largest histories shrink first,
    /// so one busy room cannot wipe the quiet rooms' histories.
    fn trim_histories(&mut self) {
        while self.history_bytes > self.history_budget {
            let Some(&(_, id)) = self.by_history.last() else {
                break;
            };
            self.forget_oldest(id);
        }
    }

    /// Creates an empty room. Names follow the protocol's rules; the limit is
    /// 1..=[`MAX_LIMIT`].
    pub fn create_room(&mut self, name: &str, limit: usize) -> Result<RoomInfo, HubError> {
        wire::validate_room_name(name).map_err(HubError::Invalid)?;
        check_limit(limit)?;
        if self.by_name.contains_key(name) {
            return Err(HubError::Exists(format!(
                "a room named '{name}' already exists"
            )));
        }
        let id = self.next_room;
        self.next_room += 1;
        self.rooms.insert(
            id,
            Room {
                name: name.to_string(),
                limit,
                access: Access::default(),
                members: Vec::new(),
                keys: HashMap::new(),
                history_len: 0,
                history_age: 0,
                history: VecDeque::new(),
                history_bytes: 0,
                temporary: false,
                modes: RoomModes::default(),
                moderation: Moderation::default(),
            },
        );
        self.by_name.insert(name.to_string(), id);
        Ok(RoomInfo {
            name: name.to_string(),
            limit,
            members: 0,
            access: Access::default(),
            history: 0,
            history_age: 0,
            temporary: false,
            moderation: Moderation::default(),
        })
    }

    /// A room made by joining it (see [`RoomInfo::temporary`]) at `now`
    /// (Unix seconds).
    pub fn create_temporary_room(
        &mut self,
        name: &str,
        limit: usize,
        now: u64,
    ) -> Result<RoomId, HubError> {
        self.create_room(name, limit)?;
        let id = self.by_name[name];
        let room = self.rooms.get_mut(&id).expect("just made");
        room.temporary = true;
        room.modes.created = Some(now);
        Ok(id)
    }

    /// A room's modes.
    pub fn modes(&self, id: RoomId) -> Option<&RoomModes> {
        Some(&self.rooms.get(&id)?.modes)
    }

    pub fn modes_mut(&mut self, id: RoomId) -> Option<&mut RoomModes> {
        Some(&mut self.rooms.get_mut(&id)?.modes)
    }

    /// A message to room `id` from `name`, who is not a member (a room
    /// without `+n`): to every member.
    pub fn say_from_outside(&self, id: RoomId, name: &str, text: &str) -> Option<Delivery> {
        let room = self.rooms.get(&id)?;
        Some(Delivery {
            room: id,
            event: Event {
                kind: EventKind::Message,
                username: name.to_string(),
                message: text.to_string(),
                room: Some(room.name.clone()),
                ..Event::default()
            },
            to: room.members.iter().map(|m| m.conn).collect(),
        })
    }

    /// How many recent messages a room keeps for joiners who ask for them
    /// (0..=[`MAX_HISTORY`]); returns the previous setting. Lowering it
    /// forgets the oldest at once.
    pub fn set_history(&mut self, name: &str, len: usize) -> Result<usize, HubError> {
        if len > MAX_HISTORY {
            return Err(HubError::Invalid(format!(
                "history must be between 0 and {MAX_HISTORY} messages"
            )));
        }
        let id = self.room_id(name)?;
        while self.rooms[&id].history.len() > len {
            self.forget_oldest(id);
        }
        let room = self.rooms.get_mut(&id).expect("by_name and rooms agree");
        Ok(std::mem::replace(&mut room.history_len, len))
    }

    /// The oldest, in seconds, a room's kept events may be (0: the
    /// server's `--history-age`); returns the previous setting.
    pub fn set_history_age(&mut self, name: &str, secs: u64) -> Result<u64, HubError> {
        let id = self.room_id(name)?;
        let room = self.rooms.get_mut(&id).expect("by_name and rooms agree");
        Ok(std::mem::replace(&mut room.history_age, secs))
    }

    /// Keeps a delivered message, join or leave, stamped `ts` (when it
    /// was sent), in its room's history, when the room keeps one: within
    /// the room's length and the total budget. Returns whether it was
    /// kept.
    pub fn remember(&mut self, delivery: &Delivery, ts: &str) -> bool {
        if !kept::is_kept(delivery.event.kind) || !self.keeps_history(delivery.room) {
            return false;
        }
        self.keep(delivery.room, &delivery.event, ts);
        true
    }

    /// Whether `room` keeps a history.
    pub fn keeps_history(&self, room: RoomId) -> bool {
        self.rooms.get(&room).is_some_and(|r| r.history_len > 0)
    }

    /// A room's history length (0: it keeps none).
    pub fn history_len(&self, name: &str) -> usize {
        self.room_id_of(name)
            .and_then(|id| self.rooms.get(&id))
            .map_or(0, |r| r.history_len)
    }

    /// Forgets a room's kept events sent before `before` (an RFC 3339
    /// time; None: all of them); returns how many.
    pub fn purge_history(&mut self, id: RoomId, before: Option<&str>) -> usize {
        let mut n = 0;
        loop {
            let old = self.rooms.get(&id).and_then(|r| r.history.front());
            let due = old.is_some_and(|e| match before {
                None => true,
                Some(t) => e.ts() < t,
            });
            if !due {
                return n;
            }
            self.forget_oldest(id);
            n += 1;
        }
    }

    /// Events read back from the history file at start, oldest first,
    /// each with its own `ts`.
    pub fn seed_history(&mut self, room: RoomId, events: Vec<Event>) {
        for e in events {
            let ts = e.ts.clone().unwrap_or_default();
            self.keep(room, &e, &ts);
        }
    }

    fn keep(&mut self, id: RoomId, event: &Event, ts: &str) {
        let Some(room) = self.rooms.get_mut(&id) else {
            return;
        };
        // A full history's oldest event is overwritten by the new one, so
        // its memory is reused rather than freed and allocated.
        let oldest = match room.history.len() >= room.history_len {
            true => room.history.pop_front(),
            false => None,
        };
        let old_size = oldest.as_ref().map_or(0, Kept::size);
        let mut kept = oldest.unwrap_or_default();
        kept.fill(event, ts);
        let size = kept.size();
        let before = room.history_bytes;
        room.history_bytes = room.history_bytes - old_size + size;
        self.history_bytes = self.history_bytes - old_size + size;
        // The new place first, then the old one out: a set of one room
        // never empties (which would free its node, and the insert
        // allocate one, per message); an event the size of the one it
        // overwrites moves nothing.
        if room.history_bytes != before {
            self.by_history.insert((room.history_bytes, id));
            self.by_history.remove(&(before, id));
        }
        room.history.push_back(kept);
        self.trim_histories();
    }

    /// A room's name by id.
    pub fn room_name(&self, room: RoomId) -> Option<&str> {
        self.rooms.get(&room).map(|r| r.name.as_str())
    }

    /// A room's kept messages, oldest first, each marked `history`
    /// (made anew from what is kept: a joiner's replay, not a hot path).
    pub fn history(&self, room: RoomId) -> impl DoubleEndedIterator<Item = Event> + '_ {
        self.rooms
            .get(&room)
            .into_iter()
            .flat_map(|r| r.history.iter().map(|k| k.event(&r.name)))
    }

    /// The public rooms with their occupancy and limit, in creation order
    /// (private rooms are left out).
    pub fn public_rooms(&self) -> Vec<wire::RoomEntry> {
        self.rooms
            .values()
            .filter(|r| !r.access.private)
            .map(|r| wire::RoomEntry {
                name: r.name.clone(),
                members: r.members.len(),
                limit: r.limit,
            })
            .collect()
    }

    /// Replaces who may enter a room; returns who could before (for an
    /// undo). Members inside stay: the caller removes those no longer
    /// allowed.
    pub fn set_access(&mut self, name: &str, access: Access) -> Result<Access, HubError> {
        let id = self.room_id(name)?;
        let room = self.rooms.get_mut(&id).expect("by_name and rooms agree");
        Ok(std::mem::replace(&mut room.access, access))
    }

    /// Replaces a room's moderation; the old one.
    pub fn set_moderation(&mut self, name: &str, m: Moderation) -> Result<Moderation, HubError> {
        let id = self.room_id(name)?;
        let room = self.rooms.get_mut(&id).expect("by_name and rooms agree");
        Ok(std::mem::replace(&mut room.moderation, m))
    }

    /// A room's moderation.
    pub fn moderation(&self, id: RoomId) -> Option<&Moderation> {
        Some(&self.rooms.get(&id)?.moderation)
    }

    pub fn moderation_mut(&mut self, id: RoomId) -> Option<&mut Moderation> {
        Some(&mut self.rooms.get_mut(&id)?.moderation)
    }

    /// The server-wide bans.
    pub fn server_bans(&self) -> &[Rule] {
        &self.server_bans
    }

    /// Replaces the server-wide bans; the old ones.
    pub fn set_server_bans(&mut self, bans: Vec<Rule>) -> Vec<Rule> {
        std::mem::replace(&mut self.server_bans, bans)
    }

    /// Drops lapsed bans and mutes everywhere at `now` (Unix seconds);
    /// the rooms whose rules changed, and whether the server's did.
    pub fn expire_rules(&mut self, now: u64) -> (Vec<String>, bool) {
        let mut rooms = Vec::new();
        for r in self.rooms.values_mut() {
            if r.moderation.expire(now) {
                rooms.push(r.name.clone());
            }
        }
        let before = self.server_bans.len();
        self.server_bans.retain(|b| b.live(now));
        (rooms, before != self.server_bans.len())
    }

    /// The soonest time a ban or mute lapses, anywhere.
    pub fn next_rule_expiry(&self) -> Option<u64> {
        self.rooms
            .values()
            .filter_map(|r| r.moderation.next_expiry())
            .chain(crate::core::moderation::next_expiry(&self.server_bans))
            .min()
    }

    /// Who may enter a room.
    pub fn access(&self, name: &str) -> Option<&Access> {
        let id = self.by_name.get(name)?;
        Some(&self.rooms[id].access)
    }

    /// Changes a room's limit. New joins obey it; members above it stay.
    pub fn set_limit(&mut self, name: &str, limit: usize) -> Result<RoomInfo, HubError> {
        check_limit(limit)?;
        let id = self.room_id(name)?;
        let room = self.rooms.get_mut(&id).expect("by_name and rooms agree");
        room.limit = limit;
        Ok(info(room))
    }

    /// Rooms in creation order.
    pub fn list(&self) -> Vec<RoomInfo> {
        self.rooms.values().map(info).collect()
    }

    /// One room, as `list` shows it.
    pub fn room(&self, name: &str) -> Result<RoomInfo, HubError> {
        let id = self.room_id(name)?;
        Ok(info(&self.rooms[&id]))
    }

    /// A room's members in join order.
    pub fn participants(&self, name: &str) -> Result<&[Member], HubError> {
        let id = self.room_id(name)?;
        Ok(&self.rooms[&id].members)
    }

    /// The room a connection joined first, if any (the prototype's
    /// connection: its one room).
    pub fn room_of(&self, conn: ConnId) -> Option<RoomId> {
        self.rooms_of(conn).first().copied()
    }

    /// Every room a connection is in, in the order it joined them.
    pub fn rooms_of(&self, conn: ConnId) -> &[RoomId] {
        self.member_of.get(&conn).map_or(&[], Vec::as_slice)
    }

    /// The connections in a room (empty for an unknown id).
    pub fn member_conns(&self, room: RoomId) -> impl Iterator<Item = ConnId> + '_ {
        self.rooms
            .get(&room)
            .into_iter()
            .flat_map(|r| r.members.iter().map(|m| m.conn))
    }

    /// The room name and member record of a joined connection (in the
    /// room it joined first).
    pub fn member(&self, conn: ConnId) -> Option<(&str, &Member)> {
        let room = self.rooms.get(&self.room_of(conn)?)?;
        let member = room.members.iter().find(|m| m.conn == conn)?;
        Some((&room.name, member))
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Connections in at least one room.
    pub fn member_count(&self) -> usize {
        self.member_of.len()
    }

    /// Puts `conn` in a room after a valid handshake. On success every member,
    /// the joiner included, gets the `join` notice. A refusal carries the
    /// error event to send before closing: 404, 501 or 409.
    pub fn join(
        &mut self,
        conn: ConnId,
        username: &str,
        room_name: &str,
        address: &str,
        joined_at: &str,
    ) -> Result<Delivery, Box<Refusal>> {
        let node = self.node.clone();
        self.join_as(conn, username, room_name, address, joined_at, &node, true)
    }

    /// This node's id in a cluster, carried by its members.
    pub fn set_node(&mut self, node: &str) {
        self.node = node.to_string();
    }

    /// A member the cluster admitted (this node's, after the shared
    /// check, or another node's): no limit check here, the shared one
    /// decided; a name held by another node's member is taken over (the
    /// mirror lagged behind a leave).
    pub fn join_admitted(
        &mut self,
        conn: ConnId,
        username: &str,
        room_name: &str,
        address: &str,
        joined_at: &str,
        node: &str,
    ) -> Result<Delivery, Box<Refusal>> {
        if let Some(&id) = self.by_name.get(room_name) {
            let key = names::comparison_key(username);
            let room = &self.rooms[&id];
            if let Some(&holder) = room.keys.get(&key)
                && room
                    .members
                    .iter()
                    .any(|m| m.conn == holder && m.node != node)
            {
                self.leave_room(holder, id);
            }
        }
        self.join_as(conn, username, room_name, address, joined_at, node, false)
    }

    /// The connection of the member of `room_name` whose name is (or looks
    /// like) `username`.
    pub fn conn_of(&self, room_name: &str, username: &str) -> Option<(ConnId, &Member)> {
        let room = &self.rooms[self.by_name.get(room_name)?];
        let conn = *room.keys.get(&names::comparison_key(username))?;
        room.members
            .iter()
            .find(|m| m.conn == conn)
            .map(|m| (conn, m))
    }

    #[allow(clippy::too_many_arguments)]
    fn join_as(
        &mut self,
        conn: ConnId,
        username: &str,
        room_name: &str,
        address: &str,
        joined_at: &str,
        node: &str,
        enforce_limit: bool,
    ) -> Result<Delivery, Box<Refusal>> {
        // Boxed: refusals are rare, and a large error would make every
        // successful join's result as large.
        let refuse = |code: ErrorCode, reason: String| {
            Box::new(Refusal {
                event: Event::error(code, Some(room_name), &reason),
                code,
                reason,
            })
        };
        let Some(&id) = self.by_name.get(room_name) else {
            return Err(refuse(
                ErrorCode::NoSuchRoom,
                format!("no room named '{room_name}'"),
            ));
        };
        if self.rooms_of(conn).contains(&id) {
            return Err(refuse(
                ErrorCode::BadRequest,
                format!("this connection is already in room '{room_name}'"),
            ));
        }
        if let Err(taken) = self.people.check_member(conn, username) {
            let reason = if taken == username {
                format!("username '{username}' is already in use on this server")
            } else {
                format!("username '{username}' looks like '{taken}', who is already on this server")
            };
            return Err(refuse(ErrorCode::NameTaken, reason));
        }
        let room = self.rooms.get_mut(&id).expect("by_name and rooms agree");
        let key = names::comparison_key(username);
        if let Some(holder) = room.keys.get(&key) {
            let taken = room
                .members
                .iter()
                .find(|m| m.conn == *holder)
                .map_or(username, |m| m.username.as_str());
            let reason = if taken == username {
                format!("username '{username}' is already in room '{room_name}'")
            } else {
                format!(
                    "username '{username}' looks like '{taken}', who is already in room '{room_name}'"
                )
            };
            return Err(refuse(ErrorCode::NameTaken, reason));
        }
        if enforce_limit && room.members.len() >= room.limit {
            return Err(refuse(
                ErrorCode::RoomFull,
                format!(
                    "room '{room_name}' is full ({} of {})",
                    room.members.len(),
                    room.limit
                ),
            ));
        }
        room.keys.insert(key, conn);
        self.people.member_joined(conn, username);
        room.members.push(Member {
            conn,
            username: username.to_string(),
            address: address.to_string(),
            joined_at: joined_at.to_string(),
            node: node.to_string(),
        });
        self.member_of.entry(conn).or_default().push(id);
        let event = Event {
            kind: EventKind::Join,
            username: username.to_string(),
            message: wire::JOINED.to_string(),
            room: Some(room_name.to_string()),
            reason: None,
            ..Event::default()
        };
        Ok(Delivery {
            room: id,
            event,
            to: room.members.iter().map(|m| m.conn).collect(),
        })
    }

    /// A chat message from a member: goes to every other member of its room
    /// (the one it joined first). `None` when `conn` is not in a room.
    pub fn say(&self, conn: ConnId, text: &str) -> Option<Delivery> {
        self.say_in(conn, self.room_of(conn)?, text)
    }

    /// A chat message from a member of `id` to the room's other members.
    /// `None` when `conn` is not in that room.
    pub fn say_in(&self, conn: ConnId, id: RoomId, text: &str) -> Option<Delivery> {
        let room = self.rooms.get(&id)?;
        let sender = room.members.iter().find(|m| m.conn == conn)?;
        let event = Event {
            kind: EventKind::Message,
            username: sender.username.clone(),
            message: text.to_string(),
            room: Some(room.name.clone()),
            reason: None,
            ..Event::default()
        };
        // Sized at once: a filter's collect grows from 4, a realloc per
        // doubling for every message to a large room.
        let mut to = Vec::with_capacity(room.members.len());
        to.extend(
            room.members
                .iter()
                .filter(|m| m.conn != conn)
                .map(|m| m.conn),
        );
        Some(Delivery {
            room: id,
            event,
            to,
        })
    }

    /// Removes `conn` from its room (the one it joined first: the
    /// prototype's connection has one); the remaining members get `leave`.
    /// `None` when it was in no room.
    pub fn leave(&mut self, conn: ConnId) -> Option<Departure> {
        self.leave_room(conn, self.room_of(conn)?)
    }

    /// Removes `conn` from every room it is in (it disconnected), in the
    /// order it joined them.
    pub fn leave_all(&mut self, conn: ConnId) -> Vec<Departure> {
        let rooms = self.rooms_of(conn).to_vec();
        rooms
            .into_iter()
            .filter_map(|id| self.leave_room(conn, id))
            .collect()
    }

    /// Removes `conn` from room `id`; its remaining members get `leave`.
    /// `None` when it was not in it.
    pub fn leave_room(&mut self, conn: ConnId, id: RoomId) -> Option<Departure> {
        self.forget_membership(conn, id)?;
        let room = self.rooms.get_mut(&id).expect("member_of and rooms agree");
        let pos = room.members.iter().position(|m| m.conn == conn)?;
        let member = room.members.remove(pos);
        room.keys.remove(&names::comparison_key(&member.username));
        room.modes.forget(conn);
        self.people.member_left(conn, &member.username);
        let event = Event {
            kind: EventKind::Leave,
            username: member.username.clone(),
            message: wire::LEFT.to_string(),
            room: Some(room.name.clone()),
            reason: None,
            ..Event::default()
        };
        let departure = Departure {
            room: room.name.clone(),
            notice: Delivery {
                room: id,
                event,
                to: room.members.iter().map(|m| m.conn).collect(),
            },
            member,
        };
        if room.temporary && room.members.is_empty() {
            let _ = self.close_room(&departure.room);
        }
        Some(departure)
    }

    /// Closes a room: it disappears, and its members get `closed` and are to
    /// be disconnected by the caller (without `leave` notices).
    pub fn close_room(&mut self, name: &str) -> Result<Closure, HubError> {
        let id = self.room_id(name)?;
        let room = self.rooms.remove(&id).expect("by_name and rooms agree");
        self.by_name.remove(name);
        self.by_history.remove(&(room.history_bytes, id));
        self.history_bytes -= room.history_bytes;
        let members: Vec<ConnId> = room.members.iter().map(|m| m.conn).collect();
        for m in &room.members {
            self.forget_membership(m.conn, id);
            self.people.member_left(m.conn, &m.username);
        }
        Ok(Closure {
            event: Event::system(EventKind::Closed, wire::CLOSED, Some(&room.name)),
            room: room.name.clone(),
            members,
            removed: (id, room),
        })
    }

    /// Undoes [`Hub::close_room`] (the closing could not be saved): the
    /// room is back in its place, with the same members in the same order.
    pub fn reopen(&mut self, closure: Closure) {
        let (id, room) = closure.removed;
        for m in &room.members {
            self.member_of.entry(m.conn).or_default().push(id);
            self.people.member_joined(m.conn, &m.username);
        }
        self.by_name.insert(room.name.clone(), id);
        if room.history_bytes > 0 {
            self.by_history.insert((room.history_bytes, id));
            self.history_bytes += room.history_bytes;
        }
        self.rooms.insert(id, room);
        self.trim_histories();
    }

    /// Removes a member by name (or by a name that looks like it, as for
    /// 409): it gets `kicked`, the room gets `leave`.
    pub fn kick(&mut self, room_name: &str, username: &str) -> Result<Kick, HubError> {
        self.kick_with(room_name, username, "")
    }

    /// [`Hub::kick`] with a reason (may be empty), which the kicked and
    /// the room are told (`reason` on `kicked` and `leave`).
    pub fn kick_with(
        &mut self,
        room_name: &str,
        username: &str,
        reason: &str,
    ) -> Result<Kick, HubError> {
        let id = self.room_id(room_name)?;
        let conn = self.rooms[&id]
            .keys
            .get(&names::comparison_key(username))
            .copied()
            .ok_or_else(|| {
                HubError::NotFound(format!(
                    "no member named '{username}' in room '{room_name}'"
                ))
            })?;
        let mut departure = self.leave_room(conn, id).expect("member was just found");
        departure.notice.event.departed = wire::Departed::Kicked(reason.to_string());
        let reason = (!reason.is_empty()).then(|| reason.to_string());
        departure.notice.event.reason = reason.clone();
        let mut event = Event::system(EventKind::Kicked, wire::KICKED, Some(room_name));
        event.reason = reason;
        Ok(Kick {
            conn,
            event,
            departure,
        })
    }

    /// Takes room `id` off `conn`'s list (the entry goes with its last
    /// room); `None` when it was not there.
    fn forget_membership(&mut self, conn: ConnId, id: RoomId) -> Option<()> {
        let rooms = self.member_of.get_mut(&conn)?;
        let pos = rooms.iter().position(|&r| r == id)?;
        rooms.remove(pos);
        if rooms.is_empty() {
            self.member_of.remove(&conn);
        }
        Some(())
    }

    /// Who holds which name, server-wide.
    pub fn people(&self) -> &People {
        &self.people
    }

    /// `conn` takes `nick` (see [`People::claim_nick`]); in every room it
    /// is in, its member takes the new name too. Returns the rooms it is
    /// in, or the spelling of whoever holds the name.
    pub fn claim_nick(&mut self, conn: ConnId, nick: &str) -> Result<Vec<RoomId>, String> {
        self.people.claim_nick(conn, nick)?;
        let rooms = self.rooms_of(conn).to_vec();
        for id in &rooms {
            let room = self.rooms.get_mut(id).expect("member_of and rooms agree");
            if let Some(m) = room.members.iter_mut().find(|m| m.conn == conn) {
                room.keys.remove(&names::comparison_key(&m.username));
                m.username = nick.to_string();
                room.keys.insert(names::comparison_key(nick), conn);
            }
        }
        Ok(rooms)
    }

    /// `conn` is gone (after [`Hub::leave_all`]): its nick is free.
    pub fn release_nick(&mut self, conn: ConnId) {
        self.people.release_nick(conn);
    }

    /// A room's id by name.
    pub fn room_id_of(&self, name: &str) -> Option<RoomId> {
        self.by_name.get(name).copied()
    }

    fn room_id(&self, name: &str) -> Result<RoomId, HubError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| HubError::NotFound(format!("no room named '{name}'")))
    }
}

fn info(room: &Room) -> RoomInfo {
    RoomInfo {
        name: room.name.clone(),
        limit: room.limit,
        access: room.access.clone(),
        members: room.members.len(),
        history: room.history_len,
        history_age: room.history_age,
        temporary: room.temporary,
        moderation: room.moderation.clone(),
    }
}

fn check_limit(limit: usize) -> Result<(), HubError> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(HubError::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {limit}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_with(name: &str, limit: usize) -> Hub {
        let mut hub = Hub::new();
        hub.create_room(name, limit).unwrap();
        hub
    }

    fn join(hub: &mut Hub, conn: ConnId, user: &str, room: &str) -> Result<Delivery, Box<Refusal>> {
        hub.join(conn, user, room, "127.0.0.1:1", "2026-11-24T10:00:00Z")
    }

    #[test]
    fn join_notifies_everyone_including_joiner() {
        let mut hub = hub_with("Teste", 2);
        let d = join(&mut hub, 1, "Yan", "Teste").unwrap();
        assert_eq!(d.to, vec![1]);
        let d = join(&mut hub, 2, "Buendia", "Teste").unwrap();
        assert_eq!(d.to, vec![1, 2]);
        let v = &d.event;
        assert_eq!(v.username, "Buendia");
        assert_eq!(v.message, "*** ENTROU NA SALA ***");
        assert_eq!(v.kind, EventKind::Join);
        assert_eq!(v.room.as_deref(), Some("Teste"));
    }

    #[test]
    fn one_connection_may_sit_in_several_rooms() {
        let mut hub = hub_with("Teste", 5);
        hub.create_room("Sala", 5).unwrap();
        let (teste, sala) = (
            hub.room_id_of("Teste").unwrap(),
            hub.room_id_of("Sala").unwrap(),
        );
        join(&mut hub, 1, "Yan", "Teste").unwrap();
        join(&mut hub, 1, "Yan", "Sala").unwrap();
        join(&mut hub, 2, "Ana", "Teste").unwrap();
        join(&mut hub, 3, "Bia", "Sala").unwrap();
        assert_eq!(hub.rooms_of(1), [teste, sala]);
        assert_eq!(hub.member_count(), 3, "people, not seats");
        // A second join of the same room is refused; the first stands.
        let again = join(&mut hub, 1, "Yan", "Sala").unwrap_err();
        assert_eq!(again.code, ErrorCode::BadRequest);
        // Said in one room, heard only there.
        let d = hub.say_in(1, sala, "oi").unwrap();
        assert_eq!((d.room, d.to.as_slice()), (sala, &[3][..]));
        let d = hub.say(1, "olá").unwrap();
        assert_eq!(
            (d.room, d.to.as_slice()),
            (teste, &[2][..]),
            "say: the first room"
        );
        assert!(hub.say_in(2, sala, "x").is_none(), "not a member of Sala");
        // Leaving, kicking and closing one room keep the others.
        let dep = hub.leave_room(1, teste).unwrap();
        assert_eq!(
            (dep.room.as_str(), dep.notice.to.as_slice()),
            ("Teste", &[2][..])
        );
        assert_eq!(hub.rooms_of(1), [sala]);
        join(&mut hub, 1, "Yan", "Teste").unwrap();
        let kick = hub.kick("Sala", "yan").unwrap();
        assert_eq!(kick.conn, 1);
        assert_eq!(hub.rooms_of(1), [teste]);
        join(&mut hub, 1, "Yan", "Sala").unwrap();
        let closure = hub.close_room("Teste").unwrap();
        assert_eq!(closure.members, [2, 1], "in join order");
        assert_eq!(hub.rooms_of(1), [sala]);
        assert_eq!(hub.rooms_of(2), [] as [RoomId; 0]);
        hub.reopen(closure);
        assert_eq!(hub.rooms_of(1), [sala, teste]);
        // Disconnecting leaves every room, each told.
        let gone = hub.leave_all(1);
        let rooms: Vec<&str> = gone.iter().map(|d| d.room.as_str()).collect();
        assert_eq!(rooms, ["Sala", "Teste"]);
        assert!(hub.rooms_of(1).is_empty());
        assert_eq!(hub.member_count(), 2);
        assert!(hub.conn_of("Sala", "Yan").is_none());
    }

    #[test]
    fn histories_share_a_total_budget_and_the_largest_gives_way() {
        let mut hub = Hub::new();
        for room in ["Busy", "Calm"] {
            hub.create_room(room, 5).unwrap();
            hub.set_history(room, MAX_HISTORY).unwrap();
        }
        join(&mut hub, 1, "Yan", "Busy").unwrap();
        join(&mut hub, 2, "Ana", "Calm").unwrap();
        let ts = "2026-11-24T10:00:00Z";
        let one = {
            let mut k = Kept::default();
            k.fill(&hub.say(2, "q").unwrap().event, ts);
            k.size()
        };
        hub.set_history_budget(20 * one);
        for _ in 0..3 {
            let d = hub.say(2, "q").unwrap();
            hub.remember(&d, ts);
        }
        for _ in 0..500 {
            let d = hub.say(1, "b").unwrap();
            hub.remember(&d, ts);
        }
        let busy = hub.room_id("Busy").unwrap();
        let quiet = hub.room_id("Calm").unwrap();
        assert_eq!(
            hub.history(quiet).count(),
            3,
            "the quiet room keeps its own"
        );
        assert_eq!(hub.history(busy).count(), 17);
        assert_eq!(hub.history_bytes(), 20 * one);
        // Lowering the budget trims at once; closing a room returns its share.
        hub.set_history_budget(10 * one);
        assert_eq!(hub.history(busy).count(), 7);
        hub.close_room("Busy").unwrap();
        assert_eq!(hub.history_bytes(), 3 * one);
        hub.set_history("Calm", 1).unwrap();
        assert_eq!(hub.history_bytes(), one);
    }

    #[test]
    fn refusals_have_the_right_codes() {
        let mut hub = hub_with("Teste", 1);
        assert_eq!(
            join(&mut hub, 1, "Yan", "Nope").unwrap_err().code,
            ErrorCode::NoSuchRoom
        );
        join(&mut hub, 1, "Yan", "Teste").unwrap();
        assert_eq!(
            join(&mut hub, 2, "Yan", "Teste").unwrap_err().code,
            ErrorCode::NameTaken
        );
        let r = join(&mut hub, 3, "Ana", "Teste").unwrap_err();
        assert_eq!(r.code, ErrorCode::RoomFull);
        let v = &r.event;
        assert_eq!(v.username, "Sistema");
        assert_eq!(v.message, "501");
        assert_eq!(hub.member_count(), 1);
    }

    #[test]
    fn usernames_that_look_alike_are_taken_and_room_names_are_exact() {
        let mut hub = hub_with("Teste", 5);
        join(&mut hub, 1, "Yan", "Teste").unwrap();
        for look_alike in ["yan", "YAN", "Y\u{430}n"] {
            let refusal = join(&mut hub, 2, look_alike, "Teste").unwrap_err();
            assert_eq!(refusal.code, ErrorCode::NameTaken, "{look_alike:?}");
            assert!(
                refusal.reason.contains("looks like 'Yan'"),
                "{}",
                refusal.reason
            );
        }
        join(&mut hub, 2, "Ian", "Teste").unwrap();
        assert_eq!(
            join(&mut hub, 3, "Yan", "teste").unwrap_err().code,
            ErrorCode::NoSuchRoom
        );
        // Once Yan leaves, the name is free again, in any look.
        hub.leave(1).unwrap();
        join(&mut hub, 4, "yan", "Teste").unwrap();
        // And a kick finds a member by a look-alike of the name.
        let kick = hub.kick("Teste", "YAN").unwrap();
        assert_eq!(kick.conn, 4);
    }

    #[test]
    fn say_goes_to_others_only_and_rooms_are_isolated() {
        let mut hub = hub_with("A", 5);
        hub.create_room("B", 5).unwrap();
        join(&mut hub, 1, "Yan", "A").unwrap();
        join(&mut hub, 2, "Buendia", "A").unwrap();
        join(&mut hub, 3, "Ana", "B").unwrap();
        let d = hub.say(1, "Olá").unwrap();
        assert_eq!(d.to, vec![2]);
        assert_eq!(d.event.message, "Olá");
        assert_eq!(hub.say(3, "x").unwrap().to, Vec::<ConnId>::new());
        assert_eq!(hub.say(99, "x"), None);
    }

    #[test]
    fn leave_notifies_the_rest_and_frees_the_slot() {
        let mut hub = hub_with("Teste", 2);
        join(&mut hub, 1, "Yan", "Teste").unwrap();
        join(&mut hub, 2, "Buendia", "Teste").unwrap();
        let dep = hub.leave(2).unwrap();
        assert_eq!(dep.notice.to, vec![1]);
        assert_eq!(dep.member.username, "Buendia");
        assert_eq!(dep.notice.event.message, "*** SAIU DA SALA ***");
        assert_eq!(hub.leave(2), None);
        join(&mut hub, 3, "Buendia", "Teste").unwrap();
    }

    #[test]
    fn admin_operations() {
        let mut hub = Hub::new();
        assert!(matches!(hub.create_room("", 2), Err(HubError::Invalid(_))));
        assert!(matches!(hub.create_room("x", 0), Err(HubError::Invalid(_))));
        hub.create_room("Z", 1).unwrap();
        hub.create_room("A", 2).unwrap();
        assert!(matches!(hub.create_room("A", 2), Err(HubError::Exists(_))));
        let names: Vec<String> = hub.list().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["Z", "A"], "creation order");

        join(&mut hub, 1, "Yan", "Z").unwrap();
        hub.set_limit("Z", 3).unwrap();
        join(&mut hub, 2, "Ana", "Z").unwrap();
        hub.set_limit("Z", 1).unwrap();
        assert_eq!(
            hub.participants("Z").unwrap().len(),
            2,
            "members above the limit stay"
        );
        assert_eq!(
            join(&mut hub, 3, "Bia", "Z").unwrap_err().code,
            ErrorCode::RoomFull
        );

        let kick = hub.kick("Z", "Yan").unwrap();
        assert_eq!(kick.conn, 1);
        assert_eq!(kick.departure.notice.to, vec![2]);
        assert_eq!(kick.event.kind, EventKind::Kicked);
        assert!(matches!(hub.kick("Z", "Yan"), Err(HubError::NotFound(_))));

        // A closing that could not be saved is undone exactly.
        let before = hub.list();
        let closure = hub.close_room("Z").unwrap();
        hub.reopen(closure);
        assert_eq!(hub.list(), before);
        assert!(hub.room_of(2).is_some());
        assert_eq!(hub.participants("Z").unwrap()[0].username, "Ana");
        assert!(matches!(join(&mut hub, 5, "ana", "Z"), Err(r) if r.code == ErrorCode::NameTaken));

        let closure = hub.close_room("Z").unwrap();
        assert_eq!(closure.members, vec![2]);
        assert_eq!(closure.event.message, "*** SALA ENCERRADA ***");
        assert_eq!(hub.room_of(2), None);
        assert!(matches!(hub.close_room("Z"), Err(HubError::NotFound(_))));
        assert_eq!(hub.list().len(), 1);
        hub.create_room("Z", 1).unwrap();
    }
}
