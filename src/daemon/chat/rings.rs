//! Room rings: a room's line for its members is pushed once into a ring,
//! and each member that reads from it (a sub) keeps a [`Feed`] in its
//! `Conn`. A room has one ring per lane: the prototype's protocol (plain or
//! TLS), and IRC's, one per set of tags its members asked for (the same
//! bytes for all in a lane), each as it is on its own port and as
//! WebSocket frames (text, or binary for `binary.ircv3.net`), framed once
//! for the lane. A write sends the member's own output, then its spans of
//! the ring (io.rs). Members that do not read from a ring (closing, not
//! yet upgraded, in another room's ring already) get their copy as before.
//!
//! Invariants:
//! - A connection's `ring` names `(room, lane)` exactly while it is in
//!   that lane's `subs`.
//! - Its own output comes before its ring lines: a line of its own
//!   (`Input::Deliver`, `Input::Finish`, a copy) first takes its waiting
//!   ring bytes into its own output ([`Chat::own_line`], [`Chat::flatten`]).
//! - A web sub's cursor is between two frames after every write: a write
//!   cut short inside a frame moves the frame's rest into the web layer's
//!   output ([`Rings::wrote`]), which anything may then follow (a pong, a
//!   line of its own).
//! - The session's count of its ring bytes (`Session::ring_moved`) is on
//!   the same side of the high-water mark and of `--sendq` as the truth:
//!   a lane looks at its subs (a scan) when its end reaches its alarm, the
//!   first offset at which any sub could cross either, and at `settle`.
//! - A line goes to the rings only when the delivery's recipients are the
//!   room's members as last listed, but for at most one (the sender, whose
//!   feed skips it); otherwise the list is taken again from the hub, and
//!   if it still differs the delivery is copied.

use std::io;

use super::Chat;
use super::conn::{Conn, RingSeat};
use super::irc::tag_set;
use super::mirror::Mirror;
use super::web;
use crate::core::http::WsKind;
use crate::core::hub::{ConnId, IdMap, RoomId};
use crate::core::ring::{Feed, Ring};
use crate::core::session::Action;
use crate::core::wire::Event;
use crate::daemon::shared::Shared;

/// A ring's buffer capacity kept when every member has written all of it.
const KEEP: usize = 16 * 1024;

/// A lane gets a mirror (sendfile(2) for its plaintext subs) while this
/// many subs read it: a line for a few members is not worth a file.
const MIRROR_SUBS: usize = 4;

/// A write smaller than this goes by writev even from a mirrored lane: its
/// copy costs next to nothing, and a socket's queue of many small
/// references to file pages costs its reader more than it saves (the
/// latency scenario's p99 was 3.49 ms against 2.72 without this bound).
pub const MIRROR_MIN_WRITE: usize = 4096;

/// Spans one write sends from a mirror at most (one sendfile(2) each;
/// past it, one writev of them all costs less).
pub const MIRROR_SPANS: usize = 4;

/// Spans one write sends at most.
pub const MAX_SPANS: usize = crate::sys::nonblock::MAX_PARTS - 1;

/// The prototype's lane; IRC's tag set `t` is lane `1 + t`: the lane's
/// base. Framed for WebSockets, a base's lane is `base + BASES` (text
/// frames) or `base + 2 * BASES` (binary frames): 27 lanes in all.
const PROTOTYPE: usize = 0;
const BASES: usize = 9;

/// How a lane's lines are framed: as they are, or as WebSocket messages.
fn framing(lane: usize) -> Option<WsKind> {
    match lane / BASES {
        0 => None,
        1 if lane % BASES == PROTOTYPE => Some(WsKind::Chatd),
        1 => Some(WsKind::IrcText),
        _ => Some(WsKind::IrcBinary),
    }
}

#[derive(Default)]
pub(super) struct Rings {
    rooms: IdMap<RoomRing>,
    /// Rooms with lines their subs have not been looked at for.
    dirty: Vec<RoomId>,
    /// Rooms some sub wrote from in this flush.
    written: Vec<RoomId>,
}

#[derive(Default)]
struct RoomRing {
    /// Indexed by lane, as long as its highest lane with a sub needs (most
    /// rooms use the prototype's alone).
    lanes: Vec<Lane>,
    /// The room's members as the hub listed them at the last resync.
    members: Vec<ConnId>,
    /// Local members that read from no lane here: their lines are copied.
    others: Vec<ConnId>,
    dirty: bool,
    written: bool,
}

#[derive(Default)]
struct Lane {
    ring: Ring,
    subs: Vec<ConnId>,
    /// When the ring's end reaches this, its subs are looked at now.
    alarm: u64,
    /// The ring's bytes in a memfd, for its plaintext subs (mirror.rs).
    mirror: Option<Box<Mirror>>,
    /// The mirror could not be made or written: the lane goes on without.
    mirror_off: bool,
}

impl RoomRing {
    fn subs(&self) -> usize {
        self.lanes.iter().map(|l| l.subs.len()).sum()
    }
}

impl Rings {
    fn lane(&self, seat: &RingSeat) -> Option<&Lane> {
        self.rooms
            .get(&seat.room)
            .and_then(|rr| rr.lanes.get(seat.lane))
    }

    /// How many bytes wait for a sub in its ring (0 for others).
    pub(super) fn pending(&self, c: &Conn) -> usize {
        c.ring.as_ref().map_or(0, |seat| {
            self.lane(seat)
                .map_or(0, |l| seat.feed.pending(l.ring.end()))
        })
    }

    /// Before a plaintext sub's write: its lane's mirror, made once the
    /// lane has [`MIRROR_SUBS`] subs (and fewer than `MAX_MIRRORS` are
    /// alive), brought up to the ring's end (one
    /// pwrite per lane per pass, by the first sub to write). An error
    /// leaves the lane without a mirror from then on.
    pub(super) fn sync_mirror(&mut self, c: &Conn) -> io::Result<()> {
        let Some(seat) = &c.ring else {
            return Ok(());
        };
        let Some(l) = self
            .rooms
            .get_mut(&seat.room)
            .and_then(|rr| rr.lanes.get_mut(seat.lane))
        else {
            return Ok(());
        };
        if l.mirror_off || l.subs.len() < MIRROR_SUBS {
            return Ok(());
        }
        let m = match &mut l.mirror {
            Some(m) => m,
            None => match Mirror::new(l.ring.start()) {
                Ok(Some(m)) => l.mirror.insert(Box::new(m)),
                // As many mirrors as there may be: perhaps at a later pass.
                Ok(None) => return Ok(()),
                Err(e) => {
                    l.mirror_off = true;
                    return Err(e);
                }
            },
        };
        // Cursors can pass the mirror without a write from it (a line of
        // a sub's own flattens its spans): the ring may have let go of
        // bytes the mirror never got.
        m.skip_to(l.ring.start());
        if m.end() < l.ring.end()
            && let Err(e) = m.append(l.ring.bytes(m.end(), l.ring.end()))
        {
            l.mirror = None;
            l.mirror_off = true;
            return Err(e);
        }
        Ok(())
    }

    /// The mirror a write of `spans` can be sent from, with where each
    /// span starts in it (into `out`; how many): a plaintext sub, at most
    /// [`MIRROR_SPANS`] spans (one sendfile(2) each) of
    /// [`MIRROR_MIN_WRITE`] bytes or more in all, nothing of the sub's
    /// own before them, and the mirror holds them all.
    pub(super) fn mirror_for(
        &self,
        c: &Conn,
        spans: &[&[u8]],
        own: usize,
        out: &mut [(u64, usize); MIRROR_SPANS],
    ) -> Option<(&Mirror, usize)> {
        if own > 0 || !c.is_plain() || spans.is_empty() || spans.len() > MIRROR_SPANS {
            return None;
        }
        if spans.iter().map(|s| s.len()).sum::<usize>() < MIRROR_MIN_WRITE {
            return None;
        }
        let l = self.lane(c.ring.as_ref()?)?;
        let m = l.mirror.as_deref()?;
        for (o, span) in out.iter_mut().zip(spans) {
            *o = (l.ring.offset_of(span), span.len());
            if !m.covers(o.0, o.1) {
                return None;
            }
        }
        Some((m, spans.len()))
    }

    /// A sub's waiting spans (at most `out.len()`); 0 for others.
    pub(super) fn spans<'a>(&'a self, c: &Conn, out: &mut [&'a [u8]]) -> usize {
        c.ring.as_ref().map_or(0, |seat| {
            self.lane(seat).map_or(0, |l| seat.feed.spans(&l.ring, out))
        })
    }

    /// A sub wrote `n` bytes of its ring lines: its feed moves on, and the
    /// ring is released after the flush. A web sub's write cut short in a
    /// frame gives the frame's rest to its web layer, to go first.
    pub(super) fn wrote(&mut self, c: &mut Conn, n: usize) {
        let Some(seat) = &mut c.ring else {
            return;
        };
        let mut rest = 0;
        // Spans are whole frames: only a write of less than all that
        // waits can have stopped inside one.
        if framing(seat.lane).is_some()
            && let Some(l) = self.lane(seat)
            && n < seat.feed.pending(l.ring.end())
        {
            let mut spans: [&[u8]; MAX_SPANS] = [&[]; MAX_SPANS];
            let k = seat.feed.spans(&l.ring, &mut spans);
            rest = web::frame_rest(&spans[..k], n);
        }
        seat.feed.advance(n);
        if rest > 0
            && let Some(l) = self.lane(seat)
            && let Some(w) = c.web.as_mut()
        {
            let mut bytes = Vec::with_capacity(rest);
            seat.feed.take_upto(&l.ring, rest, &mut bytes);
            w.queue(&bytes);
            // The caller brings the ring's count up to date at once.
            c.session.ring_taken_outside(w.pending().len());
        }
        if let Some(rr) = self.rooms.get_mut(&seat.room)
            && !rr.written
        {
            rr.written = true;
            self.written.push(seat.room);
        }
    }

    /// Bytes the rings hold.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.rooms
            .values()
            .flat_map(|rr| rr.lanes.iter())
            .map(|l| l.ring.held())
            .sum()
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

/// The lane a connection would read from, if it may read from one.
fn lane_for(c: &Conn) -> Option<usize> {
    if c.session.is_closing() {
        return None;
    }
    let base = match c.irc.as_deref() {
        None => PROTOTYPE,
        Some(irc) => 1 + tag_set(irc.caps),
    };
    match c.web.as_ref().map(|w| w.kind()) {
        None => Some(base),
        Some(None) => None,
        Some(Some(WsKind::IrcBinary)) => Some(base + 2 * BASES),
        Some(Some(_)) => Some(base + BASES),
    }
}

impl Chat {
    /// Delivers `event`, encoded as `line` in the prototype's protocol, to
    /// `to`, members of `room`: pushed once into each of the room's lanes
    /// that has subs (rendered once per IRC tag set), copied for the
    /// others (`deliver_line`, then `deliver_irc`).
    pub(super) fn deliver_room(
        &mut self,
        sh: &mut Shared,
        room: RoomId,
        to: &[ConnId],
        line: &[u8],
        event: &Event,
        notice: bool,
    ) {
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
        let has_subs = self.rings.rooms.get(&room).is_some_and(|r| r.subs() > 0);
        let Some(except) = except.filter(|_| has_subs) else {
            let irc = self.deliver_line(sh, to, line);
            if !irc.is_empty() {
                self.deliver_irc(sh, &irc, event, notice);
            }
            return;
        };
        // A labeled command's sender keeps its lines for the label: it gets
        // a copy, and its feed skips the ring's.
        let capturing = self.capture.as_ref().map(|(c, _)| *c);
        let mut irc_lines = None;
        let mut due = false;
        let mut copies = Vec::new();
        let mut framed = Vec::new();
        let lanes = self.rings.rooms.get(&room).map_or(0, |rr| rr.lanes.len());
        for lane in 0..lanes {
            let rr = self.rings.rooms.get_mut(&room).expect("checked");
            if rr.lanes[lane].subs.is_empty() {
                continue;
            }
            let base = lane % BASES;
            let mut bytes: &[u8] = if base == PROTOTYPE {
                line
            } else {
                let lines = match &mut irc_lines {
                    Some(l) => l,
                    None => irc_lines.insert(self.irc_lines(sh, event, notice)),
                };
                lines.line(event, base - 1)
            };
            if bytes.is_empty() {
                continue;
            }
            if let Some(kind) = framing(lane) {
                framed.clear();
                web::frame_line(kind, bytes, &mut framed);
                bytes = &framed;
            }
            let rr = self.rings.rooms.get_mut(&room).expect("checked");
            let l = &mut rr.lanes[lane];
            let (start, end) = l.ring.push(bytes);
            let mut receiving = l.subs.len();
            let label = capturing.filter(|&c| Some(c) != except);
            for skip in [except, label].into_iter().flatten() {
                if let Some(c) = self.conns.get_mut(&skip)
                    && let Some(seat) = &mut c.ring
                    && seat.room == room
                    && seat.lane == lane
                {
                    seat.feed.skip(start, end);
                    receiving -= 1;
                    if Some(skip) == label {
                        copies.push(skip);
                    }
                }
            }
            sh.counters.deliveries += receiving as u64;
            due |= end >= l.alarm;
        }
        let rr = self.rings.rooms.get_mut(&room).expect("checked");
        if !rr.dirty {
            rr.dirty = true;
            self.rings.dirty.push(room);
        }
        let others: Vec<ConnId> = rr
            .others
            .iter()
            .copied()
            .filter(|&o| Some(o) != except)
            .collect();
        let mut irc = if others.is_empty() {
            Vec::new()
        } else {
            self.deliver_line(sh, &others, line)
        };
        irc.extend(copies);
        if !irc.is_empty() {
            self.deliver_irc(sh, &irc, event, notice);
        }
        if due {
            self.scan(sh, room);
        }
    }

    /// Takes the room's members from the hub again: who reads from which
    /// lane, who gets copies; members gone from it stop reading, their
    /// waiting lines kept as their own.
    fn resync(&mut self, sh: &Shared, room: RoomId) {
        let members: Vec<ConnId> = sh.hub.member_conns(room).collect();
        let rr = self.rings.rooms.entry(room).or_default();
        let mut gone = Vec::new();
        for lane in &mut rr.lanes {
            let (kept, left): (Vec<ConnId>, Vec<ConnId>) = std::mem::take(&mut lane.subs)
                .into_iter()
                .partition(|&id| sh.hub.rooms_of(id).contains(&room));
            lane.subs = kept;
            gone.extend(left);
        }
        for id in gone {
            if let Some(c) = self.conns.get_mut(&id) {
                Chat::flatten(&self.rings, c);
                c.ring = None;
            }
        }
        let rr = self.rings.rooms.get_mut(&room).expect("made above");
        rr.others.clear();
        for &m in &members {
            let Some(c) = self.conns.get_mut(&m) else {
                continue;
            };
            match (&c.ring, lane_for(c)) {
                (Some(seat), _) if seat.room == room => {}
                (None, Some(lane)) => {
                    if rr.lanes.len() <= lane {
                        rr.lanes.resize_with(lane + 1, Lane::default);
                    }
                    let l = &mut rr.lanes[lane];
                    c.ring = Some(RingSeat {
                        room,
                        lane,
                        feed: Feed::at(l.ring.end()),
                    });
                    l.subs.push(m);
                    // A new sub: look at the lane before its next line.
                    l.alarm = l.ring.end();
                }
                _ => rr.others.push(m),
            }
        }
        rr.members = members;
    }

    /// Looks at every sub of `room`: its waiting bytes counted in its
    /// session (dropped past `--sendq`, the room's back-pressure when it
    /// crossed the mark), on the touched list; each lane's next alarm set.
    pub(super) fn scan(&mut self, sh: &mut Shared, room: RoomId) {
        let Some(rr) = self.rings.rooms.get_mut(&room) else {
            return;
        };
        rr.dirty = false;
        let lanes = rr.lanes.len();
        for lane in 0..lanes {
            let Some(rr) = self.rings.rooms.get_mut(&room) else {
                return;
            };
            let l = &mut rr.lanes[lane];
            if l.subs.is_empty() {
                continue;
            }
            let end = l.ring.end();
            let subs = std::mem::take(&mut l.subs);
            let mut alarm = u64::MAX;
            for &id in &subs {
                let Some(c) = self.conns.get_mut(&id) else {
                    continue;
                };
                let Some(seat) = &c.ring else {
                    continue;
                };
                let action = c.session.ring_moved(sh.now, seat.feed.pending(end));
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
            let l = &mut self
                .rings
                .rooms
                .get_mut(&room)
                .expect("a scan keeps its ring")
                .lanes[lane];
            debug_assert!(l.subs.is_empty(), "a scan changes no membership");
            l.subs = subs;
            l.alarm = alarm;
        }
    }

    /// Scans the rooms with lines not yet looked at (before settling).
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
            for l in &mut rr.lanes {
                let mut upto = l.ring.end();
                for id in &l.subs {
                    if let Some(seat) = self.conns.get(id).and_then(|c| c.ring.as_ref()) {
                        upto = upto.min(seat.feed.cursor());
                    }
                }
                l.ring.release(upto, KEEP);
                if l.subs.len() < MIRROR_SUBS {
                    // Its descriptor is better spent on a bigger room.
                    l.mirror = None;
                } else if let Some(m) = &mut l.mirror {
                    m.release(upto);
                }
            }
        }
    }

    /// A sub's waiting ring bytes become its own output (a line of its own
    /// is to follow them); its feed goes on from the ring's end. A web
    /// sub's are frames already: they join its web layer's output.
    pub(super) fn flatten(rings: &Rings, c: &mut Conn) {
        let Some(seat) = &mut c.ring else {
            return;
        };
        let Some(l) = rings.lane(seat) else {
            return;
        };
        let mut bytes = Vec::new();
        seat.feed.take_all(&l.ring, &mut bytes);
        match c.web.as_mut() {
            Some(w) => {
                // Its own output waits unframed: it goes first.
                let own = w.take_all(c.session.output());
                w.queue(&bytes);
                c.session.moved_outside(own, w.pending().len());
            }
            None => c.session.ring_taken(&bytes),
        }
    }

    /// Adds a line of a connection's own (`add`): for a sub, after its
    /// waiting ring bytes ([`Chat::flatten`]), and its lane's alarm then
    /// comes at least as early as its new headroom says.
    pub(super) fn own_line<T>(
        rings: &mut Rings,
        c: &mut Conn,
        add: impl FnOnce(&mut Conn) -> T,
    ) -> T {
        if c.ring.is_none() {
            return add(c);
        }
        Chat::flatten(rings, c);
        let added = add(c);
        if let Some(seat) = &c.ring
            && let Some(rr) = rings.rooms.get_mut(&seat.room)
        {
            let l = &mut rr.lanes[seat.lane];
            let at = l.ring.end() + c.session.ring_headroom() as u64 + 1;
            l.alarm = l.alarm.min(at);
        }
        added
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
        let Some(seat) = c.ring.take() else {
            return;
        };
        if let Some(rr) = self.rings.rooms.get_mut(&seat.room) {
            rr.lanes[seat.lane].subs.retain(|&s| s != id);
            if rr.subs() == 0 {
                // No reader left: the next line lists the members again.
                self.rings.rooms.remove(&seat.room);
            } else {
                // Not a sub, not among the others: list them again.
                rr.members.clear();
            }
        }
    }
}

#[cfg(test)]
impl Chat {
    /// The first invariant, checked (tests): a connection reads from a
    /// lane exactly while it is among that lane's subs.
    pub(super) fn check_rings(&self) {
        for (id, c) in &self.conns {
            if let Some(seat) = &c.ring {
                let l = self.rings.lane(seat).expect("its ring exists");
                assert!(l.subs.contains(id), "{id} reads from a lane it is not in");
            }
        }
        for (room, rr) in &self.rings.rooms {
            for (lane, l) in rr.lanes.iter().enumerate() {
                for id in &l.subs {
                    let c = self.conns.get(id).expect("a sub is a connection");
                    let seat = c.ring.as_ref().expect("a sub has a seat");
                    assert_eq!((seat.room, seat.lane), (*room, lane), "{id}");
                }
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
