//! The full-screen client's input line: text edited by grapheme cluster
//! (so `café` typed with a combining accent, or 👍🏽, goes with one
//! Backspace), a cursor, readline's Ctrl keys, and a history of sent
//! lines. No I/O; the screen asks [`InputLine::view`] what to show.

use super::width::width;
use unicode_segmentation::UnicodeSegmentation;

/// The most lines kept for ↑/↓.
const HISTORY: usize = 500;

#[derive(Debug, Default)]
pub struct InputLine {
    text: String,
    /// Byte offset, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: the entry shown, and what was being
    /// typed before.
    browsing: Option<(usize, String)>,
}

/// The longest start the names share (compared in any case; spelled as
/// the first has it).
fn shared_prefix(names: &[&String]) -> String {
    let first = names[0];
    let mut end = first.len();
    for n in &names[1..] {
        let common = first
            .char_indices()
            .zip(n.chars())
            .take_while(|((_, a), b)| a.to_lowercase().eq(b.to_lowercase()))
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        end = end.min(common);
    }
    first[..end].to_string()
}

impl InputLine {
    pub fn new() -> InputLine {
        InputLine::default()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Inserts typed (or pasted) text at the cursor.
    pub fn insert(&mut self, s: &str) {
        self.browsing = None;
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
        // A combining mark typed after the cursor's grapheme joins it.
        self.cursor = self.boundary_at_or_after(self.cursor);
    }

    /// Tab: completes the word before the cursor to one of `names` that
    /// starts with it (in any case); ": " follows a name that starts the
    /// line, " " one inside it. Several matches complete to what they
    /// share; none leaves the line alone.
    pub fn complete(&mut self, names: &[String]) {
        let start = self.text[..self.cursor]
            .rfind(char::is_whitespace)
            .map_or(0, |i| {
                i + self.text[i..].chars().next().map_or(1, char::len_utf8)
            });
        let word = self.text[start..self.cursor].to_lowercase();
        if word.is_empty() {
            return;
        }
        let found: Vec<&String> = names
            .iter()
            .filter(|n| n.to_lowercase().starts_with(&word))
            .collect();
        let completed = match found.as_slice() {
            [] => return,
            [one] => format!("{one}{}", if start == 0 { ": " } else { " " }),
            many => {
                let shared = shared_prefix(many);
                if shared.chars().count() <= word.chars().count() {
                    return;
                }
                shared
            }
        };
        self.browsing = None;
        self.text.replace_range(start..self.cursor, &completed);
        self.cursor = start + completed.len();
    }

    /// Backspace: the grapheme before the cursor.
    pub fn backspace(&mut self) {
        if let Some(start) = self.prev_boundary() {
            self.text.replace_range(start..self.cursor, "");
            self.cursor = start;
        }
    }

    /// Delete: the grapheme under the cursor.
    pub fn delete(&mut self) {
        if let Some(end) = self.next_boundary() {
            self.text.replace_range(self.cursor..end, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(p) = self.prev_boundary() {
            self.cursor = p;
        }
    }

    pub fn right(&mut self) {
        if let Some(n) = self.next_boundary() {
            self.cursor = n;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Ctrl-W: the word before the cursor (and the spaces after it).
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        });
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Ctrl-U: everything before the cursor.
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl-K: everything from the cursor on.
    pub fn delete_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    /// ↑: the previous line sent (what was being typed is kept for ↓).
    pub fn history_up(&mut self) {
        let next = match &self.browsing {
            None if self.history.is_empty() => return,
            None => self.history.len() - 1,
            Some((0, _)) => return,
            Some((i, _)) => i - 1,
        };
        let draft = match self.browsing.take() {
            Some((_, d)) => d,
            None => std::mem::take(&mut self.text),
        };
        self.text = self.history[next].clone();
        self.cursor = self.text.len();
        self.browsing = Some((next, draft));
    }

    /// ↓: the next line sent, and past the newest, what was being typed.
    pub fn history_down(&mut self) {
        let Some((i, draft)) = self.browsing.take() else {
            return;
        };
        if i + 1 < self.history.len() {
            self.text = self.history[i + 1].clone();
            self.browsing = Some((i + 1, draft));
        } else {
            self.text = draft;
        }
        self.cursor = self.text.len();
    }

    /// Enter: the line, now in the history (unless blank or a repeat),
    /// and an empty line to type the next one.
    pub fn submit(&mut self) -> String {
        self.browsing = None;
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    /// What fits in `columns` terminal columns ([`super::width`]), scrolled so the cursor is visible,
    /// and the cursor's column within it.
    pub fn view(&self, columns: usize) -> (String, usize) {
        let columns = columns.max(2);
        let graphemes: Vec<(usize, &str)> = self.text.grapheme_indices(true).collect();
        let at = graphemes
            .iter()
            .position(|(i, _)| *i >= self.cursor)
            .unwrap_or(graphemes.len());
        // Start as far left as possible while the cursor (one column after
        // the text before it) stays inside.
        let mut start = at;
        let mut used = 1;
        while start > 0 {
            let w = width(graphemes[start - 1].1);
            if used + w > columns {
                break;
            }
            used += w;
            start -= 1;
        }
        let mut shown = String::new();
        let mut cols = 0;
        let mut cursor_col = 0;
        for (n, (_, g)) in graphemes.iter().enumerate().skip(start) {
            if n == at {
                cursor_col = cols;
            }
            let w = width(g);
            if cols + w > columns {
                break;
            }
            shown.push_str(g);
            cols += w;
        }
        if at == graphemes.len() {
            cursor_col = cols;
        }
        (shown, cursor_col.min(columns - 1))
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map(|g| self.cursor + g.len())
    }

    fn boundary_at_or_after(&self, pos: usize) -> usize {
        let mut at = 0;
        for (i, g) in self.text.grapheme_indices(true) {
            if i >= pos {
                return i;
            }
            at = i + g.len();
            if at >= pos {
                return at;
            }
        }
        at.max(pos.min(self.text.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_completes_a_name_from_the_room() {
        let names: Vec<String> = ["Úrsula", "Buendia", "Bia", "Ana Maria"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut l = InputLine::new();
        l.insert("úr");
        l.complete(&names);
        assert_eq!(l.text(), "Úrsula: ");
        let mut l = InputLine::new();
        l.insert("oi b");
        l.complete(&names);
        assert_eq!(l.text(), "oi b", "two match and share no more than typed");
        l.insert("u");
        l.complete(&names);
        assert_eq!(l.text(), "oi Buendia ");
        let more: Vec<String> = vec!["Bianca".into(), "biancamaria".into()];
        let mut l = InputLine::new();
        l.insert("bi");
        l.complete(&more);
        assert_eq!(l.text(), "Bianca", "what they share, spelled as the first");
        let mut l = InputLine::new();
        l.insert("/kick an");
        l.complete(&names);
        assert_eq!(l.text(), "/kick Ana Maria ");
        let mut l = InputLine::new();
        l.insert("zz");
        l.complete(&names);
        assert_eq!(l.text(), "zz");
        l.insert(" ");
        l.complete(&names);
        assert_eq!(l.text(), "zz ", "nothing before the cursor");
    }

    fn typed(s: &str) -> InputLine {
        let mut l = InputLine::new();
        for c in s.chars() {
            l.insert(c.encode_utf8(&mut [0; 4]));
        }
        l
    }

    #[test]
    fn backspace_takes_a_whole_grapheme() {
        let mut l = typed("cafe\u{301}");
        l.backspace();
        assert_eq!(l.text(), "caf");
        let mut l = typed("ok 👍🏽");
        l.backspace();
        assert_eq!(l.text(), "ok ");
        let mut l = typed("família 👨‍👩‍👧");
        l.backspace();
        assert_eq!(l.text(), "família ");
    }

    #[test]
    fn cursor_moves_by_grapheme_and_edits_in_the_middle() {
        let mut l = typed("ae\u{301}z");
        l.left();
        l.left();
        l.delete();
        assert_eq!(l.text(), "az");
        l.insert("b");
        assert_eq!(l.text(), "abz");
        l.home();
        l.insert(">");
        l.end();
        l.insert("<");
        assert_eq!(l.text(), ">abz<");
    }

    #[test]
    fn readline_keys() {
        let mut l = typed("ola mundo  bonito");
        l.delete_word();
        assert_eq!(l.text(), "ola mundo  ");
        l.delete_word();
        assert_eq!(l.text(), "ola ");
        let mut l = typed("abcdef");
        l.left();
        l.left();
        l.delete_to_end();
        assert_eq!(l.text(), "abcd");
        l.left();
        l.delete_to_start();
        assert_eq!(l.text(), "d");
    }

    #[test]
    fn history_recalls_and_keeps_the_draft() {
        let mut l = InputLine::new();
        for s in ["um", "dois", "dois", " "] {
            l.insert(s);
            l.submit();
        }
        l.insert("rascunho");
        l.history_up();
        assert_eq!(l.text(), "dois");
        l.history_up();
        assert_eq!(l.text(), "um");
        l.history_up();
        assert_eq!(l.text(), "um");
        l.history_down();
        assert_eq!(l.text(), "dois");
        l.history_down();
        assert_eq!(l.text(), "rascunho");
    }

    #[test]
    fn view_scrolls_to_the_cursor_by_display_width() {
        let l = typed("日本語のテキスト");
        // 16 columns of text; 9 fit with the cursor at the end.
        let (shown, col) = l.view(10);
        assert_eq!(shown, "テキスト");
        assert_eq!(col, 8);
        let mut l = typed("abcdefghij");
        l.home();
        let (shown, col) = l.view(5);
        assert_eq!((shown.as_str(), col), ("abcde", 0));
    }
}
