//! chatd's configuration: what it needs to know to run, built from its
//! flags and its configuration file, built again the same way on SIGHUP,
//! and checked as a whole before anything is bound or changed.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::poller::FD_SETSIZE;
use crate::cli::chatd::{Args, Loaded, LogLevel, LogTarget, PollerKind, RoomCreation};
use crate::core::control::Level;
use crate::paths::{check_private_dir, resolve_socket_path, resolve_state_dir};

/// Descriptors kept for everything that is not a chat client: stdio, the
/// listeners, the signal pipe, the control socket and its clients, the spare
/// descriptor, syslog.
pub const FD_RESERVE: usize = 24;

/// The most chat clients select(2) can hold next to the reserve.
pub const MAX_CLIENTS_CEILING: usize = FD_SETSIZE - FD_RESERVE;

/// The most chat clients chatd takes with epoll (the descriptor limit
/// usually says less).
pub const MAX_CLIENTS_EPOLL: usize = 1_000_000;

/// Everything chatd needs to know to run; built from its flags and its
/// configuration file ([`Config::load`]), and built again the same way on
/// SIGHUP.
#[derive(Debug, Clone)]
pub struct Config {
    /// The command line chatd was started with, read again (with the
    /// configuration file) on SIGHUP.
    pub argv: Vec<OsString>,
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
    /// Plaintext chat listeners (none with `--listen none`).
    pub listen: Vec<SocketAddr>,
    /// TLS chat listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// IRC listeners, plain and TLS.
    pub irc_listen: Vec<SocketAddr>,
    pub irc_tls_listen: Vec<SocketAddr>,
    /// Web ports, plain and TLS, and what they allow.
    pub web_listen: Vec<SocketAddr>,
    pub web_tls_listen: Vec<SocketAddr>,
    pub web_origin: Vec<String>,
    pub web_proxy: Vec<std::net::IpAddr>,
    pub no_metrics: bool,
    pub no_healthz: bool,
    /// The IRC door's server name, and how long a silent IRC client
    /// waits for a PING (and then for its answer).
    pub irc_server_name: String,
    pub irc_ping: Duration,
    /// Accounts that may OPER on the IRC door.
    pub irc_oper: Vec<String>,
    /// The IRC door's server password, read at start from
    /// --irc-password-file (and again on SIGHUP).
    pub irc_password: Option<String>,
    /// Who creates a room by joining it, and the limit it gets.
    pub room_creation: RoomCreation,
    pub room_limit: usize,
    /// PEM certificate chain and private key for the TLS listeners.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Rooms that exist from start-up (name, limit).
    pub rooms: Vec<(String, usize)>,
    pub control: PathBuf,
    /// Where `rooms.json` lives (already resolved, see
    /// [`crate::paths::resolve_state_dir`]).
    pub state_dir: PathBuf,
    pub max_frame: usize,
    pub max_clients: usize,
    pub poller: PollerKind,
    /// Cluster mode: the Redis URL, and this node's id (the host name
    /// unless given).
    pub cluster: Option<String>,
    pub cluster_password_file: Option<PathBuf>,
    pub cluster_ca: Option<PathBuf>,
    pub node_id: String,
    /// What one address may hold at the door, and who is exempt.
    pub max_clients_per_address: usize,
    pub max_handshakes_per_address: usize,
    pub max_handshakes: Option<usize>,
    pub exempt: crate::core::fair::Exempt,
    /// TCP keepalive idle time (probes and TCP_USER_TIMEOUT follow from it).
    pub tcp_keepalive: Duration,
    /// No room mirrors: plaintext members are written to by copy only.
    pub no_sendfile: bool,
    pub handshake_timeout: Duration,
    pub sendq: usize,
    pub write_timeout: Duration,
    pub control_timeout: Duration,
    /// Only registered accounts (or valid tokens) may join.
    pub require_login: bool,
    /// OpenID Connect: issuer, audience, JWKS file, username claim.
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub oidc_jwks: Option<PathBuf>,
    pub oidc_claim: String,
    pub log_target: LogTarget,
    /// The least severe entries written to the log target.
    pub log_level: Level,
    pub log_messages: bool,
    pub log_capacity: usize,
    /// What all rooms' histories may hold together, in bytes.
    pub history_memory: usize,
    /// `--history-age` (zero: no age limit).
    pub history_age: Duration,
    /// `--password-min`.
    pub password_min: usize,
    /// `--history`: what rooms made without their own keep.
    pub history_default: usize,
    /// `--direct-history`: direct messages kept per account and peer.
    pub direct_history: usize,
    /// `--history-size`, in bytes (0: no limit).
    pub history_size: u64,
    /// Flood control (`--flood-*`).
    pub flood: crate::core::flood::Rule,
}

/// A password file's first line (regular file, at most 1 MiB).
fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = crate::files::read_small(path)
        .map_err(|e| format!("--irc-password-file {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("--irc-password-file {}: not UTF-8", path.display()))?;
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    if line.is_empty() {
        return Err(format!(
            "--irc-password-file {}: the first line is empty",
            path.display()
        ));
    }
    Ok(line)
}

/// The host name, as a node id (`--node-id` when it will not do).
fn default_node_id() -> Result<String, String> {
    let host = nix::unistd::gethostname()
        .map_err(|e| format!("--node-id: the host name: {e}"))?
        .to_string_lossy()
        .into_owned();
    crate::cli::chatd::parse_node_id(&host)
        .map_err(|e| format!("--node-id: the host name '{host}' will not do ({e}); give one"))
}

/// The largest encoded event a frame of `max_frame` bytes can produce: every
/// byte may become a 6-byte `\uXXXX` escape, plus the other fields.
pub fn max_event_len(max_frame: usize) -> usize {
    max_frame * 6 + 1024
}

impl Config {
    /// The configuration `argv` (its first item the program name) and the
    /// configuration file describe. Errors are worded for the operator.
    pub fn load(argv: Vec<OsString>) -> Result<Config, LoadFailure> {
        let loaded = crate::cli::chatd::load(&argv).map_err(|e| match e {
            crate::cli::chatd::LoadError::Usage(e) => LoadFailure::Usage(e),
            crate::cli::chatd::LoadError::Config(m) => LoadFailure::Config(m),
        })?;
        Config::from_loaded(argv, loaded).map_err(LoadFailure::Other)
    }

    fn from_loaded(argv: Vec<OsString>, loaded: Loaded) -> Result<Config, String> {
        let Loaded { args, config } = loaded;
        let Args {
            config: _,
            listen,
            tls_listen,
            irc_listen,
            irc_tls_listen,
            web_listen,
            web_tls_listen,
            web_origin,
            web_proxy,
            no_metrics,
            no_healthz,
            irc_server_name,
            irc_ping,
            irc_oper,
            irc_password_file,
            room_creation,
            room_limit,
            tls_cert,
            tls_key,
            room,
            control,
            state_dir,
            max_frame,
            max_clients,
            poller,
            cluster,
            cluster_password_file,
            cluster_ca,
            node_id,
            max_clients_per_address,
            max_handshakes_per_address,
            max_handshakes,
            address_limit_exempt,
            tcp_keepalive,
            no_sendfile,
            handshake_timeout,
            sendq,
            write_timeout,
            control_timeout,
            require_login,
            oidc_issuer,
            oidc_audience,
            oidc_jwks,
            oidc_username_claim,
            log_target,
            log_level,
            log_messages,
            log_capacity,
            history_memory,
            history_age,
            password_min,
            history_default,
            direct_history,
            history_size,
            flood_burst,
            flood_rate,
            flood_bytes_rate,
            flood_lag,
        } = args;
        if cluster.is_none() {
            let needs = [
                (node_id.is_some(), "--node-id names this node in a cluster"),
                (
                    cluster_password_file.is_some(),
                    "--cluster-password-file is the password for the cluster's Redis",
                ),
                (
                    cluster_ca.is_some(),
                    "--cluster-ca is the CA for the cluster's Redis",
                ),
            ];
            if let Some((_, what)) = needs.iter().find(|(given, _)| *given) {
                return Err(format!("{what}: it needs --cluster"));
            }
        }
        let state_dir = resolve_state_dir(state_dir.as_deref())?;
        let control = resolve_socket_path(control.as_deref());
        check_private_dir(&control, true)?;
        Ok(Config {
            argv,
            config_file: config,
            listen: listen.into_iter().flatten().collect(),
            tls_listen,
            irc_listen,
            irc_tls_listen,
            web_listen,
            web_tls_listen,
            web_origin,
            web_proxy,
            no_metrics,
            no_healthz,
            irc_server_name,
            irc_ping,
            irc_oper,
            irc_password: match irc_password_file {
                None => None,
                Some(path) => Some(read_password_file(&path)?),
            },
            room_creation,
            room_limit,
            tls_cert,
            tls_key,
            rooms: room,
            control,
            state_dir,
            max_frame,
            max_clients,
            poller,
            node_id: match node_id {
                Some(id) => id,
                None if cluster.is_some() => default_node_id()?,
                None => String::new(),
            },
            cluster,
            cluster_password_file,
            cluster_ca,
            max_clients_per_address,
            max_handshakes_per_address,
            max_handshakes,
            exempt: if address_limit_exempt.is_empty() {
                crate::core::fair::Exempt::loopback()
            } else {
                crate::core::fair::Exempt(address_limit_exempt.into_iter().flatten().collect())
            },
            tcp_keepalive,
            no_sendfile,
            handshake_timeout,
            sendq,
            write_timeout,
            control_timeout,
            require_login,
            oidc_issuer,
            oidc_audience,
            oidc_jwks,
            oidc_claim: oidc_username_claim,
            log_target,
            log_level: match log_level {
                LogLevel::Error => Level::Error,
                LogLevel::Warn => Level::Warn,
                LogLevel::Info => Level::Info,
            },
            log_messages,
            log_capacity,
            history_memory: (history_memory as usize) << 20,
            history_age,
            password_min: usize::from(password_min),
            history_default: usize::from(history_default),
            direct_history: direct_history as usize,
            history_size: u64::from(history_size) << 20,
            flood: crate::core::flood::Rule {
                refuse_after: flood_lag,
                ..crate::core::flood::Rule::new(
                    flood_burst,
                    flood_rate,
                    flood_bytes_rate,
                    max_frame,
                )
            },
        })
    }

    /// What one address, and all unfinished handshakes together, may
    /// hold: a quarter of `--max-clients` is kept for finished joins.
    pub fn door_limits(&self) -> crate::core::fair::DoorLimits {
        crate::core::fair::DoorLimits {
            per_address: self.max_clients_per_address,
            handshakes_per_address: self.max_handshakes_per_address,
            handshakes_total: self
                .max_handshakes
                .unwrap_or((self.max_clients - self.max_clients / 4).max(1)),
        }
    }

    /// Checks the limits against each other; the error names the flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty()
            && self.tls_listen.is_empty()
            && self.irc_listen.is_empty()
            && self.irc_tls_listen.is_empty()
            && self.web_listen.is_empty()
            && self.web_tls_listen.is_empty()
        {
            return Err(
                "nothing to listen on: give a --listen, --tls-listen, --irc-listen or --irc-tls-listen address"
                    .into(),
            );
        }
        match (&self.oidc_issuer, &self.oidc_audience, &self.oidc_jwks) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => {}
            _ => {
                return Err("--oidc-issuer, --oidc-audience and --oidc-jwks go together".into());
            }
        }
        if self.cluster.is_some() && self.room_creation != RoomCreation::Admin {
            return Err(
                "--room-creation accounts|anyone does not work with --cluster yet (rooms made by joining are this node's only)"
                    .into(),
            );
        }
        let no_tls_listener = self.tls_listen.is_empty()
            && self.irc_tls_listen.is_empty()
            && self.web_tls_listen.is_empty();
        match (&self.tls_cert, &self.tls_key, no_tls_listener) {
            (Some(_), Some(_), false) | (None, None, true) => {}
            (_, _, false) => {
                return Err(
                    "--tls-listen needs both --tls-cert and --tls-key (so does --irc-tls-listen)"
                        .into(),
                );
            }
            (_, _, true) => {
                return Err(
                    "--tls-cert and --tls-key go with --tls-listen (or --irc-tls-listen)".into(),
                );
            }
        }
        if self.max_frame == 0 {
            return Err("--max-frame must be at least 1".into());
        }
        match self.poller {
            PollerKind::Select
                if self.max_clients == 0 || self.max_clients > MAX_CLIENTS_CEILING =>
            {
                return Err(format!(
                    "--max-clients must be between 1 and {MAX_CLIENTS_CEILING} (select(2) watches at most {FD_SETSIZE} descriptors; --poller epoll goes further)"
                ));
            }
            PollerKind::Epoll if self.max_clients == 0 || self.max_clients > MAX_CLIENTS_EPOLL => {
                return Err(format!(
                    "--max-clients must be between 1 and {MAX_CLIENTS_EPOLL}"
                ));
            }
            _ => {}
        }
        let need = 4 * max_event_len(self.max_frame);
        if self.sendq < need {
            return Err(format!(
                "--sendq {} is too small for --max-frame {}: it must be at least {need} bytes (four of the largest events)",
                self.sendq, self.max_frame
            ));
        }
        if self.handshake_timeout.is_zero()
            || self.write_timeout.is_zero()
            || self.control_timeout.is_zero()
        {
            return Err(
                "--handshake-timeout, --write-timeout and --control-timeout must be positive"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Why [`Config::load`] failed.
#[derive(Debug)]
pub enum LoadFailure {
    /// A command-line mistake (clap prints it and exits 2).
    Usage(clap::Error),
    /// The configuration file is missing or wrong (exit 2 as well).
    Config(String),
    /// Anything else (a directory that is not safe, ...): exit 1.
    Other(String),
}
