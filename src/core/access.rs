//! Who may come in: the access policy, without the secrets' checks.
//!
//! A joiner is identified (a password account, a token, or a bare name)
//! and then admitted to a room (public, or private with an allow-list and
//! an optional key). The checks that cost (Argon2, token signatures) and
//! the budgets around them stay in the shell (daemon/accounts.rs,
//! daemon/oidc.rs); what follows from their answers is decided here.
//!
//! Invariants: a private room admits by the exact listed name, and only a
//! logged-in one (a look-alike such as `Ana` or Cyrillic `аna` of a
//! listed `ana` is somebody else); a token never logs in as a password
//! account's name; a refusal names no secret.

use crate::core::hub::Access;
use crate::core::names::check_username;

/// What a private room's door says to a joiner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEntry {
    /// In: a public room, an unknown one (the hub answers 404 then), or a
    /// logged-in name on the allow-list.
    Admitted,
    /// The joiner gave a key: it must match this hash.
    CheckKey { hash: String },
    /// Out (403), and why.
    Forbidden(String),
}

/// Whether `username` may enter `room` (whose access is `access`, if the
/// room exists), before any key is checked.
pub fn room_entry(
    room: &str,
    access: Option<&Access>,
    username: &str,
    logged_in: bool,
    key_given: bool,
) -> RoomEntry {
    let Some(access) = access else {
        return RoomEntry::Admitted;
    };
    if !access.private {
        return RoomEntry::Admitted;
    }
    if logged_in && access.allowed.iter().any(|n| n == username) {
        return RoomEntry::Admitted;
    }
    match (&access.key_hash, key_given) {
        (Some(hash), true) => RoomEntry::CheckKey { hash: hash.clone() },
        _ => RoomEntry::Forbidden(not_allowed(room)),
    }
}

/// The 403 reason for a private room.
pub fn not_allowed(room: &str) -> String {
    format!("not allowed in room '{room}'")
}

/// The name a verified token logs in as, or why not (401): `token_name`
/// is the token's claim, `asked` the handshake's username (if any), and
/// `owner` the password account whose name it is (if any).
pub fn token_login(
    token_name: &str,
    asked: Option<&str>,
    owner: Option<&str>,
) -> Result<String, String> {
    check_username(token_name)
        .map_err(|e| format!("the token's name is not a valid username: {e}"))?;
    if asked.is_some_and(|u| u != token_name) {
        return Err(format!("the username is not the token's ('{token_name}')"));
    }
    if let Some(owner) = owner {
        return Err(format!(
            "'{owner}' is a password account here; a token cannot log in as it"
        ));
    }
    Ok(token_name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(allowed: &[&str], key: Option<&str>) -> Access {
        Access {
            private: true,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            key_hash: key.map(str::to_string),
        }
    }

    #[test]
    fn public_and_unknown_rooms_let_everyone_in() {
        let public = Access::default();
        assert_eq!(
            room_entry("R", Some(&public), "x", false, false),
            RoomEntry::Admitted
        );
        assert_eq!(room_entry("R", None, "x", false, true), RoomEntry::Admitted);
    }

    #[test]
    fn a_private_room_admits_the_exact_listed_name_when_logged_in() {
        let a = private(&["ana"], None);
        assert_eq!(
            room_entry("R", Some(&a), "ana", true, false),
            RoomEntry::Admitted
        );
        let out = RoomEntry::Forbidden("not allowed in room 'R'".into());
        assert_eq!(
            room_entry("R", Some(&a), "ana", false, false),
            out,
            "not logged in"
        );
        for lookalike in ["Ana", "ANA", "\u{430}na"] {
            assert_eq!(
                room_entry("R", Some(&a), lookalike, true, false),
                out,
                "{lookalike}"
            );
        }
    }

    #[test]
    fn a_key_is_checked_only_when_the_room_has_one_and_it_was_given() {
        let keyed = private(&[], Some("$argon2id$…"));
        assert_eq!(
            room_entry("R", Some(&keyed), "bia", false, true),
            RoomEntry::CheckKey {
                hash: "$argon2id$…".into()
            }
        );
        assert!(matches!(
            room_entry("R", Some(&keyed), "bia", false, false),
            RoomEntry::Forbidden(_)
        ));
        let unkeyed = private(&[], None);
        assert!(matches!(
            room_entry("R", Some(&unkeyed), "bia", false, true),
            RoomEntry::Forbidden(_)
        ));
    }

    #[test]
    fn a_token_logs_in_as_its_own_valid_name_only() {
        assert_eq!(token_login("ana", None, None), Ok("ana".into()));
        assert_eq!(token_login("ana", Some("ana"), None), Ok("ana".into()));
        let other = token_login("ana", Some("bia"), None).unwrap_err();
        assert!(other.contains("not the token's ('ana')"), "{other}");
        let owned = token_login("ana", None, Some("Ana")).unwrap_err();
        assert!(owned.contains("'Ana' is a password account"), "{owned}");
        let bad = token_login("Sistema", None, None).unwrap_err();
        assert!(bad.contains("not a valid username"), "{bad}");
    }
}
