//! The IRC door (issue #24): what an IRC connection's messages mean.
//! The codec (core/codec.rs) hands over parsed messages; this file
//! registers the client (CAP, PASS, NICK, USER, then 001–005, LUSERS and
//! the MOTD), and carries out what changes state: JOIN and PART (many
//! rooms per connection), PRIVMSG and NOTICE (to rooms and to people),
//! NICK, AWAY, QUIT, PING. Queries that only read (NAMES, LIST, WHO,
//! WHOIS, MODE, TOPIC, ...) are in irc_query.rs.
//!
//! The room model maps, it does not bend: a room is a channel
//! (core/ircmap.rs), its limit `+l` (471 when full), a private room `+i`
//! (473) with its key `+k` (475), a name is held server-wide by one
//! person across both protocols (core/people.rs), and the same door rules
//! apply (join rate, sendq, stall budget, the handshake deadline as the
//! registration deadline).

use super::Chat;
use crate::core::hub::ConnId;
use crate::core::irc::{Message, ParseError};
use crate::core::ircmap::{self, IRC_HOST};
use crate::core::session::Input;
use crate::core::wire::{self, Departed, Event, EventKind};
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// Rooms one IRC connection may sit in at once (CHANLIMIT).
pub const CHAN_LIMIT: usize = 20;
/// Longest away message kept (AWAYLEN).
pub const AWAY_LEN: usize = 200;
/// Longest user name kept from USER (USERLEN).
pub const USER_LEN: usize = 16;
/// Most targets of one PRIVMSG or NOTICE (TARGMAX).
pub const MAX_TARGETS: usize = 4;
/// Rooms made by joining them, at most, server-wide.
pub const MAX_TEMPORARY_ROOMS: usize = 1000;

/// The IRCv3 capabilities chatd offers, each a bit of [`IrcClient::caps`].
pub const CAPS: &[(&str, u16)] = &[
    ("account-tag", 1),
    ("away-notify", 2),
    ("cap-notify", 4),
    ("echo-message", 8),
    ("message-tags", 16),
    ("multi-prefix", 32),
    ("server-time", 64),
    ("userhost-in-names", 128),
    ("sasl", 256),
    ("batch", 512),
    ("labeled-response", 1024),
    ("draft/chathistory", 2048),
];

pub fn cap_bit(name: &str) -> Option<u16> {
    CAPS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The capabilities that shape a room line's tags, as three bits:
/// server-time (1), account-tag (2), message-tags (4). Recipients with
/// the same set get the same bytes (and, for rings, read the same lane).
pub fn tag_set(caps: u16) -> usize {
    static BITS: std::sync::OnceLock<[u16; 3]> = std::sync::OnceLock::new();
    let bits = BITS.get_or_init(|| {
        ["server-time", "account-tag", "message-tags"].map(|n| cap_bit(n).unwrap_or(0))
    });
    usize::from(caps & bits[0] != 0)
        | usize::from(caps & bits[1] != 0) << 1
        | usize::from(caps & bits[2] != 0) << 2
}

/// One room event's IRC lines, rendered at most once per tag set
/// ([`Chat::irc_lines`]).
pub(super) struct IrcLines {
    source: String,
    account: Option<String>,
    time: String,
    notice: bool,
    lines: [Option<Vec<u8>>; 8],
}

impl IrcLines {
    /// The line for recipients with tag set `set` (empty: not shown on IRC).
    pub(super) fn line(&mut self, event: &Event, set: usize) -> &[u8] {
        // account-tag shows only when the sender has an account.
        let flavour = if self.account.is_some() {
            set
        } else {
            set & !2
        };
        let (source, account, time, notice) =
            (&self.source, &self.account, &self.time, self.notice);
        self.lines[flavour].get_or_insert_with(|| {
            let tags = ircmap::Tags {
                time: (flavour & 1 != 0).then(|| time.clone()),
                account: account.clone().filter(|_| flavour & 2 != 0),
                message_tags: flavour & 4 != 0,
            };
            ircmap::room_event(event, source, &tags, notice)
        })
    }
}

/// One IRC connection's state beside its session.
#[derive(Debug, Default)]
pub struct IrcClient {
    /// The nick it holds (also in the hub's people), once NICK succeeded.
    pub nick: Option<String>,
    /// USER's user name (sanitised) and real name.
    pub user: Option<String>,
    pub realname: String,
    /// PASS: the account's password, checked at registration.
    pub pass: Option<String>,
    /// CAP LS or REQ before registration holds it until CAP END.
    pub cap_negotiating: bool,
    pub caps: u16,
    pub away: Option<String>,
    pub registered: bool,
    /// The account it logged in to, if any.
    pub account: Option<String>,
    /// CAP LS 302 (capability values are shown).
    pub cap_302: bool,
    /// A SASL exchange under way.
    pub sasl: Option<super::irc_sasl::Sasl>,
    /// User modes: `+i` (hidden from WHO masks), `+w` (hears WALLOPS),
    /// and whether it is an IRC operator (OPER, `--irc-oper`).
    pub invisible: bool,
    pub wallops: bool,
    pub oper: bool,
    /// When it registered, and last spoke (Unix seconds), for WHOIS and
    /// WHOX's idle time.
    pub signon: u64,
    pub spoke_at: u64,
    /// Cluster mode: the nick is claimed in the shared state too (freed
    /// there when the connection quits).
    pub claimed: bool,
    /// Cluster mode: what waits for the cluster's verdict on a nick.
    pub claiming: Option<Claim>,
    /// Cluster mode: the channel whose JOIN waits for the cluster's
    /// verdict, and a JOIN of the channels listed after it.
    pub joining: Option<String>,
    pub join_rest: Option<Message>,
}

/// A nick claim under way in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Registration, with the account it logged in to.
    Register(Option<String>),
    /// A registered user's change of nick, from `old`.
    Change { old: String },
}

impl IrcClient {
    pub fn has(&self, cap: &str) -> bool {
        cap_bit(cap).is_some_and(|b| self.caps & b != 0)
    }

    /// The nick replies are addressed to (`*` before NICK).
    pub fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }
}

impl Chat {
    // -- helpers ---------------------------------------------------------------

    pub(super) fn irc(&self, id: ConnId) -> Option<&IrcClient> {
        self.conns.get(&id)?.irc.as_deref()
    }

    pub(super) fn irc_mut(&mut self, id: ConnId) -> Option<&mut IrcClient> {
        self.conns.get_mut(&id)?.irc.as_deref_mut()
    }

    /// One line (or several) to one IRC connection.
    /// (While a labeled command of `id` runs, its lines are kept for the
    /// label: [`Chat::labeled`].)
    pub(super) fn irc_send(&mut self, sh: &mut Shared, id: ConnId, line: &[u8]) {
        if let Some((to, kept)) = &mut self.capture
            && *to == id
        {
            kept.extend_from_slice(line);
            return;
        }
        self.feed(sh, id, Input::Deliver(line));
    }

    /// A line to `id` that is not an answer to what it is doing (a
    /// message it sent itself): never part of a labeled response.
    pub(super) fn irc_deliver(&mut self, sh: &mut Shared, id: ConnId, line: &[u8]) {
        self.feed(sh, id, Input::Deliver(line));
    }

    /// labeled-response: the lines a labeled command produced for its
    /// sender, labeled: none is `ACK`, one carries the label, more are a
    /// `labeled-response` batch.
    fn labeled(&mut self, sh: &mut Shared, id: ConnId, label: &str, kept: &[u8]) {
        let server = sh.cfg.irc_server_name.clone();
        let tag = |m: &mut Message, key: &str, value: &str| {
            m.tags.insert(0, (key.to_string(), Some(value.to_string())));
        };
        let lines: Vec<Message> = kept
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| crate::core::irc::parse(l).ok())
            .collect();
        let mut out = Vec::new();
        match lines.len() {
            0 => {
                let mut ack = Message::new(Some(&server), "ACK", &[]);
                tag(&mut ack, "label", label);
                out.extend_from_slice(&ack.encode());
            }
            1 => {
                let mut m = lines.into_iter().next().expect("one");
                tag(&mut m, "label", label);
                out.extend_from_slice(&m.encode());
            }
            _ => {
                self.batches += 1;
                let reference = format!("L{}", self.batches);
                let mut open = Message::new(
                    Some(&server),
                    "BATCH",
                    &[&format!("+{reference}"), "labeled-response"],
                );
                tag(&mut open, "label", label);
                out.extend_from_slice(&open.encode());
                for mut m in lines {
                    // A line of a batch inside (chathistory) stays in it.
                    if !m.tags.iter().any(|(k, _)| k == "batch") {
                        tag(&mut m, "batch", &reference);
                    }
                    out.extend_from_slice(&m.encode());
                }
                let close = Message::new(Some(&server), "BATCH", &[&format!("-{reference}")]);
                out.extend_from_slice(&close.encode());
            }
        }
        self.feed(sh, id, Input::Deliver(&out));
    }

    /// `:server <command> <params>`.
    pub(super) fn irc_server(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        command: &str,
        params: &[&str],
    ) {
        let line = Message::new(Some(&sh.cfg.irc_server_name), command, params).encode();
        self.irc_send(sh, id, &line);
    }

    /// A numeric reply: `:server <code> <nick> <params>`.
    pub(super) fn numeric(&mut self, sh: &mut Shared, id: ConnId, code: &str, params: &[&str]) {
        let Some(c) = self.irc(id) else {
            return;
        };
        let nick = ircmap::nick_of(c.target());
        let mut all = vec![nick.as_str()];
        all.extend_from_slice(params);
        let line = Message::new(Some(&sh.cfg.irc_server_name), code, &all).encode();
        self.irc_send(sh, id, &line);
    }

    /// The source of a person's lines: an IRC user's `nick!user@irc`,
    /// anyone else's `name!name@chat`.
    pub(super) fn source_of(&self, sh: &Shared, name: &str) -> String {
        if let Some((conn, nick)) = sh.hub.people().nick_holder(name)
            && let Some(c) = self.irc(conn)
        {
            return ircmap::source(nick, c.user.as_deref().unwrap_or("user"), IRC_HOST);
        }
        let nick = ircmap::nick_of(name);
        ircmap::source(name, &nick, ircmap::CHAT_HOST)
    }

    /// The source of `id`'s own lines.
    pub(super) fn my_source(&self, sh: &Shared, id: ConnId) -> String {
        let nick = self
            .irc(id)
            .map(|c| c.target().to_string())
            .unwrap_or_default();
        self.source_of(sh, &nick)
    }

    /// The tags for a line to `id` stamped `ts`, from `sender_account`.
    pub(super) fn tags_for(&self, id: ConnId, ts: &str, account: Option<&str>) -> ircmap::Tags {
        let Some(c) = self.irc(id) else {
            return ircmap::Tags::default();
        };
        ircmap::Tags {
            time: c.has("server-time").then(|| ircmap::server_time(ts)),
            account: account.filter(|_| c.has("account-tag")).map(str::to_string),
            message_tags: c.has("message-tags"),
        }
    }

    /// A room event's IRC lines, one per set of tags, rendered when first
    /// asked for.
    pub(super) fn irc_lines(&self, sh: &Shared, event: &Event, notice: bool) -> IrcLines {
        let sender = sh.hub.people().nick_holder(&event.username).map(|(c, _)| c);
        let source = match (&event.kind, &event.departed) {
            (EventKind::Leave, Departed::Kicked(_)) => sh.cfg.irc_server_name.clone(),
            _ => self.source_of(sh, &event.username),
        };
        let account = sender.and_then(|c| self.irc(c)?.account.clone());
        let time = match event.ts.as_deref() {
            Some(ts) => ircmap::server_time(ts),
            None => sh.irc_ts(),
        };
        IrcLines {
            source,
            account,
            time,
            notice,
            lines: Default::default(),
        }
    }

    /// A room event to IRC recipients, rendered once per set of tags they
    /// asked for (at most 8: server-time, account-tag, message-tags), then
    /// appended as `deliver_line` appends (the hot path: one lookup per
    /// recipient, back-pressure accounting only when it crossed the mark).
    /// A recipient running a labeled command keeps its line for the label.
    pub(super) fn deliver_irc(
        &mut self,
        sh: &mut Shared,
        to: &[ConnId],
        event: &Event,
        notice: bool,
    ) {
        let mut lines = self.irc_lines(sh, event, notice);
        let capturing = self.capture.as_ref().map(|(c, _)| *c);
        let now = sh.now;
        let mut delivered = 0;
        for &r in to {
            let Some(c) = self.conns.get_mut(&r) else {
                continue;
            };
            let Some(irc) = c.irc.as_deref() else {
                continue;
            };
            let line = lines.line(event, tag_set(irc.caps));
            if line.is_empty() {
                continue;
            }
            delivered += 1;
            if capturing == Some(r)
                && let Some((_, kept)) = &mut self.capture
            {
                kept.extend_from_slice(line);
                continue;
            }
            let taken = Chat::own_line(&mut self.rings, c, |c| c.take_line(now, line));
            self.appended(sh, r, taken);
        }
        sh.counters.deliveries += delivered;
    }

    /// The account a person is logged in to, if it is an IRC user who did.
    pub(super) fn account_of(&self, sh: &Shared, name: &str) -> Option<String> {
        let (conn, _) = sh.hub.people().nick_holder(name)?;
        self.irc(conn)?.account.clone()
    }

    // -- dispatch ----------------------------------------------------------------

    /// One IRC line from `id`, parsed (or why not).
    pub(super) fn on_irc(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        parsed: Result<Message, ParseError>,
    ) {
        let msg = match parsed {
            Ok(msg) => msg,
            Err(ParseError::TooLong) => {
                return self.numeric(sh, id, "417", &["Input line was too long"]);
            }
            Err(ParseError::NotUtf8) => {
                let server = sh.cfg.irc_server_name.clone();
                let line = Message::new(
                    Some(&server),
                    "FAIL",
                    &[
                        "*",
                        "INVALID_UTF8",
                        "Your line was not UTF-8; chatd speaks UTF-8 only",
                    ],
                )
                .encode();
                return self.irc_send(sh, id, &line);
            }
            Err(ParseError::TooManyParams) => {
                return self.numeric(sh, id, "400", &["*", "Too many parameters"]);
            }
            Err(ParseError::Empty | ParseError::NoCommand) => {
                return self.numeric(sh, id, "421", &["*", "Unknown command"]);
            }
        };
        let label = msg
            .tags
            .iter()
            .find(|(k, _)| k == "label")
            .and_then(|(_, v)| v.clone())
            .filter(|_| {
                self.irc(id)
                    .is_some_and(|c| c.has("labeled-response") && c.has("batch"))
            });
        let Some(label) = label else {
            return self.irc_command(sh, id, msg);
        };
        let outer = self.capture.replace((id, Vec::new()));
        self.irc_command(sh, id, msg);
        let (_, kept) = std::mem::replace(&mut self.capture, outer).expect("set above");
        let parked = self.conns.get(&id).is_none_or(|c| c.parked);
        if parked {
            // Tried again in a later pass, label and all.
            self.feed(sh, id, Input::Deliver(&kept));
            return;
        }
        self.labeled(sh, id, &label, &kept);
    }

    /// A parsed IRC command.
    fn irc_command(&mut self, sh: &mut Shared, id: ConnId, msg: Message) {
        let registered = self.irc(id).is_some_and(|c| c.registered);
        let cmd = msg.command.as_str();
        match cmd {
            "CAP" => self.on_cap(sh, id, &msg),
            "AUTHENTICATE" => self.on_authenticate(sh, id, &msg),
            "PASS" | "USER" if registered => {
                self.numeric(sh, id, "462", &["You may not reregister"]);
            }
            "PASS" => {
                if let Some(p) = msg.param(0)
                    && let Some(c) = self.irc_mut(id)
                {
                    c.pass = Some(p.to_string());
                } else {
                    self.numeric(sh, id, "461", &["PASS", "Not enough parameters"]);
                }
            }
            "NICK" => self.on_nick(sh, id, &msg),
            "USER" => self.on_user(sh, id, &msg),
            "PING" => match msg.param(0) {
                Some(token) => {
                    let server = sh.cfg.irc_server_name.clone();
                    self.irc_server(sh, id, "PONG", &[&server, token]);
                }
                None => self.numeric(sh, id, "409", &["No origin specified"]),
            },
            "PONG" => {}
            "QUIT" => self.on_quit(sh, id, msg.param(0).unwrap_or("")),
            _ if !registered => self.numeric(sh, id, "451", &["You have not registered"]),
            "JOIN" => self.on_join(sh, id, &msg),
            "PART" => self.on_part(sh, id, &msg),
            "PRIVMSG" | "NOTICE" => self.on_privmsg(sh, id, &msg, cmd == "NOTICE"),
            "TAGMSG" => self.on_tagmsg(sh, id, &msg),
            "CHATHISTORY" => self.on_chathistory(sh, id, &msg),
            "MONITOR" => self.on_monitor(sh, id, &msg),
            // One server, no links to show.
            "LINKS" => self.numeric(sh, id, "365", &["*", "End of /LINKS list"]),
            "AWAY" => self.on_away(sh, id, msg.param(0)),
            "MODE" | "TOPIC" | "INVITE" | "KICK" | "OPER" | "KILL" | "WALLOPS" => {
                self.on_operator(sh, id, &msg)
            }
            _ => self.on_query(sh, id, &msg),
        }
    }

    /// `ERROR :Closing Link: ...`, then close (the rooms see QUIT).
    pub(super) fn irc_close(&mut self, sh: &mut Shared, id: ConnId, why: &str) {
        let nick = self.irc(id).map_or("*".into(), |c| c.target().to_string());
        let line =
            Message::new(None, "ERROR", &[&format!("Closing Link: {nick} ({why})")]).encode();
        self.quit_rooms(sh, id, why);
        self.feed(sh, id, Input::Finish(Some(&line)));
    }

    fn on_quit(&mut self, sh: &mut Shared, id: ConnId, reason: &str) {
        let why = if reason.is_empty() {
            "Quit".to_string()
        } else {
            format!("Quit: {}", reason.chars().take(300).collect::<String>())
        };
        self.irc_close(sh, id, &why);
    }

    /// An IRC connection ends: it leaves every room, each IRC member it
    /// shared one with sees QUIT once, the prototype's members see it
    /// leave each room; its nick is free.
    pub(super) fn quit_rooms(&mut self, sh: &mut Shared, id: ConnId, why: &str) {
        let departures = sh.hub.leave_all(id);
        let mut told: Vec<ConnId> = Vec::new();
        for mut dep in departures {
            let line = format!(
                "leave: '{}' left room '{}' ({}): {why}",
                dep.member.username, dep.room, dep.member.address
            );
            self.id_log(sh, id, Level::Info, line);
            dep.notice.event.departed = Departed::Quit(why.to_string());
            let (irc, prototype): (Vec<ConnId>, Vec<ConnId>) =
                dep.notice.to.iter().partition(|&&m| self.irc(m).is_some());
            sh.remember(&dep.notice);
            let bytes = sh.encode(&dep.notice.event);
            self.deliver_line(sh, &prototype, &bytes);
            let fresh: Vec<ConnId> = irc.into_iter().filter(|m| !told.contains(m)).collect();
            self.deliver_irc(sh, &fresh, &dep.notice.event, false);
            told.extend(fresh);
            if self.clustered {
                self.out.push(super::ChatOut::Left(dep, why.to_string()));
            }
        }
        let gone = sh.hub.people().nick(id).map(str::to_string);
        if gone.is_some() {
            self.remember_nick(sh, id);
        }
        sh.hub.release_nick(id);
        if let Some(c) = self.irc_mut(id)
            && std::mem::take(&mut c.claimed)
            && let Some(nick) = c.nick.clone()
        {
            self.out.push(super::ChatOut::FreeNick(nick));
        }
        let registered = self.irc(id).is_some_and(|c| c.registered);
        if let Some(nick) = gone
            && registered
        {
            self.monitor_notify(sh, &nick, false);
        }
    }

    /// A room event the chat part hands to one IRC connection for itself:
    /// a kick or a closed room is a KICK from the server (the connection
    /// stays); an error is `ERROR` and the connection closes. Returns
    /// false for an event that closes it.
    pub(super) fn irc_personal(&mut self, sh: &mut Shared, id: ConnId, event: &Event) -> bool {
        let nick = self
            .irc(id)
            .map_or("*".into(), |c| ircmap::nick_of(c.target()));
        let server = sh.cfg.irc_server_name.clone();
        match event.kind {
            EventKind::Kicked | EventKind::Closed => {
                let channel = event.room.as_deref().and_then(ircmap::channel_of);
                if let Some(channel) = channel {
                    let why = match (event.kind, event.reason.as_deref()) {
                        (EventKind::Closed, _) => "the room was closed",
                        (_, Some(reason)) if !reason.is_empty() => reason,
                        _ => "removed by an administrator",
                    };
                    let line =
                        Message::new(Some(&server), "KICK", &[&channel, &nick, why]).encode();
                    self.irc_send(sh, id, &line);
                }
                true
            }
            EventKind::Error if self.irc(id).is_some_and(|c| c.joining.is_some()) => {
                // The cluster could not decide a JOIN: that JOIN fails,
                // the connection stays.
                let reason = event.reason.clone().unwrap_or_default();
                self.irc_join_refused(sh, id, wire::ErrorCode::Unavailable, &reason, "");
                true
            }
            _ => false,
        }
    }
}
