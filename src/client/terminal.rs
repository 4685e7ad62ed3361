//! Raw keyboard input for as long as a [`RawMode`] lives.

use std::io;
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

/// Raw keyboard input (no line buffering, no echo, no signal keys) for as
/// long as it lives; output processing stays on so "\n" still returns the
/// carriage. The previous settings are restored on drop, panics included.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> nix::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        raw.input_flags
            .remove(termios::InputFlags::IXON | termios::InputFlags::ICRNL);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Asks for a secret on the terminal without echoing it; the prompt goes
/// to stderr, so stdout stays clean for scripts.
pub fn read_hidden(prompt: &str) -> io::Result<String> {
    use std::io::{BufRead, Write};
    let stdin = io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).map_err(io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = io::stderr().flush();
    termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &quiet).map_err(io::Error::from)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &saved);
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
