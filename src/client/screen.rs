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

use super::lang::{Text, t, tf};
use super::line::InputLine;
use super::width::{cells, width};
pub use super::window::{Activity, Entry, Kind, Place, Window, mentions};
use crate::core::text::printable;
use crate::core::wire::Event;

/// A display row: runs of text, each with its style.
type Row = Vec<(String, Style)>;

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

/// The client's help, in this run's language.
pub fn help() -> [&'static str; 5] {
    [
        t(Text::Help1),
        t(Text::Help2),
        t(Text::Help3),
        t(Text::Help4),
        t(Text::Help5),
    ]
}

/// What a line typed at the input means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing to do (a blank line).
    Nothing,
    /// Send this text to the window's room or person.
    Send(String),
    Help,
    Who,
    Rooms,
    /// `/SAIR`, `/part`: leave this window's room (the last room: choose
    /// another), or close this conversation.
    Leave,
    /// `/quit`: close the client.
    Quit,
    /// `/join ROOM`: another room, in a window of its own.
    Join(String),
    /// `/msg NAME [text]`: a conversation with one person.
    Direct(String, String),
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
    let mut parts = word.trim().splitn(2, char::is_whitespace);
    let verb = parts.next().unwrap_or("").to_lowercase();
    let rest = parts.next().unwrap_or("").trim();
    match verb.as_str() {
        "help" | "ajuda" | "?" => Command::Help,
        "who" | "quem" => Command::Who,
        "salas" | "rooms" | "list" => Command::Rooms,
        "sair" | "part" | "close" => Command::Leave,
        "quit" => Command::Quit,
        "join" | "entrar" if !rest.is_empty() => Command::Join(rest.to_string()),
        "msg" | "query" => {
            let mut p = rest.splitn(2, char::is_whitespace);
            let name = p.next().unwrap_or("").to_string();
            Command::Direct(name, p.next().unwrap_or("").trim_start().to_string())
        }
        // `/me acena`: a message (an action), sent as it is.
        "me" if !rest.is_empty() => Command::Send(line.to_string()),
        _ if is_moderation(word) => Command::Moderate(line.trim().to_string()),
        _ => Command::Unknown(line.trim().to_string()),
    }
}

/// Everything on the screen: the windows (rooms and conversations), one
/// of them shown, and the input line they share.
pub struct Screen {
    pub user: String,
    pub server: String,
    pub tls: bool,
    pub show_members: bool,
    pub input: InputLine,
    pub windows: Vec<Window>,
    /// The window shown.
    pub current: usize,
}

impl Screen {
    pub fn new(user: &str, room: &str, server: &str, tls: bool) -> Screen {
        Screen {
            user: user.to_string(),
            server: server.to_string(),
            tls,
            show_members: true,
            input: InputLine::new(),
            windows: vec![Window::room(room)],
            current: 0,
        }
    }

    /// The window shown.
    pub fn win(&self) -> &Window {
        &self.windows[self.current]
    }

    pub fn win_mut(&mut self) -> &mut Window {
        &mut self.windows[self.current]
    }

    /// The window of `name` (a room, or a person for [`Place::Direct`]).
    pub fn find(&self, name: &str, place: &Place) -> Option<usize> {
        let key = |n: &str| match place {
            Place::Room => n.to_string(),
            Place::Direct => crate::core::names::comparison_key(n),
        };
        self.windows
            .iter()
            .position(|w| w.place == *place && key(&w.name) == key(name))
    }

    /// The window of `name`, opened (at the end) if there is none.
    pub fn open(&mut self, name: &str, place: Place) -> usize {
        if let Some(i) = self.find(name, &place) {
            return i;
        }
        self.windows.push(match place {
            Place::Room => Window::room(name),
            Place::Direct => Window::direct(name),
        });
        self.windows.len() - 1
    }

    /// Closes window `i` (never the last one).
    pub fn close(&mut self, i: usize) {
        if self.windows.len() > 1 && i < self.windows.len() {
            self.windows.remove(i);
            if self.current >= i && self.current > 0 {
                self.current -= 1;
            }
        }
    }

    /// Shows window `i` (if there is one).
    pub fn switch(&mut self, i: usize) {
        if i < self.windows.len() {
            self.current = i;
            self.windows[i].activity = Activity::None;
        }
    }

    pub fn next(&mut self) {
        self.switch((self.current + 1) % self.windows.len());
    }

    pub fn prev(&mut self) {
        let n = self.windows.len();
        self.switch((self.current + n - 1) % n);
    }

    /// Everyone the windows know of (rooms' members, conversations'
    /// people), once each, sorted.
    pub fn everyone(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .windows
            .iter()
            .flat_map(|w| match w.place {
                Place::Room => w.members.clone(),
                Place::Direct => vec![w.name.clone()],
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Whether to ring the terminal's bell (once per mention).
    pub fn take_bell(&mut self) -> bool {
        let mut bell = false;
        for w in &mut self.windows {
            bell |= w.take_bell();
        }
        bell
    }

    /// A note from the client itself, in the window shown.
    pub fn note(&mut self, time: &str, text: &str) {
        self.win_mut().note(time, text);
    }

    /// An event for the window shown; `time` is its local HH:MM.
    pub fn on_event(&mut self, event: &Event, time: &str) {
        let i = self.current;
        self.on_event_in(i, event, time);
    }

    /// An event for window `i`.
    pub fn on_event_in(&mut self, i: usize, event: &Event, time: &str) {
        let me = self.user.clone();
        self.windows[i].on_event(event, time, &me);
    }

    pub fn page_up(&mut self, page: usize) {
        self.win_mut().page_up(page);
    }

    pub fn page_down(&mut self, page: usize) {
        self.win_mut().page_down(page);
    }

    /// Lays everything out in `frame`.
    pub fn draw(&mut self, frame: &mut Frame) {
        // What is on screen is seen.
        self.windows[self.current].activity = Activity::None;
        let area = frame.area();
        let [main, status, input] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let list = self.show_members && self.win().is_room();
        let (log_area, members_area) = if list && main.width >= MEMBERS_WIDTH * 3 {
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
        let w = &mut self.windows[self.current];
        let rows: Vec<Row> = w.entries.iter().flat_map(|e| wrap(e, columns)).collect();
        let max_scroll = rows.len().saturating_sub(height);
        w.scroll = w.scroll.min(max_scroll);
        let end = rows.len() - w.scroll;
        let start = end.saturating_sub(height);
        // Bottom-aligned, as a chat log reads.
        let pad = height - (end - start);
        for (i, row) in rows[start..end].iter().enumerate() {
            put_row(frame.buffer_mut(), area, pad + i, row);
        }
    }

    fn draw_members(&self, frame: &mut Frame, area: Rect) {
        let members = &self.win().members;
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
            &vec![(format!(" {}", members.len()), border)],
        );
        for (i, m) in members.iter().enumerate() {
            let mut style = Style::default().fg(name_colour(m));
            if *m == self.user {
                style = style.add_modifier(Modifier::BOLD);
            }
            put_row(buf, inner, i + 1, &vec![(printable(m), style)]);
        }
    }

    fn draw_status(&self, frame: &mut Frame, area: Rect) {
        let w = self.win();
        let occupancy = match (w.is_room(), w.limit) {
            (false, _) => None,
            (true, Some(l)) => Some(format!("{}/{l}", w.members.len())),
            (true, None) => Some(w.members.len().to_string()),
        };
        let security = if self.tls { "TLS" } else { t(Text::NoTls) };
        let mut text = format!(" {}", self.window_list());
        if w.private {
            text.push_str(&format!(" ({})", t(Text::Private)));
        }
        for part in occupancy.iter().chain([&printable(&self.server)]) {
            text.push_str(&format!(" · {part}"));
        }
        text.push_str(&format!(" · {security}"));
        if let Some(link) = &w.link {
            text.push_str(&format!(" · {link}"));
        }
        text.push_str(" · /help");
        if w.scroll > 0 {
            let news = match w.unseen {
                1 => Text::ScrolledOne,
                _ => Text::ScrolledMany,
            };
            text.push_str(&format!(" · {}", tf(news, &[&w.unseen.to_string()])));
        }
        let style = Style::default().add_modifier(Modifier::REVERSED);
        let buf = frame.buffer_mut();
        buf.set_style(area, style);
        put_row(buf, area, 0, &vec![(text, style)]);
    }

    /// The shown window's name; with several, all of them numbered, the
    /// shown one in brackets, the others marked `+` (messages) or `!`
    /// (a mention, a direct message) when something came.
    fn window_list(&self) -> String {
        let label = |w: &Window| match w.place {
            Place::Room => printable(&w.name),
            Place::Direct => format!("@{}", printable(&w.name)),
        };
        if self.windows.len() == 1 {
            return label(self.win());
        }
        let items: Vec<String> = self
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mark = match w.activity {
                    Activity::Mention => "!",
                    Activity::Messages => "+",
                    Activity::Events | Activity::None => "",
                };
                match i == self.current {
                    true => format!("[{}:{}]", i + 1, label(w)),
                    false => format!("{}:{}{mark}", i + 1, label(w)),
                }
            })
            .collect();
        items.join(" ")
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
        Kind::Notice | Kind::History | Kind::Joined | Kind::Left => dim,
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
        let arrow = match e.kind {
            Kind::Joined => Some("→ "),
            Kind::Left => Some("← "),
            _ => None,
        };
        if let Some(arrow) = arrow {
            // Comings and goings read unlike messages: `→ Ana entrou na
            // sala`, dimmed.
            head.push((arrow.to_string(), dim));
            head.push((printable(who), style.add_modifier(Modifier::DIM)));
            head.push((" ".to_string(), dim));
        } else if action.is_some() {
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
    use crate::core::wire::EventKind;
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
        assert_eq!(command("/part"), Command::Leave);
        assert_eq!(
            command("/join  Sala é 👍🏽 "),
            Command::Join("Sala é 👍🏽".into())
        );
        assert_eq!(command("/join"), Command::Unknown("/join".into()));
        assert_eq!(
            command("/msg Ana  oi, tudo bem?"),
            Command::Direct("Ana".into(), "oi, tudo bem?".into())
        );
        assert_eq!(
            command("/query Ana"),
            Command::Direct("Ana".into(), "".into())
        );
        assert_eq!(command("/me"), Command::Unknown("/me".into()));
    }

    #[test]
    fn several_windows_are_listed_with_what_came_in_each() {
        let mut s = Screen::new("Yan", "Teste", "srv", false);
        let lobby = s.open("Lobby", Place::Room);
        let ana = s.open("Ana", Place::Direct);
        assert_eq!(s.open("ana", Place::Direct), ana, "one window per person");
        s.on_event_in(lobby, &event(EventKind::Message, "Bia", "oi"), "10:00");
        s.windows[ana].direct_from("10:01", "Ana", "psiu");
        let mut t = Terminal::new(TestBackend::new(80, 6)).unwrap();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert_eq!(
            rows[4],
            " [1:Teste] 2:Lobby+ 3:@Ana! · 0 · srv · sem TLS · /help"
        );
        assert!(s.take_bell(), "a direct message rings");
        s.next();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert!(rows[3].contains("Bia > oi"), "{rows:?}");
        assert_eq!(
            rows[4],
            " 1:Teste [2:Lobby] 3:@Ana! · 0 · srv · sem TLS · /help"
        );
        s.prev();
        s.prev();
        t.draw(|f| s.draw(f)).unwrap();
        let rows = text_of(&t);
        assert!(rows[3].contains("Ana > psiu"), "{rows:?}");
        assert_eq!(rows[4], " 1:Teste 2:Lobby [3:@Ana] · srv · sem TLS · /help");
        s.close(ana);
        assert_eq!((s.windows.len(), s.current), (2, 1));
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
        assert_eq!(s.win().entries.last().map(|e| e.kind), Some(Kind::Mention));
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
        s.win_mut().limit = Some(5);
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
            rows[21].starts_with("10:02 → Úrsula entrou na sala"),
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
            .win()
            .entries
            .iter()
            .map(|e| (e.text.as_str(), e.kind))
            .collect();
        assert_eq!(
            texts,
            [
                ("histórico --", Kind::Notice),
                ("entrou na sala", Kind::Joined),
                ("bom dia", Kind::History),
                ("saiu da sala", Kind::Left),
                ("entrou na sala", Kind::Joined),
            ]
        );
        assert_eq!(s.win().members, ["Yan"], "Ana came and went before");
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
        assert_eq!(s.win().members, ["Bia"]);
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
