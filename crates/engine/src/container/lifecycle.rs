//! Start, stop, kill, wait, remove, pause, restart; exits and restart policies; re-attaching
//! to running containers after a daemon restart.

use super::model::Container;
use super::spec::{self, NetNs, SpecInputs};
use super::types::MountPoint;
use super::{Containers, Entry, PendingAttach};
use crate::error::{Error, Result};
use berth_monitor::{AttachRequest, Control, ExitInfo, Kind, MonitorConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A `-v` entry: `/host:/ctr[:opts]` (bind) or `name:/ctr[:opts]` (volume) or `/ctr` (anonymous).
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub propagation: String,
    pub mode: String,
}

impl Bind {
    pub fn is_volume(&self) -> bool {
        !self.source.starts_with('/')
    }
}

pub fn parse_bind(spec: &str) -> Result<Bind> {
    let bad = || Error::invalid(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(bad()),
    };
    if !target.starts_with('/') || target == "/" && source.is_empty() {
        return Err(Error::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    if !source.is_empty() && !source.starts_with('/') {
        crate::ids::validate_name(source).map_err(|_| {
            Error::invalid(format!(
                "invalid volume specification: '{spec}': \"{source}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            ))
        })?;
    }
    let mut read_only = false;
    let mut propagation = String::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = m.to_string()
            }
            _ => return Err(bad()),
        }
    }
    if source.is_empty() && !mode.is_empty() && parts.len() == 3 {
        return Err(bad());
    }
    Ok(Bind {
        source: source.to_string(),
        target: target.to_string(),
        read_only,
        propagation,
        mode: mode.to_string(),
    })
}

fn runtime_cmd(c: &Containers, rec: &Container) -> Result<tokio::process::Command> {
    let rt = c
        .config
        .runtime_path(Some(&rec.runtime))
        .ok_or_else(|| Error::invalid(format!("unknown runtime {}", rec.runtime)))?;
    let mut cmd = tokio::process::Command::new(rt);
    cmd.arg("--root").arg(c.config.runtime_root());
    cmd.stdin(std::process::Stdio::null());
    Ok(cmd)
}

async fn run_runtime(c: &Containers, rec: &Container, args: &[&str]) -> Result<()> {
    let out = runtime_cmd(c, rec)?
        .args(args)
        .output()
        .await
        .map_err(|e| Error::internal("running the OCI runtime", e))?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(Error::Internal(format!(
        "runtime {}: {msg}",
        args.first().unwrap_or(&"")
    )))
}

fn hosts_file(rec: &Container, ip: Option<&str>, hostname: &str) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in &rec.host_config.extra_hosts {
        if let Some((name, addr)) = h.split_once(':').or_else(|| h.split_once('=')) {
            s.push_str(&format!("{addr}\t{name}\n"));
        }
    }
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

fn resolv_conf(rec: &Container, nameserver: Option<&str>) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hc = &rec.host_config;
    let mut out = String::new();
    let mut servers: Vec<String> = hc.dns.clone();
    if let Some(ns) = nameserver {
        servers = vec![ns.to_string()];
    }
    let mut search: Vec<String> = hc.dns_search.clone();
    let mut options: Vec<String> = hc.dns_options.clone();
    for line in host.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") if hc.dns.is_empty() && nameserver.is_none() => {
                if let Some(a) = w.next() {
                    // A loopback resolver on the host is unreachable from the container.
                    if !a.starts_with("127.") && a != "::1" {
                        servers.push(a.to_string());
                    }
                }
            }
            Some("search") if hc.dns_search.is_empty() => search.extend(w.map(str::to_string)),
            Some("options") if hc.dns_options.is_empty() => options.extend(w.map(str::to_string)),
            _ => {}
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

fn bind_mount(src: &Path, dst: &str, ro: bool, propagation: &str) -> Value {
    let mut opts = vec![
        "rbind".to_string(),
        if ro { "ro" } else { "rw" }.to_string(),
    ];
    opts.push(if propagation.is_empty() {
        "rprivate".into()
    } else {
        propagation.to_string()
    });
    json!({"destination": dst, "type": "bind", "source": src, "options": opts})
}

/// The host binary run as PID 1 for `--init`: Debian's static tini.
pub fn init_binary() -> Option<PathBuf> {
    [
        "/usr/bin/tini-static",
        "/usr/bin/docker-init",
        "/usr/libexec/docker/docker-init",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn ns_of(pid: i64, kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
}

fn alive(pid: i64) -> bool {
    pid > 0
        && rustix::process::test_kill_process(
            rustix::process::Pid::from_raw(pid as i32).expect("positive pid"),
        )
        .is_ok()
}

impl Containers {
    /// Resolves `-v`, `--mount`, image VOLUMEs into mount points (creating named and anonymous
    /// volumes), at create time as Docker does.
    pub(crate) async fn prepare_mounts(&self, rec: &mut Container) -> Result<()> {
        let mut mounts: Vec<MountPoint> = Vec::new();
        let mut taken = std::collections::BTreeSet::new();
        for b in rec.host_config.binds.clone() {
            let b = parse_bind(&b)?;
            if !taken.insert(b.target.clone()) {
                return Err(Error::invalid(format!(
                    "Duplicate mount point: {}",
                    b.target
                )));
            }
            if b.source.is_empty() {
                let v = self.volume_anonymous(&rec.id)?;
                rec.anonymous_volumes.push(v.name.clone());
                mounts.push(MountPoint {
                    kind: "volume".into(),
                    name: v.name,
                    source: v.mountpoint,
                    destination: b.target,
                    driver: "local".into(),
                    mode: b.mode,
                    rw: !b.read_only,
                    propagation: String::new(),
                });
            } else if b.is_volume() {
                let v = self.volume_named(&b.source, &rec.id)?;
                mounts.push(MountPoint {
                    kind: "volume".into(),
                    name: v.name,
                    source: v.mountpoint,
                    destination: b.target,
                    driver: "local".into(),
                    mode: b.mode,
                    rw: !b.read_only,
                    propagation: String::new(),
                });
            } else {
                if !Path::new(&b.source).exists() {
                    // Docker creates a missing bind source for -v (not for --mount).
                    std::fs::create_dir_all(&b.source).map_err(|e| {
                        Error::invalid(format!(
                            "error while creating mount source path '{}': {e}",
                            b.source
                        ))
                    })?;
                }
                mounts.push(MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: b.source,
                    destination: b.target,
                    driver: String::new(),
                    mode: b.mode,
                    rw: !b.read_only,
                    propagation: if b.propagation.is_empty() {
                        "rprivate".into()
                    } else {
                        b.propagation
                    },
                });
            }
        }
        for m in rec.host_config.mounts.clone() {
            if !m.target.starts_with('/') {
                return Err(Error::invalid(format!(
                    "invalid mount config: mount path must be absolute: {:?}",
                    m.target
                )));
            }
            if !taken.insert(m.target.clone()) {
                return Err(Error::invalid(format!(
                    "Duplicate mount point: {}",
                    m.target
                )));
            }
            match m.kind.as_str() {
                "bind" => {
                    if !Path::new(&m.source).exists() {
                        return Err(Error::invalid(format!("invalid mount config for type \"bind\": bind source path does not exist: {}", m.source)));
                    }
                    mounts.push(MountPoint {
                        kind: "bind".into(),
                        name: String::new(),
                        source: m.source,
                        destination: m.target,
                        driver: String::new(),
                        mode: String::new(),
                        rw: !m.read_only,
                        propagation: "rprivate".into(),
                    });
                }
                "volume" => {
                    let v = if m.source.is_empty() {
                        let v = self.volume_anonymous(&rec.id)?;
                        rec.anonymous_volumes.push(v.name.clone());
                        v
                    } else {
                        self.volume_named(&m.source, &rec.id)?
                    };
                    mounts.push(MountPoint {
                        kind: "volume".into(),
                        name: v.name,
                        source: v.mountpoint,
                        destination: m.target,
                        driver: "local".into(),
                        mode: "z".into(),
                        rw: !m.read_only,
                        propagation: String::new(),
                    });
                }
                "tmpfs" => {
                    let mut opts = vec![];
                    if let Some(t) = &m.tmpfs_options {
                        if let Some(s) = t.size_bytes {
                            opts.push(format!("size={s}"));
                        }
                        if let Some(md) = t.mode {
                            opts.push(format!("mode={md:o}"));
                        }
                    }
                    rec.host_config
                        .tmpfs
                        .insert(m.target.clone(), opts.join(","));
                }
                other => {
                    return Err(Error::invalid(format!(
                        "invalid mount config: mount type unknown: {other:?}"
                    )))
                }
            }
        }
        for from in rec.host_config.volumes_from.clone() {
            let (name, mode) = from.split_once(':').unwrap_or((&from, ""));
            let src = self.get(name)?.snapshot();
            for mp in src.mounts {
                if taken.insert(mp.destination.clone()) {
                    let mut mp = mp.clone();
                    if mode == "ro" {
                        mp.rw = false;
                    }
                    if mp.kind == "volume" {
                        self.volume_add_user(&mp.name, &rec.id);
                    }
                    mounts.push(mp);
                }
            }
        }
        for target in rec.config.volumes.clone().unwrap_or_default().keys() {
            if taken.contains(target) || rec.host_config.tmpfs.contains_key(target) {
                continue;
            }
            let v = self.volume_anonymous(&rec.id)?;
            rec.anonymous_volumes.push(v.name.clone());
            taken.insert(target.clone());
            mounts.push(MountPoint {
                kind: "volume".into(),
                name: v.name,
                source: v.mountpoint,
                destination: target.clone(),
                driver: "local".into(),
                mode: String::new(),
                rw: true,
                propagation: String::new(),
            });
        }
        rec.mounts = mounts;
        Ok(())
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let _op = entry.op.lock().await;
        let rec = entry.snapshot();
        if rec.state.paused {
            return Err(Error::Conflict(
                "cannot start a paused container, try unpause instead".to_string(),
            ));
        }
        if rec.state.running {
            return Err(Error::NotModified("container already started".into()));
        }
        if rec.state.status == "removing" || rec.state.dead {
            return Err(Error::Conflict(
                "container is marked for removal and cannot be started".to_string(),
            ));
        }
        match self.start_locked(&entry).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                let _ = self.update(&entry, |c| {
                    c.state.error = msg.clone();
                    if c.state.status == "created" && c.has_been_started {
                        c.state.status = "exited".into();
                    }
                    c.state.exit_code = if c.state.exit_code == 0 {
                        128
                    } else {
                        c.state.exit_code
                    };
                });
                self.fail_pending_attaches(&entry, &msg);
                Err(e)
            }
        }
    }

    fn fail_pending_attaches(&self, entry: &Entry, msg: &str) {
        if let Ok(mut p) = entry.pending_attach.lock() {
            for a in p.drain(..) {
                let _ = a.tx.send(Err(Error::Internal(msg.to_string())));
            }
        }
    }

    pub(crate) async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        let rec = entry.snapshot();
        let id = rec.id.clone();
        let run_dir = self.run_dir(&id);
        // A previous run's monitor files would confuse the new monitor's clients.
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        let rootfs = run_dir.join("rootfs");
        std::fs::create_dir_all(&rootfs)?;

        // Root filesystem: the image's layers under the container's writable layer.
        let svc = self.images.svc.clone();
        let image_id = rec.image_id.clone();
        let key = id.clone();
        let rootfs2 = rootfs.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let image = svc
                .images
                .resolve(&image_id)
                .map_err(|_| Error::NotFound(format!("No such image: {image_id}")))?;
            let ov = svc.prepare_rootfs(&key, &image)?;
            ov.mount(&rootfs2)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::internal("mounting the root filesystem", e))??;
        let result = self.start_mounted(entry, &rec, &run_dir, &rootfs).await;
        if result.is_err() {
            let _ = berth_image::snapshot::unmount_rootfs(&rootfs);
            self.teardown_network(entry).await;
        }
        result
    }

    async fn start_mounted(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        rec: &Container,
        run_dir: &Path,
        rootfs: &Path,
    ) -> Result<()> {
        let id = &rec.id;
        let hc = &rec.host_config;
        let cdir = self.config.container_dir(id);

        // Namespaces shared with other containers.
        let shared_ns = |mode: &str, kind: &str| -> Result<Option<PathBuf>> {
            if mode == "host" {
                return Ok(Some(PathBuf::new()));
            }
            if let Some(other) = mode.strip_prefix("container:") {
                let o = self.get(other)?.snapshot();
                if !o.state.running {
                    return Err(Error::Conflict(format!(
                        "cannot join network of a non running container: {}",
                        o.id
                    )));
                }
                return Ok(Some(ns_of(o.state.pid, kind)));
            }
            Ok(None)
        };
        let ipc_ns = shared_ns(&hc.ipc_mode, "ipc")?;
        let pid_ns = shared_ns(&hc.pid_mode, "pid")?;
        let net = self.setup_network(entry).await?;
        let hostname = if rec.config.hostname.is_empty() {
            rec.short_id().to_string()
        } else {
            rec.config.hostname.clone()
        };
        let (hosts, resolv) = match &net.netns {
            NetNs::Host => (
                std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
            _ => (
                net.hosts
                    .clone()
                    .unwrap_or_else(|| hosts_file(rec, net.ip.as_deref(), &hostname)),
                resolv_conf(rec, net.nameserver.as_deref()),
            ),
        };
        let etc_hostname = if matches!(net.netns, NetNs::Host) && rec.config.hostname.is_empty() {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        } else {
            hostname.clone()
        };
        crate::store::write_atomic(&cdir.join("hosts"), hosts.as_bytes())?;
        crate::store::write_atomic(&cdir.join("resolv.conf"), resolv.as_bytes())?;
        crate::store::write_atomic(
            &cdir.join("hostname"),
            format!("{etc_hostname}\n").as_bytes(),
        )?;

        // User-visible mounts: volumes, binds, tmpfs, then the /etc files.
        let mut mounts = Vec::new();
        for mp in &rec.mounts {
            let src = if mp.kind == "volume" {
                let p = self.volume_path(&mp.name)?;
                // Docker copies the image's content into a fresh volume on first use.
                self.volume_copy_up(&mp.name, rootfs, &mp.destination)?;
                p
            } else {
                PathBuf::from(&mp.source)
            };
            mounts.push(bind_mount(&src, &mp.destination, !mp.rw, &mp.propagation));
        }
        for (target, opts) in &hc.tmpfs {
            let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
            o.extend(
                opts.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            mounts.push(
                json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": o}),
            );
        }
        let taken: std::collections::BTreeSet<String> =
            rec.mounts.iter().map(|m| m.destination.clone()).collect();
        for (f, dst) in [
            ("resolv.conf", "/etc/resolv.conf"),
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
        ] {
            if !taken.contains(dst) {
                mounts.push(bind_mount(
                    &cdir.join(f),
                    dst,
                    hc.readonly_rootfs,
                    "rprivate",
                ));
            }
        }

        // The process, from the merged config recorded at create.
        let user_spec = rec.config.user.clone();
        let rootfs_owned = rootfs.to_path_buf();
        let user = tokio::task::spawn_blocking(move || {
            berth_image::spec::resolve_user(&rootfs_owned, &user_spec)
        })
        .await
        .map_err(|e| Error::internal("resolving the user", e))?
        .map_err(|e| Error::invalid(e.to_string()))?;
        let mut env = rec.config.env.clone();
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.insert(0, format!("HOSTNAME={hostname}"));
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        if rec.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.iter().cloned());
        let parts = berth_image::spec::RuntimeParts {
            args,
            env,
            cwd: if rec.config.working_dir.is_empty() {
                "/".into()
            } else {
                rec.config.working_dir.clone()
            },
            user,
            exposed_ports: Vec::new(),
            volumes: Vec::new(),
            labels: Default::default(),
            stop_signal: 15,
        };
        let init_binary = if hc.init == Some(true) {
            Some(init_binary().ok_or_else(|| Error::Internal("--init needs a static init binary: install Debian's tini package (/usr/bin/tini-static)".into()))?)
        } else {
            None
        };
        let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let spec = spec::build(&SpecInputs {
            container: rec,
            parts: &parts,
            rootfs,
            mounts,
            netns: net.netns,
            ipc_ns,
            pid_ns,
            init_binary,
            cgroup_v2,
        })?;
        let bundle = run_dir.join("bundle");
        std::fs::create_dir_all(&bundle)?;
        crate::store::write_json(&bundle.join("config.json"), &spec)?;

        let logging = !matches!(hc.log_config.kind.as_str(), "none");
        let max_size = hc
            .log_config
            .config
            .get("max-size")
            .and_then(|s| parse_size(s));
        let max_files = hc
            .log_config
            .config
            .get("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let runtime = self
            .config
            .runtime_path(Some(&rec.runtime))
            .ok_or_else(|| Error::invalid(format!("unknown runtime {}", rec.runtime)))?;
        let mcfg = MonitorConfig {
            kind: Kind::Container,
            id: id.clone(),
            exec_id: None,
            runtime,
            runtime_root: self.config.runtime_root(),
            runtime_args: Vec::new(),
            bundle: Some(bundle),
            process_json: None,
            tty: rec.config.tty,
            open_stdin: rec.config.open_stdin,
            stdin_once: rec.config.stdin_once,
            log_path: logging.then(|| PathBuf::from(&rec.log_path)),
            log_max_size: max_size,
            log_max_files: max_files,
            run_dir: run_dir.to_path_buf(),
        };
        let mcfg_path = run_dir.join("monitor.json");
        crate::store::write_json(&mcfg_path, &mcfg)?;
        let monitor = self.config.monitor.clone();
        let rd = run_dir.to_path_buf();
        let pending: Vec<PendingAttach> = entry
            .pending_attach
            .lock()
            .map(|mut p| p.drain(..).collect())
            .unwrap_or_default();
        let started = tokio::task::spawn_blocking(move || -> Result<i32> {
            berth_monitor::spawn(&mcfg_path, &monitor).map_err(monitor_err)?;
            // Attach clients connect before the process runs, so they miss no output.
            for p in pending {
                let r =
                    berth_monitor::attach(&rd, p.req).map_err(|e| Error::Internal(e.to_string()));
                let _ = p.tx.send(r);
            }
            Control::connect(&rd)
                .map_err(monitor_err)?
                .start()
                .map_err(monitor_err)
        })
        .await
        .map_err(|e| Error::internal("starting the container", e))?;
        let pid = started?;
        self.update(entry, |c| {
            c.state = super::types::ContainerState {
                status: "running".into(),
                running: true,
                pid: pid as i64,
                started_at: crate::time::now_rfc3339(),
                finished_at: c.state.finished_at.clone(),
                exit_code: 0,
                ..Default::default()
            };
            c.has_been_started = true;
            c.manually_stopped = false;
        })?;
        entry.run.send_modify(|r| r.running = true);
        let rec = entry.snapshot();
        self.publish(&rec, "start", &[]);
        self.clone().watch_exit(entry.clone());
        Ok(())
    }

    /// Waits (on a blocking thread) for the monitor to report the exit, then records it.
    pub(crate) fn watch_exit(self: Arc<Self>, entry: Arc<Entry>) {
        tokio::spawn(async move {
            let id = entry.snapshot().id;
            let run_dir = self.run_dir(&id);
            let rd = run_dir.clone();
            let info = tokio::task::spawn_blocking(move || wait_monitor(&rd))
                .await
                .ok()
                .flatten();
            let info = info.unwrap_or_else(|| ExitInfo {
                exit_code: 255,
                signal: None,
                finished_at: crate::time::now_rfc3339(),
                oom_killed: false,
            });
            self.handle_exit(entry, info).await;
        });
    }

    async fn handle_exit(self: Arc<Self>, entry: Arc<Entry>, info: ExitInfo) {
        let op = entry.op.lock().await;
        let rec = entry.snapshot();
        if !rec.state.running {
            return;
        }
        let rootfs = self.run_dir(&rec.id).join("rootfs");
        let _ = tokio::task::spawn_blocking(move || berth_image::snapshot::unmount_rootfs(&rootfs))
            .await;
        self.teardown_network(&entry).await;
        self.forget_execs(&rec.id);
        let code = info.exit_code as i64;
        let _ = self.update(&entry, |c| {
            c.state.running = false;
            c.state.paused = false;
            c.state.restarting = false;
            c.state.pid = 0;
            c.state.status = "exited".into();
            c.state.exit_code = code;
            c.state.oom_killed = info.oom_killed;
            c.state.finished_at = if info.finished_at.is_empty() {
                crate::time::now_rfc3339()
            } else {
                info.finished_at.clone()
            };
        });
        let rec = entry.snapshot();
        self.publish(&rec, "die", &[("exitCode", code.to_string())]);
        if info.oom_killed {
            self.publish(&rec, "oom", &[]);
        }
        entry.run.send_modify(|r| {
            r.exits += 1;
            r.exit_code = code;
            r.running = false;
        });
        drop(op);
        if rec.host_config.auto_remove {
            if let Err(e) = self.remove(&rec.id, true, true).await {
                tracing::warn!(id = %rec.id, error = %e, "auto-remove failed");
            }
            return;
        }
        if self.should_restart(&rec) {
            let me = self.clone();
            tokio::spawn(async move {
                let started = rec.state.started_at.clone();
                let ran = crate::time::parse_rfc3339(&started)
                    .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default();
                // Docker's back-off: 100 ms doubling per quick failure, reset after 10 s up.
                let delay = if ran > Duration::from_secs(10) {
                    100
                } else {
                    (100u64 << rec.restart_count.min(10)).min(60_000)
                };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let Ok(entry) = me.get(&rec.id) else { return };
                let _op = entry.op.lock().await;
                let now = entry.snapshot();
                if now.state.running || now.manually_stopped {
                    return;
                }
                let _ = me.update(&entry, |c| c.restart_count += 1);
                if let Err(e) = me.start_locked(&entry).await {
                    tracing::warn!(id = %rec.id, error = %e, "restart failed");
                }
            });
        }
    }

    fn should_restart(&self, rec: &Container) -> bool {
        let p = &rec.host_config.restart_policy;
        match p.name.as_str() {
            "always" => !rec.manually_stopped,
            "unless-stopped" => !rec.manually_stopped,
            "on-failure" => {
                rec.state.exit_code != 0
                    && !rec.manually_stopped
                    && (p.maximum_retry_count == 0
                        || (rec.restart_count as i64) < p.maximum_retry_count)
            }
            _ => false,
        }
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, name_or_id: &str, signal: Option<&str>) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if !rec.state.running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => berth_image::spec::parse_signal(s)
                .map_err(|_| Error::invalid(format!("Invalid signal: {s}")))?,
            None => 9,
        };
        if sig == 9 {
            let _ = self.update(&entry, |c| c.manually_stopped = true);
        }
        run_runtime(self, &rec, &["kill", &rec.id, &sig.to_string()]).await?;
        self.publish(&rec, "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    pub async fn stop(
        &self,
        name_or_id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if !rec.state.running {
            return Err(Error::NotModified("container already stopped".into()));
        }
        self.update(&entry, |c| c.manually_stopped = true)?;
        let sig = match signal
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or(rec.config.stop_signal.clone())
        {
            Some(s) => berth_image::spec::parse_signal(&s)
                .map_err(|_| Error::invalid(format!("Invalid signal: {s}")))?,
            None => 15,
        };
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let mut rx = entry.run.subscribe();
        let exits = rx.borrow().exits;
        if sig != 9 {
            if let Err(e) = run_runtime(self, &rec, &["kill", &rec.id, &sig.to_string()]).await {
                tracing::debug!(error = %e, "stop signal");
            }
        }
        let exited = async {
            loop {
                if rx.borrow().exits > exits || !rx.borrow().running {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let wait = if timeout < 0 {
            Duration::MAX
        } else {
            Duration::from_secs(timeout as u64)
        };
        if sig == 9 || tokio::time::timeout(wait, exited).await.is_err() {
            let _ = run_runtime(self, &rec, &["kill", &rec.id, "9"]).await;
            let mut rx = entry.run.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while rx.borrow().running && rx.borrow().exits <= exits {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await;
        }
        self.publish(&entry.snapshot(), "stop", &[]);
        Ok(())
    }

    pub async fn restart(
        self: &Arc<Self>,
        name_or_id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        match self.stop(name_or_id, timeout, signal).await {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        match self.start(name_or_id).await {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        let rec = self.get(name_or_id)?.snapshot();
        self.publish(&rec, "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: resolves with the exit code when `condition` is met.
    /// Returns a future so the API can send the response headers first.
    pub fn wait(
        &self,
        name_or_id: &str,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = (i64, Option<String>)> + use<>> {
        let entry = self.get(name_or_id)?;
        if !matches!(condition, "" | "not-running" | "next-exit" | "removed") {
            return Err(Error::invalid(format!("invalid condition: {condition:?}")));
        }
        let mut rx = entry.run.subscribe();
        let start = rx.borrow().clone();
        let condition = condition.to_string();
        Ok(async move {
            loop {
                let now = rx.borrow().clone();
                let done = match condition.as_str() {
                    "next-exit" => now.exits > start.exits,
                    "removed" => now.removed,
                    _ => !now.running,
                };
                if done {
                    return (now.exit_code, now.error);
                }
                if rx.changed().await.is_err() {
                    let now = rx.borrow().clone();
                    return (now.exit_code, now.error);
                }
            }
        })
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, name_or_id: &str, force: bool, remove_volumes: bool) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if rec.state.running {
            if !force {
                let what = if rec.state.paused {
                    "container is paused and must be unpaused first"
                } else {
                    "container is running: stop the container before removing or force remove"
                };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": {what}",
                    rec.name
                )));
            }
            let _ = self.update(&entry, |c| c.manually_stopped = true);
            if rec.state.paused {
                let _ = run_runtime(self, &rec, &["resume", &rec.id]).await;
            }
            let mut rx = entry.run.subscribe();
            let _ = run_runtime(self, &rec, &["kill", &rec.id, "9"]).await;
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while rx.borrow().running {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await;
        }
        let _op = entry.op.lock().await;
        let rec = entry.snapshot();
        if rec.state.running {
            return Err(Error::Conflict(format!(
                "cannot remove container \"/{}\": could not stop it",
                rec.name
            )));
        }
        if rec.state.status == "removing" {
            return Err(Error::Conflict(format!(
                "removal of container {} is already in progress",
                rec.id
            )));
        }
        let _ = self.update(&entry, |c| c.state.status = "removing".into());
        let id = rec.id.clone();
        let run_dir = self.run_dir(&id);
        let svc = self.images.svc.clone();
        let cdir = self.config.container_dir(&id);
        tokio::task::spawn_blocking(move || {
            let _ = berth_image::snapshot::unmount_rootfs(&run_dir.join("rootfs"));
            let _ = std::fs::remove_dir_all(&run_dir);
            if let Err(e) = svc.snapshots.remove_rw(&id) {
                tracing::warn!(id, error = %e, "removing the writable layer");
            }
            let _ = std::fs::remove_dir_all(&cdir);
        })
        .await
        .map_err(|e| Error::internal("removing the container", e))?;
        for mp in &rec.mounts {
            if mp.kind == "volume" {
                self.volume_remove_user(&mp.name, &rec.id);
            }
        }
        if remove_volumes {
            for v in &rec.anonymous_volumes {
                if let Err(e) = self.volume_remove(v) {
                    tracing::warn!(volume = v, error = %e, "removing an anonymous volume");
                }
            }
        }
        self.forget_network(&rec).await;
        self.forget_execs(&rec.id);
        if let Ok(mut m) = self.entries.write() {
            m.remove(&rec.id);
        }
        self.publish(&rec, "destroy", &[]);
        entry.run.send_modify(|r| r.removed = true);
        Ok(())
    }

    pub async fn pause(&self, name_or_id: &str) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if !rec.state.running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!(
                "Container {} is already paused",
                rec.id
            )));
        }
        run_runtime(self, &rec, &["pause", &rec.id]).await?;
        self.update(&entry, |c| {
            c.state.paused = true;
            c.state.status = "paused".into();
        })?;
        self.publish(&rec, "pause", &[]);
        Ok(())
    }

    pub async fn unpause(&self, name_or_id: &str) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if !rec.state.paused {
            return Err(Error::Conflict(format!(
                "Container {} is not paused",
                rec.id
            )));
        }
        run_runtime(self, &rec, &["resume", &rec.id]).await?;
        self.update(&entry, |c| {
            c.state.paused = false;
            c.state.status = "running".into();
        })?;
        self.publish(&rec, "unpause", &[]);
        Ok(())
    }

    /// Opens an attach stream; before the container starts, the stream is connected by
    /// `start` once the monitor is ready.
    pub async fn attach(
        &self,
        name_or_id: &str,
        req: AttachRequest,
    ) -> Result<std::os::unix::net::UnixStream> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if rec.state.running {
            let rd = self.run_dir(&rec.id);
            return tokio::task::spawn_blocking(move || berth_monitor::attach(&rd, req))
                .await
                .map_err(|e| Error::internal("attaching", e))?
                .map_err(monitor_err);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        entry
            .pending_attach
            .lock()
            .map_err(|_| Error::Internal("attach table poisoned".into()))?
            .push(PendingAttach { req, tx });
        rx.await
            .map_err(|_| Error::Conflict("the container was removed before it started".into()))?
    }

    pub async fn resize(&self, name_or_id: &str, h: u16, w: u16) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if !rec.state.running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let rd = self.run_dir(&rec.id);
        tokio::task::spawn_blocking(move || Control::connect(&rd)?.resize(h, w))
            .await
            .map_err(|e| Error::internal("resizing", e))?
            .map_err(monitor_err)
    }

    /// After a daemon restart: re-attach to live monitors, record exits that happened while
    /// the daemon was down, restart what the restart policies ask for.
    pub(crate) async fn recover(self: Arc<Self>) {
        for entry in self.all() {
            let rec = entry.snapshot();
            if rec.state.status == "removing" {
                let _ = self.update(&entry, |c| c.state.status = "dead".into());
                continue;
            }
            if rec.state.running {
                let rd = self.run_dir(&rec.id);
                let rd2 = rd.clone();
                let live = tokio::task::spawn_blocking(move || {
                    Control::connect(&rd2).and_then(|c| c.status()).is_ok()
                })
                .await
                .unwrap_or(false);
                if live {
                    self.reconnect_network(&entry).await;
                    self.clone().watch_exit(entry.clone());
                    continue;
                }
                let info = berth_monitor::read_exit(&rd).unwrap_or(ExitInfo {
                    exit_code: if alive(rec.state.pid) { 137 } else { 255 },
                    signal: None,
                    finished_at: crate::time::now_rfc3339(),
                    oom_killed: false,
                });
                if alive(rec.state.pid) {
                    // The monitor died but the container did not: without a monitor nobody
                    // holds its stdio or records its exit, so it is stopped.
                    let _ = run_runtime(&self, &rec, &["kill", &rec.id, "9"]).await;
                    let _ = run_runtime(&self, &rec, &["delete", "--force", &rec.id]).await;
                }
                self.clone().handle_exit(entry.clone(), info).await;
            } else if rec.has_been_started
                && !rec.manually_stopped
                && matches!(
                    rec.host_config.restart_policy.name.as_str(),
                    "always" | "unless-stopped"
                )
            {
                let me = self.clone();
                let id = rec.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.start(&id).await {
                        tracing::warn!(id, error = %e, "restart at daemon start failed");
                    }
                });
            }
        }
    }
}

fn wait_monitor(run_dir: &Path) -> Option<ExitInfo> {
    match Control::connect(run_dir).and_then(|c| c.wait()) {
        Ok(info) => Some(info),
        Err(e) => {
            if let Some(info) = berth_monitor::read_exit(run_dir) {
                return Some(info);
            }
            tracing::warn!(run_dir = %run_dir.display(), error = %e, "monitor lost");
            None
        }
    }
}

pub(crate) fn monitor_err(e: berth_monitor::Error) -> Error {
    match e {
        // The runtime's own words: Docker reports them as a 400 "OCI runtime create failed".
        berth_monitor::Error::Monitor(msg) => Error::InvalidParameter(format!(
            "failed to create task for container: failed to create shim task: OCI runtime create failed: {msg}"
        )),
        other => Error::Internal(other.to_string()),
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1024),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        let b = parse_bind("/src:/dst:ro").unwrap();
        assert!(b.read_only && !b.is_volume());
        let b = parse_bind("data:/data").unwrap();
        assert!(b.is_volume());
        assert!(parse_bind("data:rel").is_err());
        assert!(parse_bind("a/b:/x").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
    }
}
