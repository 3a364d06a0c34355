//! Image references the way docker's CLI splits them for the API:
//! `[registry/]repo[:tag][@digest]`, with docker.io and `library/` implied.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, "docker.io" when none is given.
    pub domain: String,
    /// Repository path inside the registry ("library/busybox").
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid reference format: {0}")]
pub struct InvalidReference(String);

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, InvalidReference> {
        let bad = || InvalidReference(s.to_string());
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) if d.contains(':') => (r, Some(d.to_string())),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") {
            return Err(bad());
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, p))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), p.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(InvalidReference(format!(
                "repository name ({path}) must be lowercase"
            )));
        }
        let valid_path = path.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        });
        if !valid_path {
            return Err(bad());
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The repository name as the daemon's `fromImage` takes it.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// "busybox" for docker.io/library/busybox, as docker shows names.
    pub fn familiar_repo(&self) -> String {
        if self.domain == "docker.io" {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repo()
        }
    }

    /// The tag, or the digest, or "latest": what pull asks for.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// Fully qualified `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        match &self.digest {
            Some(d) => match &self.tag {
                Some(t) => format!("{}:{t}@{d}", self.repo()),
                None => format!("{}@{d}", self.repo()),
            },
            None => format!(
                "{}:{}",
                self.repo(),
                self.tag.as_deref().unwrap_or("latest")
            ),
        }
    }

    /// The key under which credentials for this registry are stored.
    pub fn auth_key(&self) -> String {
        if self.domain == "docker.io" {
            crate::auth::DOCKER_HUB.to_string()
        } else {
            self.domain.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_repo(), "busybox");
        let r = Reference::parse("127.0.0.1:5000/x/y:v1").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "x/y", Some("v1"))
        );
        let r = Reference::parse("localhost/a@sha256:abc").unwrap();
        assert_eq!(r.tag_or_digest(), "sha256:abc");
        let upper = |s: &str| Reference::parse(s).err().map(|e| e.to_string());
        assert_eq!(
            upper("Busybox").as_deref(),
            Some("invalid reference format: repository name (library/Busybox) must be lowercase")
        );
        assert_eq!(
            upper("Not/Lowercase:v1").as_deref(),
            Some("invalid reference format: repository name (Lowercase) must be lowercase")
        );
        assert!(Reference::parse("a:").is_err());
        assert_eq!(
            Reference::parse("user/app:1").unwrap().repo(),
            "docker.io/user/app"
        );
    }
}
