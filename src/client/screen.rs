//! The full-screen client's model and layout, without I/O: the scrollback
//! (wrapped by display width, PageUp/PageDown), the member list, the status
//! bar and the input line, drawn with ratatui into whatever backend the
//! caller has (a terminal, or a test buffer). What a typed line means
//! (`/help`, `/who`, `/salas`, `/SAIR`, `/quit`, `//text`) is decided here
//! too; the loop carries it out.
//!
//! Text is placed cell by cell as terminals count columns
//! ([`super::width`]), not by ratatui's grapheme widths, so what ratatui
//! believes is on the screen is what is there.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use unicode_segmentation::UnicodeSegmentation;

use super::line::InputLine;
use super::width::{cells, width};
use crate::core::text::printable;
use crate::core::wire::{Event, EventKind, RoomEntry};

/// A display row: runs of text, each with its style.
type Row = Vec<(String, Style)>;

/// Entries kept in the scrollback.
const SCROLLBACK: usize = 5000;

/// The member list's width, border included.
const MEMBERS_WIDTH: u16 = 20;

/// Colours names are given, each name always the same one (no dark
/// blue: it hardly shows on a black background; orange instead).
const PALETTE: [Color; 10] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Indexed(208),
    Color::Magenta,
    Color::LightRed,
    Color::LightCyan,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightBlue,
];

/// The client's help, in the prototype's language.
pub const HELP: &[&str] = &[
    "Comandos: /help esta ajuda · /who quem está na sala · /salas salas públicas",
    "/SAIR sai da sala e escolhe outra · /quit fecha o chat · //texto envia \"/texto\"",
    "Operadores da sala: /kick nome [motivo] · /ban nome [1h] [motivo] · /unban nome · /mute nome [10m] [motivo] · /unmute nome · /topic [texto] · /limit N · /moderated on|off",
    "Teclas: ←/→ Home/End Ctrl-A/E/W/U/K editam · Tab completa nomes · ↑/↓ linhas enviadas · PgUp/PgDn rolam · F2 membros · Ctrl-L redesenha",
];

/// What a line typed at the input means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing to do (a blank line).
    Nothing,
    /// Send this text to the room.
    Send(String),
    Help,
    Who,
    Rooms,
    /// `/SAIR`: leave and choose another room.
    Leave,
    /// `/quit`: close the client.
    Quit,
    /// A room operator's command (`/kick`, `/ban`, `/topic`, ...): sent
    /// as it is, for chatd to carry out or refuse.
    Moderate(String),
    /// A `/word` that is not a command: not sent.
    Unknown(String),
}

/// The room operators' commands chatd carries out (its `"commands"`
/// feature; docs/PROTOCOL.md).
fn is_moderation(word: &str) -> bool {
    let verb = word.split_whitespace().next().unwrap_or("").to_lowercase();
    [
        "kick",
        "ban",
        "unban",
        "mute",
        "unmute",
        "topic",
        "limit",
        "moderated",
    ]
    .contains(&verb.as_str())
}

/// Reads a typed line. Commands are words after a `/`; `//text` sends
/// `/text`; `/SAIR` in any case, as the prototype's client took it.
pub fn command(line: &str) -> Command {
    if line.trim().is_empty() {
        return Command::Nothing;
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Command::Send(format!("/{rest}"));
    }
    let Some(word) = line.strip_prefix('/') else {
        return Command::Send(line.to_string());
    };
    match word.trim().to_lowercase().as_str() {
        "help" | "ajuda" | "?" => Command::Help,
        "who" | "quem" => Command::Who,
        "salas" | "rooms" => Command::Rooms,
        "sair" => Command::Leave,
        "quit" => Command::Quit,
        // `/me acena`: a message (an action), sent as it is.
        w if w.starts_with("me ") => Command::Send(line.to_string()),
        _ if is_moderation(word) => Command::Moderate(line.trim().to_string()),
        _ => Command::Unknown(line.trim().to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Someone's message.
    Message,
    /// Someone's message that names us (highlighted; the bell rings).
    Mention,
    /// Our own message, as we sent it.
    Own,
    /// A join, a leave, a notice from the server.
    Notice,
    /// A message replayed from the room's history.
    History,
    /// Said by the client itself (help, errors): never from the server.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Local HH:MM.
    pub time: String,
    /// Who spoke (None for the client's own notes).
    pub who: Option<String>,
    pub text: String,
    pub kind: Kind,
}

/// Everything on the screen.
/// Shown above a room's replayed history (the prototype's language): a
/// note's `-- ` comes first, so it reads `-- histórico --`.
pub const HISTORY_MARKER: &str = "histórico --";

pub struct Screen {
    pub user: String,
    pub room: String,
    pub server: String,
    pub tls: bool,
    /// The room's limit, when the room list (or a `room` event) said.
    pub limit: Option<usize>,
    /// The room is private (a `room` event said).
    pub private: bool,
    pub members: Vec<String>,
    pub show_members: bool,
    pub input: InputLine,
    entries: Vec<Entry>,
    /// Display lines scrolled up from the bottom (0: following).
    scroll: usize,
    /// Entries that arrived while scrolled up.
    unseen: usize,
    /// The history replay is being shown (its marker is up).
    replaying: bool,
    /// A message named us since the last [`Screen::take_bell`].
    bell: bool,
}

impl Screen {
    pub fn new(user: &str, room: &str, server: &str, tls: bool) -> Screen {
        Screen {
            user: user.to_string(),
            room: room.to_string(),
            server: server.to_string(),
            tls,
            limit: None,
            private: false,
            members: Vec::new(),
            show_members: true,
            input: InputLine::new(),
            entries: Vec::new(),
            scroll: 0,
            unseen: 0,
            replaying: false,
            bell: false,
        }
    }

    /// Whether to ring the terminal's bell (once per mention).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.bell)
    }

    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() == SCROLLBACK {
            self.entries.remove(0);
        }
        if self.scroll > 0 {
            self.unseen += 1;
        }
        self.entries.push(entry);
    }

    /// A note from the client itself.
    pub fn note(&mut self, time: &str, text: &str) {
        self.push(Entry {
            time: time.to_string(),
            who: None,
            text: text.to_string(),
            kind: Kind::Local,
        });
    }

    /// An event from the server; `time` is its local HH:MM.
    pub fn on_event(&mut self, event: &Event, time: &str) {
        if event.history && !self.replaying {
            // The replay starts: a marker above it, so that what was said
            // before is never taken for what is said now.
            self.replaying = true;
            self.push(Entry {
                time: time.to_string(),
                who: None,
                text: HISTORY_MARKER.to_string(),
                kind: Kind::Notice,
            });
        } else if !event.history {
            self.replaying = false;
        }
        let kind = match event.kind {
            // Who came and went before: shown dimmed, the member list
            // untouched (the `members` event says who is here).
            EventKind::Join | EventKind::Leave if event.history => Kind::History,
            EventKind::Members => {
                self.members = event.members.clone().unwrap_or_default();
                return;
            }
            EventKind::Rooms => return,
            // The status bar follows the room's limit and privacy.
            EventKind::Room => {
                if let Some(f) = event.facts {
                    self.limit = Some(f.limit);
                    self.private = f.private;
                }
                return;
            }
            EventKind::Join => {
                if !self.members.contains(&event.username) {
                    self.members.push(event.username.clone());
                }
                Kind::Notice
            }
            EventKind::Leave => {
                self.members.retain(|m| *m != event.username);
                Kind::Notice
            }
            EventKind::Message if event.history => Kind::History,
            EventKind::Message
                if event.username != self.user && mentions(&event.message, &self.user) =>
            {
                self.bell = true;
                Kind::Mention
            }
            EventKind::Message => Kind::Message,
            EventKind::Error
            | EventKind::Closed
            | EventKind::Kicked
            | EventKind::Shutdown
            | EventKind::Topic
            | EventKind::Notice => Kind::Notice,
        };
        self.push(Entry {
            time: time.to_string(),
            who: Some(event.username.clone()),
            text: match (&event.kind, &event.reason) {
                (EventKind::Topic, _) if event.message.is_empty() => "(sem tópico)".to_string(),
                (EventKind::Topic, _) => format!("Tópico: {}", event.message),
                (EventKind::Error | EventKind::Kicked | EventKind::Leave, Some(reason)) => {
                    format!("{} ({reason})", event.message)
                }
                _ => event.message.clone(),
            },
            kind,
        });
    }

    /// The room's limit, from a room list.
    pub fn learn_limit(&mut self, rooms: &[RoomEntry]) {
        if let Some(r) = rooms.iter().find(|r| r.name == self.room) {
            self.limit = Some(r.limit);
        }
    }

    pub fn page_up(&mut self, page: usize) {
        self.scroll += page.max(1);
    }

    pub fn page_down(&mut self, page: usize) {
        self.scroll = self.scroll.saturating_sub(page.max(1));
        if self.scroll == 0 {
            self.unseen = 0;
        }
    }

    /// Lays everything out in `frame`.
    pub fn draw(&mut self, frame: &mut Frame) {
        let area = frame.area();
        let [main, status, input] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let (log_area, members_area) = if self.show_members && main.width >= MEMBERS_WIDTH * 3 {
            let [l, m] =
                Layout::horizontal([Constraint::Min(1), Constraint::Length(MEMBERS_WIDTH)])
                    .areas(main);
            (l, Some(m))
        } else {
            (main, None)
        };
        self.draw_log(frame, log_area);
        if let Some(m) = members_area {
            self.draw_members(frame, m);
        }
        self.draw_status(frame, status);
        self.draw_input(frame, input);
    }

    fn draw_log(&mut self, frame: &mut Frame, area: Rect) {
        let columns = usize::from(area.width);
        let height = usize::from(area.height);
        let rows: Vec<Row> = self.entries.iter().flat_map(|e| wrap(e, columns)).collect();
        let max_scroll = rows.len().saturating_sub(height);
        self.scroll = self.scroll.min(max_scroll);
        let end = rows.len() - self.scroll;
        let start = end.saturating_sub(height);
        // Bottom-aligned, as a chat log reads.
        let pad = height - (end - start);
        for (i, row) in rows[start..end].iter().enumerate() {
            put_row(frame.buffer_mut(), area, pad + i, row);
        }
    }

    fn draw_members(&self, frame: &mut Frame, area: Rect) {
        let border = Style::default().add_modifier(Modifier::DIM);
        let buf = frame.buffer_mut();
        for y in 0..area.height {
            buf[(area.x, area.y + y)].set_symbol("│").set_style(border);
        }
        let inner = Rect {
            x: area.x + 1,
            width: area.width - 1,
            ..area
        };
        put_row(
            buf,
            inner,
            0,
            &vec![(format!(" {}", self.members.len()), border)],
        );
        for (i, m) in self.members.iter().enumerate() {
            let mut style = Style::default().fg(name_colour(m));
            if *m == self.user {
                style = style.add_modifier(Modifier::BOLD);
            }
            put_row(buf, inner, i + 1, &vec![(printable(m), style)]);
        }
    }

    fn draw_status(&self, frame: &mut Frame, area: Rect) {
        let occupancy = match self.limit {
            Some(l) => format!("{}/{l}", self.members.len()),
            None => self.members.len().to_string(),
        };
        let security = if self.tls { "TLS" } else { "sem TLS" };
        let private = if self.private { " (privada)" } else { "" };
        let mut text = format!(
            " {}{private} · {occupancy} · {} · {security} · /help",
            printable(&self.room),
            printable(&self.server)
        );
        if self.scroll > 0 {
            let news = if self.unseen == 1 { "nova" } else { "novas" };
            text.push_str(&format!(" · ↑ rolado ({} {news})", self.unseen));
        }
        let style = Style::default().add_modifier(Modifier::REVERSED);
        let buf = frame.buffer_mut();
        buf.set_style(area, style);
        put_row(buf, area, 0, &vec![(text, style)]);
    }

    fn draw_input(&self, frame: &mut Frame, area: Rect) {
        let prompt = format!("{} > ", printable(&self.user));
        let prompt_w = width(&prompt).min(usize::from(area.width) / 2);
        let room = usize::from(area.width).saturating_sub(prompt_w);
        let (shown, col) = self.input.view(room);
        let prompt_style = Style::default()
            .fg(name_colour(&self.user))
            .add_modifier(Modifier::BOLD);
        let row = vec![
            (prompt, prompt_style),
            (printable(&shown), Style::default()),
        ];
        put_row(frame.buffer_mut(), area, 0, &row);
        let x = area.x + u16::try_from(prompt_w + col).unwrap_or(area.width - 1);
        frame.set_cursor_position(Position::new(x.min(area.right() - 1), area.y));
    }
}

/// One entry as display rows of at most `columns` columns: `HH:MM who >
/// text`, continuation rows indented under the text.
fn wrap(e: &Entry, columns: usize) -> Vec<Row> {
    let dim = Style::default().add_modifier(Modifier::DIM);
    let mut head: Row = vec![(format!("{} ", e.time), dim)];
    let text_style = match e.kind {
        Kind::Notice | Kind::History => dim,
        Kind::Local => Style::default().fg(Color::Yellow),
        Kind::Message | Kind::Own => Style::default(),
        Kind::Mention => Style::default()
            .fg(Color::LightYellow)
            .add_modifier(Modifier::BOLD),
    };
    // `/me acena` is an action: `* Yan acena`.
    let said = matches!(
        e.kind,
        Kind::Message | Kind::Own | Kind::History | Kind::Mention
    );
    let action = e
        .text
        .strip_prefix("/me ")
        .filter(|_| said && e.who.is_some());
    if let Some(who) = &e.who {
        let mut style = Style::default().fg(name_colour(who));
        if e.kind == Kind::Own {
            style = style.add_modifier(Modifier::BOLD);
        }
        if e.kind == Kind::History {
            style = style.add_modifier(Modifier::DIM);
        }
        if action.is_some() {
            head.push(("* ".to_string(), dim));
            head.push((printable(who), style));
            head.push((" ".to_string(), dim));
        } else {
            head.push((printable(who), style));
            head.push((" > ".to_string(), dim));
        }
    } else {
        head.push(("-- ".to_string(), text_style));
    }
    let head_w: usize = head.iter().map(|(t, _)| width(t)).sum();
    let indent = if head_w * 2 > columns { 2 } else { head_w };
    let text = printable(action.unwrap_or(&e.text));
    let mut out = Vec::new();
    let mut current = head;
    let mut used = head_w;
    let mut chunk = String::new();
    // Lines break between words; a word longer than a whole line breaks
    // where the line ends; the space a line breaks at is not shown.
    for word in words(&text) {
        let w = width(word);
        let blank = word.chars().all(char::is_whitespace);
        let fits = used + w <= columns;
        if !fits && used > indent && (blank || indent + w <= columns) {
            current.push((std::mem::take(&mut chunk), text_style));
            out.push(std::mem::take(&mut current));
            current.push((" ".repeat(indent), Style::default()));
            used = indent;
            if blank {
                continue;
            }
        }
        for g in word.graphemes(true) {
            let w = width(g);
            if used + w > columns && used > indent {
                current.push((std::mem::take(&mut chunk), text_style));
                out.push(std::mem::take(&mut current));
                current.push((" ".repeat(indent), Style::default()));
                used = indent;
            }
            chunk.push_str(g);
            used += w;
        }
    }
    current.push((chunk, text_style));
    out.push(current);
    out
}

/// Whether `text` names `name` as a word (any case: "yan:", "@Yan", "Yan!"
/// do; "Yanna" does not).
pub fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let (text, name) = (text.to_lowercase(), name.to_lowercase());
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !word(before) && !word(after)
    })
}

/// `text` as runs of spaces and runs of everything else: where a line
/// may break.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut blank = None;
    for (i, c) in text.char_indices() {
        let b = c.is_whitespace();
        if blank.is_some_and(|was| was != b) {
            out.push(&text[start..i]);
            start = i;
        }
        blank = Some(b);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Writes a row into line `y` of `area`, cell by cell as the terminal
/// will draw it ([`cells`]); what does not fit is cut.
fn put_row(buf: &mut Buffer, area: Rect, y: usize, row: &Row) {
    let Ok(y) = u16::try_from(y) else { return };
    if y >= area.height {
        return;
    }
    let y = area.y + y;
    let right = area.right();
    let mut x = area.x;
    for (text, style) in row {
        for (cell, w) in cells(text) {
            let Ok(w) = u16::try_from(w) else { return };
            if w == 0 {
                continue;
            }
            if x + w > right {
                return;
            }
            // Variation selectors change the width some terminals give
            // (❤️): left out, the glyph takes the columns counted.
            let symbol = cell.replace(['\u{fe0f}', '\u{fe0e}'], "");
            buf[(x, y)].set_symbol(&symbol).set_style(*style);
            for extra in 1..w {
                buf[(x + extra, y)].reset();
            }
            x += w;
        }
    }
}

/// A name's colour: the same for the same name, every time and everywhere.
pub fn name_colour(name: &str) -> Color {
    // FNV-1a: stable across runs and platforms (std's hasher is seeded).
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    PALETTE[(h % PALETTE.len() as u32) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn text_of(t: &Terminal<TestBackend>) -> Vec<String> {
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                let mut row = String::new();
                for x in 0..buf.area.width {
                    row.push_str(buf[(x, y)].symbol());
                }
                row.trim_end().to_string()
            })
            .collect()
    }

    fn event(kind: EventKind, who: &str, text: &str) -> Event {
        Event {
            kind,
            username: who.into(),
            message: text.into(),
            ..Event::default()
        }
    }

    #[test]
    fn commands() {
        assert_eq!(command("olá"), Command::Send("olá".into()));
        assert_eq!(command("//help"), Command::Send("/help".into()));
        assert_eq!(command("/help"), Command::Help);
        assert_eq!(command("/WHO"), Command::Who);
        assert_eq!(command("/salas"), Command::Rooms);
        assert_eq!(command("/SAIR"), Command::Leave);
        assert_eq!(
            command("/ban yan 1h spam"),
            Command::Moderate("/ban yan 1h spam".into())
        );
        assert_eq!(command("/Topic"), Command::Moderate("/Topic".into()));
        assert_eq!(command("/sair"), Command::Leave);
        assert_eq!(command("/quit"), Command::Quit);
        assert_eq!(command("/shrug"), Command::Unknown("/shrug".into()));
        assert_eq!(command("   "), Command::Nothing);
    }

    #[test]
    fn the_status_bar_follows_the_room_s_limit_and_privacy() {
        let mut s = Screen::new("Yan", "Secreta", "srv", true);
        let mut ev = event(EventKind::Room, "Sistema", "");
        ev.facts = Some(crate::core::wire::RoomFacts {
            limit: 3,
            private: true,
        });
        s.on_event(&ev, "10:00");
        let mut t = Terminal::new(TestBackend::new(60, 6)).unwrap();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert!(
            rows.iter()
                .any(|r| r.contains("Secreta (privada) · 0/3 · srv · TLS")),
            "{rows:?}"
        );
        assert!(
            !rows.iter().any(|r| r.contains("Sistema")),
            "no line for it: {rows:?}"
        );
    }

    #[test]
    fn a_message_naming_us_is_highlighted_once_with_the_bell_and_me_is_an_action() {
        assert!(mentions("oi Yan, tudo bem?", "yan"));
        assert!(mentions("@YAN!", "Yan"));
        assert!(!mentions("Yanna chegou", "Yan"));
        assert!(!mentions("anything", ""));
        let mut s = Screen::new("Yan", "Teste", "srv", false);
        s.on_event(&event(EventKind::Message, "Ana", "bom dia"), "10:00");
        assert!(!s.take_bell());
        s.on_event(&event(EventKind::Message, "Ana", "yan: viu isso?"), "10:01");
        assert!(s.take_bell());
        assert!(!s.take_bell(), "once");
        assert_eq!(s.entries.last().map(|e| e.kind), Some(Kind::Mention));
        // Our own words never ring.
        s.on_event(&event(EventKind::Message, "Yan", "eu, Yan"), "10:02");
        assert!(!s.take_bell());
        assert_eq!(command("/me acena"), Command::Send("/me acena".into()));
        s.on_event(&event(EventKind::Message, "Ana", "/me acena"), "10:03");
        let mut t = Terminal::new(TestBackend::new(40, 10)).unwrap();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert!(
            rows.iter().any(|r| r.starts_with("10:03 * Ana acena")),
            "{rows:?}"
        );
    }

    #[test]
    fn layout_at_80_columns_and_at_40() {
        let mut s = Screen::new("Yan", "Teste", "127.0.0.1:1234", false);
        s.on_event(
            &Event {
                kind: EventKind::Members,
                members: Some(vec!["Buendia".into(), "Yan".into()]),
                ..Event::default()
            },
            "10:00",
        );
        s.limit = Some(5);
        s.on_event(
            &event(EventKind::Message, "Buendia", "Olá a todos"),
            "10:01",
        );
        s.on_event(
            &event(EventKind::Join, "Úrsula", "*** ENTROU NA SALA ***"),
            "10:02",
        );
        s.input.insert("digitando");
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert_eq!(rows[20], format!("{:<60}│", "10:01 Buendia > Olá a todos"));
        assert!(
            rows[21].starts_with("10:02 Úrsula > *** ENTROU NA SALA ***"),
            "{rows:?}"
        );
        // The member list: a count, then the names in join order.
        assert_eq!(rows[0], format!("{:<60}│ 3", ""));
        assert_eq!(rows[1], format!("{:<60}│Buendia", ""));
        assert_eq!(rows[3], format!("{:<60}│Úrsula", ""));
        assert_eq!(rows[22], " Teste · 3/5 · 127.0.0.1:1234 · sem TLS · /help");
        assert_eq!(rows[23], "Yan > digitando");
        assert_eq!(t.get_cursor_position().unwrap(), Position::new(15, 23));

        // At 40 columns the member list gives way and lines wrap under
        // their text.
        s.on_event(
            &event(
                EventKind::Message,
                "Buendia",
                "uma linha bem comprida que não cabe",
            ),
            "10:03",
        );
        let mut t = Terminal::new(TestBackend::new(40, 24)).unwrap();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        // Between words; only a word longer than the line is cut.
        assert_eq!(
            rows[20].trim_end(),
            "10:03 Buendia > uma linha bem comprida"
        );
        assert_eq!(rows[21], "                que não cabe");
        assert!(!rows.iter().any(|r| r.contains('│')), "{rows:?}");
        s.on_event(
            &event(
                EventKind::Message,
                "Buendia",
                &format!("x {}", "y".repeat(30)),
            ),
            "10:04",
        );
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert_eq!(rows[20], format!("10:04 Buendia > x {}", "y".repeat(22)));
        assert_eq!(
            rows[21].trim_end(),
            format!("                {}", "y".repeat(8))
        );
    }

    #[test]
    fn the_replayed_history_has_a_marker_and_leaves_the_members_alone() {
        let mut s = Screen::new("Yan", "Teste", "srv", false);
        let replayed = |kind, who: &str, text: &str| Event {
            history: true,
            ..event(kind, who, text)
        };
        s.on_event(
            &replayed(EventKind::Join, "Ana", "*** ENTROU NA SALA ***"),
            "09:00",
        );
        s.on_event(&replayed(EventKind::Message, "Ana", "bom dia"), "09:01");
        s.on_event(
            &replayed(EventKind::Leave, "Ana", "*** SAIU DA SALA ***"),
            "09:02",
        );
        s.on_event(
            &event(EventKind::Join, "Yan", "*** ENTROU NA SALA ***"),
            "10:00",
        );
        let texts: Vec<(&str, Kind)> = s
            .entries
            .iter()
            .map(|e| (e.text.as_str(), e.kind))
            .collect();
        assert_eq!(
            texts,
            [
                (HISTORY_MARKER, Kind::Notice),
                ("*** ENTROU NA SALA ***", Kind::History),
                ("bom dia", Kind::History),
                ("*** SAIU DA SALA ***", Kind::History),
                ("*** ENTROU NA SALA ***", Kind::Notice),
            ]
        );
        assert_eq!(s.members, ["Yan"], "Ana came and went before");
    }

    #[test]
    fn scrolling_back_and_the_unseen_count() {
        let mut s = Screen::new("Yan", "Teste", "srv", true);
        for i in 0..50 {
            s.on_event(&event(EventKind::Message, "B", &format!("m{i}")), "10:00");
        }
        let mut t = Terminal::new(TestBackend::new(60, 12)).unwrap();
        s.page_up(10);
        s.on_event(&event(EventKind::Message, "B", "nova"), "10:01");
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert!(rows[9].contains("B > m40"), "{rows:?}");
        assert!(rows[10].contains("↑ rolado (1 nova)") && rows[10].contains("TLS"));
        s.page_down(10);
        t.draw(|f| s.draw(f)).unwrap();
        assert!(text_of(&t)[9].contains("B > nova"));
    }

    #[test]
    fn members_follow_joins_and_leaves() {
        let mut s = Screen::new("Yan", "Teste", "srv", false);
        s.on_event(
            &event(EventKind::Join, "Yan", "*** ENTROU NA SALA ***"),
            "t",
        );
        s.on_event(
            &event(EventKind::Join, "Bia", "*** ENTROU NA SALA ***"),
            "t",
        );
        s.on_event(
            &event(EventKind::Leave, "Yan2", "*** SAIU DA SALA ***"),
            "t",
        );
        s.on_event(&event(EventKind::Leave, "Yan", "*** SAIU DA SALA ***"), "t");
        assert_eq!(s.members, ["Bia"]);
    }

    #[test]
    fn escapes_never_reach_the_terminal_and_names_keep_their_colour() {
        let mut s = Screen::new("Yan", "Teste", "srv", false);
        s.on_event(
            &event(EventKind::Message, "Evil", "\u{1b}]0;pwned\u{7}"),
            "t",
        );
        let mut t = Terminal::new(TestBackend::new(80, 5)).unwrap();
        t.draw(|f| s.draw(f)).unwrap();
        let all = text_of(&t).join("\n");
        assert!(!all.contains('\u{1b}') && !all.contains('\u{7}'), "{all:?}");
        assert_eq!(name_colour("Buendia"), name_colour("Buendia"));
    }
}
