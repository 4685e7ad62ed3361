//! The full-screen client's terminal side: ratatui over crossterm on the
//! alternate screen, in raw mode for as long as a [`Tui`] lives. Keys are
//! read by crossterm only after the client's own select(2) loop has seen
//! stdin readable (crossterm's reader is asked with a zero timeout), so
//! the one loop still drives everything; a resize arrives as SIGWINCH on
//! the loop's self-pipe and is a redraw.

use std::io::{self, Stdout};
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use super::lang::{Text, t, tf};
use super::screen::{Command, Screen};

use crate::core::wire::RoomEntry;

pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    pub screen: Screen,
}

impl Tui {
    /// Raw mode, the alternate screen, a first frame.
    pub fn enter(screen: Screen) -> io::Result<Tui> {
        enable_raw_mode()?;
        let mut stdout = io::stdout();
        if let Err(e) = execute!(stdout, EnterAlternateScreen) {
            let _ = disable_raw_mode();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e);
            }
        };
        let mut tui = Tui { terminal, screen };
        tui.draw();
        Ok(tui)
    }

    /// Draws the screen (ratatui sends only what changed; after a resize,
    /// everything).
    pub fn draw(&mut self) {
        let _ = self.terminal.autoresize();
        let screen = &mut self.screen;
        let _ = self.terminal.draw(|f| screen.draw(f));
    }

    /// Ctrl-L: forget what is on the terminal and draw it all again.
    pub fn redraw_all(&mut self) {
        let _ = self.terminal.clear();
        self.draw();
    }

    /// The keys waiting (stdin was readable), as the commands they make;
    /// editing and scrolling are done here.
    pub fn read_keys(&mut self) -> Vec<Command> {
        let mut commands = Vec::new();
        // A millisecond, not zero: crossterm's /dev/tty reader does not
        // look at all with a zero timeout. The loop only gets here when
        // select(2) saw input, so the wait is never taken in vain twice.
        loop {
            match event::poll(Duration::from_millis(1)) {
                Ok(true) => {}
                Ok(false) => break,
                // The terminal is gone: nobody is left to type.
                Err(_) => return vec![Command::Quit],
            }
            match event::read() {
                Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                    if let Some(c) = self.on_key(k) {
                        commands.push(c);
                    }
                }
                Ok(TermEvent::Paste(text)) => {
                    self.screen.input.insert(&text.replace(['\r', '\n'], " "))
                }
                Ok(_) => {}
                Err(_) => return vec![Command::Quit],
            }
        }
        if commands.is_empty() && hung_up() {
            // stdin said "readable" and nothing came: a hang-up (the
            // terminal closed without SIGHUP reaching us). Quit rather
            // than be woken for it forever.
            commands.push(Command::Quit);
        }
        commands
    }

    /// The page size for PageUp/PageDown: the log's height.
    fn page(&self) -> usize {
        let h = self.terminal.size().map_or(24, |s| s.height);
        usize::from(h.saturating_sub(3)).max(1)
    }

    pub fn on_key(&mut self, k: KeyEvent) -> Option<Command> {
        let page = self.page();
        let input = &mut self.screen.input;
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('c') if ctrl => return Some(Command::Quit),
            KeyCode::Char('d') if ctrl && input.is_empty() => return Some(Command::Quit),
            KeyCode::Char('d') if ctrl => input.delete(),
            KeyCode::Char('a') if ctrl => input.home(),
            KeyCode::Char('e') if ctrl => input.end(),
            KeyCode::Char('w') if ctrl => input.delete_word(),
            KeyCode::Char('u') if ctrl => input.delete_to_start(),
            KeyCode::Char('k') if ctrl => input.delete_to_end(),
            KeyCode::Char('b') if ctrl => input.left(),
            KeyCode::Char('f') if ctrl => input.right(),
            // Windows: Ctrl-N/Ctrl-P, Alt-1..9.
            KeyCode::Char('n') if ctrl => self.screen.next(),
            KeyCode::Char('p') if ctrl => self.screen.prev(),
            KeyCode::Char(c @ '1'..='9') if k.modifiers.contains(KeyModifiers::ALT) => {
                self.screen.switch(usize::from(c as u8 - b'1'))
            }
            KeyCode::Char('l') if ctrl => self.redraw_all(),
            KeyCode::Char(_) if ctrl => {}
            KeyCode::Char(c) => input.insert(c.encode_utf8(&mut [0; 4])),
            KeyCode::Backspace => input.backspace(),
            KeyCode::Delete => input.delete(),
            KeyCode::Left => input.left(),
            KeyCode::Right => input.right(),
            KeyCode::Home => input.home(),
            KeyCode::End => input.end(),
            KeyCode::Up => input.history_up(),
            KeyCode::Down => input.history_down(),
            KeyCode::PageUp => self.screen.page_up(page),
            KeyCode::PageDown => self.screen.page_down(page),
            KeyCode::F(2) => self.screen.show_members = !self.screen.show_members,
            KeyCode::Tab => {
                let me = self.screen.user.clone();
                // After `/msg`, anyone from any window; else the shown
                // room's members (or the conversation's person).
                let line = self.screen.input.text().to_lowercase();
                let anyone = line.starts_with("/msg ") || line.starts_with("/query ");
                let w = self.screen.win();
                let mut known = match (anyone, w.is_room()) {
                    (true, _) => self.screen.everyone(),
                    (false, true) => w.members.clone(),
                    (false, false) => vec![w.name.clone()],
                };
                known.dedup();
                let others: Vec<String> = known.iter().filter(|m| **m != me).cloned().collect();
                self.screen.input.complete(&others);
            }
            KeyCode::Enter => {
                let line = input.submit();
                return Some(super::screen::command(&line));
            }
            _ => {}
        }
        None
    }

    /// Shows the room list (from `/salas`).
    pub fn show_rooms(&mut self, rooms: Result<Vec<RoomEntry>, String>) {
        let now = local_hhmm(None);
        match rooms {
            Ok(rooms) if rooms.is_empty() => self.screen.note(&now, t(Text::NoPublicRoomsShort)),
            Ok(rooms) => {
                for w in &mut self.screen.windows {
                    w.learn_limit(&rooms);
                }
                self.screen
                    .note(&now, &tf(Text::Rooms, &[&describe_rooms(&rooms)]));
            }
            Err(e) => self.screen.note(&now, &tf(Text::CannotListRooms, &[&e])),
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        restore();
    }
}

/// Whether the terminal on stdin has hung up.
fn hung_up() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdin = io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::ZERO).is_err() {
        return true;
    }
    fds[0].revents().is_some_and(|r| {
        r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
    })
}

fn restore() {
    let _ = execute!(io::stdout(), LeaveAlternateScreen);
    let _ = disable_raw_mode();
}

/// `Teste (1/2), Lobby (0/10)`.
pub fn describe_rooms(rooms: &[RoomEntry]) -> String {
    rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "{}) {} ({}/{})",
                i + 1,
                crate::core::text::printable(&r.name),
                r.members,
                r.limit
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a person typed at the room prompt, against the listed rooms: a
/// number from the list, a listed name in any case (when only one
/// matches), else the text as typed (a room that is not listed, a
/// private one).
pub fn pick_room(typed: &str, rooms: &[RoomEntry]) -> String {
    let t = typed.trim();
    if let Ok(n) = t.parse::<usize>()
        && let Some(r) = n.checked_sub(1).and_then(|i| rooms.get(i))
    {
        return r.name.clone();
    }
    if rooms.iter().any(|r| r.name == t) {
        return t.to_string();
    }
    let folded: Vec<&RoomEntry> = rooms
        .iter()
        .filter(|r| r.name.to_lowercase() == t.to_lowercase())
        .collect();
    match folded.as_slice() {
        [one] => one.name.clone(),
        _ => t.to_string(),
    }
}

/// An event's time (RFC 3339 UTC) as local HH:MM; now when it has none
/// (a server that does not stamp events).
pub fn local_hhmm(ts: Option<&str>) -> String {
    let secs = ts
        .and_then(crate::timefmt::parse_rfc3339)
        .unwrap_or_else(crate::timefmt::unix_now);
    let Ok(t) = nix::libc::time_t::try_from(secs) else {
        return "--:--".into();
    };
    // SAFETY: localtime_r only writes the `tm` it is given; both live on
    // this stack frame for the call.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !nix::libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return "--:--".into();
    }
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_prompt_takes_a_number_or_a_name_in_any_case() {
        let rooms = vec![
            RoomEntry {
                name: "Lobby".into(),
                members: 0,
                limit: 10,
            },
            RoomEntry {
                name: "Teste".into(),
                members: 1,
                limit: 5,
            },
            RoomEntry {
                name: "teste".into(),
                members: 0,
                limit: 5,
            },
            RoomEntry {
                name: "Sala é 👍🏽".into(),
                members: 0,
                limit: 5,
            },
        ];
        assert_eq!(pick_room("2", &rooms), "Teste");
        assert_eq!(pick_room(" 1 ", &rooms), "Lobby");
        assert_eq!(pick_room("LOBBY", &rooms), "Lobby");
        assert_eq!(pick_room("sala É 👍🏽", &rooms), "Sala é 👍🏽");
        // Two rooms differ only in case: as typed.
        assert_eq!(pick_room("TESTE", &rooms), "TESTE");
        assert_eq!(pick_room("teste", &rooms), "teste");
        assert_eq!(pick_room("9", &rooms), "9");
        assert_eq!(pick_room("Secreta", &rooms), "Secreta");
        assert_eq!(
            describe_rooms(&rooms[..2]),
            "1) Lobby (0/10), 2) Teste (1/5)"
        );
    }

    #[test]
    fn local_time_follows_tz() {
        // The process's TZ is whatever the test runner has; UTC+0 is the
        // one case every machine can compute by hand.
        let hhmm = local_hhmm(Some("2026-11-24T10:05:00Z"));
        assert_eq!(hhmm.len(), 5);
        assert_eq!(hhmm.as_bytes()[2], b':');
        assert_eq!(local_hhmm(Some("garbage")).len(), 5);
    }
}
