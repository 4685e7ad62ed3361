//! Accounts: registered names with Argon2id password hashes (the argon2
//! crate; m = 19 MiB, t = 2, p = 1, OWASP's minimum), kept in `users.json`
//! by the store, and the login checks that guard them.
//!
//! A registered name, or any name that looks like it (the same comparison
//! key as for 409), can only be used with the account's password; with
//! `--require-login`, only registered names may join at all.
//!
//! Verifying a password costs about 25 ms of CPU inside the one loop, the
//! only computation that long. Two bounds keep that from stalling chat:
//! failed logins are limited per source address ([`MAX_FAILURES`] per
//! [`FAILURE_WINDOW`]; beyond it the address is refused without a check),
//! and at most [`VERIFY_BUDGET`] verifications run per second overall
//! (beyond it a login gets 503). Passwords never reach a log, a reply or an
//! error.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use rand_core::OsRng;

use super::store::SavedUser;
use crate::core::hub::HubError;
use crate::core::names;

/// Failed logins allowed per source address per window.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most password verifications per second, over all clients.
pub const VERIFY_BUDGET: u32 = 10;
/// Addresses remembered for the failure limit, at most.
const MAX_TRACKED: usize = 10_000;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC-format Argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// What a join with these credentials may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Join (as a registered user or, where allowed, an unregistered one).
    Allowed { registered: bool },
    /// 401, with the reason to give and to log.
    Unauthorized(String),
    /// 503: too many logins to check right now.
    Busy,
}

#[derive(Debug, Default)]
pub struct Accounts {
    /// name → hash, by name.
    users: BTreeMap<String, String>,
    /// comparison key → name.
    keys: HashMap<String, String>,
    failures: HashMap<IpAddr, (Instant, u32)>,
    /// The current second's verifications: (its start, how many).
    budget: Option<(Instant, u32)>,
}

impl Accounts {
    pub fn from_saved(saved: Vec<SavedUser>) -> Accounts {
        let mut a = Accounts::default();
        for u in saved {
            a.keys
                .insert(names::comparison_key(&u.name), u.name.clone());
            a.users.insert(u.name, u.hash);
        }
        a
    }

    /// What the store saves.
    pub fn saved(&self) -> Vec<SavedUser> {
        self.users
            .iter()
            .map(|(name, hash)| SavedUser {
                name: name.clone(),
                hash: hash.clone(),
            })
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// The account a name is, or looks like.
    pub fn owner_of(&self, name: &str) -> Option<&str> {
        self.keys
            .get(&names::comparison_key(name))
            .map(String::as_str)
    }

    /// Adds an account; the caller saves, and calls [`Accounts::remove`]
    /// if the save fails.
    pub fn add(&mut self, name: &str, hash: String) -> Result<(), HubError> {
        names::check_username(name).map_err(HubError::Invalid)?;
        if let Some(owner) = self.owner_of(name) {
            return Err(HubError::Exists(format!(
                "an account named '{owner}' already exists"
            )));
        }
        self.keys
            .insert(names::comparison_key(name), name.to_string());
        self.users.insert(name.to_string(), hash);
        Ok(())
    }

    /// An account's hash.
    pub fn hash_of(&self, name: &str) -> Option<&str> {
        self.users.get(name).map(String::as_str)
    }

    /// An account as another node registered or changed it (cluster
    /// mode): added, or its hash replaced.
    pub fn put(&mut self, name: &str, hash: String) -> Result<(), HubError> {
        if self.users.contains_key(name) {
            self.set_hash(name, hash);
            return Ok(());
        }
        self.add(name, hash)
    }

    /// Removes an account, returning its hash (for an undo).
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let hash = self.users.remove(name)?;
        self.keys.remove(&names::comparison_key(name));
        Some(hash)
    }

    /// Replaces an account's hash, returning the old one (for an undo).
    pub fn set_hash(&mut self, name: &str, hash: String) -> Option<String> {
        let slot = self.users.get_mut(name)?;
        Some(std::mem::replace(slot, hash))
    }

    /// Decides a join by `username` from `from` with `password`.
    pub fn check(
        &mut self,
        now: Instant,
        username: &str,
        password: Option<&str>,
        from: IpAddr,
        require_login: bool,
    ) -> Verdict {
        let Some(owner) = self.owner_of(username).map(str::to_string) else {
            if password.is_some() {
                return Verdict::Unauthorized(format!("no account named '{username}'"));
            }
            if require_login {
                return Verdict::Unauthorized(
                    "login required: this server admits registered users only".into(),
                );
            }
            return Verdict::Allowed { registered: false };
        };
        if owner != username {
            return Verdict::Unauthorized(format!(
                "'{username}' looks like the registered name '{owner}'"
            ));
        }
        let Some(password) = password else {
            return Verdict::Unauthorized(format!(
                "'{username}' is a registered name: a password is needed"
            ));
        };
        let hash = self.users[&owner].clone();
        match self.verify_limited(now, from, password, &hash) {
            Ok(true) => {
                self.failures.remove(&from);
                Verdict::Allowed { registered: true }
            }
            Ok(false) => Verdict::Unauthorized("wrong password".into()),
            Err(refused) => refused,
        }
    }

    /// Verifies a secret against a hash under the limits: refused without
    /// a check when the address is over its failures or the second's
    /// budget is spent; a mismatch counts as a failure.
    fn verify_limited(
        &mut self,
        now: Instant,
        from: IpAddr,
        secret: &str,
        hash: &str,
    ) -> Result<bool, Verdict> {
        if let Some(why) = self.blocked(now, from) {
            return Err(Verdict::Unauthorized(why));
        }
        if !self.spend_budget(now) {
            return Err(Verdict::Busy);
        }
        let matched = verify(secret, hash);
        if !matched {
            self.record_failure(now, from);
        }
        Ok(matched)
    }

    /// Checks a secret that is not an account's (a private room's key)
    /// under the same limits: the address's failures and the budget.
    pub fn check_secret(
        &mut self,
        now: Instant,
        from: IpAddr,
        secret: &str,
        hash: &str,
    ) -> Verdict {
        match self.verify_limited(now, from, secret, hash) {
            Ok(true) => Verdict::Allowed { registered: false },
            Ok(false) => Verdict::Unauthorized("wrong key".into()),
            Err(refused) => refused,
        }
    }

    /// Why `from` is refused, when it is over the failure limit: the
    /// reason names how long it must wait.
    pub fn blocked(&self, now: Instant, from: IpAddr) -> Option<String> {
        let (since, count) = *self.failures.get(&from)?;
        let end = since + FAILURE_WINDOW;
        if count < MAX_FAILURES || now >= end {
            return None;
        }
        let wait = (end - now).as_secs().max(1);
        Some(format!(
            "too many failed logins from {from}; try again in {wait} s"
        ))
    }

    /// Counts a failed login (a wrong password, a refused token) against
    /// `from`.
    pub fn record_failure(&mut self, now: Instant, from: IpAddr) {
        if self.failures.len() >= MAX_TRACKED {
            self.failures
                .retain(|_, (since, _)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        let entry = self.failures.entry(from).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    fn spend_budget(&mut self, now: Instant) -> bool {
        let (start, used) = match self.budget {
            Some((start, used)) if now.duration_since(start) < Duration::from_secs(1) => {
                (start, used)
            }
            _ => (now, 0),
        };
        if used >= VERIFY_BUDGET {
            return false;
        }
        self.budget = Some((start, used + 1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn registered_names_need_their_password_and_look_alikes_are_refused() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t = Instant::now();
        assert_eq!(
            a.check(t, "Yan", Some("s3cret"), ip(), false),
            Verdict::Allowed { registered: true }
        );
        for (name, pw) in [
            ("Yan", None),
            ("Yan", Some("wrong")),
            ("yan", Some("s3cret")),
            ("Y\u{430}n", None),
            ("Ana", Some("x")),
        ] {
            assert!(
                matches!(a.check(t, name, pw, ip(), false), Verdict::Unauthorized(_)),
                "{name:?} {pw:?}"
            );
        }
        assert_eq!(
            a.check(t, "Ana", None, ip(), false),
            Verdict::Allowed { registered: false }
        );
        assert!(matches!(
            a.check(t, "Ana", None, ip(), true),
            Verdict::Unauthorized(_)
        ));
        assert!(a.add("YAN", hash("x").unwrap()).is_err());
    }

    #[test]
    fn failures_are_limited_per_address_and_the_window_ends() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                a.check(t0, "Yan", Some("nope"), ip(), false),
                Verdict::Unauthorized("wrong password".into())
            );
        }
        let Verdict::Unauthorized(why) = a.check(t0, "Yan", Some("s3cret"), ip(), false) else {
            panic!("not limited")
        };
        assert!(why.contains("too many failed logins"), "{why}");
        // Another address is not affected; the window's end frees this one.
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(
            a.check(t0, "Yan", Some("s3cret"), other, false),
            Verdict::Allowed { registered: true }
        );
        assert_eq!(
            a.check(t0 + FAILURE_WINDOW, "Yan", Some("s3cret"), ip(), false),
            Verdict::Allowed { registered: true }
        );
    }

    #[test]
    fn at_most_the_budget_of_verifications_per_second() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t0 = Instant::now();
        let mut busy = 0;
        for i in 0..(VERIFY_BUDGET + 3) {
            let from: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            if a.check(t0, "Yan", Some("s3cret"), from, false) == Verdict::Busy {
                busy += 1;
            }
        }
        assert_eq!(busy, 3);
        assert_eq!(
            a.check(
                t0 + Duration::from_secs(1),
                "Yan",
                Some("s3cret"),
                ip(),
                false
            ),
            Verdict::Allowed { registered: true }
        );
    }
}
