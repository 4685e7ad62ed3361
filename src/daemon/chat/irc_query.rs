//! The IRC door's queries: commands that read the hub and answer with
//! numerics, changing nothing (NAMES, LIST, WHO, WHOIS, WHOWAS, ISON,
//! USERHOST, MOTD, LUSERS, VERSION, TIME, INFO). Private and secret
//! rooms stay hidden from those outside them, as in `{"list":"rooms"}`.

use super::Chat;
use super::irc::CHAN_LIMIT;
use crate::core::hub::{ConnId, Member};
use crate::core::irc::{MAX_LINE, Message};
use crate::core::ircmap::{self, CHAT_HOST, IRC_HOST};
use crate::core::modes;
use crate::daemon::shared::Shared;

/// What WHO and WHOIS say of a person.
pub(super) struct Person {
    /// The IRC connection, for an IRC user.
    conn: Option<ConnId>,
    pub nick: String,
    pub user: String,
    pub host: &'static str,
    pub realname: String,
    away: bool,
    account: Option<String>,
    oper: bool,
    invisible: bool,
    /// Seconds since it last spoke, and when it came (IRC users).
    idle: u64,
    signon: u64,
}

/// WHOX (`WHO mask %fields[,token]`): the fields asked for, and the token.
struct Whox {
    fields: String,
    token: Option<String>,
}

/// Replies to one WHO with wildcards, at most (a `WHO *` on a big server
/// costs the asker's sendq, not everyone's time).
pub const WHO_MASK_MOST: usize = 200;

/// Nicks whose holders left (WHOWAS), at most.
pub const WHOWAS_KEPT: usize = 256;

/// A nick that is no longer held, for WHOWAS.
#[derive(Debug, Clone)]
pub struct Was {
    pub nick: String,
    pub user: String,
    pub realname: String,
    pub at: String,
}

impl Chat {
    /// Any command past registration that is not in irc.rs.
    pub(super) fn on_query(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        match msg.command.as_str() {
            "NAMES" => match msg.param(0) {
                Some(list) => {
                    for channel in list.split(',').filter(|c| !c.is_empty()) {
                        match Chat::room_named(sh, channel) {
                            Some(room) if self.may_see(sh, id, &room) => {
                                self.send_names(sh, id, &room);
                            }
                            _ => self.numeric(sh, id, "366", &[channel, "End of /NAMES list"]),
                        }
                    }
                }
                None => self.numeric(sh, id, "366", &["*", "End of /NAMES list"]),
            },
            "LIST" => self.send_list(sh, id, msg.param(0)),
            "WHO" => {
                let whox = msg.param(1).and_then(|f| f.strip_prefix('%')).map(|f| {
                    let (fields, token) = match f.split_once(',') {
                        Some((f, t)) => (f, Some(t.chars().take(3).collect())),
                        None => (f, None),
                    };
                    Whox {
                        fields: fields.to_string(),
                        token,
                    }
                });
                self.send_who(sh, id, msg.param(0).unwrap_or("*"), whox.as_ref());
            }
            "WHOIS" => {
                // WHOIS [server] nick: the last parameter is the nick.
                let Some(nick) = msg.params.last().filter(|n| !n.is_empty()) else {
                    return self.numeric(sh, id, "431", &["No nickname given"]);
                };
                let nick = nick.split(',').next().unwrap_or("").to_string();
                self.send_whois(sh, id, &nick);
            }
            "ISON" => {
                let on: Vec<String> = msg
                    .params
                    .iter()
                    .flat_map(|p| p.split(' '))
                    .filter_map(|n| sh.hub.people().holder_of(&ircmap::name_of(n)))
                    .map(ircmap::nick_of)
                    .collect();
                self.numeric(sh, id, "303", &[&on.join(" ")]);
            }
            "USERHOST" => {
                let mut replies = Vec::new();
                for n in msg.params.iter().take(5) {
                    if let Some(p) = self.person(sh, &ircmap::name_of(n)) {
                        let away = if p.away { '-' } else { '+' };
                        replies.push(format!("{}={away}{}@{}", p.nick, p.user, p.host));
                    }
                }
                self.numeric(sh, id, "302", &[&replies.join(" ")]);
            }
            "MOTD" => self.send_motd(sh, id),
            "LUSERS" => self.send_lusers(sh, id),
            "VERSION" => {
                let server = sh.cfg.irc_server_name.clone();
                let version = concat!("chatd-", env!("CARGO_PKG_VERSION"));
                self.numeric(sh, id, "351", &[version, &server, "chat rooms over IRC"]);
            }
            "TIME" => {
                let server = sh.cfg.irc_server_name.clone();
                let now = sh.ts().to_string();
                self.numeric(sh, id, "391", &[&server, &now]);
            }
            "WHOWAS" => self.send_whowas(sh, id, msg),
            "INFO" => {
                for line in [
                    concat!(
                        "chatd ",
                        env!("CARGO_PKG_VERSION"),
                        ": chat rooms over TCP, TLS and IRC"
                    ),
                    "One select(2) loop; rooms, people and limits shared by every protocol.",
                ] {
                    self.numeric(sh, id, "371", &[line]);
                }
                self.numeric(sh, id, "374", &["End of INFO list"]);
            }
            other => {
                let other = other.to_string();
                self.numeric(sh, id, "421", &[&other, "Unknown command"]);
            }
        }
    }

    /// Whether `id` may see who is in `room`: a room neither private nor
    /// secret, or one it is in.
    pub(super) fn may_see(&self, sh: &Shared, id: ConnId, room: &str) -> bool {
        let Some(rid) = sh.hub.room_id_of(room) else {
            return false;
        };
        let private = sh.hub.access(room).is_some_and(|a| a.private);
        let secret = sh.hub.modes(rid).is_some_and(|m| m.secret);
        !(private || secret) || sh.hub.rooms_of(id).contains(&rid)
    }

    /// The room a channel names when `id` is in it; else the numeric to
    /// answer (403 no such channel, 442 not on it).
    pub(super) fn my_room(
        &self,
        sh: &Shared,
        id: ConnId,
        channel: &str,
    ) -> Result<String, &'static str> {
        let room = Chat::room_named(sh, channel).ok_or("403")?;
        let rid = sh.hub.room_id_of(&room).ok_or("403")?;
        if sh.hub.rooms_of(id).contains(&rid) {
            Ok(room)
        } else if self.may_see(sh, id, &room) {
            Err("442")
        } else {
            Err("403")
        }
    }

    pub(super) fn channel_error(&mut self, sh: &mut Shared, id: ConnId, code: &str, channel: &str) {
        let why = if code == "442" {
            "You're not on that channel"
        } else {
            "No such channel"
        };
        self.numeric(sh, id, code, &[channel, why]);
    }

    /// A member's prefix in a room as `viewer` sees it: `@` for an
    /// operator, `+` for voice (both with multi-prefix).
    fn prefix(&self, sh: &Shared, viewer: ConnId, room: &str, member: ConnId) -> String {
        let Some(m) = sh.hub.room_id_of(room).and_then(|r| sh.hub.modes(r)) else {
            return String::new();
        };
        let all = self.irc(viewer).is_some_and(|c| c.has("multi-prefix"));
        let mut p = String::new();
        if m.ops.contains(&member) {
            p.push('@');
        }
        if m.voiced.contains(&member) && (all || p.is_empty()) {
            p.push('+');
        }
        p
    }

    /// 353 lines (as many as the names need) and 366.
    pub(super) fn send_names(&mut self, sh: &mut Shared, id: ConnId, room: &str) {
        let channel = ircmap::channel_of(room).unwrap_or_else(|| format!("#{room}"));
        let long = self.irc(id).is_some_and(|c| c.has("userhost-in-names"));
        let members: Vec<Member> = sh
            .hub
            .participants(room)
            .map(<[Member]>::to_vec)
            .unwrap_or_default();
        let names: Vec<String> = members
            .iter()
            .map(|m| {
                let p = self.prefix(sh, id, room, m.conn);
                if long {
                    format!("{p}{}", self.source_of(sh, &m.username))
                } else {
                    format!("{p}{}", ircmap::nick_of(&m.username))
                }
            })
            .collect();
        let hidden = sh.hub.access(room).is_some_and(|a| a.private)
            || sh
                .hub
                .room_id_of(room)
                .and_then(|r| sh.hub.modes(r))
                .is_some_and(|m| m.secret);
        let kind = if hidden { "@" } else { "=" };
        let budget = MAX_LINE - 2 - sh.cfg.irc_server_name.len() - channel.len() - 80;
        let mut line = String::new();
        for n in names {
            if !line.is_empty() && line.len() + 1 + n.len() > budget {
                let full = std::mem::take(&mut line);
                self.numeric(sh, id, "353", &[kind, &channel, &full]);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&n);
        }
        if !line.is_empty() {
            self.numeric(sh, id, "353", &[kind, &channel, &line]);
        }
        self.numeric(sh, id, "366", &[&channel, "End of /NAMES list"]);
    }

    /// 321, a 322 per room it may see that can be a channel (those
    /// named, or all), 323.
    fn send_list(&mut self, sh: &mut Shared, id: ConnId, only: Option<&str>) {
        let wanted: Option<Vec<String>> = only.map(|l| {
            l.split(',')
                .filter_map(|c| Chat::room_named(sh, c))
                .collect()
        });
        self.numeric(sh, id, "321", &["Channel", "Users  Name"]);
        for r in sh.hub.list() {
            if wanted.as_ref().is_some_and(|w| !w.contains(&r.name))
                || !self.may_see(sh, id, &r.name)
            {
                continue;
            }
            let Some(channel) = ircmap::channel_of(&r.name) else {
                continue;
            };
            let topic = sh
                .hub
                .room_id_of(&r.name)
                .and_then(|rid| sh.hub.moderation(rid))
                .and_then(|m| m.topic.as_ref())
                .map_or(String::new(), |t| t.text.clone());
            self.numeric(sh, id, "322", &[&channel, &r.members.to_string(), &topic]);
        }
        self.numeric(sh, id, "323", &["End of /LIST"]);
    }

    /// What WHO and WHOIS show of the person holding `name`.
    pub(super) fn person(&self, sh: &Shared, name: &str) -> Option<Person> {
        if let Some((conn, nick)) = sh.hub.people().nick_holder(name)
            && let Some(c) = self.irc(conn)
        {
            return Some(Person {
                conn: Some(conn),
                nick: ircmap::nick_of(nick),
                user: c.user.clone().unwrap_or_else(|| "user".into()),
                host: IRC_HOST,
                realname: c.realname.clone(),
                away: c.away.is_some(),
                account: c.account.clone(),
                oper: c.oper,
                invisible: c.invisible,
                idle: sh.unix().saturating_sub(c.spoke_at),
                signon: c.signon,
            });
        }
        let holder = sh.hub.people().holder_of(name)?;
        let nick = ircmap::nick_of(holder);
        Some(Person {
            conn: None,
            user: nick.clone(),
            nick,
            host: CHAT_HOST,
            realname: holder.to_string(),
            away: false,
            account: None,
            oper: false,
            invisible: false,
            idle: 0,
            signon: 0,
        })
    }

    /// One 352: `channel` is `*` or a room it is in (then its prefix).
    fn who_line(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        channel: &str,
        room: Option<(&str, ConnId)>,
        p: &Person,
        whox: Option<&Whox>,
    ) {
        let server = sh.cfg.irc_server_name.clone();
        let mut flags = String::from(if p.away { "G" } else { "H" });
        if p.oper {
            flags.push('*');
        }
        if let Some((room, member)) = room {
            flags.push_str(&self.prefix(sh, id, room, member));
        }
        if let Some(w) = whox {
            // 354: the fields asked for, in WHOX's own order. No address
            // is shown (255.255.255.255, as Ergo does), no op level.
            let mut params: Vec<String> = Vec::new();
            for f in "tcuihsnfdlaor".chars().filter(|f| w.fields.contains(*f)) {
                params.push(match f {
                    't' => w.token.clone().unwrap_or_else(|| "0".into()),
                    'c' => channel.to_string(),
                    'u' => p.user.clone(),
                    'i' => "255.255.255.255".into(),
                    'h' => p.host.to_string(),
                    's' => server.clone(),
                    'n' => p.nick.clone(),
                    'f' => flags.clone(),
                    'd' => "0".into(),
                    'l' => p.idle.to_string(),
                    'a' => p.account.clone().unwrap_or_else(|| "0".into()),
                    'o' => "n/a".into(),
                    _ => p.realname.clone(),
                });
            }
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            return self.numeric(sh, id, "354", &params);
        }
        let real = format!("0 {}", p.realname);
        self.numeric(
            sh,
            id,
            "352",
            &[channel, &p.user, p.host, &server, &p.nick, &flags, &real],
        );
    }

    /// WHO #room, WHO nick, or WHO mask (wildcards on nicks: those not
    /// invisible, or sharing a room with the asker).
    fn send_who(&mut self, sh: &mut Shared, id: ConnId, mask: &str, whox: Option<&Whox>) {
        if mask.starts_with('#') {
            if let Some(room) = Chat::room_named(sh, mask)
                && self.may_see(sh, id, &room)
            {
                let channel = ircmap::channel_of(&room).unwrap_or_else(|| mask.to_string());
                let members: Vec<(String, ConnId)> = sh
                    .hub
                    .participants(&room)
                    .map(|ms| ms.iter().map(|m| (m.username.clone(), m.conn)).collect())
                    .unwrap_or_default();
                for (name, conn) in members {
                    if let Some(p) = self.person(sh, &name) {
                        self.who_line(sh, id, &channel, Some((&room, conn)), &p, whox);
                    }
                }
            }
        } else if !mask.contains(['*', '?']) {
            if let Some(p) = self.person(sh, &ircmap::name_of(mask)) {
                self.who_line(sh, id, "*", None, &p, whox);
            }
        } else {
            let mine = sh.hub.rooms_of(id).to_vec();
            let mut names: Vec<String> = Vec::new();
            for r in sh.hub.list() {
                if let Ok(ms) = sh.hub.participants(&r.name) {
                    names.extend(ms.iter().map(|m| m.username.clone()));
                }
            }
            let mut irc_nicks: Vec<String> = self
                .conns
                .keys()
                .filter_map(|&c| sh.hub.people().nick(c).map(str::to_string))
                .collect();
            names.append(&mut irc_nicks);
            names.sort();
            names.dedup();
            let mut shown = 0;
            for name in names {
                if shown == WHO_MASK_MOST {
                    break;
                }
                let Some(p) = self.person(sh, &name) else {
                    continue;
                };
                let source = format!("{}!{}@{}", p.nick, p.user, p.host);
                if !(modes::glob(mask, &p.nick) || modes::glob(mask, &source)) {
                    continue;
                }
                let shares = p
                    .conn
                    .is_some_and(|c| sh.hub.rooms_of(c).iter().any(|r| mine.contains(r)));
                if p.invisible && !shares && p.conn != Some(id) {
                    continue;
                }
                shown += 1;
                self.who_line(sh, id, "*", None, &p, whox);
            }
        }
        self.numeric(sh, id, "315", &[mask, "End of WHO list"]);
    }

    fn send_whois(&mut self, sh: &mut Shared, id: ConnId, nick: &str) {
        let Some(p) = self.person(sh, &ircmap::name_of(nick)) else {
            self.numeric(sh, id, "401", &[nick, "No such nick/channel"]);
            return self.numeric(sh, id, "318", &[nick, "End of /WHOIS list"]);
        };
        let server = sh.cfg.irc_server_name.clone();
        self.numeric(sh, id, "311", &[&p.nick, &p.user, p.host, "*", &p.realname]);
        let name = ircmap::name_of(&p.nick);
        let mut rooms: Vec<String> = Vec::new();
        for r in sh.hub.list() {
            if !self.may_see(sh, id, &r.name) {
                continue;
            }
            let Ok(ms) = sh.hub.participants(&r.name) else {
                continue;
            };
            let Some(m) = ms.iter().find(|m| m.username == name) else {
                continue;
            };
            if let Some(channel) = ircmap::channel_of(&r.name) {
                rooms.push(format!("{}{channel}", self.prefix(sh, id, &r.name, m.conn)));
            }
            if rooms.len() == CHAN_LIMIT {
                break;
            }
        }
        if !rooms.is_empty() {
            self.numeric(sh, id, "319", &[&p.nick, &rooms.join(" ")]);
        }
        self.numeric(sh, id, "312", &[&p.nick, &server, "chatd"]);
        if p.conn.is_some() {
            let (idle, signon) = (p.idle.to_string(), p.signon.to_string());
            self.numeric(
                sh,
                id,
                "317",
                &[&p.nick, &idle, &signon, "seconds idle, signon time"],
            );
        }
        if p.oper {
            self.numeric(sh, id, "313", &[&p.nick, "is an IRC operator"]);
        }
        if let Some(conn) = p.conn
            && let Some(away) = self.irc(conn).and_then(|c| c.away.clone())
        {
            self.numeric(sh, id, "301", &[&p.nick, &away]);
        }
        if let Some(account) = &p.account {
            self.numeric(sh, id, "330", &[&p.nick, account, "is logged in as"]);
        }
        self.numeric(sh, id, "318", &[&p.nick, "End of /WHOIS list"]);
    }

    /// WHOWAS nick [count]: the newest first; 406 when none.
    fn send_whowas(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(nick) = msg.param(0).filter(|n| !n.is_empty()) else {
            return self.numeric(sh, id, "461", &["WHOWAS", "Not enough parameters"]);
        };
        let nick = nick.to_string();
        let count = msg
            .param(1)
            .and_then(|c| c.parse::<i64>().ok())
            .filter(|&c| c > 0)
            .map_or(usize::MAX, |c| c as usize);
        let server = sh.cfg.irc_server_name.clone();
        let found: Vec<Was> = self
            .was
            .iter()
            .rev()
            .filter(|w| w.nick.eq_ignore_ascii_case(&nick))
            .take(count)
            .cloned()
            .collect();
        if found.is_empty() {
            self.numeric(sh, id, "406", &[&nick, "There was no such nickname"]);
        }
        for w in found {
            self.numeric(
                sh,
                id,
                "314",
                &[&w.nick, &w.user, IRC_HOST, "*", &w.realname],
            );
            self.numeric(sh, id, "312", &[&w.nick, &server, &w.at]);
        }
        self.numeric(sh, id, "369", &[&nick, "End of WHOWAS"]);
    }

    /// A nick is let go (a quit, or a change): WHOWAS remembers it.
    pub(super) fn remember_nick(&mut self, sh: &Shared, id: ConnId) {
        let Some(c) = self.irc(id) else {
            return;
        };
        let (Some(nick), true) = (c.nick.clone(), c.registered) else {
            return;
        };
        let was = Was {
            nick: ircmap::nick_of(&nick),
            user: c.user.clone().unwrap_or_default(),
            realname: c.realname.clone(),
            at: sh.ts().to_string(),
        };
        if self.was.len() == WHOWAS_KEPT {
            self.was.pop_front();
        }
        self.was.push_back(was);
    }
}
