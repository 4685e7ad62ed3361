//! Where chatd's files are, by the same rules in chatd and chatctl: the
//! control socket (PROTOCOL.md §2) and the state directory. Each rule takes
//! an explicit path first, then environment variables (systemd's
//! RuntimeDirectory=/StateDirectory= among them), then a per-user default.
//! Pure apart from reading the environment and [`check_private_dir`],
//! which guards the shared /tmp fallback.
//!
//! The fallback `/tmp/chatd-$UID` sits in a directory everyone may write
//! to, so someone else could create it first (or make it writable to all)
//! and swap the control socket. chatd and chatctl therefore use it only when
//! it is a real directory owned by the user and not writable by group or
//! others; chatd creates it with mode 0700 when it is missing, as tmux and
//! ssh-agent do. Relative `$XDG_RUNTIME_DIR` and `$XDG_STATE_HOME` are
//! ignored, as the XDG Base Directory spec says.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where the system service (chatd.service, RuntimeDirectory=chatd) puts
/// its control socket.
pub const SYSTEM_SOCKET: &str = "/run/chatd/control.sock";

/// The control socket: the explicit path, else `$CHATD_CONTROL`, else
/// `$RUNTIME_DIRECTORY/control.sock`, else
/// `$XDG_RUNTIME_DIR/chatd/control.sock`, else
/// [`fallback_runtime_dir`]`/control.sock`.
pub fn resolve_socket_path(explicit: Option<&Path>) -> PathBuf {
    socket_path_with(explicit, env_var, nix::unistd::getuid().as_raw())
}

/// Where chatctl looks for the control socket, in order: the path of
/// [`resolve_socket_path`], then (when neither the flag nor an environment
/// variable chose that path) the system service's socket. So an
/// administrator in group chatd needs no flag for the packaged daemon.
pub fn client_socket_candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let path = resolve_socket_path(explicit);
    let chosen = explicit.is_some()
        || env_var("CHATD_CONTROL").is_some()
        || env_var("RUNTIME_DIRECTORY").is_some();
    let system = PathBuf::from(SYSTEM_SOCKET);
    if chosen || path == system {
        vec![path]
    } else {
        vec![path, system]
    }
}

/// The state directory: the explicit path, else `$STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/chatd`, else `~/.local/state/chatd`.
pub fn resolve_state_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    state_dir_with(explicit, env_var)
}

/// The per-user fallback directory for the control socket:
/// `$TMPDIR/chatd-$UID` (an absolute `$TMPDIR` only), else
/// `/tmp/chatd-$UID`.
pub fn fallback_runtime_dir(uid: u32) -> PathBuf {
    fallback_dir_with(env_var, uid)
}

fn fallback_dir_with(env: impl Fn(&str) -> Option<OsString>, uid: u32) -> PathBuf {
    let tmp = env("TMPDIR")
        .filter(|d| Path::new(d).is_absolute())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    tmp.join(format!("chatd-{uid}"))
}

/// When `socket` lies in the /tmp fallback directory, checks that the
/// directory is safe: a real directory (not a symlink), owned by the
/// current user, not writable by group or others. chatd passes `create`
/// and gets the directory made (mode 0700) when it is missing; chatctl does
/// not, and a missing directory is then simply no daemon. The error names
/// the directory and what is wrong with it.
pub fn check_private_dir(socket: &Path, create: bool) -> Result<(), String> {
    let uid = nix::unistd::getuid().as_raw();
    let dir = fallback_runtime_dir(uid);
    if socket.parent() != Some(dir.as_path()) {
        return Ok(());
    }
    let shown = dir.display();
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                // Someone made it in between: it is checked below like any.
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("control: create directory {shown}: {e}")),
            }
            std::fs::symlink_metadata(&dir).map_err(|e| format!("control: stat {shown}: {e}"))?
        }
        Err(e) => return Err(format!("control: stat {shown}: {e}")),
    };
    let problem = if !meta.is_dir() {
        Some("it is not a directory (a symlink or file planted there?)".to_string())
    } else if meta.uid() != uid {
        Some(format!(
            "it is owned by uid {}, not by you (uid {uid}), so its owner could replace the control socket",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "it is writable by group or others (mode {:04o}); `chmod 700 {shown}` fixes it",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(format!(
            "control: refusing to use {shown}: {p}; or choose another path with --control / $CHATD_CONTROL"
        )),
    }
}

/// A variable's value, if set and not empty.
fn env_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The first directory of a systemd `*_DIRECTORY` variable (systemd joins
/// several entries with ':').
fn first_dir(list: &OsString) -> Option<PathBuf> {
    let first = list.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

fn socket_path_with(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = env("CHATD_CONTROL") {
        return PathBuf::from(p);
    }
    if let Some(dir) = env("RUNTIME_DIRECTORY").as_ref().and_then(first_dir) {
        return dir.join("control.sock");
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute()) {
        return Path::new(&dir).join("chatd").join("control.sock");
    }
    fallback_dir_with(env, uid).join("control.sock")
}

fn state_dir_with(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(dir) = env("STATE_DIRECTORY").as_ref().and_then(first_dir) {
        return Ok(dir);
    }
    if let Some(dir) = env("XDG_STATE_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Ok(Path::new(&dir).join("chatd"));
    }
    if let Some(home) = env("HOME") {
        return Ok(Path::new(&home).join(".local/state/chatd"));
    }
    Err("state: no state directory: give --state-dir, or set STATE_DIRECTORY, XDG_STATE_HOME or HOME".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake environment; empty values count as unset, as in [`env_var`].
    fn env_of(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<OsString> + Copy {
        move |k| {
            pairs
                .iter()
                .find(|(n, v)| *n == k && !v.is_empty())
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
            socket_path_with(Some(Path::new("/x")), all, 5),
            PathBuf::from("/x")
        );
        assert_eq!(socket_path_with(None, all, 5), PathBuf::from("/a.sock"));
        let env = env_of(&[
            ("CHATD_CONTROL", ""),
            ("RUNTIME_DIRECTORY", "/run/chatd:/run/other"),
        ]);
        assert_eq!(
            socket_path_with(None, env, 5),
            PathBuf::from("/run/chatd/control.sock")
        );
        let env = env_of(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        assert_eq!(
            socket_path_with(None, env, 5),
            PathBuf::from("/run/user/1000/chatd/control.sock")
        );
        assert_eq!(
            socket_path_with(None, env_of(&[]), 5),
            PathBuf::from("/tmp/chatd-5/control.sock")
        );
        // A relative XDG_RUNTIME_DIR is ignored (XDG Base Directory spec).
        let env = env_of(&[("XDG_RUNTIME_DIR", "run/user/1000")]);
        assert_eq!(
            socket_path_with(None, env, 5),
            PathBuf::from("/tmp/chatd-5/control.sock")
        );
        let env = env_of(&[("TMPDIR", "/var/tmp")]);
        assert_eq!(
            socket_path_with(None, env, 5),
            PathBuf::from("/var/tmp/chatd-5/control.sock")
        );
        let env = env_of(&[("TMPDIR", "tmp")]);
        assert_eq!(
            socket_path_with(None, env, 5),
            PathBuf::from("/tmp/chatd-5/control.sock")
        );
    }

    #[test]
    fn state_dir_resolution_order() {
        let all = env_of(&[
            ("STATE_DIRECTORY", "/var/lib/chatd:/var/lib/x"),
            ("XDG_STATE_HOME", "/home/u/.st"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(
            state_dir_with(Some(Path::new("/d")), all),
            Ok(PathBuf::from("/d"))
        );
        assert_eq!(
            state_dir_with(None, all),
            Ok(PathBuf::from("/var/lib/chatd"))
        );
        let e = env_of(&[("XDG_STATE_HOME", "/home/u/.st"), ("HOME", "/home/u")]);
        assert_eq!(
            state_dir_with(None, e),
            Ok(PathBuf::from("/home/u/.st/chatd"))
        );
        let e = env_of(&[("XDG_STATE_HOME", ".st"), ("HOME", "/home/u")]);
        assert_eq!(
            state_dir_with(None, e),
            Ok(PathBuf::from("/home/u/.local/state/chatd"))
        );
        let e = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            state_dir_with(None, e),
            Ok(PathBuf::from("/home/u/.local/state/chatd"))
        );
        assert!(state_dir_with(None, env_of(&[])).is_err());
    }
}
