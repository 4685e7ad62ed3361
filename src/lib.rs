//! chatd: a chat-room daemon for Linux, byte-compatible with the original
//! Python prototype's client.
//!
//! - [`wire`]: the chat wire format (frames in, JSON event lines out); pure.
//! - [`hub`]: rooms, members and limits; returns what to send to whom; pure.
//! - [`names`]: canonical usernames (PRECIS) and look-alike comparison
//!   (TR39 skeletons); pure.
//! - [`control`]: the control protocol's types, shared by chatd and chatctl.
//! - [`paths`]: where the control socket and the state directory are.
//! - [`text`]: terminal- and log-safe rendering of untrusted text; pure.
//! - [`timefmt`]: RFC 3339 timestamps without a date crate; pure.
//! - [`cli`]: the three programs' command lines (clap).
//! - [`daemon`]: the I/O shell: one select(2) loop around the hub.
//!
//! The binaries live in `src/bin/`: `chatd` (the daemon), `chatctl` (the
//! admin CLI) and `chat` (the terminal client).

pub mod cli;
pub mod control;
pub mod daemon;
pub mod hub;
pub mod names;
pub mod paths;
pub mod text;
pub mod timefmt;
pub mod wire;
