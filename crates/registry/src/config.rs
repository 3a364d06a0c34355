//! The configuration file (TOML, or YAML when named `.yaml`/`.yml`) and its defaults.
//! Command-line flags override it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub root: PathBuf,
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub gc: GcConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:5000".into(),
            root: PathBuf::from("/var/lib/berth-registry"),
            tls: None,
            auth: AuthConfig::default(),
            limits: Limits::default(),
            gc: GcConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone may pull and push.
    #[default]
    None,
    /// HTTP Basic against an htpasswd file of bcrypt hashes.
    Htpasswd,
    /// Docker's Bearer token flow, with this server as the token issuer.
    Token,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub htpasswd: Option<PathBuf>,
    /// Basic realm name, or the token realm URL. When unset in token mode the URL is built
    /// from the request's Host header.
    pub realm: Option<String>,
    pub service: String,
    pub issuer: String,
    pub token_ttl_secs: u64,
    /// HMAC key for tokens. When unset a random key is generated once and kept under the root.
    pub token_secret: Option<String>,
    /// Per-repository rules. With none, every authenticated user may do everything and
    /// anonymous users nothing.
    pub access: Vec<AccessRule>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            mode: AuthMode::None,
            htpasswd: None,
            realm: None,
            service: "berth-registry".into(),
            issuer: "berth-registry".into(),
            token_ttl_secs: 300,
            token_secret: None,
            access: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// A repository name, `*`, or a prefix ending in `*` (`team/*`).
    pub repository: String,
    /// User names; `*` is any authenticated user, `anonymous` is a request without credentials.
    pub users: Vec<String>,
    /// `pull`, `push`, `delete`, or `*`.
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_manifest_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_manifest_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Run online collection this often; 0 disables it.
    pub interval_secs: u64,
    /// Unreferenced blobs younger than this survive, so a push whose manifest has not arrived
    /// yet keeps its layers.
    pub grace_secs: u64,
    /// Upload sessions idle for longer are removed by collection.
    pub upload_ttl_secs: u64,
}

impl Default for GcConfig {
    fn default() -> GcConfig {
        GcConfig {
            interval_secs: 0,
            grace_secs: 3600,
            upload_ttl_secs: 24 * 3600,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        let parsed = if yaml {
            Config::parse_yaml(&text)
        } else {
            Config::parse(&text)
        };
        parsed.map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Parses YAML with the same keys as the TOML form. An empty document is the defaults.
    pub fn parse_yaml(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.mode == AuthMode::Htpasswd && self.auth.htpasswd.is_none() {
            return Err(ConfigError::Invalid(
                "auth.mode = \"htpasswd\" needs auth.htpasswd".into(),
            ));
        }
        for rule in &self.auth.access {
            for a in &rule.actions {
                if !matches!(a.as_str(), "pull" | "push" | "delete" | "*") {
                    return Err(ConfigError::Invalid(format!("unknown action {a:?}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_file() {
        let c = Config::parse(
            r#"
listen = "127.0.0.1:0"
root = "/tmp/r"
[tls]
cert = "c.pem"
key = "k.pem"
[auth]
mode = "token"
htpasswd = "/etc/htpasswd"
[[auth.access]]
repository = "public/*"
users = ["anonymous", "*"]
actions = ["pull"]
[limits]
max_manifest_bytes = 1024
[gc]
interval_secs = 60
"#,
        )
        .unwrap();
        assert_eq!(c.auth.mode, AuthMode::Token);
        assert_eq!(c.auth.access.len(), 1);
        assert_eq!(c.limits.max_manifest_bytes, 1024);
        assert_eq!(c.gc.grace_secs, 3600);
        assert!(Config::parse("bogus = 1").is_err());
    }

    #[test]
    fn parses_yaml() {
        let c = Config::parse_yaml(
            r#"
listen: 127.0.0.1:0
root: /tmp/r
tls:
  cert: c.pem
  key: k.pem
auth:
  mode: htpasswd
  htpasswd: /etc/htpasswd
  access:
    - repository: "public/*"
      users: [anonymous, "*"]
      actions: [pull]
limits:
  max_manifest_bytes: 1024
gc:
  interval_secs: 60
"#,
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.auth.mode, AuthMode::Htpasswd);
        assert_eq!(c.auth.access[0].users, ["anonymous", "*"]);
        assert_eq!(c.tls.map(|t| t.key), Some(PathBuf::from("k.pem")));
        assert_eq!(c.limits.max_manifest_bytes, 1024);
        assert_eq!(c.gc.grace_secs, 3600);
        assert_eq!(Config::parse_yaml("").unwrap().listen, "127.0.0.1:5000");
        assert!(Config::parse_yaml("bogus: 1").is_err());
        assert!(Config::parse_yaml("auth:\n  mode: kerberos").is_err());
    }

    #[test]
    fn load_picks_the_format_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("r.yml");
        std::fs::write(&yml, "root: /srv/y\n").unwrap();
        assert_eq!(Config::load(&yml).unwrap().root, PathBuf::from("/srv/y"));
        let toml = dir.path().join("r.toml");
        std::fs::write(&toml, "root = \"/srv/t\"\n").unwrap();
        assert_eq!(Config::load(&toml).unwrap().root, PathBuf::from("/srv/t"));
        // The same YAML under a TOML name is a parse error naming the file.
        let wrong = dir.path().join("r.conf");
        std::fs::write(&wrong, "root: /srv/y\n").unwrap();
        let e = Config::load(&wrong).unwrap_err().to_string();
        assert!(e.contains("r.conf"), "{e}");
    }
}
