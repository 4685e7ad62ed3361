//! Trusting a server by its certificate's fingerprint instead of a CA,
//! for a LAN server with a self-signed certificate:
//!
//! - `--tls-pin sha256:HEX`: only a certificate whose SHA-256 (of its
//!   DER, as `openssl x509 -noout -fingerprint -sha256` prints it) is
//!   that one is accepted;
//! - `--tofu`: trust on first use, as ssh does: the first certificate a
//!   `host:port` shows is remembered in a known_hosts file
//!   (`~/.config/chat/known_hosts`, or `--known-hosts`), and later ones
//!   must match it; a changed certificate is refused with a loud warning
//!   that says which line to delete if the change is expected.
//!
//! The fingerprint stands in for the CA and the name check; the
//! handshake's signatures are still verified with the certificate's key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::lang::{Text, tf};

/// What a certificate must be.
#[derive(Debug, Clone)]
pub enum Trust {
    /// One of these SHA-256 fingerprints.
    Pin(Vec<[u8; 32]>),
    /// The one remembered for `host` (`host:port`) in `file`; the first
    /// one seen when there is none yet.
    FirstUse { file: PathBuf, host: String },
}

/// A certificate's SHA-256 fingerprint.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// `ab01…` (lower-case hex, no separators).
pub fn hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:AB:01:…` or `sha256:ab01…` (any case, colons optional).
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let hexits: String = text
        .trim()
        .strip_prefix("sha256:")
        .or_else(|| text.trim().strip_prefix("SHA256:"))
        .ok_or_else(|| format!("--tls-pin {text}: write it as sha256:HEX"))?
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hexits.len() != 64 || !hexits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "--tls-pin {text}: a SHA-256 fingerprint is 64 hex digits (openssl x509 -noout -fingerprint -sha256 -in cert.pem)"
        ));
    }
    let mut fp = [0u8; 32];
    for (i, byte) in fp.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hexits[2 * i..2 * i + 2], 16).expect("hex checked");
    }
    Ok(fp)
}

/// The known_hosts file when none is given: `$XDG_CONFIG_HOME/chat/`,
/// else `~/.config/chat/`.
pub fn default_known_hosts() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("chat").join("known_hosts"))
}

/// The fingerprint remembered for `host` in `file`'s text: lines `host
/// sha256:HEX`; `#` starts a comment.
pub fn remembered(text: &str, host: &str) -> Option<[u8; 32]> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(h, _)| *h == host)
        .and_then(|(_, fp)| parse_pin(fp.trim()).ok())
}

/// Adds `host`'s fingerprint to `file` (made, with its directory,
/// readable by its owner only).
fn remember(file: &Path, host: &str, fp: &[u8; 32]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    writeln!(f, "{host} sha256:{}", hex(fp))
}

/// What `trust` says of a certificate with fingerprint `fp`: `Ok` (a
/// note when it was just remembered), or why it is refused.
pub fn check(trust: &Trust, fp: &[u8; 32]) -> Result<Option<String>, String> {
    match trust {
        Trust::Pin(pins) if pins.contains(fp) => Ok(None),
        Trust::Pin(_) => Err(format!(
            "the server's certificate is not the pinned one (it is sha256:{}); check --tls-pin",
            hex(fp)
        )),
        Trust::FirstUse { file, host } => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(format!("{}: {e}", file.display())),
            };
            match remembered(&text, host) {
                Some(known) if known == *fp => Ok(None),
                Some(known) => Err(tf(
                    Text::PinChanged,
                    &[&file.display().to_string(), host, &hex(&known), &hex(fp)],
                )),
                None => {
                    remember(file, host, fp).map_err(|e| format!("{}: {e}", file.display()))?;
                    Ok(Some(tf(Text::PinLearned, &[host, &hex(fp)])))
                }
            }
        }
    }
}

/// What the verifier learned (a first use), for the client to show where
/// the person looks: the verifier runs inside rustls, which has no screen.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The notes since the last call.
pub fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// rustls's verifier for [`Trust`].
#[derive(Debug)]
pub struct PinVerifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    pub fn new(trust: Trust, provider: Arc<CryptoProvider>) -> PinVerifier {
        PinVerifier { trust, provider }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match check(&self.trust, &fingerprint(end_entity)) {
            Ok(learned) => {
                if let Some(note) = learned {
                    NOTES.lock().unwrap_or_else(|e| e.into_inner()).push(note);
                }
                Ok(ServerCertVerified::assertion())
            }
            Err(why) => Err(rustls::Error::General(why)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_as_openssl_prints_them() {
        let fp = fingerprint(b"cert");
        let openssl: String = hex(&fp)
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_pin(&format!("sha256:{openssl}")), Ok(fp));
        assert_eq!(parse_pin(&format!("sha256:{}", hex(&fp))), Ok(fp));
        assert!(parse_pin(&hex(&fp)).is_err(), "the prefix says the hash");
        assert!(parse_pin("sha256:abcd").is_err());
    }

    #[test]
    fn first_use_remembers_then_holds_to_it() {
        let dir = std::env::temp_dir().join(format!("chat-pin-{}", std::process::id()));
        let file = dir.join("sub").join("known_hosts");
        let _ = std::fs::remove_dir_all(&dir);
        let trust = Trust::FirstUse {
            file: file.clone(),
            host: "lan:1235".into(),
        };
        let (a, b) = (fingerprint(b"one"), fingerprint(b"two"));
        assert!(check(&trust, &a).unwrap().is_some(), "learned");
        assert_eq!(check(&trust, &a), Ok(None), "known");
        let changed = check(&trust, &b).unwrap_err();
        assert!(changed.contains(&hex(&a)) && changed.contains(&hex(&b)));
        assert!(changed.contains(&file.display().to_string()), "{changed}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = Trust::FirstUse {
            file: file.clone(),
            host: "lan:9999".into(),
        };
        assert!(
            check(&other, &b).unwrap().is_some(),
            "another port, another entry"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
        let pinned = Trust::Pin(vec![a]);
        assert_eq!(check(&pinned, &a), Ok(None));
        assert!(check(&pinned, &b).is_err());
    }
}
