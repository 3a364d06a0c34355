//! Registry credentials where the docker CLI keeps them: `config.json` in `$DOCKER_CONFIG` (or
//! `~/.docker`), with `auths` entries, a default `credsStore` and per-registry `credHelpers`,
//! the latter two run as `docker-credential-<name> get` (the docker-credential-helpers
//! protocol: server address on stdin, `{"Username","Secret"}` JSON on stdout).
//!
//! Lookups are synchronous and may run a helper process: call them from a blocking context.

use crate::auth::Credentials;
use crate::client::ClientOptions;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The address Docker Hub credentials are filed under.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// What helpers answer (on stdout, exit status 1) for a server they hold nothing for.
const NOT_FOUND: &str = "credentials not found in native keychain";
/// The user name a helper or `auths` entry gives with an identity (refresh) token.
const TOKEN_USER: &str = "<token>";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {}: {source}", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: auths entry {server:?}: {reason}", .path.display())]
    BadEntry {
        path: PathBuf,
        server: String,
        reason: String,
    },
    #[error("invalid credential helper name {0:?}")]
    BadHelperName(String),
    #[error("credential helper docker-credential-{helper} (for {server}) is not installed: not found in PATH")]
    HelperMissing { helper: String, server: String },
    #[error("credential helper docker-credential-{helper} failed for {server}: {message}")]
    HelperFailed {
        helper: String,
        server: String,
        message: String,
    },
}

/// Credentials found for one registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredAuth {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token server for access.
    pub identity_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FileAuth {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, FileAuth>,
    #[serde(default, rename = "credsStore")]
    creds_store: String,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

/// A docker CLI configuration (only its credential parts).
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The host part of a server address as users and the CLI write it:
/// `https://index.docker.io/v1/` → `index.docker.io`, `http://h:5000/x` → `h:5000`.
fn hostname(address: &str) -> &str {
    let a = address.trim();
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    a.split('/').next().unwrap_or_default()
}

fn is_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The address credentials of `registry` (a reference's domain) are filed under.
pub fn server_address(registry: &str) -> String {
    if is_hub(hostname(registry)) {
        DOCKER_HUB_SERVER.to_string()
    } else {
        hostname(registry).to_string()
    }
}

fn same_registry(a: &str, b: &str) -> bool {
    let (a, b) = (hostname(a), hostname(b));
    a == b || (is_hub(a) && is_hub(b))
}

impl DockerConfig {
    /// Reads the default configuration; none at all is an empty one.
    pub fn load() -> Result<DockerConfig, CredentialsError> {
        match default_config_path() {
            Some(p) => Self::load_from(&p),
            None => Ok(DockerConfig::default()),
        }
    }

    /// Reads `path`; a missing file is an empty configuration, as for the CLI.
    pub fn load_from(path: &Path) -> Result<DockerConfig, CredentialsError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig {
                    path: path.to_path_buf(),
                    file: ConfigFile::default(),
                })
            }
            Err(source) => {
                return Err(CredentialsError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file = serde_json::from_slice(&data).map_err(|source| CredentialsError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(DockerConfig {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The helper that holds `registry`'s credentials, if any: its own `credHelpers` entry,
    /// else the default `credsStore`.
    fn helper_for(&self, server: &str) -> Option<&str> {
        let own = self
            .file
            .cred_helpers
            .iter()
            .find(|(k, _)| k.as_str() == server)
            .or_else(|| {
                self.file
                    .cred_helpers
                    .iter()
                    .find(|(k, _)| same_registry(k, server))
            })
            .map(|(_, v)| v.as_str());
        own.or(Some(self.file.creds_store.as_str()))
            .filter(|h| !h.is_empty())
    }

    /// Credentials for `registry` (a reference's domain, `docker.io` or `host[:port]`).
    /// `Ok(None)`: nothing is stored for it.
    pub fn get(&self, registry: &str) -> Result<Option<StoredAuth>, CredentialsError> {
        let server = server_address(registry);
        if let Some(helper) = self.helper_for(&server) {
            return run_helper(helper, &server);
        }
        let entry = self
            .file
            .auths
            .get(&server)
            .map(|e| (&server, e))
            .or_else(|| {
                self.file
                    .auths
                    .iter()
                    .find(|(k, _)| same_registry(k, &server))
            });
        let Some((key, e)) = entry else {
            return Ok(None);
        };
        let bad = |reason: &str| CredentialsError::BadEntry {
            path: self.path.clone(),
            server: key.clone(),
            reason: reason.to_string(),
        };
        let (mut username, mut password) = (e.username.clone(), e.password.clone());
        if !e.auth.trim().is_empty() {
            let raw = crate::auth::base64_decode(e.auth.trim())
                .ok_or_else(|| bad("`auth` is not base64"))?;
            let s = String::from_utf8(raw).map_err(|_| bad("`auth` is not UTF-8"))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| bad("`auth` is not user:password"))?;
            (username, password) = (u.to_string(), p.to_string());
        }
        let identity_token = Some(e.identitytoken.clone()).filter(|t| !t.is_empty());
        if username.is_empty() && identity_token.is_none() {
            return Ok(None);
        }
        Ok(Some(StoredAuth {
            username,
            password,
            identity_token,
        }))
    }

    /// Puts `registry`'s stored credentials into `opts` (unless it has some for it already).
    /// Returns whether any were found.
    pub fn apply_to(
        &self,
        registry: &str,
        opts: &mut ClientOptions,
    ) -> Result<bool, CredentialsError> {
        if opts.credentials.contains_key(registry) || opts.identity_tokens.contains_key(registry) {
            return Ok(true);
        }
        let Some(a) = self.get(registry)? else {
            return Ok(false);
        };
        if let Some(t) = a.identity_token {
            opts.identity_tokens.insert(registry.to_string(), t);
        } else {
            opts.credentials.insert(
                registry.to_string(),
                Credentials {
                    username: a.username,
                    password: a.password,
                },
            );
        }
        Ok(true)
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// `docker-credential-<helper> get` with `server` on stdin.
pub fn run_helper(helper: &str, server: &str) -> Result<Option<StoredAuth>, CredentialsError> {
    if helper.is_empty()
        || !helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(CredentialsError::BadHelperName(helper.to_string()));
    }
    let program = format!("docker-credential-{helper}");
    let failed = |message: String| CredentialsError::HelperFailed {
        helper: helper.to_string(),
        server: server.to_string(),
        message,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CredentialsError::HelperMissing {
                    helper: helper.to_string(),
                    server: server.to_string(),
                }
            } else {
                failed(format!("cannot run {program}: {e}"))
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("wait for {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        if stdout == NOT_FOUND {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let message = [stdout, stderr]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(failed(if message.is_empty() {
            format!("exited with {}", out.status)
        } else {
            message
        }));
    }
    let a: HelperAnswer = serde_json::from_str(&stdout).map_err(|e| {
        failed(format!(
            "invalid answer (expected JSON with Username and Secret): {e}"
        ))
    })?;
    if a.username == TOKEN_USER {
        return Ok(Some(StoredAuth {
            username: String::new(),
            password: String::new(),
            identity_token: Some(a.secret),
        }));
    }
    if a.username.is_empty() && a.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(StoredAuth {
        username: a.username,
        password: a.secret,
        identity_token: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        DockerConfig {
            path: PathBuf::from("config.json"),
            file: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn auths_entries_by_any_spelling_of_the_server() {
        let c = config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "bWU6czNjcmV0"},
                "http://reg.example:5000/v2/": {"auth": "YTpiOmM="},
                "tok.example": {"auth": "PHRva2VuPjo=", "identitytoken": "refresh-1"},
                "empty.example": {}
            }}"#,
        );
        let hub = c.get("docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("me", "s3cret")
        );
        // The password keeps its colons.
        let r = c.get("reg.example:5000").unwrap().unwrap();
        assert_eq!((r.username.as_str(), r.password.as_str()), ("a", "b:c"));
        let t = c.get("tok.example").unwrap().unwrap();
        assert_eq!(t.identity_token.as_deref(), Some("refresh-1"));
        assert_eq!(c.get("empty.example").unwrap(), None);
        assert_eq!(c.get("other.example").unwrap(), None);
    }

    #[test]
    fn bad_entries_name_the_file_and_server() {
        let c = config(r#"{"auths": {"x.example": {"auth": "!!!"}}}"#);
        let e = c.get("x.example").unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("x.example"), "{e}");
        let c = config(r#"{"auths": {"x.example": {"auth": "bm9jb2xvbg=="}}}"#);
        assert!(c.get("x.example").is_err());
    }

    #[test]
    fn missing_file_is_empty_and_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load_from(&dir.path().join("config.json")).unwrap();
        assert_eq!(c.get("docker.io").unwrap(), None);
        std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
        let e = DockerConfig::load_from(&dir.path().join("config.json")).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
    }

    #[test]
    fn helper_names_cannot_be_paths() {
        assert!(matches!(
            run_helper("../../bin/sh", "x"),
            Err(CredentialsError::BadHelperName(_))
        ));
    }

    #[test]
    fn server_addresses() {
        assert_eq!(server_address("docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(server_address("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
