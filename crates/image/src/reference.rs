//! Docker-compatible image references.
//!
//! Our own parser rather than oci-spec's `Reference`, which treats an upper-case first component
//! as a repository path and then fails to re-parse its own output (DEPENDENCIES.md pitfall 15).
//! The rules follow Docker's reference grammar: `[domain/]path[:tag][@digest]`, where a first
//! component is a domain when it contains `.` or `:`, is `localhost`, or is not all lower case.

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A normalized reference: the domain is always present, and a reference without tag and digest
/// gets the `latest` tag, as `docker pull busybox` does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    /// Parses like `docker pull` does, filling in `docker.io`, `library/` and `latest`.
    pub fn parse_normalized(input: &str) -> Result<Reference> {
        let mut r = Self::parse_normalized_name_only(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Like [`parse_normalized`] but without adding `latest` (for `docker images busybox` or
    /// `docker push repo`, where no tag means "all tags").
    pub fn parse_normalized_name_only(input: &str) -> Result<Reference> {
        if input.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| invalid(input, e.to_string()))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag separator is a ':' after the last '/', so `host:5000/repo` has no tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(input, t)?;
        }
        if name.is_empty() {
            return Err(invalid(input, "empty repository name"));
        }
        if name.len() > NAME_TOTAL_MAX {
            return Err(invalid(
                input,
                format!("repository name must not be more than {NAME_TOTAL_MAX} characters"),
            ));
        }
        let (domain, path) = split_domain(name);
        validate_domain(input, &domain)?;
        validate_path(input, &path)?;
        if tag.is_none() && digest.is_none() && is_hex64(name) {
            return Err(invalid(
                input,
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the domain, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `docker.io/library/busybox`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `user/repo`, `host:5000/repo`: the short form Docker shows.
    pub fn familiar_name(&self) -> String {
        // Dropping the domain must not turn the first path component into a domain.
        let first = self.path.split('/').next().unwrap_or_default();
        let looks_like_domain = self.path.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if self.domain == DEFAULT_DOMAIN && !looks_like_domain {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `busybox:latest`, `busybox@sha256:...`: the form `docker images` shows.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag, tag)?;
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The name without tag or digest, keeping the domain.
    pub fn repository(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }

    /// Converts to oci-spec's reference once our rules have validated the input.
    /// Built from parts rather than by parsing, because oci-spec's parser disagrees with
    /// Docker about upper-case domains.
    pub fn to_oci(&self) -> oci_spec::distribution::Reference {
        use oci_spec::distribution::Reference as R;
        let (d, p) = (self.domain.clone(), self.path.clone());
        match (&self.tag, &self.digest) {
            (Some(t), Some(g)) => R::with_tag_and_digest(d, p, t.clone(), g.to_string()),
            (None, Some(g)) => R::with_digest(d, p, g.to_string()),
            (Some(t), None) => R::with_tag(d, p, t.clone()),
            (None, None) => R::with_tag(d, p, DEFAULT_TAG.to_string()),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse_normalized(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse_normalized_name_only(&s).map_err(serde::de::Error::custom)
    }
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn validate_tag(input: &str, tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
            tag.len() <= TAG_MAX
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("invalid tag {tag:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
        ))
    }
}

fn validate_domain(input: &str, domain: &str) -> Result<()> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: [addr]:port
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(input, "unterminated IPv6 address in domain"))?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(invalid(input, format!("invalid IPv6 address {addr:?}")));
        }
        match after {
            "" => return Ok(()),
            p => (
                "",
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid(input, "invalid domain"))?,
                ),
            ),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(input, format!("invalid port {p:?} in domain")));
        }
    }
    if !domain.starts_with('[') {
        for label in host.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-';
            if !ok {
                return Err(invalid(input, format!("invalid domain {domain:?}")));
            }
        }
    }
    Ok(())
}

fn validate_path(input: &str, path: &str) -> Result<()> {
    for component in path.split('/') {
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(input, "repository name must be lowercase"));
        }
        if !valid_component(component) {
            return Err(invalid(
                input,
                format!("invalid repository path component {component:?}"),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        Reference::parse_normalized(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/repo"), "docker.io/user/repo:latest");
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost/foo"), "localhost/foo:latest");
        assert_eq!(norm("localhost:5000/a/b/c:v1"), "localhost:5000/a/b/c:v1");
        assert_eq!(norm("127.0.0.1:5000/repo:tag"), "127.0.0.1:5000/repo:tag");
        assert_eq!(
            norm(&format!("repo@{D}")),
            format!("docker.io/library/repo@{D}")
        );
        assert_eq!(
            norm(&format!("repo:tag@{D}")),
            format!("docker.io/library/repo:tag@{D}")
        );
        assert_eq!(norm("[::1]:5000/repo"), "[::1]:5000/repo:latest");
        // Upper-case first component is a domain, as Docker decides.
        assert_eq!(norm("Foo/bar"), "Foo/bar:latest");
        let r = Reference::parse_normalized("host:5000/repo").unwrap();
        assert_eq!(r.domain(), "host:5000");
        assert_eq!(r.path(), "repo");
        assert_eq!(r.tag(), Some("latest"));
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse_normalized(s).unwrap().familiar_string();
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("user/repo:x"), "user/repo:x");
        assert_eq!(f("host:5000/repo"), "host:5000/repo:latest");
        assert_eq!(f(&format!("repo@{D}")), format!("repo@{D}"));
        let n = Reference::parse_normalized_name_only("busybox").unwrap();
        assert_eq!(n.tag(), None);
        assert_eq!(n.familiar_string(), "busybox");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Busybox",
            "busybox:",
            "busybox:-tag",
            "busybox:a$b",
            &format!("busybox:{}", "t".repeat(129)),
            "busybox@sha256:abc",
            "busybox@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "busybox@md5:e3b0c44298fc1c149afbf4c8996fb924",
            "a//b",
            "/busybox",
            "busybox/",
            "a..b",
            "a-",
            "-a",
            "host:port/repo",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &"a".repeat(256),
            "-host.com/repo",
        ] {
            let r = Reference::parse_normalized(bad);
            assert!(r.is_err(), "{bad:?} parsed as {r:?}");
        }
        let e = Reference::parse_normalized("docker.io/Busybox")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be lowercase"), "{e}");
    }

    #[test]
    fn converts_to_oci_spec() {
        let r = Reference::parse_normalized("Foo/bar:1").unwrap();
        let o = r.to_oci();
        assert_eq!(o.registry(), "Foo");
        assert_eq!(o.repository(), "bar");
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,2})[a-z0-9]{1,5}){0,2}"
    }

    fn reference_string() -> impl Strategy<Value = String> {
        let domain = prop_oneof![
            Just(String::new()),
            Just("localhost/".to_string()),
            "[a-z][a-z0-9]{0,6}\\.[a-z]{2,4}(:[0-9]{1,5})?/",
        ];
        let path = proptest::collection::vec(component(), 1..4).prop_map(|v| v.join("/"));
        let tag = proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
        let digest = proptest::option::of("[0-9a-f]{64}");
        (domain, path, tag, digest).prop_map(|(d, p, t, g)| {
            // Without a domain, a first component with a '.' would be read as one.
            let p = if d.is_empty() {
                match p.split_once('/') {
                    Some((first, rest)) => format!("{}/{rest}", first.replace('.', "-")),
                    None => p,
                }
            } else {
                p
            };
            let mut s = format!("{d}{p}");
            if let Some(t) = t {
                s = format!("{s}:{t}");
            }
            if let Some(g) = g {
                s = format!("{s}@sha256:{g}");
            }
            s
        })
    }

    proptest! {
        #[test]
        fn normalized_round_trips(s in reference_string()) {
            let r = Reference::parse_normalized(&s).unwrap();
            let again = Reference::parse_normalized(&r.to_string()).unwrap();
            prop_assert_eq!(&again, &r);
            let fam = Reference::parse_normalized(&r.familiar_string()).unwrap();
            prop_assert_eq!(&fam, &r);
        }

        #[test]
        fn arbitrary_input_never_panics_and_reparses(s in "\\PC{0,40}") {
            if let Ok(r) = Reference::parse_normalized(&s) {
                prop_assert_eq!(Reference::parse_normalized(&r.to_string()).unwrap(), r.clone());
                prop_assert_eq!(Reference::parse_normalized(&r.familiar_string()).unwrap(), r);
            }
        }

        #[test]
        fn ascii_input_reparses(s in "[A-Za-z0-9./:_@-]{1,30}") {
            if let Ok(r) = Reference::parse_normalized(&s) {
                prop_assert_eq!(Reference::parse_normalized(&r.to_string()).unwrap(), r);
            }
        }
    }
}
