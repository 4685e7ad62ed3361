//! Command-line definitions of the three programs, one module each. They
//! live in the library (not in `src/bin/`) so that tests can render the man
//! pages and shell completions in `contrib/` from them and notice when those
//! are out of date.

pub mod chat;
pub mod chatctl;
pub mod chatd;
pub mod config_file;
pub mod shell;
