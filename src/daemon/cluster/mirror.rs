//! The mirror: the sync and snapshot after each (re)connect (and when
//! the heartbeat finds the store emptied), other nodes' events applied to
//! the hub (their members have ids but no connection here), and this
//! node's admin changes forwarded to Redis with one arm per [`Change`].
//! What fails the checks is dropped and counted (`drop_item`).

use super::{Cluster, ClusterOut, Here, Purpose};
use crate::core::cluster::{self as shared, ClusterEvent, Frame, MemberRecord, RoomDef, Snapshot};
use crate::core::control::Change;
use crate::core::hub::{Access, ConnId, RoomInfo};
use crate::core::names::comparison_key;
use crate::core::wire::{ErrorCode, Event, EventKind};
use crate::daemon::shared::Shared;

impl Cluster {
    /// After (re)connecting: subscribe, make the shared entries of this
    /// node what it holds (seeding the rooms into an empty Redis), then
    /// read everything back.
    pub(super) fn sync(&mut self, sh: &mut Shared, here: &dyn Here) {
        let node = self.node.clone();
        let rooms = sh.hub.list();
        let flagged: Vec<&str> = sh.cfg.rooms.iter().map(|(n, _)| n.as_str()).collect();
        let mut args: Vec<Vec<u8>> = vec![
            node.clone().into_bytes(),
            rooms.len().to_string().into_bytes(),
        ];
        for r in &rooms {
            args.push(r.name.clone().into_bytes());
            args.push(room_def_json(r).into_bytes());
            args.push(if flagged.contains(&r.name.as_str()) {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            });
        }
        let mut channels = vec![shared::EVENTS.to_string()];
        // This node's IRC nicks the cluster held, claimed again, and
        // their channels.
        let nicks: Vec<(String, String)> = sh
            .hub
            .people()
            .nicks()
            .filter(|&(conn, _)| here.nick_claimed(conn))
            .map(|(_, nick)| (comparison_key(nick), nick.to_string()))
            .collect();
        args.push(nicks.len().to_string().into_bytes());
        for (key, nick) in nicks {
            channels.push(shared::nick_channel(&key));
            args.push(key.into_bytes());
            args.push(nick.into_bytes());
        }
        // Chat-port people who take direct messages listen as nicks do.
        for name in here.direct_names() {
            let channel = shared::nick_channel(&comparison_key(&name));
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        for r in &rooms {
            let Ok(members) = sh.hub.participants(&r.name) else {
                continue;
            };
            let mut local = false;
            for m in members {
                if here.has(m.conn) {
                    local = true;
                    args.push(r.name.clone().into_bytes());
                    args.push(comparison_key(&m.username).into_bytes());
                    args.push(
                        record_json(&MemberRecord {
                            name: m.username.clone(),
                            node: node.clone(),
                            addr: m.address.clone(),
                            at: m.joined_at.clone(),
                            irc: here.speaks_irc(m.conn),
                        })
                        .into_bytes(),
                    );
                }
            }
            if local {
                channels.push(shared::room_channel(&r.name));
            }
        }
        let users = sh.accounts.saved();
        let link = &mut self.link;
        let mut seed: Vec<&[u8]> = Vec::new();
        for u in &users {
            seed.push(u.name.as_bytes());
            seed.push(u.hash.as_bytes());
        }
        link.send(Purpose::Ignore, &shared::eval(shared::USERS_SEED, &seed));
        let bans = serde_json::to_string(sh.hub.server_bans()).expect("rules serialise");
        link.send(
            Purpose::Ignore,
            &shared::eval(shared::BANS_SEED, &[bans.as_bytes()]),
        );
        let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        subscribe.extend(channels.iter().map(|c| c.as_bytes()));
        link.send_no_reply(&shared::command(&subscribe));
        self.subscribed = channels.iter().cloned().collect();
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        link.send(Purpose::Sync, &shared::eval(&shared::sync_script(), &argv));
        link.send(Purpose::Snapshot, &shared::eval(shared::SNAPSHOT, &[]));
    }

    /// The sync's list of local members Redis could not take back: their
    /// room is gone, or another node's member holds the name now.
    pub(super) fn on_sync(&mut self, sh: &mut Shared, here: &dyn Here, frame: &Frame) {
        if let Some(e) = shared::error(frame) {
            self.broken(sh, here, format!("sync: {e}"));
            return;
        }
        let items: Vec<String> = shared::items(frame)
            .iter()
            .filter_map(|f| shared::text(f).map(str::to_string))
            .collect();
        for triple in items.chunks(3) {
            let [room, key, why] = triple else { continue };
            if why == "nick" {
                self.nick_lost(sh, here, key);
                continue;
            }
            let Some(room_id) = sh.hub.room_id_of(room) else {
                continue;
            };
            let Ok(members) = sh.hub.participants(room) else {
                continue;
            };
            let found = members
                .iter()
                .find(|m| here.has(m.conn) && comparison_key(&m.username) == *key)
                .map(|m| (m.conn, m.username.clone()));
            let Some((conn, name)) = found else { continue };
            let (code, reason) = if why == "gone" {
                (
                    ErrorCode::NoSuchRoom,
                    format!("room '{room}' was closed while the cluster store was away"),
                )
            } else {
                (
                    ErrorCode::NameTaken,
                    format!(
                        "username '{name}' was taken on another node while the cluster store was away"
                    ),
                )
            };
            sh.log.warn(format!(
                "cluster: disconnecting '{name}' in '{room}': {reason}"
            ));
            if here.speaks_irc(conn) {
                // An IRC member loses the room (a KICK) and stays.
                if let Some(dep) = sh.hub.leave_room(conn, room_id) {
                    self.out.push(ClusterOut::Deliver(dep.notice));
                }
                let closed = Event {
                    kind: EventKind::Closed,
                    room: Some(room.clone()),
                    ..Event::default()
                };
                self.out.push(ClusterOut::Finish(conn, Some(closed)));
                continue;
            }
            let event = Event::error(code, Some(room), &reason);
            if let Some(dep) = sh.hub.leave(conn) {
                self.out.push(ClusterOut::Deliver(dep.notice));
            }
            self.out.push(ClusterOut::Finish(conn, Some(event)));
        }
    }

    /// A nick of this node that another node's person took while Redis
    /// was away: its connection is closed (as an ircd kills on a nick
    /// collision).
    fn nick_lost(&mut self, sh: &mut Shared, here: &dyn Here, key: &str) {
        let found = sh
            .hub
            .people()
            .nicks()
            .find(|&(conn, nick)| here.has(conn) && comparison_key(nick) == key)
            .map(|(conn, nick)| (conn, nick.to_string()));
        let Some((conn, nick)) = found else {
            return;
        };
        let reason =
            format!("nick '{nick}' was taken on another node while the cluster store was away");
        sh.log
            .warn(format!("cluster: disconnecting '{nick}': {reason}"));
        let event = Event::error(ErrorCode::NameTaken, None, &reason);
        self.out.push(ClusterOut::Finish(conn, Some(event)));
    }

    /// Makes the mirror what Redis holds: rooms created, changed and
    /// closed; other nodes' members added and removed (with the notices
    /// this node's members would have seen).
    pub(super) fn apply_snapshot(&mut self, sh: &mut Shared, here: &dyn Here, snapshot: Snapshot) {
        let Snapshot { rooms, users, bans } = snapshot;
        if let Err(why) = crate::core::moderation::check_rules(&bans) {
            self.drop_item(sh, "the server-wide bans", why);
        } else if sh.hub.server_bans() != bans.as_slice() {
            sh.hub.set_server_bans(bans);
            self.out.push(ClusterOut::Enforce(None));
        }
        for name in sh.accounts.names() {
            if !users.iter().any(|(n, _)| *n == name) {
                sh.accounts.remove(&name);
            }
        }
        for (name, hash) in users {
            if sh.accounts.hash_of(&name) != Some(hash.as_str()) {
                Self::mirror_account(sh, &name, hash);
            }
        }
        let node = self.node.clone();
        let names: Vec<String> = rooms.iter().map(|r| r.name.clone()).collect();
        for r in sh.hub.list() {
            if !names.contains(&r.name) {
                self.close_mirrored_room(sh, here, &r.name, "it no longer exists in the cluster");
            }
        }
        let mut remote = 0;
        for room in rooms {
            self.apply_room_def(sh, &room.name, &room.def);
            let current: Vec<(ConnId, String, String)> = sh
                .hub
                .participants(&room.name)
                .map(|ms| {
                    ms.iter()
                        .filter(|m| m.node != node)
                        .map(|m| (m.conn, m.username.clone(), m.node.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (conn, name, n) in &current {
                if !room.members.iter().any(|m| &m.name == name && &m.node == n)
                    && let Some(dep) = sh.hub.leave(*conn)
                {
                    self.out.push(ClusterOut::Deliver(dep.notice));
                }
            }
            for m in room.members {
                if m.node == node {
                    continue;
                }
                if let Err(why) = m.check() {
                    self.drop_item(sh, "a member record", why);
                    continue;
                }
                remote += 1;
                if !current
                    .iter()
                    .any(|(_, name, n)| *name == m.name && *n == m.node)
                {
                    self.mirror_join(sh, &room.name, &m);
                }
            }
        }
        self.synced = true;
        self.syncing = false;
        self.catch_up(sh, here);
        let unpublished = std::mem::take(&mut self.unpublished);
        if unpublished > 0 {
            sh.log.warn(format!(
                "cluster: {unpublished} message(s) sent while Redis was away reached this node's members only"
            ));
        }
        self.was_up = true;
        self.failure_logged = false;
        sh.log.info(format!(
            "cluster: in sync as node '{node}': {} room(s), {remote} member(s) on other nodes",
            sh.hub.room_count()
        ));
    }

    // -- the mirror ----------------------------------------------------------------

    pub(super) fn apply_event(&mut self, sh: &mut Shared, here: &dyn Here, event: ClusterEvent) {
        let node = self.node.clone();
        match event {
            ClusterEvent::Join { room, member } => {
                if member.node == node {
                    return; // this node's own join, applied when admitted
                }
                if let Err(why) = member.check() {
                    self.drop_item(sh, "a join", why);
                    return;
                }
                let known = sh
                    .hub
                    .conn_of(&room, &member.name)
                    .is_some_and(|(_, m)| m.node == member.node && m.username == member.name);
                if !known {
                    self.mirror_join(sh, &room, &member);
                }
            }
            ClusterEvent::Leave {
                room,
                name,
                node: from,
                ..
            } => {
                if from == node {
                    return;
                }
                if let Some((conn, m)) = sh.hub.conn_of(&room, &name)
                    && m.node == from
                    && let Some(dep) = sh.hub.leave(conn)
                {
                    self.out.push(ClusterOut::Deliver(dep.notice));
                }
            }
            ClusterEvent::Kick {
                room,
                name,
                node: at,
                why,
            } => {
                let Some((conn, m)) = sh.hub.conn_of(&room, &name) else {
                    return; // kicked here, or already gone
                };
                if m.node != at {
                    return;
                }
                let Ok(kick) = sh.hub.kick_with(&room, &name, &why) else {
                    return;
                };
                if here.has(conn) {
                    sh.log.info(format!(
                        "kick: '{name}' removed from room '{room}' by an admin on another node"
                    ));
                    self.out.push(ClusterOut::Finish(conn, Some(kick.event)));
                }
                self.out.push(ClusterOut::Deliver(kick.departure.notice));
            }
            ClusterEvent::Room { room, def } => {
                self.apply_room_def(sh, &room, &def);
                self.follow_room(sh, here, &room);
            }
            ClusterEvent::Hold {
                room,
                node: from,
                on,
            } => {
                if let Err(why) = shared::check_node_id(&from) {
                    self.drop_item(sh, "a hold", why);
                    return;
                }
                self.apply_hold(sh, &room, &from, on);
            }
            ClusterEvent::Purge { room, before } => self.apply_purge(sh, &room, &before),
            ClusterEvent::Close { room } => {
                self.close_mirrored_room(sh, here, &room, "closed by an admin")
            }
            ClusterEvent::Bans { bans } => {
                if let Err(why) = crate::core::moderation::check_rules(&bans) {
                    self.drop_item(sh, "the server-wide bans", why);
                    return;
                }
                if sh.hub.server_bans() != bans.as_slice() {
                    sh.hub.set_server_bans(bans);
                    sh.log
                        .info("cluster: the server-wide bans changed on another node".to_string());
                    self.out.push(ClusterOut::Enforce(None));
                }
            }
            ClusterEvent::User { name, hash } => {
                if hash.is_empty() {
                    if sh.accounts.remove(&name).is_some() {
                        sh.log
                            .info(format!("cluster: account '{name}' deleted on another node"));
                    }
                } else if sh.accounts.hash_of(&name) != Some(hash.as_str()) {
                    Self::mirror_account(sh, &name, hash);
                    sh.log.info(format!(
                        "cluster: account '{name}' registered or changed on another node"
                    ));
                }
            }
        }
    }

    fn mirror_account(sh: &mut Shared, name: &str, hash: String) {
        if let Err(e) = sh.accounts.put(name, hash) {
            sh.log.warn(format!(
                "cluster: account '{name}' not mirrored: {}",
                e.message()
            ));
        }
    }

    fn mirror_join(&mut self, sh: &mut Shared, room: &str, m: &MemberRecord) {
        let ghost = sh.fresh_id();
        if let Ok(delivery) = sh
            .hub
            .join_admitted(ghost, &m.name, room, &m.addr, &m.at, &m.node)
        {
            self.out.push(ClusterOut::Deliver(delivery));
        }
    }

    /// A room as the cluster defines it: created, or its settings updated.
    fn apply_room_def(&mut self, sh: &mut Shared, room: &str, def: &RoomDef) {
        if let Some(bad) = def
            .allowed
            .iter()
            .find(|n| crate::core::names::check_username(n).is_err())
        {
            let why = format!("room '{room}' allows '{bad}', which is no valid name");
            self.drop_item(sh, "a room definition", why);
            return;
        }
        if let Err(why) = def.moderation.check() {
            let why = format!("room '{room}' moderation: {why}");
            self.drop_item(sh, "a room definition", why);
            return;
        }
        let access = Access {
            private: def.private,
            allowed: def.allowed.iter().cloned().collect(),
            key_hash: def.key_hash.clone(),
        };
        let result = match sh.hub.room(room) {
            Ok(info) => {
                let mut r = Ok(());
                if info.limit != def.limit {
                    r = sh.hub.set_limit(room, def.limit).map(|_| ());
                    self.out.push(ClusterOut::Facts(room.to_string()));
                }
                if info.access != access {
                    r = r.and(sh.hub.set_access(room, access).map(|_| ()));
                }
                if info.history != def.history {
                    r = r.and(sh.hub.set_history(room, def.history).map(|_| ()));
                }
                if info.history_age != def.history_age {
                    r = r.and(sh.hub.set_history_age(room, def.history_age).map(|_| ()));
                }
                if info.moderation != def.moderation {
                    r = r.and(
                        sh.hub
                            .set_moderation(room, def.moderation.clone())
                            .map(|_| ()),
                    );
                    self.out.push(ClusterOut::Enforce(Some(room.to_string())));
                }
                r
            }
            Err(_) => sh
                .hub
                .create_room(room, def.limit)
                .and_then(|_| sh.hub.set_access(room, access))
                .and_then(|_| sh.hub.set_history(room, def.history))
                .and_then(|_| sh.hub.set_history_age(room, def.history_age))
                .and_then(|_| sh.hub.set_moderation(room, def.moderation.clone()))
                .map(|_| ()),
        };
        if let Err(e) = result {
            sh.log.warn(format!(
                "cluster: room '{room}' not mirrored: {}",
                e.message()
            ));
        }
    }

    fn close_mirrored_room(&mut self, sh: &mut Shared, here: &dyn Here, room: &str, why: &str) {
        let Ok(closure) = sh.hub.close_room(room) else {
            return;
        };
        let local: Vec<ConnId> = closure
            .members
            .iter()
            .copied()
            .filter(|&c| here.has(c))
            .collect();
        sh.log.info(format!(
            "cluster: room '{room}' closed ({why}); {} local member(s) disconnected",
            local.len()
        ));
        for conn in local {
            self.out
                .push(ClusterOut::Finish(conn, Some(closure.event.clone())));
        }
        self.unsubscribe_if_unused(sh, here, room);
    }

    // -- admin changes ---------------------------------------------------------------

    /// An admin change carried out here goes to Redis, which tells the
    /// other nodes. Every kind of change is named here (no `_` arm): a new
    /// one does not compile until it is replicated.
    pub fn forward(&mut self, sh: &Shared, change: &Change) {
        let kick = |room: &str, username: &str, why: &str| {
            shared::eval(
                &shared::kick_script(),
                &[
                    room.as_bytes(),
                    comparison_key(username).as_bytes(),
                    why.as_bytes(),
                ],
            )
        };
        let (purpose, msg) = match change {
            Change::RoomCreated { room } => {
                let Ok(info) = sh.hub.room(room) else {
                    return;
                };
                (
                    Purpose::RoomCreate(room.clone()),
                    shared::eval(
                        shared::ROOM_PUT,
                        &[room.as_bytes(), room_def_json(&info).as_bytes(), b"1"],
                    ),
                )
            }
            Change::RoomDenied { room, username } => {
                // A member by that name on another node is kicked by its node.
                self.link.send(
                    Purpose::Ignore,
                    &kick(room, username, "no longer allowed in this private room"),
                );
                let Some(put) = Self::room_update(sh, room) else {
                    return;
                };
                (Purpose::Ignore, put)
            }
            Change::RoomChanged { room } => {
                let Some(put) = Self::room_update(sh, room) else {
                    return;
                };
                (Purpose::Ignore, put)
            }
            Change::RoomClosed { room } => (
                Purpose::Ignore,
                shared::eval(&shared::room_del_script(), &[room.as_bytes()]),
            ),
            Change::AccountPut { name } => {
                let hash = sh.accounts.hash_of(name).unwrap_or_default().to_string();
                (
                    Purpose::Ignore,
                    shared::eval(shared::USER_PUT, &[name.as_bytes(), hash.as_bytes()]),
                )
            }
            Change::AccountDeleted { name } => (
                Purpose::Ignore,
                shared::eval(shared::USER_PUT, &[name.as_bytes(), b""]),
            ),
            Change::Kicked {
                room,
                username,
                reason,
            } => (Purpose::Ignore, kick(room, username, reason)),
            Change::ServerBans => {
                let bans = serde_json::to_string(sh.hub.server_bans()).expect("rules serialise");
                (
                    Purpose::Ignore,
                    shared::eval(shared::BANS_PUT, &[bans.as_bytes()]),
                )
            }
            Change::Purged { room, before_ms } => {
                let before = shared::purge_before(*before_ms);
                (
                    Purpose::Ignore,
                    shared::eval(shared::PURGE, &[room.as_bytes(), before.as_bytes()]),
                )
            }
        };
        self.link.send(purpose, &msg);
    }

    /// `ROOM_PUT` of a room's settings as this node now has them.
    fn room_update(sh: &Shared, room: &str) -> Option<Vec<u8>> {
        let info = sh.hub.room(room).ok()?;
        Some(shared::eval(
            shared::ROOM_PUT,
            &[room.as_bytes(), room_def_json(&info).as_bytes(), b"0"],
        ))
    }

    /// Two nodes created the same room at once: the first to reach Redis
    /// defines it, and this node adopts its settings.
    pub(super) fn on_room_created(&mut self, sh: &mut Shared, room: &str, frame: &Frame) {
        let items = shared::items(frame);
        if items.first().and_then(shared::text) != Some("exists") {
            return;
        }
        let Some(def) = items
            .get(1)
            .and_then(shared::text)
            .and_then(|d| serde_json::from_str::<RoomDef>(d).ok())
        else {
            return;
        };
        sh.log.warn(format!(
            "cluster: room '{room}' already existed in the cluster; its settings there (limit {}) apply",
            def.limit
        ));
        self.apply_room_def(sh, room, &def);
    }
}

pub(super) fn room_def_json(info: &RoomInfo) -> String {
    serde_json::to_string(&RoomDef {
        limit: info.limit,
        history: info.history,
        history_age: info.history_age,
        private: info.access.private,
        allowed: info.access.allowed.iter().cloned().collect(),
        key_hash: info.access.key_hash.clone(),
        moderation: info.moderation.clone(),
    })
    .expect("plain values serialise")
}

pub(super) fn record_json(r: &MemberRecord) -> String {
    serde_json::to_string(r).expect("plain strings serialise")
}
