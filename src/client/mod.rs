//! The `chat` client as a library: `src/bin/chat.rs` keeps only `main`,
//! the dialogue around rooms and one exit-status map.
//!
//! - [`session`]: the client's side of the protocol without I/O: the
//!   handshake frame, message frames, event lines parsed into typed events,
//!   the join and how a session ends.
//! - [`editor`]: the line being typed in raw mode, without I/O.
//! - [`terminal`]: raw mode for as long as it lives.
//! - [`transport`]: plain TCP or verified TLS (rustls).
//! - [`run`]: the one select(2) loop over stdin, the socket and the signal
//!   self-pipe that drives a session.

pub mod editor;
pub mod run;
pub mod session;
pub mod terminal;
pub mod transport;
