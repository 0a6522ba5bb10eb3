//! Access control with JSON Web Tokens: a WebSocket upgrade carries a token (the `token` query
//! parameter, since browsers cannot set headers on a WebSocket, or `Authorization: Bearer`),
//! and its claims become the socket's [`Admission`]: the documents it may touch (`docs`), how
//! far (`access`), who it may join as (`sub`), and until when (`exp`).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tandem_core::{Access, DocumentId, Grant};
use tandem_net_ws::{Admission, Identity};

/// Why the JWT settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The public key file could not be read.
    #[error("cannot read JWT public key {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an RSA, EC (P-256) or Ed25519 public key in PEM.
    #[error("{0} is not an RSA, EC (P-256) or Ed25519 public key in PEM")]
    Key(std::path::PathBuf),
}

/// Token checks: every key configured, each with the algorithms it signs with.
pub(crate) struct JwtAuth {
    keys: Vec<(DecodingKey, Validation)>,
}

/// The claims tandem reads.
#[derive(Debug, Deserialize)]
struct Claims {
    exp: u64,
    docs: Vec<String>,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

fn validation(algorithms: &[Algorithm]) -> Validation {
    let mut validation = Validation::new(algorithms[0]);
    validation.algorithms = algorithms.to_vec();
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    validation
}

impl JwtAuth {
    /// The checks for an HS256 `secret` and/or a PEM public key file; `None` if neither is set.
    pub(crate) fn new(
        secret: Option<&str>,
        public_key: Option<&Path>,
    ) -> Result<Option<JwtAuth>, AuthSetupError> {
        let mut keys = Vec::new();
        if let Some(secret) = secret {
            keys.push((
                DecodingKey::from_secret(secret.as_bytes()),
                validation(&[Algorithm::HS256]),
            ));
        }
        if let Some(path) = public_key {
            let pem = std::fs::read(path).map_err(|source| AuthSetupError::Read {
                path: path.to_owned(),
                source,
            })?;
            let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (key, validation(&[Algorithm::RS256]))
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (key, validation(&[Algorithm::ES256]))
            } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
                (key, validation(&[Algorithm::EdDSA]))
            } else {
                return Err(AuthSetupError::Key(path.to_owned()));
            };
            keys.push(key);
        }
        Ok((!keys.is_empty()).then_some(JwtAuth { keys }))
    }

    /// What a token admits its socket to, or why it admits nothing.
    pub(crate) fn admit(&self, token: &str) -> Result<Admission, String> {
        let mut why = String::from("no key configured");
        for (key, validation) in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => return admission(data.claims),
                Err(error) => why = error.to_string(),
            }
        }
        Err(format!("token refused: {why}"))
    }
}

fn admission(claims: Claims) -> Result<Admission, String> {
    let documents = if claims.docs.iter().any(|d| d == "*") {
        None
    } else {
        let mut documents = std::collections::BTreeSet::new();
        for doc in &claims.docs {
            let id = doc.strip_prefix("automerge:").unwrap_or(doc);
            // A URL may carry heads after `#`: the document is the part before.
            let id = id.split('#').next().unwrap_or(id);
            let id: DocumentId = id
                .parse()
                .map_err(|_| format!("token names a document that is not one: {doc}"))?;
            documents.insert(id);
        }
        Some(documents)
    };
    let access = match claims.access.as_deref() {
        None | Some("write") => Access::ReadWrite,
        Some("read") => Access::ReadOnly,
        Some(other) => return Err(format!("token asks for unknown access {other:?}")),
    };
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let left = Duration::from_secs(claims.exp.saturating_sub(unix_now));
    Ok(Admission {
        identity: claims.sub.clone().map(Identity::Subject),
        grant: Grant {
            documents,
            access,
            sender_bound: claims.sub.is_some(),
            cluster_node: false,
        },
        expires_at: Some(Instant::now() + left),
    })
}

/// The token of an upgrade request: the `token` query parameter, or `Authorization: Bearer`.
pub(crate) fn token<'a>(query: Option<&'a str>, authorization: Option<&'a str>) -> Option<&'a str> {
    let from_query = query.and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .filter(|token| !token.is_empty())
    });
    from_query.or_else(|| {
        authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
    })
}
