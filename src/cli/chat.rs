//! The command line of `chat` (clap). Kept in the library so the man page
//! and completions can be generated from it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::chatd::parse_secs;

/// Talk in a chatd room from the terminal, or from a script through a pipe.
#[derive(Debug, Parser)]
#[command(
    name = "chat",
    version,
    about,
    long_about = None,
    after_help = "Interactive when stdin is a terminal: a full-screen view (scrollback, members, status \
                  bar; /help lists the commands) or, with --plain, the prototype's line by line. \
                  /SAIR leaves the room, /quit, Ctrl-D or Ctrl-C quits. \
                  Otherwise each stdin line is sent as one message (--user and --room required).\n\
                  Exit status: 0 ok; 1 join refused, message rejected or session ended by the server; \
                  2 usage error; 3 the server could not be reached, did not answer the join \
                  within --connect-timeout, or (--tls) its certificate did not verify."
)]
pub struct Args {
    /// chatd's address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:1234")]
    pub server: String,
    /// Username (asked for when interactive and not given).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Room to join (asked for when interactive and not given).
    #[arg(long, value_name = "NAME")]
    pub room: Option<String>,
    /// Print events as the JSON lines received instead of `username > message`.
    #[arg(long)]
    pub json: bool,
    /// Interactive, line by line like the prototype's client, instead of
    /// the full-screen view.
    #[arg(long)]
    pub plain: bool,
    /// Seconds to wait for the connection, and then for the server to
    /// answer the join, before giving up (exit 3).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// Connect with TLS, verifying the server's certificate against the
    /// system's root certificates (or --ca). There is no way to skip the
    /// verification.
    #[arg(long)]
    pub tls: bool,
    /// PEM file with the CA certificate(s) to trust instead of the system's
    /// (a private CA); implies --tls.
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// Trust only the server certificate with this SHA-256 fingerprint
    /// (`sha256:HEX`, colons allowed, as `openssl x509 -noout
    /// -fingerprint -sha256` prints it) instead of a CA: for a self-signed
    /// certificate. May be given more than once (a certificate being
    /// replaced). Implies --tls.
    #[arg(long, value_name = "sha256:HEX", conflicts_with = "ca")]
    pub tls_pin: Vec<String>,
    /// Trust on first use, as ssh does: the first certificate this server
    /// shows is remembered in --known-hosts, and a different one later is
    /// refused with a warning. Implies --tls.
    #[arg(long, conflicts_with_all = ["ca", "tls_pin"])]
    pub tofu: bool,
    /// The file --tofu remembers servers in.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "~/.config/chat/known_hosts"
    )]
    pub known_hosts: String,
    /// The language of the client's words: pt (the prototype's) or en.
    /// Default: English when LC_ALL, LC_MESSAGES or LANG says so, else
    /// Portuguese.
    #[arg(long, value_name = "pt|en", value_parser = ["pt", "en"])]
    pub lang: Option<String>,
    /// Log in to a registered account with the password in the first line
    /// of this file (interactive chat asks for it when the server wants it).
    #[arg(long, value_name = "PATH", conflicts_with = "password_stdin")]
    pub password_file: Option<PathBuf>,
    /// Scripted: the first line of stdin is the account's password, the
    /// lines after it are messages.
    #[arg(long)]
    pub password_stdin: bool,
    /// Log in with the OpenID Connect bearer token (a JWT) in this file
    /// (default: $CHAT_TOKEN); the name is the token's, --user is not
    /// needed.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// A private room's key, as the first line of this file (interactive
    /// chat asks for it when the room wants it).
    #[arg(long, value_name = "PATH")]
    pub room_key_file: Option<PathBuf>,
}
