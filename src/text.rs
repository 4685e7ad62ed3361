//! Rendering untrusted text for a terminal or a log line: control characters
//! (C0, DEL, C1) and Unicode bidirectional overrides become visible escapes,
//! so nothing received from the network can move the cursor, recolour the
//! screen or reorder what is shown. Pure.

/// `s` with every control or bidi-override character written as `\u{..}`.
pub fn printable(s: &str) -> String {
    if !s.chars().any(is_hazard) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hazard(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_hazard(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_and_passes_through() {
        assert_eq!(printable("Olá 😀\ttab"), "Olá 😀\\u{9}tab");
        assert_eq!(printable("\x1b[2J\u{9b}"), "\\u{1b}[2J\\u{9b}");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(printable("plain"), "plain");
    }
}
