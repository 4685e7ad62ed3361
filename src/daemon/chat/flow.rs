//! Per-room flow control: whether a room's members are read from.
//!
//! A room stops while any member here has more than the high-water mark
//! unsent (its count in `backlog`), while deliveries wait in its inbox
//! (see inbox.rs), or while another node holds it back (cluster mode,
//! each hold until a time it is renewed before). [`Flow`] keeps those
//! counts and says what changed as [`FlowEvent`]s, which the chat part carries
//! out: members to touch, a hold to publish.
//!
//! Invariants: a room is in `backlog` only with a count of at least one;
//! an inbox is never empty; a room held here (backed up, or with an
//! inbox) is held on the other nodes, and let go only when both are over;
//! `Resume` is said only for a room that nothing holds back any more.

use std::collections::BTreeMap;
use std::time::Instant;

use super::inbox::{Inbox, Waiting};
use crate::core::hub::{ConnId, IdMap, RoomId};
use crate::core::wire::Event;

/// What the chat part must do after a change of flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowEvent {
    /// The room's members are no longer read from.
    Stop(RoomId),
    /// The room's members are read from again.
    Resume(RoomId),
    /// Tell the other nodes to hold the room back (true) or let it go.
    Hold(RoomId, bool),
}

/// Where another node's delivery goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Straight to the members: nothing holds the room here.
    Deliver(Vec<ConnId>, Vec<u8>),
    /// Into the room's inbox.
    Queued,
    /// The inbox would pass its bound: everything that waited, oldest
    /// first and this one last, goes out now (and `--sendq` decides).
    Overflow(Vec<Waiting>),
}

#[derive(Debug, Default)]
pub struct Flow {
    /// Per room: how many members here are above the high-water mark.
    backlog: IdMap<usize>,
    /// Per room held here: deliveries that wait.
    inboxes: IdMap<Inbox>,
    /// Rooms whose members caught up while their inbox still waits.
    draining: Vec<RoomId>,
    /// Rooms other nodes hold back, by node, each until when.
    held_by_nodes: IdMap<BTreeMap<String, Instant>>,
}

impl Flow {
    /// Whether the room's members are read from.
    pub fn flows(&self, room: RoomId) -> bool {
        !self.held_here(room) && !self.held_elsewhere(room)
    }

    /// Whether this node holds the room back: a member is backed up, or
    /// deliveries wait in its inbox.
    pub fn held_here(&self, room: RoomId) -> bool {
        self.backlog.contains_key(&room) || self.inboxes.contains_key(&room)
    }

    fn held_elsewhere(&self, room: RoomId) -> bool {
        self.held_by_nodes.get(&room).is_some_and(|h| !h.is_empty())
    }

    /// A member of `room` went above the high-water mark.
    pub fn backed_up(&mut self, room: RoomId, out: &mut Vec<FlowEvent>) {
        let n = self.backlog.entry(room).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.local_changed(room, true, out);
        }
    }

    /// A member of `room` is below the mark again (or gone).
    pub fn caught_up(&mut self, room: RoomId, out: &mut Vec<FlowEvent>) {
        let Some(n) = self.backlog.get_mut(&room) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.backlog.remove(&room);
            self.local_changed(room, false, out);
        }
    }

    fn local_changed(&mut self, room: RoomId, backed_up: bool, out: &mut Vec<FlowEvent>) {
        if self.inboxes.contains_key(&room) {
            // Held already, and stays held until what waits is out.
            if !backed_up {
                self.draining.push(room);
            }
            return;
        }
        out.push(FlowEvent::Hold(room, backed_up));
        if !self.held_elsewhere(room) {
            out.push(if backed_up {
                FlowEvent::Stop(room)
            } else {
                FlowEvent::Resume(room)
            });
        }
    }

    /// Another node holds `room` back until `until` (`Some`), or lets it
    /// go (`None`).
    pub fn held_by(
        &mut self,
        room: RoomId,
        node: &str,
        until: Option<Instant>,
        out: &mut Vec<FlowEvent>,
    ) {
        let was = self.held_elsewhere(room);
        let held = self.held_by_nodes.entry(room).or_default();
        match until {
            Some(t) => {
                held.insert(node.to_string(), t);
            }
            None => {
                held.remove(node);
            }
        }
        if held.is_empty() {
            self.held_by_nodes.remove(&room);
        }
        let now_held = self.held_elsewhere(room);
        if was != now_held && !self.held_here(room) {
            out.push(if now_held {
                FlowEvent::Stop(room)
            } else {
                FlowEvent::Resume(room)
            });
        }
    }

    /// Other nodes' holds not renewed by `now` lapse.
    pub fn expire_holds(&mut self, now: Instant, out: &mut Vec<FlowEvent>) {
        let rooms: Vec<RoomId> = self.held_by_nodes.keys().copied().collect();
        for room in rooms {
            let held = self.held_by_nodes.get_mut(&room).expect("listed");
            held.retain(|_, until| *until > now);
            if held.is_empty() {
                self.held_by_nodes.remove(&room);
                if !self.held_here(room) {
                    out.push(FlowEvent::Resume(room));
                }
            }
        }
    }

    /// The rooms this node holds back, whose holds are said again every
    /// heartbeat (in order).
    pub fn holding(&self) -> Vec<RoomId> {
        let rooms: std::collections::BTreeSet<RoomId> = self
            .backlog
            .keys()
            .chain(self.inboxes.keys())
            .copied()
            .collect();
        rooms.into_iter().collect()
    }

    /// A delivery made here: behind what waits in the room's inbox, if
    /// anything does (then it is kept, and None returned), else its line
    /// back to be delivered now (the recipients are copied only to wait).
    pub fn local(
        &mut self,
        room: RoomId,
        to: &[ConnId],
        line: Vec<u8>,
        event: &Event,
    ) -> Option<Vec<u8>> {
        match self.inboxes.get_mut(&room) {
            Some(inbox) => {
                inbox.push(to.to_vec(), line, event.clone());
                None
            }
            None => Some(line),
        }
    }

    /// Another node's delivery: it waits in the room's inbox while this
    /// node holds the room back, up to `bound` bytes.
    pub fn remote(
        &mut self,
        room: RoomId,
        to: Vec<ConnId>,
        line: Vec<u8>,
        event: &Event,
        bound: usize,
        out: &mut Vec<FlowEvent>,
    ) -> Arrival {
        if !self.held_here(room) {
            return Arrival::Deliver(to, line);
        }
        let inbox = self.inboxes.entry(room).or_default();
        if inbox.fits(line.len(), bound) {
            inbox.push(to, line, event.clone());
            return Arrival::Queued;
        }
        let mut inbox = self.inboxes.remove(&room).expect("entered");
        let mut all = Vec::new();
        while let Some(w) = inbox.pop() {
            all.push(w);
        }
        all.push(Waiting {
            to,
            line,
            event: event.clone(),
        });
        self.emptied(room, out);
        Arrival::Overflow(all)
    }

    /// A room whose inbox may go out now: its members caught up.
    pub fn next_to_drain(&mut self) -> Option<RoomId> {
        self.draining.pop()
    }

    /// Whether rooms wait to be drained (the wait must not sleep).
    pub fn draining(&self) -> bool {
        !self.draining.is_empty()
    }

    /// The oldest delivery waiting for `room`, while no member there is
    /// backed up; taking the last one lets the room go (unless a member
    /// backs up again before).
    pub fn take_waiting(&mut self, room: RoomId) -> Option<Waiting> {
        if self.backlog.contains_key(&room) {
            return None;
        }
        let inbox = self.inboxes.get_mut(&room)?;
        let w = inbox.pop();
        if inbox.is_empty() {
            self.inboxes.remove(&room);
        }
        w
    }

    /// After the last waiting delivery of `room` went out: unless a
    /// member is backed up again (or another inbox began), the other
    /// nodes are let go and the room flows, if nobody else holds it.
    pub fn emptied(&mut self, room: RoomId, out: &mut Vec<FlowEvent>) {
        if self.held_here(room) {
            return;
        }
        out.push(FlowEvent::Hold(room, false));
        if !self.held_elsewhere(room) {
            out.push(FlowEvent::Resume(room));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FlowEvent::{Hold, Resume, Stop};
    use std::time::Duration;

    const R: RoomId = 1;
    const BIG: usize = 1 << 20;

    fn line(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn a_backed_up_member_stops_the_room_and_holds_it_elsewhere() {
        let mut f = Flow::default();
        let mut out = Vec::new();
        f.backed_up(R, &mut out);
        assert_eq!(out, [Hold(R, true), Stop(R)]);
        assert!(!f.flows(R));
        assert!(f.flows(2), "other rooms flow");
        out.clear();
        f.caught_up(R, &mut out);
        assert_eq!(out, [Hold(R, false), Resume(R)]);
        assert!(f.flows(R));
        // A member who was never counted changes nothing.
        out.clear();
        f.caught_up(R, &mut out);
        assert_eq!(out, []);
    }

    #[test]
    fn the_room_resumes_only_when_every_member_caught_up() {
        let mut f = Flow::default();
        let mut out = Vec::new();
        f.backed_up(R, &mut out);
        f.backed_up(R, &mut out);
        out.clear();
        f.caught_up(R, &mut out);
        assert_eq!(out, [], "one still backed up");
        assert!(!f.flows(R));
        f.caught_up(R, &mut out);
        assert_eq!(out, [Hold(R, false), Resume(R)]);
    }

    #[test]
    fn a_hold_from_another_node_stops_the_room_until_let_go() {
        let mut f = Flow::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.held_by(R, "b", Some(t0 + Duration::from_secs(3)), &mut out);
        assert_eq!(out, [Stop(R)]);
        // Held here too: catching up here does not resume it.
        out.clear();
        f.backed_up(R, &mut out);
        f.caught_up(R, &mut out);
        assert_eq!(out, [Hold(R, true), Hold(R, false)]);
        assert!(!f.flows(R));
        // A second node's hold; the first lets go: still held.
        f.held_by(R, "c", Some(t0 + Duration::from_secs(3)), &mut out);
        out.clear();
        f.held_by(R, "b", None, &mut out);
        assert_eq!(out, []);
        f.held_by(R, "c", None, &mut out);
        assert_eq!(out, [Resume(R)]);
        assert!(f.flows(R));
    }

    #[test]
    fn holds_that_are_not_renewed_lapse() {
        let mut f = Flow::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        let mut out = Vec::new();
        f.held_by(R, "b", Some(t0 + ttl), &mut out);
        out.clear();
        f.expire_holds(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out, []);
        // Renewed: lapses 3 s after the renewal, not the first hold.
        f.held_by(R, "b", Some(t0 + Duration::from_secs(2) + ttl), &mut out);
        f.expire_holds(t0 + ttl, &mut out);
        assert_eq!(out, []);
        f.expire_holds(t0 + Duration::from_secs(2) + ttl, &mut out);
        assert_eq!(out, [Resume(R)]);
    }

    #[test]
    fn what_arrives_while_held_waits_and_goes_out_in_order() {
        let mut f = Flow::default();
        let mut out = Vec::new();
        assert_eq!(
            f.remote(R, vec![1], line("a"), &Event::default(), BIG, &mut out),
            Arrival::Deliver(vec![1], line("a")),
            "nothing holds the room"
        );
        f.backed_up(R, &mut out);
        assert_eq!(
            f.remote(R, vec![1], line("b"), &Event::default(), BIG, &mut out),
            Arrival::Queued
        );
        assert_eq!(
            f.local(R, &[1, 2], line("join"), &Event::default()),
            None,
            "behind b"
        );
        assert_eq!(
            f.remote(R, vec![1], line("c"), &Event::default(), BIG, &mut out),
            Arrival::Queued
        );
        assert_eq!(f.holding(), [R]);
        // Caught up: the room stays held until the inbox is out.
        out.clear();
        f.caught_up(R, &mut out);
        assert_eq!(out, [], "still held: the inbox waits");
        assert!(!f.flows(R));
        assert_eq!(f.next_to_drain(), Some(R));
        assert!(!f.draining());
        let lines: Vec<Vec<u8>> = std::iter::from_fn(|| f.take_waiting(R))
            .map(|w| w.line)
            .collect();
        assert_eq!(lines, [line("b"), line("join"), line("c")]);
        f.emptied(R, &mut out);
        assert_eq!(out, [Hold(R, false), Resume(R)]);
        assert!(f.flows(R));
        assert_eq!(
            f.local(R, &[1], line("d"), &Event::default()),
            Some(line("d"))
        );
    }

    #[test]
    fn draining_stops_when_a_member_backs_up_again() {
        let mut f = Flow::default();
        let mut out = Vec::new();
        f.backed_up(R, &mut out);
        f.remote(R, vec![1], line("b"), &Event::default(), BIG, &mut out);
        f.remote(R, vec![1], line("c"), &Event::default(), BIG, &mut out);
        f.caught_up(R, &mut out);
        assert_eq!(f.next_to_drain(), Some(R));
        assert_eq!(f.take_waiting(R).unwrap().line, line("b"));
        out.clear();
        f.backed_up(R, &mut out);
        assert_eq!(out, [], "held already");
        assert_eq!(f.take_waiting(R), None, "waits for the member");
        f.caught_up(R, &mut out);
        assert_eq!(f.next_to_drain(), Some(R));
        assert_eq!(f.take_waiting(R).unwrap().line, line("c"));
        // The last one out, and a member backed up on it: held anew (the
        // inbox is gone), and `emptied` lets nothing go.
        out.clear();
        f.backed_up(R, &mut out);
        f.emptied(R, &mut out);
        assert_eq!(out, [Hold(R, true), Stop(R)]);
        assert!(!f.flows(R));
        assert_eq!(f.holding(), [R]);
    }

    #[test]
    fn past_its_bound_the_inbox_goes_out_at_once() {
        let mut f = Flow::default();
        let mut out = Vec::new();
        f.backed_up(R, &mut out);
        assert_eq!(
            f.remote(R, vec![1], line("1234"), &Event::default(), 8, &mut out),
            Arrival::Queued
        );
        assert_eq!(
            f.remote(R, vec![1], line("5678"), &Event::default(), 8, &mut out),
            Arrival::Queued
        );
        out.clear();
        let Arrival::Overflow(all) =
            f.remote(R, vec![1], line("9"), &Event::default(), 8, &mut out)
        else {
            panic!("overflow expected");
        };
        let lines: Vec<Vec<u8>> = all.into_iter().map(|w| w.line).collect();
        assert_eq!(lines, [line("1234"), line("5678"), line("9")]);
        assert_eq!(out, [], "the member is still backed up");
        assert!(!f.flows(R));
    }
}
