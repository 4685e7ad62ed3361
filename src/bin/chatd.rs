//! chatd: the chat-room daemon. Reads its flags and configuration file,
//! runs the event loop; maps every failure to a message on stderr and exit
//! 1 (2 for usage and configuration-file errors).

use std::process::ExitCode;

use chatd::daemon::{self, Config, LoadFailure};

fn main() -> ExitCode {
    let cfg = match Config::load(std::env::args_os().collect()) {
        Ok(cfg) => cfg,
        Err(LoadFailure::Usage(e)) => e.exit(),
        Err(LoadFailure::Config(msg)) => {
            eprintln!("chatd: error: {msg}");
            return ExitCode::from(2);
        }
        Err(LoadFailure::Other(msg)) => return fail(&msg),
    };
    match daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("chatd: error: {msg}");
    ExitCode::FAILURE
}
