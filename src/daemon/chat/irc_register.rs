//! The IRC door's registration: CAP (LS 302, REQ, LIST, END), PASS, NICK
//! (claimed server-wide; a change after registration is NICK for IRC
//! peers and a leave and a join for the prototype's), USER, the check of
//! the nick's account (PASS, SASL, or the server password with
//! `--irc-password-file`), then 001–005 with ISUPPORT, LUSERS and the MOTD.

use super::irc::{AWAY_LEN, CAPS, CHAN_LIMIT, Claim, MAX_TARGETS, USER_LEN, cap_bit};
use subtle::ConstantTimeEq;

use super::{Chat, ChatOut, Parked};
use crate::core::hub::{ConnId, RoomId};
use crate::core::irc::Message;
use crate::core::ircmap::{self, IRC_HOST};
use crate::core::names;
use crate::core::session::Input;
use crate::core::wire::{self, Event, EventKind};
use crate::daemon::accounts::Verdict;
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// A user name from USER as the user part of a source: letters, digits,
/// `.`, `_`, `-`, at most [`USER_LEN`].
fn clean_user(raw: &str) -> String {
    let s: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(USER_LEN)
        .collect();
    if s.is_empty() { "user".into() } else { s }
}

impl Chat {
    // -- registration ------------------------------------------------------------

    pub(super) fn on_cap(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let sub = msg.param(0).unwrap_or("").to_ascii_uppercase();
        let Some(c) = self.irc_mut(id) else {
            return;
        };
        let target = c.target().to_string();
        match sub.as_str() {
            "LS" => {
                if !c.registered {
                    c.cap_negotiating = true;
                }
                if msg
                    .param(1)
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_some_and(|v| v >= 302)
                {
                    c.cap_302 = true;
                }
                let with_values = c.cap_302;
                let list: Vec<String> = CAPS
                    .iter()
                    .map(|(n, _)| match *n {
                        "sasl" if with_values => {
                            format!("sasl={}", super::irc_sasl::mechanisms(sh))
                        }
                        n => n.to_string(),
                    })
                    .collect();
                self.irc_server(sh, id, "CAP", &[&target, "LS", &list.join(" ")]);
            }
            "LIST" => {
                let on: Vec<&str> = CAPS
                    .iter()
                    .filter(|(_, b)| c.caps & b != 0)
                    .map(|(n, _)| *n)
                    .collect();
                let on = on.join(" ");
                self.irc_server(sh, id, "CAP", &[&target, "LIST", &on]);
            }
            "REQ" => {
                if !c.registered {
                    c.cap_negotiating = true;
                }
                let asked = msg.param(1).unwrap_or("");
                let mut caps = c.caps;
                let mut ok = !asked.trim().is_empty();
                for word in asked.split(' ').filter(|w| !w.is_empty()) {
                    let (off, name) = match word.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, word),
                    };
                    match cap_bit(name) {
                        Some(b) if off => caps &= !b,
                        Some(b) => caps |= b,
                        None => ok = false,
                    }
                }
                let verdict = if ok {
                    let retagged = super::irc::tag_set(c.caps) != super::irc::tag_set(caps);
                    c.caps = caps;
                    if retagged {
                        // Its room lines now carry other tags: another lane.
                        self.leave_ring(id, true);
                    }
                    "ACK"
                } else {
                    "NAK"
                };
                self.irc_server(sh, id, "CAP", &[&target, verdict, asked]);
            }
            "END" => {
                c.cap_negotiating = false;
                self.try_register(sh, id, msg);
            }
            _ => {
                let sub = msg.param(0).unwrap_or("*").to_string();
                self.numeric(sh, id, "410", &[&sub, "Invalid CAP command"]);
            }
        }
    }

    pub(super) fn on_user(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        if msg.params.len() < 4 || msg.params[0].is_empty() || msg.params[3].is_empty() {
            return self.numeric(sh, id, "461", &["USER", "Not enough parameters"]);
        }
        if let Some(c) = self.irc_mut(id) {
            c.user = Some(clean_user(&msg.params[0]));
            c.realname = msg.params[3].clone();
        }
        self.try_register(sh, id, msg);
    }

    pub(super) fn on_nick(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(wanted) = msg.param(0).filter(|n| !n.is_empty()) else {
            return self.numeric(sh, id, "431", &["No nickname given"]);
        };
        let wanted = wanted.to_string();
        if let Err(why) = ircmap::nick_syntax(&wanted)
            .map_err(str::to_string)
            .and_then(|()| names::check_username(&wanted))
        {
            return self.numeric(
                sh,
                id,
                "432",
                &[&wanted, &format!("Erroneous nickname: {why}")],
            );
        }
        let Some(c) = self.irc(id) else {
            return;
        };
        let (old, registered, account) = (c.nick.clone(), c.registered, c.account.clone());
        if old.as_deref() == Some(wanted.as_str()) {
            return;
        }
        if registered {
            // A registered name needs its password: only the account's
            // own name may be taken after registration.
            let owner = sh.accounts.owner_of(&wanted).map(str::to_string);
            let mine = owner.is_some() && owner == account;
            if !mine && (owner.is_some() || sh.cfg.require_login) {
                let why = "Nickname is a registered account: reconnect with its password";
                return self.numeric(sh, id, "433", &[&wanted, why]);
            }
        }
        if registered && self.clustered {
            return self.change_nick_in_cluster(sh, id, old.unwrap_or_default(), wanted);
        }
        let rooms = match sh.hub.claim_nick(id, &wanted) {
            Ok(rooms) => rooms,
            Err(_) => {
                return self.numeric(sh, id, "433", &[&wanted, "Nickname is already in use"]);
            }
        };
        self.remember_nick(sh, id);
        if let Some(c) = self.irc_mut(id) {
            c.nick = Some(wanted.clone());
        }
        if !registered {
            return self.try_register(sh, id, msg);
        }
        let old = old.unwrap_or_default();
        self.renamed(sh, id, &old, &wanted, &rooms);
    }

    /// A registered user changed its nick: itself and the IRC members it
    /// shares a room with see NICK once; the prototype's members of those
    /// rooms see it leave and come back under the new name.
    pub(super) fn renamed(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        old: &str,
        new: &str,
        rooms: &[RoomId],
    ) {
        let user = self
            .irc(id)
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let line = Message::new(
            Some(&ircmap::source(old, &user, IRC_HOST)),
            "NICK",
            &[&ircmap::nick_of(new)],
        )
        .encode();
        let mut told = vec![id];
        self.irc_send(sh, id, &line);
        for &room in rooms {
            let members: Vec<ConnId> = sh.hub.member_conns(room).filter(|&m| m != id).collect();
            let Some(name) = sh.hub.room_name(room).map(str::to_string) else {
                continue;
            };
            let mut prototype = Vec::new();
            for m in members {
                if self.irc(m).is_some() {
                    if !told.contains(&m) {
                        told.push(m);
                        self.irc_send(sh, m, &line);
                    }
                } else {
                    prototype.push(m);
                }
            }
            let leave = Event {
                kind: EventKind::Leave,
                username: old.to_string(),
                message: wire::LEFT.to_string(),
                room: Some(name.clone()),
                ..Event::default()
            };
            let join = Event {
                kind: EventKind::Join,
                username: new.to_string(),
                message: wire::JOINED.to_string(),
                room: Some(name),
                ..Event::default()
            };
            for e in [leave, join] {
                let bytes = sh.encode(&e);
                self.deliver_line(sh, &prototype, &bytes);
            }
        }
        let peer = self.peer_text(id);
        self.id_log(
            sh,
            id,
            Level::Info,
            format!("irc: '{old}' is now '{new}' ({peer})"),
        );
        if names::comparison_key(old) != names::comparison_key(new) {
            // (A change of case is the same name: nothing to tell.)
            self.monitor_notify(sh, old, false);
            self.monitor_notify(sh, new, true);
        }
    }

    /// Registration completes once NICK and USER are in and CAP
    /// negotiation (if any) ended: the name's password is checked (PASS),
    /// then the welcome.
    pub(super) fn try_register(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(c) = self.irc(id) else {
            return;
        };
        if c.registered || c.cap_negotiating || c.user.is_none() {
            return;
        }
        let Some(nick) = c.nick.clone() else {
            return;
        };
        let (pass, sasl_account) = (c.pass.clone(), c.account.clone());
        let peer = self.conns[&id].peer;
        if let Some(server_password) = &sh.cfg.irc_password {
            let given = pass.as_deref().unwrap_or("");
            if !bool::from(given.as_bytes().ct_eq(server_password.as_bytes())) {
                sh.counters.refusals += 1;
                sh.client_log(
                    peer.ip(),
                    Level::Warn,
                    format!("irc: server password refused to '{nick}' from {peer}"),
                );
                self.numeric(sh, id, "464", &["Password incorrect"]);
                return self.irc_close(sh, id, "Bad password");
            }
        }
        let account = if let Some(account) = sasl_account {
            // Logged in with SASL: the nick is the account's or no one's.
            let owner = sh.accounts.owner_of(&nick).map(str::to_string);
            if owner.is_some_and(|o| o != account) {
                let why = "Nickname is another account's: choose another";
                return self.numeric(sh, id, "433", &[&nick, why]);
            }
            Some(account)
        } else {
            // Without SASL, PASS is the nick's account password (unless
            // it was the server password).
            let password = if sh.cfg.irc_password.is_some() {
                None
            } else {
                pass.as_deref()
            };
            let verdict =
                sh.accounts
                    .check(sh.now, &nick, password, peer.ip(), sh.cfg.require_login);
            match verdict {
                Verdict::Allowed { registered } => registered.then(|| nick.clone()),
                Verdict::Later => {
                    self.park(id, Parked::Irc(msg.clone()));
                    return;
                }
                Verdict::Unauthorized(why) => {
                    sh.counters.refusals += 1;
                    sh.client_log(
                        peer.ip(),
                        Level::Warn,
                        format!("login refused (401) to '{nick}' from {peer} (IRC): {why}"),
                    );
                    self.numeric(sh, id, "464", &[&format!("Password incorrect: {why}")]);
                    return self.irc_close(sh, id, &format!("Bad password: {why}"));
                }
                Verdict::Busy => {
                    let why = "too many logins to check right now; try again in a second";
                    return self.irc_close(sh, id, why);
                }
            }
        };
        if self.clustered {
            // The nick must be free cluster-wide too: registration waits
            // for the cluster's verdict (Chat::nick_verdict).
            if let Some(c) = self.irc_mut(id) {
                c.claiming = Some(Claim::Register(account));
            }
            self.await_verdict(id);
            self.out.push(ChatOut::ClaimNick {
                id,
                nick,
                old: None,
            });
            return;
        }
        self.register(sh, id, &nick, account);
    }

    /// Registration completes: the session counts as joined, the welcome.
    pub(super) fn register(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        nick: &str,
        account: Option<String>,
    ) {
        let peer = self.conns[&id].peer;
        if let Some(c) = self.irc_mut(id) {
            c.registered = true;
            c.signon = sh.unix();
            c.spoke_at = sh.unix();
            c.pass = None;
            c.account = account.clone();
        }
        if let Some(c) = self.conns.get(&id) {
            sh.door.joined(id, c.seat);
        }
        self.feed(sh, id, Input::Joined);
        self.count_user(id);
        let login = if account.is_some() {
            " (logged in)"
        } else {
            ""
        };
        sh.client_log(
            peer.ip(),
            Level::Info,
            format!("irc: '{nick}' registered from {peer}{login}"),
        );
        self.welcome(sh, id, nick);
        self.monitor_notify(sh, nick, true);
    }

    /// 001–005, LUSERS and the MOTD.
    pub(super) fn welcome(&mut self, sh: &mut Shared, id: ConnId, nick: &str) {
        let server = sh.cfg.irc_server_name.clone();
        let version = concat!("chatd-", env!("CARGO_PKG_VERSION"));
        let user = self
            .irc(id)
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let me = ircmap::source(nick, &user, IRC_HOST);
        self.numeric(
            sh,
            id,
            "001",
            &[&format!("Welcome to the chatd IRC door, {me}")],
        );
        self.numeric(
            sh,
            id,
            "002",
            &[&format!("Your host is {server}, running {version}")],
        );
        self.numeric(
            sh,
            id,
            "003",
            &["This server's rooms are chatd's rooms, its people chatd's people"],
        );
        self.numeric(
            sh,
            id,
            "004",
            &[&server, version, "iow", "beIiklmnost", "beIklov"],
        );
        let nicklen = names::MAX_USERNAME_CHARS.to_string();
        let tokens = [
            format!("AWAYLEN={AWAY_LEN}"),
            "WHOX".into(),
            "CASEMAPPING=ascii".into(),
            format!("CHATHISTORY={}", super::irc_history::CHATHISTORY_MAX),
            format!("CHANLIMIT=#:{CHAN_LIMIT}"),
            "CHANMODES=beI,k,l,imnst".into(),
            format!("CHANNELLEN={}", ircmap::CHANNEL_LEN),
            "CHANTYPES=#".into(),
            "ELIST=".into(),
            "EXCEPTS".into(),
            "INVEX".into(),
            "KICKLEN=255".into(),
            format!("MAXTARGETS={MAX_TARGETS}"),
            format!("MONITOR={}", super::irc_monitor::MONITOR_LIMIT),
            "MSGREFTYPES=msgid,timestamp".into(),
            "MODES=4".into(),
            "NETWORK=chatd".into(),
            format!("NICKLEN={nicklen}"),
            "PREFIX=(ov)@+".into(),
            format!(
                "TARGMAX=JOIN:{CHAN_LIMIT},PART:{CHAN_LIMIT},NAMES:1,WHOIS:1,PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS}"
            ),
            "TOPICLEN=390".into(),
            format!("USERLEN={USER_LEN}"),
            "UTF8ONLY".into(),
        ];
        for chunk in tokens.chunks(12) {
            let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
            params.push("are supported by this server");
            self.numeric(sh, id, "005", &params);
        }
        self.send_lusers(sh, id);
        self.send_motd(sh, id);
    }

    /// 251–255, 265, 266: registered users (IRC and the prototype's
    /// members alike), invisible ones, operators, connections still
    /// registering, rooms.
    pub(super) fn send_lusers(&mut self, sh: &mut Shared, id: ConnId) {
        let mut users = 0;
        let (mut invisible, mut opers, mut unknown) = (0, 0, 0);
        for c in self.conns.values().filter(|c| !c.session.is_closing()) {
            match &c.irc {
                Some(i) if i.registered => {
                    users += 1;
                    invisible += usize::from(i.invisible);
                    opers += usize::from(i.oper);
                }
                Some(_) => unknown += 1,
                None if c.session.phase() == crate::core::session::Phase::Member => users += 1,
                None => unknown += 1,
            }
        }
        let visible = users - invisible;
        let rooms = sh.hub.room_count().to_string();
        self.numeric(
            sh,
            id,
            "251",
            &[&format!(
                "There are {visible} users and {invisible} invisible on 1 servers"
            )],
        );
        if opers > 0 {
            self.numeric(sh, id, "252", &[&opers.to_string(), "operator(s) online"]);
        }
        if unknown > 0 {
            self.numeric(
                sh,
                id,
                "253",
                &[&unknown.to_string(), "unknown connection(s)"],
            );
        }
        self.numeric(sh, id, "254", &[&rooms, "channels formed"]);
        self.numeric(
            sh,
            id,
            "255",
            &[&format!("I have {users} clients and 0 servers")],
        );
        let n = users.to_string();
        let max = self.users_peak.max(users).to_string();
        let local = format!("Current local users {n}, max {max}");
        self.numeric(sh, id, "265", &[&n, &max, &local]);
        let global = format!("Current global users {n}, max {max}");
        self.numeric(sh, id, "266", &[&n, &max, &global]);
    }

    pub(super) fn send_motd(&mut self, sh: &mut Shared, id: ConnId) {
        let server = sh.cfg.irc_server_name.clone();
        self.numeric(
            sh,
            id,
            "375",
            &[&format!("- {server} Message of the day -")],
        );
        for line in [
            "- This is chatd: its rooms are channels here (Teste is #Teste).",
            "- LIST shows the public rooms; JOIN #Room enters one.",
        ] {
            self.numeric(sh, id, "372", &[line]);
        }
        self.numeric(sh, id, "376", &["End of /MOTD command."]);
    }
}
