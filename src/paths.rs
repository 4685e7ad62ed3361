//! Where chatd's files are, by the same rules in chatd and chatctl: the
//! control socket (PROTOCOL.md §2) and the state directory. Each rule takes
//! an explicit path first, then environment variables (systemd's
//! RuntimeDirectory=/StateDirectory= among them), then a per-user default.
//! Pure apart from reading the environment and, for chatctl's fallback, one
//! stat.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where the system service (chatd.service, RuntimeDirectory=chatd) puts
/// its control socket.
pub const SYSTEM_SOCKET: &str = "/run/chatd/control.sock";

/// The control socket: the explicit path, else `$CHATD_CONTROL`, else
/// `$RUNTIME_DIRECTORY/control.sock`, else
/// `$XDG_RUNTIME_DIR/chatd/control.sock`, else `/tmp/chatd-$UID/control.sock`.
pub fn resolve_socket_path(explicit: Option<&Path>) -> PathBuf {
    socket_path_with(explicit, env_var, nix::unistd::getuid().as_raw())
}

/// chatctl's rule: [`resolve_socket_path`], except that when neither the
/// flag nor an environment variable chose the path and nothing is there, the
/// system service's socket is used if it exists. So an administrator in
/// group chatd needs no flag for the packaged daemon.
pub fn resolve_client_socket_path(explicit: Option<&Path>) -> PathBuf {
    let path = resolve_socket_path(explicit);
    let chosen = explicit.is_some()
        || env_var("CHATD_CONTROL").is_some()
        || env_var("RUNTIME_DIRECTORY").is_some();
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

/// The state directory: the explicit path, else `$STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/chatd`, else `~/.local/state/chatd`.
pub fn resolve_state_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    state_dir_with(explicit, env_var)
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
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        return Path::new(&dir).join("chatd").join("control.sock");
    }
    PathBuf::from(format!("/tmp/chatd-{uid}/control.sock"))
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
    if let Some(dir) = env("XDG_STATE_HOME") {
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
        let e = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            state_dir_with(None, e),
            Ok(PathBuf::from("/home/u/.local/state/chatd"))
        );
        assert!(state_dir_with(None, env_of(&[])).is_err());
    }
}
