//! chatctl: administer a running chatd over its control socket.
//!
//! Each subcommand becomes one JSON request (PROTOCOL.md §2); the response is
//! printed as a table for people or, with `--json`, exactly as it came.
//! Exit status: 0 ok, 1 the daemon refused, 2 usage error, 3 the daemon
//! could not be reached. A closed stdout (`chatctl logs -f | head`) is a
//! quiet success.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use chatd::cli::chatctl::{Args, Command, RoomCommand};
use chatd::core::control::Request;
use chatd::core::text::printable;
use chatd::paths::{check_private_dir, resolve_client_socket_path};

/// Why chatctl stops, each mapped to its exit status in one place.
enum Failure {
    /// The daemon answered with an error (exit 1).
    Refused(String),
    /// The daemon could not be reached or stopped answering (exit 3).
    Unreachable(String),
    /// stdout was closed by the reader: not an error (exit 0).
    StdoutClosed,
    /// Writing our own output failed otherwise (exit 1).
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::StdoutClosed
        } else {
            Failure::Output(e)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Refused(msg)) => {
            eprintln!("chatctl: {}", printable(&msg));
            ExitCode::from(1)
        }
        Err(Failure::Output(e)) => {
            eprintln!("chatctl: writing output: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(msg)) => {
            eprintln!("chatctl: {msg}");
            ExitCode::from(3)
        }
    }
}

fn request_for(cmd: &Command) -> Request {
    match cmd {
        Command::Room(RoomCommand::Create { name, limit }) => Request::CreateRoom {
            name: name.clone(),
            limit: *limit,
        },
        Command::Room(RoomCommand::List) | Command::List => Request::List {},
        Command::Room(RoomCommand::Close { name }) => Request::CloseRoom { room: name.clone() },
        Command::Room(RoomCommand::SetLimit { name, limit }) => Request::SetLimit {
            room: name.clone(),
            limit: *limit,
        },
        Command::Participants { room } => Request::Participants { room: room.clone() },
        Command::Kick { room, user } => Request::Kick {
            room: room.clone(),
            username: user.clone(),
        },
        Command::Logs { lines, follow } => Request::Logs {
            limit: *lines,
            follow: *follow,
        },
        Command::Stats => Request::Stats {},
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let path = resolve_client_socket_path(args.socket.as_deref());
    check_private_dir(&path, false).map_err(Failure::Unreachable)?;
    let shown = path.display().to_string();
    let unreachable = |what: &str, e: io::Error| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " (the socket's group may administer: for the service, group chatd)"
        } else {
            ""
        };
        Failure::Unreachable(format!("cannot reach chatd at {shown}: {what}{e}{hint}"))
    };
    let mut stream = UnixStream::connect(&path).map_err(|e| unreachable("", e))?;
    let follow = matches!(args.command, Command::Logs { follow: true, .. });
    if !follow {
        // A wedged daemon must not hang a script forever.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    }
    let req = request_for(&args.command);
    let mut line = serde_json::to_vec(&req).expect("requests serialize");
    line.push(b'\n');
    let sent = stream.write_all(&line);
    let mut reader = BufReader::new(stream);
    // chatd may answer and close before reading the request (it does when
    // it is out of descriptors): an answer counts even if sending failed.
    let (raw, response) = match (sent, read_response(&mut reader, &shown)) {
        (_, Ok(answer)) => answer,
        (Err(e), Err(_)) => return Err(unreachable("send: ", e)),
        (Ok(()), Err(failure)) => return Err(failure),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if args.json {
        out.write_all(raw.as_bytes())?;
    }
    if response["ok"] != Value::Bool(true) {
        out.flush()?;
        let msg = response["error"]["message"]
            .as_str()
            .unwrap_or("the daemon refused the request")
            .to_string();
        return Err(Failure::Refused(msg));
    }
    if !args.json {
        print_human(&mut out, &args.command, &response)?;
    }
    out.flush()?;
    if follow {
        loop {
            if reader.buffer().is_empty() && !wait_for_entry(reader.get_ref())? {
                return Err(Failure::StdoutClosed);
            }
            let (raw, entry) = read_response(&mut reader, &shown)?;
            if args.json {
                out.write_all(raw.as_bytes())?;
            } else {
                print_log_entry(&mut out, &entry["log"])?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// Waits until the daemon sends something (true) or stdout's reader goes
/// away (false), so `chatctl logs -f | head` ends as soon as head does, not
/// at the next log entry.
fn wait_for_entry(stream: &UnixStream) -> Result<bool, Failure> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdout = io::stdout();
    loop {
        let mut fds = [
            PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdout.as_fd(), PollFlags::empty()),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Failure::Output(e.into())),
        }
        let gone = PollFlags::POLLERR | PollFlags::POLLHUP;
        if fds[1].revents().is_some_and(|r| r.intersects(gone)) {
            return Ok(false);
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(true);
        }
    }
}

/// Reads one response line: the raw text (with its newline) and its parse.
fn read_response(reader: &mut impl BufRead, shown: &str) -> Result<(String, Value), Failure> {
    let mut raw = String::new();
    match reader.read_line(&mut raw) {
        Ok(0) => Err(Failure::Unreachable(format!(
            "chatd at {shown} closed the connection without answering"
        ))),
        Ok(_) => {
            let value = serde_json::from_str(&raw).map_err(|e| {
                Failure::Unreachable(format!("chatd at {shown} sent a malformed response: {e}"))
            })?;
            Ok((raw, value))
        }
        Err(e) => Err(Failure::Unreachable(format!(
            "no response from chatd at {shown}: {e}"
        ))),
    }
}

fn print_human(out: &mut impl Write, cmd: &Command, r: &Value) -> io::Result<()> {
    match cmd {
        Command::Room(RoomCommand::Create { .. }) => {
            let room = &r["room"];
            writeln!(
                out,
                "created room '{}' (limit {})",
                text(&room["name"]),
                room["limit"]
            )
        }
        Command::Room(RoomCommand::List) | Command::List => {
            let rooms = r["rooms"].as_array().cloned().unwrap_or_default();
            if rooms.is_empty() {
                return writeln!(out, "no rooms");
            }
            let rows: Vec<Vec<String>> = rooms
                .iter()
                .enumerate()
                .map(|(i, room)| {
                    vec![
                        (i + 1).to_string(),
                        text(&room["name"]),
                        format!("{}/{}", room["members"], room["limit"]),
                    ]
                })
                .collect();
            print_table(out, &["#", "ROOM", "MEMBERS"], &rows)
        }
        Command::Room(RoomCommand::Close { .. }) => writeln!(
            out,
            "closed room '{}'; {} member(s) disconnected",
            text(&r["room"]),
            r["disconnected"]
        ),
        Command::Room(RoomCommand::SetLimit { .. }) => {
            let room = &r["room"];
            writeln!(
                out,
                "room '{}' limit is now {} ({} member(s))",
                text(&room["name"]),
                room["limit"],
                room["members"]
            )
        }
        Command::Participants { .. } => {
            let members = r["participants"].as_array().cloned().unwrap_or_default();
            if members.is_empty() {
                return writeln!(out, "room '{}' has no participants", text(&r["room"]));
            }
            let rows: Vec<Vec<String>> = members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    vec![
                        (i + 1).to_string(),
                        text(&m["username"]),
                        text(&m["address"]),
                        text(&m["joined_at"]),
                    ]
                })
                .collect();
            print_table(out, &["#", "USERNAME", "ADDRESS", "JOINED"], &rows)
        }
        Command::Kick { .. } => writeln!(
            out,
            "removed '{}' from room '{}'",
            text(&r["username"]),
            text(&r["room"])
        ),
        Command::Logs { .. } => {
            for e in r["logs"].as_array().into_iter().flatten() {
                print_log_entry(out, e)?;
            }
            Ok(())
        }
        Command::Stats => {
            let stats = r["stats"].as_object().cloned().unwrap_or_default();
            let width = stats.keys().map(String::len).max().unwrap_or(0);
            for (k, v) in &stats {
                writeln!(out, "{k:<width$}  {}", text(v))?;
            }
            Ok(())
        }
    }
}

fn print_log_entry(out: &mut impl Write, e: &Value) -> io::Result<()> {
    writeln!(
        out,
        "{} {:<5} {}",
        text(&e["ts"]),
        text(&e["level"]).to_uppercase(),
        text(&e["message"])
    )
}

/// Left-aligned columns separated by two spaces; the last column unpadded.
fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                s.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// A JSON value as display text: strings unquoted, control characters made
/// visible so nothing the daemon relays can drive the terminal.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => printable(s),
        Value::Null => String::new(),
        other => printable(&other.to_string()),
    }
}
