//! The chat part's pieces that carry no sockets: per-room flow control
//! (back-pressure counts, holds from other nodes, inboxes). Time is
//! passed in; nothing here reads the clock or does I/O.

pub mod flow;
pub mod inbox;
