//! Who may do what: anonymous, Basic against htpasswd, or Bearer tokens from the built-in
//! token endpoint; per-repository rules decide the actions.

pub mod htpasswd;
pub mod policy;
pub mod token;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use crate::config::{AuthConfig, AuthMode};
use crate::error::{ApiError, ErrorCode};
use crate::names::valid_repository;
pub use policy::Action;
use policy::Policy;
use token::{AccessEntry, Claims, TokenSigner};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Htpasswd(#[from] htpasswd::HtpasswdError),
    #[error("token key: {0}")]
    Key(std::io::Error),
}

/// What a request needs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// `/v2/`: any valid credentials.
    Base,
    Catalog,
    Repo(&'a str, Action),
}

/// What a request was granted, kept so a handler can check a second repository (mount).
#[derive(Debug, Clone)]
pub enum Grant {
    Everything,
    User(Option<String>),
    Token(Claims),
}

pub struct Auth {
    mode: AuthMode,
    policy: Policy,
    htpasswd: Option<htpasswd::Htpasswd>,
    signer: Option<TokenSigner>,
    realm: Option<String>,
    ttl: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Host header value, kept only if it looks like a host so it can go into a challenge.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost")
        .to_string()
}

/// Parses `type:name:actions` (the name may itself contain colons in other registries' types,
/// so split at the first and last colon).
fn parse_scope(s: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        kind,
        name,
        actions.split(',').filter(|a| !a.is_empty()).collect(),
    ))
}

impl Auth {
    pub fn from_config(cfg: &AuthConfig, root: &Path) -> Result<Auth, AuthError> {
        let htpasswd = match &cfg.htpasswd {
            Some(p) => Some(htpasswd::Htpasswd::load(p)?),
            None => None,
        };
        let signer = if cfg.mode == AuthMode::Token {
            let key = match &cfg.token_secret {
                Some(s) => s.as_bytes().to_vec(),
                None => load_or_create_key(root).map_err(AuthError::Key)?,
            };
            Some(TokenSigner::new(
                key,
                cfg.issuer.clone(),
                cfg.service.clone(),
            ))
        } else {
            None
        };
        Ok(Auth {
            mode: cfg.mode,
            policy: Policy::new(cfg.access.clone()),
            htpasswd,
            signer,
            realm: cfg.realm.clone(),
            ttl: cfg.token_ttl_secs.max(1),
        })
    }

    pub fn anonymous() -> Auth {
        Auth {
            mode: AuthMode::None,
            policy: Policy::default(),
            htpasswd: None,
            signer: None,
            realm: None,
            ttl: 300,
        }
    }

    async fn basic_user(&self, headers: &HeaderMap) -> Result<Option<String>, ()> {
        match basic_credentials(headers) {
            None => Ok(None),
            Some((u, p)) => match &self.htpasswd {
                Some(h) if h.verify(&u, &p).await => Ok(Some(u)),
                _ => Err(()),
            },
        }
    }

    fn basic_challenge(&self) -> ApiError {
        let realm = self.realm.as_deref().unwrap_or("berth-registry");
        ApiError::new(ErrorCode::Unauthorized).header(
            header::WWW_AUTHENTICATE,
            &format!("Basic realm=\"{realm}\""),
        )
    }

    fn bearer_challenge(
        &self,
        headers: &HeaderMap,
        tls: bool,
        need: Need<'_>,
        error: Option<&str>,
    ) -> ApiError {
        let realm = self.realm.clone().unwrap_or_else(|| {
            let scheme = if tls { "https" } else { "http" };
            format!("{scheme}://{}/token", request_host(headers))
        });
        let service = self
            .signer
            .as_ref()
            .map(|s| s.service.as_str())
            .unwrap_or("");
        let mut value = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
        match need {
            Need::Base => {}
            Need::Catalog => value.push_str(",scope=\"registry:catalog:*\""),
            Need::Repo(repo, action) => {
                let actions = match action {
                    Action::Pull => "pull",
                    Action::Push => "pull,push",
                    Action::Delete => "delete",
                };
                value.push_str(&format!(",scope=\"repository:{repo}:{actions}\""));
            }
        }
        if let Some(e) = error {
            value.push_str(&format!(",error=\"{e}\""));
        }
        ApiError::new(ErrorCode::Unauthorized).header(header::WWW_AUTHENTICATE, &value)
    }

    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        need: Need<'_>,
        tls: bool,
    ) -> Result<Grant, ApiError> {
        match self.mode {
            AuthMode::None => Ok(Grant::Everything),
            AuthMode::Htpasswd => {
                let user = self
                    .basic_user(headers)
                    .await
                    .map_err(|_| self.basic_challenge())?;
                let grant = Grant::User(user.clone());
                let ok = match need {
                    Need::Base => user.is_some(),
                    Need::Catalog => self.policy.catalog_allowed(user.as_deref()),
                    Need::Repo(repo, action) => self.allows(&grant, repo, action),
                };
                match (ok, user) {
                    (true, _) => Ok(grant),
                    (false, None) => Err(self.basic_challenge()),
                    (false, Some(_)) => Err(ApiError::new(ErrorCode::Denied)),
                }
            }
            AuthMode::Token => {
                let Some(signer) = &self.signer else {
                    return Err(ApiError::internal("token mode without a signer"));
                };
                let Some(raw) = bearer_token(headers) else {
                    return Err(self.bearer_challenge(headers, tls, need, None));
                };
                let claims = signer.verify(raw, now_secs()).map_err(|_| {
                    self.bearer_challenge(headers, tls, need, Some("invalid_token"))
                })?;
                let grant = Grant::Token(claims);
                let ok = match need {
                    Need::Base => true,
                    Need::Catalog => self.token_has(&grant, "registry", "catalog", "*"),
                    Need::Repo(repo, action) => self.allows(&grant, repo, action),
                };
                if ok {
                    Ok(grant)
                } else {
                    Err(self.bearer_challenge(headers, tls, need, Some("insufficient_scope")))
                }
            }
        }
    }

    fn token_has(&self, grant: &Grant, kind: &str, name: &str, action: &str) -> bool {
        match grant {
            Grant::Token(c) => c.access.iter().any(|e| {
                e.kind == kind
                    && e.name == name
                    && e.actions.iter().any(|a| a == action || a == "*")
            }),
            _ => false,
        }
    }

    pub fn allows(&self, grant: &Grant, repo: &str, action: Action) -> bool {
        match grant {
            Grant::Everything => true,
            Grant::User(u) => self.policy.allowed(u.as_deref(), repo).contains(&action),
            Grant::Token(_) => self.token_has(grant, "repository", repo, action.as_str()),
        }
    }

    /// `GET /token`: Docker's token endpoint. Credentials are optional (anonymous pulls);
    /// the granted actions are the requested ones the policy allows.
    pub async fn token_endpoint(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Response {
        let Some(signer) = &self.signer else {
            return ApiError::new(ErrorCode::Unsupported)
                .status(StatusCode::NOT_FOUND)
                .message("token authentication is not enabled")
                .into_response();
        };
        let user = match self.basic_user(headers).await {
            Ok(u) => u,
            Err(()) => {
                return ApiError::new(ErrorCode::Unauthorized)
                    .message("incorrect username or password")
                    .into_response()
            }
        };
        if let Some((_, service)) = query.iter().find(|(k, _)| k == "service") {
            if *service != signer.service {
                return ApiError::new(ErrorCode::Denied)
                    .message("token requested for another service")
                    .into_response();
            }
        }
        let mut access = Vec::new();
        for (_, value) in query.iter().filter(|(k, _)| k == "scope") {
            for scope in value.split(' ') {
                let Some((kind, name, actions)) = parse_scope(scope) else {
                    continue;
                };
                let granted: Vec<String> = match kind {
                    "repository" if valid_repository(name) => {
                        let allowed = self.policy.allowed(user.as_deref(), name);
                        actions
                            .iter()
                            .filter_map(|a| Action::parse(a))
                            .filter(|a| allowed.contains(a))
                            .map(|a| a.as_str().to_string())
                            .collect()
                    }
                    "registry" if name == "catalog" => {
                        if self.policy.catalog_allowed(user.as_deref()) {
                            vec!["*".to_string()]
                        } else {
                            Vec::new()
                        }
                    }
                    _ => Vec::new(),
                };
                access.push(AccessEntry {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    actions: granted,
                });
            }
        }
        let now = now_secs();
        let claims = Claims {
            iss: signer.issuer.clone(),
            sub: user.unwrap_or_default(),
            aud: signer.service.clone(),
            exp: now.saturating_add(self.ttl),
            nbf: now.saturating_sub(1),
            iat: now,
            jti: crate::storage::fs::random_hex(12),
            access,
        };
        let token = signer.sign(&claims);
        axum::Json(json!({
            "token": token,
            "access_token": token,
            "expires_in": self.ttl,
        }))
        .into_response()
    }
}

fn load_or_create_key(root: &Path) -> std::io::Result<Vec<u8>> {
    let path = root.join("token.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(root)?;
    let key = crate::storage::fs::random_hex(32).into_bytes();
    crate::storage::fs::atomic_write(&path, &key)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        assert_eq!(
            parse_scope("repository:a/b:pull,push"),
            Some(("repository", "a/b", vec!["pull", "push"]))
        );
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Some(("registry", "catalog", vec!["*"]))
        );
        assert_eq!(parse_scope("nonsense"), None);
    }
}
