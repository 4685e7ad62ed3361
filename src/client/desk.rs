//! The full screen's loop: one select(2) over stdin, the signal self-pipe
//! and one connection per room (the chat protocol joins one room per
//! connection; chatd lets connections that spell a name alike share it).
//! No threads.
//!
//! - A room's connection that is lost (the server restarting included)
//!   is made again with backoff (1 s doubling to 30 s, with jitter, for
//!   as long as it takes); the status bar counts down, and the rejoin's
//!   history shows only what was missed ([`super::window`]).
//! - `/join` opens another room in a window of its own, `/part` leaves
//!   one; `/msg NAME text` is a direct message (chatd's `/msg` command)
//!   in a window per person, and direct messages arrive on whichever
//!   connection chatd chose.
//! - The first room's first join is the caller's: if it is refused, the
//!   loop ends with that refusal and `chat` asks again, as before.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::select::{FdSet, select};
use nix::sys::time::{TimeVal, TimeValLike};

use super::lang::{Text, t, tf};
use super::retry::{self, Backoff};
use super::run::{Options, RoomLister};
use super::screen::{Command, Place, help};
use super::session::{ClientSession, EndedBy, Ending, Update, ending_after};
use super::transport::{Incoming, Transport};
use super::tui::{self, Tui};
use crate::core::text::printable;
use crate::core::wire::{Event, EventKind};
use crate::sys::selfpipe::SelfPipe;

/// How often the loop wakes to count down and check its deadlines.
const TICK: Duration = Duration::from_millis(250);

/// Makes a connection to the server (TCP, TLS when asked).
pub type Connect<'a> = &'a dyn Fn() -> Result<Transport, Ending>;
/// The handshake for a room.
pub type Handshake<'a> = &'a dyn Fn(&str) -> ClientSession;

/// One room's connection, or the wait before the next try.
struct Link {
    room: String,
    conn: Option<Conn>,
    /// When to connect again (no connection meanwhile).
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Joined at least once: a loss is worth reconnecting.
    joined_once: bool,
}

impl Link {
    /// A room to connect to now.
    fn waiting(room: String) -> Link {
        Link {
            room,
            conn: None,
            retry_at: Some(Instant::now()),
            backoff: Backoff::new(),
            joined_once: false,
        }
    }
}

struct Conn {
    transport: Transport,
    session: ClientSession,
    join_deadline: Instant,
}

/// What happened to a link in one pass.
enum LinkEnd {
    /// Try again after the backoff.
    Retry(String),
    /// Over: say why in its window, and drop it.
    Over(Ending),
}

pub struct Desk<'a> {
    tui: &'a mut Tui,
    signals: &'a mut SelfPipe,
    connect: Connect<'a>,
    handshake: Handshake<'a>,
    rooms: RoomLister<'a>,
    opts: Options,
    links: Vec<Link>,
}

impl<'a> Desk<'a> {
    /// `tui` shows the first room's window; its connection is `first`.
    pub fn new(
        tui: &'a mut Tui,
        signals: &'a mut SelfPipe,
        connect: Connect<'a>,
        handshake: Handshake<'a>,
        rooms: RoomLister<'a>,
        opts: Options,
        first: Transport,
    ) -> Desk<'a> {
        let room = tui.screen.win().name.clone();
        let session = handshake(&room);
        let mut link = Link::waiting(room);
        link.retry_at = None;
        link.conn = Some(Conn {
            transport: first,
            session,
            join_deadline: Instant::now() + opts.join_timeout,
        });
        Desk {
            tui,
            signals,
            connect,
            handshake,
            rooms,
            opts,
            links: vec![link],
        }
    }

    /// Runs until the person quits or leaves the last room, or the first
    /// join fails.
    pub fn run(&mut self) -> Ending {
        loop {
            self.connect_due();
            // From the last: a link that ends is removed, and the ones
            // before it keep their places.
            for i in (0..self.links.len()).rev() {
                if let Some(end) = self.flush(i)
                    && let Some(ending) = self.link_ended(i, end)
                {
                    return ending;
                }
            }
            if self.links.is_empty() {
                return Ending::Left;
            }
            self.show_links();
            for note in super::pin::take_notes() {
                self.tui.screen.note(&tui::local_hhmm(None), &note);
            }
            self.tui.draw();
            if let Some(ending) = self.wait_and_handle() {
                return ending;
            }
        }
    }

    /// Connects the links whose pause is over.
    fn connect_due(&mut self) {
        let now = Instant::now();
        for l in &mut self.links {
            if l.conn.is_some() || l.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            match (self.connect)() {
                Ok(transport) => {
                    l.retry_at = None;
                    l.conn = Some(Conn {
                        transport,
                        session: (self.handshake)(&l.room),
                        join_deadline: now + self.opts.join_timeout,
                    });
                }
                Err(_) => {
                    let pause = l.backoff.forever(retry::clock_jitter());
                    l.retry_at = Some(now + pause);
                }
            }
        }
    }

    /// Sends what waits on link `i`; checks its join's deadline.
    fn flush(&mut self, i: usize) -> Option<LinkEnd> {
        let l = &mut self.links[i];
        let c = l.conn.as_mut()?;
        if let Err(e) = c.transport.flush(c.session.output()) {
            return Some(LinkEnd::Retry(super::lang::io_error(&e)));
        }
        if !c.session.joined() && Instant::now() >= c.join_deadline {
            return Some(match l.joined_once {
                true => LinkEnd::Retry(tf(
                    Text::NoAnswer,
                    &[&self.opts.join_timeout.as_secs().to_string()],
                )),
                false => LinkEnd::Over(Ending::NoAnswer),
            });
        }
        None
    }

    /// The status bar's word on each room's connection.
    fn show_links(&mut self) {
        let now = Instant::now();
        for l in &self.links {
            let text = match (&l.conn, l.retry_at) {
                (Some(c), _) if c.session.joined() => None,
                (Some(_), _) => Some(t(Text::Connecting).to_string()),
                (None, Some(at)) => {
                    let secs = at.saturating_duration_since(now).as_secs_f64().ceil();
                    Some(tf(Text::Reconnecting, &[&format!("{secs:.0}")]))
                }
                (None, None) => None,
            };
            if let Some(i) = self.tui.screen.find(&l.room, &Place::Room) {
                self.tui.screen.windows[i].link = text;
            }
        }
    }

    fn wait_and_handle(&mut self) -> Option<Ending> {
        let stdin = io::stdin();
        let stdin_fd = stdin.as_fd();
        let mut rset = FdSet::new();
        let mut wset = FdSet::new();
        rset.insert(stdin_fd);
        rset.insert(self.signals.fd());
        for l in &self.links {
            if let Some(c) = &l.conn {
                let fd = c.transport.stream().as_fd();
                rset.insert(fd);
                if c.transport.wants_write(c.session.pending()) {
                    wset.insert(fd);
                }
            }
        }
        let mut tv = TimeVal::milliseconds(TICK.as_millis() as i64);
        match select(None, &mut rset, &mut wset, None, &mut tv) {
            Ok(_) => {}
            Err(Errno::EINTR) => return None,
            Err(e) => return Some(Ending::Lost(format!("select: {e}"))),
        }
        let sig = rset.contains(self.signals.fd());
        let keys = rset.contains(stdin_fd);
        let readable: Vec<usize> = (0..self.links.len())
            .rev()
            .filter(|&i| {
                self.links[i]
                    .conn
                    .as_ref()
                    .is_some_and(|c| rset.contains(c.transport.stream().as_fd()))
            })
            .collect();
        if sig {
            let got = self.signals.take();
            if got.iter().any(|&s| s != signal_hook::consts::SIGWINCH) {
                return Some(Ending::Quit);
            }
        }
        for i in readable {
            if let Some(end) = self.read_link(i)
                && let Some(ending) = self.link_ended(i, end)
            {
                return Some(ending);
            }
        }
        if self.tui.screen.take_bell() {
            // Someone named us, or wrote to us: the terminal's bell (BEL).
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"\x07");
            let _ = out.flush();
        }
        if keys {
            return self.on_keys();
        }
        None
    }

    /// What link `i`'s server sent.
    fn read_link(&mut self, i: usize) -> Option<LinkEnd> {
        let c = self.links[i].conn.as_mut()?;
        let data = match c.transport.read() {
            Ok(Incoming::Data(data)) => data,
            Ok(Incoming::Nothing) => return None,
            Ok(Incoming::Closed) => {
                let why = match c.session.closed_why() {
                    Some(why) if !self.links[i].joined_once => {
                        return Some(LinkEnd::Over(Ending::Lost(why.into())));
                    }
                    _ => t(Text::ClosedByServer),
                };
                return Some(LinkEnd::Retry(why.into()));
            }
            Ok(Incoming::TlsFailed(why)) => return Some(LinkEnd::Over(Ending::TlsFailed(why))),
            Err(e) => return Some(LinkEnd::Retry(super::lang::io_error(&e))),
        };
        let updates = c.session.received(&data);
        let joined = c.session.joined();
        let me = c.session.user().map(str::to_string);
        if self.tui.screen.user.is_empty()
            && let Some(me) = &me
        {
            // Logged in by token: the join told us our name.
            self.tui.screen.user = me.clone();
        }
        let room = self.links[i].room.clone();
        if joined && !self.links[i].joined_once {
            self.links[i].joined_once = true;
        } else if joined && self.links[i].backoff.retries() > 0 {
            // Back after a loss.
            self.links[i].backoff = Backoff::new();
            self.note_in(&room, t(Text::Reconnected));
        }
        for update in updates {
            match update {
                Update::Show { event, .. } => {
                    if let Some(end) = self.on_event(&room, &event) {
                        return Some(end);
                    }
                }
                Update::Garbage(line) => {
                    let text = format!("? {}", printable(&String::from_utf8_lossy(&line)));
                    self.note_in(&room, &text);
                }
                Update::Rejected { code, reason } => {
                    let text = tf(
                        Text::MessageRefused,
                        &[&code, &super::lang::reason(&code, &reason)],
                    );
                    // Said where the person typed (a direct message's
                    // refusal comes back on a room's connection).
                    self.tui.screen.note(&tui::local_hhmm(None), &text);
                }
                Update::End(Ending::Refused { code, reason }) => {
                    return Some(self.refused(i, code, reason));
                }
                Update::End(Ending::Lost(why)) => return Some(LinkEnd::Retry(why)),
                Update::End(other) => return Some(LinkEnd::Over(other)),
            }
        }
        None
    }

    /// A refusal of link `i`'s join: worth another try when the room
    /// was joined before and the refusal may pass (busy; the name still
    /// held by our lost connection).
    fn refused(&mut self, i: usize, code: String, reason: String) -> LinkEnd {
        let passing = code == "503" || code == "409";
        if self.links[i].joined_once && passing {
            return LinkEnd::Retry(super::lang::reason(&code, &reason));
        }
        LinkEnd::Over(Ending::Refused { code, reason })
    }

    /// An event on `room`'s connection: to its window, or to a person's.
    fn on_event(&mut self, room: &str, event: &Event) -> Option<LinkEnd> {
        let time = tui::local_hhmm(event.ts.as_deref());
        if event.kind == EventKind::Direct {
            let w = self.tui.screen.open(&event.username, Place::Direct);
            self.tui.screen.windows[w].direct_from(&time, &event.username, &event.message);
            return None;
        }
        let w = self.tui.screen.open(room, Place::Room);
        self.tui.screen.on_event_in(w, event, &time);
        match ending_after(event) {
            // The server is stopping: it will be back, most likely.
            Some(Ending::Ended(EndedBy::Shutdown, _)) => {
                Some(LinkEnd::Retry(t(Text::ServerStopping).into()))
            }
            Some(other) => Some(LinkEnd::Over(other)),
            None => None,
        }
    }

    /// Link `i` ended: to be tried again, or over. `Some` ends the loop:
    /// the first room's first join failed, or the only room is over.
    fn link_ended(&mut self, i: usize, end: LinkEnd) -> Option<Ending> {
        let room = self.links[i].room.clone();
        let was_in = self.links[i]
            .conn
            .take()
            .is_some_and(|c| c.session.joined());
        match end {
            LinkEnd::Retry(why) if self.links[i].joined_once => {
                let pause = self.links[i].backoff.forever(retry::clock_jitter());
                self.links[i].retry_at = Some(Instant::now() + pause);
                // Said once, when the room is lost; the tries after it
                // only count down in the status bar.
                if was_in {
                    self.note_in(&room, &tf(Text::Disconnected, &[&why]));
                }
                None
            }
            LinkEnd::Retry(why) => self.over(i, Ending::Lost(why)),
            LinkEnd::Over(ending) => self.over(i, ending),
        }
    }

    /// Link `i` is over: the loop's ending if nothing else is open (or it
    /// was the first join), else a note in its window.
    fn over(&mut self, i: usize, ending: Ending) -> Option<Ending> {
        let link = self.links.remove(i);
        if self.links.is_empty() {
            return Some(ending);
        }
        let why = match &ending {
            Ending::Refused { code, reason } => tf(
                Text::JoinRefused,
                &[code, &super::lang::reason(code, reason)],
            ),
            // The event's own line said it.
            Ending::Ended(..) => String::new(),
            Ending::Lost(why) | Ending::TlsFailed(why) => tf(Text::Disconnected, &[why]),
            Ending::NoAnswer => tf(
                Text::NoAnswer,
                &[&self.opts.join_timeout.as_secs().to_string()],
            ),
            Ending::Left | Ending::Quit => return None,
        };
        if !why.is_empty() {
            self.note_in(&link.room, why.trim_end());
        }
        self.note_in(&link.room, &tf(Text::JoinHint, &[&link.room]));
        None
    }

    /// A note of the client's in `room`'s window.
    fn note_in(&mut self, room: &str, text: &str) {
        let w = self.tui.screen.open(room, Place::Room);
        self.tui.screen.windows[w].note(&tui::local_hhmm(None), text);
    }

    /// The link of window `w`'s room.
    fn link_of_window(&self, w: usize) -> Option<usize> {
        let win = &self.tui.screen.windows[w];
        if !win.is_room() {
            return None;
        }
        self.links.iter().position(|l| l.room == win.name)
    }

    /// A joined link to carry a direct message: the shown room's, else
    /// the first joined.
    fn any_joined(&self) -> Option<usize> {
        let joined = |i: &usize| {
            self.links[*i]
                .conn
                .as_ref()
                .is_some_and(|c| c.session.joined())
        };
        let shown = self.link_of_window(self.tui.screen.current);
        shown
            .filter(joined)
            .or_else(|| (0..self.links.len()).find(joined))
    }

    fn send_on(&mut self, link: usize, wire: &[u8]) {
        if let Some(c) = &mut self.links[link].conn {
            c.session.send(wire);
        }
    }

    fn on_keys(&mut self) -> Option<Ending> {
        let now = tui::local_hhmm(None);
        for command in self.tui.read_keys() {
            match command {
                Command::Nothing => {}
                Command::Quit => return Some(Ending::Quit),
                Command::Leave => {
                    if let Some(ending) = self.leave_window() {
                        return Some(ending);
                    }
                }
                Command::Send(text) => self.say(&now, &text),
                Command::Moderate(text) => match self.link_of_window(self.tui.screen.current) {
                    Some(l) => self.send_on(l, text.as_bytes()),
                    None => self.tui.screen.note(&now, t(Text::NoRoomToSend)),
                },
                Command::Join(room) => self.join(&room),
                Command::Direct(name, text) => self.direct(&now, &name, &text),
                Command::Help => {
                    for line in help() {
                        self.tui.screen.note(&now, line);
                    }
                }
                Command::Who => {
                    let screen = &self.tui.screen;
                    let names: Vec<String> = match screen.win().place {
                        Place::Room => screen.win().members.iter().map(|m| printable(m)).collect(),
                        Place::Direct => {
                            vec![printable(&screen.user), printable(&screen.win().name)]
                        }
                    };
                    let text = tf(
                        Text::InTheRoom,
                        &[&names.len().to_string(), &names.join(", ")],
                    );
                    self.tui.screen.note(&now, &text);
                }
                Command::Rooms => {
                    let rooms = (self.rooms)();
                    self.tui.show_rooms(rooms);
                }
                Command::Unknown(word) => self
                    .tui
                    .screen
                    .note(&now, &tf(Text::UnknownCommand, &[&word])),
            }
        }
        None
    }

    /// What was typed in the shown window: to its room, or to its person.
    fn say(&mut self, now: &str, text: &str) {
        let screen = &self.tui.screen;
        let me = screen.user.clone();
        let w = screen.current;
        if screen.win().place == Place::Direct {
            let name = screen.win().name.clone();
            return self.direct(now, &name, text);
        }
        let Some(l) = self.link_of_window(w).filter(|&l| {
            self.links[l]
                .conn
                .as_ref()
                .is_some_and(|c| c.session.joined())
        }) else {
            return self.tui.screen.note(now, t(Text::NoRoomToSend));
        };
        self.tui.screen.windows[w].own(now, &me, text);
        // chatd reads a leading `/` as a command (the "commands"
        // feature): `//` sends one as it is.
        let wire = match text.starts_with('/') {
            true => format!("/{text}"),
            false => text.to_string(),
        };
        self.send_on(l, wire.as_bytes());
    }

    /// `/msg NAME text`: the message, through a joined room's connection
    /// (chatd's `/msg` command), kept in the person's window.
    fn direct(&mut self, now: &str, name: &str, text: &str) {
        if name.is_empty() {
            return self.tui.screen.note(now, t(Text::DirectNeedsName));
        }
        let fresh = self.tui.screen.find(name, &Place::Direct).is_none();
        let w = self.tui.screen.open(name, Place::Direct);
        if fresh {
            self.tui.screen.windows[w].note(now, &tf(Text::DirectWith, &[&printable(name)]));
        }
        if text.is_empty() {
            // `/msg NAME`, `/query NAME`: to the conversation. With a
            // text, the shown window stays (as irssi's /msg).
            return self.tui.screen.switch(w);
        }
        let Some(l) = self.any_joined() else {
            return self.tui.screen.note(now, t(Text::NoRoomToSend));
        };
        let me = self.tui.screen.user.clone();
        self.tui.screen.windows[w].own(now, &me, text);
        let wire = format!("/msg {} {text}", quoted(name));
        self.send_on(l, wire.as_bytes());
    }

    /// `/join ROOM`: its window, and a connection of its own.
    fn join(&mut self, room: &str) {
        let now = tui::local_hhmm(None);
        let rooms = (self.rooms)().unwrap_or_default();
        let room = tui::pick_room(room, &rooms);
        let w = self.tui.screen.open(&room, Place::Room);
        self.tui.screen.switch(w);
        self.tui.screen.windows[w].learn_limit(&rooms);
        if self.links.iter().any(|l| l.room == room) {
            return self
                .tui
                .screen
                .note(&now, &tf(Text::AlreadyIn, &[&printable(&room)]));
        }
        self.links.push(Link::waiting(room));
    }

    /// `/part`, `/SAIR`: the shown room is left (its connection closed)
    /// or the conversation closed. Leaving the last room ends the loop.
    fn leave_window(&mut self) -> Option<Ending> {
        let w = self.tui.screen.current;
        if let Some(l) = self.link_of_window(w) {
            self.links.remove(l);
        }
        let rooms_left = self.links.len();
        if rooms_left == 0 {
            return Some(Ending::Left);
        }
        self.tui.screen.close(w);
        None
    }
}

/// A name as `/msg` takes it: in double quotes when it has a space.
fn quoted(name: &str) -> String {
    match name.contains(' ') {
        true => format!("\"{name}\""),
        false => name.to_string(),
    }
}
