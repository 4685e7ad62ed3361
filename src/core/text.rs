//! Rendering untrusted text for a terminal or a log line: control characters
//! (C0, DEL, C1), invisible format characters (zero-width space, word
//! joiner, soft hyphen, byte-order mark, tag characters, bidirectional
//! controls and overrides...) and the line and paragraph separators U+2028
//! and U+2029 become visible escapes, so nothing received from the network
//! can move the cursor, recolour the screen, reorder what is shown, break a
//! line or hide a character. The zero-width joiner and non-joiner stay:
//! emoji sequences and several scripts need them to render. A run of
//! combining marks longer than [`MAX_COMBINING_RUN`] (the "zalgo" that
//! piles thousands of marks on one letter and smears it over the lines
//! around it) is cut there, and the cut is shown as `\u{..}+N`. Pure; the
//! categories come from the Unicode tables of `unicode-properties`.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The most combining marks in a row that text keeps. Every script in
/// use stacks far fewer on one base (Vietnamese 2, Hebrew with
/// cantillation 4, Tibetan 6); Unicode's stream-safe format allows 30.
pub const MAX_COMBINING_RUN: usize = 8;

/// `s` with every hazardous character (see [`is_hazard`]) written as
/// `\u{..}`, and every run of combining marks cut to
/// [`MAX_COMBINING_RUN`], the rest counted as `\u{..}+N`.
pub fn printable(s: &str) -> String {
    if !s.chars().any(is_hazard) && longest_combining_run(s) <= MAX_COMBINING_RUN {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut run = 0;
    let mut cut = 0;
    for c in s.chars() {
        if is_combining(c) {
            run += 1;
            if run > MAX_COMBINING_RUN {
                cut += 1;
                continue;
            }
        } else {
            note_cut(&mut out, &mut cut);
            run = 0;
        }
        if is_hazard(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    note_cut(&mut out, &mut cut);
    out
}

/// Marks where a combining run was cut, and by how many.
fn note_cut(out: &mut String, cut: &mut usize) {
    if *cut > 0 {
        out.push_str(&format!("\\u{{..}}+{cut}"));
        *cut = 0;
    }
}

/// A combining mark (general category Mn, Mc or Me).
pub fn is_combining(c: char) -> bool {
    !c.is_ascii()
        && matches!(
            c.general_category(),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        )
}

/// The longest run of combining marks in `s`.
pub fn longest_combining_run(s: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        if is_combining(c) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
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
    use super::{MAX_COMBINING_RUN, longest_combining_run, printable};

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
    fn combining_runs_are_cut_and_counted() {
        let zalgo = format!("a{}b", "\u{301}".repeat(8000));
        let shown = printable(&zalgo);
        assert_eq!(
            shown,
            format!("a{}\\u{{..}}+7992b", "\u{301}".repeat(MAX_COMBINING_RUN))
        );
        // Real text keeps its marks: Vietnamese, Hebrew with points, Hindi.
        for s in ["Tiếng Việt", "שָׁלוֹם", "हिन्दी", "e\u{301}\u{302}"] {
            assert_eq!(printable(s), s);
        }
        assert_eq!(longest_combining_run("e\u{301}\u{302}x\u{301}"), 2);
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
