//! Where the cluster's Redis is and how to log in to it: `--cluster
//! redis[s]://[USER[:PASSWORD]@]HOST[:PORT]`, the password file, the TLS
//! roots. Read once, at start-up (resolving a name may wait).

use std::net::{SocketAddr, ToSocketAddrs};

use crate::client::transport;

/// Where the cluster's Redis is and how to log in to it, from
/// `--cluster redis://[USER[:PASSWORD]@]HOST[:PORT]` and
/// `--cluster-password-file`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The URL without its password, for logs and `status`.
    pub shown: String,
    /// ACL user and password for `HELLO 3 AUTH` (the user is `default`
    /// when the URL names none).
    pub auth: Option<(String, String)>,
    /// `rediss://`: TLS, and the name Redis's certificate must carry.
    pub tls: Option<Tls>,
}

/// TLS to Redis: the client configuration and the name to verify.
#[derive(Clone)]
pub struct Tls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.name == other.name
    }
}

impl Eq for Tls {}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.shown, self.addr)
    }
}

/// `url` with any password replaced by `***` (for logs, `status` and
/// the reload plan).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((creds, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// `%XX` escapes decoded (a password may hold `@`, `:` or `/` that way).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials that are not UTF-8".to_string())
}

/// Reads `--cluster URL` (and the password file, which systemd's
/// LoadCredential can provide). Name resolution blocks, so this runs
/// once, at start-up.
pub fn target(
    url: &str,
    password_file: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> Result<Target, String> {
    let shown = redact(url);
    let bad = |why: &str| format!("--cluster '{shown}': {why}");
    let (rest, tls) = match url.split_once("://") {
        Some(("redis", rest)) => (rest, false),
        Some(("rediss", rest)) => (rest, true),
        _ => return Err(bad("expected redis[s]://[USER[:PASSWORD]@]HOST[:PORT]")),
    };
    if ca.is_some() && !tls {
        return Err(bad("--cluster-ca is for TLS: use rediss://"));
    }
    let rest = rest.trim_end_matches('/');
    let (creds, host) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    if host.contains('/') {
        return Err(bad(
            "database numbers are not supported (chatd keeps its keys under chatd:)",
        ));
    }
    let (user, url_password) = match creds {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u), Some(percent_decode(p).map_err(|e| bad(&e))?)),
            None => (Some(c), None),
        },
    };
    let user = user
        .filter(|u| !u.is_empty())
        .map(percent_decode)
        .transpose()
        .map_err(|e| bad(&e))?;
    let file_password = match password_file {
        Some(path) => {
            let text = crate::files::read_small_text(path)
                .map_err(|e| format!("--cluster-password-file {}: {e}", path.display()))?;
            let pw = text.trim_end_matches(['\n', '\r']).to_string();
            if pw.is_empty() {
                return Err(format!("--cluster-password-file {}: empty", path.display()));
            }
            Some(pw)
        }
        None => None,
    };
    let password = match (url_password, file_password) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "a password both in the URL and in --cluster-password-file; give one",
            ));
        }
        (Some(p), None) | (None, Some(p)) => Some(p),
        (None, None) if user.is_some() => {
            return Err(bad(
                "a user without a password (give it in the URL or with --cluster-password-file)",
            ));
        }
        (None, None) => None,
    };
    let auth = password.map(|p| (user.unwrap_or_else(|| "default".into()), p));
    let with_port = if host.starts_with('[') {
        if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:6379")
        }
    } else if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address"))?;
    let tls = if tls {
        let roots = transport::roots(ca).map_err(|e| e.replace("--ca", "--cluster-ca"))?;
        Some(Tls {
            config: transport::client_config(roots)?,
            name: transport::server_name(&with_port).map_err(|e| bad(&e))?,
        })
    } else {
        None
    };
    Ok(Target {
        addr,
        shown,
        auth,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_address_and_credentials_and_logs_never_the_password() {
        let t = target("redis://127.0.0.1", None, None).unwrap();
        assert_eq!(t.addr.port(), 6379);
        assert_eq!(t.auth, None);
        let t = target("redis://chatd:p%40ss%3Aw@127.0.0.1:7000/", None, None).unwrap();
        assert_eq!(t.addr.port(), 7000);
        assert_eq!(t.auth, Some(("chatd".into(), "p@ss:w".into())));
        assert_eq!(t.shown, "redis://chatd:***@127.0.0.1:7000/");
        assert!(!format!("{t:?}").contains("p%40ss"));
        let t = target("redis://:secret@[::1]", None, None).unwrap();
        assert_eq!(t.auth, Some(("default".into(), "secret".into())));
        for (bad, why) in [
            ("redis://chatd@127.0.0.1", "without a password"),
            ("redis://127.0.0.1/2", "database numbers"),
            ("http://127.0.0.1", "expected redis[s]://"),
            ("redis://u:%zz@127.0.0.1", "hex digits"),
        ] {
            let e = target(bad, None, None).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = target(
            "redis://127.0.0.1",
            None,
            Some(std::path::Path::new("/ca.pem")),
        )
        .unwrap_err();
        assert!(e.contains("rediss://"), "{e}");
        let e = target("redis://u:top@127.0.0.1/3", None, None).unwrap_err();
        assert!(!e.contains("top"), "{e}");
    }

    #[test]
    fn the_password_may_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("chatd-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("redis-password");
        std::fs::write(&file, "from-file\n").unwrap();
        let t = target("redis://chatd@127.0.0.1", Some(&file), None).unwrap();
        assert_eq!(t.auth, Some(("chatd".into(), "from-file".into())));
        let e = target("redis://chatd:x@127.0.0.1", Some(&file), None).unwrap_err();
        assert!(e.contains("both"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
