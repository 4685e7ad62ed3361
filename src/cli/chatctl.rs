//! The command line of `chatctl` (clap): global flags and subcommands.
//! Kept in the library so the man page and completions can be generated
//! from it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

/// The control socket completions ask, when not the default one (set by
/// `chatctl --socket PATH shell`).
static COMPLETION_SOCKET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes room-name completions ask chatd at `path`.
pub fn complete_rooms_from(path: PathBuf) {
    let _ = COMPLETION_SOCKET.set(path);
}

/// Completes a room name with the rooms the running chatd has (none when
/// it cannot be reached within a second).
fn rooms(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    crate::control_client::room_names(COMPLETION_SOCKET.get().map(PathBuf::as_path))
        .into_iter()
        .filter(|name| name.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// Administer chatd: create, list and close rooms, see who is in them,
/// read the daemon's log.
#[derive(Debug, Parser)]
#[command(
    name = "chatctl",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 ok; 1 the daemon refused (its message on stderr); 2 usage error; \
                  3 the daemon could not be reached."
)]
pub struct Args {
    /// Control socket of the daemon [default: $CHATD_CONTROL, else
    /// $RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/chatd/control.sock,
    /// else ${TMPDIR:-/tmp}/chatd-$UID/control.sock; when that does not exist,
    /// /run/chatd/control.sock, where chatd.service puts it].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the daemon's JSON responses as they came, one per line.
    #[arg(long, global = true)]
    pub json: bool,

    /// With none, on a terminal: the admin shell (`chatctl shell`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rooms: create, list, members, kick, close, set-limit, allow, deny,
    /// topic, ban, mute, op, moderated.
    #[command(subcommand)]
    Room(RoomCommand),
    /// List rooms (same as `room list`).
    List,
    /// Same as `room members` (kept for existing scripts).
    #[command(hide = true)]
    Participants {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        room: String,
    },
    /// Same as `room kick` (kept for existing scripts).
    #[command(hide = true)]
    Kick {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        room: String,
        /// Username of the member.
        user: String,
    },
    /// Ban from every room (members it matches are removed).
    Ban {
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Lift a server-wide ban.
    Unban {
        /// As banned.
        target: String,
    },
    /// List the server-wide bans.
    Bans,
    /// Show the daemon's recent log entries, oldest first.
    Logs {
        /// How many entries.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 100)]
        lines: usize,
        /// Keep printing new entries as they are logged.
        #[arg(short, long)]
        follow: bool,
        /// Only entries since then: an RFC 3339 time (2026-11-24T10:00:00Z)
        /// or an age such as 30s, 10m, 2h, 1d.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only entries at least this severe: error, warn or info.
        #[arg(short, long, value_name = "LEVEL", value_parser = ["error", "warn", "info"])]
        priority: Option<String>,
    },
    /// Show the daemon's version, pid, uptime, addresses, paths and counts.
    Status,
    /// Show counters: uptime, clients, rooms, messages, bytes, drops.
    Stats,
    /// Register, remove and list accounts, or change a password.
    #[command(subcommand)]
    User(UserCommand),
    /// An interactive admin prompt with history and completion: chatctl's
    /// commands, and the prototype's menu (/CRIAR, /LISTAR, /PARTICIPANTES,
    /// /ENCERRAR, /LOGS, /SAIR). What `chatctl` alone opens on a terminal.
    Shell,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register an account. The password is read from the terminal (asked
    /// twice, not echoed) or, from a pipe, as the first line of stdin;
    /// never from the command line.
    Add {
        /// Username (the name the account joins with).
        name: String,
    },
    /// Remove an account.
    Del {
        /// Username.
        name: String,
    },
    /// List accounts by name.
    List,
    /// Change an account's password (read like `user add`'s).
    Passwd {
        /// Username.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room.
    Create {
        /// Room name (1-64 characters).
        name: String,
        /// Most members at once (at least 1).
        #[arg(long, value_name = "N", value_parser = crate::cli::chatd::parse_limit)]
        limit: usize,
        /// A private room: only logged-in users on its allow-list (`room
        /// allow`), and holders of its key (--key), may enter.
        #[arg(long)]
        private: bool,
        /// Give the private room a key (a password), read like a user's
        /// password: from the terminal, or the first line of stdin.
        #[arg(long, requires = "private")]
        key: bool,
        /// Keep the room's last N events (messages, joins, leaves; at most
        /// 1000) in the history file and show them to joiners that ask
        /// (the `chat` client does, and IRC clients on JOIN and with
        /// CHATHISTORY). Without it: chatd's `--history` (0 unless set).
        #[arg(long, value_name = "N")]
        history: Option<usize>,
        /// Forget the room's kept events older than this: an age such as
        /// 30d, 12h or 90m. Without it: chatd's `--history-age`.
        #[arg(long, value_name = "AGE", value_parser = crate::cli::chatd::parse_age)]
        history_age: Option<std::time::Duration>,
    },
    /// Let a (logged-in) user into a private room.
    Allow {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// Username.
        user: String,
    },
    /// Take a user off a private room's allow-list; a member by that name
    /// inside is removed.
    Deny {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// Username.
        user: String,
    },
    /// List rooms in creation order.
    List,
    /// List the members of a room, in join order.
    #[command(visible_alias = "participants")]
    Members {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
    },
    /// Remove a member from a room (it is told, then disconnected).
    Kick {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// Username of the member.
        user: String,
        /// Why (shown to the member and the room).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a room's topic, or set it ("" clears it).
    Topic {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// The new topic.
        text: Option<String>,
    },
    /// Ban from a room (members it matches are removed).
    Ban {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Lift a room's ban.
    Unban {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// As banned.
        target: String,
    },
    /// Show a room's moderation: topic, operators, bans, mutes, +m.
    Bans {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
    },
    /// Mute in a room: may read, not speak.
    Mute {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Lift a mute.
    Unmute {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// As muted.
        target: String,
    },
    /// Make an account an operator of a room: it may kick, ban, mute and
    /// set the topic from IRC, and is never flood-limited there.
    Op {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// The account (chatctl user add).
        account: String,
    },
    /// Take an account's operator rights in a room away.
    Deop {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        account: String,
    },
    /// Moderate a room (on: only operators and voiced members speak) or
    /// stop (off).
    Moderated {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Close a room: its members are told and disconnected.
    Close {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
    },
    /// Show a room's kept events (messages, joins, leaves) from the
    /// history file, oldest first.
    History {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// How many of the newest.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 50)]
        lines: usize,
        /// Only events since then: an RFC 3339 time (2026-11-24T10:00:00Z)
        /// or an age such as 30s, 10m, 2h, 1d.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// Delete a room's kept events, from the history file and from
    /// memory (on this node): all of them, or those before a time.
    Purge {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// Only events before then: an RFC 3339 time or an age such as
        /// 30d (events older than that).
        #[arg(long, value_name = "WHEN")]
        before: Option<String>,
    },
    /// Change a room's limit (members above it stay; new joins obey it).
    SetLimit {
        /// Room name.
        #[arg(add = ArgValueCompleter::new(rooms))]
        name: String,
        /// New limit (at least 1).
        #[arg(value_parser = crate::cli::chatd::parse_limit)]
        limit: usize,
    },
}

/// Whom a ban or mute is for, how long, and why.
#[derive(Debug, clap::Args)]
pub struct RuleArgs {
    /// Whom: a name (and its look-alikes), account:NAME, an address or
    /// CIDR range (203.0.113.0/24), or an IRC mask (nick!user@host).
    pub target: String,
    /// For a while: an age such as 10m, 1h, 7d (for good without it).
    #[arg(long = "for", value_name = "AGE", value_parser = crate::cli::chatd::parse_age)]
    pub for_: Option<std::time::Duration>,
    /// Why (shown to whom it keeps out or quiet).
    #[arg(long)]
    pub reason: Option<String>,
}
