//! `chatctl shell` (and `chatctl` alone on a terminal): the admin prompt.
//! Line editing, history (kept in the state directory) and completion come
//! from rustyline; what a line means is `chatd::cli::shell`'s. chatctl's
//! commands print as they do outside; the prototype's menu commands talk
//! like the prototype did.

use std::cell::Cell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use chatd::cli::chatctl::{Args, Command};
use chatd::cli::shell::{self, Line, MENU, Menu, PROMPT};
use chatd::core::control::{ErrorCode, Reply, Request, Response};
use chatd::core::text::printable;

use super::{Failure, print_human, print_log_entry, report, run};

/// What the cursor is completing: a command line, or a room name asked
/// for by a menu command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    RoomName,
}

struct ShellHelper {
    mode: Cell<Mode>,
    socket: Option<PathBuf>,
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        match self.mode.get() {
            Mode::Command => {
                // A word completed whole is followed by a space, as in bash.
                let (start, words) = shell::complete(before);
                Ok((start, words.into_iter().map(|w| w + " ").collect()))
            }
            Mode::RoomName => {
                let rooms = chatd::control_client::room_names(self.socket.as_deref());
                Ok((
                    0,
                    rooms
                        .into_iter()
                        .filter(|r| r.starts_with(before))
                        .collect(),
                ))
            }
        }
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

type Prompt = Editor<ShellHelper, DefaultHistory>;

/// Runs the prompt until `/SAIR`, `exit`, or Ctrl-D. Failures of single
/// commands are printed and the prompt goes on; only the terminal
/// failing ends it with an error.
pub fn run_shell(socket: Option<&Path>, json: bool) -> Result<(), Failure> {
    if let Some(p) = socket {
        chatd::cli::chatctl::complete_rooms_from(p.to_path_buf());
    }
    let mut rl: Prompt = Editor::new().map_err(|e| Failure::Output(io::Error::other(e)))?;
    rl.set_helper(Some(ShellHelper {
        mode: Cell::new(Mode::Command),
        socket: socket.map(Path::to_path_buf),
    }));
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    banner(socket);
    loop {
        set_mode(&rl, Mode::Command);
        let line = match rl.readline(PROMPT) {
            Ok(line) => line,
            // Ctrl-C drops the line being typed, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::Output(io::Error::other(e))),
        };
        if !line.trim().is_empty() {
            let _ = rl.add_history_entry(line.as_str());
        }
        let keep_going = match shell::parse(&line) {
            Line::Empty => true,
            Line::Quit => false,
            Line::Help => {
                help();
                true
            }
            Line::Unbalanced => {
                println!("chatctl: a quote is not closed");
                true
            }
            Line::UnknownMenu(_) => {
                println!("\nComando Inválido!");
                true
            }
            Line::Menu(Menu::Sair) => {
                println!("\nEncerrando aplicação...");
                false
            }
            Line::Menu(m) => {
                if let Err(f) = menu(&mut rl, socket, m) {
                    report(f);
                }
                true
            }
            Line::Words(words) => {
                command(socket, json, words);
                true
            }
        };
        if !keep_going {
            break;
        }
    }
    if let Some(h) = &history {
        let _ = rl.history_mut().set_max_len(1000);
        let _ = rl.save_history(h);
    }
    Ok(())
}

fn set_mode(rl: &Prompt, mode: Mode) {
    if let Some(h) = rl.helper() {
        h.mode.set(mode);
    }
}

/// `$XDG_STATE_HOME/chatd/chatctl_history` (or under ~/.local/state), when
/// that directory exists or can be made.
fn history_file() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?
        .join("chatd");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("chatctl_history"))
}

fn banner(socket: Option<&Path>) {
    let reached =
        match chatd::control_client::ask(socket, &Request::Status {}, Duration::from_secs(2)) {
            Ok(Response::Ok(Reply::Status { status })) => format!(
                "connected to chatd {} (pid {}) at {}",
                status.version,
                status.pid,
                printable(&status.control)
            ),
            Ok(_) => "chatd answered oddly; commands may fail".to_string(),
            Err(e) => format!("{e}\n(commands will try again)"),
        };
    println!(
        "chatctl {} admin shell: {reached}",
        env!("CARGO_PKG_VERSION")
    );
    println!("chatctl's commands (room create Teste --limit 2, status, help), or the menu:\n");
    print_menu();
}

fn print_menu() {
    for (cmd, what) in MENU {
        println!("{cmd} -----> {what}");
    }
}

fn help() {
    print_menu();
    println!(
        "\nchatctl's commands work here without `chatctl`: room create|list|members|kick|close|set-limit|allow|deny, \
         list, status, stats, logs, user add|del|list|passwd. `help room` or `room --help` explains one; \
         Tab completes commands and room names; ↑/↓ recall earlier lines; exit, /SAIR or Ctrl-D leaves."
    );
}

/// One chatctl command line, with the shell's --socket and --json unless
/// the line gives its own.
fn command(socket: Option<&Path>, json: bool, words: Vec<String>) {
    let argv = std::iter::once("chatctl".to_string()).chain(words);
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            // --help and --version print here too, then the prompt returns.
            let _ = e.print();
            return;
        }
    };
    let Some(cmd) = args.command else {
        println!("chatctl: already in the shell; type a command, or help");
        return;
    };
    let refusal = match &cmd {
        Command::Shell => Some("already in the shell"),
        Command::Logs { follow: true, .. } => {
            Some("logs --follow would hold the prompt: run `chatctl logs -f` in another terminal")
        }
        _ => None,
    };
    if let Some(why) = refusal {
        println!("chatctl: {why}");
        return;
    }
    let socket = args.socket.as_deref().or(socket);
    if let Err(f) = run(socket, json || args.json, &cmd) {
        report(f);
    }
}

/// Reads one answer at a sub-prompt; None when the user gave up (Ctrl-C,
/// Ctrl-D).
fn ask_line(rl: &mut Prompt, prompt: &str, mode: Mode) -> Option<String> {
    set_mode(rl, mode);
    rl.readline(prompt).ok().map(|l| l.trim().to_string())
}

/// One request; a refusal becomes `Err(Refused)`.
fn request(socket: Option<&Path>, req: &Request) -> Result<Reply, Failure> {
    match chatd::control_client::ask(socket, req, Duration::from_secs(10)) {
        Ok(Response::Ok(reply)) => Ok(reply),
        Ok(Response::Err(refusal)) if refusal.code == ErrorCode::NotFound => {
            Err(Failure::Refused("Sala não encontrada.".into()))
        }
        Ok(Response::Err(refusal)) => Err(Failure::Refused(refusal.message)),
        Err(e) => Err(Failure::Unreachable(e)),
    }
}

/// The prototype's menu commands, in its words.
fn menu(rl: &mut Prompt, socket: Option<&Path>, m: Menu) -> Result<(), Failure> {
    let out = &mut io::stdout().lock();
    match m {
        Menu::Criar => {
            let Some(name) = ask_line(rl, "Nome da sala: ", Mode::Command) else {
                return Ok(());
            };
            let Some(limit) = ask_line(rl, "Limite de participantes: ", Mode::Command) else {
                return Ok(());
            };
            let limit = match chatd::cli::chatd::parse_limit(&limit) {
                Ok(n) if !name.is_empty() => n,
                _ => {
                    writeln!(out, "\nInsira dados válidos.")?;
                    return Ok(());
                }
            };
            let req = Request::CreateRoom {
                name: name.clone(),
                limit,
                private: false,
                key: None,
                history: None,
                history_age: None,
            };
            request(socket, &req)?;
            writeln!(out, "Sala {} criada.", printable(&name))?;
        }
        Menu::Listar => show_rooms(out, socket)?,
        Menu::Participantes => {
            show_rooms(out, socket)?;
            let Some(room) = ask_line(
                rl,
                "\nDigite o nome da sala que deseja ver os participantes: ",
                Mode::RoomName,
            ) else {
                return Ok(());
            };
            let reply = request(socket, &Request::Participants { room })?;
            if let Reply::Participants { room, participants } = reply {
                writeln!(
                    out,
                    "****** PARTICIPANTES DA SALA \"{}\" ******\n",
                    printable(&room)
                )?;
                for (i, p) in participants.iter().enumerate() {
                    writeln!(out, "{} - {}", i + 1, printable(&p.username))?;
                }
            }
        }
        Menu::Encerrar => {
            show_rooms(out, socket)?;
            let Some(room) = ask_line(
                rl,
                "Digite o nome da sala a ser encerrada: ",
                Mode::RoomName,
            ) else {
                return Ok(());
            };
            request(socket, &Request::CloseRoom { room })?;
            writeln!(out, "Sala encerrada.")?;
        }
        Menu::Logs => {
            let req = Request::Logs {
                limit: 100,
                follow: false,
                since: None,
                priority: None,
            };
            if let Reply::Logs { logs } = request(socket, &req)? {
                writeln!(out, "****** LOGS ******")?;
                for e in &logs {
                    write!(out, "- ")?;
                    print_log_entry(out, e)?;
                }
            }
        }
        Menu::Sair => {}
    }
    Ok(())
}

fn show_rooms(out: &mut impl Write, socket: Option<&Path>) -> Result<(), Failure> {
    let req = Request::List {};
    let reply = request(socket, &req)?;
    print_human(out, &req, &reply)?;
    Ok(())
}
