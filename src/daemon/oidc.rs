//! OAuth 2.0 / OpenID Connect bearer tokens: a JWT from the identity
//! provider the operator configured is verified with the jsonwebtoken crate
//! against the keys in a JWKS file (the operator keeps it fresh; SIGHUP
//! re-reads it; chatd makes no HTTP request of its own): the signature
//! (RS256, ES256 or EdDSA, by the key the token's `kid` names), the issuer,
//! the audience, the expiry and not-before (60 s of leeway for clocks). The
//! username comes from a configurable claim (`preferred_username` by
//! default). Reasons for refusals never include the token.

use std::path::{Path, PathBuf};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

/// Accepted signature algorithms.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

pub struct Oidc {
    pub issuer: String,
    pub audience: String,
    pub jwks_path: PathBuf,
    pub claim: String,
    keys: JwkSet,
}

impl Oidc {
    pub fn load(issuer: &str, audience: &str, jwks: &Path, claim: &str) -> Result<Oidc, String> {
        Ok(Oidc {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            jwks_path: jwks.to_path_buf(),
            claim: claim.to_string(),
            keys: read_jwks(jwks)?,
        })
    }

    /// Reads the JWKS file again; on error the keys in use stay.
    pub fn reload(&mut self) -> Result<usize, String> {
        self.keys = read_jwks(&self.jwks_path)?;
        Ok(self.keys.keys.len())
    }

    pub fn key_count(&self) -> usize {
        self.keys.keys.len()
    }

    /// The username a valid token names, or why the token is refused.
    pub fn verify(&self, token: &str) -> Result<String, String> {
        let header = decode_header(token).map_err(|_| "the token is not a JWT".to_string())?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!(
                "the token's algorithm {:?} is not accepted (RS256, ES256, EdDSA)",
                header.alg
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| "the token names no key (kid)".to_string())?;
        let jwk = self
            .keys
            .find(&kid)
            .ok_or_else(|| format!("the token's key '{kid}' is not in the JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key '{kid}': {e}"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = 60;
        let data = decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidAudience => "the token is for another audience",
                ErrorKind::InvalidIssuer => "the token is from another issuer",
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey => "the token's signature does not verify",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
                _ => "the token is not valid",
            }
            .to_string()
        })?;
        data.claims
            .get(&self.claim)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the token has no '{}' claim", self.claim))
    }
}

fn read_jwks(path: &Path) -> Result<JwkSet, String> {
    let text = crate::files::read_small_text(path)
        .map_err(|e| format!("oidc: read JWKS {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| format!("oidc: {} is not a JWKS: {e}", path.display()))?;
    if set.keys.is_empty() {
        return Err(format!("oidc: {} holds no keys", path.display()));
    }
    Ok(set)
}
