//! IRC messages (RFC 1459/2812 as the Modern IRC documents describe them,
//! with IRCv3 message tags), sans-IO: one line without its CR LF in, a
//! [`Message`] out, and back. The first piece of the IRC door (issue #24);
//! framing is core/lines.rs's bounded splitter, as for control requests.
//!
//! Bounds: the part after the tags at most [`MAX_LINE`] bytes (512 with CR
//! LF, as RFC 1459 says), the tags at most [`MAX_TAGS`] bytes (IRCv3's
//! 4094 bytes of client tag data, with the `@` and the space), at most [`MAX_PARAMS`]
//! parameters. chatd's text is UTF-8, so a line that is not is refused.

/// Most bytes of a line after its tags, CR LF included.
pub const MAX_LINE: usize = 512;
/// Most bytes of the tags, `@` and the space after them included.
pub const MAX_TAGS: usize = 4096;
/// Most parameters of one message (RFC 2812: 15).
pub const MAX_PARAMS: usize = 15;

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// IRCv3 tags in the order given, values unescaped (`None`: no `=`).
    pub tags: Vec<(String, Option<String>)>,
    /// The source (prefix) without its `:`.
    pub source: Option<String>,
    /// The command, upper-cased (a word or three digits).
    pub command: String,
    /// The parameters, the trailing one included, without its `:`.
    pub params: Vec<String>,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but spaces (clients may send it; ignored).
    Empty,
    NotUtf8,
    /// Over [`MAX_LINE`] or [`MAX_TAGS`] (417 ERR_INPUTTOOLONG).
    TooLong,
    /// No command, or one that is neither letters nor three digits.
    NoCommand,
    TooManyParams,
}

impl Message {
    /// A message from `source` (None: from the client's point of view,
    /// no prefix) with `command` and `params`.
    pub fn new(source: Option<&str>, command: &str, params: &[&str]) -> Message {
        Message {
            tags: Vec::new(),
            source: source.map(str::to_string),
            command: command.to_string(),
            params: params.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The `i`th parameter, if given.
    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }

    /// The message as one line, CR LF included. The last parameter is
    /// written as a trailing one (`:`) when it must be: empty, with a
    /// space, or starting with `:`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        if !self.tags.is_empty() {
            out.push(b'@');
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.push(b';');
                }
                out.extend_from_slice(key.as_bytes());
                if let Some(v) = value {
                    out.push(b'=');
                    escape_tag_value(v, &mut out);
                }
            }
            out.push(b' ');
        }
        if let Some(source) = &self.source {
            out.push(b':');
            out.extend_from_slice(source.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.command.as_bytes());
        let last = self.params.len().saturating_sub(1);
        for (i, p) in self.params.iter().enumerate() {
            out.push(b' ');
            if i == last && (p.is_empty() || p.contains(' ') || p.starts_with(':')) {
                out.push(b':');
            }
            out.extend_from_slice(p.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Parses one line (without its LF; a CR before it is dropped).
pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let mut rest = line.trim_start_matches(' ');
    let mut msg = Message::default();
    if let Some(tagged) = rest.strip_prefix('@') {
        let (tags, after) = tagged.split_once(' ').ok_or(ParseError::NoCommand)?;
        if tags.len() + 2 > MAX_TAGS {
            return Err(ParseError::TooLong);
        }
        msg.tags = parse_tags(tags);
        rest = after.trim_start_matches(' ');
    }
    if rest.len() + 2 > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    if rest.is_empty() {
        return Err(if msg.tags.is_empty() {
            ParseError::Empty
        } else {
            ParseError::NoCommand
        });
    }
    if let Some(sourced) = rest.strip_prefix(':') {
        let (source, after) = sourced.split_once(' ').ok_or(ParseError::NoCommand)?;
        msg.source = Some(source.to_string());
        rest = after.trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    // Letters (and, as Ergo accepts, digits and `_` after the first).
    let is_word = command
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && command
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let is_numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
    if !is_word && !is_numeric {
        return Err(ParseError::NoCommand);
    }
    msg.command = command.to_ascii_uppercase();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if msg.params.len() == MAX_PARAMS {
            return Err(ParseError::TooManyParams);
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            msg.params.push(trailing.to_string());
            break;
        }
        let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
        msg.params.push(param.to_string());
        rest = after;
    }
    Ok(msg)
}

/// `key[=value];...`, values unescaped; a key given twice keeps its last
/// value (IRCv3), in its first place.
fn parse_tags(tags: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for tag in tags.split(';').filter(|t| !t.is_empty()) {
        let (key, value) = match tag.split_once('=') {
            Some((k, v)) => (k, Some(unescape_tag_value(v))),
            None => (tag, None),
        };
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key.to_string(), value)),
        }
    }
    out
}

/// IRCv3's tag value escapes: `\:` `;`, `\s` space, `\\` `\`, `\r`, `\n`;
/// any other escaped character stands for itself, a lone `\` at the end
/// is dropped.
fn unescape_tag_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn escape_tag_value(v: &str, out: &mut Vec<u8>) {
    for c in v.chars() {
        match c {
            ';' => out.extend_from_slice(b"\\:"),
            ' ' => out.extend_from_slice(b"\\s"),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\n' => out.extend_from_slice(b"\\n"),
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Message {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e:?}"))
    }

    #[test]
    fn the_parts_of_a_message() {
        let m = ok(":irc.example.com CAP * LIST :");
        assert_eq!(m.source.as_deref(), Some("irc.example.com"));
        assert_eq!(m.command, "CAP");
        assert_eq!(m.params, ["*", "LIST", ""]);
        let m = ok("PRIVMSG #Teste :oi, tudo bem?\r");
        assert_eq!(m.params, ["#Teste", "oi, tudo bem?"]);
        let m = ok("nick   yan");
        assert_eq!(
            (m.command.as_str(), m.params.as_slice()),
            ("NICK", &["yan".to_string()][..])
        );
        let m = ok(":dan!d@localhost PRIVMSG #chan ::-) hi");
        assert_eq!(m.params, ["#chan", ":-) hi"]);
        let m = ok("USER yan 0 * :Yan Buendia");
        assert_eq!(m.params, ["yan", "0", "*", "Yan Buendia"]);
        assert_eq!(ok("001 yan :Welcome").command, "001");
        assert_eq!(ok("no_such_command").command, "NO_SUCH_COMMAND");
    }

    #[test]
    fn tags_are_unescaped_and_the_last_of_a_key_wins() {
        let m = ok(r"@id=234AB;+example.com/x=a\sb\:c\\d;flag :dan!d@h PRIVMSG #c :hi");
        assert_eq!(
            m.tags,
            [
                ("id".to_string(), Some("234AB".to_string())),
                ("+example.com/x".to_string(), Some(r"a b;c\d".to_string())),
                ("flag".to_string(), None),
            ]
        );
        let m = ok("@a=1;a=2 PING x");
        assert_eq!(m.tags, [("a".to_string(), Some("2".to_string()))]);
        assert_eq!(unescape_tag_value(r"x\qy\"), "xqy");
    }

    #[test]
    fn what_is_encoded_parses_back_the_same() {
        let mut m = Message::new(Some("yan!yan@chatd"), "PRIVMSG", &["#Teste", "olá mundo"]);
        m.tags = vec![
            ("time".into(), Some("2026-12-04T10:00:00.000Z".into())),
            ("+x".into(), Some("a; b\\".into())),
            ("bare".into(), None),
        ];
        let line = m.encode();
        assert!(line.ends_with(b"\r\n"));
        assert_eq!(parse(&line[..line.len() - 1]), Ok(m));
        assert_eq!(
            Message::new(None, "PONG", &["tok"]).encode(),
            b"PONG tok\r\n"
        );
        assert_eq!(
            Message::new(None, "TOPIC", &["#c", ""]).encode(),
            b"TOPIC #c :\r\n"
        );
        assert_eq!(
            Message::new(None, "PRIVMSG", &["#c", ":)"]).encode(),
            b"PRIVMSG #c ::)\r\n"
        );
    }

    #[test]
    fn bad_lines_are_refused_by_reason() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"   \r"), Err(ParseError::Empty));
        assert_eq!(parse(b"PRIVMSG #c :\xff"), Err(ParseError::NotUtf8));
        assert_eq!(parse(b":source-only"), Err(ParseError::NoCommand));
        assert_eq!(parse(b"@tag-only"), Err(ParseError::NoCommand));
        assert_eq!(parse(b"@a=b "), Err(ParseError::NoCommand));
        assert_eq!(parse(b"PRIV-MSG x"), Err(ParseError::NoCommand));
        assert_eq!(parse(b"12 x"), Err(ParseError::NoCommand));
        let long = format!("PRIVMSG #c :{}", "x".repeat(MAX_LINE));
        assert_eq!(parse(long.as_bytes()), Err(ParseError::TooLong));
        let fits = format!("PRIVMSG #c :{}", "x".repeat(MAX_LINE - 14));
        assert!(parse(fits.as_bytes()).is_ok(), "510 bytes and CR LF fit");
        let tags = format!("@a={} PING x", "y".repeat(MAX_TAGS));
        assert_eq!(parse(tags.as_bytes()), Err(ParseError::TooLong));
        let many = format!("CMD{}", " p".repeat(MAX_PARAMS + 1));
        assert_eq!(parse(many.as_bytes()), Err(ParseError::TooManyParams));
        let fifteen = format!("CMD{}", " p".repeat(MAX_PARAMS));
        assert_eq!(ok(&fifteen).params.len(), MAX_PARAMS);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any message chatd would write parses back as itself: middle
            /// parameters without spaces or a leading `:`, a free last one,
            /// tag values with anything in them.
            #[test]
            fn encoding_round_trips(
                middle in proptest::collection::vec("[^ :\r\n\x00][^ \r\n\x00]{0,8}", 0..5),
                last in "[^\r\n\x00]{0,40}",
                value in "[^\r\n\x00]{0,20}",
            ) {
                let mut params: Vec<&str> = middle.iter().map(String::as_str).collect();
                params.push(&last);
                let mut m = Message::new(Some("chatd"), "PRIVMSG", &params);
                m.tags = vec![("+t".into(), Some(value.clone()))];
                let line = m.encode();
                prop_assert_eq!(parse(&line[..line.len() - 1]), Ok(m));
            }

            /// No input makes the parser panic.
            #[test]
            fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = parse(&bytes);
            }
        }
    }
}
