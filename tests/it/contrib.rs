//! contrib/ holds shell completions, man pages and the example chatd.toml
//! generated from the clap definitions in src/cli/. This test renders them again and fails when the
//! committed files differ; `UPDATE_CONTRIB=1 cargo test --test it contrib`
//! rewrites them.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn rendered() -> Vec<(PathBuf, Vec<u8>)> {
    let commands = [
        ("chatd", chatd::cli::chatd::Args::command()),
        ("chatctl", chatd::cli::chatctl::Args::command()),
        ("chat", chatd::cli::chat::Args::command()),
    ];
    let mut files = Vec::new();
    for (name, cmd) in commands {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut buf = Vec::new();
            if name == "chatctl" {
                dynamic_registration(shell, &mut buf);
            } else {
                clap_complete::generate(shell, &mut cmd.clone(), name, &mut buf);
            }
            files.push((Path::new("contrib/completions").join(file), buf));
        }
        man_pages(cmd, &mut files);
    }
    let example = chatd::cli::config_file::example(&chatd::cli::chatd::Args::command());
    files.push((PathBuf::from("contrib/chatd.toml"), example.into_bytes()));
    files
}

/// chatctl's completions ask chatctl itself (`COMPLETE=bash chatctl --
/// words...`), which asks the running chatd for room names: the script is
/// what `COMPLETE=$SHELL chatctl` prints.
fn dynamic_registration(shell: Shell, buf: &mut Vec<u8>) {
    use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        _ => unreachable!("no other shells are generated"),
    };
    completer
        .write_registration("COMPLETE", "chatctl", "chatctl", "chatctl", buf)
        .unwrap();
}

/// One page for the command and one per subcommand ("chatctl-room-create"),
/// as the parent pages refer to them; none for hidden aliases. chatd, a
/// daemon, goes in section 8; the programs in section 1. The top pages get
/// hand-written sections after the generated ones.
fn man_pages(cmd: clap::Command, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    let name = cmd.get_name().to_string();
    let section = if name == "chatd" { "8" } else { "1" };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .render(&mut page)
        .unwrap();
    page.extend_from_slice(extra_sections(&name).as_bytes());
    files.push((
        Path::new("contrib/man").join(format!("{name}.{section}")),
        page,
    ));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        // clap names are &'static str (without its "string" feature); a few
        // leaked bytes in a test are the simplest way to build one.
        let full: &'static str = Box::leak(format!("{name}-{}", sub.get_name()).into_boxed_str());
        man_pages(sub.clone().name(full), files);
    }
}

/// roff for a titled section of tagged paragraphs.
fn section(title: &str, items: &[(&str, &str)]) -> String {
    let mut out = format!(".SH \"{title}\"\n");
    for (tag, text) in items {
        out.push_str(&format!(".TP\n\\fB{tag}\\fR\n{text}\n"));
    }
    out
}

fn extra_sections(name: &str) -> String {
    match name {
        "chatd" => [
            section("EXIT STATUS", &[
                ("0", "Stopped by SIGINT or SIGTERM after telling every client."),
                ("1", "Could not start: the message says what failed (a bad state file, a busy state directory, an address in use, a certificate that does not load)."),
                ("2", "Usage error in the flags, or in the configuration file (the message names its line)."),
            ]),
            section("ENVIRONMENT", &[
                ("CHATD_CONTROL", "The control socket, when --control is not given."),
                ("RUNTIME_DIRECTORY, STATE_DIRECTORY", "Set by systemd (RuntimeDirectory=, StateDirectory=): where the control socket and the state files go."),
                ("XDG_RUNTIME_DIR, XDG_STATE_HOME, TMPDIR, HOME", "Per-user defaults for the same (absolute paths only); the fallback ${TMPDIR:-/tmp}/chatd-$UID must be the user's alone."),
                ("NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM", "systemd's readiness, watchdog and journal protocols."),
            ]),
            section("FILES", &[
                ("/etc/chatd/chatd.toml", "The configuration file, read when it exists (or --config PATH): TOML whose keys are the long flags above (max-clients = 500); flags on the command line override it. contrib/chatd.toml is a commented example."),
                ("rooms.json", "In the state directory: rooms, limits, private rooms' allow-lists and key hashes; replaced atomically before a change is acknowledged."),
                ("users.json", "In the state directory, mode 0600: accounts and their Argon2id hashes."),
                ("chatd.lock", "In the state directory: held (flock) for as long as chatd runs; one chatd per directory."),
                ("control.sock", "The control socket, mode 0660 (see chatctl(1))."),
            ]),
            section("SIGNALS", &[
                ("SIGTERM, SIGINT", "Tell every client the server is stopping, give their output 2 s, exit 0; a second one exits at once."),
                ("SIGHUP", "Re-read the flags' configuration file and apply what can change live: the log target and level, --log-messages, --log-capacity, the limits (for new connections; --max-clients up to its start-up value), --control-timeout, --require-login, the TLS certificate and key, the OIDC settings and key set (systemctl reload chatd). Each change is logged; a change to the listen addresses, the control socket, the state directory or --room is logged as needing a restart. On any error the running settings stay; open sessions are untouched."),
            ]),
            section("EXAMPLES", &[
                ("chatd --room Teste:2", "Serve one room on 127.0.0.1:1234."),
                ("chatd --config ./chatd.toml --max-clients 50", "Settings from a file, one overridden."),
                ("chatd --listen none --tls-listen [::]:1235 --tls-cert fullchain.pem --tls-key privkey.pem", "TLS only."),
            ]),
            "\n.SH \"SEE ALSO\"\nchatctl(1), chat(1), systemctl(1)\n".to_string(),
        ]
        .concat(),
        "chatctl" => [
            section("EXIT STATUS", &[
                ("0", "Done; also when stdout's reader goes away, and when logs --follow ends because chatd shut down cleanly."),
                ("1", "chatd refused the request (its message on stderr)."),
                ("2", "Usage error."),
                ("3", "chatd could not be reached (every socket tried is named)."),
            ]),
            section("ENVIRONMENT", &[
                ("CHATD_CONTROL, RUNTIME_DIRECTORY, XDG_RUNTIME_DIR, TMPDIR", "Where the control socket is, as for chatd(8); when nothing answers there, /run/chatd/control.sock is tried."),
                ("XDG_STATE_HOME, HOME", "Where the shell keeps its history: $XDG_STATE_HOME/chatd/chatctl_history, else ~/.local/state/chatd/chatctl_history."),
                ("COMPLETE", "COMPLETE=bash chatctl (or zsh, fish) prints the shell completion script; the script calls chatctl the same way to complete, asking the running chatd for room names."),
            ]),
            section("FILES", &[
                ("/run/chatd/control.sock", "The system service's control socket (group chatd may administer)."),
                ("~/.local/state/chatd/chatctl_history", "The shell's history (the last 1000 lines)."),
            ]),
            section("EXAMPLES", &[
                ("chatctl room create Teste --limit 2", "Create a room."),
                ("echo 'a long password' | chatctl user add yan", "Register an account from a script."),
                ("chatctl logs --since 10m --priority warn", "Recent warnings and errors."),
                ("chatctl", "On a terminal: the admin shell. Type chatctl's commands without `chatctl` (room members Teste; Tab completes room names), or the prototype's menu: /CRIAR, /LISTAR, /PARTICIPANTES, /ENCERRAR, /LOGS, /SAIR."),
            ]),
            "\n.SH \"SEE ALSO\"\nchatd(8), chat(1)\n".to_string(),
        ]
        .concat(),
        "chat" => [
            section("EXIT STATUS", &[
                ("0", "Done."),
                ("1", "The join was refused, messages were rejected, or the server ended the session."),
                ("2", "Usage error."),
                ("3", "The server could not be reached, did not answer the join in time, or (--tls) its certificate did not verify."),
            ]),
            section("ENVIRONMENT", &[("CHAT_TOKEN", "An OpenID Connect bearer token to log in with, when --token-file is not given.")]),
            section("EXAMPLES", &[
                ("chat", "Ask for a name and a room, then talk."),
                ("echo 'build passed' | chat --user ci --room Teste", "Send one message from a script."),
                ("chat --tls --server chat.example.org:1235 --room Lobby --token-file ~/.chat-token", "Over TLS, logged in by token."),
            ]),
            "\n.SH \"SEE ALSO\"\nchatd(8), chatctl(1)\n".to_string(),
        ]
        .concat(),
        _ => String::new(),
    }
}

/// Files in contrib/man that nothing generates any more (a renamed page,
/// a hidden alias): stale too.
fn leftovers(root: &Path, rendered: &[(PathBuf, Vec<u8>)]) -> Vec<PathBuf> {
    let dir = root.join("contrib/man");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| Path::new("contrib/man").join(e.file_name()))
        .filter(|rel| !rendered.iter().any(|(r, _)| r == rel))
        .collect()
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_CONTRIB").is_some();
    let mut stale = Vec::new();
    let all = rendered();
    for rel in leftovers(root, &all) {
        if update {
            std::fs::remove_file(root.join(&rel)).unwrap();
        } else {
            stale.push(format!("{} (no longer generated)", rel.display()));
        }
    }
    for (rel, want) in all {
        let path = root.join(&rel);
        if std::fs::read(&path).ok().as_deref() == Some(&want[..]) {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (regenerate with: UPDATE_CONTRIB=1 cargo test --test it contrib): {stale:?}"
    );
}
