//! I/O helpers shared by the daemon and the client, so each idea exists
//! once: the signal self-pipe and non-blocking reads and writes. Built on
//! [`crate::core`]; knows nothing of chatd's protocols.

pub mod nonblock;
pub mod selfpipe;
