//! Control requests carried out against the hub, the accounts and the
//! store. Every state change goes through one helper, commit.rs's
//! [`commit`]: change
//! the state, save the file it lives in (rooms or accounts), and
//! acknowledge only if the save succeeded, else undo the change and refuse
//! with `failed`. So what chatctl was told is what a restart (or
//! a crash) will load, and a failed save leaves memory as the disk is.
//!
//! Nothing here touches a connection: what must happen to chat clients
//! (deliveries, closings) comes back as [`Effect`]s for the event loop.

use crate::core::control::{
    Change, ErrorCode, HistoryEntry, LogEntry, Participant, Reply, Request, Response, RoomView,
    UserView,
};
use crate::core::hub::{Access, HubError, Kick, RoomInfo};
use crate::core::moderation;
use crate::daemon::accounts;
use crate::daemon::logbook::Logbook;

use super::commit::{Ctx, Effect, Undo, commit, hub_error};

/// Runs one request; `who` names the peer for the audit line that every
/// state-changing request gets.
pub fn execute(ctx: &mut Ctx, req: &Request, who: &str) -> (Response, Vec<Effect>) {
    let mut effects = Vec::new();
    let response = match run(ctx, req, &mut effects) {
        Ok(reply) => Response::Ok(reply),
        Err(refusal) => refusal,
    };
    // A command that changed shared state names the change (Change), or
    // cluster mode would keep it on this node.
    debug_assert!(
        !req.changes_state()
            || !matches!(response, Response::Ok(_))
            || effects.iter().any(|e| matches!(e, Effect::Changed(_))),
        "{req:?} changed state without naming the change"
    );
    if req.changes_state() {
        let outcome = match &response {
            Response::Err(r) => format!("refused: {}", r.message),
            Response::Ok(_) => "ok".to_string(),
        };
        ctx.log
            .info(format!("control: {} by {who}: {outcome}", summarize(req)));
    }
    (response, effects)
}

fn run(ctx: &mut Ctx, req: &Request, effects: &mut Vec<Effect>) -> Result<Reply, Response> {
    match req {
        Request::CreateRoom {
            name,
            limit,
            private,
            key,
            history,
            history_age,
        } => {
            if key.is_some() && !private {
                return Err(Response::error(
                    ErrorCode::Invalid,
                    "a key goes with a private room (--private)",
                ));
            }
            let key_hash = match key {
                Some(k) => {
                    check_password(k, ctx.password_min)?;
                    Some(accounts::hash(k).map_err(|e| failed(&e))?)
                }
                None => None,
            };
            let default_history = ctx.history_default;
            let room = commit(ctx, |hub, _| {
                let mut info = hub.create_room(name, *limit)?;
                let access = Access {
                    private: *private,
                    allowed: Default::default(),
                    key_hash,
                };
                hub.set_access(name, access.clone())?;
                let history = history.unwrap_or(default_history);
                hub.set_history(name, history)?;
                hub.set_history_age(name, history_age.unwrap_or(0))?;
                info.access = access;
                info.history = history;
                info.history_age = history_age.unwrap_or(0);
                Ok((info, Undo::Create { name: name.clone() }))
            })?;
            let kind = if room.access.private {
                "private room"
            } else {
                "room"
            };
            let kept = match (room.history, room.history_age) {
                (0, _) => String::new(),
                (n, 0) => format!(", keeping its last {n} events for joiners"),
                (n, age) => format!(
                    ", keeping its last {n} events for joiners, for at most {}",
                    crate::cli::chatd::show_age(age)
                ),
            };
            ctx.log.info(format!(
                "{kind} '{}' created with limit {}{kept}",
                room.name, room.limit
            ));
            effects.push(Effect::Changed(Change::RoomCreated { room: name.clone() }));
            Ok(Reply::Room { room: view(&room) })
        }
        Request::RoomAllow { room, username } | Request::RoomDeny { room, username } => {
            let allow = matches!(req, Request::RoomAllow { .. });
            if allow {
                crate::core::names::check_username(username)
                    .map_err(|e| Response::error(ErrorCode::Invalid, &e))?;
            }
            let info = commit(ctx, |hub, _| {
                let old = hub
                    .access(room)
                    .cloned()
                    .ok_or_else(|| HubError::NotFound(format!("no room named '{room}'")))?;
                if !old.private {
                    return Err(HubError::Invalid(format!(
                        "room '{room}' is public: everyone may enter it"
                    )));
                }
                let mut new = old.clone();
                let key = crate::core::names::comparison_key(username);
                new.allowed
                    .retain(|n| crate::core::names::comparison_key(n) != key);
                if allow {
                    new.allowed.insert(username.clone());
                }
                hub.set_access(room, new)?;
                let info = hub.room(room)?;
                let undo = Undo::Access {
                    room: room.clone(),
                    access: old,
                };
                Ok((info, undo))
            })?;
            let verb = if allow {
                "allowed in"
            } else {
                "no longer allowed in"
            };
            ctx.log
                .info(format!("'{username}' {verb} private room '{room}'"));
            if !allow && let Ok(kick) = ctx.hub.kick(room, username) {
                // Out of the allow-list, out of the room (those who came in
                // with the room's key are not on the list, and stay).
                removed(ctx.log, kick, ": no longer allowed", effects);
            }
            effects.push(Effect::Changed(if allow {
                Change::RoomChanged { room: room.clone() }
            } else {
                Change::RoomDenied {
                    room: room.clone(),
                    username: username.clone(),
                }
            }));
            Ok(Reply::Room { room: view(&info) })
        }
        Request::SetLimit { room, limit } => {
            let info = commit(ctx, |hub, _| {
                let old = hub.room(room)?.limit;
                let info = hub.set_limit(room, *limit)?;
                let undo = Undo::Limit {
                    room: room.clone(),
                    limit: old,
                };
                Ok((info, undo))
            })?;
            ctx.log.info(format!(
                "room '{}' limit changed to {}",
                info.name, info.limit
            ));
            effects.push(Effect::Changed(Change::RoomChanged { room: room.clone() }));
            effects.push(Effect::Facts(room.clone()));
            Ok(Reply::Room { room: view(&info) })
        }
        Request::CloseRoom { room } => {
            let closure = commit(ctx, |hub, _| {
                let closure = hub.close_room(room)?;
                Ok((closure.clone(), Undo::Close(Box::new(closure))))
            })?;
            // Its conversation goes with it (a room made again by the
            // same name starts afresh).
            let forgotten = match ctx.history.as_deref_mut() {
                Some(h) => {
                    let hub = &*ctx.hub;
                    h.purge(&closure.room, i64::MAX, |r| hub.history_len(r))
                }
                None => Ok(0),
            };
            let forgotten = match forgotten {
                Ok(0) => String::new(),
                Ok(n) => format!("; its {n} kept event(s) forgotten"),
                Err(e) => {
                    ctx.log.error(format!(
                        "history: room '{}' closed, its kept events stay: {e}",
                        closure.room
                    ));
                    String::new()
                }
            };
            ctx.log.info(format!(
                "room '{}' closed; {} member(s) disconnected{forgotten}",
                closure.room,
                closure.members.len()
            ));
            let disconnected = closure.members.len();
            for &conn in &closure.members {
                effects.push(Effect::Close {
                    conn,
                    event: closure.event.clone(),
                });
            }
            effects.push(Effect::Changed(Change::RoomClosed { room: room.clone() }));
            Ok(Reply::Closed {
                room: closure.room,
                disconnected,
            })
        }
        Request::Kick {
            room,
            username,
            reason,
        } => {
            let reason = reason.as_deref().unwrap_or("");
            moderation::check_reason(reason)
                .map_err(|e| Response::error(ErrorCode::Invalid, &e))?;
            let kick = ctx
                .hub
                .kick_with(room, username, reason)
                .map_err(|e| hub_error(&e))?;
            // The member's own name: the admin may have typed a look-alike.
            effects.push(Effect::Changed(Change::Kicked {
                room: room.clone(),
                username: username.clone(),
                reason: reason.to_string(),
            }));
            let by = if ctx.actor == "admin" {
                " by an admin".to_string()
            } else {
                format!(" by room operator '{}'", ctx.actor)
            };
            let username = removed(ctx.log, kick, &by, effects);
            Ok(Reply::Kicked {
                room: room.clone(),
                username,
            })
        }
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
        | Request::Bans {} => super::moderate::run(ctx, req, effects),
        Request::List {} => Ok(Reply::Rooms {
            rooms: ctx.hub.list().iter().map(view).collect(),
        }),
        Request::Participants { room } => {
            let members = ctx.hub.participants(room).map_err(|e| hub_error(&e))?;
            Ok(Reply::Participants {
                room: room.clone(),
                participants: members
                    .iter()
                    .map(|m| Participant {
                        username: m.username.clone(),
                        address: m.address.clone(),
                        joined_at: m.joined_at.clone(),
                        node: m.node.clone(),
                    })
                    .collect(),
            })
        }
        Request::Logs {
            limit,
            follow,
            since,
            priority,
        } => {
            // The filters first, then the newest `limit` of what passes.
            let mut logs: Vec<LogEntry> = ctx
                .log
                .recent(usize::MAX)
                .map(|e| e.view())
                .filter(|e| e.passes(since.as_deref(), *priority))
                .collect();
            let skip = logs.len().saturating_sub(*limit);
            logs.drain(..skip);
            if *follow {
                effects.push(Effect::Follow {
                    after: ctx.log.last_seq(),
                    since: since.clone(),
                    priority: *priority,
                });
            }
            Ok(Reply::Logs { logs })
        }
        Request::History { room, limit, since } => {
            ctx.hub.room_id_of(room).ok_or_else(|| no_room(room))?;
            let since_ms = match since {
                Some(t) => ms_of(t, "since")?,
                None => i64::MIN,
            };
            let hub = &*ctx.hub;
            let h = ctx.history.as_deref_mut().ok_or_else(no_history_file)?;
            let rows = h
                .read(room, (*limit).min(10_000), since_ms, |r| hub.history_len(r))
                .map_err(|e| Response::error(ErrorCode::Failed, &e))?;
            Ok(Reply::History {
                room: room.clone(),
                history: rows
                    .iter()
                    .map(|s| {
                        let e = s.event();
                        HistoryEntry {
                            kind: e.kind.as_str().to_string(),
                            username: e.username,
                            message: e.message,
                            ts: e.ts.unwrap_or_default(),
                            msgid: s.msgid.clone(),
                        }
                    })
                    .collect(),
            })
        }
        Request::Purge { room, before } => {
            let id = ctx.hub.room_id_of(room).ok_or_else(|| no_room(room))?;
            let before_ms = match before {
                Some(t) => ms_of(t, "before")?,
                None => i64::MAX,
            };
            let hub = &*ctx.hub;
            let h = ctx.history.as_deref_mut().ok_or_else(no_history_file)?;
            let removed = h
                .purge(room, before_ms, |r| hub.history_len(r))
                .map_err(|e| Response::error(ErrorCode::Failed, &e))?;
            ctx.hub.purge_history(id, before.as_deref());
            let what = match before {
                Some(t) => format!("events before {t}"),
                None => "all events".to_string(),
            };
            ctx.log.info(format!(
                "control: purge of room '{room}' ({what}): {removed} removed from the history file"
            ));
            effects.push(Effect::Changed(Change::Purged {
                room: room.clone(),
                before_ms,
            }));
            Ok(Reply::Purged {
                room: room.clone(),
                removed,
            })
        }
        Request::Stats {} => Ok(Reply::Stats {
            stats: Box::new(ctx.stats.clone()),
        }),
        Request::Status {} => Ok(Reply::Status {
            status: Box::new(ctx.status.clone()),
        }),
        Request::UserAdd { name, password } => {
            check_password(password, ctx.password_min)?;
            let hash = accounts::hash(password).map_err(|e| failed(&e))?;
            commit(ctx, |_, accounts| {
                accounts.add(name, hash)?;
                Ok(((), Undo::UserAdded { name: name.clone() }))
            })?;
            ctx.log.info(format!("account '{name}' registered"));
            effects.push(Effect::Changed(Change::AccountPut { name: name.clone() }));
            Ok(Reply::User {
                user: UserView { name: name.clone() },
            })
        }
        Request::UserDel { name } => {
            commit(ctx, |_, accounts| {
                let hash = accounts
                    .remove(name)
                    .ok_or_else(|| HubError::NotFound(format!("no account named '{name}'")))?;
                Ok((
                    (),
                    Undo::UserRemoved {
                        name: name.clone(),
                        hash,
                    },
                ))
            })?;
            ctx.log.info(format!("account '{name}' deleted"));
            effects.push(Effect::Changed(Change::AccountDeleted {
                name: name.clone(),
            }));
            Ok(Reply::User {
                user: UserView { name: name.clone() },
            })
        }
        Request::UserPasswd { name, password } => {
            check_password(password, ctx.password_min)?;
            let hash = accounts::hash(password).map_err(|e| failed(&e))?;
            commit(ctx, |_, accounts| {
                let old = accounts
                    .set_hash(name, hash)
                    .ok_or_else(|| HubError::NotFound(format!("no account named '{name}'")))?;
                Ok((
                    (),
                    Undo::UserHash {
                        name: name.clone(),
                        hash: old,
                    },
                ))
            })?;
            ctx.log.info(format!("account '{name}': password changed"));
            effects.push(Effect::Changed(Change::AccountPut { name: name.clone() }));
            Ok(Reply::User {
                user: UserView { name: name.clone() },
            })
        }
        Request::UserList {} => Ok(Reply::Users {
            users: ctx
                .accounts
                .names()
                .into_iter()
                .map(|name| UserView { name })
                .collect(),
        }),
    }
}

/// Passwords: `--password-min` (8) to 1024 bytes (the reason never echoes the password).
/// Carries out a member's removal: the leave line (`why` ends it), the
/// room's notice and the connection's close. Returns the member's name.
pub(super) fn removed(
    log: &mut Logbook,
    kick: Kick,
    why: &str,
    effects: &mut Vec<Effect>,
) -> String {
    let dep = kick.departure;
    log.info(format!(
        "leave: '{}' removed from room '{}' ({}){why}",
        dep.member.username, dep.room, dep.member.address
    ));
    effects.push(Effect::Deliver(dep.notice));
    effects.push(Effect::Close {
        conn: kick.conn,
        event: kick.event,
    });
    dep.member.username
}

fn check_password(password: &str, min: usize) -> Result<(), Response> {
    let n = password.len();
    if !(min..=crate::core::wire::MAX_PASSWORD_BYTES).contains(&n) {
        return Err(Response::error(
            ErrorCode::Invalid,
            &format!(
                "a password must be {min} to {} bytes long",
                crate::core::wire::MAX_PASSWORD_BYTES
            ),
        ));
    }
    Ok(())
}

fn failed(why: &str) -> Response {
    Response::error(ErrorCode::Failed, why)
}

fn view(r: &RoomInfo) -> RoomView {
    RoomView {
        name: r.name.clone(),
        limit: r.limit,
        members: r.members,
        private: r.access.private,
        allowed: r.access.allowed.iter().cloned().collect(),
        history: r.history,
        history_age: r.history_age,
    }
}

pub(super) fn no_room(room: &str) -> Response {
    Response::error(ErrorCode::NotFound, &format!("no room named '{room}'"))
}

fn no_history_file() -> Response {
    Response::error(ErrorCode::Failed, "this chatd has no history file")
}

/// An RFC 3339 time given as `--{flag}`, in Unix milliseconds.
fn ms_of(t: &str, flag: &str) -> Result<i64, Response> {
    crate::timefmt::parse_rfc3339(t)
        .map(|s| s as i64 * 1000)
        .ok_or_else(|| {
            Response::error(
                ErrorCode::Invalid,
                &format!("{flag} '{t}' is not an RFC 3339 time such as 2026-11-24T10:00:00Z"),
            )
        })
}

/// A request as one log phrase.
pub fn summarize(req: &Request) -> String {
    match req {
        Request::CreateRoom {
            name,
            limit,
            private,
            ..
        } => {
            let private = if *private { " private" } else { "" };
            format!("create-room '{name}' limit {limit}{private}")
        }
        Request::RoomAllow { room, username } => format!("room-allow '{username}' in '{room}'"),
        Request::RoomDeny { room, username } => format!("room-deny '{username}' in '{room}'"),
        Request::CloseRoom { room } => format!("close-room '{room}'"),
        Request::SetLimit { room, limit } => format!("set-limit '{room}' {limit}"),
        Request::Kick {
            room,
            username,
            reason,
        } => match reason {
            Some(r) => format!("kick '{username}' from '{room}' ({r})"),
            None => format!("kick '{username}' from '{room}'"),
        },
        // Never the password.
        Request::UserAdd { name, .. } => format!("user-add '{name}'"),
        Request::UserDel { name } => format!("user-del '{name}'"),
        Request::UserPasswd { name, .. } => format!("user-passwd '{name}'"),
        Request::RoomTopic { room, topic } if topic.is_empty() => {
            format!("room-topic '{room}' cleared")
        }
        Request::RoomTopic { room, topic } => format!("room-topic '{room}': {topic}"),
        Request::RoomBan {
            room,
            target,
            for_secs,
            reason,
        } => format!(
            "room-ban '{target}' from '{room}'{}",
            terms(*for_secs, reason)
        ),
        Request::RoomMute {
            room,
            target,
            for_secs,
            reason,
        } => format!(
            "room-mute '{target}' in '{room}'{}",
            terms(*for_secs, reason)
        ),
        Request::RoomUnban { room, target } => format!("room-unban '{target}' in '{room}'"),
        Request::RoomUnmute { room, target } => format!("room-unmute '{target}' in '{room}'"),
        Request::RoomOp { room, account } => format!("room-op '{account}' in '{room}'"),
        Request::RoomDeop { room, account } => format!("room-deop '{account}' in '{room}'"),
        Request::RoomModerated { room, on } => {
            format!("room-moderated '{room}' {}", if *on { "on" } else { "off" })
        }
        Request::Ban {
            target,
            for_secs,
            reason,
        } => format!("ban '{target}' from every room{}", terms(*for_secs, reason)),
        Request::Unban { target } => format!("unban '{target}'"),
        other => format!("{other:?}"),
    }
}

/// " for 3600 s (spam)", as a ban or mute's summary ends.
fn terms(for_secs: Option<u64>, reason: &Option<String>) -> String {
    let mut s = match for_secs {
        Some(secs) => format!(" for {}", crate::cli::chatd::show_age(secs)),
        None => String::new(),
    };
    if let Some(r) = reason {
        s.push_str(&format!(" ({r})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::control::{Level, Stats, StatusView};
    use crate::core::hub::Hub;
    use crate::daemon::accounts::Accounts;
    use crate::daemon::logbook::Sink;
    use crate::daemon::store::Store;

    /// A command context over a private state directory.
    struct Fixture {
        hub: Hub,
        accounts: Accounts,
        store: Store,
        log: Logbook,
        dir: std::path::PathBuf,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("chatd-commands-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Fixture {
                hub: Hub::new(),
                accounts: Accounts::default(),
                store: Store::open(&dir).unwrap(),
                log: Logbook::new(Sink::none(), 100, Level::Info),
                dir,
            }
        }

        /// Runs one request (JSON); the response and the changes it made.
        fn run(&mut self, json: &str) -> (Response, Vec<Change>) {
            let req = Request::parse(json.as_bytes()).unwrap();
            let mut ctx = Ctx {
                hub: &mut self.hub,
                accounts: &mut self.accounts,
                store: &self.store,
                log: &mut self.log,
                stats: Stats::default(),
                status: StatusView::default(),
                history: None,
                history_default: 0,
                password_min: 8,
                now_unix: 1_000,
                actor: "admin".into(),
            };
            let (response, effects) = execute(&mut ctx, &req, "test");
            let changes = effects
                .into_iter()
                .filter_map(|e| match e {
                    Effect::Changed(c) => Some(c),
                    _ => None,
                })
                .collect();
            (response, changes)
        }

        fn ok(&mut self, json: &str) -> Vec<Change> {
            let (response, changes) = self.run(json);
            assert!(matches!(response, Response::Ok(_)), "{json}: {response:?}");
            changes
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    /// Runs each request in turn; each must succeed naming its change.
    fn expect(f: &mut Fixture, steps: Vec<(&str, Change)>) {
        for (json, change) in steps {
            assert_eq!(f.ok(json), [change], "{json}");
        }
    }

    #[test]
    fn moderation_is_saved_named_and_refused_in_words() {
        let mut f = Fixture::new("moderation");
        let room = || Change::RoomChanged { room: s("Teste") };
        f.ok(r#"{"cmd":"create-room","name":"Teste","limit":5}"#);
        expect(
            &mut f,
            vec![
                (
                    r#"{"cmd":"room-topic","room":"Teste","topic":"Olá"}"#,
                    room(),
                ),
                (
                    r#"{"cmd":"room-ban","room":"Teste","target":"yan","for_secs":3600,"reason":"spam"}"#,
                    room(),
                ),
                (
                    r#"{"cmd":"room-mute","room":"Teste","target":"10.0.0.0/8"}"#,
                    room(),
                ),
                (
                    r#"{"cmd":"room-moderated","room":"Teste","on":true}"#,
                    room(),
                ),
                (
                    r#"{"cmd":"ban","target":"account:bot"}"#,
                    Change::ServerBans,
                ),
            ],
        );
        let saved = f.store.load().unwrap();
        let m = &saved.rooms[0].moderation;
        assert_eq!(m.topic.as_ref().unwrap().text, "Olá");
        assert_eq!(m.bans[0].until, Some(1_000 + 3600));
        assert_eq!(m.bans[0].reason, "spam");
        assert_eq!(m.mutes[0].target.to_string(), "10.0.0.0/8");
        assert!(m.moderated);
        assert_eq!(saved.bans[0].target.to_string(), "account:bot");
        // Refusals say why, and change nothing.
        for (json, words) in [
            (
                r#"{"cmd":"room-op","room":"Teste","account":"nobody"}"#,
                "no account",
            ),
            (
                r#"{"cmd":"room-unban","room":"Teste","target":"ana"}"#,
                "is not banned",
            ),
            (
                r#"{"cmd":"room-ban","room":"Teste","target":"10.0.0.0/40"}"#,
                "prefix",
            ),
            (
                r#"{"cmd":"room-ban","room":"Nada","target":"ana"}"#,
                "no room",
            ),
        ] {
            let (response, changes) = f.run(json);
            let Response::Err(r) = response else {
                panic!("{json} was accepted");
            };
            assert!(r.message.contains(words), "{json}: {}", r.message);
            assert!(changes.is_empty());
        }
        expect(
            &mut f,
            vec![
                (
                    r#"{"cmd":"room-unban","room":"Teste","target":"YAN"}"#,
                    room(),
                ),
                (
                    r#"{"cmd":"unban","target":"account:bot"}"#,
                    Change::ServerBans,
                ),
            ],
        );
        let saved = f.store.load().unwrap();
        assert!(saved.rooms[0].moderation.bans.is_empty());
        assert!(saved.bans.is_empty());
    }

    #[test]
    fn each_room_change_is_named_for_the_cluster() {
        let mut f = Fixture::new("rooms");
        let room = || s("Teste");
        expect(
            &mut f,
            vec![
                (
                    r#"{"cmd":"create-room","name":"Teste","limit":2,"private":true}"#,
                    Change::RoomCreated { room: room() },
                ),
                (
                    r#"{"cmd":"set-limit","room":"Teste","limit":5}"#,
                    Change::RoomChanged { room: room() },
                ),
                (
                    r#"{"cmd":"room-allow","room":"Teste","username":"ana"}"#,
                    Change::RoomChanged { room: room() },
                ),
                (
                    r#"{"cmd":"room-deny","room":"Teste","username":"ana"}"#,
                    Change::RoomDenied {
                        room: room(),
                        username: s("ana"),
                    },
                ),
                (
                    r#"{"cmd":"close-room","room":"Teste"}"#,
                    Change::RoomClosed { room: room() },
                ),
            ],
        );
    }

    #[test]
    fn a_kick_is_named_with_the_name_asked_for() {
        let mut f = Fixture::new("kick");
        f.ok(r#"{"cmd":"create-room","name":"Teste","limit":2}"#);
        f.hub
            .join(7, "Yan", "Teste", "192.0.2.1:5", "2026-12-04T00:00:00Z")
            .unwrap();
        let kicked = Change::Kicked {
            room: s("Teste"),
            username: s("yan"),
            reason: String::new(),
        };
        expect(
            &mut f,
            vec![(r#"{"cmd":"kick","room":"Teste","username":"yan"}"#, kicked)],
        );
    }

    #[test]
    fn each_account_change_is_named_for_the_cluster() {
        let mut f = Fixture::new("accounts");
        let ana = || s("ana");
        expect(
            &mut f,
            vec![
                (
                    r#"{"cmd":"user-add","name":"ana","password":"correct horse"}"#,
                    Change::AccountPut { name: ana() },
                ),
                (
                    r#"{"cmd":"user-passwd","name":"ana","password":"battery staple"}"#,
                    Change::AccountPut { name: ana() },
                ),
                (
                    r#"{"cmd":"user-del","name":"ana"}"#,
                    Change::AccountDeleted { name: ana() },
                ),
            ],
        );
    }

    #[test]
    fn refusals_and_reads_change_nothing() {
        let mut f = Fixture::new("refusals");
        for json in [
            r#"{"cmd":"set-limit","room":"Nada","limit":5}"#,
            r#"{"cmd":"close-room","room":"Nada"}"#,
            r#"{"cmd":"kick","room":"Nada","username":"yan"}"#,
            r#"{"cmd":"room-allow","room":"Nada","username":"ana"}"#,
            r#"{"cmd":"user-del","name":"nobody"}"#,
            r#"{"cmd":"create-room","name":"Pub","limit":2,"key":"sesame"}"#,
        ] {
            let (response, changes) = f.run(json);
            assert!(matches!(response, Response::Err(_)), "{json}");
            assert_eq!(changes, [], "{json}");
        }
        f.ok(r#"{"cmd":"create-room","name":"Pub","limit":2}"#);
        // A public room has no allow-list to change.
        let (response, changes) = f.run(r#"{"cmd":"room-allow","room":"Pub","username":"ana"}"#);
        assert!(matches!(response, Response::Err(_)));
        assert_eq!(changes, []);
        for json in [
            r#"{"cmd":"list"}"#,
            r#"{"cmd":"participants","room":"Pub"}"#,
            r#"{"cmd":"stats"}"#,
            r#"{"cmd":"status"}"#,
            r#"{"cmd":"user-list"}"#,
            r#"{"cmd":"logs"}"#,
        ] {
            assert_eq!(f.ok(json), [], "{json}");
        }
    }

    #[test]
    fn a_change_that_cannot_be_saved_is_undone_and_not_named() {
        let mut f = Fixture::new("unsaved");
        // rooms.json cannot be replaced: a directory stands in its way.
        std::fs::create_dir_all(f.dir.join("rooms.json").join("x")).unwrap();
        let (response, changes) = f.run(r#"{"cmd":"create-room","name":"Teste","limit":2}"#);
        assert!(matches!(response, Response::Err(_)), "{response:?}");
        assert_eq!(changes, []);
        assert!(f.hub.room("Teste").is_err(), "undone");
    }
}
