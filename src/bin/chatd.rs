//! chatd: the chat-room daemon. Parses flags, builds the configuration, runs
//! the event loop; maps every failure to a message on stderr and exit 1
//! (2 for usage errors, from clap).

use std::process::ExitCode;

use clap::Parser;

use chatd::cli::chatd::{Args, LogTarget};
use chatd::daemon::{self, Config, logbook::Sink};
use chatd::paths::{check_private_dir, resolve_socket_path, resolve_state_dir};

fn main() -> ExitCode {
    let args = Args::parse();
    let sink = match args.log_target {
        LogTarget::Stderr => Sink::stderr(),
        LogTarget::Syslog => match Sink::syslog() {
            Ok(s) => s,
            Err(e) => return fail(&e),
        },
    };
    let state_dir = match resolve_state_dir(args.state_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let control = resolve_socket_path(args.control.as_deref());
    if let Err(e) = check_private_dir(&control, true) {
        return fail(&e);
    }
    let cfg = Config {
        listen: args.listen.into_iter().flatten().collect(),
        tls_listen: args.tls_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        rooms: args.room,
        control,
        state_dir,
        max_frame: args.max_frame,
        max_clients: args.max_clients,
        handshake_timeout: args.handshake_timeout,
        sendq: args.sendq,
        write_timeout: args.write_timeout,
        control_timeout: args.control_timeout,
        require_login: args.require_login,
        oidc_issuer: args.oidc_issuer,
        oidc_audience: args.oidc_audience,
        oidc_jwks: args.oidc_jwks,
        oidc_claim: args.oidc_username_claim,
        log_messages: args.log_messages,
        log_capacity: args.log_capacity,
    };
    match daemon::run(cfg, sink) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("chatd: error: {msg}");
    ExitCode::FAILURE
}
