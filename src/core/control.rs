//! The control protocol (PROTOCOL.md §2), shared by chatd and chatctl: the
//! request type, the error codes and the size bound on a request line. One
//! JSON request per line, one JSON response per line. (Where the socket is:
//! [`crate::paths`].)

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

#[cfg(test)]
mod tests {
    use super::*;

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
