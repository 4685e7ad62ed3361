//! Socket set-up: the TCP listeners and the Unix control socket. Everything
//! returned here is non-blocking and close-on-exec. Errors carry the address
//! or path they concern.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, sockopt,
};
use nix::sys::stat::{Mode, umask};

/// Binds a TCP listener. IPv6 sockets are v6-only, so `--listen 0.0.0.0:P`
/// and `--listen [::]:P` can be given together.
/// A non-blocking, close-on-exec TCP socket of `addr`'s family.
pub fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    Ok(socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

pub fn listen_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let fd = tcp_socket(&addr)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    socket::listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
    Ok(TcpListener::from(fd))
}

/// sizeof(sockaddr_un.sun_path), the terminating NUL included.
const SUN_PATH_MAX: usize = 108;

/// The control socket, removed from the file system when dropped (if the
/// path still names this very socket).
pub struct ControlSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
    identity: (u64, u64),
    /// Set when a stale socket file from a dead daemon was replaced.
    pub replaced_stale: bool,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates the control socket at `path` with mode 0660.
///
/// Before binding it connects to whatever is at `path`: a live daemon there
/// is an error ("already running"); a socket nobody listens on is stale and
/// is unlinked; any other kind of file is left alone and is an error. The
/// bind happens under umask 0117, so the socket never exists with looser
/// permissions. A missing parent directory is created with mode 0700.
pub fn bind_control(path: &Path) -> Result<ControlSocket, String> {
    let shown = path.display();
    // Checked before anything is created, so a path that cannot work
    // leaves no directory behind.
    let max = SUN_PATH_MAX - 1;
    if path.as_os_str().len() > max {
        return Err(format!(
            "control: {shown} is {} bytes long; a Unix socket path holds at most {max}",
            path.as_os_str().len()
        ));
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("control: create directory {}: {e}", parent.display()))?;
    }
    let mut replaced_stale = false;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(format!(
                    "control: another chatd is already running on {shown} (stop it, or use --control with another path)"
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path)
                    .map_err(|e| format!("control: remove stale socket {shown}: {e}"))?;
                replaced_stale = true;
            }
            Err(e) => return Err(format!("control: probe existing socket {shown}: {e}")),
        },
        Ok(_) => {
            return Err(format!(
                "control: {shown} exists and is not a socket; refusing to replace it"
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("control: stat {shown}: {e}")),
    }

    // umask is process-wide; chatd is single-threaded, so nothing else can
    // create a file while it is tightened.
    let old = umask(Mode::from_bits_truncate(0o117));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| format!("control: bind {shown}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control: {shown}: {e}"))?;
    let meta = fs::symlink_metadata(path).map_err(|e| format!("control: stat {shown}: {e}"))?;
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
        replaced_stale,
    })
}

/// The uid and pid of the process at the other end of a Unix socket.
pub fn peer_credentials(stream: &UnixStream) -> Option<(u32, i32)> {
    socket::getsockopt(stream, sockopt::PeerCredentials)
        .ok()
        .map(|c| (c.uid(), c.pid()))
}

/// The kernel's send buffer asked for each chat connection (Linux
/// reports and uses twice this). Left alone, Linux autotunes it up to
/// `tcp_wmem`'s maximum (4 MiB by default): a room whose readers lag
/// then holds megabytes of kernel memory per member, cold by the time
/// it is written, and every copy into it runs at memory speed. Fixed at
/// 1 MiB, 1x100x500 spent about a fifth less CPU per delivery and
/// 1x100x100 no more (BENCHMARKS.md, "Room rings"); what does not fit
/// waits in the room's ring, one copy for every member.
pub const SEND_BUFFER: usize = 1 << 20;

/// [`SEND_BUFFER`] for one chat connection.
pub fn set_send_buffer(stream: &std::net::TcpStream) -> nix::Result<()> {
    nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER)
}

/// Liveness for one chat connection: TCP keepalive after `idle` of
/// silence, 3 probes a third of `idle` apart, and TCP_USER_TIMEOUT of
/// twice `idle`, so a peer that vanished without a FIN (power cut, a
/// dropped Wi-Fi, a NAT that forgot it) is gone within 2 × `idle` whether
/// the room is quiet (keepalive) or busy (unacknowledged data).
pub fn set_liveness(stream: &std::net::TcpStream, idle: std::time::Duration) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let idle_s = idle.as_secs().clamp(1, 86_400) as u32;
    let interval = (idle_s / 3).max(1);
    setsockopt(stream, sockopt::KeepAlive, &true)?;
    setsockopt(stream, sockopt::TcpKeepIdle, &idle_s)?;
    setsockopt(stream, sockopt::TcpKeepInterval, &interval)?;
    setsockopt(stream, sockopt::TcpKeepCount, &3)?;
    setsockopt(stream, sockopt::TcpUserTimeout, &(idle_s * 2 * 1000))?;
    Ok(())
}
