//! The line being typed, in raw mode: printable characters, Backspace,
//! Ctrl-U, Enter, Ctrl-C/Ctrl-D; escape sequences (arrows...) are read and
//! ignored. Bytes in, keys out; no I/O.

use crate::core::text::printable;

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    None,
    /// Enter: the line typed.
    Submit(String),
    /// Ctrl-C, or Ctrl-D on an empty line.
    Quit,
}

#[derive(Debug)]
pub struct LineEditor {
    prompt: String,
    line: String,
    /// Bytes of an incomplete UTF-8 character.
    partial: Vec<u8>,
    escape: EscapeState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum EscapeState {
    Plain,
    Esc,
    Csi,
}

impl LineEditor {
    pub fn new(user: &str) -> LineEditor {
        LineEditor {
            prompt: format!("{} > ", printable(user)),
            line: String::new(),
            partial: Vec::new(),
            escape: EscapeState::Plain,
        }
    }

    /// The prompt and the line as typed so far.
    pub fn render(&self) -> String {
        format!("{}{}", self.prompt, self.line)
    }

    /// One byte from the keyboard.
    pub fn key(&mut self, b: u8) -> Key {
        match self.escape {
            EscapeState::Esc => {
                self.escape = if b == b'[' || b == b'O' {
                    EscapeState::Csi
                } else {
                    EscapeState::Plain
                };
                return Key::None;
            }
            EscapeState::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = EscapeState::Plain;
                }
                return Key::None;
            }
            EscapeState::Plain => {}
        }
        match b {
            0x03 => Key::Quit,
            0x04 if self.line.is_empty() => Key::Quit,
            b'\r' | b'\n' => Key::Submit(std::mem::take(&mut self.line)),
            0x7f | 0x08 => {
                self.line.pop();
                Key::None
            }
            0x15 => {
                self.line.clear();
                Key::None
            }
            0x1b => {
                self.escape = EscapeState::Esc;
                Key::None
            }
            b'\t' => {
                self.line.push('\t');
                Key::None
            }
            0x00..=0x1f => Key::None,
            _ => {
                self.partial.push(b);
                match std::str::from_utf8(&self.partial) {
                    Ok(s) => {
                        let c = s.to_string();
                        self.partial.clear();
                        if !c.chars().any(char::is_control) {
                            self.line.push_str(&c);
                        }
                    }
                    Err(e) if e.error_len().is_some() => self.partial.clear(),
                    Err(_) => {}
                }
                Key::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Key> {
        bytes
            .iter()
            .map(|&b| ed.key(b))
            .filter(|k| *k != Key::None)
            .collect()
    }

    #[test]
    fn typing_editing_and_submitting() {
        let mut ed = LineEditor::new("Yan");
        assert_eq!(typed(&mut ed, "olá!".as_bytes()), []);
        assert_eq!(ed.render(), "Yan > olá!");
        typed(&mut ed, b"\x7f\x7f");
        assert_eq!(ed.render(), "Yan > ol");
        assert_eq!(typed(&mut ed, b"\r"), [Key::Submit("ol".into())]);
        assert_eq!(ed.render(), "Yan > ");
        typed(&mut ed, b"abc\x15x");
        assert_eq!(ed.render(), "Yan > x");
    }

    #[test]
    fn escape_sequences_are_ignored_and_quit_keys_quit() {
        let mut ed = LineEditor::new("Yan");
        typed(&mut ed, b"a\x1b[A\x1b[1;5Cb\x1bOPc");
        assert_eq!(ed.render(), "Yan > abc");
        assert_eq!(typed(&mut ed, b"\x04"), [], "Ctrl-D with text does nothing");
        assert_eq!(typed(&mut ed, b"\x03"), [Key::Quit]);
        let mut ed = LineEditor::new("Yan");
        assert_eq!(typed(&mut ed, b"\x04"), [Key::Quit]);
    }

    #[test]
    fn the_prompt_shows_a_hostile_name_harmlessly() {
        let ed = LineEditor::new("\x1b[31mX");
        assert_eq!(ed.render(), "\\u{1b}[31mX > ");
    }
}
