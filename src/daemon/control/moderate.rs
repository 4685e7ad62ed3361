//! The moderation commands: a room's topic, bans, mutes, operator
//! accounts and `+m`, and the server-wide bans. Each is one change to a
//! [`Moderation`] (core/moderation.rs) through [`commit`]: saved before
//! it is acknowledged, undone if the save fails, and named as a
//! [`Change`] for cluster mode. Room operators' commands from chat and
//! IRC clients run here too (the event loop passes them in), so every
//! rule has one implementation and one audit line.
//!
//! Who a new ban shuts out is removed by the chat part
//! ([`Effect::Enforce`]), which knows each connection's account, address
//! and IRC source.

use super::commit::{Ctx, Effect, Undo, commit, hub_error};
use crate::core::control::{Change, ErrorCode, Reply, Request, Response};
use crate::core::hub::HubError;
use crate::core::moderation::{self, List, Moderation, Rule, Target, Topic};
use crate::core::wire::{Event, EventKind};
use crate::daemon::shared::Shared;
use crate::daemon::store::Store;

pub fn run(ctx: &mut Ctx, req: &Request, effects: &mut Vec<Effect>) -> Result<Reply, Response> {
    let now = ctx.now_unix;
    match req {
        Request::RoomModeration { room } => {
            // Lapsed rules leave the lists within a second; never shown.
            let mut m = ctx.hub.room(room).map_err(|e| hub_error(&e))?.moderation;
            m.expire(now);
            Ok(room_reply(room, m))
        }
        Request::Bans {} => Ok(server_reply(ctx)),
        Request::RoomTopic { room, topic } => {
            moderation::check_topic(topic).map_err(invalid)?;
            let by = ctx.actor.clone();
            let m = change(ctx, room, effects, |m| {
                m.topic = (!topic.is_empty()).then(|| Topic {
                    text: topic.clone(),
                    by,
                    at: now,
                });
                Ok(())
            })?;
            let mut event = Event::system(EventKind::Topic, topic, Some(room));
            event.reason = m.topic.as_ref().map(|t| t.by.clone());
            effects.push(Effect::Topic(room.clone(), event));
            ctx.log.info(if topic.is_empty() {
                format!("room '{room}': topic cleared by {}", ctx.actor)
            } else {
                format!("room '{room}': topic set by {}: {topic}", ctx.actor)
            });
            Ok(room_reply(room, m))
        }
        Request::RoomBan {
            room,
            target,
            for_secs,
            reason,
        }
        | Request::RoomMute {
            room,
            target,
            for_secs,
            reason,
        } => {
            let list = if matches!(req, Request::RoomBan { .. }) {
                List::Bans
            } else {
                List::Mutes
            };
            let rule = new_rule(ctx, target, *for_secs, reason.as_deref(), now)?;
            let words = describe(&rule, list);
            let m = change(ctx, room, effects, |m| {
                moderation::put(m.list_mut(list), rule).map(|_| ())
            })?;
            ctx.log
                .info(format!("room '{room}': {words} by {}", ctx.actor));
            if list == List::Bans {
                effects.push(Effect::Enforce(Some(room.clone())));
            }
            Ok(room_reply(room, m))
        }
        Request::RoomUnban { room, target } | Request::RoomUnmute { room, target } => {
            let list = if matches!(req, Request::RoomUnban { .. }) {
                List::Bans
            } else {
                List::Mutes
            };
            let t = Target::parse(target).map_err(invalid)?;
            let m = change(ctx, room, effects, |m| {
                moderation::take(m.list_mut(list), &t)
                    .map(|_| ())
                    .ok_or_else(|| format!("'{t}' is not {} in room '{room}'", noun(list)))
            })?;
            let verb = if list == List::Bans {
                "unbanned"
            } else {
                "unmuted"
            };
            ctx.log
                .info(format!("room '{room}': '{t}' {verb} by {}", ctx.actor));
            Ok(room_reply(room, m))
        }
        Request::RoomOp { room, account } | Request::RoomDeop { room, account } => {
            let op = matches!(req, Request::RoomOp { .. });
            if op && ctx.accounts.hash_of(account).is_none() {
                return Err(Response::error(
                    ErrorCode::NotFound,
                    &format!("no account named '{account}' (chatctl user add)"),
                ));
            }
            let m = change(ctx, room, effects, |m| {
                if op {
                    m.add_op(account).map(|_| ())
                } else if m.remove_op(account) {
                    Ok(())
                } else {
                    Err(format!("'{account}' is no operator of room '{room}'"))
                }
            })?;
            let what = if op {
                "now operates"
            } else {
                "no longer operates"
            };
            ctx.log.info(format!(
                "'{account}' {what} room '{room}' (by {})",
                ctx.actor
            ));
            effects.push(Effect::Enforce(Some(room.clone())));
            Ok(room_reply(room, m))
        }
        Request::RoomModerated { room, on } => {
            let m = change(ctx, room, effects, |m| {
                m.moderated = *on;
                Ok(())
            })?;
            let state = if *on {
                "moderated (+m): only its operators and voiced members speak"
            } else {
                "no longer moderated (-m)"
            };
            ctx.log
                .info(format!("room '{room}' is {state} (by {})", ctx.actor));
            Ok(room_reply(room, m))
        }
        Request::Ban {
            target,
            for_secs,
            reason,
        } => {
            let rule = new_rule(ctx, target, *for_secs, reason.as_deref(), now)?;
            let words = describe(&rule, List::Bans);
            change_server(ctx, effects, |bans| moderation::put(bans, rule).map(|_| ()))?;
            ctx.log
                .info(format!("server: {words} from every room by {}", ctx.actor));
            effects.push(Effect::Enforce(None));
            Ok(server_reply(ctx))
        }
        Request::Unban { target } => {
            let t = Target::parse(target).map_err(invalid)?;
            change_server(ctx, effects, |bans| {
                moderation::take(bans, &t)
                    .map(|_| ())
                    .ok_or_else(|| format!("'{t}' is not banned server-wide"))
            })?;
            ctx.log
                .info(format!("server: '{t}' unbanned by {}", ctx.actor));
            Ok(server_reply(ctx))
        }
        _ => unreachable!("not a moderation command: {req:?}"),
    }
}

fn invalid(why: String) -> Response {
    Response::error(ErrorCode::Invalid, &why)
}

fn noun(list: List) -> &'static str {
    match list {
        List::Bans => "banned",
        List::Mutes => "muted",
    }
}

fn new_rule(
    ctx: &Ctx,
    target: &str,
    for_secs: Option<u64>,
    reason: Option<&str>,
    now: u64,
) -> Result<Rule, Response> {
    let target = Target::parse(target).map_err(invalid)?;
    let reason = reason.unwrap_or("").to_string();
    moderation::check_reason(&reason).map_err(invalid)?;
    Ok(Rule {
        target,
        reason,
        by: ctx.actor.clone(),
        at: now,
        until: for_secs.filter(|&s| s > 0).map(|s| now.saturating_add(s)),
        joins_only: false,
    })
}

/// "'yan' banned (spam) until …", for the log.
fn describe(rule: &Rule, list: List) -> String {
    let mut s = format!("'{}' {}", rule.target, noun(list));
    if !rule.reason.is_empty() {
        s.push_str(&format!(" ({})", rule.reason));
    }
    match rule.until {
        Some(t) => s.push_str(&format!(" until {}", crate::timefmt::rfc3339(t))),
        None => s.push_str(" for good"),
    }
    s
}

/// Changes a room's moderation through [`commit`]; the result.
fn change(
    ctx: &mut Ctx,
    room: &str,
    effects: &mut Vec<Effect>,
    f: impl FnOnce(&mut Moderation) -> Result<(), String>,
) -> Result<Moderation, Response> {
    let m = commit(ctx, |hub, _| {
        let old = hub.room(room)?.moderation;
        let mut m = old.clone();
        f(&mut m).map_err(HubError::Invalid)?;
        hub.set_moderation(room, m.clone())?;
        let undo = Undo::Moderation {
            room: room.to_string(),
            old,
        };
        Ok((m, undo))
    })?;
    effects.push(Effect::Changed(Change::RoomChanged {
        room: room.to_string(),
    }));
    Ok(m)
}

fn change_server(
    ctx: &mut Ctx,
    effects: &mut Vec<Effect>,
    f: impl FnOnce(&mut Vec<Rule>) -> Result<(), String>,
) -> Result<(), Response> {
    commit(ctx, |hub, _| {
        let old = hub.server_bans().to_vec();
        let mut bans = old.clone();
        f(&mut bans).map_err(HubError::Invalid)?;
        hub.set_server_bans(bans);
        Ok(((), Undo::ServerBans(old)))
    })?;
    effects.push(Effect::Changed(Change::ServerBans));
    Ok(())
}

fn room_reply(room: &str, moderation: Moderation) -> Reply {
    Reply::Moderation {
        room: Some(room.to_string()),
        moderation: Box::new(moderation),
    }
}

fn server_reply(ctx: &Ctx) -> Reply {
    let now = ctx.now_unix;
    Reply::Moderation {
        room: None,
        moderation: Box::new(Moderation {
            bans: ctx
                .hub
                .server_bans()
                .iter()
                .filter(|r| r.live(now))
                .cloned()
                .collect(),
            ..Moderation::default()
        }),
    }
}

/// Saves moderation changed outside a request (`rooms` an IRC operator
/// changed; with `prune`, the rules that lapsed, dropped first) and names
/// the changes for the cluster. A failed save is logged: what IRC set
/// stays in effect until the restart.
pub fn save_changes(
    sh: &mut Shared,
    store: &Store,
    mut rooms: Vec<String>,
    prune: bool,
) -> Vec<Effect> {
    let mut server = false;
    let now = sh.unix();
    if prune && sh.hub.next_rule_expiry().is_some_and(|t| t <= now) {
        let (lapsed, lapsed_server) = sh.hub.expire_rules(now);
        rooms.extend(
            lapsed
                .into_iter()
                .filter(|r| !rooms.contains(r))
                .collect::<Vec<_>>(),
        );
        server = lapsed_server;
    }
    if rooms.is_empty() && !server {
        return Vec::new();
    }
    if let Err(e) = store.save(&sh.hub.list(), sh.hub.server_bans()) {
        sh.log
            .error(format!("{e}; a moderation change was not saved"));
    }
    let mut effects: Vec<Effect> = rooms
        .into_iter()
        .map(|room| Effect::Changed(Change::RoomChanged { room }))
        .collect();
    if server {
        effects.push(Effect::Changed(Change::ServerBans));
    }
    effects
}
