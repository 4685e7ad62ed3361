//! How chatd's model looks from IRC, both ways, pure (issue #24): a room
//! is a channel (`Teste` is `#Teste`), a chatd name is a nick (a space
//! shown as U+00A0, which IRC nicks cannot hold), an [`Event`] in a room
//! becomes IRC lines from its sender's source, and an IRC text becomes a
//! room's message (formatting codes removed, CTCP ACTION as `/me`).
//!
//! Nothing here knows a connection: the IRC door (daemon/chat/irc.rs)
//! says who sends, who receives and which tags a recipient asked for.

use super::irc::{MAX_LINE, Message};
use super::wire::{Departed, Event, EventKind};

/// The host part of a source: what client a person uses (chatd shows no
/// addresses to members).
pub const IRC_HOST: &str = "irc";
pub const CHAT_HOST: &str = "chat";

/// Longest channel name (CHANNELLEN), `#` included.
pub const CHANNEL_LEN: usize = 64;

/// The channel a room is on IRC, when its name can be one (no space,
/// comma, BEL or control character; at most [`CHANNEL_LEN`] bytes).
pub fn channel_of(room: &str) -> Option<String> {
    let ok = !room.is_empty()
        && room.len() < CHANNEL_LEN
        && !room
            .chars()
            .any(|c| c == ' ' || c == ',' || c == '\u{a0}' || c.is_control());
    ok.then(|| format!("#{room}"))
}

/// The room a channel names (`#Teste` → `Teste`), if it is a channel.
pub fn room_of(channel: &str) -> Option<&str> {
    channel.strip_prefix('#').filter(|r| !r.is_empty())
}

/// A chatd name as an IRC nick.
pub fn nick_of(name: &str) -> String {
    name.replace(' ', "\u{a0}")
}

/// An IRC nick as the chatd name it shows.
pub fn name_of(nick: &str) -> String {
    nick.replace('\u{a0}', " ")
}

/// Why a nick is refused beyond chatd's name rules (432): the characters
/// IRC gives a meaning to.
pub fn nick_syntax(nick: &str) -> Result<(), &'static str> {
    let first = nick.chars().next().ok_or("no nickname given")?;
    if "#&:$+%~-".contains(first) || first.is_ascii_digit() {
        return Err("a nickname may not start with a digit or any of # & : $ + % ~ -");
    }
    if nick.chars().any(|c| " ,*?!@.".contains(c)) {
        return Err("a nickname may not contain a space or any of , * ? ! @ .");
    }
    Ok(())
}

/// A user's source, `nick!user@host`.
pub fn source(nick: &str, user: &str, host: &str) -> String {
    format!("{}!{user}@{host}", nick_of(nick))
}

/// The tags a recipient may be sent: server-time and the sender's
/// account (IRCv3 `server-time`, `account-tag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    /// RFC 3339 with milliseconds, `2026-12-04T10:00:00.000Z`.
    pub time: Option<String>,
    pub account: Option<String>,
    /// `message-tags`: the message's id and its sender's client-only tags.
    pub message_tags: bool,
}

impl Tags {
    fn apply(&self, m: &mut Message, event: &Event) {
        if self.message_tags {
            m.tags.extend(event.client_tags.iter().cloned());
            if let Some(id) = &event.msgid {
                m.tags.push(("msgid".into(), Some(id.clone())));
            }
        }
        if let Some(t) = &self.time {
            m.tags.push(("time".into(), Some(t.clone())));
        }
        if let Some(a) = &self.account {
            m.tags.push(("account".into(), Some(a.clone())));
        }
    }
}

/// chatd's second-resolution stamp (`…T10:00:00Z`) as server-time wants it.
pub fn server_time(ts: &str) -> String {
    match ts.strip_suffix('Z') {
        Some(t) if !t.contains('.') => format!("{t}.000Z"),
        _ => ts.to_string(),
    }
}

/// A room event as IRC lines from `source`, each with `tags`; `notice`
/// sends a message as NOTICE. Events that are not a room's message, join
/// or leave render nothing here (the door answers those itself).
pub fn room_event(event: &Event, source: &str, tags: &Tags, notice: bool) -> Vec<u8> {
    let Some(channel) = event.room.as_deref().and_then(channel_of) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |mut m: Message| {
        tags.apply(&mut m, event);
        out.extend_from_slice(&m.encode());
    };
    match event.kind {
        EventKind::Message => {
            let command = if notice { "NOTICE" } else { "PRIVMSG" };
            for text in irc_texts(&event.message, source.len() + channel.len() + 12) {
                push(Message::new(Some(source), command, &[&channel, &text]));
            }
        }
        EventKind::Join => push(Message::new(Some(source), "JOIN", &[&channel])),
        EventKind::Leave => match &event.departed {
            Departed::Left => push(Message::new(Some(source), "PART", &[&channel])),
            Departed::Parted(why) if why.is_empty() => {
                push(Message::new(Some(source), "PART", &[&channel]))
            }
            Departed::Parted(why) => push(Message::new(Some(source), "PART", &[&channel, why])),
            Departed::Quit(why) => push(Message::new(Some(source), "QUIT", &[why])),
            Departed::Kicked(why) => {
                let nick = nick_of(&event.username);
                let why = if why.is_empty() { "kicked" } else { why };
                push(Message::new(Some(source), "KICK", &[&channel, &nick, why]));
            }
        },
        _ => {}
    }
    out
}

/// A room message as IRC texts, each short enough for a line whose other
/// parts take `overhead` bytes: `/me x` becomes a CTCP ACTION; a text that
/// could have come in one IRC line is cut to fit (as ircds do), a longer
/// one (the prototype's messages may be 16 KiB) is split at character
/// boundaries, preferring a space.
pub fn irc_texts(message: &str, overhead: usize) -> Vec<String> {
    let (action, text) = match message.strip_prefix("/me ") {
        Some(rest) => (true, rest),
        None => (false, message),
    };
    let room = MAX_LINE.saturating_sub(overhead + 2 + if action { 9 } else { 0 });
    let room = room.max(16);
    let mut parts = Vec::new();
    let mut rest = text;
    if rest.len() > room && rest.len() <= MAX_LINE {
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        rest = &rest[..cut];
    }
    while rest.len() > room {
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(' ')
            && space > cut / 2
        {
            cut = space + 1;
        }
        parts.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    parts.push(rest.to_string());
    if action {
        parts
            .into_iter()
            .map(|p| format!("\u{1}ACTION {p}\u{1}"))
            .collect()
    } else {
        parts
    }
}

/// What an IRC text says as a room's message: mIRC formatting codes
/// (bold, colour, italics, underline, reverse, reset, monospace,
/// strike-through) removed, a CTCP ACTION as `/me text`; `Err` for other
/// CTCP requests, which the room's other clients cannot answer.
pub fn room_text(text: &str) -> Result<String, &'static str> {
    let text = match text.strip_prefix('\u{1}') {
        Some(ctcp) => {
            let ctcp = ctcp.strip_suffix('\u{1}').unwrap_or(ctcp);
            match ctcp.strip_prefix("ACTION") {
                Some(rest) => format!("/me {}", rest.trim_start()),
                None => return Err("CTCP requests are not relayed"),
            }
        }
        None => text.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            '\u{3}' => {
                // ^C[fg[,bg]]: up to two digits each; a comma after no
                // colour is text.
                let mut fg = false;
                for _ in 0..2 {
                    fg |= chars.next_if(|d| d.is_ascii_digit()).is_some();
                }
                let mut look = chars.clone();
                if fg && look.next() == Some(',') && look.peek().is_some_and(|d| d.is_ascii_digit())
                {
                    chars.next();
                    for _ in 0..2 {
                        chars.next_if(|d| d.is_ascii_digit());
                    }
                }
            }
            '\u{4}' => {
                // ^D RRGGBB[,RRGGBB] hex colours.
                for _ in 0..6 {
                    chars.next_if(|d| d.is_ascii_hexdigit());
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_channels_names_and_nicks() {
        assert_eq!(channel_of("Teste").as_deref(), Some("#Teste"));
        assert_eq!(channel_of("Sala 1"), None, "a space cannot be in a channel");
        assert_eq!(channel_of("a,b"), None);
        assert_eq!(room_of("#Teste"), Some("Teste"));
        assert_eq!(room_of("#"), None);
        assert_eq!(room_of("Teste"), None);
        assert_eq!(nick_of("Yan Costa"), "Yan\u{a0}Costa");
        assert_eq!(name_of("Yan\u{a0}Costa"), "Yan Costa");
        assert!(nick_syntax("yan").is_ok());
        assert!(nick_syntax("9yan").is_err());
        assert!(nick_syntax("#yan").is_err());
        assert!(nick_syntax("y@n").is_err());
    }

    #[test]
    fn room_events_as_lines() {
        let msg = Event {
            kind: EventKind::Message,
            username: "Yan".into(),
            message: "olá".into(),
            room: Some("Teste".into()),
            ..Event::default()
        };
        let src = source("Yan", "Yan", CHAT_HOST);
        assert_eq!(
            room_event(&msg, &src, &Tags::default(), false),
            "Yan!Yan@chat PRIVMSG #Teste olá\r\n"
                .replace("Yan!", ":Yan!")
                .into_bytes()
        );
        let tags = Tags {
            time: Some(server_time("2026-12-04T10:00:00Z")),
            ..Tags::default()
        };
        assert_eq!(
            room_event(&msg, &src, &tags, true),
            b"@time=2026-12-04T10:00:00.000Z :Yan!Yan@chat NOTICE #Teste ol\xc3\xa1\r\n"
        );
        let mut leave = msg.clone();
        leave.kind = EventKind::Leave;
        assert_eq!(
            room_event(&leave, &src, &Tags::default(), false),
            b":Yan!Yan@chat PART #Teste\r\n"
        );
        leave.departed = Departed::Quit("bye now".into());
        assert_eq!(
            room_event(&leave, &src, &Tags::default(), false),
            b":Yan!Yan@chat QUIT :bye now\r\n"
        );
        leave.departed = Departed::Kicked(String::new());
        assert_eq!(
            room_event(&leave, "chatd", &Tags::default(), false),
            b":chatd KICK #Teste Yan kicked\r\n"
        );
        let mut spaced = msg.clone();
        spaced.room = Some("Sala 1".into());
        assert!(room_event(&spaced, &src, &Tags::default(), false).is_empty());
    }

    #[test]
    fn a_long_message_is_split_and_me_is_an_action() {
        let long = "palavra ".repeat(200);
        let texts = irc_texts(&long, 40);
        assert!(texts.len() > 1);
        assert!(texts.iter().all(|t| t.len() + 40 + 2 <= MAX_LINE));
        assert_eq!(texts.concat(), long);
        let one_line = "a".repeat(490);
        assert_eq!(
            irc_texts(&one_line, 40),
            ["a".repeat(470)],
            "cut, as an ircd does"
        );
        let accents = "é".repeat(600);
        assert_eq!(irc_texts(&accents, 40).concat(), accents, "char boundaries");
        assert_eq!(irc_texts("/me acena", 40), ["\u{1}ACTION acena\u{1}"]);
    }

    #[test]
    fn irc_text_into_a_room_message() {
        assert_eq!(
            room_text("\u{2}bold\u{2} \u{3}4,12red\u{3} x").unwrap(),
            "bold red x"
        );
        assert_eq!(room_text("\u{3}04,1x\u{f}").unwrap(), "x");
        assert_eq!(room_text("\u{1}ACTION acena\u{1}").unwrap(), "/me acena");
        assert!(room_text("\u{1}VERSION\u{1}").is_err());
        assert_eq!(room_text("1,2 e \u{3},3").unwrap(), "1,2 e ,3");
    }
}
