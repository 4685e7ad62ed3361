//! contrib/ holds shell completions and man pages generated from the clap
//! definitions in src/cli/. This test renders them again and fails when the
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
            clap_complete::generate(shell, &mut cmd.clone(), name, &mut buf);
            files.push((Path::new("contrib/completions").join(file), buf));
        }
        man_pages(cmd, &mut files);
    }
    files
}

/// One page for the command and one per subcommand ("chatctl-room-create"),
/// as the parent pages refer to them.
fn man_pages(cmd: clap::Command, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    let name = cmd.get_name().to_string();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .unwrap();
    files.push((Path::new("contrib/man").join(format!("{name}.1")), page));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        // clap names are &'static str (without its "string" feature); a few
        // leaked bytes in a test are the simplest way to build one.
        let full: &'static str = Box::leak(format!("{name}-{}", sub.get_name()).into_boxed_str());
        man_pages(sub.clone().name(full), files);
    }
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_CONTRIB").is_some();
    let mut stale = Vec::new();
    for (rel, want) in rendered() {
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
