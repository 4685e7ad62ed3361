//! The one path every state change takes: [`commit`] changes the hub or
//! the accounts, saves the file the change lives in, and acknowledges
//! only if the save succeeded, else takes the change back ([`Undo`]).
//! Here too: what a command is handed ([`Ctx`]) and what it asks of the
//! event loop ([`Effect`]). Shared by commands.rs and moderate.rs.

use crate::core::control::{Change, ErrorCode, Level, Response, Stats, StatusView};
use crate::core::hub::{Access, Closure, ConnId, Delivery, Hub, HubError};
use crate::core::moderation::{Moderation, Rule};
use crate::core::wire::Event;
use crate::daemon::accounts::Accounts;
use crate::daemon::logbook::Logbook;
use crate::daemon::store::Store;

/// What a command needs: the state it may change, where that state is
/// saved, the log, and the counters `stats` reports.
pub struct Ctx<'a> {
    pub hub: &'a mut Hub,
    pub accounts: &'a mut Accounts,
    pub store: &'a Store,
    pub log: &'a mut Logbook,
    pub stats: Stats,
    pub status: StatusView,
    /// The history file, when chatd has one.
    pub history: Option<&'a mut crate::daemon::history::History>,
    /// `--history`: what a room made without its own length keeps.
    pub history_default: usize,
    /// `--password-min`: the shortest password (and room key) accepted.
    pub password_min: usize,
    /// Now, in Unix seconds (when a ban was set, when it lapses).
    pub now_unix: u64,
    /// Who a rule names as its setter: `admin` on the control socket, a
    /// room operator's name.
    pub actor: String,
}

impl<'a> Ctx<'a> {
    /// The context of a request run for `actor` (`admin` on the control
    /// socket, a room operator's name), from chatd's shared state.
    pub fn new(
        sh: &'a mut crate::daemon::shared::Shared,
        store: &'a Store,
        stats: Stats,
        status: StatusView,
        actor: &str,
    ) -> Ctx<'a> {
        let now_unix = sh.unix();
        Ctx {
            hub: &mut sh.hub,
            accounts: &mut sh.accounts,
            store,
            log: &mut sh.log,
            stats,
            status,
            history: sh.history.as_mut(),
            history_default: sh.cfg.history_default,
            password_min: sh.cfg.password_min,
            now_unix,
            actor: actor.to_string(),
        }
    }
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
    /// Shared state changed: cluster mode tells the other nodes.
    Changed(Change),
    /// A room's topic changed: its members who follow topics are told.
    Topic(String, Event),
    /// A room's limit changed: its members who follow it are told.
    Facts(String),
    /// Bans or operators changed in a room (None: the server's bans):
    /// members now banned are removed, operators get their rights.
    Enforce(Option<String>),
}

/// How to take a change back when it could not be saved.
pub(super) enum Undo {
    Create { name: String },
    Limit { room: String, limit: usize },
    Close(Box<Closure>),
    UserAdded { name: String },
    UserRemoved { name: String, hash: String },
    UserHash { name: String, hash: String },
    Access { room: String, access: Access },
    Moderation { room: String, old: Moderation },
    ServerBans(Vec<Rule>),
}

impl Undo {
    /// Which file the change lives in.
    fn file(&self) -> Saved {
        match self {
            Undo::Create { .. }
            | Undo::Limit { .. }
            | Undo::Close(_)
            | Undo::Access { .. }
            | Undo::Moderation { .. }
            | Undo::ServerBans(_) => Saved::Rooms,
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
            Undo::Moderation { room, old } => {
                let _ = hub.set_moderation(&room, old);
            }
            Undo::ServerBans(old) => {
                hub.set_server_bans(old);
            }
        }
    }
}

enum Saved {
    Rooms,
    Users,
}

/// Save, then acknowledge, else undo: applies `change` to the hub, saves
/// the rooms, and returns the change's result only if the save succeeded;
/// otherwise takes the change back and refuses with `failed`.
pub(super) fn commit<T>(
    ctx: &mut Ctx,
    change: impl FnOnce(&mut Hub, &mut Accounts) -> Result<(T, Undo), HubError>,
) -> Result<T, Response> {
    let (done, undo) = change(ctx.hub, ctx.accounts).map_err(|e| hub_error(&e))?;
    let saved = match undo.file() {
        Saved::Rooms => ctx.store.save(&ctx.hub.list(), ctx.hub.server_bans()),
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

pub(super) fn hub_error(e: &HubError) -> Response {
    let code = match e {
        HubError::NotFound(_) => ErrorCode::NotFound,
        HubError::Exists(_) => ErrorCode::Exists,
        HubError::Invalid(_) => ErrorCode::Invalid,
    };
    Response::error(code, e.message())
}
