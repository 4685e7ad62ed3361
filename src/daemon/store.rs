//! The state file: the rooms (name and limit, access, history settings
//! and moderation, in creation order) and the server-wide bans in
//! `rooms.json` inside the state directory.
//!
//! One chatd per state directory: [`Store::open`] takes an exclusive
//! flock(2) on `chatd.lock` there before anything is read, and holds it for
//! the daemon's life; a second chatd is refused with the holder's pid. The
//! lock file stays behind on exit (removing it would race a new holder).
//!
//! A save writes a temporary file, fsyncs it, renames it over the old one
//! and fsyncs the directory, so a crash at any moment leaves either the old
//! or the new file, never a torn one. The temporary file's name is unique
//! to the process (`rooms.json.tmp.<pid>`), and it is created with
//! O_EXCL|O_NOFOLLOW after unlinking whatever is at that name, so a symlink
//! planted there can never redirect a save. A load is strict: a file chatd
//! cannot parse is an error naming the file, and the file is never
//! overwritten. `rooms.json` itself must be a regular file: a symbolic link
//! is refused (a save would replace the link, not write through it, so
//! following it on load would be inconsistent).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::core::hub::RoomInfo;
use crate::core::moderation::{Moderation, Rule};

pub const STATE_FILE: &str = "rooms.json";
/// The accounts: names and Argon2id password hashes.
pub const USERS_FILE: &str = "users.json";
pub const LOCK_FILE: &str = "chatd.lock";
/// A save writes `<file>.tmp.<pid>` first.
const TEMP_INFIX: &str = ".tmp.";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedRoom {
    pub name: String,
    pub limit: usize,
    /// Private rooms only (public rooms are saved as before).
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// The room key's Argon2id hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// Messages kept for joiners (the setting; the messages themselves
    /// live in memory only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history: usize,
    /// The oldest a kept event may be, in seconds (0: the server's
    /// `--history-age`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub history_age: u64,
    /// Its topic, operator accounts, bans, mutes and `+m`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub moderation: Moderation,
}

fn is_default(m: &Moderation) -> bool {
    *m == Moderation::default()
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One account as saved: the name and its PHC-format Argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedUser {
    pub name: String,
    pub hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    version: u32,
    users: Vec<SavedUser>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    rooms: Vec<SavedRoom>,
    /// Bans from every room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bans: Vec<Rule>,
}

/// What rooms.json holds.
#[derive(Debug, Default)]
pub struct State {
    pub rooms: Vec<SavedRoom>,
    pub bans: Vec<Rule>,
}

pub struct Store {
    dir: PathBuf,
    /// Held for the daemon's life; released by the kernel on exit.
    _lock: Flock<File>,
}

impl Store {
    /// Opens the state directory, creating it (mode 0700) if missing, and
    /// locks it: a second chatd on the same directory gets an error naming
    /// the directory and the holder's pid. Temporary files left by a crash
    /// are removed (only the lock holder writes here).
    pub fn open(dir: &Path) -> Result<Store, String> {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("state: create directory {}: {e}", dir.display()))?;
        }
        let lock = lock_dir(dir)?;
        let store = Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        store.remove_stale_temp_files();
        Ok(store)
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_temp = [STATE_FILE, USERS_FILE]
                .iter()
                .any(|f| name.starts_with(&format!("{f}{TEMP_INFIX}")));
            // Never recurse: a directory there is left for the operator.
            if is_temp && e.file_type().is_ok_and(|t| !t.is_dir()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved rooms and server-wide bans; none when there is no file
    /// yet.
    pub fn load(&self) -> Result<State, String> {
        let file: Option<StateFile> = self.load_file(STATE_FILE)?;
        let Some(file) = file else {
            return Ok(State::default());
        };
        self.check_version(STATE_FILE, file.version)?;
        Ok(State {
            rooms: file.rooms,
            bans: file.bans,
        })
    }

    /// The saved accounts; none when there is no file yet.
    pub fn load_users(&self) -> Result<Vec<SavedUser>, String> {
        let file: Option<UsersFile> = self.load_file(USERS_FILE)?;
        let Some(file) = file else {
            return Ok(Vec::new());
        };
        self.check_version(USERS_FILE, file.version)?;
        Ok(file.users)
    }

    /// Replaces the state file atomically with `rooms` and `bans`.
    pub fn save(&self, rooms: &[RoomInfo], bans: &[Rule]) -> Result<(), String> {
        let file = StateFile {
            version: FORMAT_VERSION,
            rooms: rooms
                .iter()
                .filter(|r| !r.temporary)
                .map(|r| SavedRoom {
                    name: r.name.clone(),
                    limit: r.limit,
                    private: r.access.private,
                    allow: r.access.allowed.iter().cloned().collect(),
                    key_hash: r.access.key_hash.clone(),
                    history: r.history,
                    history_age: r.history_age,
                    moderation: r.moderation.clone(),
                })
                .collect(),
            bans: bans.to_vec(),
        };
        self.save_file(STATE_FILE, &file)
    }

    /// Replaces the accounts file atomically with `users` (mode 0600: it
    /// holds password hashes).
    pub fn save_users(&self, users: &[SavedUser]) -> Result<(), String> {
        let file = UsersFile {
            version: FORMAT_VERSION,
            users: users.to_vec(),
        };
        self.save_file(USERS_FILE, &file)
    }

    fn load_file<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, String> {
        let path = self.dir.join(name);
        let bytes = match read_regular_file(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(format!(
                    "state: {} is a symbolic link; chatd does not follow links for its state files (a save would replace the link, not its target): put the file itself there",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("state: read {}: {e}", path.display())),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "state: {} is not a valid state file ({e}); fix or move it away, chatd will not overwrite it",
                path.display()
            )
        })
    }

    fn check_version(&self, name: &str, version: u32) -> Result<(), String> {
        if version != FORMAT_VERSION {
            return Err(format!(
                "state: {} has format version {version}, this chatd reads version {FORMAT_VERSION}",
                self.dir.join(name).display()
            ));
        }
        Ok(())
    }

    fn save_file(&self, name: &str, file: &impl Serialize) -> Result<(), String> {
        let mut bytes = serde_json::to_vec_pretty(file).expect("state serializes");
        bytes.push(b'\n');
        let tmp = self
            .dir
            .join(format!("{name}{TEMP_INFIX}{}", std::process::id()));
        let mode = if name == USERS_FILE { 0o600 } else { 0o640 };
        let result = self.write_atomically(&tmp, &self.dir.join(name), &bytes, mode);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| format!("state: {e}"))
    }

    /// Each step's error names the step and the file.
    fn write_atomically(
        &self,
        tmp: &Path,
        path: &Path,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), String> {
        // Whatever is at our temporary name (a file from an earlier failed
        // save, a planted symlink) goes; unlink never follows a link.
        match fs::remove_file(tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(format!("remove {}: {e}", tmp.display()));
            }
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .mode(mode)
            .open(tmp)
            .map_err(at("create", tmp))?;
        f.write_all(bytes).map_err(at("write", tmp))?;
        f.sync_all().map_err(at("fsync", tmp))?;
        drop(f);
        fs::rename(tmp, path).map_err(at("rename over", path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(at("fsync directory", &self.dir))
    }
}

/// Reads a file that must be a regular file reached without following a
/// symbolic link (ELOOP otherwise).
fn read_regular_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Takes the state directory's lock, or says who holds it.
fn lock_dir(dir: &Path) -> Result<Flock<File>, String> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("state: open lock file {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            // The holder's pid, for the message a second chatd prints.
            let _ = lock.set_len(0);
            let _ = writeln!(&mut *lock, "{}", std::process::id());
            Ok(lock)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("another chatd (pid {pid})"),
                Err(_) => "another chatd".to_string(),
            };
            Err(format!(
                "state: {holder} is already using the state directory {} (it holds {}); stop it, or give this one another --state-dir",
                dir.display(),
                path.display()
            ))
        }
        Err((_, e)) => Err(format!("state: lock {}: {e}", path.display())),
    }
}

/// Formats an I/O error with the step and the file it concerns.
fn at<'a>(what: &'a str, path: &'a Path) -> impl Fn(io::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}
