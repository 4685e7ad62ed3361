//! Accounts: registered names with Argon2id password hashes (the argon2
//! crate; m = 19 MiB, t = 2, p = 1, OWASP's minimum), kept in `users.json`
//! by the store, and the login checks that guard them.
//!
//! A registered name, or any name that looks like it (the same comparison
//! key as for 409), can only be used with the account's password; with
//! `--require-login`, only registered names may join at all.
//!
//! Verifying a password costs about 25 ms of CPU inside the one loop, the
//! only computation that long. The bounds that keep it from stalling chat
//! and from being spent by one attacker:
//! - failed logins per source address ([`AddressKey`]: an IPv4 address or
//!   an IPv6 /64): [`MAX_FAILURES`] per [`FAILURE_WINDOW`], beyond which
//!   the address is refused without a check; a success resets nothing;
//! - failed logins per account: past [`MAX_ACCOUNT_FAILURES`] in
//!   [`ACCOUNT_WINDOW`], the account is tried only from addresses without
//!   a recent failure (so the owner, from a clean address, still gets in);
//! - the verification budget, [`VERIFY_RATE`] over all clients, of which
//!   [`CLEAN_RESERVE`] is kept for addresses without a failure in
//!   [`SUSPECT_MEMORY`], and [`ADDRESS_SHARE`] per address (beyond them, 503);
//! - at most one check per pass of the loop ([`Verdict::Later`]: the loop
//!   serves everyone else before the next one);
//! - the addresses remembered are at most [`MAX_TRACKED`] (least recently
//!   used forgotten first), so memory and cost per attempt stay flat;
//! - a stored hash is verified only at chatd's own cost or below
//!   ([`MAX_M_COST`], [`MAX_T_COST`], [`MAX_P_COST`]): a planted hash
//!   cannot make one login take seconds and hundreds of MiB.
//!
//! What a refusal reveals: a password for an unknown name costs a check
//! against a dummy hash, and gets the same words as a wrong password
//! ("wrong name or password"), so neither the text nor the time tells
//! whether the name has an account. Without a password, whether a name is
//! registered is public where unregistered names may join (the client has
//! to know to ask for a password), as it is on IRC networks with NickServ;
//! with `--require-login` every name without a password gets the same
//! "login required". Passwords never reach a log, a reply or an error.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use rand_core::OsRng;

use super::store::SavedUser;
use crate::core::fair::{AddressKey, Bucket, Lru, Rate};
use crate::core::hub::HubError;
use crate::core::names;

/// Failed logins allowed per source address per window.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failed logins for one account per window before only clean addresses
/// may try it.
pub const MAX_ACCOUNT_FAILURES: u32 = 20;
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(600);
/// How long an address with a failed login counts as suspect (it loses
/// the clean reserve).
pub const SUSPECT_MEMORY: Duration = Duration::from_secs(600);
/// Password verifications over all clients: 10 a second.
pub const VERIFY_RATE: Rate = Rate {
    per_sec: 10.0,
    burst: 10.0,
};
/// Of [`VERIFY_RATE`]'s tokens, those only clean addresses may take.
pub const CLEAN_RESERVE: f64 = 3.0;
/// Verifications one address may have: 5 at once, then one every 2 s.
pub const ADDRESS_SHARE: Rate = Rate {
    per_sec: 0.5,
    burst: 5.0,
};
/// Addresses remembered for the failure limit and the shares, at most.
pub const MAX_TRACKED: usize = 4096;
/// The costliest stored hash chatd verifies: its own parameters.
pub const MAX_M_COST: u32 = 19 * 1024;
pub const MAX_T_COST: u32 = 2;
pub const MAX_P_COST: u32 = 1;

/// The reason for every wrong credential, whether or not the name has an
/// account.
pub const WRONG: &str = "wrong name or password";
/// The reason for a name without a password under `--require-login`.
pub const LOGIN_REQUIRED: &str =
    "login required: this server admits registered users only, with their password";

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MAX_M_COST, MAX_T_COST, MAX_P_COST, None).expect("valid Argon2 parameters");
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

/// Whether chatd will verify against `stored`: an Argon2id PHC string at
/// chatd's cost or below. The error says what is wrong with it.
pub fn check_hash(stored: &str) -> Result<(), String> {
    let h = PasswordHash::new(stored).map_err(|e| format!("not a PHC hash: {e}"))?;
    if h.algorithm != argon2::ARGON2ID_IDENT {
        return Err(format!("algorithm '{}' is not argon2id", h.algorithm));
    }
    let p = Params::try_from(&h).map_err(|e| format!("bad Argon2 parameters: {e}"))?;
    if p.m_cost() > MAX_M_COST || p.t_cost() > MAX_T_COST || p.p_cost() > MAX_P_COST {
        return Err(format!(
            "cost m={} t={} p={} is over chatd's m={MAX_M_COST} t={MAX_T_COST} p={MAX_P_COST}",
            p.m_cost(),
            p.t_cost(),
            p.p_cost()
        ));
    }
    Ok(())
}

fn verify(password: &str, stored: &str) -> bool {
    if check_hash(stored).is_err() {
        return false;
    }
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
    /// A check is needed, and this pass of the loop has had its one: ask
    /// again in the next pass.
    Later,
}

/// What is remembered of one address.
#[derive(Debug, Clone, Copy)]
struct AddressRecord {
    /// Failures in the current window, and when it started.
    window: (Instant, u32),
    last_failure: Option<Instant>,
    share: Bucket,
}

#[derive(Debug)]
pub struct Accounts {
    /// name → hash, by name.
    users: BTreeMap<String, String>,
    /// comparison key → name.
    keys: HashMap<String, String>,
    addresses: Lru<AddressKey, AddressRecord>,
    /// Per account (by name): failures in the current window, and when
    /// it started. Bounded by the number of accounts.
    account_failures: HashMap<String, (Instant, u32)>,
    budget: Option<Bucket>,
    /// A check has run in this pass of the loop.
    checked_this_pass: bool,
    /// What an unknown name's password is checked against (same cost).
    dummy: String,
    /// Failed logins since start (the metrics).
    pub failures_total: u64,
}

impl Default for Accounts {
    fn default() -> Accounts {
        Accounts::from_saved(Vec::new())
    }
}

impl Accounts {
    pub fn from_saved(saved: Vec<SavedUser>) -> Accounts {
        let mut a = Accounts {
            users: BTreeMap::new(),
            keys: HashMap::new(),
            addresses: Lru::new(MAX_TRACKED),
            account_failures: HashMap::new(),
            budget: None,
            checked_this_pass: false,
            dummy: hash("chatd: no such account").expect("hashing works"),
            failures_total: 0,
        };
        for u in saved {
            a.keys
                .insert(names::comparison_key(&u.name), u.name.clone());
            a.users.insert(u.name, u.hash);
        }
        a
    }

    /// Accounts whose stored hash chatd will not verify (see
    /// [`check_hash`]), with why: they cannot log in until `chatctl user
    /// passwd` sets a new password.
    pub fn unusable(&self) -> Vec<(String, String)> {
        self.users
            .iter()
            .filter_map(|(n, h)| check_hash(h).err().map(|e| (n.clone(), e)))
            .collect()
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
    /// mode): added, or its hash replaced. A hash chatd would not verify
    /// is refused.
    pub fn put(&mut self, name: &str, hash: String) -> Result<(), HubError> {
        check_hash(&hash).map_err(|e| HubError::Invalid(format!("its hash: {e}")))?;
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
        self.account_failures.remove(name);
        Some(hash)
    }

    /// Replaces an account's hash, returning the old one (for an undo).
    pub fn set_hash(&mut self, name: &str, hash: String) -> Option<String> {
        let slot = self.users.get_mut(name)?;
        Some(std::mem::replace(slot, hash))
    }

    /// A new pass of the loop: one more check may run.
    pub fn begin_pass(&mut self) {
        self.checked_this_pass = false;
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
        let key = AddressKey::of(from);
        let owner = self.owner_of(username).map(str::to_string);
        let Some(password) = password else {
            if require_login {
                return Verdict::Unauthorized(LOGIN_REQUIRED.into());
            }
            return match owner {
                None => Verdict::Allowed { registered: false },
                Some(owner) if owner == username => Verdict::Unauthorized(format!(
                    "'{username}' is a registered name: a password is needed"
                )),
                Some(owner) => Verdict::Unauthorized(format!(
                    "'{username}' looks like the registered name '{owner}'"
                )),
            };
        };
        // An unknown name, or a look-alike, costs the same check as a
        // registered one, and fails with the same words.
        let account = owner.filter(|o| o == username);
        let hash = match &account {
            Some(a) => self.users[a].clone(),
            None => self.dummy.clone(),
        };
        match self.verify_limited(now, key, account.as_deref(), password, &hash) {
            Ok(true) if account.is_some() => Verdict::Allowed { registered: true },
            Ok(_) => Verdict::Unauthorized(WRONG.into()),
            Err(refused) => refused,
        }
    }

    /// Verifies a secret against a hash under the limits: refused without
    /// a check when the address (or, for a suspect address, the account)
    /// is over its failures, Later when this pass had its check, Busy when
    /// the address's share or the budget is spent; a mismatch counts as a
    /// failure of the address and of the account.
    fn verify_limited(
        &mut self,
        now: Instant,
        key: AddressKey,
        account: Option<&str>,
        secret: &str,
        hash: &str,
    ) -> Result<bool, Verdict> {
        if let Some(why) = self.blocked_key(now, key) {
            return Err(Verdict::Unauthorized(why));
        }
        let suspect = self.is_suspect(now, key);
        if suspect
            && let Some(a) = account
            && let Some(&(since, n)) = self.account_failures.get(a)
            && n >= MAX_ACCOUNT_FAILURES
            && now.saturating_duration_since(since) < ACCOUNT_WINDOW
        {
            return Err(Verdict::Unauthorized(
                "too many failed logins; try again later".into(),
            ));
        }
        if self.checked_this_pass {
            return Err(Verdict::Later);
        }
        let keep = if suspect { CLEAN_RESERVE } else { 0.0 };
        let budget = self
            .budget
            .get_or_insert_with(|| Bucket::full(now, VERIFY_RATE));
        if budget.level(now, VERIFY_RATE) < 1.0 + keep {
            return Err(Verdict::Busy);
        }
        let record = self.addresses.entry(key, || AddressRecord::new(now));
        if record.share.take(now, ADDRESS_SHARE).is_err() {
            return Err(Verdict::Busy);
        }
        let _ = budget.take_above(now, VERIFY_RATE, keep);
        self.checked_this_pass = true;
        let matched = verify(secret, hash);
        if !matched {
            self.record_key_failure(now, key);
            if let Some(a) = account {
                let entry = self
                    .account_failures
                    .entry(a.to_string())
                    .or_insert((now, 0));
                if now.saturating_duration_since(entry.0) >= ACCOUNT_WINDOW {
                    *entry = (now, 0);
                }
                entry.1 += 1;
            }
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
        match self.verify_limited(now, AddressKey::of(from), None, secret, hash) {
            Ok(true) => Verdict::Allowed { registered: false },
            Ok(false) => Verdict::Unauthorized("wrong key".into()),
            Err(refused) => refused,
        }
    }

    /// Why `from` is refused, when it is over the failure limit: the
    /// reason names how long it must wait.
    pub fn blocked(&self, now: Instant, from: IpAddr) -> Option<String> {
        self.blocked_key(now, AddressKey::of(from))
    }

    fn blocked_key(&self, now: Instant, key: AddressKey) -> Option<String> {
        let (since, count) = self.addresses.peek(&key)?.window;
        let end = since + FAILURE_WINDOW;
        if count < MAX_FAILURES || now >= end {
            return None;
        }
        let wait = (end - now).as_secs().max(1);
        Some(format!(
            "too many failed logins from {key}; try again in {wait} s"
        ))
    }

    fn is_suspect(&self, now: Instant, key: AddressKey) -> bool {
        self.addresses
            .peek(&key)
            .and_then(|r| r.last_failure)
            .is_some_and(|t| now.saturating_duration_since(t) < SUSPECT_MEMORY)
    }

    /// Counts a failed login (a wrong password, a refused token) against
    /// `from`.
    pub fn record_failure(&mut self, now: Instant, from: IpAddr) {
        self.record_key_failure(now, AddressKey::of(from));
    }

    fn record_key_failure(&mut self, now: Instant, key: AddressKey) {
        self.failures_total += 1;
        let record = self.addresses.entry(key, || AddressRecord::new(now));
        if now.saturating_duration_since(record.window.0) >= FAILURE_WINDOW {
            record.window = (now, 0);
        }
        record.window.1 += 1;
        record.last_failure = Some(now);
    }

    /// How many addresses are remembered (bounded by [`MAX_TRACKED`]).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.addresses.len()
    }
}

impl AddressRecord {
    fn new(now: Instant) -> AddressRecord {
        AddressRecord {
            window: (now, 0),
            last_failure: None,
            share: Bucket::full(now, ADDRESS_SHARE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn addr(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    /// `check` in a pass of its own.
    fn check(a: &mut Accounts, t: Instant, name: &str, pw: Option<&str>, from: IpAddr) -> Verdict {
        a.begin_pass();
        a.check(t, name, pw, from, false)
    }

    #[test]
    fn registered_names_need_their_password_and_look_alikes_are_refused() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t = Instant::now();
        assert_eq!(
            check(&mut a, t, "Yan", Some("s3cret"), ip()),
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
                matches!(check(&mut a, t, name, pw, ip()), Verdict::Unauthorized(_)),
                "{name:?} {pw:?}"
            );
        }
        assert_eq!(
            check(&mut a, t, "Ana", None, ip()),
            Verdict::Allowed { registered: false }
        );
        a.begin_pass();
        assert_eq!(
            a.check(t, "Ana", None, ip(), true),
            Verdict::Unauthorized(LOGIN_REQUIRED.into())
        );
        a.begin_pass();
        assert_eq!(
            a.check(t, "Yan", None, ip(), true),
            Verdict::Unauthorized(LOGIN_REQUIRED.into()),
            "under --require-login, registration is not revealed"
        );
        assert!(a.add("YAN", hash("x").unwrap()).is_err());
    }

    #[test]
    fn an_unknown_name_costs_a_check_and_gets_the_words_of_a_wrong_password() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t = Instant::now();
        let unknown = check(&mut a, t, "Nobody", Some("x"), addr(1));
        let wrong = check(&mut a, t, "Yan", Some("x"), addr(2));
        let alike = check(&mut a, t, "yan", Some("s3cret"), addr(3));
        assert_eq!(unknown, Verdict::Unauthorized(WRONG.into()));
        assert_eq!(unknown, wrong);
        assert_eq!(unknown, alike);
        // It was a real check: it used this pass's turn.
        assert_eq!(
            a.check(t, "Nobody", Some("x"), addr(4), false),
            Verdict::Later
        );
        // And the time is the same (one Argon2 verification each).
        let time = |a: &mut Accounts, name: &str, from: IpAddr| {
            let start = Instant::now();
            check(a, t, name, Some("guess"), from);
            start.elapsed()
        };
        let known = time(&mut a, "Yan", addr(5));
        let unknown = time(&mut a, "Nobody", addr(6));
        assert!(
            unknown * 3 > known && known * 3 > unknown,
            "known {known:?} unknown {unknown:?}"
        );
    }

    #[test]
    fn failures_are_limited_per_address_and_a_success_resets_nothing() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        a.add("Mia", hash("m1a-pass").unwrap()).unwrap();
        let t0 = Instant::now();
        // 4 wrong guesses for Yan, then Mia's right password, again: the
        // success no longer wipes the guesses.
        let mut wrong = 0;
        'outer: for round in 0..3 {
            for _ in 0..4 {
                let t = t0 + Duration::from_secs(round * 3);
                match check(&mut a, t, "Yan", Some("nope"), ip()) {
                    Verdict::Unauthorized(w) if w == WRONG => wrong += 1,
                    Verdict::Unauthorized(w) => {
                        assert!(w.contains("too many failed logins"), "{w}");
                        break 'outer;
                    }
                    v => panic!("{v:?}"),
                }
            }
            check(
                &mut a,
                t0 + Duration::from_secs(round * 3 + 2),
                "Mia",
                Some("m1a-pass"),
                ip(),
            );
        }
        assert_eq!(wrong, MAX_FAILURES);
        let Verdict::Unauthorized(why) = check(
            &mut a,
            t0 + Duration::from_secs(8),
            "Yan",
            Some("s3cret"),
            ip(),
        ) else {
            panic!("not limited")
        };
        assert!(
            why.contains("too many failed logins from 127.0.0.1"),
            "{why}"
        );
        // Another address is not affected; the window's end frees this one.
        assert_eq!(
            check(&mut a, t0, "Yan", Some("s3cret"), addr(1)),
            Verdict::Allowed { registered: true }
        );
        assert_eq!(
            check(&mut a, t0 + FAILURE_WINDOW * 2, "Yan", Some("s3cret"), ip()),
            Verdict::Allowed { registered: true }
        );
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let from: IpAddr = format!("2001:db8::{:x}", i + 1).parse().unwrap();
            check(
                &mut a,
                t0 + Duration::from_secs(3 * u64::from(i)),
                "Yan",
                Some("nope"),
                from,
            );
        }
        let from: IpAddr = "2001:db8::beef".parse().unwrap();
        let Verdict::Unauthorized(why) = check(
            &mut a,
            t0 + Duration::from_secs(20),
            "Yan",
            Some("s3cret"),
            from,
        ) else {
            panic!()
        };
        assert!(why.contains("2001:db8::/64"), "{why}");
    }

    #[test]
    fn guesses_at_one_account_from_many_addresses_leave_its_owner_a_way_in() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let mut t = Instant::now();
        // 30 addresses, two guesses each, spread out so no budget limits.
        let mut refused_untried = 0;
        for round in 0..2 {
            for i in 0..30 {
                t += Duration::from_millis(600);
                match check(&mut a, t, "Yan", Some("guess"), addr(100 + i)) {
                    Verdict::Unauthorized(w) if w == WRONG => {}
                    Verdict::Unauthorized(w) => {
                        assert!(w.contains("too many failed logins"), "{w}");
                        assert!(round == 1, "first guesses come from clean addresses");
                        refused_untried += 1;
                    }
                    v => panic!("{v:?}"),
                }
            }
        }
        // After 20 failures the account is closed to suspect addresses...
        assert_eq!(refused_untried, 30);
        // ...but its owner, from a clean address, gets in.
        t += Duration::from_secs(1);
        assert_eq!(
            check(&mut a, t, "Yan", Some("s3cret"), addr(7)),
            Verdict::Allowed { registered: true }
        );
    }

    #[test]
    fn the_failure_table_is_bounded_whatever_the_number_of_addresses() {
        let mut a = Accounts::default();
        let t = Instant::now();
        for i in 0..40_000 {
            a.record_failure(t, addr(i));
        }
        assert_eq!(a.tracked(), MAX_TRACKED);
        // The newest are remembered, the oldest forgotten.
        for _ in 0..MAX_FAILURES {
            a.record_failure(t, addr(39_999));
        }
        assert!(a.blocked(t, addr(39_999)).is_some());
    }

    #[test]
    fn the_budget_spreads_checks_and_keeps_a_reserve_for_clean_addresses() {
        let mut a = Accounts::default();
        a.add("Yan", hash("s3cret").unwrap()).unwrap();
        let t0 = Instant::now();
        // One check per pass.
        a.begin_pass();
        assert!(matches!(
            a.check(t0, "Yan", Some("x"), addr(1), false),
            Verdict::Unauthorized(_)
        ));
        assert_eq!(
            a.check(t0, "Yan", Some("s3cret"), addr(2), false),
            Verdict::Later
        );
        // Suspect addresses (each with a recent failure) drain the budget
        // down to the reserve, then get 503...
        for i in 2..40 {
            a.record_failure(t0, addr(i));
        }
        let mut busy = 0;
        let mut checked = 1;
        for i in 2..40 {
            match check(&mut a, t0, "Yan", Some("x"), addr(i)) {
                Verdict::Busy => busy += 1,
                _ => checked += 1,
            }
        }
        assert!(busy > 0);
        assert_eq!(checked as f64, VERIFY_RATE.burst - CLEAN_RESERVE);
        // ...while a clean address still finds a check.
        assert_eq!(
            check(&mut a, t0, "Yan", Some("s3cret"), addr(500)),
            Verdict::Allowed { registered: true }
        );
        // One address alone gets its share, then 503 even with budget left.
        let t1 = t0 + Duration::from_secs(10);
        let shared: Vec<Verdict> = (0..7)
            .map(|_| check(&mut a, t1, "Yan", Some("s3cret"), addr(9000)))
            .collect();
        assert_eq!(
            shared.iter().filter(|v| **v == Verdict::Busy).count(),
            7 - ADDRESS_SHARE.burst as usize
        );
    }

    #[test]
    fn a_planted_costly_hash_is_refused_without_being_computed() {
        let real = hash("s3cret").unwrap();
        // The same hash with m = 512 MiB, t = 8: computing it would take
        // seconds and half a gigabyte.
        let planted = real.replace("m=19456,t=2,p=1", "m=524288,t=8,p=1");
        assert_ne!(planted, real);
        assert!(check_hash(&planted).unwrap_err().contains("over chatd's"));
        let mut a = Accounts::default();
        a.add("Yan", planted.clone()).unwrap();
        assert_eq!(a.unusable().len(), 1);
        let start = Instant::now();
        assert_eq!(
            check(&mut a, start, "Yan", Some("s3cret"), ip()),
            Verdict::Unauthorized(WRONG.into())
        );
        assert!(start.elapsed() < Duration::from_millis(500));
        // From another node (Redis), such a hash is not even taken in.
        assert!(a.put("Mia", planted).is_err());
        assert!(check_hash(&real).is_ok());
        assert!(check_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g").is_err());
    }
}
