//! SIGHUP: what changed between the running configuration and the one the
//! flags and the configuration file describe now, and which of the changes
//! can take effect at once (`plan`, pure and unit-tested), and `apply`,
//! which carries the plan out on the running daemon: the log, the limits
//! new sessions get, TLS and OIDC material read again.
//!
//! Live: the log target, level, message logging and ring size; the limits
//! (--max-frame, --sendq, --handshake-timeout and --write-timeout for the
//! connections that come next; --max-clients down to any value and up to
//! the one chatd started with; --control-timeout; the per-address limits
//! and exemptions; --tcp-keepalive for new connections); --no-sendfile (for
//! the writes that come next); --require-login; the
//! TLS certificate and key paths (when TLS is on); the OIDC settings.
//! After a restart only: the listen addresses, the control socket, the
//! state directory, and --room (rooms from flags are added at start-up;
//! `chatctl room create` adds one now).

use super::config::{Config, LoadFailure};
use super::logbook::Sink;
use super::oidc::Oidc;
use super::shared::{Shared, session_limits};
use super::tls::TlsSetup;

/// One setting that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The flag's name, as in the file (`max-clients`).
    pub key: &'static str,
    /// `old -> new`, for the log.
    pub detail: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changes that take effect now.
    pub live: Vec<Change>,
    /// Changes that wait for a restart (the running values stay).
    pub restart: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }

    pub fn changes(&self, key: &str) -> bool {
        self.live.iter().any(|c| c.key == key)
    }
}

/// Compares `old` and `new`; `max_clients_ceiling` is the --max-clients
/// chatd started with (the descriptors it reserved).
pub fn plan(old: &Config, new: &Config, max_clients_ceiling: usize) -> Plan {
    let mut p = Plan::default();
    let mut live = |key, a, b| note(&mut p.live, key, a, b);
    live("log-target", word(&old.log_target), word(&new.log_target));
    live("log-level", word(&old.log_level), word(&new.log_level));
    live("web-origin", dbg(&old.web_origin), dbg(&new.web_origin));
    live("web-proxy", dbg(&old.web_proxy), dbg(&new.web_proxy));
    live("no-metrics", dbg(&old.no_metrics), dbg(&new.no_metrics));
    live("no-healthz", dbg(&old.no_healthz), dbg(&new.no_healthz));
    live(
        "log-messages",
        dbg(&old.log_messages),
        dbg(&new.log_messages),
    );
    live(
        "log-capacity",
        dbg(&old.log_capacity),
        dbg(&new.log_capacity),
    );
    live(
        "history-memory",
        dbg(&(old.history_memory >> 20)),
        dbg(&(new.history_memory >> 20)),
    );
    live(
        "flood-burst",
        dbg(&old.flood.messages.burst),
        dbg(&new.flood.messages.burst),
    );
    live(
        "flood-rate",
        dbg(&old.flood.messages.per_sec),
        dbg(&new.flood.messages.per_sec),
    );
    live(
        "flood-bytes-rate",
        dbg(&old.flood.bytes.per_sec),
        dbg(&new.flood.bytes.per_sec),
    );
    live("history-age", secs(old.history_age), secs(new.history_age));
    live(
        "password-min",
        dbg(&old.password_min),
        dbg(&new.password_min),
    );
    live(
        "history",
        dbg(&old.history_default),
        dbg(&new.history_default),
    );
    live(
        "direct-history",
        dbg(&old.direct_history),
        dbg(&new.direct_history),
    );
    live(
        "history-size",
        dbg(&(old.history_size >> 20)),
        dbg(&(new.history_size >> 20)),
    );
    live(
        "flood-lag",
        secs(old.flood.refuse_after),
        secs(new.flood.refuse_after),
    );
    live("max-frame", dbg(&old.max_frame), dbg(&new.max_frame));
    live("sendq", dbg(&old.sendq), dbg(&new.sendq));
    live(
        "handshake-timeout",
        secs(old.handshake_timeout),
        secs(new.handshake_timeout),
    );
    live(
        "write-timeout",
        secs(old.write_timeout),
        secs(new.write_timeout),
    );
    live(
        "control-timeout",
        secs(old.control_timeout),
        secs(new.control_timeout),
    );
    live(
        "max-clients-per-address",
        dbg(&old.max_clients_per_address),
        dbg(&new.max_clients_per_address),
    );
    live(
        "max-handshakes-per-address",
        dbg(&old.max_handshakes_per_address),
        dbg(&new.max_handshakes_per_address),
    );
    live("address-limit-exempt", dbg(&old.exempt), dbg(&new.exempt));
    live(
        "tcp-keepalive",
        secs(old.tcp_keepalive),
        secs(new.tcp_keepalive),
    );
    live("no-sendfile", dbg(&old.no_sendfile), dbg(&new.no_sendfile));
    live(
        "require-login",
        dbg(&old.require_login),
        dbg(&new.require_login),
    );
    live("irc-ping", secs(old.irc_ping), secs(new.irc_ping));
    live("irc-oper", dbg(&old.irc_oper), dbg(&new.irc_oper));
    live(
        "room-creation",
        word(&old.room_creation),
        word(&new.room_creation),
    );
    live("room-limit", dbg(&old.room_limit), dbg(&new.room_limit));
    live("tls-cert", path(&old.tls_cert), path(&new.tls_cert));
    live("tls-key", path(&old.tls_key), path(&new.tls_key));
    live("oidc-issuer", dbg(&old.oidc_issuer), dbg(&new.oidc_issuer));
    live(
        "oidc-audience",
        dbg(&old.oidc_audience),
        dbg(&new.oidc_audience),
    );
    live("oidc-jwks", path(&old.oidc_jwks), path(&new.oidc_jwks));
    live(
        "oidc-username-claim",
        old.oidc_claim.clone(),
        new.oidc_claim.clone(),
    );
    if new.max_clients <= max_clients_ceiling {
        note(
            &mut p.live,
            "max-clients",
            dbg(&old.max_clients),
            dbg(&new.max_clients),
        );
    }
    let mut restart = |key, a, b| note(&mut p.restart, key, a, b);
    if new.max_clients > max_clients_ceiling {
        restart(
            "max-clients",
            dbg(&old.max_clients),
            format!(
                "{} (above the {max_clients_ceiling} chatd started with)",
                new.max_clients
            ),
        );
    }
    restart("poller", word(&old.poller), word(&new.poller));
    restart(
        "cluster",
        dbg(&old.cluster.as_deref().map(super::cluster::redact)),
        dbg(&new.cluster.as_deref().map(super::cluster::redact)),
    );
    restart(
        "cluster-password-file",
        path(&old.cluster_password_file),
        path(&new.cluster_password_file),
    );
    restart("cluster-ca", path(&old.cluster_ca), path(&new.cluster_ca));
    restart("node-id", dbg(&old.node_id), dbg(&new.node_id));
    restart("listen", dbg(&old.listen), dbg(&new.listen));
    restart("tls-listen", dbg(&old.tls_listen), dbg(&new.tls_listen));
    restart("irc-listen", dbg(&old.irc_listen), dbg(&new.irc_listen));
    restart(
        "irc-tls-listen",
        dbg(&old.irc_tls_listen),
        dbg(&new.irc_tls_listen),
    );
    restart("web-listen", dbg(&old.web_listen), dbg(&new.web_listen));
    restart(
        "web-tls-listen",
        dbg(&old.web_tls_listen),
        dbg(&new.web_tls_listen),
    );
    restart(
        "irc-server-name",
        dbg(&old.irc_server_name),
        dbg(&new.irc_server_name),
    );
    restart(
        "control",
        path(&Some(&old.control)),
        path(&Some(&new.control)),
    );
    restart(
        "state-dir",
        path(&Some(&old.state_dir)),
        path(&Some(&new.state_dir)),
    );
    restart("room", dbg(&old.rooms), dbg(&new.rooms));
    // Compared, never shown.
    if old.irc_password != new.irc_password {
        p.live.push(Change {
            key: "irc-password-file",
            detail: "-> a new password".into(),
        });
    }
    p
}

/// The configuration to run with after `plan`: `new`, except the settings
/// that wait for a restart, which keep their running values.
pub fn running(old: &Config, mut new: Config, plan: &Plan) -> Config {
    for c in &plan.restart {
        match c.key {
            "max-clients" => new.max_clients = old.max_clients,
            "poller" => new.poller = old.poller,
            "cluster" => new.cluster = old.cluster.clone(),
            "cluster-password-file" => {
                new.cluster_password_file = old.cluster_password_file.clone();
            }
            "cluster-ca" => new.cluster_ca = old.cluster_ca.clone(),
            "node-id" => new.node_id = old.node_id.clone(),
            "listen" => new.listen = old.listen.clone(),
            "tls-listen" => new.tls_listen = old.tls_listen.clone(),
            "irc-listen" => new.irc_listen = old.irc_listen.clone(),
            "irc-tls-listen" => new.irc_tls_listen = old.irc_tls_listen.clone(),
            "web-listen" => new.web_listen = old.web_listen.clone(),
            "web-tls-listen" => new.web_tls_listen = old.web_tls_listen.clone(),
            "irc-server-name" => new.irc_server_name = old.irc_server_name.clone(),
            "control" => new.control = old.control.clone(),
            "state-dir" => new.state_dir = old.state_dir.clone(),
            "room" => new.rooms = old.rooms.clone(),
            _ => {}
        }
    }
    new
}

/// Adds `key` to `list` when its two values differ.
fn note(list: &mut Vec<Change>, key: &'static str, old: String, new: String) {
    if old != new {
        list.push(Change {
            key,
            detail: format!("{old} -> {new}"),
        });
    }
}

fn dbg(v: &impl std::fmt::Debug) -> String {
    let s = format!("{v:?}");
    match s.strip_prefix("Some(").and_then(|s| s.strip_suffix(')')) {
        Some(inner) => inner.to_string(),
        None => s,
    }
}

/// An enum's value as its flag spells it (`Info` -> `info`).
fn word(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

fn secs(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn path<P: AsRef<std::path::Path>>(p: &Option<P>) -> String {
    match p {
        Some(p) => p.as_ref().display().to_string(),
        None => "none".into(),
    }
}

// -- applying: what SIGHUP does to the running daemon ---------------------------

/// SIGHUP (`systemctl reload chatd`): the flags and the configuration
/// file are read again and what can change live changes (see
/// [`reload`]); the TLS certificate and key and the OIDC key set are
/// read again. On any error the running settings stay. Open sessions
/// keep the limits they started with.
pub fn apply(sh: &mut Shared, max_clients_ceiling: usize) {
    let new = Config::load(sh.cfg.argv.clone())
        .map_err(|e| match e {
            LoadFailure::Usage(e) => e.render().to_string().trim().to_string(),
            LoadFailure::Config(m) | LoadFailure::Other(m) => m,
        })
        .and_then(|new| new.validate().map(|()| new));
    let new = match new {
        Ok(new) => new,
        Err(e) => {
            sh.log
                .error(format!("reload: {e}; the running configuration stays"));
            reload_files_except(sh, false, false);
            return;
        }
    };
    let plan = plan(&sh.cfg, &new, max_clients_ceiling);
    let mut new = running(&sh.cfg, new, &plan);
    match &new.config_file {
        Some(p) => sh
            .log
            .info(format!("reload: configuration read from {}", p.display())),
        None => sh
            .log
            .info("reload: no configuration file; flags and defaults only"),
    }
    if plan.changes("log-target") {
        match Sink::open(new.log_target) {
            Ok(sink) => {
                let lost = sh.log.set_sink(sink);
                if lost > 0 {
                    sh.log.warn(format!(
                        "reload: {lost} bytes of log entries the previous log target had not taken were dropped (chatctl logs has them)"
                    ));
                }
            }
            Err(e) => {
                sh.log
                    .error(format!("reload: {e}; logging stays on the previous target"));
                new.log_target = sh.cfg.log_target;
            }
        }
    }
    sh.log.set_min_level(new.log_level);
    sh.log.set_capacity(new.log_capacity);
    sh.hub.set_history_budget(new.history_memory);
    if let Some(h) = &mut sh.history {
        h.direct_keep = new.direct_history;
    }
    sh.limits = session_limits(&new);
    let tls_paths = plan.changes("tls-cert") || plan.changes("tls-key");
    let oidc_settings = [
        "oidc-issuer",
        "oidc-audience",
        "oidc-jwks",
        "oidc-username-claim",
    ]
    .iter()
    .any(|k| plan.changes(k));
    for c in &plan.live {
        sh.log
            .info(format!("reload: {} {} (in effect now)", c.key, c.detail));
    }
    for c in &plan.restart {
        sh.log.warn(format!(
            "reload: {} {} needs a restart; running with the old value until then{}",
            c.key,
            c.detail,
            if c.key == "room" {
                " (chatctl room create adds a room now)"
            } else {
                ""
            }
        ));
    }
    if plan.is_empty() {
        sh.log.info("reload: the configuration is unchanged");
    }
    if tls_paths {
        replace_tls(sh, &mut new);
    }
    if oidc_settings {
        replace_oidc(sh, &mut new);
    }
    sh.cfg = new;
    // Whatever was replaced above was just read; the rest is read again.
    reload_files_except(sh, tls_paths, oidc_settings);
}

/// New certificate and key paths: loaded now, or the old ones stay.
fn replace_tls(sh: &mut Shared, new: &mut Config) {
    let (Some(_), Some(cert), Some(key)) = (&sh.tls, &new.tls_cert, &new.tls_key) else {
        return;
    };
    match TlsSetup::load(cert, key) {
        Ok(t) => {
            sh.log.info(format!(
                "tls: loaded certificate {} and key {}",
                t.cert.display(),
                t.key.display()
            ));
            sh.tls = Some(t);
        }
        Err(e) => {
            sh.log.error(format!(
                "{e}; reload failed, the previous certificate and key stay in use"
            ));
            new.tls_cert = sh.cfg.tls_cert.clone();
            new.tls_key = sh.cfg.tls_key.clone();
        }
    }
}

/// New OIDC settings: the issuer, audience, key set and claim are
/// replaced together, or none of them is.
fn replace_oidc(sh: &mut Shared, new: &mut Config) {
    let loaded = match (&new.oidc_issuer, &new.oidc_audience, &new.oidc_jwks) {
        (Some(iss), Some(aud), Some(jwks)) => Oidc::load(iss, aud, jwks, &new.oidc_claim).map(Some),
        _ => Ok(None),
    };
    match loaded {
        Ok(Some(o)) => {
            sh.log.info(format!(
                "oidc: tokens from {} for {} accepted ({} key(s) from {})",
                o.issuer,
                o.audience,
                o.key_count(),
                o.jwks_path.display()
            ));
            sh.oidc = Some(o);
        }
        Ok(None) => {
            sh.log.info("oidc: tokens are no longer accepted");
            sh.oidc = None;
        }
        Err(e) => {
            sh.log.error(format!(
                "{e}; reload failed, the previous OIDC settings stay in use"
            ));
            new.oidc_issuer = sh.cfg.oidc_issuer.clone();
            new.oidc_audience = sh.cfg.oidc_audience.clone();
            new.oidc_jwks = sh.cfg.oidc_jwks.clone();
            new.oidc_claim = sh.cfg.oidc_claim.clone();
        }
    }
}

/// Reads the TLS certificate and key and the OIDC key set again (the
/// operator renewed them in place).
fn reload_files_except(sh: &mut Shared, skip_tls: bool, skip_oidc: bool) {
    if let Some(oidc) = sh.oidc.as_mut().filter(|_| !skip_oidc) {
        match oidc.reload() {
            Ok(n) => sh.log.info(format!(
                "oidc: reloaded {n} key(s) from {}",
                oidc.jwks_path.display()
            )),
            Err(e) => sh
                .log
                .error(format!("{e}; reload failed, the previous keys stay in use")),
        }
    }
    if let Some(tls) = sh.tls.as_mut().filter(|_| !skip_tls) {
        match tls.reload() {
            Ok(()) => sh.log.info(format!(
                "tls: reloaded certificate {} and key {}",
                tls.cert.display(),
                tls.key.display()
            )),
            Err(e) => sh.log.error(format!(
                "{e}; reload failed, the previous certificate and key stay in use"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::time::Duration;

    fn config() -> Config {
        Config {
            argv: vec![OsString::from("chatd")],
            config_file: None,
            listen: vec!["127.0.0.1:1234".parse().unwrap()],
            tls_listen: vec![],
            irc_listen: vec![],
            irc_tls_listen: vec![],
            web_listen: vec![],
            web_tls_listen: vec![],
            web_origin: vec![],
            web_proxy: vec![],
            no_metrics: false,
            no_healthz: false,
            irc_server_name: "chatd".into(),
            irc_ping: Duration::from_secs(90),
            irc_oper: vec![],
            irc_password: None,
            room_creation: crate::cli::chatd::RoomCreation::Admin,
            room_limit: 50,
            tls_cert: None,
            tls_key: None,
            rooms: vec![],
            control: "/run/chatd/control.sock".into(),
            state_dir: "/var/lib/chatd".into(),
            max_frame: 16384,
            max_clients: 1000,
            poller: crate::cli::chatd::PollerKind::Select,
            cluster: None,
            cluster_password_file: None,
            cluster_ca: None,
            node_id: String::new(),
            max_clients_per_address: 16,
            max_handshakes_per_address: 4,
            max_handshakes: None,
            exempt: crate::core::fair::Exempt::loopback(),
            tcp_keepalive: Duration::from_secs(30),
            no_sendfile: false,
            handshake_timeout: Duration::from_secs(10),
            sendq: 1 << 20,
            write_timeout: Duration::from_secs(10),
            control_timeout: Duration::from_secs(30),
            require_login: false,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks: None,
            oidc_claim: "preferred_username".into(),
            log_target: crate::cli::chatd::LogTarget::Stderr,
            log_level: crate::core::control::Level::Info,
            log_messages: false,
            log_capacity: 1000,
            history_memory: 64 << 20,
            history_age: Duration::ZERO,
            password_min: 8,
            history_default: 0,
            direct_history: 0,
            history_size: 1 << 30,
            flood: crate::core::flood::Rule::new(10, 2.0, 4096.0, 16384),
        }
    }

    #[test]
    fn nothing_changed() {
        assert!(plan(&config(), &config(), 1000).is_empty());
    }

    #[test]
    fn limits_are_live_addresses_wait() {
        let old = config();
        let mut new = config();
        new.max_clients = 10;
        new.write_timeout = Duration::from_millis(2500);
        new.log_level = crate::core::control::Level::Warn;
        new.listen = vec!["127.0.0.1:9".parse().unwrap()];
        new.rooms = vec![("Teste".into(), 2)];
        let p = plan(&old, &new, 1000);
        let keys = |cs: &[Change]| cs.iter().map(|c| c.key).collect::<Vec<_>>();
        assert_eq!(keys(&p.live), ["log-level", "write-timeout", "max-clients"]);
        assert_eq!(keys(&p.restart), ["listen", "room"]);
        assert_eq!(p.live[0].detail, "info -> warn");
        assert_eq!(p.live[1].detail, "10 s -> 2.5 s");
        let run = running(&old, new, &p);
        assert_eq!(run.max_clients, 10);
        assert_eq!(run.listen, old.listen);
        assert!(run.rooms.is_empty());
    }

    #[test]
    fn the_irc_door_s_settings_and_a_new_password_never_shown() {
        let old = config();
        let mut new = config();
        new.irc_ping = Duration::from_secs(30);
        new.room_creation = crate::cli::chatd::RoomCreation::Anyone;
        new.irc_password = Some("s3cret-value".into());
        new.irc_listen = vec!["127.0.0.1:6667".parse().unwrap()];
        let p = plan(&old, &new, 1000);
        let keys = |cs: &[Change]| cs.iter().map(|c| c.key).collect::<Vec<_>>();
        assert_eq!(
            keys(&p.live),
            ["irc-ping", "room-creation", "irc-password-file"]
        );
        assert_eq!(keys(&p.restart), ["irc-listen"]);
        assert!(p.live.iter().all(|c| !c.detail.contains("s3cret")));
        let run = running(&old, new, &p);
        assert!(run.irc_listen.is_empty(), "the door's address waits");
        assert_eq!(run.irc_password.as_deref(), Some("s3cret-value"));
    }

    #[test]
    fn more_clients_than_reserved_waits_for_a_restart() {
        let old = config();
        let mut new = config();
        new.max_clients = 1001;
        let p = plan(&old, &new, 1000);
        assert!(p.live.is_empty());
        assert_eq!(p.restart[0].key, "max-clients");
        assert_eq!(running(&old, new, &p).max_clients, 1000);
    }
}
