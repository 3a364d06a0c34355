//! Parsing OCI mount options into mount(2) flags, propagation changes and
//! filesystem data.

/// A parsed `mounts[].options` list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: libc::c_ulong,
    /// Flags the options explicitly clear (`rw`, `suid`, ...), so they are not
    /// carried over from the source mount on a bind remount.
    pub cleared: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    /// Data passed to the filesystem (`mode=755,size=65536k`).
    pub data: Vec<String>,
    /// `rro` and friends: attributes set on every mount of a recursive bind.
    pub recursive_ro: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true), every mount of the tree).
    pub idmap: Option<bool>,
}

const FLAG_OPTIONS: &[(&str, bool, libc::c_ulong)] = &[
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("bind", false, libc::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("iversion", false, libc::MS_I_VERSION),
    ("lazytime", false, libc::MS_LAZYTIME),
    ("loud", true, libc::MS_SILENT),
    ("mand", false, libc::MS_MANDLOCK),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("noiversion", true, libc::MS_I_VERSION),
    ("nolazytime", true, libc::MS_LAZYTIME),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("silent", false, libc::MS_SILENT),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("sync", false, libc::MS_SYNCHRONOUS),
];

/// Options that runc and crun accept and that need no action here.
const IGNORED: &[&str] = &[
    "tmpcopyup",
    "notmpcopyup",
    "copy-symlink",
    "rrw",
    "rsuid",
    "rdev",
    "rexec",
    "ratime",
];

pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

impl MountOptions {
    pub fn parse(options: &[String]) -> Self {
        let mut o = MountOptions::default();
        for opt in options {
            let opt = opt.as_str();
            if let Some(&(_, clear, flag)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
                if clear {
                    o.flags &= !flag;
                    o.cleared |= flag;
                } else {
                    o.flags |= flag;
                    o.cleared &= !flag;
                }
            } else if let Some(p) = propagation_flag(opt) {
                o.propagation.push(p);
            } else if opt == "rro" {
                o.recursive_ro = true;
            } else if opt == "idmap" || opt == "ridmap" {
                o.idmap = Some(opt == "ridmap");
            } else if IGNORED.contains(&opt) {
                continue;
            } else if opt.starts_with("rno") {
                // rnosuid, rnodev, rnoexec...: recursive attributes; applied
                // as plain flags on the top mount, which covers the common
                // single-mount case.
                if let Some(&(_, false, flag)) =
                    FLAG_OPTIONS.iter().find(|(n, _, _)| *n == &opt[1..])
                {
                    o.flags |= flag;
                }
            } else {
                o.data.push(opt.to_string());
            }
        }
        o
    }

    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }

    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// A single option is acceptable; returns why not.
    pub fn check(opt: &str) -> Result<(), String> {
        if opt.is_empty() {
            return Err("empty mount option".into());
        }
        if opt.contains('\0') {
            return Err("mount option contains a NUL byte".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        MountOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
    }

    #[test]
    fn later_options_override_earlier() {
        let o = p(&["ro", "rw"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_ne!(o.cleared & libc::MS_RDONLY, 0);
        let o = p(&["rbind", "ro"]);
        assert!(o.is_bind());
        assert_ne!(o.flags & libc::MS_REC, 0);
    }

    #[test]
    fn idmap_options_are_not_filesystem_data() {
        let o = p(&["bind", "idmap"]);
        assert_eq!(o.idmap, Some(false));
        assert_eq!(o.data_string(), None);
        assert_eq!(p(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(p(&["rbind"]).idmap, None);
    }
}
