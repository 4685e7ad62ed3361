//! The `chat` client as a library: `src/bin/chat.rs` keeps only `main`,
//! the dialogue around rooms and one exit-status map.
//!
//! - [`session`]: the client's side of the protocol without I/O: the
//!   handshake frame, message frames, event lines parsed into typed events,
//!   the join and how a session ends.
//! - [`editor`]: the line being typed in raw mode (`--plain`), without I/O.
//! - [`line`]: the full-screen input line: grapheme-aware editing and
//!   history, without I/O.
//! - [`window`]: one conversation (a room, or one person): scrollback,
//!   members, what came while it was not shown. Without I/O.
//! - [`screen`]: the full-screen layout (ratatui): the windows, status
//!   bar, input; what a typed line means. Without I/O.
//! - [`desk`]: the full screen's loop: one connection per room, rejoined
//!   with backoff when lost; direct messages.
//! - [`lang`]: the client's words, Portuguese or English, one per run.
//! - [`terminal`]: raw mode for as long as it lives.
//! - [`tui`]: the full-screen terminal (ratatui + crossterm, raw mode and
//!   the alternate screen while it lives); keys into actions.
//! - [`width`]: text width as terminals count it (per code point).
//! - [`transport`]: plain TCP or verified TLS (rustls).
//! - [`pin`]: trusting a certificate by its fingerprint (`--tls-pin`,
//!   `--tofu` with a known_hosts file).
//! - [`retry`]: when to try a join again after a 503 (backoff, jitter,
//!   the server's hint), without I/O.
//! - [`run`]: the one select(2) loop over stdin, the socket and the signal
//!   self-pipe that drives a session.

pub mod desk;
pub mod editor;
pub mod lang;
pub mod line;
pub mod pin;
pub mod retry;
pub mod run;
pub mod screen;
pub mod session;
pub mod terminal;
pub mod transport;
pub mod tui;
pub mod width;
pub mod window;
