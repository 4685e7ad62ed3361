//! Rendering untrusted text for a terminal or a log line: control characters
//! (C0, DEL, C1), invisible format characters (zero-width space, word
//! joiner, soft hyphen, byte-order mark, tag characters, bidirectional
//! controls and overrides...) and the line and paragraph separators U+2028
//! and U+2029 become visible escapes, so nothing received from the network
//! can move the cursor, recolour the screen, reorder what is shown, break a
//! line or hide a character. The zero-width joiner and non-joiner stay:
//! emoji sequences and several scripts need them to render. Pure; the
//! categories come from the Unicode tables of `unicode-properties`.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// `s` with every hazardous character (see [`is_hazard`]) written as
/// `\u{..}`.
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

/// A character that must not reach a terminal as it is: a control
/// character, an invisible format character (general category Cf) other
/// than the zero-width joiner and non-joiner, or a line or paragraph
/// separator.
pub fn is_hazard(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    match c.general_category() {
        GeneralCategory::Control
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator => true,
        GeneralCategory::Format => !matches!(c, '\u{200c}' | '\u{200d}'),
        _ => false,
    }
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

    #[test]
    fn invisible_and_separators_are_shown() {
        for (c, shown) in [
            ('\u{200b}', "\\u{200b}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{2060}', "\\u{2060}"),
            ('\u{ad}', "\\u{ad}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{e0041}', "\\u{e0041}"),
        ] {
            assert_eq!(printable(&format!("a{c}b")), format!("a{shown}b"));
        }
    }

    #[test]
    fn joiners_in_emoji_and_scripts_stay() {
        let family = "👨\u{200d}👩\u{200d}👧";
        assert_eq!(printable(family), family);
        let persian = "می\u{200c}خواهم";
        assert_eq!(printable(persian), persian);
        let thumbs = "👍🏽 ❤️";
        assert_eq!(printable(thumbs), thumbs);
    }
}
