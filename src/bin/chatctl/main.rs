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

use chatd::cli::chatctl::{Args, Command, RoomCommand, UserCommand};
use chatd::core::control::{FOLLOW_END, FollowLine, Level, LogEntry, Reply, Request, Response};
use chatd::core::text::printable;

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
    /// A usage error found after parsing (exit 2).
    Usage(String),
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

mod shell;

fn main() -> ExitCode {
    // `COMPLETE=bash chatctl`: print the shell's completion script, or
    // answer one completion request from it (room names come from chatd).
    clap_complete::CompleteEnv::with_factory(<Args as clap::CommandFactory>::command).complete();
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Shell) => shell_on_terminal(&args),
        None if on_terminal() => shell_on_terminal(&args),
        None => {
            let mut cmd = <Args as clap::CommandFactory>::command();
            cmd.error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is needed (the admin shell opens only on a terminal)",
            )
            .exit()
        }
        Some(cmd) => run(args.socket.as_deref(), args.json, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(report(f)),
    }
}

fn on_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

fn shell_on_terminal(args: &Args) -> Result<(), Failure> {
    if !on_terminal() {
        return Err(Failure::Usage(
            "chatctl shell needs a terminal on stdin and stdout; in scripts, give the command itself".into(),
        ));
    }
    shell::run_shell(args.socket.as_deref(), args.json)
}

/// Prints why chatctl (or one shell command) failed, and returns the exit
/// status that goes with it.
fn report(f: Failure) -> u8 {
    match f {
        Failure::StdoutClosed => 0,
        Failure::Refused(msg) => {
            eprintln!("chatctl: {}", printable(&msg));
            1
        }
        Failure::Output(e) => {
            eprintln!("chatctl: writing output: {e}");
            1
        }
        Failure::Unreachable(msg) => {
            eprintln!("chatctl: {msg}");
            3
        }
        Failure::Usage(msg) => {
            eprintln!("chatctl: {msg}");
            2
        }
    }
}

fn request_for(cmd: &Command) -> Result<Request, Failure> {
    Ok(match cmd {
        Command::User(UserCommand::Add { name }) => Request::UserAdd {
            name: name.clone(),
            password: read_password(true)?,
        },
        Command::User(UserCommand::Passwd { name }) => Request::UserPasswd {
            name: name.clone(),
            password: read_password(true)?,
        },
        Command::User(UserCommand::Del { name }) => Request::UserDel { name: name.clone() },
        Command::User(UserCommand::List) => Request::UserList {},
        Command::Room(RoomCommand::Create {
            name,
            limit,
            private,
            key,
            history,
            history_age,
        }) => Request::CreateRoom {
            name: name.clone(),
            limit: *limit,
            private: *private,
            key: if *key {
                Some(read_password(true)?)
            } else {
                None
            },
            history: *history,
            history_age: history_age.map(|a| a.as_secs()).filter(|&s| s > 0),
        },
        Command::Room(RoomCommand::Allow { name, user }) => Request::RoomAllow {
            room: name.clone(),
            username: user.clone(),
        },
        Command::Room(RoomCommand::Deny { name, user }) => Request::RoomDeny {
            room: name.clone(),
            username: user.clone(),
        },
        Command::Room(RoomCommand::List) | Command::List => Request::List {},
        Command::Room(RoomCommand::Close { name }) => Request::CloseRoom { room: name.clone() },
        Command::Room(RoomCommand::SetLimit { name, limit }) => Request::SetLimit {
            room: name.clone(),
            limit: *limit,
        },
        Command::Participants { room } | Command::Room(RoomCommand::Members { name: room }) => {
            Request::Participants { room: room.clone() }
        }
        Command::Room(RoomCommand::Kick { name, user, reason }) => Request::Kick {
            room: name.clone(),
            username: user.clone(),
            reason: reason.clone(),
        },
        Command::Kick { room, user } => Request::Kick {
            room: room.clone(),
            username: user.clone(),
            reason: None,
        },
        Command::Room(RoomCommand::Topic { name, text: None })
        | Command::Room(RoomCommand::Bans { name }) => {
            Request::RoomModeration { room: name.clone() }
        }
        Command::Room(RoomCommand::Topic {
            name,
            text: Some(text),
        }) => Request::RoomTopic {
            room: name.clone(),
            topic: text.clone(),
        },
        Command::Room(RoomCommand::Ban { name, rule }) => Request::RoomBan {
            room: name.clone(),
            target: rule.target.clone(),
            for_secs: rule.for_.map(|d| d.as_secs()),
            reason: rule.reason.clone(),
        },
        Command::Room(RoomCommand::Mute { name, rule }) => Request::RoomMute {
            room: name.clone(),
            target: rule.target.clone(),
            for_secs: rule.for_.map(|d| d.as_secs()),
            reason: rule.reason.clone(),
        },
        Command::Room(RoomCommand::Unban { name, target }) => Request::RoomUnban {
            room: name.clone(),
            target: target.clone(),
        },
        Command::Room(RoomCommand::Unmute { name, target }) => Request::RoomUnmute {
            room: name.clone(),
            target: target.clone(),
        },
        Command::Room(RoomCommand::Op { name, account }) => Request::RoomOp {
            room: name.clone(),
            account: account.clone(),
        },
        Command::Room(RoomCommand::Deop { name, account }) => Request::RoomDeop {
            room: name.clone(),
            account: account.clone(),
        },
        Command::Room(RoomCommand::Moderated { name, state }) => Request::RoomModerated {
            room: name.clone(),
            on: state == "on",
        },
        Command::Ban { rule } => Request::Ban {
            target: rule.target.clone(),
            for_secs: rule.for_.map(|d| d.as_secs()),
            reason: rule.reason.clone(),
        },
        Command::Unban { target } => Request::Unban {
            target: target.clone(),
        },
        Command::Bans => Request::Bans {},
        Command::Logs {
            lines,
            follow,
            since,
            priority,
        } => Request::Logs {
            limit: *lines,
            follow: *follow,
            since: since.as_deref().map(parse_since).transpose()?,
            priority: priority.as_deref().and_then(Level::parse),
        },
        Command::Room(RoomCommand::History { name, lines, since }) => Request::History {
            room: name.clone(),
            limit: *lines,
            since: since.as_deref().map(parse_since).transpose()?,
        },
        Command::Room(RoomCommand::Purge { name, before }) => Request::Purge {
            room: name.clone(),
            before: before.as_deref().map(parse_since).transpose()?,
        },
        Command::Status => Request::Status {},
        Command::Stats => Request::Stats {},
        Command::Shell => return Err(Failure::Usage("the shell is not a request".into())),
    })
}

/// `--since`: an RFC 3339 UTC time as is, or an age (30s, 10m, 2h, 1d)
/// turned into one.
fn parse_since(s: &str) -> Result<String, Failure> {
    if s.contains('T') {
        return Ok(s.to_string());
    }
    let bad = || {
        Failure::Usage(format!(
            "--since {s}: give an RFC 3339 time (2026-11-24T10:00:00Z) or an age such as 30s, 10m, 2h, 1d"
        ))
    };
    // The same ages as chatd's --history-age.
    let age = chatd::cli::chatd::parse_age(s)
        .ok()
        .filter(|a| !a.is_zero())
        .ok_or_else(bad)?;
    let now = chatd::timefmt::unix_now();
    Ok(chatd::timefmt::rfc3339(now.saturating_sub(age.as_secs())))
}

/// Uptime in words: "3 d 2 h", "5 h 12 min", "4 min 9 s".
fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// A new password: from the terminal, asked twice without echo; from a
/// pipe, the first line of stdin. Never from the command line, where other
/// users could see it.
fn read_password(confirm: bool) -> Result<String, Failure> {
    use std::io::IsTerminal;
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Usage(format!("reading the password from stdin: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            return Err(Failure::Usage(
                "no password on stdin (give it as the first line)".into(),
            ));
        }
        return Ok(password);
    }
    let first = chatd::client::terminal::read_hidden("Password: ")
        .map_err(|e| Failure::Usage(format!("reading the password: {e}")))?;
    if confirm {
        let again = chatd::client::terminal::read_hidden("Again: ")
            .map_err(|e| Failure::Usage(format!("reading the password: {e}")))?;
        if again != first {
            return Err(Failure::Usage("the two passwords differ".into()));
        }
    }
    Ok(first)
}

fn connect(explicit: Option<&std::path::Path>) -> Result<(UnixStream, String), Failure> {
    chatd::control_client::connect(explicit).map_err(Failure::Unreachable)
}

/// One command: one request, its answer printed (as a table, or the JSON
/// line with `json`); `logs --follow` keeps printing.
fn run(socket: Option<&std::path::Path>, json: bool, cmd: &Command) -> Result<(), Failure> {
    let (mut stream, shown) = connect(socket)?;
    let unreachable = |what: &str, e: io::Error| {
        Failure::Unreachable(format!("cannot reach chatd at {shown}: {what}{e}"))
    };
    let follow = matches!(cmd, Command::Logs { follow: true, .. });
    if !follow {
        // A wedged daemon must not hang a script forever.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    }
    let req = request_for(cmd)?;
    let mut line = serde_json::to_vec(&req).expect("requests serialize");
    line.push(b'\n');
    let sent = stream.write_all(&line);
    let mut reader = BufReader::new(stream);
    // chatd may answer and close before reading the request (it does when
    // it is out of descriptors): an answer counts even if sending failed.
    let raw = match (sent, read_line(&mut reader, &shown)) {
        (_, Ok(raw)) => raw,
        (Err(e), Err(_)) => return Err(unreachable("send: ", e)),
        (Ok(()), Err(failure)) => return Err(failure),
    };
    let response = Response::parse(&req, raw.as_bytes()).map_err(|e| {
        Failure::Unreachable(format!("chatd at {shown} sent a malformed response: {e}"))
    })?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if json {
        out.write_all(raw.as_bytes())?;
    }
    let reply = match response {
        Response::Ok(reply) => reply,
        Response::Err(refusal) => {
            out.flush()?;
            return Err(Failure::Refused(refusal.message));
        }
    };
    if !json {
        print_human(&mut out, &req, &reply)?;
    }
    out.flush()?;
    if follow {
        loop {
            if reader.buffer().is_empty() && !wait_for_entry(reader.get_ref())? {
                return Err(Failure::StdoutClosed);
            }
            let raw = match read_line(&mut reader, &shown) {
                Ok(raw) => raw,
                Err(_) => {
                    return Err(Failure::Unreachable(format!(
                        "chatd at {shown} went away without saying goodbye (it was killed, or crashed)"
                    )));
                }
            };
            if raw.as_bytes() == FOLLOW_END {
                eprintln!("chatctl: chatd stopped (it shut down cleanly)");
                return Ok(());
            }
            let entry = FollowLine::parse(raw.as_bytes()).map_err(|e| {
                Failure::Unreachable(format!("chatd at {shown} sent a malformed log line: {e}"))
            })?;
            if json {
                out.write_all(raw.as_bytes())?;
            } else {
                print_log_entry(&mut out, &entry.log)?;
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

/// Reads one line (with its newline).
fn read_line(reader: &mut impl BufRead, shown: &str) -> Result<String, Failure> {
    let mut raw = String::new();
    match reader.read_line(&mut raw) {
        Ok(0) => Err(Failure::Unreachable(format!(
            "chatd at {shown} closed the connection without answering"
        ))),
        Ok(_) => Ok(raw),
        Err(e) => Err(Failure::Unreachable(format!(
            "no response from chatd at {shown}: {e}"
        ))),
    }
}

/// What a moderation change did, in one line (None for the requests
/// that show the moderation: `room bans`, `room topic`, `bans`).
fn moderation_done(req: &Request, m: &chatd::core::moderation::Moderation) -> Option<String> {
    use chatd::core::moderation::{List, Rule, Target};
    let p = |s: &str| printable(s);
    let terms = |r: Option<&Rule>| {
        let Some(r) = r else {
            return String::new();
        };
        let mut s = String::new();
        if !r.reason.is_empty() {
            s.push_str(&format!(" ({})", p(&r.reason)));
        }
        s.push_str(&match r.until {
            Some(t) => format!(" until {}", chatd::timefmt::rfc3339(t)),
            None => " for good".to_string(),
        });
        s
    };
    // The rule as the daemon now holds it (its expiry, its reason).
    let held = |list: &[Rule], target: &str| {
        let t = Target::parse(target).ok()?;
        list.iter().find(|r| r.target.same(&t)).cloned()
    };
    Some(match req {
        Request::RoomTopic { room, topic } if topic.is_empty() => {
            format!("cleared the topic of room '{}'", p(room))
        }
        Request::RoomTopic { room, topic } => {
            format!("topic of room '{}' is now: {}", p(room), p(topic))
        }
        Request::RoomBan { room, target, .. } => format!(
            "banned '{}' from room '{}'{}",
            p(target),
            p(room),
            terms(held(m.list(List::Bans), target).as_ref())
        ),
        Request::RoomMute { room, target, .. } => format!(
            "muted '{}' in room '{}'{}",
            p(target),
            p(room),
            terms(held(m.list(List::Mutes), target).as_ref())
        ),
        Request::RoomUnban { room, target } => {
            format!("lifted the ban on '{}' in room '{}'", p(target), p(room))
        }
        Request::RoomUnmute { room, target } => {
            format!("lifted the mute on '{}' in room '{}'", p(target), p(room))
        }
        Request::RoomOp { room, account } => {
            format!("'{}' now operates room '{}'", p(account), p(room))
        }
        Request::RoomDeop { room, account } => {
            format!("'{}' no longer operates room '{}'", p(account), p(room))
        }
        Request::RoomModerated { room, on: true } => format!(
            "room '{}' is moderated: only its operators and voiced members speak",
            p(room)
        ),
        Request::RoomModerated { room, on: false } => {
            format!("room '{}' is no longer moderated", p(room))
        }
        Request::Ban { target, .. } => format!(
            "banned '{}' from every room{}",
            p(target),
            terms(held(&m.bans, target).as_ref())
        ),
        Request::Unban { target } => format!("lifted the server-wide ban on '{}'", p(target)),
        _ => return None,
    })
}

/// A room's moderation (or, `room` None, the server's bans), one fact a
/// line.
fn print_moderation(
    out: &mut impl Write,
    room: Option<&str>,
    m: &chatd::core::moderation::Moderation,
) -> io::Result<()> {
    let rule = |r: &chatd::core::moderation::Rule| {
        let mut s = printable(&r.target.to_string());
        if !r.reason.is_empty() {
            s.push_str(&format!(" ({})", printable(&r.reason)));
        }
        s.push_str(&match r.until {
            Some(t) => format!(" until {}", chatd::timefmt::rfc3339(t)),
            None => " for good".to_string(),
        });
        s.push_str(&format!(", by {}", printable(&r.by)));
        s
    };
    let Some(room) = room else {
        if m.bans.is_empty() {
            return writeln!(out, "no server-wide bans");
        }
        for b in &m.bans {
            writeln!(out, "banned everywhere: {}", rule(b))?;
        }
        return Ok(());
    };
    let room = printable(room);
    match &m.topic {
        Some(t) => writeln!(
            out,
            "room '{room}' topic: {} (set by {} at {})",
            printable(&t.text),
            printable(&t.by),
            chatd::timefmt::rfc3339(t.at)
        )?,
        None => writeln!(out, "room '{room}' has no topic")?,
    }
    if m.moderated {
        writeln!(out, "moderated: only operators and voiced members speak")?;
    }
    if !m.ops.is_empty() {
        let ops: Vec<String> = m.ops.iter().map(|o| printable(o)).collect();
        writeln!(out, "operators: {}", ops.join(", "))?;
    }
    for b in &m.bans {
        writeln!(out, "banned: {}", rule(b))?;
    }
    for b in &m.mutes {
        writeln!(out, "muted: {}", rule(b))?;
    }
    Ok(())
}

fn print_human(out: &mut impl Write, req: &Request, reply: &Reply) -> io::Result<()> {
    match reply {
        // create-room and set-limit both answer with the room.
        Reply::Room { room }
            if matches!(req, Request::RoomAllow { .. } | Request::RoomDeny { .. }) =>
        {
            let allowed: Vec<String> = room.allowed.iter().map(|n| printable(n)).collect();
            writeln!(
                out,
                "private room '{}' allows: {}",
                printable(&room.name),
                if allowed.is_empty() {
                    "nobody by name".to_string()
                } else {
                    allowed.join(", ")
                }
            )
        }
        Reply::Room { room } if matches!(req, Request::CreateRoom { .. }) => writeln!(
            out,
            "created {}room '{}' (limit {}{})",
            if room.private { "private " } else { "" },
            printable(&room.name),
            room.limit,
            if room.history > 0 {
                format!("; keeps its last {} events for joiners", room.history)
            } else {
                String::new()
            }
        ),
        Reply::Room { room } => writeln!(
            out,
            "room '{}' limit is now {} ({} member(s))",
            printable(&room.name),
            room.limit,
            room.members
        ),
        Reply::Rooms { rooms } => {
            if rooms.is_empty() {
                return writeln!(out, "no rooms");
            }
            let rows: Vec<Vec<String>> = rooms
                .iter()
                .enumerate()
                .map(|(i, room)| {
                    vec![
                        (i + 1).to_string(),
                        if room.private {
                            format!("{} (private)", printable(&room.name))
                        } else {
                            printable(&room.name)
                        },
                        format!("{}/{}", room.members, room.limit),
                    ]
                })
                .collect();
            print_table(out, &["#", "ROOM", "MEMBERS"], &rows)
        }
        Reply::Closed { room, disconnected } => writeln!(
            out,
            "closed room '{}'; {disconnected} member(s) disconnected",
            printable(room)
        ),
        Reply::Participants { room, participants } => {
            if participants.is_empty() {
                return writeln!(out, "room '{}' has no participants", printable(room));
            }
            // In cluster mode every member has a node: show where.
            let clustered = participants.iter().any(|m| !m.node.is_empty());
            let rows: Vec<Vec<String>> = participants
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut row = vec![
                        (i + 1).to_string(),
                        printable(&m.username),
                        printable(&m.address),
                        printable(&m.joined_at),
                    ];
                    if clustered {
                        row.push(printable(&m.node));
                    }
                    row
                })
                .collect();
            let mut header = vec!["#", "USERNAME", "ADDRESS", "JOINED"];
            if clustered {
                header.push("NODE");
            }
            print_table(out, &header, &rows)
        }
        Reply::Moderation { room, moderation } => match moderation_done(req, moderation) {
            Some(line) => writeln!(out, "{line}"),
            None => print_moderation(out, room.as_deref(), moderation),
        },
        Reply::Kicked { room, username } => writeln!(
            out,
            "removed '{}' from room '{}'",
            printable(username),
            printable(room)
        ),
        Reply::History { room, history } => {
            if history.is_empty() {
                return writeln!(out, "room '{}' has no kept events", printable(room));
            }
            for e in history {
                writeln!(
                    out,
                    "{} {} > {}",
                    printable(&e.ts),
                    printable(&e.username),
                    printable(&e.message)
                )?;
            }
            Ok(())
        }
        Reply::Purged { room, removed } => writeln!(
            out,
            "removed {removed} event(s) from the history of room '{}'",
            printable(room)
        ),
        Reply::Logs { logs } => {
            for e in logs {
                print_log_entry(out, e)?;
            }
            Ok(())
        }
        Reply::User { user } => match req {
            Request::UserAdd { .. } => {
                writeln!(out, "registered account '{}'", printable(&user.name))
            }
            Request::UserDel { .. } => writeln!(out, "removed account '{}'", printable(&user.name)),
            _ => writeln!(out, "changed the password of '{}'", printable(&user.name)),
        },
        Reply::Users { users } => {
            if users.is_empty() {
                return writeln!(out, "no accounts");
            }
            for u in users {
                writeln!(out, "{}", printable(&u.name))?;
            }
            Ok(())
        }
        Reply::Status { status } => {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(", ")
                }
            };
            let mut rows = vec![
                ("version", status.version.clone()),
                ("pid", status.pid.to_string()),
                ("uptime", human_duration(status.uptime_secs)),
                ("listening", list(&status.listen)),
                ("listening (TLS)", list(&status.tls_listen)),
                ("listening (IRC)", list(&status.irc_listen)),
                ("listening (IRCS)", list(&status.irc_tls_listen)),
                ("listening (web)", list(&status.web_listen)),
                ("listening (web, TLS)", list(&status.web_tls_listen)),
                ("control socket", printable(&status.control)),
                ("state file", printable(&status.state_file)),
                ("clients", status.clients.to_string()),
                ("members", status.members.to_string()),
                ("rooms", status.rooms.to_string()),
            ];
            if let Some(c) = &status.cluster {
                rows.push(("cluster", printable(c)));
            }
            for (k, v) in rows {
                writeln!(out, "{k:<16} {v}")?;
            }
            Ok(())
        }
        Reply::Stats { stats } => {
            let rows = stats.rows();
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                writeln!(out, "{k:<width$}  {v}")?;
            }
            Ok(())
        }
    }
}

fn print_log_entry(out: &mut impl Write, e: &LogEntry) -> io::Result<()> {
    writeln!(
        out,
        "{} {:<5} {}",
        printable(&e.ts),
        e.level.label(),
        printable(&e.message)
    )
}

/// Left-aligned columns separated by two spaces; the last column unpadded.
fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    // Display width, not characters: CJK and emoji take two columns.
    let width = |s: &str| unicode_width::UnicodeWidthStr::width(s);
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                s.push_str(cell);
            } else {
                let pad = widths[i] - width(cell);
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
