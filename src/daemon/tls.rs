//! The server side of TLS (rustls): loading the certificate chain and key
//! from PEM files into a server configuration, TLS 1.2 and 1.3 only. The
//! configuration is shared (`Arc`) by every connection that starts with it;
//! a reload (SIGHUP) builds a new one for the connections that come after,
//! and leaves the open ones on theirs. Errors name the file and say what is
//! wrong with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the certificate and key are, and the configuration built from
/// them.
pub struct TlsSetup {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub config: Arc<ServerConfig>,
}

impl TlsSetup {
    /// Loads the certificate and key, or says why not.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsSetup, String> {
        Ok(TlsSetup {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            config: server_config(cert, key)?,
        })
    }

    /// Reads the files again; on error the current configuration stays.
    pub fn reload(&mut self) -> Result<(), String> {
        self.config = server_config(&self.cert, &self.key)?;
        Ok(())
    }
}

/// A rustls server configuration from a PEM certificate chain (the server's
/// certificate first) and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let cert_pem = crate::files::read_small(cert)
        .map_err(|e| format!("tls: read certificate {}: {e}", cert.display()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls: certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls: certificate {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key_pem = crate::files::read_small(key)
        .map_err(|e| format!("tls: private key {}: {e}", key.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("tls: private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "tls: certificate {} and key {} do not go together: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}
