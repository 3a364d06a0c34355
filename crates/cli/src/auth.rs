//! Registry credentials in docker's `config.json` (`auths` entries holding
//! base64 `user:password`), honouring `DOCKER_CONFIG`.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Map, Value};

pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub fn config_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker")
}

pub struct ConfigFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub server: String,
}

impl Credentials {
    /// The `X-Registry-Auth` header value: base64url of the auth JSON.
    pub fn header(&self) -> String {
        let j = json!({"username": self.username, "password": self.password, "serveraddress": self.server});
        base64::engine::general_purpose::URL_SAFE.encode(j.to_string())
    }
}

impl ConfigFile {
    pub fn load(dir: &Path) -> Result<ConfigFile, AuthError> {
        let path = dir.join("config.json");
        let doc = match std::fs::read(&path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => serde_json::from_slice(&b).map_err(|source| AuthError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(AuthError::Read { path, source }),
        };
        Ok(ConfigFile { path, doc })
    }

    pub fn get(&self, server: &str) -> Option<Credentials> {
        let auths = self.doc.get("auths")?.as_object()?;
        let entry = auths.get(server).or_else(|| {
            // entries are sometimes stored with a scheme: match on the host part
            auths
                .iter()
                .find(|(k, _)| strip_scheme(k) == strip_scheme(server))
                .map(|(_, v)| v)
        })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(entry.get("auth")?.as_str()?)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        Some(Credentials {
            username: u.into(),
            password: p.into(),
            server: server.into(),
        })
    }

    pub fn set(&mut self, c: &Credentials) {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        let auths = self.doc.entry("auths").or_insert_with(|| json!({}));
        if !auths.is_object() {
            *auths = json!({});
        }
        if let Some(m) = auths.as_object_mut() {
            m.insert(c.server.clone(), json!({ "auth": auth }));
        }
    }

    /// Removes the entry; false when there was none.
    pub fn remove(&mut self, server: &str) -> bool {
        self.doc
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .map(|m| m.remove(server).is_some())
            .unwrap_or(false)
    }

    /// Writes the file atomically (temp file in the same directory, then rename), mode 0600.
    pub fn save(&self) -> Result<(), AuthError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let werr = |source| AuthError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(werr)?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let body = serde_json::to_vec_pretty(&Value::Object(self.doc.clone())).unwrap_or_default();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr)?;
        f.write_all(&body)
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(werr)?;
        std::fs::rename(&tmp, &self.path).map_err(werr)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn strip_scheme(s: &str) -> &str {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_docker_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ConfigFile::load(dir.path()).unwrap();
        let cred = Credentials {
            username: "u".into(),
            password: "p:w".into(),
            server: "127.0.0.1:5000".into(),
        };
        c.set(&cred);
        c.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTpwOnc=");
        let c = ConfigFile::load(dir.path()).unwrap();
        assert_eq!(c.get("127.0.0.1:5000"), Some(cred));
        assert_eq!(
            c.get("http://127.0.0.1:5000").map(|c| c.username),
            Some("u".to_string())
        );
    }
}
