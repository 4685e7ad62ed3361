//! The daemon: configuration, start-up (bind everything, or fail with a
//! message that names what failed), and the event loop that runs until a
//! termination signal.

mod accounts;
mod chat;
mod cluster;

mod config;
mod control;
mod door;
mod event_loop;
pub mod history;
mod host;
pub mod logbook;
mod logsink;
mod metrics;
mod net;
mod oidc;
mod poller;
mod reload;
mod shared;
pub mod store;
mod tls;

use crate::cli::chatd::PollerKind;

use crate::core::codec::Protocol;
use crate::core::hub::Hub;
use event_loop::Server;
use logbook::{Logbook, Sink};

pub use config::{
    Config, FD_RESERVE, LoadFailure, MAX_CLIENTS_CEILING, MAX_CLIENTS_EPOLL, max_event_len,
};
pub use poller::FD_SETSIZE;

/// The fewest control connections chatd will run with.
const MIN_CONTROL_CAP: usize = 2;

/// Output queues are freed when drained and grown again in the next
/// burst; glibc would give the top of the heap back to the kernel after
/// each burst and take it again with brk(2) in the next (hundreds of
/// calls a second under load). The heap is kept instead, and handed back
/// once the loop is idle (`trim_heap`, malloc_trim).
fn keep_heap_between_bursts() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called before any
    // other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (epoll has no ceiling
/// of its own); returns the soft limit now in force.
fn raise_nofile_limit() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return FD_SETSIZE;
    };
    let wanted = hard.min(1 << 20);
    if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
        return wanted as usize;
    }
    soft as usize
}

/// Under select(2), the descriptors at and above FD_SETSIZE serve the
/// rooms' sendfile mirrors alone (chat/mirror.rs; a client there is
/// refused at the door): the soft limit is raised to make room for them.
fn raise_nofile_for_mirrors() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let wanted = hard.min((FD_SETSIZE + chat::mirror::MAX_MIRRORS) as u64);
    if wanted > soft {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard);
    }
}

/// Each room that keeps a history gets its newest events back from the
/// history file, as they were sent; returns how many.
fn seed_history(hub: &mut Hub, history: &history::History) -> Result<usize, String> {
    let mut n = 0;
    for r in hub.list() {
        if r.history == 0 {
            continue;
        }
        let Some(id) = hub.room_id_of(&r.name) else {
            continue;
        };
        let events: Vec<_> = history
            .latest(&r.name, r.history)?
            .iter()
            .map(history::Stored::event)
            .collect();
        n += events.len();
        hub.seed_history(id, events);
    }
    Ok(n)
}

/// Binds everything, then serves until SIGINT/SIGTERM. Errors are start-up
/// failures, worded for the operator.
pub fn run(cfg: Config) -> Result<(), String> {
    cfg.validate()?;
    keep_heap_between_bursts();
    let sink = Sink::open(cfg.log_target)?;
    let mut log = Logbook::new(sink, cfg.log_capacity, cfg.log_level);
    // The state first (locked, so no other chatd writes it): a bad state
    // file must stop chatd before it binds anything.
    let store = store::Store::open(&cfg.state_dir)?;
    let saved = store.load()?;
    let accounts = accounts::Accounts::from_saved(store.load_users()?);
    let oidc = match (&cfg.oidc_issuer, &cfg.oidc_audience, &cfg.oidc_jwks) {
        (Some(iss), Some(aud), Some(jwks)) => {
            Some(oidc::Oidc::load(iss, aud, jwks, &cfg.oidc_claim)?)
        }
        _ => None,
    };
    let mut hub = Hub::new();
    hub.set_history_budget(cfg.history_memory);
    let bad_state = |what: String| {
        format!(
            "state: {}: {what}; fix or move the file away, chatd will not overwrite it",
            store.path().display()
        )
    };
    crate::core::moderation::check_rules(&saved.bans)
        .map_err(|e| bad_state(format!("server-wide bans: {e}")))?;
    hub.set_server_bans(saved.bans.clone());
    for r in &saved.rooms {
        r.moderation
            .check()
            .map_err(|e| bad_state(format!("room '{}': moderation: {e}", r.name)))?;
        let access = crate::core::hub::Access {
            private: r.private,
            allowed: r.allow.iter().cloned().collect(),
            key_hash: r.key_hash.clone(),
        };
        hub.create_room(&r.name, r.limit)
            .and_then(|_| hub.set_access(&r.name, access))
            .and_then(|_| hub.set_history(&r.name, r.history))
            .and_then(|_| hub.set_history_age(&r.name, r.history_age))
            .and_then(|_| hub.set_moderation(&r.name, r.moderation.clone()))
            .map_err(|e| {
            format!(
                "state: {}: room '{}': {}; fix or move the file away, chatd will not overwrite it",
                store.path().display(),
                r.name,
                e.message()
            )
        })?;
    }
    let mut from_flags = Vec::new();
    // --room for a room the state file already has: the file wins (it is
    // what admins last set); a different limit is worth a warning.
    let mut overridden = Vec::new();
    for (name, limit) in &cfg.rooms {
        if let Ok(saved) = hub.room(name) {
            if saved.limit != *limit {
                overridden.push(format!(
                    "--room {name}:{limit} ignored: {} already has room '{name}' with limit {} (change it with chatctl room set-limit)",
                    store.path().display(),
                    saved.limit
                ));
            }
            continue;
        }
        hub.create_room(name, *limit)
            .and_then(|_| hub.set_history(name, cfg.history_default))
            .map_err(|e| format!("--room {name}:{limit}: {}", e.message()))?;
        from_flags.push(name.clone());
    }
    let signals = crate::sys::selfpipe::SelfPipe::install(&[
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("signals: {e}"))?;
    // The cluster's address before any socket: resolving a name may wait,
    // which only start-up may do.
    let cluster_target = match &cfg.cluster {
        Some(url) => Some(cluster::target(
            url,
            cfg.cluster_password_file.as_deref(),
            cfg.cluster_ca.as_deref(),
        )?),
        None => None,
    };
    // The certificate before any socket: a bad one stops start-up.
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(tls::TlsSetup::load(cert, key)?),
        _ => None,
    };
    let mut listeners = Vec::new();
    let kinds = [
        ("listen", &cfg.listen, false, Protocol::Prototype, false),
        (
            "tls-listen",
            &cfg.tls_listen,
            true,
            Protocol::Prototype,
            false,
        ),
        ("irc-listen", &cfg.irc_listen, false, Protocol::Irc, false),
        (
            "irc-tls-listen",
            &cfg.irc_tls_listen,
            true,
            Protocol::Irc,
            false,
        ),
        (
            "web-listen",
            &cfg.web_listen,
            false,
            Protocol::Prototype,
            true,
        ),
        (
            "web-tls-listen",
            &cfg.web_tls_listen,
            true,
            Protocol::Prototype,
            true,
        ),
    ];
    for (flag, addrs, tls, protocol, web) in kinds {
        for addr in addrs {
            let l = net::listen_tcp(*addr).map_err(|e| format!("{flag} {addr}: {e}"))?;
            listeners.push((l, door::Entry { tls, protocol, web }));
        }
    }
    let control = net::bind_control(&cfg.control)?;
    // The history file (and its sync thread) once everything is bound,
    // before the descriptor budget counts what chatd holds.
    let mut history = history::History::open(&cfg.state_dir)?;
    history.direct_keep = cfg.direct_history;
    let replayable = seed_history(&mut hub, &history)?;
    let notifier = host::Notifier::from_env();
    // Control connections get the descriptors that chat clients can never
    // need (one more descriptor: the loop's spare).
    // (And one for the link to Redis in cluster mode.)
    let open =
        control::open_descriptors().unwrap_or(FD_RESERVE) + 1 + usize::from(cfg.cluster.is_some());
    let mut short_of_descriptors = None;
    let (poller, control_cap): (Box<dyn poller::Poller>, usize) = match cfg.poller {
        PollerKind::Select => {
            raise_nofile_for_mirrors();
            let cap = control::control_cap(FD_SETSIZE, open, cfg.max_clients);
            if cap < MIN_CONTROL_CAP {
                return Err(format!(
                    "--max-clients {} leaves {cap} descriptor(s) below select(2)'s limit of {FD_SETSIZE} for control connections ({open} are already open): lower --max-clients, or use --poller epoll",
                    cfg.max_clients
                ));
            }
            (Box::new(poller::Select::default()), cap)
        }
        PollerKind::Epoll => {
            let limit = raise_nofile_limit();
            let epoll = poller::Epoll::new().map_err(|e| format!("epoll: {e}"))?;
            // The rooms' sendfile mirrors take theirs from the same limit.
            let open = open + chat::mirror::MAX_MIRRORS;
            let cap = control::control_cap(limit, open, cfg.max_clients);
            if cap < MIN_CONTROL_CAP {
                // As with select under a low limit: chatd runs, and what the
                // limit cannot hold is refused at the door (EMFILE, 503).
                short_of_descriptors = Some(limit);
            }
            (Box::new(epoll), cap.max(MIN_CONTROL_CAP))
        }
    };
    // Only now that everything is bound: a chatd that fails to start never
    // writes the state file (nor creates the history file).
    if !from_flags.is_empty() {
        store.save(&hub.list(), hub.server_bans())?;
    }
    log.info(format!(
        "chatd {} started (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    ));
    match &cfg.config_file {
        Some(p) => log.info(format!("configuration read from {}", p.display())),
        None => log.info("no configuration file: flags and defaults only"),
    }
    for (l, entry) in &listeners {
        let addr = l.local_addr().map_err(|e| format!("listener: {e}"))?;
        if entry.web {
            let scheme = if entry.tls { "https" } else { "http" };
            log.info(format!(
                "web port on {scheme}://{addr}/ (the web client, WebSockets, /metrics, /healthz)"
            ));
            continue;
        }
        let what = match (entry.protocol, entry.tls) {
            (Protocol::Prototype, false) => "listening on",
            (Protocol::Prototype, true) => "listening for TLS on",
            (Protocol::Irc, false) => "listening for IRC on",
            (Protocol::Irc, true) => "listening for IRC over TLS on",
        };
        log.info(format!("{what} {addr}"));
    }
    if let Some(t) = &tls {
        log.info(format!(
            "tls: certificate {} and key {} loaded (TLS 1.2 and 1.3)",
            t.cert.display(),
            t.key.display()
        ));
    }
    if control.replaced_stale {
        log.info(format!(
            "control: replaced a stale socket left at {}",
            control.path.display()
        ));
    }
    log.info(format!("control socket at {}", control.path.display()));
    log.info(format!(
        "control: up to {control_cap} connections at once, closed after {} s of silence",
        cfg.control_timeout.as_secs_f64()
    ));
    if let Some(limit) = short_of_descriptors {
        log.warn(format!(
            "the descriptor limit (RLIMIT_NOFILE) is {limit}, too low for --max-clients {} and chatd's own {open}: connections beyond it are refused; raise it (ulimit -n, LimitNOFILE=) or lower --max-clients",
            cfg.max_clients
        ));
    }
    log.info(format!(
        "waiting with {}: up to {} chat clients",
        match cfg.poller {
            PollerKind::Select => "select(2)",
            PollerKind::Epoll => "epoll(7)",
        },
        cfg.max_clients
    ));
    log.info(format!(
        "state: {} room(s) loaded from {}",
        saved.rooms.len(),
        store.path().display()
    ));
    log.info(format!(
        "history: {} ({replayable} event(s) read back for rooms that keep a history; synced every {} s)",
        history.path().display(),
        history::SYNC_EVERY.as_secs()
    ));
    match history.recovered {
        (0, 0) => {}
        (n, 0) => log.info(format!(
            "history: {n} event(s) taken from {} (chatd had stopped before storing them)",
            history::journal::FILE
        )),
        (n, torn) => log.warn(format!(
            "history: {n} event(s) taken from {}; its last {torn} byte(s) were a torn write (a power cut?) and were left out",
            history::journal::FILE
        )),
    }
    let registered = accounts.names().len();
    let admission = if cfg.require_login {
        "only registered accounts may join (--require-login)"
    } else {
        "unregistered names may join too"
    };
    log.info(format!("accounts: {registered} registered; {admission}"));
    for (name, why) in accounts.unusable() {
        log.error(format!(
            "accounts: '{name}' cannot log in: its stored hash is refused ({why}); set a new password with chatctl user passwd"
        ));
    }
    if let Some(o) = &oidc {
        log.info(format!(
            "oidc: tokens from {} for {} accepted ({} key(s) from {}; the name from '{}')",
            o.issuer,
            o.audience,
            o.key_count(),
            o.jwks_path.display(),
            o.claim
        ));
    }
    for r in hub.list() {
        let origin = if from_flags.contains(&r.name) {
            " (added by --room)"
        } else {
            ""
        };
        log.info(format!(
            "room '{}' ready with limit {}{origin}",
            r.name, r.limit
        ));
    }
    for warning in overridden {
        log.warn(warning);
    }
    if hub.room_count() == 0 {
        log.info(format!(
            "no rooms yet: create one with `chatctl room create NAME --limit N` (chatctl finds {}), or start chatd with --room NAME:LIMIT",
            control.path.display()
        ));
    }
    let cluster = match cluster_target {
        Some(target) => {
            use rand_core::RngCore;
            let token = format!(
                "{}-{:016x}",
                std::process::id(),
                rand_core::OsRng.next_u64()
            );
            log.info(format!(
                "cluster: node '{}', sharing rooms through Redis at {} ({}){}",
                cfg.node_id,
                target.shown,
                target.addr,
                match &target.auth {
                    Some((user, _)) => format!(", as ACL user '{user}'"),
                    None => String::new(),
                } + if target.tls.is_some() {
                    ", over TLS"
                } else {
                    ""
                }
            ));
            let now = std::time::Instant::now();
            Some(cluster::Cluster::new(
                cluster::ClusterLink::new(&target, now),
                &cfg.node_id,
                token,
                now,
            ))
        }
        None => None,
    };
    let bound = event_loop::Bound {
        history: Some(history),
        cluster,
        poller,
        listeners,
        tls,
        control: Some(control),
        signals,
        store,
        notifier,
        control_cap,
        accounts,
        oidc,
    };
    let mut server = Server::new(cfg, hub, log, bound);
    server.run()
}
