//! The client end of the control socket, shared by chatctl's commands, its
//! admin shell and its shell completions: finding chatd's socket and asking
//! one question.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::core::control::{Reply, Request, Response};
use crate::paths::{check_private_dir, client_socket_candidates};

/// Connects to the first control socket that answers. When none does, the
/// error names every path tried and why each failed, and says what to
/// check. Returns the stream and the path, as shown in messages.
pub fn connect(explicit: Option<&Path>) -> Result<(UnixStream, String), String> {
    let mut tried = Vec::new();
    let mut denied = false;
    for path in client_socket_candidates(explicit) {
        check_private_dir(&path, false)?;
        match UnixStream::connect(&path) {
            Ok(stream) => return Ok((stream, path.display().to_string())),
            Err(e) => {
                denied |= e.kind() == io::ErrorKind::PermissionDenied;
                tried.push(format!("{} ({e})", path.display()));
            }
        }
    }
    let hint = if denied {
        "; the socket's group may administer (for the service, group chatd: log in again after joining it)"
    } else {
        "; is chatd running? (systemctl status chatd, or start chatd), or give --socket PATH"
    };
    Err(format!(
        "cannot reach chatd: tried {}{hint}",
        tried.join(", ")
    ))
}

/// Sends one request and reads its answer, waiting at most `timeout`.
pub fn ask(explicit: Option<&Path>, req: &Request, timeout: Duration) -> Result<Response, String> {
    let (stream, shown) = connect(explicit)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut line = serde_json::to_vec(req).expect("requests serialize");
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .map_err(|e| format!("cannot reach chatd at {shown}: send: {e}"))?;
    let mut raw = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut raw)
        .map_err(|e| format!("no response from chatd at {shown}: {e}"))?;
    Response::parse(req, &raw)
        .map_err(|e| format!("chatd at {shown} sent a malformed response: {e}"))
}

/// The rooms' names, in creation order, or none when chatd cannot say
/// (for completions, which must never hang or complain).
pub fn room_names(explicit: Option<&Path>) -> Vec<String> {
    match ask(explicit, &Request::List {}, Duration::from_secs(1)) {
        Ok(Response::Ok(Reply::Rooms { rooms })) => rooms.into_iter().map(|r| r.name).collect(),
        _ => Vec::new(),
    }
}
