//! Control requests carried out against the hub, the accounts and the
//! store. Every state change goes through one helper, [`commit`]: change
//! the state, save the file it lives in (rooms or accounts), and
//! acknowledge only if the save succeeded, else undo the change and refuse
//! with `failed`. So what chatctl was told is what a restart (or
//! a crash) will load, and a failed save leaves memory as the disk is.
//!
//! Nothing here touches a connection: what must happen to chat clients
//! (deliveries, closings) comes back as [`Effect`]s for the event loop.

use super::accounts::{self, Accounts};
use super::logbook::Logbook;
use super::store::Store;
use crate::core::control::{
    ErrorCode, Level, LogEntry, Participant, Reply, Request, Response, RoomView, Stats, StatusView,
    UserView,
};
use crate::core::hub::{Access, Closure, ConnId, Delivery, Hub, HubError, Kick, RoomInfo};
use crate::core::wire::Event;

/// What a command needs: the state it may change, where that state is
/// saved, the log, and the counters `stats` reports.
pub struct Ctx<'a> {
    pub hub: &'a mut Hub,
    pub accounts: &'a mut Accounts,
    pub store: &'a Store,
    pub log: &'a mut Logbook,
    pub stats: Stats,
    pub status: StatusView,
}

/// What the event loop must do after a command.
#[derive(Debug)]
pub enum Effect {
    /// Deliver an event to members.
    Deliver(Delivery),
    /// Send a last event to a connection, then close it.
    Close { conn: ConnId, event: Event },
    /// Stream log entries after this sequence number, through the same
    /// filters, to the requester.
    Follow {
        after: u64,
        since: Option<String>,
        priority: Option<Level>,
    },
}

/// How to take a change back when it could not be saved.
enum Undo {
    Create { name: String },
    Limit { room: String, limit: usize },
    Close(Box<Closure>),
    UserAdded { name: String },
    UserRemoved { name: String, hash: String },
    UserHash { name: String, hash: String },
    Access { room: String, access: Access },
}

impl Undo {
    /// Which file the change lives in.
    fn file(&self) -> Saved {
        match self {
            Undo::Create { .. } | Undo::Limit { .. } | Undo::Close(_) | Undo::Access { .. } => {
                Saved::Rooms
            }
            _ => Saved::Users,
        }
    }

    fn apply(self, hub: &mut Hub, accounts: &mut Accounts) {
        match self {
            Undo::Create { name } => {
                let _ = hub.close_room(&name);
            }
            Undo::Limit { room, limit } => {
                let _ = hub.set_limit(&room, limit);
            }
            Undo::Close(closure) => hub.reopen(*closure),
            Undo::UserAdded { name } => {
                accounts.remove(&name);
            }
            Undo::UserRemoved { name, hash } => {
                let _ = accounts.add(&name, hash);
            }
            Undo::UserHash { name, hash } => {
                accounts.set_hash(&name, hash);
            }
            Undo::Access { room, access } => {
                let _ = hub.set_access(&room, access);
            }
        }
    }
}

enum Saved {
    Rooms,
    Users,
}

/// Runs one request; `who` names the peer for the audit line that every
/// state-changing request gets.
pub fn execute(ctx: &mut Ctx, req: &Request, who: &str) -> (Response, Vec<Effect>) {
    let mut effects = Vec::new();
    let response = match run(ctx, req, &mut effects) {
        Ok(reply) => Response::Ok(reply),
        Err(refusal) => refusal,
    };
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
        } => {
            if key.is_some() && !private {
                return Err(Response::error(
                    ErrorCode::Invalid,
                    "a key goes with a private room (--private)",
                ));
            }
            let key_hash = match key {
                Some(k) => {
                    check_password(k)?;
                    Some(accounts::hash(k).map_err(|e| failed(&e))?)
                }
                None => None,
            };
            let room = commit(ctx, |hub, _| {
                let mut info = hub.create_room(name, *limit)?;
                let access = Access {
                    private: *private,
                    allowed: Default::default(),
                    key_hash,
                };
                hub.set_access(name, access.clone())?;
                hub.set_history(name, *history)?;
                info.access = access;
                info.history = *history;
                Ok((info, Undo::Create { name: name.clone() }))
            })?;
            let kind = if room.access.private {
                "private room"
            } else {
                "room"
            };
            let kept = if room.history > 0 {
                format!(", keeping its last {} messages for joiners", room.history)
            } else {
                String::new()
            };
            ctx.log.info(format!(
                "{kind} '{}' created with limit {}{kept}",
                room.name, room.limit
            ));
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
            Ok(Reply::Room { room: view(&info) })
        }
        Request::CloseRoom { room } => {
            let closure = commit(ctx, |hub, _| {
                let closure = hub.close_room(room)?;
                Ok((closure.clone(), Undo::Close(Box::new(closure))))
            })?;
            ctx.log.info(format!(
                "room '{}' closed; {} member(s) disconnected",
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
            Ok(Reply::Closed {
                room: closure.room,
                disconnected,
            })
        }
        Request::Kick { room, username } => {
            let kick = ctx.hub.kick(room, username).map_err(|e| hub_error(&e))?;
            // The member's own name: the admin may have typed a look-alike.
            let username = removed(ctx.log, kick, " by an admin", effects);
            Ok(Reply::Kicked {
                room: room.clone(),
                username,
            })
        }
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
        Request::Stats {} => Ok(Reply::Stats {
            stats: ctx.stats.clone(),
        }),
        Request::Status {} => Ok(Reply::Status {
            status: Box::new(ctx.status.clone()),
        }),
        Request::UserAdd { name, password } => {
            check_password(password)?;
            let hash = accounts::hash(password).map_err(|e| failed(&e))?;
            commit(ctx, |_, accounts| {
                accounts.add(name, hash)?;
                Ok(((), Undo::UserAdded { name: name.clone() }))
            })?;
            ctx.log.info(format!("account '{name}' registered"));
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
            Ok(Reply::User {
                user: UserView { name: name.clone() },
            })
        }
        Request::UserPasswd { name, password } => {
            check_password(password)?;
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

/// Passwords: 8 to 1024 bytes (the reason never echoes the password).
/// Carries out a member's removal: the leave line (`why` ends it), the
/// room's notice and the connection's close. Returns the member's name.
fn removed(log: &mut Logbook, kick: Kick, why: &str, effects: &mut Vec<Effect>) -> String {
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

fn check_password(password: &str) -> Result<(), Response> {
    let n = password.len();
    if !(8..=crate::core::wire::MAX_PASSWORD_BYTES).contains(&n) {
        return Err(Response::error(
            ErrorCode::Invalid,
            &format!(
                "a password must be 8 to {} bytes long",
                crate::core::wire::MAX_PASSWORD_BYTES
            ),
        ));
    }
    Ok(())
}

fn failed(why: &str) -> Response {
    Response::error(ErrorCode::Failed, why)
}

/// Save, then acknowledge, else undo: applies `change` to the hub, saves
/// the rooms, and returns the change's result only if the save succeeded;
/// otherwise takes the change back and refuses with `failed`.
fn commit<T>(
    ctx: &mut Ctx,
    change: impl FnOnce(&mut Hub, &mut Accounts) -> Result<(T, Undo), HubError>,
) -> Result<T, Response> {
    let (done, undo) = change(ctx.hub, ctx.accounts).map_err(|e| hub_error(&e))?;
    let saved = match undo.file() {
        Saved::Rooms => ctx.store.save(&ctx.hub.list()),
        Saved::Users => ctx.store.save_users(&ctx.accounts.saved()),
    };
    match saved {
        Ok(()) => Ok(done),
        Err(e) => {
            undo.apply(ctx.hub, ctx.accounts);
            ctx.log.error(format!("{e}; the change was refused"));
            Err(Response::error(
                ErrorCode::Failed,
                &format!("not saved, nothing changed: {e}"),
            ))
        }
    }
}

fn view(r: &RoomInfo) -> RoomView {
    RoomView {
        name: r.name.clone(),
        limit: r.limit,
        members: r.members,
        private: r.access.private,
        allowed: r.access.allowed.iter().cloned().collect(),
        history: r.history,
    }
}

fn hub_error(e: &HubError) -> Response {
    let code = match e {
        HubError::NotFound(_) => ErrorCode::NotFound,
        HubError::Exists(_) => ErrorCode::Exists,
        HubError::Invalid(_) => ErrorCode::Invalid,
    };
    Response::error(code, e.message())
}

/// A request as one log phrase.
fn summarize(req: &Request) -> String {
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
        Request::Kick { room, username } => format!("kick '{username}' from '{room}'"),
        // Never the password.
        Request::UserAdd { name, .. } => format!("user-add '{name}'"),
        Request::UserDel { name } => format!("user-del '{name}'"),
        Request::UserPasswd { name, .. } => format!("user-passwd '{name}'"),
        other => format!("{other:?}"),
    }
}
