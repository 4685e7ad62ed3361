//! How wide text is on the terminal, as terminals count it: code point by
//! code point (wcwidth), not grapheme by grapheme. tmux, xterm and most
//! terminals draw 👍🏽 as 👍 and 🏽, four columns, while Unicode's
//! grapheme width says two; laying text out by the terminal's count is
//! what keeps the screen free of stale glyphs. Editing still goes by
//! grapheme ([`super::line`]).

use unicode_width::UnicodeWidthChar;

/// The columns `s` takes on the terminal.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// One code point's columns (control characters none: they never reach
/// the screen unescaped).
pub fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// `s` split into terminal cells: each a code point that takes columns,
/// with the zero-width code points after it (combining marks, joiners,
/// variation selectors), and its width. Zero-width code points at the
/// start ride on an empty cell of width 0.
pub fn cells(s: &str) -> Vec<(&str, usize)> {
    let mut out: Vec<(&str, usize)> = Vec::new();
    let mut start = 0;
    let mut w = 0;
    for (i, c) in s.char_indices() {
        let cw = char_width(c);
        if cw > 0 && i > start {
            out.push((&s[start..i], w));
            start = i;
            w = 0;
        }
        w += cw;
    }
    if start < s.len() {
        out.push((&s[start..], w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_count_code_points() {
        assert_eq!(width("café"), 4);
        assert_eq!(width("cafe\u{301}"), 4);
        assert_eq!(width("👍🏽"), 4);
        assert_eq!(width("日本"), 4);
        assert_eq!(cells("e\u{301}👍🏽"), [("e\u{301}", 1), ("👍", 2), ("🏽", 2)]);
        assert_eq!(cells("👨\u{200d}👩"), [("👨\u{200d}", 2), ("👩", 2)]);
    }
}
