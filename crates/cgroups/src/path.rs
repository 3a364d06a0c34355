//! `linux.cgroupsPath` → a path inside each hierarchy, following runc's cgroupfs driver:
//! absent means `/<container-id>`; an absolute path is taken from the hierarchy root; a relative
//! one is joined to the calling process's own cgroup in that hierarchy; the systemd form
//! `slice:prefix:name` is expanded the way the systemd driver names its scope.

use crate::error::{Error, Result};

/// A parsed cgroups path. Relative paths still need the caller's own cgroup (per hierarchy on
/// v1) before they mean anything; see [`CgroupPath::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPath {
    /// From the hierarchy root; always starts with '/' and is normalized.
    Absolute(String),
    /// Relative to our own cgroup; normalized, no leading '/'. May start with `..`.
    Relative(String),
}

impl CgroupPath {
    /// Parses `linux.cgroupsPath`. `None` or empty gives `/<container_id>`.
    pub fn parse(spec: Option<&str>, container_id: &str) -> Result<CgroupPath> {
        let raw = match spec {
            Some(s) if !s.is_empty() => s,
            _ => {
                if container_id.is_empty()
                    || container_id.contains('/')
                    || container_id == ".."
                    || container_id == "."
                {
                    return Err(Error::InvalidPath {
                        path: container_id.to_string(),
                        reason: "container id cannot be used as a cgroup name",
                    });
                }
                return Ok(CgroupPath::Absolute(format!("/{container_id}")));
            }
        };
        if let Some(p) = parse_systemd(raw)? {
            return Ok(CgroupPath::Absolute(p));
        }
        if raw.starts_with('/') {
            let n = normalize("", raw).ok_or_else(|| escape_err(raw))?;
            Ok(CgroupPath::Absolute(n))
        } else {
            let n = normalize_relative(raw);
            Ok(CgroupPath::Relative(n))
        }
    }

    /// The hierarchy path, given our own cgroup path in that hierarchy (from /proc/self/cgroup).
    pub fn resolve(&self, own: &str) -> Result<String> {
        match self {
            CgroupPath::Absolute(p) => Ok(p.clone()),
            CgroupPath::Relative(r) => normalize(own, r).ok_or_else(|| escape_err(r)),
        }
    }
}

fn escape_err(p: &str) -> Error {
    Error::InvalidPath {
        path: p.to_string(),
        reason: "\"..\" escapes the cgroup hierarchy root",
    }
}

/// Joins `base` and `rel` and resolves `.`/`..`; `None` if `..` climbs above the root.
fn normalize(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in base.split('/').chain(rel.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(base.len() + rel.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Lexical cleanup of a relative path; leading `..` are kept because they are resolved against
/// our own cgroup later.
fn normalize_relative(rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// `slice:prefix:name` → `/<expanded slice>/<prefix>-<name>.scope`. Returns `None` when `raw` is
/// not in that form (it must have exactly two colons and no '/').
fn parse_systemd(raw: &str) -> Result<Option<String>> {
    if raw.contains('/') || raw.matches(':').count() != 2 {
        return Ok(None);
    }
    let mut it = raw.splitn(3, ':');
    let (slice, prefix, name) = match (it.next(), it.next(), it.next()) {
        (Some(s), Some(p), Some(n)) => (s, p, n),
        _ => return Ok(None),
    };
    let bad = |reason| Error::InvalidPath {
        path: raw.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("systemd cgroups path needs a unit name"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice).ok_or_else(|| bad("invalid systemd slice name"))?;
    if name.ends_with(".slice") {
        // A slice as the unit: runc requires an empty prefix here and nests it under the parent.
        path.push('/');
        path.push_str(name);
    } else {
        if name.contains("..") || prefix.contains("..") {
            return Err(bad("\"..\" in systemd unit name"));
        }
        path.push('/');
        if !prefix.is_empty() {
            path.push_str(prefix);
            path.push('-');
        }
        path.push_str(name);
        path.push_str(".scope");
    }
    Ok(Some(path))
}

/// systemd slice names encode their ancestry with dashes: `a-b-c.slice` lives at
/// `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> Option<String> {
    let base = slice.strip_suffix(".slice")?;
    if base == "-" {
        return Some(String::new());
    }
    if base.is_empty()
        || base.starts_with('-')
        || base.ends_with('-')
        || base.contains("--")
        || base.contains('/')
    {
        return None;
    }
    let mut out = String::with_capacity(slice.len() * 2);
    for (i, c) in base.char_indices() {
        if c == '-' {
            out.push('/');
            out.push_str(&base[..i]);
            out.push_str(".slice");
        }
    }
    out.push('/');
    out.push_str(slice);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abs(s: &str) -> CgroupPath {
        CgroupPath::Absolute(s.into())
    }

    #[test]
    fn default_is_container_id() {
        assert_eq!(CgroupPath::parse(None, "abc").unwrap(), abs("/abc"));
        assert_eq!(CgroupPath::parse(Some(""), "abc").unwrap(), abs("/abc"));
        assert!(CgroupPath::parse(None, "a/b").is_err());
        assert!(CgroupPath::parse(None, "..").is_err());
    }

    #[test]
    fn absolute_and_relative() {
        assert_eq!(
            CgroupPath::parse(Some("/berth//x/./y"), "i").unwrap(),
            abs("/berth/x/y")
        );
        assert_eq!(CgroupPath::parse(Some("/a/../b"), "i").unwrap(), abs("/b"));
        assert!(matches!(
            CgroupPath::parse(Some("/../etc"), "i"),
            Err(Error::InvalidPath { .. })
        ));
        let r = CgroupPath::parse(Some("berth/x"), "i").unwrap();
        assert_eq!(r, CgroupPath::Relative("berth/x".into()));
        assert_eq!(
            r.resolve("/process_api/abc").unwrap(),
            "/process_api/abc/berth/x"
        );
        assert_eq!(r.resolve("/").unwrap(), "/berth/x");
        let up = CgroupPath::parse(Some("../sib"), "i").unwrap();
        assert_eq!(up.resolve("/a/b").unwrap(), "/a/sib");
        assert!(up.resolve("/").is_err());
        let deep = CgroupPath::parse(Some("../../../x"), "i").unwrap();
        assert!(deep.resolve("/a").is_err());
    }

    #[test]
    fn systemd_form() {
        assert_eq!(
            CgroupPath::parse(Some("system.slice:berth:ID"), "i").unwrap(),
            abs("/system.slice/berth-ID.scope")
        );
        assert_eq!(
            CgroupPath::parse(Some("machine-a-b.slice:docker:x"), "i").unwrap(),
            abs("/machine.slice/machine-a.slice/machine-a-b.slice/docker-x.scope")
        );
        assert_eq!(
            CgroupPath::parse(Some(":berth:ID"), "i").unwrap(),
            abs("/system.slice/berth-ID.scope")
        );
        assert_eq!(
            CgroupPath::parse(Some("-.slice::sub.slice"), "i").unwrap(),
            abs("/sub.slice")
        );
        assert!(CgroupPath::parse(Some("notaslice:p:n"), "i").is_err());
        assert!(CgroupPath::parse(Some("a--b.slice:p:n"), "i").is_err());
        assert!(CgroupPath::parse(Some("system.slice:p:"), "i").is_err());
    }
}
