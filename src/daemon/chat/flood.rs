//! Flood control in the chat part (the buckets are core/flood.rs): which
//! frames count (a chat message; IRC PRIVMSG, NOTICE and TAGMSG once
//! registered), who is exempt (IRC operators, a room's operators), and
//! what a delay and a refusal do. A delayed message is kept with its
//! time; the connection's later frames wait behind it (nothing more is
//! read from it, so TCP slows the flooder) and a timer brings it back.

use std::time::Instant;

use super::Chat;
use super::conn::Conn;
use crate::core::codec::{Command, Decoded};
use crate::core::flood::{Flood, Verdict};
use crate::core::hub::ConnId;
use crate::core::irc::Message;
use crate::core::wire::{ErrorCode, Event};
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// The bytes a frame counts for, when flood control counts it.
fn counted(decoded: &Decoded) -> Option<usize> {
    match decoded {
        Decoded::Command(Command::Say(text)) => Some(text.len()),
        Decoded::Irc(Ok(m)) if matches!(m.command.as_str(), "PRIVMSG" | "NOTICE" | "TAGMSG") => {
            Some(m.params.iter().map(String::len).sum())
        }
        _ => None,
    }
}

impl Chat {
    /// Flood control's word on a frame: it runs now (returned), or waits
    /// (kept in `lagged`), or is refused (answered).
    pub(super) fn flood_gate(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        decoded: Decoded,
    ) -> Option<Decoded> {
        let rule = sh.cfg.flood;
        let Some(len) = counted(&decoded).filter(|_| rule.on()) else {
            return Some(decoded);
        };
        // A room operator's command (saved to disk before it is answered)
        // is paced like anyone's message: operators are exempt for talk.
        let command = matches!(&decoded, Decoded::Command(Command::Say(t)) if t.starts_with('/'))
            && self.conns.get(&id).is_some_and(|c| c.wants_commands);
        if self.irc(id).is_some_and(|c| !c.registered) || (!command && self.flood_exempt(sh, id)) {
            return Some(decoded);
        }
        let now = sh.now;
        let c = self.conns.get_mut(&id)?;
        let flood = c
            .flood
            .get_or_insert_with(|| Box::new(Flood::new(&rule, now)));
        match flood.message(&rule, now, len) {
            Verdict::Pass => Some(decoded),
            Verdict::Delay(at) => {
                c.lagged = Some(Box::new((at, decoded)));
                self.touch(sh, id);
                None
            }
            Verdict::Refuse => {
                self.flood_refused(sh, id, &decoded);
                None
            }
        }
    }

    /// IRC operators, and operators of one of its rooms, are not paced.
    fn flood_exempt(&self, sh: &Shared, id: ConnId) -> bool {
        if self.irc(id).is_some_and(|c| c.oper) {
            return true;
        }
        sh.hub
            .rooms_of(id)
            .iter()
            .any(|&r| self.operates(sh, id, r))
    }

    /// A refused message: 429 on the chat port, a NOTICE on IRC; the
    /// first refusal of a run is logged.
    fn flood_refused(&mut self, sh: &mut Shared, id: ConnId, decoded: &Decoded) {
        sh.counters.flood_refusals += 1;
        let why = "flood control: slow down; this message was not sent";
        match decoded {
            Decoded::Irc(Ok(m)) if m.command == "NOTICE" || m.command == "TAGMSG" => {}
            Decoded::Irc(Ok(m)) => {
                let target = m.param(0).unwrap_or("*").to_string();
                let nick = self.irc(id).map(|c| c.target().to_string());
                let server = sh.cfg.irc_server_name.clone();
                let text = format!("{why} (to {target})");
                let line = Message::new(
                    Some(&server),
                    "NOTICE",
                    &[nick.as_deref().unwrap_or("*"), &text],
                )
                .encode();
                self.irc_send(sh, id, &line);
            }
            _ => {
                let room = sh
                    .hub
                    .room_of(id)
                    .and_then(|r| sh.hub.room_name(r))
                    .map(str::to_string);
                let event = Event::error(ErrorCode::TooManyRequests, room.as_deref(), why);
                let line = self.encode_for(sh, id, &event);
                self.feed(sh, id, crate::core::session::Input::Deliver(&line));
            }
        }
        if sh.counters.flood_refusals.is_power_of_two() {
            let who = self.describe(sh, id);
            let line = format!(
                "flood control: refusing messages from {who} ({} refused so far)",
                sh.counters.flood_refusals
            );
            self.id_log(sh, id, Level::Warn, line);
        }
    }

    /// Delayed messages whose time came run now.
    pub(super) fn wake_lagged(&mut self, sh: &mut Shared, due: &[ConnId]) {
        for &id in due {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if !c.on_run_list {
                c.on_run_list = true;
                self.runnable.push_back(id);
            }
        }
        if !due.is_empty() {
            self.process_runnable(sh);
        }
    }
}

impl Conn {
    /// When a delayed message may run (for the timer heap).
    pub fn lagged_until(&self) -> Option<Instant> {
        self.lagged.as_ref().map(|l| l.0)
    }

    /// The delayed message, if its time has come.
    pub fn take_lagged(&mut self, now: Instant) -> Option<Decoded> {
        if self.lagged_until().is_some_and(|at| at <= now) {
            return self.lagged.take().map(|l| l.1);
        }
        None
    }
}
