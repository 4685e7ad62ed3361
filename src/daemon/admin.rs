//! Control-socket connections and the commands they carry (PROTOCOL.md §2):
//! line framing with a length bound, one response per request, `logs
//! --follow` streaming, and the execution of each command against the hub.
//!
//! Commands run inside the event loop's pass, like chat input; nothing here
//! blocks. Every control connection is bounded:
//! - in number: at most `control_cap` at once (computed at start-up from the
//!   descriptors select(2) can watch after every chat client has its slot,
//!   so admins can never lock chat out). At the cap, a waiting connection
//!   is accepted by closing the longest-idle one (no request in progress,
//!   nothing unsent, not following); with none idle, the others wait in the
//!   listen backlog;
//! - in time: a connection silent for `--control-timeout` (idle, or stalled
//!   mid-request, or not reading its answers) is closed; followers are
//!   exempt;
//! - in memory: requests are answered one at a time and only while the
//!   unsent output is under [`OUTPUT_HWM`], and nothing more is read while a
//!   complete request waits; a follower too far behind is disconnected.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::conn::{interrupted, would_block};
use super::event_loop::{Door, FD_SETSIZE, Server, is_fd_exhaustion};
use super::logbook::Entry;
use super::net;
use crate::core::control::{self, ErrorCode, MAX_REQUEST_LINE, Request};
use crate::core::hub::{HubError, RoomInfo};

/// Above this much unsent output, a control connection's requests wait.
pub const OUTPUT_HWM: usize = 256 * 1024;

/// How long a connection that has asked nothing yet is safe from being
/// closed to make room for another.
const EVICT_GRACE: Duration = Duration::from_secs(1);

/// The most control connections at once, whatever the descriptor budget.
pub const MAX_CONTROL_CAP: usize = 64;

/// What a control connection accepted while descriptors are exhausted is
/// told before it is closed.
const NO_DESCRIPTORS: &[u8] = b"{\"ok\":false,\"error\":{\"code\":\"failed\",\"message\":\"chatd is out of file descriptors; try again shortly\"}}\n";

/// A `logs --follow` reader with more unsent output than this is dropped.
const FOLLOWER_MAX_BACKLOG: usize = 1024 * 1024;

pub struct AdminConn {
    pub id: u64,
    pub stream: UnixStream,
    /// uid and pid of the peer (SO_PEERCRED), for the log.
    peer: Option<(u32, i32)>,
    inbuf: Vec<u8>,
    /// Discarding the rest of an over-long request line.
    skipping: bool,
    out: Vec<u8>,
    /// Streaming log entries after this sequence number.
    follow_after: Option<u64>,
    read_closed: bool,
    /// When the peer last sent something (or connected).
    last_heard: Instant,
    /// Requests answered so far.
    answered: u64,
}

impl AdminConn {
    /// Reading waits while a complete request is still unanswered (its
    /// answer waits for the output to drain) or the output is backed up.
    pub fn wants_read(&self) -> bool {
        !self.read_closed && self.out.len() <= OUTPUT_HWM && !self.has_request()
    }

    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether a complete request line is buffered.
    fn has_request(&self) -> bool {
        self.inbuf.contains(&b'\n') || (self.read_closed && !self.inbuf.is_empty())
    }

    /// Idle: nothing in progress in either direction, and not following.
    fn is_idle(&self) -> bool {
        self.follow_after.is_none() && self.inbuf.is_empty() && self.out.is_empty()
    }

    /// From when this connection may be closed to make room for a waiting
    /// one: once idle after an answer, or idle for [`EVICT_GRACE`] without
    /// having asked anything (a client may connect first and write next).
    pub fn evictable_from(&self) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        Some(if self.answered > 0 {
            self.last_heard
        } else {
            self.last_heard + EVICT_GRACE
        })
    }

    /// When this connection times out, if it can (followers cannot).
    pub fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.follow_after
            .is_none()
            .then(|| self.last_heard + timeout)
    }

    fn who(&self) -> String {
        match self.peer {
            Some((uid, pid)) => format!("uid {uid} pid {pid}"),
            None => "unknown peer".to_string(),
        }
    }

    fn respond(&mut self, value: &Value) {
        // serde_json escapes control characters, so a response is one line.
        serde_json::to_writer(&mut self.out, value).expect("writing JSON to a Vec cannot fail");
        self.out.push(b'\n');
    }

    /// Takes the next complete request line out of the input buffer, if
    /// any; an over-long line comes back as `Err` (once) and is skipped to
    /// its newline.
    fn take_line(&mut self) -> Option<Result<Vec<u8>, String>> {
        while let Some(nl) = self.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=nl).take(nl).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.len() > MAX_REQUEST_LINE {
                return Some(Err(too_long()));
            }
            return Some(Ok(line));
        }
        if self.inbuf.len() > MAX_REQUEST_LINE {
            self.inbuf.clear();
            if !std::mem::replace(&mut self.skipping, true) {
                return Some(Err(too_long()));
            }
        } else if self.skipping {
            self.inbuf.clear();
        }
        if self.read_closed && !self.inbuf.is_empty() {
            // A last request without its newline (printf '...' | socat ...).
            return Some(Ok(std::mem::take(&mut self.inbuf)));
        }
        None
    }
}

fn too_long() -> String {
    format!("request line longer than {MAX_REQUEST_LINE} bytes")
}

impl Server {
    /// Whether the control listener should be watched: a slot is free, or
    /// an idle connection can make room.
    pub(super) fn control_accepting(&self, now: Instant) -> bool {
        self.admins.len() < self.control_cap
            || self
                .admins
                .values()
                .any(|a| a.evictable_from().is_some_and(|t| now >= t))
    }

    /// At the cap with nobody evictable yet: when someone will be.
    pub(super) fn next_evictable(&self) -> Option<Instant> {
        if self.admins.len() < self.control_cap {
            return None;
        }
        self.admins
            .values()
            .filter_map(AdminConn::evictable_from)
            .min()
    }

    pub(super) fn accept_admins(&mut self) {
        loop {
            if self.admins.len() >= self.control_cap && !self.evict_idle_admin(Instant::now()) {
                return;
            }
            let Some(control) = &self.control else {
                return;
            };
            match control.listener.accept() {
                Ok((stream, _)) => {
                    if stream.as_raw_fd() as usize >= FD_SETSIZE {
                        self.log.warn(
                            "control: connection refused: no descriptor slot left for select(2)",
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_id();
                    let peer = net::peer_credentials(&stream);
                    self.admins.insert(
                        id,
                        AdminConn {
                            id,
                            stream,
                            peer,
                            inbuf: Vec::new(),
                            skipping: false,
                            out: Vec::new(),
                            follow_after: None,
                            read_closed: false,
                            last_heard: Instant::now(),
                            answered: 0,
                        },
                    );
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) if is_fd_exhaustion(&e) => {
                    self.on_fd_exhaustion(Door::Control);
                    return;
                }
                Err(e) => {
                    self.log.warn(format!("control: accept: {e}"));
                    return;
                }
            }
        }
    }

    /// Closes the connection idle the longest, to make room for a waiting
    /// one. False when none is idle.
    fn evict_idle_admin(&mut self, now: Instant) -> bool {
        let oldest = self
            .admins
            .values()
            .filter_map(|a| a.evictable_from().map(|t| (t, a.id)))
            .filter(|(t, _)| now >= *t)
            .min()
            .map(|(_, id)| id);
        match oldest {
            Some(id) => {
                self.admins.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Accepts one waiting control connection while descriptors are
    /// exhausted (the spare one was just freed), tells it why, closes it.
    pub(super) fn refuse_admin_at_door(&mut self) {
        if let Some(c) = &self.control
            && let Ok((mut stream, _)) = c.listener.accept()
        {
            let _ = stream.set_nonblocking(true);
            let _ = stream.write(NO_DESCRIPTORS);
        }
    }

    /// Reads what a control connection sent, then answers what it can.
    pub(super) fn read_admin(&mut self, id: u64) {
        let Some(a) = self.admins.get_mut(&id) else {
            return;
        };
        if a.wants_read() {
            let mut buf = [0u8; 16 * 1024];
            match a.stream.read(&mut buf) {
                Ok(0) => a.read_closed = true,
                // A follower's further input is ignored.
                Ok(_) if a.follow_after.is_some() => {}
                Ok(n) => {
                    a.inbuf.extend_from_slice(&buf[..n]);
                    a.last_heard = Instant::now();
                }
                Err(e) if would_block(&e) || interrupted(&e) => {}
                Err(_) => a.read_closed = true,
            }
        }
        self.serve_admin(id);
    }

    /// Answers buffered requests one at a time while the connection's
    /// unsent output stays under [`OUTPUT_HWM`]; the rest wait for it to
    /// drain (a peer that pipelines requests without reading the answers
    /// cannot make chatd build them all).
    fn serve_admin(&mut self, id: u64) {
        loop {
            let Some(a) = self.admins.get_mut(&id) else {
                return;
            };
            if a.out.len() > OUTPUT_HWM || a.follow_after.is_some() {
                return;
            }
            let Some(line) = a.take_line() else {
                return;
            };
            let response = match line {
                Err(msg) => control::error_response(ErrorCode::BadRequest, &msg),
                Ok(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(line) => match Request::parse(&line) {
                    Err(msg) => control::error_response(ErrorCode::BadRequest, &msg),
                    Ok(req) => self.execute(id, req),
                },
            };
            if let Some(a) = self.admins.get_mut(&id) {
                a.respond(&response);
                a.answered += 1;
            }
        }
    }

    /// Closes control connections silent for `--control-timeout`; those
    /// with a request half-sent are logged (at most once a second).
    pub(super) fn expire_admins(&mut self, now: Instant) {
        let timeout = self.cfg.control_timeout;
        let expired: Vec<(u64, bool)> = self
            .admins
            .values()
            .filter(|a| a.deadline(timeout).is_some_and(|d| now >= d))
            .map(|a| (a.id, !a.inbuf.is_empty()))
            .collect();
        let mut partial = 0;
        for (id, half_sent) in expired {
            self.admins.remove(&id);
            partial += usize::from(half_sent);
        }
        if partial > 0 {
            self.stalled_admins += partial;
            if self
                .last_admin_warning
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                self.last_admin_warning = Some(now);
                self.log.warn(format!(
                    "control: closed {} connection(s) stalled mid-request for {} s (--control-timeout)",
                    std::mem::take(&mut self.stalled_admins),
                    timeout.as_secs_f64()
                ));
            }
        }
    }

    /// Runs one command and returns its response.
    fn execute(&mut self, admin: u64, req: Request) -> Value {
        let audit = req.changes_state().then(|| summarize(&req));
        let response = self.run_command(admin, req);
        if let Some(what) = audit {
            let who = self
                .admins
                .get(&admin)
                .map(AdminConn::who)
                .unwrap_or_default();
            let outcome = match response["error"]["message"].as_str() {
                Some(msg) => format!("refused: {msg}"),
                None => "ok".to_string(),
            };
            self.log
                .info(format!("control: {what} by {who}: {outcome}"));
        }
        response
    }

    fn run_command(&mut self, admin: u64, req: Request) -> Value {
        match req {
            Request::CreateRoom { name, limit } => match self.hub.create_room(&name, limit) {
                Ok(room) => {
                    if let Err(e) = self.store.save(&self.hub.list()) {
                        // Not on disk, so not created: undo (the room is new
                        // and empty; nobody could join it in between).
                        let _ = self.hub.close_room(&name);
                        return self.persist_failed(e);
                    }
                    self.log.info(format!(
                        "room '{}' created with limit {}",
                        room.name, room.limit
                    ));
                    json!({ "ok": true, "room": room_json(&room) })
                }
                Err(e) => hub_error(&e),
            },
            Request::List {} => {
                let rooms: Vec<Value> = self.hub.list().iter().map(room_json).collect();
                json!({ "ok": true, "rooms": rooms })
            }
            Request::Participants { room } => match self.hub.participants(&room) {
                Ok(members) => {
                    let list: Vec<Value> = members
                        .iter()
                        .map(|m| {
                            json!({
                                "username": m.username,
                                "address": m.address,
                                "joined_at": m.joined_at,
                            })
                        })
                        .collect();
                    json!({ "ok": true, "room": room, "participants": list })
                }
                Err(e) => hub_error(&e),
            },
            Request::CloseRoom { room } => {
                // On disk first: the members cannot be un-disconnected.
                if let Err(e) = self.hub.room(&room) {
                    return hub_error(&e);
                }
                let remaining: Vec<RoomInfo> = self
                    .hub
                    .list()
                    .into_iter()
                    .filter(|r| r.name != room)
                    .collect();
                if let Err(e) = self.store.save(&remaining) {
                    return self.persist_failed(e);
                }
                let closure = self.hub.close_room(&room).expect("checked above");
                let line = closure.event.encode();
                for &conn in &closure.members {
                    self.begin_close(conn, Some(&line));
                }
                self.log.info(format!(
                    "room '{}' closed; {} member(s) disconnected",
                    closure.room,
                    closure.members.len()
                ));
                json!({ "ok": true, "room": closure.room, "disconnected": closure.members.len() })
            }
            Request::SetLimit { room, limit } => {
                let old = self.hub.room(&room).map(|r| r.limit);
                match self.hub.set_limit(&room, limit) {
                    Ok(info) => {
                        if let Err(e) = self.store.save(&self.hub.list()) {
                            let old = old.expect("set_limit found the room");
                            let _ = self.hub.set_limit(&room, old);
                            return self.persist_failed(e);
                        }
                        self.log.info(format!(
                            "room '{}' limit changed to {}",
                            info.name, info.limit
                        ));
                        json!({ "ok": true, "room": room_json(&info) })
                    }
                    Err(e) => hub_error(&e),
                }
            }
            Request::Kick { room, username } => match self.hub.kick(&room, &username) {
                Ok(kick) => {
                    let dep = &kick.departure;
                    self.log.info(format!(
                        "leave: '{}' removed from room '{}' ({}) by an admin",
                        dep.member.username, dep.room, dep.member.address
                    ));
                    self.deliver(&dep.notice);
                    self.begin_close(kick.conn, Some(&kick.event.encode()));
                    self.drop_doomed();
                    json!({ "ok": true, "room": room, "username": username })
                }
                Err(e) => hub_error(&e),
            },
            Request::Logs { limit, follow } => {
                let entries: Vec<&Entry> = self.log.recent(limit).collect();
                let response = json!({ "ok": true, "logs": entries });
                if follow {
                    let last = self.log.last_seq();
                    if let Some(a) = self.admins.get_mut(&admin) {
                        a.follow_after = Some(last);
                    }
                }
                response
            }
            Request::Stats {} => json!({ "ok": true, "stats": self.stats_json() }),
        }
    }

    /// The state file could not be written: the change was not made.
    fn persist_failed(&mut self, e: String) -> Value {
        self.log.error(format!("{e}; the change was refused"));
        control::error_response(
            ErrorCode::Failed,
            &format!("not saved, nothing changed: {e}"),
        )
    }

    fn stats_json(&self) -> Value {
        json!({
            "uptime_secs": self.started.elapsed().as_secs(),
            "clients": self.clients.len(),
            "members": self.hub.member_count(),
            "rooms": self.hub.room_count(),
            "messages_relayed": self.stats.messages_relayed,
            "deliveries": self.stats.deliveries,
            "bytes_out": self.stats.bytes_out,
            "slow_consumer_drops": self.stats.slow_consumer_drops,
            "joins": self.stats.joins,
            "refusals": self.stats.refusals,
        })
    }

    /// Hands new log entries to `logs --follow` readers; drops readers that
    /// fall too far behind.
    pub(super) fn forward_logs(&mut self) {
        loop {
            let entries = self.log.take_unsent();
            if entries.is_empty() {
                return;
            }
            let mut lagging = Vec::new();
            for a in self.admins.values_mut() {
                let Some(after) = a.follow_after else {
                    continue;
                };
                for e in entries.iter().filter(|e| e.seq > after) {
                    a.respond(&json!({ "log": e }));
                    a.follow_after = Some(e.seq);
                }
                if a.out.len() > FOLLOWER_MAX_BACKLOG {
                    lagging.push(a.id);
                }
            }
            for id in lagging {
                self.admins.remove(&id);
                self.log.warn(format!(
                    "control: dropped a logs --follow reader more than {FOLLOWER_MAX_BACKLOG} bytes behind"
                ));
            }
        }
    }

    /// One write per control connection with output; answers requests that
    /// waited for the output to drain; closes the finished.
    pub(super) fn flush_admins(&mut self) {
        let mut done = Vec::new();
        let mut drained = Vec::new();
        for a in self.admins.values_mut() {
            if !a.out.is_empty() {
                match a.stream.write(&a.out) {
                    Ok(n) => {
                        a.out.drain(..n);
                        if a.out.len() <= OUTPUT_HWM && a.has_request() {
                            drained.push(a.id);
                        }
                    }
                    Err(e) if would_block(&e) || interrupted(&e) => {}
                    Err(_) => {
                        done.push(a.id);
                        continue;
                    }
                }
            }
            let following = a.follow_after.is_some();
            if a.read_closed && !a.has_request() && (a.out.is_empty() || following) {
                done.push(a.id);
            }
        }
        for id in done {
            self.admins.remove(&id);
        }
        for id in drained {
            self.serve_admin(id);
        }
    }
}

/// The control connections chatd can hold at once: the descriptors
/// select(2) can watch, minus those open now, minus one per chat client
/// (`max_clients`), minus one for a connection being accepted and refused;
/// at most [`MAX_CONTROL_CAP`].
pub fn control_cap(open_fds: usize, max_clients: usize) -> usize {
    FD_SETSIZE
        .saturating_sub(open_fds + max_clients + 1)
        .min(MAX_CONTROL_CAP)
}

/// How many descriptors this process has open (from /proc/self/fd).
pub fn open_descriptors() -> Option<usize> {
    // The directory handle itself is one of the entries while it is read.
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1))
}

fn room_json(r: &RoomInfo) -> Value {
    json!({ "name": r.name, "limit": r.limit, "members": r.members })
}

fn hub_error(e: &HubError) -> Value {
    let code = match e {
        HubError::NotFound(_) => ErrorCode::NotFound,
        HubError::Exists(_) => ErrorCode::Exists,
        HubError::Invalid(_) => ErrorCode::Invalid,
    };
    control::error_response(code, e.message())
}

/// A request as one log phrase.
fn summarize(req: &Request) -> String {
    match req {
        Request::CreateRoom { name, limit } => format!("create-room '{name}' limit {limit}"),
        Request::CloseRoom { room } => format!("close-room '{room}'"),
        Request::SetLimit { room, limit } => format!("set-limit '{room}' {limit}"),
        Request::Kick { room, username } => format!("kick '{username}' from '{room}'"),
        other => format!("{other:?}"),
    }
}
