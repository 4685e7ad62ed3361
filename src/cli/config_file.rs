//! chatd's configuration file (`/etc/chatd/chatd.toml`, or `--config
//! PATH`): TOML whose keys are chatd's long flags, turned into the
//! command-line arguments they stand for, so that one definition (clap's)
//! gives the types, the checks and the help of both. Flags given on the
//! command line override the file's, key by key; a repeatable flag given on
//! the command line replaces the file's list rather than adding to it.
//!
//! ```toml
//! listen = ["127.0.0.1:1234", "[::1]:1234"]
//! max-clients = 500
//! write-timeout = 2.5
//! require-login = true
//! room = ["Teste:2"]
//! ```
//!
//! Every mistake names the file and line: an unknown key, a value of the
//! wrong kind, a value the flag would refuse.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use toml::de::{DeTable, DeValue};

/// Where chatd looks when no `--config` is given; a missing file there is
/// no error.
pub const DEFAULT_PATH: &str = "/etc/chatd/chatd.toml";

/// Keys that are flags but make no sense in a file.
const NOT_IN_FILE: &[&str] = &["config", "help", "version"];

/// Example values for the keys without a default.
const EXAMPLES: &[(&str, &str)] = &[
    ("tls-listen", "[::]:1235"),
    ("irc-listen", "[::]:6667"),
    ("irc-tls-listen", "[::]:6697"),
    ("web-listen", "[::]:8080"),
    ("web-tls-listen", "[::]:8443"),
    ("web-origin", "https://chat.example.org"),
    ("web-proxy", "127.0.0.1"),
    ("irc-password-file", "/etc/chatd/irc-password"),
    ("irc-oper", "yan"),
    ("tls-cert", "/etc/chatd/tls.crt"),
    ("tls-key", "/etc/chatd/tls.key"),
    ("room", "Teste:10"),
    ("control", "/run/chatd/control.sock"),
    ("state-dir", "/var/lib/chatd"),
    ("oidc-issuer", "https://login.example.org"),
    ("oidc-audience", "chatd"),
    ("oidc-jwks", "/etc/chatd/jwks.json"),
    ("cluster", "redis://127.0.0.1:6379"),
    (
        "cluster-password-file",
        "/run/credentials/chatd.service/redis-password",
    ),
    ("cluster-ca", "/etc/chatd/redis-ca.pem"),
    ("node-id", "chat1"),
    ("address-limit-exempt", "192.168.0.0/16"),
    ("max-handshakes", "750"),
];

/// One key of the file as command-line arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileArg {
    /// clap's id of the flag the key sets.
    pub id: String,
    /// `--flag value ...`, ready to put in front of the real arguments.
    pub args: Vec<OsString>,
}

/// Reads `path` and turns it into arguments for `cmd`; errors name the
/// file and the line.
pub fn read(cmd: &Command, path: &Path) -> Result<Vec<FileArg>, String> {
    let text = crate::files::read_small_text(path)
        .map_err(|e| format!("config: cannot read {}: {e}", path.display()))?;
    parse(cmd, path, &text)
}

/// Turns the text of a configuration file into arguments for `cmd`.
pub fn parse(cmd: &Command, path: &Path, text: &str) -> Result<Vec<FileArg>, String> {
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        format!(
            "config: {}:{line}: {}",
            path.display(),
            first_line(e.message())
        )
    })?;
    // In the file's order, so the first mistake reported is the first one.
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut out = Vec::new();
    for (key, value) in entries {
        let line = line_of(text, key.span().start);
        let at = |msg: String| format!("config: {}:{line}: {msg}", path.display());
        let name: &str = key.get_ref();
        let arg = find_flag(cmd, name).ok_or_else(|| at(unknown_key(cmd, name)))?;
        let values = flatten(arg, name, value.get_ref()).map_err(&at)?;
        let mut args = Vec::new();
        for v in values {
            match v {
                Flat::Switch(false) => {}
                Flat::Switch(true) => args.push(OsString::from(format!("--{name}"))),
                Flat::Value(v) => {
                    check_value(cmd, arg, &v).map_err(|e| at(format!("{name} = {v:?}: {e}")))?;
                    // One `--flag=value` argument: a value that starts
                    // with `-` stays a value.
                    args.push(OsString::from(format!("--{name}={v}")));
                }
            }
        }
        out.push(FileArg {
            id: arg.get_id().to_string(),
            args,
        });
    }
    Ok(out)
}

/// The file chatd reads: `--config PATH` (which must exist), else
/// [`DEFAULT_PATH`] when it exists, else none.
pub fn choose(explicit: Option<&Path>) -> Result<Option<PathBuf>, String> {
    match explicit {
        Some(p) if p.as_os_str() == "none" => Ok(None),
        Some(p) => match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(Some(p.to_path_buf())),
            Ok(_) => Err(format!("config: {} is not a regular file", p.display())),
            Err(e) => Err(format!("config: cannot read {}: {e}", p.display())),
        },
        None => {
            let p = Path::new(DEFAULT_PATH);
            Ok(p.is_file().then(|| p.to_path_buf()))
        }
    }
}

/// The command line chatd runs with: `argv[0]`, then the file's
/// arguments for every flag the command line leaves unset, then the
/// command line itself.
pub fn merge(
    argv: &[OsString],
    given_on_command_line: &[String],
    file: Vec<FileArg>,
) -> Vec<OsString> {
    let mut out: Vec<OsString> = argv.iter().take(1).cloned().collect();
    for f in file {
        if !given_on_command_line.contains(&f.id) {
            out.extend(f.args);
        }
    }
    out.extend(argv.iter().skip(1).cloned());
    out
}

/// A commented example file with every key, its help and its default,
/// all commented out (contrib/chatd.toml is this, checked by the tests).
pub fn example(cmd: &Command) -> String {
    let mut out = String::from(
        "# /etc/chatd/chatd.toml: chatd's configuration (TOML). Every key is one of\n\
         # chatd's long flags (chatd(8), `chatd --help`); a flag given on the command\n\
         # line overrides the key. Unknown keys are refused, naming the line.\n\
         # After a change: `systemctl reload chatd` (SIGHUP) applies what can change\n\
         # live and logs what needs `systemctl restart chatd`.\n\
         # Every key below is commented out and shows its default (for a key that\n\
         # is off by default, an example).\n",
    );
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) || arg.is_hide_set() {
            continue;
        }
        out.push('\n');
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in wrap(&help.replace('\n', " "), 76) {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("#{long} = {}\n", example_value(arg)));
    }
    out
}

/// The example's value: the default, else a placeholder of the right kind.
fn example_value(arg: &Arg) -> String {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return "false".into();
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let one = |v: &str| {
        if v.parse::<f64>().is_ok() {
            v.to_string()
        } else {
            format!("{v:?}")
        }
    };
    let values: Vec<String> = if defaults.is_empty() {
        let long = arg.get_long().unwrap_or_default();
        let example = EXAMPLES
            .iter()
            .find(|(k, _)| *k == long)
            .map_or("", |(_, v)| v);
        vec![one(example)]
    } else {
        defaults.iter().map(|v| one(v)).collect()
    };
    if matches!(arg.get_action(), ArgAction::Append) {
        format!("[{}]", values.join(", "))
    } else {
        values.join(", ")
    }
}

/// Splits text into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A value of the file, as the flag takes it.
enum Flat {
    /// A flag without a value (`require-login = true`).
    Switch(bool),
    Value(String),
}

fn flatten(arg: &Arg, name: &str, value: &DeValue) -> Result<Vec<Flat>, String> {
    let switch = matches!(arg.get_action(), ArgAction::SetTrue);
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    match value {
        DeValue::Boolean(b) if switch => Ok(vec![Flat::Switch(*b)]),
        _ if switch => Err(format!("{name} is true or false")),
        DeValue::Array(items) if repeatable => items
            .iter()
            .map(|item| scalar(name, item.get_ref()).map(Flat::Value))
            .collect(),
        DeValue::Array(_) => Err(format!("{name} takes one value, not a list")),
        other => Ok(vec![Flat::Value(scalar(name, other)?)]),
    }
}

fn scalar(name: &str, value: &DeValue) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) if i.radix() == 10 => Ok(i.as_str().replace('_', "")),
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .map(|n| n.to_string())
            .map_err(|_| format!("{name}: {} is out of range", i.as_str())),
        DeValue::Float(f) => Ok(f.as_str().replace('_', "")),
        DeValue::Boolean(_) => Err(format!("{name} takes a value, not true or false")),
        DeValue::Datetime(_) => Err(format!("{name} takes a value, not a date")),
        DeValue::Array(_) => Err(format!("{name}: a list inside a list")),
        DeValue::Table(_) => Err(format!("{name} takes a value, not a table")),
    }
}

/// The flag whose long name is `key`.
fn find_flag<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    if NOT_IN_FILE.contains(&key) {
        return None;
    }
    cmd.get_arguments().find(|a| a.get_long() == Some(key))
}

fn unknown_key(cmd: &Command, key: &str) -> String {
    let dashed = key.replace('_', "-");
    if NOT_IN_FILE.contains(&key) {
        return format!("'{key}' cannot be set in the configuration file");
    }
    if dashed != key && find_flag(cmd, &dashed).is_some() {
        return format!("unknown key '{key}': did you mean '{dashed}'?");
    }
    format!(
        "unknown key '{key}' (the keys are chatd's long flags, such as max-clients; see chatd --help)"
    )
}

/// Parses the value alone as the flag it sets, so the file is checked
/// exactly as the command line is.
fn check_value(cmd: &Command, arg: &Arg, value: &str) -> Result<(), String> {
    let flag = format!("--{}={value}", arg.get_long().unwrap_or_default());
    match cmd.clone().try_get_matches_from(["chatd", flag.as_str()]) {
        Ok(_) => Ok(()),
        Err(e) => Err(clap_reason(&e)),
    }
}

/// The part of a clap error that explains the value (its first line,
/// without the `error: ` prefix and the flag it names).
pub fn clap_reason(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let line = first_line(&rendered);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // "invalid value 'x' for '--flag <V>': reason" -> "reason"
    match line.split_once(">': ") {
        Some((_, reason)) => reason.to_string(),
        None => line.to_string(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::chatd::Args;
    use clap::CommandFactory;

    fn parsed(text: &str) -> Result<Vec<FileArg>, String> {
        parse(&Args::command(), Path::new("/etc/chatd/chatd.toml"), text)
    }

    fn args_of(text: &str) -> Vec<String> {
        parsed(text)
            .unwrap()
            .into_iter()
            .flat_map(|f| f.args)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn keys_become_flags() {
        let text = "# a comment\nmax-clients = 500\nwrite-timeout = 2.5\nlisten = [\"127.0.0.1:1\", \"[::1]:2\"]\nrequire-login = true\nlog-messages = false\nroom = \"Teste:2\"\n";
        assert_eq!(
            args_of(text),
            [
                "--max-clients=500",
                "--write-timeout=2.5",
                "--listen=127.0.0.1:1",
                "--listen=[::1]:2",
                "--require-login",
                "--room=Teste:2"
            ]
        );
    }

    #[test]
    fn mistakes_name_the_line() {
        let e = parsed("max-clients = 5\n\nmax_clients = 6\n").unwrap_err();
        assert_eq!(
            e,
            "config: /etc/chatd/chatd.toml:3: unknown key 'max_clients': did you mean 'max-clients'?"
        );
        let e = parsed("\nbogus = 1\n").unwrap_err();
        assert!(
            e.starts_with("config: /etc/chatd/chatd.toml:2: unknown key 'bogus'"),
            "{e}"
        );
        let e = parsed("max-clients = \"many\"\n").unwrap_err();
        assert!(
            e.starts_with("config: /etc/chatd/chatd.toml:1: max-clients = \"many\": "),
            "{e}"
        );
        let e = parsed("a = \n").unwrap_err();
        assert!(e.starts_with("config: /etc/chatd/chatd.toml:1: "), "{e}");
        let e = parsed("room = [\"Bad:0\"]\n").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        let e = parsed("max-clients = [1, 2]\n").unwrap_err();
        assert!(
            e.ends_with("max-clients takes one value, not a list"),
            "{e}"
        );
        let e = parsed("require-login = \"yes\"\n").unwrap_err();
        assert!(e.ends_with("require-login is true or false"), "{e}");
        let e = parsed("config = \"/x\"\n").unwrap_err();
        assert!(
            e.ends_with("'config' cannot be set in the configuration file"),
            "{e}"
        );
        let e = parsed("[listen]\nx = 1\n").unwrap_err();
        assert!(e.ends_with("listen takes a value, not a table"), "{e}");
    }

    #[test]
    fn the_example_parses_and_uncommented_gives_the_defaults() {
        let cmd = Args::command();
        let text = example(&cmd);
        assert_eq!(parsed(&text).unwrap(), []);
        // Every key uncommented: each value is one its flag takes.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| !l.starts_with(' '))
            .map(|l| format!("{l}\n"))
            .collect();
        let keys = parsed(&uncommented).unwrap();
        let flags = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !NOT_IN_FILE.contains(l))
            .count();
        assert_eq!(keys.len(), flags, "every flag has its key");
        assert!(
            keys.iter().any(|k| k.args == ["--max-clients=1000"]),
            "{keys:?}"
        );
        assert!(
            keys.iter().any(|k| k.args == ["--listen=127.0.0.1:1234"]),
            "{keys:?}"
        );
        assert!(
            keys.iter()
                .any(|k| k.id == "require_login" && k.args.is_empty())
        );
    }

    #[test]
    fn the_command_line_wins_key_by_key() {
        let file =
            parsed("max-clients = 5\nlisten = [\"127.0.0.1:1\"]\nsendq = 9999999\n").unwrap();
        let argv: Vec<OsString> = ["chatd", "--listen", "127.0.0.1:2"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let merged = merge(&argv, &["listen".to_string()], file);
        let merged: Vec<_> = merged
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            merged,
            [
                "chatd",
                "--max-clients=5",
                "--sendq=9999999",
                "--listen",
                "127.0.0.1:2"
            ]
        );
    }
}
