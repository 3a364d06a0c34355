//! Basic credentials checked against an htpasswd file of bcrypt hashes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// bcrypt costs tens of milliseconds per check and clients send credentials on every
    /// request, so remember a fingerprint of each password that verified.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading htpasswd file: {0}")]
    Read(#[from] std::io::Error),
    #[error("htpasswd line {0}: only bcrypt ($2y$/$2b$/$2a$) entries are supported")]
    Unsupported(usize),
}

fn fingerprint(user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0u8]);
    h.update(password.as_bytes());
    h.finalize().into()
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        Htpasswd::parse(&std::fs::read_to_string(path)?)
    }

    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(HtpasswdError::Unsupported(i + 1));
            };
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                return Err(HtpasswdError::Unsupported(i + 1));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user).cloned() else {
            return false;
        };
        let fp = fingerprint(user, password);
        {
            let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.get(user) == Some(&fp) {
                return true;
            }
        }
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(user.to_string(), fp);
        }
        ok
    }
}

/// One htpasswd line for `user` with a bcrypt hash of `password`.
pub fn make_entry(user: &str, password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    Ok(format!("{user}:{}", bcrypt::hash(password, cost)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_bcrypt() {
        let line = make_entry("alice", "s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# comment\n{line}\n")).unwrap();
        assert!(h.verify("alice", "s3cret").await);
        assert!(h.verify("alice", "s3cret").await);
        assert!(!h.verify("alice", "wrong").await);
        assert!(!h.verify("bob", "s3cret").await);
        assert!(Htpasswd::parse("x:{SHA}abc").is_err());
    }
}
