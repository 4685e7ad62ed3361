//! `chatctl shell`: what a line typed at the admin prompt means, and what
//! completes it. The prompt takes chatctl's own commands (`room create
//! Teste --limit 2`, `status`, ...) and the prototype's menu commands
//! (`/CRIAR`, `/LISTAR`, `/PARTICIPANTES`, `/ENCERRAR`, `/LOGS`, `/SAIR`,
//! any case, as the prototype's `option.upper()` did), with its Portuguese
//! texts. The terminal side lives in `src/bin/chatctl/shell.rs`.

use std::ffi::OsString;

use clap::CommandFactory;

/// The prototype's admin menu, in its order and words.
pub const MENU: &[(&str, &str)] = &[
    ("/CRIAR", "Cria uma nova sala."),
    ("/LISTAR", "Listar salas criadas."),
    (
        "/PARTICIPANTES",
        "Listar participantes de uma determinada sala.",
    ),
    ("/ENCERRAR", "Encerrar uma sala."),
    ("/LOGS", "Exibir logs."),
    ("/SAIR", "Encerrar a aplicação."),
];

/// The prompt the prototype's menu ended with.
pub const PROMPT: &str = "Digite um comando: ";

/// One of the prototype's menu commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    Criar,
    Listar,
    Participantes,
    Encerrar,
    Logs,
    Sair,
}

/// What a typed line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// Nothing (blank).
    Empty,
    Menu(Menu),
    /// A `/WORD` that is not on the menu.
    UnknownMenu(String),
    /// `help`, `?`, `/AJUDA`: the menu and a word on chatctl's commands.
    Help,
    /// `exit`, `quit`.
    Quit,
    /// A chatctl command line, split like a shell would (a leading
    /// `chatctl` dropped).
    Words(Vec<String>),
    /// Quotes that do not close.
    Unbalanced,
}

pub fn parse(line: &str) -> Line {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Empty;
    }
    if trimmed.starts_with('/') {
        return match trimmed.to_uppercase().as_str() {
            "/CRIAR" => Line::Menu(Menu::Criar),
            "/LISTAR" => Line::Menu(Menu::Listar),
            "/PARTICIPANTES" => Line::Menu(Menu::Participantes),
            "/ENCERRAR" => Line::Menu(Menu::Encerrar),
            "/LOGS" => Line::Menu(Menu::Logs),
            "/SAIR" => Line::Menu(Menu::Sair),
            "/AJUDA" | "/HELP" => Line::Help,
            _ => Line::UnknownMenu(trimmed.to_string()),
        };
    }
    let Some(mut words) = shlex::split(trimmed) else {
        return Line::Unbalanced;
    };
    if words.first().map(String::as_str) == Some("chatctl") {
        words.remove(0);
    }
    match words.as_slice() {
        [] => Line::Empty,
        [w] if w == "help" || w == "?" => Line::Help,
        [w] if w == "exit" || w == "quit" => Line::Quit,
        _ => Line::Words(words),
    }
}

/// Completions for the text before the cursor: the menu commands after a
/// `/`, else chatctl's subcommands, flags and (asking chatd) room names.
/// Returns where the completed word starts and the candidates.
pub fn complete(before_cursor: &str) -> (usize, Vec<String>) {
    let start = before_cursor
        .rfind(char::is_whitespace)
        .map_or(0, |i| i + 1);
    let current = &before_cursor[start..];
    if start == 0 && current.starts_with('/') {
        let upper = current.to_uppercase();
        let found = MENU
            .iter()
            .map(|(c, _)| *c)
            .chain(["/AJUDA"])
            .filter(|c| c.starts_with(&upper))
            .map(str::to_string)
            .collect();
        return (start, found);
    }
    let mut args: Vec<OsString> = vec!["chatctl".into()];
    let words: Vec<&str> = before_cursor[..start].split_whitespace().collect();
    let skip = usize::from(words.first() == Some(&"chatctl"));
    args.extend(words[skip..].iter().map(OsString::from));
    args.push(current.into());
    let index = args.len() - 1;
    let mut cmd = crate::cli::chatctl::Args::command();
    let mut found: Vec<String> = clap_complete::engine::complete(&mut cmd, args, index, None)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.get_value().to_string_lossy().into_owned())
        .filter(|v| v.starts_with(current))
        .collect();
    if start == 0 {
        found.extend(
            ["exit", "help", "quit"]
                .into_iter()
                .filter(|w| w.starts_with(current))
                .map(str::to_string),
        );
        found.retain(|w| w != "shell");
    }
    (start, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_commands_in_any_case() {
        assert_eq!(parse("/criar"), Line::Menu(Menu::Criar));
        assert_eq!(parse("  /Listar "), Line::Menu(Menu::Listar));
        assert_eq!(parse("/PARTICIPANTES"), Line::Menu(Menu::Participantes));
        assert_eq!(parse("/encerrar"), Line::Menu(Menu::Encerrar));
        assert_eq!(parse("/LOGS"), Line::Menu(Menu::Logs));
        assert_eq!(parse("/sair"), Line::Menu(Menu::Sair));
        assert_eq!(parse("/ajuda"), Line::Help);
        assert_eq!(parse("/xyz"), Line::UnknownMenu("/xyz".into()));
    }

    #[test]
    fn chatctl_lines_split_like_a_shell() {
        assert_eq!(
            parse("room create 'Sala A' --limit 2"),
            Line::Words(vec![
                "room".into(),
                "create".into(),
                "Sala A".into(),
                "--limit".into(),
                "2".into()
            ])
        );
        assert_eq!(parse("chatctl status"), Line::Words(vec!["status".into()]));
        assert_eq!(parse("room create \"open"), Line::Unbalanced);
        assert_eq!(parse("   "), Line::Empty);
        assert_eq!(parse("quit"), Line::Quit);
        assert_eq!(parse("?"), Line::Help);
    }

    #[test]
    fn completes_menu_and_subcommands() {
        assert_eq!(complete("/pa"), (0, vec!["/PARTICIPANTES".to_string()]));
        let (start, words) = complete("ro");
        assert_eq!((start, words), (0, vec!["room".to_string()]));
        let (start, words) = complete("room mem");
        assert_eq!((start, words), (5, vec!["members".to_string()]));
        let (_, words) = complete("");
        assert!(words.contains(&"status".to_string()) && words.contains(&"quit".to_string()));
        assert!(!words.contains(&"shell".to_string()));
    }
}
