//! Registry credentials as the Engine API carries them (`X-Registry-Auth`, `POST /auth`), the
//! registry client built for one request, and the login check.

use super::Images;
use crate::error::{Error, Result};
use base64::Engine as _;
use berth_distribution::{ClientOptions, Credentials, RegistryClient};
use berth_image::manifest::Platform;
use berth_image::Reference;
use serde::Deserialize;
use std::collections::HashMap;

/// Docker's `AuthConfig`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `user:password`, what credential files hold.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub serveraddress: String,
    #[serde(default)]
    pub identitytoken: String,
    #[serde(default)]
    pub email: String,
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` header: base64url JSON (padded or not; some clients send
    /// standard base64). An undecodable header counts as none, as dockerd treats it.
    pub fn from_header(value: &str) -> Option<AuthConfig> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let engines = [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let raw = engines.iter().find_map(|e| e.decode(value).ok())?;
        serde_json::from_slice(&raw).ok()
    }

    /// Username and password, from the fields or from `auth`.
    pub fn credentials(&self) -> Option<Credentials> {
        if !self.username.is_empty() {
            return Some(Credentials {
                username: self.username.clone(),
                password: self.password.clone(),
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        (!u.is_empty()).then(|| Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

/// `host[:port]` of a registry address as users write it: `https://index.docker.io/v1/`,
/// `http://127.0.0.1:5000`, `registry.example.com/`.
pub fn registry_host(address: &str) -> String {
    let a = address.trim();
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = a.split('/').next().unwrap_or_default();
    match host {
        ""
        | "index.docker.io"
        | "registry-1.docker.io"
        | "docker.io"
        | "registry.hub.docker.com" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

impl Images {
    /// A client for one operation against `domain`, with the daemon's insecure registries and
    /// the caller's credentials (never shared between requests, so tokens are not either).
    pub(crate) fn client_for(
        &self,
        domain: &str,
        auth: Option<&AuthConfig>,
        platform: Option<Platform>,
    ) -> Result<RegistryClient> {
        let mut credentials = HashMap::new();
        if let Some(c) = auth.and_then(AuthConfig::credentials) {
            credentials.insert(domain.to_string(), c);
        }
        let mut insecure: Vec<String> = self
            .insecure_registries
            .iter()
            .map(|r| registry_host(r))
            .collect();
        for m in &self.registry_mirrors {
            if m.starts_with("http://") {
                insecure.push(registry_host(m));
            }
        }
        let mut opts = ClientOptions {
            insecure_registries: insecure,
            credentials,
            ..Default::default()
        };
        if let Some(p) = platform {
            opts.platform = p;
        }
        RegistryClient::new(opts).map_err(|e| Error::internal("registry client", e))
    }

    /// `POST /auth`: checks the credentials against the registry. The distribution client has
    /// no bare `/v2/` call, so a manifest GET in the user's own namespace stands in for it:
    /// it forces the auth exchange (Basic, or a Bearer token for that scope), and "manifest
    /// unknown" afterwards means the credentials were accepted.
    pub async fn login(&self, auth: &AuthConfig) -> Result<String> {
        let creds = auth
            .credentials()
            .ok_or_else(|| Error::invalid("username is required"))?;
        let domain = registry_host(&auth.serveraddress);
        let user_path: String = creds
            .username
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let user_path = if user_path.is_empty() {
            "library".to_string()
        } else {
            user_path
        };
        let probe =
            Reference::parse_normalized(&format!("{domain}/{user_path}/berth-login-check:latest"))
                .map_err(|e| {
                    Error::invalid(format!(
                        "invalid registry address {:?}: {e}",
                        auth.serveraddress
                    ))
                })?;
        let client = self.client_for(&domain, Some(auth), None)?;
        match client.fetch_manifest(&probe, "latest").await {
            Ok(_) => Ok("Login Succeeded".into()),
            Err(berth_distribution::Error::ManifestUnknown(_)) => Ok("Login Succeeded".into()),
            Err(berth_distribution::Error::Status { status: 404, .. }) => {
                Ok("Login Succeeded".into())
            }
            Err(berth_distribution::Error::Unauthorized { reason, .. }) => {
                Err(Error::Unauthorized(format!(
                    "login attempt to {domain} failed: unauthorized: {reason}"
                )))
            }
            Err(berth_distribution::Error::Status {
                status: 401, body, ..
            }) => Err(Error::Unauthorized(format!(
                "login attempt to {domain} failed: unauthorized: {body}"
            ))),
            Err(e) => Err(Error::Internal(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_hosts() {
        let raw = r#"{"username":"u","password":"p","serveraddress":"127.0.0.1:5000"}"#;
        let h = base64::engine::general_purpose::URL_SAFE.encode(raw);
        let a = AuthConfig::from_header(&h).unwrap();
        assert_eq!(a.credentials().unwrap().username, "u");
        assert!(AuthConfig::from_header("e30=")
            .unwrap()
            .credentials()
            .is_none());
        assert!(AuthConfig::from_header("!!").is_none());
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        let a = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("me:secret"),
            ..Default::default()
        };
        assert_eq!(a.credentials().unwrap().password, "secret");
    }
}
