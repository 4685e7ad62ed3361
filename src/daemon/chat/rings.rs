//! Room rings: a room's line for its members is pushed once into the
//! room's [`Ring`], and each member that reads from it (a sub: a local
//! connection of the prototype's protocol, plain or TLS) keeps a [`Feed`]
//! in its `Conn`. A write sends the member's own output, then its spans of
//! the ring (io.rs). Members that do not read from the ring (IRC, web, a
//! connection closing) get their copy as before (`deliver_line`).
//!
//! Invariants:
//! - A connection's `ring` is `Some(room)` exactly while it is in that
//!   room's `subs`.
//! - Its own output comes before its ring lines: a line of its own
//!   (`Input::Deliver`, `Input::Finish`, a copy) first takes its waiting
//!   ring bytes into its own output ([`Chat::flatten`]).
//! - The session's count of its ring bytes (`Session::ring_moved`) is on
//!   the same side of the high-water mark and of `--sendq` as the truth:
//!   a ring looks at its subs (a scan) when its end reaches its alarm, the
//!   first offset at which any sub could cross either, and at `settle`.
//! - A line goes to the ring only when the delivery's recipients are the
//!   room's members as last listed, but for at most one (the sender, whose
//!   feed skips it); otherwise the list is taken again from the hub, and
//!   if it still differs the delivery is copied.

use super::Chat;
use super::conn::Conn;
use crate::core::hub::{ConnId, IdMap, RoomId};
use crate::core::ring::{Feed, Ring};
use crate::core::session::Action;
use crate::daemon::shared::Shared;

/// A ring's buffer capacity kept when every member has written all of it.
const KEEP: usize = 16 * 1024;

/// Spans one write sends at most.
pub const MAX_SPANS: usize = 16;

#[derive(Default)]
pub(super) struct Rings {
    rooms: IdMap<RoomRing>,
    /// Rings with lines their subs have not been looked at for.
    dirty: Vec<RoomId>,
    /// Rings some sub wrote from in this flush.
    written: Vec<RoomId>,
}

#[derive(Default)]
struct RoomRing {
    ring: Ring,
    /// The room's members as the hub listed them at the last resync.
    members: Vec<ConnId>,
    /// Those that read from the ring.
    subs: Vec<ConnId>,
    /// Local members that do not: their lines are copied.
    others: Vec<ConnId>,
    /// When the ring's end reaches this, its subs are looked at now.
    alarm: u64,
    dirty: bool,
    written: bool,
}

impl Rings {
    /// The ring a sub reads from, and how many bytes wait for it there.
    pub(super) fn pending(&self, c: &Conn) -> usize {
        match &c.ring {
            Some((room, feed)) => self
                .rooms
                .get(room)
                .map_or(0, |rr| feed.pending(rr.ring.end())),
            None => 0,
        }
    }

    /// A sub's waiting spans (at most `out.len()`); 0 for others.
    pub(super) fn spans<'a>(&'a self, c: &Conn, out: &mut [&'a [u8]]) -> usize {
        match &c.ring {
            Some((room, feed)) => self
                .rooms
                .get(room)
                .map_or(0, |rr| feed.spans(&rr.ring, out)),
            None => 0,
        }
    }

    /// A sub wrote `n` bytes of its ring lines: its feed moves on, and the
    /// ring is released after the flush.
    pub(super) fn wrote(&mut self, c: &mut Conn, n: usize) {
        let Some((room, feed)) = &mut c.ring else {
            return;
        };
        feed.advance(n);
        if let Some(rr) = self.rooms.get_mut(room)
            && !rr.written
        {
            rr.written = true;
            self.written.push(*room);
        }
    }

    /// Bytes the rings hold.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.rooms.values().map(|rr| rr.ring.held()).sum()
    }
}

impl Chat {
    /// The first invariant, checked (tests): a connection reads from a
    /// ring exactly while it is among that ring's subs.
    #[cfg(test)]
    pub(super) fn check_rings(&self) {
        for (id, c) in &self.conns {
            if let Some((room, _)) = &c.ring {
                let rr = self.rings.rooms.get(room).expect("its ring exists");
                assert!(rr.subs.contains(id), "{id} reads from a ring it is not in");
            }
        }
        for (room, rr) in &self.rings.rooms {
            for id in &rr.subs {
                let c = self.conns.get(id).expect("a sub is a connection");
                assert!(matches!(&c.ring, Some((r, _)) if r == room), "{id}");
            }
        }
    }
}

/// Whether `to` is `members` with at most one left out: `Some(the one)`.
fn gap(members: &[ConnId], to: &[ConnId]) -> Option<Option<ConnId>> {
    if to.len() != members.len() && to.len() + 1 != members.len() {
        return None;
    }
    let mut except = None;
    let mut j = 0;
    for &m in members {
        if to.get(j) == Some(&m) {
            j += 1;
        } else if except.is_none() {
            except = Some(m);
        } else {
            return None;
        }
    }
    (j == to.len()).then_some(except)
}

impl Chat {
    /// Delivers `line` to `to`, members of `room`: pushed once into the
    /// room's ring for its subs, copied for the others. Returns the
    /// recipients that speak IRC (as `deliver_line` does).
    pub(super) fn deliver_room(
        &mut self,
        sh: &mut Shared,
        room: RoomId,
        to: &[ConnId],
        line: &[u8],
    ) -> Vec<ConnId> {
        let mut except = self
            .rings
            .rooms
            .get(&room)
            .and_then(|rr| gap(&rr.members, to));
        if except.is_none() {
            self.resync(sh, room);
            except = self
                .rings
                .rooms
                .get(&room)
                .and_then(|rr| gap(&rr.members, to));
        }
        let Some(except) = except else {
            return self.deliver_line(sh, to, line);
        };
        let Some(rr) = self.rings.rooms.get_mut(&room) else {
            return self.deliver_line(sh, to, line);
        };
        if rr.subs.is_empty() {
            return self.deliver_line(sh, to, line);
        }
        let (start, end) = rr.ring.push(line);
        let mut receiving = rr.subs.len();
        if let Some(c) = except.and_then(|x| self.conns.get_mut(&x))
            && let Some((r, feed)) = &mut c.ring
            && *r == room
        {
            feed.skip(start, end);
            receiving -= 1;
        }
        sh.counters.deliveries += receiving as u64;
        if !rr.dirty {
            rr.dirty = true;
            self.rings.dirty.push(room);
        }
        let now_due = end >= rr.alarm;
        let others: Vec<ConnId> = rr
            .others
            .iter()
            .copied()
            .filter(|&o| Some(o) != except)
            .collect();
        let irc = if others.is_empty() {
            Vec::new()
        } else {
            self.deliver_line(sh, &others, line)
        };
        if now_due {
            self.scan(sh, room);
        }
        irc
    }

    /// Takes the room's members from the hub again: who reads from the
    /// ring, who gets copies; members gone from it stop reading, their
    /// waiting lines kept as their own.
    fn resync(&mut self, sh: &Shared, room: RoomId) {
        let members: Vec<ConnId> = sh.hub.member_conns(room).collect();
        let rr = self.rings.rooms.entry(room).or_default();
        let end = rr.ring.end();
        let (kept, gone): (Vec<ConnId>, Vec<ConnId>) = std::mem::take(&mut rr.subs)
            .into_iter()
            .partition(|&id| sh.hub.rooms_of(id).contains(&room));
        rr.subs = kept;
        for id in gone {
            if let Some(c) = self.conns.get_mut(&id) {
                Chat::flatten(&self.rings, c);
                c.ring = None;
            }
        }
        let rr = self.rings.rooms.get_mut(&room).expect("made above");
        let kept = rr.subs.len();
        rr.others.clear();
        for &m in &members {
            let Some(c) = self.conns.get_mut(&m) else {
                continue;
            };
            match &c.ring {
                Some((r, _)) if *r == room => continue,
                Some(_) => rr.others.push(m),
                None if c.irc.is_some() || c.web.is_some() || c.session.is_closing() => {
                    rr.others.push(m)
                }
                None => {
                    c.ring = Some((room, Feed::at(end)));
                    rr.subs.push(m);
                }
            }
        }
        if rr.subs.len() != kept || rr.subs.is_empty() {
            // New subs: look at them before the next line.
            rr.alarm = end;
        }
        rr.members = members;
    }

    /// Looks at every sub of `room`: its waiting bytes counted in its
    /// session (dropped past `--sendq`, the room's back-pressure when it
    /// crossed the mark), on the touched list; the next alarm set.
    pub(super) fn scan(&mut self, sh: &mut Shared, room: RoomId) {
        let Some(rr) = self.rings.rooms.get_mut(&room) else {
            return;
        };
        rr.dirty = false;
        let end = rr.ring.end();
        let subs = std::mem::take(&mut rr.subs);
        let mut alarm = u64::MAX;
        for &id in &subs {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            let Some((_, feed)) = &c.ring else {
                continue;
            };
            let action = c.session.ring_moved(sh.now, feed.pending(end));
            let crossed = c.session.backlogged() != c.counted_in.is_some();
            alarm = alarm.min(end + c.session.ring_headroom() as u64 + 1);
            if !c.touched {
                c.touched = true;
                self.touched.push(id);
            }
            if crossed {
                self.account_backlog(sh, id);
            }
            if let Some(a @ Action::Drop(_)) = action {
                self.act(sh, id, a);
            }
        }
        let rr = self
            .rings
            .rooms
            .get_mut(&room)
            .expect("a scan keeps its ring");
        debug_assert!(rr.subs.is_empty(), "a scan changes no membership");
        rr.subs = subs;
        rr.alarm = alarm;
    }

    /// Scans the rings with lines not yet looked at (before settling).
    pub(super) fn scan_dirty(&mut self, sh: &mut Shared) {
        while let Some(room) = self.rings.dirty.pop() {
            if self.rings.rooms.get(&room).is_some_and(|rr| rr.dirty) {
                self.scan(sh, room);
            }
        }
    }

    /// After a flush: each ring written from lets go of what all its subs
    /// have written.
    pub(super) fn release_rings(&mut self) {
        while let Some(room) = self.rings.written.pop() {
            let Some(rr) = self.rings.rooms.get_mut(&room) else {
                continue;
            };
            rr.written = false;
            let mut upto = rr.ring.end();
            for id in &rr.subs {
                if let Some((_, feed)) = self.conns.get(id).and_then(|c| c.ring.as_ref()) {
                    upto = upto.min(feed.cursor());
                }
            }
            rr.ring.release(upto, KEEP);
        }
    }

    /// A sub's waiting ring bytes become its own output (a line of its own
    /// is to follow them); its feed goes on from the ring's end.
    pub(super) fn flatten(rings: &Rings, c: &mut Conn) {
        let Some((room, feed)) = &mut c.ring else {
            return;
        };
        let Some(rr) = rings.rooms.get(room) else {
            return;
        };
        let mut bytes = Vec::new();
        feed.take_all(&rr.ring, &mut bytes);
        c.session.ring_taken(&bytes);
    }

    /// A line of its own was added to a sub: its room's alarm comes at
    /// least as early as its new headroom says.
    pub(super) fn own_line_added(rings: &mut Rings, c: &Conn) {
        if let Some((room, _)) = &c.ring
            && let Some(rr) = rings.rooms.get_mut(room)
        {
            let at = rr.ring.end() + c.session.ring_headroom() as u64 + 1;
            rr.alarm = rr.alarm.min(at);
        }
    }

    /// `id` stops reading from its ring: its waiting lines become its own
    /// output (`keep`), or go with it (it is being removed).
    pub(super) fn leave_ring(&mut self, id: ConnId, keep: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if keep {
            Chat::flatten(&self.rings, c);
        }
        let Some((room, _)) = c.ring.take() else {
            return;
        };
        if let Some(rr) = self.rings.rooms.get_mut(&room) {
            rr.subs.retain(|&s| s != id);
            if rr.subs.is_empty() {
                // No reader left: the next line lists the members again.
                self.rings.rooms.remove(&room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::gap;

    #[test]
    fn gap_finds_the_one_left_out_or_refuses() {
        assert_eq!(gap(&[1, 2, 3], &[1, 2, 3]), Some(None));
        assert_eq!(gap(&[1, 2, 3], &[1, 3]), Some(Some(2)));
        assert_eq!(gap(&[1, 2, 3], &[1, 2]), Some(Some(3)));
        assert_eq!(gap(&[1, 2, 3], &[2, 3]), Some(Some(1)));
        assert_eq!(gap(&[1, 2, 3], &[1]), None);
        assert_eq!(gap(&[1, 2, 3], &[1, 3, 2]), None);
        assert_eq!(gap(&[1, 2], &[1, 2, 3]), None);
        assert_eq!(gap(&[1, 2, 3], &[1, 4]), None);
        assert_eq!(gap(&[], &[]), Some(None));
    }
}
