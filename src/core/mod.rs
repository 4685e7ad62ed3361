//! The core: everything that decides, and nothing that does. No module here
//! touches a socket, a file, the logger or a clock (std::net's address
//! types appear as values only: fair.rs keys, a cluster join's peer):
//! times come in as arguments, and what to send to whom goes out as values. That is what
//! lets every policy be unit-tested in microseconds and fuzzed.
//!
//! - [`access`]: who may come in: token logins, private rooms' doors.
//! - [`wire`]: the chat wire format: frames in, typed events out (and back).
//! - [`hub`]: rooms, members and limits; protocol-neutral deliveries.
//! - [`session`]: one chat connection's state machine, driven with virtual
//!   time (`handle(now, input) -> action`, `poll_timeout()`).
//! - [`ring`]: a room's lines encoded once, and each member's cursor into them.
//! - [`control`]: the control protocol's typed requests and responses,
//!   shared by chatd and chatctl.
//! - [`names`]: canonical usernames and look-alike comparison.
//! - [`people`]: who holds a name server-wide, across protocols.
//! - [`moderation`]: a room's lasting rules (topic, operator accounts, bans,
//!   mutes, +m) and server-wide bans: targets, matching, expiry.
//! - [`modes`]: a room's IRC-style modes (operators, flags, key, bans, topic).
//! - [`codec`], [`irc`], [`ircmap`]: protocols as codecs; IRC messages; chatd as IRC sees it.
//! - [`chathistory`]: what an IRC `CHATHISTORY` command asks for.
//! - [`flood`]: flood control's rule and verdicts (fakelag, then refusal).
//! - [`text`]: terminal- and log-safe rendering of untrusted text.
//! - [`lines`]: a bounded line splitter (control requests, event lines).
//! - [`fair`]: fair shares per source address: address keys (IPv6 per /64),
//!   exempt ranges, token buckets, a bounded LRU.
//! - [`cluster`]: cluster mode's RESP framing, shared keys, Lua scripts and events.

pub mod access;
pub mod chathistory;
pub mod cluster;
pub mod codec;
pub mod control;
pub mod fair;
pub mod flood;
pub mod http;
pub mod hub;
pub mod ids;
pub mod irc;
pub mod ircmap;
pub mod kept;
pub mod lines;
pub mod moderation;
pub mod modes;
pub mod names;
pub mod people;
pub mod ring;
pub mod session;
pub mod text;
pub mod wire;
