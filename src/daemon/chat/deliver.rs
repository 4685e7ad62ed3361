//! Delivery, and the back-pressure it feeds: an event is encoded once,
//! pushed once into its room's ring for the members that read from it
//! (rings.rs) and appended to the output of the others; a member above
//! the high-water mark stops its room from being read (flow.rs decides,
//! this carries it out); a delivery that waits in a held room's inbox
//! goes out when the room's members caught up.

use super::conn::Taken;
use super::flow::{Arrival, FlowEvent};
use super::inbox::{Inbox, Waiting};
use super::{Chat, ChatOut};
use crate::core::hub::{ConnId, Delivery, RoomId};
use crate::core::session::Phase;
use crate::core::wire::EventKind;
use crate::daemon::shared::Shared;

impl Chat {
    /// One event, encoded once, to each recipient (through the room's
    /// ring, or appended). A recipient whose output would exceed `--sendq`
    /// is dropped instead (after the delivery).
    pub fn deliver(&mut self, sh: &mut Shared, d: &Delivery) {
        self.deliver_here(sh, d);
        self.drop_doomed(sh);
    }

    pub(super) fn deliver_here(&mut self, sh: &mut Shared, d: &Delivery) {
        self.monitor_membership(sh, &d.event);
        if matches!(d.event.kind, EventKind::Join | EventKind::Leave) {
            // (A message is kept where it is said: join.rs, irc_messages.rs,
            // and the cluster's for another node's.)
            sh.remember(d);
        }
        let line = sh.encode(&d.event);
        // Behind what waits in the room's inbox, if anything does.
        if let Some(line) = self.flow.local(d.room, &d.to, line, &d.event) {
            self.deliver_room(sh, d.room, &d.to, &line, &d.event, false);
        }
    }

    /// MONITOR hears of the chat port's people through their rooms: a
    /// name's first join brings it, the leave that frees it takes it.
    fn monitor_membership(&mut self, sh: &mut Shared, event: &crate::core::wire::Event) {
        if !self.monitors.any() {
            return;
        }
        let people = sh.hub.people();
        let name = event.username.as_str();
        match event.kind {
            EventKind::Join if people.members(name) == 1 => self.monitor_notify(sh, name, true),
            EventKind::Leave if people.holder_of(name).is_none() => {
                self.monitor_notify(sh, name, false)
            }
            _ => {}
        }
    }

    /// Another node's delivery: while this node holds the room back it
    /// waits in the room's inbox, up to the bound; past that the other
    /// nodes have not stopped, and what waits goes out (and `--sendq`
    /// decides, as for a sender here).
    pub fn deliver_from_elsewhere(&mut self, sh: &mut Shared, d: &Delivery) {
        let line = sh.encode(&d.event);
        let bound = Inbox::BOUND_PER_SENDQ * sh.cfg.sendq;
        let mut events = Vec::new();
        match self
            .flow
            .remote(d.room, d.to.clone(), line, &d.event, bound, &mut events)
        {
            Arrival::Deliver(to, line) => {
                self.deliver_room(sh, d.room, &to, &line, &d.event, false);
            }
            Arrival::Queued => {}
            Arrival::Overflow(all) => {
                sh.counters.inbox_overflows += 1;
                if sh.counters.inbox_overflows.is_power_of_two() {
                    let warning = format!(
                        "cluster: room '{}' was held back, yet other nodes sent more than {bound} bytes; delivering anyway ({} time(s) so far)",
                        sh.hub.room_name(d.room).unwrap_or("?"),
                        sh.counters.inbox_overflows
                    );
                    sh.log.warn(warning);
                }
                for w in all {
                    self.deliver_waiting(sh, d.room, w);
                }
            }
        }
        self.apply_flow(sh, events);
        self.drop_doomed(sh);
    }

    /// Appends one line in the prototype's protocol to each recipient's
    /// output; returns the recipients that speak IRC, skipped here (the
    /// caller renders the event for them, once: `deliver_irc`).
    pub(super) fn deliver_line(
        &mut self,
        sh: &mut Shared,
        recipients: &[ConnId],
        line: &[u8],
    ) -> Vec<ConnId> {
        let now = sh.now;
        let mut delivered = 0;
        let mut irc = Vec::new();
        for &to in recipients {
            // The hot path (one per delivery): one lookup, and the room's
            // back-pressure accounting only when the member crossed the mark.
            // (In cluster mode, members on other nodes have no connection
            // here: their nodes deliver.)
            let Some(c) = self.conns.get_mut(&to) else {
                continue;
            };
            if c.irc.is_some() {
                irc.push(to);
                continue;
            }
            delivered += 1;
            let taken = Chat::own_line(&mut self.rings, c, |c| c.take_line(now, line));
            self.appended(sh, to, taken);
        }
        sh.counters.deliveries += delivered;
        irc
    }

    /// What follows a line appended to `to` ([`Conn::take_line`]): the
    /// touched list, the room's back-pressure count only when the member
    /// crossed the mark, the session's action.
    #[inline]
    pub(super) fn appended(&mut self, sh: &mut Shared, to: ConnId, taken: Taken) {
        if taken.first_touch {
            self.touched.push(to);
        }
        if taken.crossed {
            self.account_backlog(sh, to);
        }
        if let Some(a) = taken.action {
            self.act(sh, to, a);
        }
    }

    /// A delivery that waited in an inbox, to those still in the room.
    fn deliver_waiting(&mut self, sh: &mut Shared, room: RoomId, w: Waiting) {
        let to: Vec<ConnId> =
            w.to.into_iter()
                .filter(|&m| sh.hub.rooms_of(m).contains(&room))
                .collect();
        self.deliver_room(sh, room, &to, &w.line, &w.event, false);
    }

    /// What waits in the inboxes of rooms whose members caught up goes
    /// out, oldest first, until a member is backed up again.
    pub fn drain_inboxes(&mut self, sh: &mut Shared) {
        while let Some(room) = self.flow.next_to_drain() {
            let mut last = false;
            while let Some(w) = self.flow.take_waiting(room) {
                last = !self.flow.held_here(room);
                self.deliver_waiting(sh, room, w);
            }
            if last {
                let mut events = Vec::new();
                self.flow.emptied(room, &mut events);
                self.apply_flow(sh, events);
            }
        }
        self.drop_doomed(sh);
    }

    /// Keeps the rooms' backlog counts equal to the number of members
    /// above the mark; when a room starts or stops flowing, its members'
    /// read interest changes, and those with frames waiting can run.
    pub(super) fn account_backlog(&mut self, sh: &mut Shared, id: ConnId) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let want = if c.session.backlogged() && c.session.phase() == Phase::Member {
            sh.hub.room_of(id)
        } else {
            None
        };
        let had = c.counted_in;
        if want == had {
            return;
        }
        self.conns.get_mut(&id).expect("checked").counted_in = want;
        let mut events = Vec::new();
        if let Some(room) = had {
            self.flow.caught_up(room, &mut events);
        }
        if let Some(room) = want {
            self.flow.backed_up(room, &mut events);
        }
        self.apply_flow(sh, events);
    }

    /// Carries out what a change of flow needs: members touched (their
    /// read interest follows), holds passed on to the cluster.
    pub(super) fn apply_flow(&mut self, sh: &mut Shared, events: Vec<FlowEvent>) {
        for e in events {
            match e {
                FlowEvent::Stop(room) => self.room_flow_changed(sh, room, false),
                FlowEvent::Resume(room) => self.room_flow_changed(sh, room, true),
                FlowEvent::Hold(room, on) => {
                    if self.clustered {
                        self.out.push(ChatOut::Hold(room, on));
                    }
                }
            }
        }
    }

    fn room_flow_changed(&mut self, sh: &mut Shared, room: RoomId, flows: bool) {
        for m in sh.hub.member_conns(room) {
            let Some(c) = self.conns.get_mut(&m) else {
                continue;
            };
            if !c.touched {
                c.touched = true;
                self.touched.push(m);
            }
            if flows && (c.session.frame_ready() || c.has_buffered_input()) && !c.on_run_list {
                c.on_run_list = true;
                self.runnable.push_back(m);
            }
        }
    }

    pub(super) fn room_flows(&self, sh: &Shared, id: ConnId) -> bool {
        sh.hub.room_of(id).is_none_or(|room| self.flow.flows(room))
    }
}
