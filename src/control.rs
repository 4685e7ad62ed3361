//! The control protocol (PROTOCOL.md §2), shared by chatd and chatctl: the
//! request type, the error codes, the size bound on a request line, and how
//! both programs find the socket. One JSON request per line, one JSON
//! response per line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest request line chatd accepts (newline excluded).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Default for `logs` when no `limit` is given.
pub const DEFAULT_LOG_LIMIT: usize = 100;

/// One control request. Unknown commands and unknown fields are refused
/// (`bad_request`), so a typo never silently does something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    CreateRoom {
        name: String,
        limit: usize,
    },
    List {},
    Participants {
        room: String,
    },
    CloseRoom {
        room: String,
    },
    SetLimit {
        room: String,
        limit: usize,
    },
    Kick {
        room: String,
        username: String,
    },
    Logs {
        #[serde(default = "default_log_limit")]
        limit: usize,
        #[serde(default)]
        follow: bool,
    },
    Stats {},
}

fn default_log_limit() -> usize {
    DEFAULT_LOG_LIMIT
}

impl Request {
    /// Whether the command changes the daemon's state (such commands are
    /// logged with the peer's uid and pid).
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Request::CreateRoom { .. }
                | Request::CloseRoom { .. }
                | Request::SetLimit { .. }
                | Request::Kick { .. }
        )
    }

    /// Parses one request line; the error is the `bad_request` message.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))
    }
}

/// The `code` of an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    Exists,
    Invalid,
    BadRequest,
    /// The request was valid but chatd could not carry it out (for example
    /// the state file could not be written).
    Failed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::Invalid => "invalid",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Failed => "failed",
        }
    }
}

/// `{"ok":false,"error":{"code":...,"message":...}}`
pub fn error_response(code: ErrorCode, message: &str) -> serde_json::Value {
    serde_json::json!({
        "ok": false,
        "error": { "code": code.as_str(), "message": message },
    })
}

/// Where the control socket is, the same rule in chatd and chatctl:
/// the explicit path, else `$CHATD_CONTROL`, else
/// `$RUNTIME_DIRECTORY/control.sock`, else
/// `$XDG_RUNTIME_DIR/chatd/control.sock`, else `/tmp/chatd-$UID/control.sock`.
pub fn resolve_socket_path(explicit: Option<&Path>) -> PathBuf {
    resolve_with(
        explicit,
        |name| std::env::var_os(name),
        nix::unistd::getuid().as_raw(),
    )
}

/// Where the system service (chatd.service, RuntimeDirectory=chatd) puts
/// its control socket.
pub const SYSTEM_SOCKET: &str = "/run/chatd/control.sock";

/// chatctl's rule: [`resolve_socket_path`], except that when neither the
/// flag nor an environment variable chose the path and nothing is there, the
/// system service's socket is used if it exists. So an administrator in
/// group chatd needs no flag for the packaged daemon.
pub fn resolve_client_socket_path(explicit: Option<&Path>) -> PathBuf {
    let path = resolve_socket_path(explicit);
    let chosen = explicit.is_some()
        || ["CHATD_CONTROL", "RUNTIME_DIRECTORY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if chosen || path.exists() {
        return path;
    }
    // "Permission denied" on the system socket counts as there: the error
    // that follows then names the socket the user most likely meant.
    match std::fs::symlink_metadata(SYSTEM_SOCKET) {
        Ok(_) => PathBuf::from(SYSTEM_SOCKET),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => PathBuf::from(SYSTEM_SOCKET),
        Err(_) => path,
    }
}

fn resolve_with(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(p) = set("CHATD_CONTROL") {
        return PathBuf::from(p);
    }
    if let Some(dirs) = set("RUNTIME_DIRECTORY") {
        // systemd joins several RuntimeDirectory= entries with ':'.
        let first = dirs
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !first.is_empty() {
            return Path::new(&first).join("control.sock");
        }
    }
    if let Some(dir) = set("XDG_RUNTIME_DIR") {
        return Path::new(&dir).join("chatd").join("control.sock");
    }
    PathBuf::from(format!("/tmp/chatd-{uid}/control.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn socket_path_resolution_order() {
        let all = env_of(&[
            ("CHATD_CONTROL", "/a.sock"),
            ("RUNTIME_DIRECTORY", "/run/chatd:/run/other"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ]);
        assert_eq!(
            resolve_with(Some(Path::new("/x")), &all, 5),
            PathBuf::from("/x")
        );
        assert_eq!(resolve_with(None, &all, 5), PathBuf::from("/a.sock"));
        let env = env_of(&[
            ("CHATD_CONTROL", ""),
            ("RUNTIME_DIRECTORY", "/run/chatd:/run/other"),
        ]);
        assert_eq!(
            resolve_with(None, env, 5),
            PathBuf::from("/run/chatd/control.sock")
        );
        let env = env_of(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        assert_eq!(
            resolve_with(None, env, 5),
            PathBuf::from("/run/user/1000/chatd/control.sock")
        );
        assert_eq!(
            resolve_with(None, env_of(&[]), 5),
            PathBuf::from("/tmp/chatd-5/control.sock")
        );
    }

    #[test]
    fn request_parsing() {
        assert_eq!(
            Request::parse(br#"{"cmd":"create-room","name":"Teste","limit":2}"#),
            Ok(Request::CreateRoom {
                name: "Teste".into(),
                limit: 2
            })
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"logs"}"#),
            Ok(Request::Logs {
                limit: 100,
                follow: false
            })
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"logs","limit":10,"follow":true}"#),
            Ok(Request::Logs {
                limit: 10,
                follow: true
            })
        );
        for bad in [
            &br#"{"cmd":"nope"}"#[..],
            br#"{"cmd":"create-room","name":"T","limit":-1}"#,
            br#"{"cmd":"create-room","name":"T","limt":2}"#,
            br#"{"cmd":"list","extra":1}"#,
            b"not json",
            b"{}",
            b"\xff",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }
}
