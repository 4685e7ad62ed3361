//! The client's connection: a plain TCP stream, or TLS (rustls) over it,
//! verifying the server: the system's root certificates by default, or
//! only the CA given with `--ca`. There is deliberately no way to skip
//! verification. Non-blocking, one socket system call per step.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::sys::nonblock::{ReadOutcome, interrupted, read_some, would_block, write_some};

pub enum Transport {
    Plain(TcpStream),
    Tls(TcpStream, Box<ClientConnection>),
}

/// What one read brought.
#[derive(Debug)]
pub enum Incoming {
    Data(Vec<u8>),
    Nothing,
    Closed,
    /// TLS failed: the handshake (the certificate, above all) or a record.
    TlsFailed(String),
}

/// The trust anchors for `chat --tls`: only `ca` when given, else the
/// system's roots.
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--ca {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "--ca {}: no usable certificate in it",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no system root certificates found (install ca-certificates, or give --ca)"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// A TLS client configuration (TLS 1.2 and 1.3) trusting `roots`.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS client configuration (TLS 1.2 and 1.3) that trusts a
/// certificate by its fingerprint ([`super::pin`]) instead of a CA.
pub fn pinned_config(trust: super::pin::Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = super::pin::PinVerifier::new(trust, Arc::clone(&provider));
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TCP connection to `addr` begun without waiting: the socket is
/// non-blocking and the handshake goes on in the kernel. A write before
/// it is done would block (EAGAIN), and a refused or unreachable peer
/// makes the next write or read fail, so the caller's select(2) loop
/// never stalls on an unreachable server.
pub fn connect_nonblocking(addr: std::net::SocketAddr) -> io::Result<TcpStream> {
    use nix::errno::Errno;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, connect, socket};
    use std::os::fd::AsRawFd;
    let family = match addr {
        std::net::SocketAddr::V4(_) => AddressFamily::Inet,
        std::net::SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None).map_err(io::Error::from)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The name the server's certificate must carry: the host part of
/// `--server` (a DNS name or an IP address).
pub fn server_name(server: &str) -> Result<ServerName<'static>, String> {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("--server {server}: '{host}' is not a name TLS can verify: {e}"))
}

impl Transport {
    pub fn tls(
        stream: TcpStream,
        config: &Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Transport> {
        let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
        Ok(Transport::Tls(stream, Box::new(conn)))
    }

    pub fn stream(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) | Transport::Tls(s, _) => s,
        }
    }

    /// Whether there are bytes for the socket (queued by us or by TLS).
    pub fn wants_write(&self, out: &[u8]) -> bool {
        match self {
            Transport::Plain(_) => !out.is_empty(),
            Transport::Tls(_, c) => !out.is_empty() || c.wants_write(),
        }
    }

    /// Hands `out` to the connection (for TLS, as much as rustls's buffer
    /// limit takes; for plain, as much as the socket takes) and writes
    /// once. What is not taken stays in `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Transport::Plain(s) => {
                let n = write_some(s, out)?;
                out.drain(..n);
            }
            Transport::Tls(s, c) => {
                if !out.is_empty() {
                    let n = c.writer().write(out)?;
                    out.drain(..n);
                }
                if c.wants_write() {
                    match c.write_tls(s) {
                        Ok(_) => {}
                        Err(e) if would_block(&e) || interrupted(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// One read from the socket, decrypted when TLS.
    pub fn read(&mut self) -> io::Result<Incoming> {
        let mut buf = vec![0u8; 16 * 1024];
        match self {
            Transport::Plain(s) => Ok(match read_some(s, &mut buf)? {
                ReadOutcome::Data(n) => {
                    buf.truncate(n);
                    Incoming::Data(buf)
                }
                ReadOutcome::Eof => Incoming::Closed,
                ReadOutcome::WouldBlock => Incoming::Nothing,
            }),
            Transport::Tls(s, c) => {
                let eof = match c.read_tls(s) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) if would_block(&e) || interrupted(&e) => false,
                    Err(e) => return Err(e),
                };
                let state = match c.process_new_packets() {
                    Ok(state) => state,
                    Err(e) => {
                        // Send the alert that says why, if the socket takes it.
                        let _ = c.write_tls(s);
                        return Ok(Incoming::TlsFailed(describe(&e)));
                    }
                };
                let mut data = Vec::new();
                loop {
                    match c.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                        Err(_) => break,
                    }
                }
                if !data.is_empty() {
                    return Ok(Incoming::Data(data));
                }
                if eof || state.peer_has_closed() {
                    return Ok(Incoming::Closed);
                }
                Ok(Incoming::Nothing)
            }
        }
    }

    /// Ends our sending side: close_notify (TLS), then FIN.
    pub fn shutdown_write(&mut self) {
        if let Transport::Tls(s, c) = self {
            c.send_close_notify();
            let _ = c.write_tls(s);
        }
        let _ = self.stream().shutdown(Shutdown::Write);
    }
}

/// A TLS failure in words a user can act on.
fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let what = match c {
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_string(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "it is not valid for the name in --server".to_string()
                }
                C::UnknownIssuer | C::BadSignature => {
                    "it is not signed by a trusted CA (for a private CA, give --ca; for a self-signed one, --tls-pin or --tofu)".to_string()
                }
                C::Revoked => "it has been revoked".to_string(),
                other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                    "it is a CA certificate used as the server's own (a self-signed `openssl req -x509` one); trust it by its fingerprint with --tls-pin sha256:… or --tofu, or give chatd a certificate signed by a CA and chat that CA with --ca".to_string()
                }
                other => format!("{other:?}"),
            };
            if format!("{c:?}").contains("CaUsedAsEndEntity") {
                // rustls's own words add nothing here.
                return format!("the server's certificate was refused: {what}");
            }
            format!("the server's certificate was refused: {what} ({e})")
        }
        // What a plaintext port answers (a JSON line) is no TLS record.
        rustls::Error::InvalidMessage(_) => format!(
            "the server does not speak TLS there: this looks like the plaintext port (drop --tls, or give the TLS port) ({e})"
        ),
        // Our own verifier's words (a pin that does not match).
        rustls::Error::General(why) => why.clone(),
        other => other.to_string(),
    }
}
