//! Control requests carried out against the hub and the store. Every state
//! change goes through one helper, [`commit`]: change the hub, save the
//! rooms, and acknowledge only if the save succeeded, else undo the change
//! and refuse with `failed`. So what chatctl was told is what a restart (or
//! a crash) will load, and a failed save leaves memory as the disk is.
//!
//! Nothing here touches a connection: what must happen to chat clients
//! (deliveries, closings) comes back as [`Effect`]s for the event loop.

use super::logbook::Logbook;
use super::store::Store;
use crate::core::control::{ErrorCode, Participant, Reply, Request, Response, RoomView, Stats};
use crate::core::hub::{Closure, ConnId, Delivery, Hub, HubError, RoomInfo};
use crate::core::wire::Event;

/// What a command needs: the state it may change, where that state is
/// saved, the log, and the counters `stats` reports.
pub struct Ctx<'a> {
    pub hub: &'a mut Hub,
    pub store: &'a Store,
    pub log: &'a mut Logbook,
    pub stats: Stats,
}

/// What the event loop must do after a command.
#[derive(Debug)]
pub enum Effect {
    /// Deliver an event to members.
    Deliver(Delivery),
    /// Send a last event to a connection, then close it.
    Close { conn: ConnId, event: Event },
    /// Stream log entries after this sequence number to the requester.
    Follow { after: u64 },
}

/// How to take a change back when it could not be saved.
enum Undo {
    Create { name: String },
    Limit { room: String, limit: usize },
    Close(Box<Closure>),
}

impl Undo {
    fn apply(self, hub: &mut Hub) {
        match self {
            Undo::Create { name } => {
                let _ = hub.close_room(&name);
            }
            Undo::Limit { room, limit } => {
                let _ = hub.set_limit(&room, limit);
            }
            Undo::Close(closure) => hub.reopen(*closure),
        }
    }
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
        Request::CreateRoom { name, limit } => {
            let room = commit(ctx, |hub| {
                let info = hub.create_room(name, *limit)?;
                Ok((info, Undo::Create { name: name.clone() }))
            })?;
            ctx.log.info(format!(
                "room '{}' created with limit {}",
                room.name, room.limit
            ));
            Ok(Reply::Room { room: view(&room) })
        }
        Request::SetLimit { room, limit } => {
            let info = commit(ctx, |hub| {
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
            let closure = commit(ctx, |hub| {
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
            let dep = &kick.departure;
            // The member's own name: the admin may have typed a look-alike.
            let removed = dep.member.username.clone();
            ctx.log.info(format!(
                "leave: '{}' removed from room '{}' ({}) by an admin",
                dep.member.username, dep.room, dep.member.address
            ));
            effects.push(Effect::Deliver(kick.departure.notice));
            effects.push(Effect::Close {
                conn: kick.conn,
                event: kick.event,
            });
            Ok(Reply::Kicked {
                room: room.clone(),
                username: removed,
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
                    })
                    .collect(),
            })
        }
        Request::Logs { limit, follow } => {
            let logs = ctx.log.recent(*limit).map(|e| e.view()).collect();
            if *follow {
                effects.push(Effect::Follow {
                    after: ctx.log.last_seq(),
                });
            }
            Ok(Reply::Logs { logs })
        }
        Request::Stats {} => Ok(Reply::Stats {
            stats: ctx.stats.clone(),
        }),
    }
}

/// Save, then acknowledge, else undo: applies `change` to the hub, saves
/// the rooms, and returns the change's result only if the save succeeded;
/// otherwise takes the change back and refuses with `failed`.
fn commit<T>(
    ctx: &mut Ctx,
    change: impl FnOnce(&mut Hub) -> Result<(T, Undo), HubError>,
) -> Result<T, Response> {
    let (done, undo) = change(ctx.hub).map_err(|e| hub_error(&e))?;
    match ctx.store.save(&ctx.hub.list()) {
        Ok(()) => Ok(done),
        Err(e) => {
            undo.apply(ctx.hub);
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
        Request::CreateRoom { name, limit } => format!("create-room '{name}' limit {limit}"),
        Request::CloseRoom { room } => format!("close-room '{room}'"),
        Request::SetLimit { room, limit } => format!("set-limit '{room}' {limit}"),
        Request::Kick { room, username } => format!("kick '{username}' from '{room}'"),
        other => format!("{other:?}"),
    }
}
