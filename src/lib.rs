//! chatd: a chat-room daemon for Linux, byte-compatible with the original
//! Python prototype's client.
//!
//! The layers, each importing only from those below it:
//! - [`core`]: decides, never does I/O or reads a clock: the wire format,
//!   the hub, the session state machine, the control protocol, names.
//! - [`sys`]: I/O helpers shared by daemon and client: the signal
//!   self-pipe, non-blocking reads and writes.
//! - [`paths`]: where the control socket and the state directory are.
//! - [`files`]: the operator's small files read without waiting (regular
//!   files only, bounded).
//! - [`timefmt`]: RFC 3339 timestamps without a date crate.
//! - [`control_client`]: the client end of the control socket (chatctl,
//!   its shell, its completions).
//! - [`cli`]: the three programs' command lines (clap).
//! - [`daemon`]: the I/O shell around the core: one select(2) loop.
//! - [`client`]: the `chat` client's session, line editor and loop.
//!
//! The binaries live in `src/bin/`: `chatd` (the daemon), `chatctl` (the
//! admin CLI) and `chat` (the terminal client).

pub mod cli;
pub mod client;
pub mod control_client;
pub mod core;
pub mod daemon;
pub mod files;
pub mod paths;
pub mod sys;
pub mod timefmt;
