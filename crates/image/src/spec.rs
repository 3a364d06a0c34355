//! Image config → the image-derived parts of an OCI runtime spec: process args, env, cwd and
//! user, plus exposed ports, volumes, labels and stop signal for the daemon. Docker's default
//! mounts, capabilities and seccomp profile are the daemon's business, not the image's.

use crate::config::ImageConfig;
use crate::error::{Error, IoContext, Result};
use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// passwd and group files larger than this are not believed.
const MAX_ID_FILE: u64 = 4 << 20;
/// Docker refuses ids that do not fit a signed 32-bit integer.
const MAX_ID: u32 = i32::MAX as u32;

/// What `docker create` / `docker run` override.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `Some(vec![])` or `Some(vec![""])` clears the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries replacing the image's of the same key.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub name: Option<String>,
    pub home: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeParts {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: ResolvedUser,
    /// `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: i32,
}

impl RuntimeParts {
    /// Fills the image-derived fields of a runtime spec's process.
    pub fn apply_to_process(&self, p: &mut oci_spec::runtime::Process) {
        p.set_args(Some(self.args.clone()));
        p.set_env(Some(self.env.clone()));
        p.set_cwd(self.cwd.clone().into());
        let u = p.user_mut();
        u.set_uid(self.user.uid);
        u.set_gid(self.user.gid);
        u.set_additional_gids(
            (!self.user.additional_gids.is_empty()).then(|| self.user.additional_gids.clone()),
        );
    }
}

/// Computes the process of a new container of an image. `rootfs` is the container's root
/// (the mounted overlay), where `/etc/passwd` and `/etc/group` are read.
pub fn runtime_parts(cfg: &ImageConfig, ov: &Overrides, rootfs: &Path) -> Result<RuntimeParts> {
    let ic = cfg.container_config();
    let args = merge_args(ic.entrypoint.as_deref(), ic.cmd.as_deref(), ov)?;
    let user_spec = ov.user.clone().or(ic.user.clone()).unwrap_or_default();
    let user = resolve_user(rootfs, &user_spec)?;
    let mut env = merge_env(ic.env.as_deref().unwrap_or_default(), &ov.env);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = match &ov.working_dir {
        Some(w) if !w.starts_with('/') => {
            return Err(Error::InvalidChange(format!(
                "the working directory {w:?} is invalid, it needs to be an absolute path"
            )))
        }
        Some(w) => w.clone(),
        None => match ic.working_dir.as_deref() {
            None | Some("") => "/".to_string(),
            Some(w) if w.starts_with('/') => w.to_string(),
            Some(w) => format!("/{w}"),
        },
    };
    let mut labels = ic.labels.clone().unwrap_or_default();
    labels.extend(ov.labels.clone());
    let stop = ov.stop_signal.clone().or(ic.stop_signal.clone());
    let stop_signal = match stop {
        Some(s) => parse_signal(&s)?,
        None => 15,
    };
    Ok(RuntimeParts {
        args,
        env,
        cwd,
        user,
        exposed_ports: ic.exposed_ports.unwrap_or_default().into_keys().collect(),
        volumes: ic.volumes.unwrap_or_default().into_keys().collect(),
        labels,
        stop_signal,
    })
}

/// Docker's rule: a new entrypoint drops the image's cmd; without one, the image's entrypoint
/// runs with the given cmd or the image's.
pub fn merge_args(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    ov: &Overrides,
) -> Result<Vec<String>> {
    let (ep, cmd): (Vec<String>, Vec<String>) = match &ov.entrypoint {
        Some(e) if !(e.is_empty() || e.len() == 1 && e[0].is_empty()) => {
            (e.clone(), ov.cmd.clone().unwrap_or_default())
        }
        Some(_) => (
            Vec::new(),
            ov.cmd
                .clone()
                .or(image_cmd.map(<[String]>::to_vec))
                .unwrap_or_default(),
        ),
        None => (
            image_entrypoint.map(<[String]>::to_vec).unwrap_or_default(),
            ov.cmd
                .clone()
                .or(image_cmd.map(<[String]>::to_vec))
                .unwrap_or_default(),
        ),
    };
    let args: Vec<String> = ep.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::InvalidChange("no command specified".into()));
    }
    Ok(args)
}

/// Image env, then overrides replacing entries of the same key; PATH defaulted as Docker does.
pub fn merge_env(image: &[String], overrides: &[String]) -> Vec<String> {
    let key = |e: &str| {
        e.split_once('=')
            .map_or(e.to_string(), |(k, _)| k.to_string())
    };
    let mut out: Vec<String> = image.to_vec();
    for o in overrides {
        let k = key(o);
        match out.iter_mut().find(|e| key(e) == k) {
            Some(e) => *e = o.clone(),
            None => out.push(o.clone()),
        }
    }
    if !out.iter().any(|e| key(e) == "PATH") {
        out.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    out
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads a file of the container's root. Symlinks are followed but stay inside it
/// (`RESOLVE_IN_ROOT`), so an image's `/etc/passwd -> /host/file` cannot reach the host.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<Option<String>> {
    let root = std::fs::File::open(rootfs).ctx(|| format!("open rootfs {}", rootfs.display()))?;
    let fd = match openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("open /{rel} in the container")),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(MAX_ID_FILE)
        .read_to_string(&mut s)
        .ctx(|| format!("read /{rel} in the container"))?;
    Ok(Some(s))
}

fn parse_passwd(s: &str) -> Vec<PasswdEntry> {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f
                    .get(5)
                    .map_or("/", |h| if h.is_empty() { "/" } else { h })
                    .to_string(),
            })
        })
        .collect()
}

fn parse_group(s: &str) -> Vec<GroupEntry> {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn numeric_id(s: &str) -> Result<Option<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n)),
        _ => Err(Error::InvalidChange(format!(
            "uids and gids must be in range 0-{MAX_ID}, got {s}"
        ))),
    }
}

/// Resolves `""`, `name`, `uid`, `uid:gid`, `name:group` (and mixes) through the container's
/// `/etc/passwd` and `/etc/group`.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let passwd = read_in_root(rootfs, "etc/passwd")?
        .map(|s| parse_passwd(&s))
        .unwrap_or_default();
    let (uid, mut gid, name, home) = match numeric_id(u)? {
        Some(uid) => match passwd.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone()), p.home.clone()),
            None => (uid, 0, None, "/".to_string()),
        },
        None => match passwd.iter().find(|p| p.name == u) {
            Some(p) => (p.uid, p.gid, Some(p.name.clone()), p.home.clone()),
            None => return Err(Error::UserNotFound(u.to_string())),
        },
    };
    let needs_groups = g.is_some_and(|g| numeric_id(g).ok().flatten().is_none()) || name.is_some();
    let groups = if needs_groups {
        read_in_root(rootfs, "etc/group")?
            .map(|s| parse_group(&s))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut additional = Vec::new();
    match g {
        Some("") => return Err(Error::GroupNotFound(String::new())),
        Some(g) => {
            gid = match numeric_id(g)? {
                Some(n) => n,
                None => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| Error::GroupNotFound(g.to_string()))?,
            };
        }
        None => {
            if let Some(n) = &name {
                for e in &groups {
                    if e.members.contains(n) && e.gid != gid && !additional.contains(&e.gid) {
                        additional.push(e.gid);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        name,
        home,
    })
}

/// `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3` → signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || Error::InvalidChange(format!("invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    if let Some(i) = NAMES.iter().position(|n| *n == name) {
        return Ok(i as i32 + 1);
    }
    match name {
        "IOT" => return Ok(6),
        "POLL" => return Ok(29),
        "RTMIN" => return Ok(34),
        "RTMAX" => return Ok(64),
        _ => {}
    }
    let offset = |p: &str| name.strip_prefix(p).and_then(|n| n.parse::<i32>().ok());
    let n = if let Some(k) = offset("RTMIN+") {
        34 + k
    } else if let Some(k) = offset("RTMAX-") {
        64 - k
    } else {
        return Err(bad());
    };
    if (34..=64).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:root,user\nuser:x:1000:\naudio:x:29:user\nnogroup:x:65534:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn resolves_users_like_docker() {
        let r = rootfs();
        let p = r.path();
        let u = resolve_user(p, "").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (0, 0, vec![10], "/root")
        );
        let u = resolve_user(p, "user").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![10, 29])
        );
        assert_eq!(u.home, "/home/user");
        let u = resolve_user(p, "1000").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = resolve_user(p, "1000:29").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.len()), (1000, 29, 0));
        let u = resolve_user(p, "user:nogroup").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 65534));
        let u = resolve_user(p, "4242:4343").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.name.clone(), u.home.as_str()),
            (4242, 4343, None, "/")
        );
        let u = resolve_user(p, "4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert!(matches!(
            resolve_user(p, "ghost"),
            Err(Error::UserNotFound(_))
        ));
        assert!(matches!(
            resolve_user(p, "user:ghosts"),
            Err(Error::GroupNotFound(_))
        ));
        assert!(resolve_user(p, "4294967295").is_err());
    }

    #[test]
    fn passwd_symlinks_stay_inside_the_rootfs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::create_dir_all(p.join("etc")).unwrap();
        fs::create_dir_all(p.join("real")).unwrap();
        fs::write(p.join("real/passwd"), "insider:x:777:778::/in:/bin/sh\n").unwrap();
        // Absolute target: resolved against the rootfs, not the host.
        std::os::unix::fs::symlink("/real/passwd", p.join("etc/passwd")).unwrap();
        fs::write(p.join("real/group"), "insiders:x:900:insider\n").unwrap();
        // '..' past the root is clamped to the root: this lands on /real/group of the image.
        std::os::unix::fs::symlink("../../../../../../../../real/group", p.join("etc/group"))
            .unwrap();
        let u = resolve_user(p, "insider").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (777, 778, vec![900])
        );
        // The host's root exists on the host but not in this image.
        assert!(matches!(
            resolve_user(p, "root"),
            Err(Error::UserNotFound(_))
        ));
        assert!(matches!(
            resolve_user(p, "insider:root"),
            Err(Error::GroupNotFound(_))
        ));
    }

    #[test]
    fn merges_entrypoint_cmd_env_and_more() {
        let r = rootfs();
        let cfg = ImageConfig::parse(br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/ep"],"Cmd":["a","b"],"Env":["PATH=/bin","A=1"],"WorkingDir":"srv","User":"user","ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}},"Labels":{"l":"1"},"StopSignal":"SIGQUIT"},"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        let parts = runtime_parts(&cfg, &Overrides::default(), r.path()).unwrap();
        assert_eq!(parts.args, vec!["/ep", "a", "b"]);
        assert_eq!(parts.env, vec!["PATH=/bin", "A=1", "HOME=/home/user"]);
        assert_eq!(parts.cwd, "/srv");
        assert_eq!(parts.user.uid, 1000);
        assert_eq!(parts.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(parts.volumes, vec!["/data"]);
        assert_eq!(parts.stop_signal, 3);

        let ov = Overrides {
            cmd: Some(vec!["c".into()]),
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("0:0".into()),
            working_dir: Some("/w".into()),
            labels: [("m".to_string(), "2".to_string())].into(),
            stop_signal: Some("9".into()),
            ..Default::default()
        };
        let parts = runtime_parts(&cfg, &ov, r.path()).unwrap();
        assert_eq!(parts.args, vec!["/ep", "c"]);
        assert_eq!(parts.env, vec!["PATH=/bin", "A=2", "B=3", "HOME=/root"]);
        assert_eq!((parts.user.uid, parts.user.gid), (0, 0));
        assert_eq!(parts.cwd, "/w");
        assert_eq!(parts.labels.len(), 2);
        assert_eq!(parts.stop_signal, 9);

        // A new entrypoint drops the image's cmd; clearing it keeps the image's cmd.
        let ov = Overrides {
            entrypoint: Some(vec!["/other".into()]),
            ..Default::default()
        };
        assert_eq!(
            runtime_parts(&cfg, &ov, r.path()).unwrap().args,
            vec!["/other"]
        );
        let ov = Overrides {
            entrypoint: Some(vec![String::new()]),
            ..Default::default()
        };
        assert_eq!(
            runtime_parts(&cfg, &ov, r.path()).unwrap().args,
            vec!["a", "b"]
        );
        let ov = Overrides {
            entrypoint: Some(vec![]),
            cmd: Some(vec![]),
            ..Default::default()
        };
        assert!(runtime_parts(&cfg, &ov, r.path()).is_err());
        let ov = Overrides {
            working_dir: Some("rel".into()),
            ..Default::default()
        };
        assert!(runtime_parts(&cfg, &ov, r.path()).is_err());

        let mut process = oci_spec::runtime::Process::default();
        parts_for_process(&cfg, r.path()).apply_to_process(&mut process);
        assert_eq!(process.user().uid(), 1000);
        assert_eq!(
            process.user().additional_gids().as_deref(),
            Some(&[10, 29][..])
        );
        assert_eq!(process.args().as_deref().unwrap()[0], "/ep");
        // No PATH in the image: Docker's default is added.
        assert_eq!(merge_env(&[], &[])[0], format!("PATH={DEFAULT_PATH}"));
    }

    fn parts_for_process(cfg: &ImageConfig, root: &Path) -> RuntimeParts {
        runtime_parts(cfg, &Overrides::default(), root).unwrap()
    }

    #[test]
    fn parses_signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGWINCH").unwrap(), 28);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(parse_signal("RTMAX-1").unwrap(), 63);
        assert_eq!(parse_signal("2").unwrap(), 2);
        for bad in ["SIGFOO", "0", "65", "SIGRTMIN+40", ""] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
