//! The names people are known by: how a username is made canonical, and
//! when two names are "the same" for a person reading them.
//!
//! A username must be a canonical PRECIS nickname (RFC 8266, on the
//! FreeformClass of RFC 8264; the `precis-profiles` crate): invisible and
//! default-ignorable code points (zero-width space, word joiner, soft
//! hyphen, bidi controls...), control characters and code points
//! unassigned in PRECIS's Unicode version (6.3: newer emoji) are refused,
//! and so is a name that enforcement would change (other spaces than
//! U+0020, leading, trailing or doubled spaces, a form that is not NFKC
//! such as fullwidth `Ｙａｎ`); the refusal says which form to use instead.
//! Refusing rather than silently rewriting keeps every client's idea of
//! its own name equal to chatd's.
//!
//! Two names are the same when their comparison keys are equal: the
//! Unicode TR39 confusable skeleton (`unicode-security`) of the lower-cased
//! canonical form, lower-cased again. So `Sistema` with a Cyrillic `е` or
//! `Ѕ`, a dotless `ı`, or in capitals is the reserved name, and `Yan` and
//! `yan` cannot share a room. The key is only ever compared, never shown.
//!
//! Pure: no I/O, no clock, no panic on any input.

use precis_core::profile::Profile;
use precis_profiles::Nickname;

use crate::core::text;

/// The username the server speaks as; reserved for clients in any form
/// that looks like it.
pub const SYSTEM_USER: &str = "Sistema";

pub const MAX_USERNAME_CHARS: usize = 32;

/// Checks a username against the rules above; the error is a reason for a
/// 400.
pub fn check_username(raw: &str) -> Result<(), String> {
    let too_long = || format!("username must be 1 to {MAX_USERNAME_CHARS} characters");
    let chars = raw.chars().count();
    if chars == 0 || chars > MAX_USERNAME_CHARS {
        return Err(too_long());
    }
    if raw.chars().any(text::is_hazard) {
        return Err(hazard(raw));
    }
    let canonical = match Nickname::new().enforce(raw) {
        Ok(c) => c.into_owned(),
        Err(e) => return Err(refusal(raw, &e)),
    };
    if is_reserved(&canonical) {
        return Err(format!(
            "username '{}' is reserved: it is, or looks like, '{SYSTEM_USER}'",
            text::printable(raw)
        ));
    }
    if canonical != raw {
        return Err(format!(
            "username '{}' is not in canonical form (PRECIS Nickname, RFC 8266: single spaces inside, none around, NFKC): use '{canonical}'",
            text::printable(raw)
        ));
    }
    Ok(())
}

/// The key two names are compared by (see the module comment).
pub fn comparison_key(name: &str) -> String {
    let folded = name.to_lowercase();
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    skeleton.to_lowercase()
}

/// Whether a name is, or looks like, [`SYSTEM_USER`].
pub fn is_reserved(name: &str) -> bool {
    comparison_key(name) == comparison_key(SYSTEM_USER)
}

/// A 400 reason naming the first invisible or control character.
fn hazard(raw: &str) -> String {
    let c = raw.chars().find(|&c| text::is_hazard(c)).unwrap_or(' ');
    format!(
        "username must not contain U+{:04X}: invisible and control characters are refused",
        u32::from(c)
    )
}

/// A 400 reason for a name PRECIS refused, naming the offending character
/// by its code point (so the reason itself shows nothing invisible).
fn refusal(raw: &str, e: &precis_core::Error) -> String {
    use precis_core::{CodepointInfo, Error};
    match e {
        Error::BadCodepoint(CodepointInfo { cp, .. }) => format!(
            "username must not contain U+{cp:04X}: invisible, control and unassigned characters (PRECIS, Unicode 6.3) are refused"
        ),
        _ if raw.trim().is_empty() => {
            format!("username must be 1 to {MAX_USERNAME_CHARS} characters")
        }
        _ => "username is not a valid name (PRECIS Nickname profile, RFC 8266)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgeries_of_the_reserved_name_are_refused() {
        for forged in [
            "Sistema",
            "sistema",
            "SISTEMA",
            "Sis\u{200b}tema",  // zero-width space
            "Sis\u{2060}tema",  // word joiner
            "Sis\u{ad}tema",    // soft hyphen
            "Sist\u{435}ma",    // Cyrillic е
            "\u{405}istema",    // Cyrillic Ѕ
            "Ｓｉｓｔｅｍａ",   // fullwidth
            "S\u{131}stema",    // dotless ı
            "Sis\u{feff}tema",  // zero-width no-break space
            "Sistem\u{430}",    // Cyrillic а
            " Sistema ",        // spaces trimmed away
            "Sis\u{202e}tema",  // right-to-left override
            "Sis\u{e0041}tema", // tag character
        ] {
            assert!(check_username(forged).is_err(), "{forged:?} accepted");
        }
    }

    #[test]
    fn ordinary_names_pass_and_others_are_told_their_canonical_form() {
        for ok in [
            "Yan",
            "Yan Buendia",
            "café",
            "José 😀",
            "Ünïcödé-名前",
            "a.b_c-d",
        ] {
            assert_eq!(check_username(ok), Ok(()), "{ok:?}");
        }
        for (raw, canonical) in [
            ("  Yan   Buendia ", "Yan Buendia"),
            ("Yan\u{a0}Buendia", "Yan Buendia"),
            ("cafe\u{301}", "café"),
            ("Ｙａｎ", "Yan"),
        ] {
            let e = check_username(raw).unwrap_err();
            assert!(e.contains(&format!("use '{canonical}'")), "{raw:?}: {e}");
        }
    }

    #[test]
    fn look_alikes_share_a_key_and_different_names_do_not() {
        assert_eq!(comparison_key("Yan"), comparison_key("yan"));
        assert_eq!(comparison_key("Yan"), comparison_key("Y\u{430}n"));
        assert_eq!(comparison_key("paypal"), comparison_key("paypa1"));
        assert_ne!(comparison_key("Yan"), comparison_key("Ian"));
        assert_ne!(comparison_key("Ana"), comparison_key("Anna"));
    }

    #[test]
    fn lengths_and_blanks() {
        assert!(check_username("").is_err());
        assert!(check_username("   ").is_err());
        assert!(check_username(&"a".repeat(32)).is_ok());
        assert!(check_username(&"a".repeat(33)).is_err());
        assert!(check_username(&"ü".repeat(32)).is_ok());
        assert!(check_username("tab\there").is_err());
        assert!(check_username("nl\nhere").is_err());
    }

    #[test]
    fn the_refusal_names_the_character_visibly() {
        let e = check_username("Sis\u{200b}tema").unwrap_err();
        assert!(e.contains("U+200B"), "{e}");
        assert!(!e.contains('\u{200b}'), "{e}");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn whatever_is_accepted_is_visible_canonical_and_not_reserved(
                name in "\\PC{0,40}|[SsIiTtEeMmAaıеаЅ\u{200b} ]{5,9}",
            ) {
                if check_username(&name).is_ok() {
                    prop_assert!(!name.chars().any(text::is_hazard));
                    prop_assert!(!is_reserved(&name));
                    let count = name.chars().count();
                    prop_assert!((1..=MAX_USERNAME_CHARS).contains(&count));
                    prop_assert_eq!(name.trim(), name.as_str());
                }
            }
        }
    }
}
