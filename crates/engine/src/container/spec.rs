//! A container record + its image → the OCI runtime spec (`config.json`), with Docker's
//! defaults: capabilities, mounts, masked and read-only paths, device rules, seccomp profile.

use super::model::Container;
use super::types::HostConfig;
use crate::error::{Error, Result};
use berth_image::spec::RuntimeParts;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability by number, as the kernel numbers them.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub(super) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub(super) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The capabilities the daemon itself may grant: its bounding set (a host may run Berth
/// with some capabilities withheld), limited to those the kernel knows.
fn host_caps() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(40);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn normalize_cap(c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if !ALL_CAPS.contains(&full.as_str()) {
        return Err(Error::invalid(format!("invalid capability: {c:?}")));
    }
    Ok(full)
}

/// Docker's rule: start from the defaults (or all when privileged), drop, then add.
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>> {
    if hc.privileged {
        return Ok(host_caps());
    }
    let adds = hc
        .cap_add
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<Vec<_>>>()?;
    let drops = hc
        .cap_drop
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<Vec<_>>>()?;
    let mut caps: Vec<String> = if drops.iter().any(|d| d == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drops.contains(c))
            .collect()
    };
    if adds.iter().any(|a| a == "ALL") {
        return Ok(host_caps());
    }
    for a in adds {
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    Ok(caps)
}

/// What the container's security options ask for.
#[derive(Default)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    pub seccomp_unconfined: bool,
    pub seccomp_profile: Option<String>,
    pub systempaths_unconfined: bool,
}

pub fn security_opts(hc: &HostConfig) -> Result<SecurityOpts> {
    let mut o = SecurityOpts::default();
    for opt in &hc.security_opt {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match k {
            "no-new-privileges" => {
                o.no_new_privileges = match v {
                    "" | "true" => true,
                    "false" => false,
                    _ => return Err(Error::invalid(format!("invalid --security-opt: {opt:?}"))),
                }
            }
            "seccomp" if v == "unconfined" => o.seccomp_unconfined = true,
            "seccomp" if !v.is_empty() => o.seccomp_profile = Some(v.to_string()),
            "systempaths" if v == "unconfined" => o.systempaths_unconfined = true,
            // No AppArmor or SELinux on the hosts Berth targets; accepted as Docker does
            // when the LSM is absent.
            "apparmor" | "label" => {}
            _ => return Err(Error::invalid(format!("invalid --security-opt: {opt:?}"))),
        }
    }
    Ok(o)
}

/// Docker's supplementary groups: the primary group, the user's groups from the image, and
/// `--group-add` (numeric ids; names are looked up by the caller).
pub fn additional_gids(
    user: &berth_image::spec::ResolvedUser,
    group_add: &[String],
) -> Result<Vec<u32>> {
    let mut out = vec![user.gid];
    for g in user.additional_gids.iter().copied() {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    for g in group_add {
        let id: u32 = g.parse().map_err(|_| {
            Error::invalid(format!(
                "unable to find group {g}: only numeric --group-add ids are supported"
            ))
        })?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

pub struct SpecInputs<'a> {
    pub container: &'a Container,
    pub parts: &'a RuntimeParts,
    pub rootfs: &'a Path,
    /// Extra mounts (volumes, binds, tmpfs, /etc files) already resolved, in OCI form.
    pub mounts: Vec<Value>,
    /// `Some(path)`: join this network namespace; `None` with `host_net`: share the host's.
    pub netns: NetNs,
    pub ipc_ns: Option<PathBuf>,
    pub pid_ns: Option<PathBuf>,
    /// Host path of a static init to run as PID 1 (`--init`).
    pub init_binary: Option<PathBuf>,
    pub cgroup_v2: bool,
}

pub enum NetNs {
    Host,
    New,
    Path(PathBuf),
}

fn default_mounts(privileged: bool, readonly_sys: bool) -> Vec<Value> {
    let sys_opts = if readonly_sys && !privileged {
        json!(["nosuid", "noexec", "nodev", "ro"])
    } else {
        json!(["nosuid", "noexec", "nodev"])
    };
    let cg_opts = if privileged {
        json!(["nosuid", "noexec", "nodev", "relatime", "rw"])
    } else {
        json!(["ro", "nosuid", "noexec", "nodev", "relatime"])
    };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": cg_opts}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ]
}

/// Docker's default device cgroup rules.
fn device_rules(privileged: bool) -> Value {
    if privileged {
        return json!([{"allow": true, "access": "rwm"}]);
    }
    let c = |major: i64, minor: Option<i64>| json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"});
    json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        c(1, Some(3)), c(1, Some(8)), c(1, Some(7)), c(5, Some(0)), c(1, Some(5)),
        c(1, Some(9)), c(5, Some(1)), c(136, None), c(5, Some(2)), c(10, Some(200)),
    ])
}

/// Every device node directly under the host's /dev, for `--privileged`.
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/dev") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let ft = md.file_type();
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        // The container gets its own pty multiplexer and console.
        if matches!(name.as_str(), "console" | "ptmx" | "tty")
            || name.starts_with("tty")
                && kind == "c"
                && name.len() > 3
                && name[3..].chars().all(|c| c.is_ascii_digit())
                && name != "tty0"
        {
            continue;
        }
        let rdev = md.rdev();
        out.push(json!({
            "path": format!("/dev/{name}"), "type": kind,
            "major": libc::major(rdev), "minor": libc::minor(rdev),
            "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
        }));
    }
    out
}

/// Docker's additions to a process's environment: HOME from the user, TERM with a tty.
pub fn default_env(env: &mut Vec<String>, home: &str, tty: bool) {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
}

/// Whether the host's cgroups are v2 alone (a hybrid host with v1 controllers is not).
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Whether the host accounts swap in the memory cgroup (v1 memsw, v2 swap.max).
pub fn swap_accounting() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/memory.swap.max").exists()
}

/// The resource checks Docker makes at create; `resources` repeats them at start.
pub fn check_limits(hc: &HostConfig) -> Result<()> {
    if hc.memory > 0 && hc.memory < 6 * 1024 * 1024 {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    if hc.nano_cpus > 0 && (hc.cpu_quota > 0 || hc.cpu_period > 0) {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    if hc.nano_cpus < 0 || hc.nano_cpus > ncpu * 1_000_000_000 {
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    Ok(())
}

pub(crate) fn resources(hc: &HostConfig) -> Result<Value> {
    check_limits(hc)?;
    let mut r = json!({ "devices": device_rules(hc.privileged) });
    let mut mem = serde_json::Map::new();
    if hc.memory > 0 {
        mem.insert("limit".into(), json!(hc.memory));
        if swap_accounting() {
            let swap = match hc.memory_swap {
                0 => hc.memory * 2,
                s => s,
            };
            if swap > 0 && swap < hc.memory {
                return Err(Error::invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
            mem.insert("swap".into(), json!(swap));
        }
    }
    if hc.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        mem.insert("swappiness".into(), json!(s));
    }
    if let Some(d) = hc.oom_kill_disable {
        mem.insert("disableOOMKiller".into(), json!(d));
    }
    if !mem.is_empty() {
        r["memory"] = Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    if hc.nano_cpus > 0 {
        cpu.insert("period".into(), json!(100_000));
        cpu.insert(
            "quota".into(),
            json!(hc.nano_cpus * 100_000 / 1_000_000_000),
        );
    }
    if hc.cpu_period > 0 {
        cpu.insert("period".into(), json!(hc.cpu_period));
    }
    if hc.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(hc.cpu_quota));
    }
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        r["pids"] = json!({ "limit": if p < 0 { -1 } else { p } });
    }
    if hc.blkio_weight > 0 {
        r["blockIO"] = json!({ "weight": hc.blkio_weight });
    }
    Ok(r)
}

fn rlimits(hc: &HostConfig) -> Result<Vec<Value>> {
    hc.ulimits
        .iter()
        .map(|u| {
            let name = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
            const KNOWN: &[&str] = &[
                "RLIMIT_CORE",
                "RLIMIT_CPU",
                "RLIMIT_DATA",
                "RLIMIT_FSIZE",
                "RLIMIT_LOCKS",
                "RLIMIT_MEMLOCK",
                "RLIMIT_MSGQUEUE",
                "RLIMIT_NICE",
                "RLIMIT_NOFILE",
                "RLIMIT_NPROC",
                "RLIMIT_RSS",
                "RLIMIT_RTPRIO",
                "RLIMIT_RTTIME",
                "RLIMIT_SIGPENDING",
                "RLIMIT_STACK",
                "RLIMIT_AS",
            ];
            if !KNOWN.contains(&name.as_str()) {
                return Err(Error::invalid(format!("invalid ulimit type: {}", u.name)));
            }
            Ok(json!({"type": name, "hard": u.hard, "soft": u.soft}))
        })
        .collect()
}

fn seccomp(sec: &SecurityOpts, caps: &[String], privileged: bool) -> Result<Option<Value>> {
    if privileged || sec.seccomp_unconfined {
        return Ok(None);
    }
    let profile = sec
        .seccomp_profile
        .as_deref()
        .unwrap_or(berth_seccomp::docker_profile::DOCKER_DEFAULT);
    // Most containers share a profile and a capability set: the conversion (parsing Docker's
    // profile, resolving its conditions) is done once per pair.
    type Key = (String, Vec<String>);
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<Key, Value>>> =
        std::sync::OnceLock::new();
    let key: Key = (profile.to_string(), caps.to_vec());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(Some(v));
    }
    let kernel = berth_seccomp::docker_profile::KernelVersion::current()
        .map_err(|e| Error::internal("reading the kernel version", e))?;
    let oci = berth_seccomp::docker_profile::to_oci(profile, caps, std::env::consts::ARCH, kernel)
        .map_err(|e| Error::invalid(format!("invalid seccomp profile: {e}")))?;
    let value = serde_json::to_value(oci)
        .map_err(|e| Error::internal("encoding the seccomp profile", e))?;
    if let Ok(mut c) = cache.lock() {
        // Bounded: profiles passed by value (security-opt seccomp=FILE) could differ each time.
        if c.len() >= 32 {
            c.clear();
        }
        c.insert(key, value.clone());
    }
    Ok(Some(value))
}

pub fn build(i: &SpecInputs) -> Result<Value> {
    let c = i.container;
    let hc = &c.host_config;
    let caps = capabilities(hc)?;
    let sec = security_opts(hc)?;
    let mut args = i.parts.args.clone();
    let mut mounts = default_mounts(hc.privileged, true);
    if hc.shm_size >= 0 && !hc.ipc_mode.starts_with("container:") && hc.ipc_mode != "host" {
        let size = if hc.shm_size > 0 {
            hc.shm_size
        } else {
            64 << 20
        };
        mounts.push(
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]}),
        );
    }
    if let Some(init) = &i.init_binary {
        mounts.push(json!({"destination": "/sbin/docker-init", "type": "bind",
            "source": init, "options": ["bind", "ro", "rprivate"]}));
        let mut a = vec!["/sbin/docker-init".to_string(), "--".to_string()];
        a.extend(args);
        args = a;
    }
    mounts.extend(i.mounts.iter().cloned());

    let mut namespaces = vec![json!({"type": "mount"})];
    match &i.pid_ns {
        Some(p) if p.as_os_str().is_empty() => {}
        Some(p) => namespaces.push(json!({"type": "pid", "path": p})),
        None => namespaces.push(json!({"type": "pid"})),
    }
    match &i.ipc_ns {
        Some(p) if p.as_os_str().is_empty() => {}
        Some(p) => namespaces.push(json!({"type": "ipc", "path": p})),
        None => namespaces.push(json!({"type": "ipc"})),
    }
    if hc.uts_mode != "host" {
        namespaces.push(json!({"type": "uts"}));
    }
    match &i.netns {
        NetNs::Host => {}
        NetNs::New => namespaces.push(json!({"type": "network"})),
        NetNs::Path(p) => namespaces.push(json!({"type": "network", "path": p})),
    }
    let cgroupns_private = match hc.cgroupns_mode.as_str() {
        "private" => true,
        "host" => false,
        _ => i.cgroup_v2,
    };
    if cgroupns_private {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let hostname = if c.config.hostname.is_empty() {
        c.short_id().to_string()
    } else {
        c.config.hostname.clone()
    };
    let process = json!({
        "terminal": c.config.tty,
        "user": {
            "uid": i.parts.user.uid, "gid": i.parts.user.gid,
            "additionalGids": additional_gids(&i.parts.user, &hc.group_add)?,
        },
        "args": args,
        "env": i.parts.env,
        "cwd": i.parts.cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "rlimits": rlimits(hc)?,
        "noNewPrivileges": sec.no_new_privileges,
        "oomScoreAdj": hc.oom_score_adj.unwrap_or(0),
    });
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": format!("{}/{}", if hc.cgroup_parent.is_empty() { "/berth" } else { hc.cgroup_parent.as_str() }, c.id),
        "resources": resources(hc)?,
        "sysctl": hc.sysctls,
    });
    if !hc.privileged && !sec.systempaths_unconfined {
        linux["maskedPaths"] = json!(hc
            .masked_paths
            .clone()
            .unwrap_or_else(|| MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        linux["readonlyPaths"] = json!(hc
            .readonly_paths
            .clone()
            .unwrap_or_else(|| READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
    }
    if hc.privileged {
        linux["devices"] = json!(host_devices());
    }
    if let Some(s) = seccomp(&sec, &caps, hc.privileged)? {
        linux["seccomp"] = s;
    }
    Ok(json!({
        // What Docker writes; older runtimes (crun 1.8) refuse newer minor versions.
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": { "path": i.rootfs, "readonly": hc.readonly_rootfs },
        "hostname": hostname,
        "domainname": c.config.domainname,
        "mounts": mounts,
        "linux": linux,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_add_drop() {
        let mut hc = HostConfig {
            cap_drop: vec!["net_raw".into()],
            cap_add: vec!["SYS_ADMIN".into()],
            ..Default::default()
        };
        let caps = capabilities(&hc).unwrap();
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        hc.cap_add = vec!["bogus".into()];
        assert!(capabilities(&hc).is_err());
        hc.cap_add = vec![];
        hc.cap_drop = vec!["ALL".into()];
        assert!(capabilities(&hc).unwrap().is_empty());
    }
}
