//! `docker start`: root filesystem, network, /etc files, the OCI spec, and the monitor that
//! creates the container; attach clients waiting for the start are connected before it runs.

use super::lifecycle::monitor_err;
use super::model::Container;
use super::mounts::bind_mount;
use super::spec::{self, NetNs, SpecInputs};
use super::{Containers, Entry, PendingAttach};
use crate::error::{Error, Result};
use berth_monitor::{Kind, MonitorConfig};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

impl Containers {
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
        // A user's start re-arms the restart policy; a policy restart does not.
        self.update(&entry, |c| c.manually_stopped = false)?;
        match self.start_locked(&entry).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                // dockerd's code for a start that failed for another cause: 128.
                let code = super::exec::cannot_run_code(&msg).unwrap_or(128);
                let _ = self.update(&entry, |c| {
                    c.state.error = msg.clone();
                    if c.state.status == "created" && c.has_been_started {
                        c.state.status = "exited".into();
                    }
                    c.state.exit_code = if c.state.exit_code == 0 {
                        code
                    } else {
                        c.state.exit_code
                    };
                });
                self.fail_pending_attaches(&entry, &msg);
                entry.run.send_modify(|r| {
                    r.exit_code = code;
                    r.error = Some(msg.clone());
                });
                // Docker removes an --rm container whose start failed; the client waits
                // for that removal.
                if entry.snapshot().host_config.auto_remove {
                    let me = self.clone();
                    let id = entry.snapshot().id;
                    tokio::spawn(async move {
                        let _ = me.remove(&id, true, true).await;
                    });
                }
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
        // The previous run's monitor may still be deleting the container from
        // the runtime, and its files would confuse the new monitor's clients.
        let rd = run_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            berth_monitor::wait_gone(&rd, super::MONITOR_GRACE);
        })
        .await;
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        let rootfs = run_dir.join("rootfs");
        std::fs::create_dir_all(&rootfs)?;

        // Root filesystem: the image's layers under the container's writable layer.
        let svc = self.images.svc.clone();
        let image_id = rec.image_id.clone();
        let key = id.clone();
        let rootfs2 = rootfs.clone();
        let throwaway = rec.host_config.auto_remove;
        tokio::task::spawn_blocking(move || -> Result<()> {
            let image = svc
                .images
                .resolve(&image_id)
                .map_err(|_| Error::NotFound(format!("No such image: {image_id}")))?;
            let ov = svc.prepare_container_rootfs(&key, &image)?;
            if throwaway {
                ov.mount_volatile(&rootfs2)?;
            } else {
                ov.mount(&rootfs2)?;
            }
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
                    .map(Ok)
                    .unwrap_or_else(|| -> Result<String> {
                        let extra = super::network_glue::extra_hosts(rec, None)?;
                        Ok(berth_network::files::render_hosts(
                            &hostname,
                            &[],
                            &[],
                            &extra,
                        ))
                    })?,
                super::network_glue::resolv_conf(
                    rec,
                    net.nameserver.as_deref().and_then(|n| n.parse().ok()),
                )?,
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
        crate::store::write_volatile(&cdir.join("hosts"), hosts.as_bytes())?;
        crate::store::write_volatile(&cdir.join("resolv.conf"), resolv.as_bytes())?;
        crate::store::write_volatile(
            &cdir.join("hostname"),
            format!("{etc_hostname}\n").as_bytes(),
        )?;

        // User-visible mounts: volumes, binds, tmpfs, then the /etc files.
        let mut mounts = Vec::new();
        for mp in &rec.mounts {
            let src = if mp.kind == "volume" {
                let p = self.volume_path(&mp.name)?;
                // Docker copies the image's content into a fresh volume on first use,
                // unless the mount says nocopy.
                if !mp.nocopy() {
                    super::volume_glue::copy_image_content(
                        &self.volumes,
                        &mp.name,
                        rootfs,
                        &mp.destination,
                    )?;
                }
                self.publish_volume(
                    "mount",
                    &mp.name,
                    &[
                        ("container", id.to_string()),
                        ("destination", mp.destination.clone()),
                        ("driver", "local".into()),
                        ("propagation", mp.propagation.clone()),
                        ("read/write", mp.rw.to_string()),
                    ],
                );
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
        for (f, dst) in super::root::ETC_FILES {
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
        super::spec::default_env(&mut env, &user.home, rec.config.tty);
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
        // Docker creates a missing working directory (inside the root, never through a
        // symlink out of it).
        let cwd = parts.cwd.clone();
        let rf = rootfs.to_path_buf();
        tokio::task::spawn_blocking(move || mkdir_in_root(&rf, &cwd))
            .await
            .map_err(|e| Error::internal("creating the working directory", e))??;
        let cgroup_v2 = spec::cgroup_v2();
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
        crate::store::write_json_volatile(&bundle.join("config.json"), &spec)?;

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
        let start_fifo = berth_runtime_fifo(&runtime, &self.config.runtime_root(), id);
        let pending: Vec<PendingAttach> = entry
            .pending_attach
            .lock()
            .map(|mut p| p.drain(..).collect())
            .unwrap_or_default();
        let mcfg = MonitorConfig {
            kind: Kind::Container,
            id: id.clone(),
            exec_id: None,
            runtime,
            runtime_root: self.config.runtime_root(),
            runtime_args: self.config.runtime_args(Some(&rec.runtime)),
            bundle: Some(bundle),
            process_json: None,
            tty: rec.config.tty,
            open_stdin: rec.config.open_stdin,
            stdin_once: rec.config.stdin_once,
            log_path: logging.then(|| PathBuf::from(&rec.log_path)),
            log_max_size: max_size,
            log_max_files: max_files,
            run_dir: run_dir.to_path_buf(),
            start_fifo,
            start_at_once: true,
            expect_attaches: pending.len() as u32,
        };
        let mcfg_path = run_dir.join("monitor.json");
        crate::store::write_json_volatile(&mcfg_path, &mcfg)?;
        let monitor = self.config.monitor.clone();
        let rd = run_dir.to_path_buf();
        let started = tokio::task::spawn_blocking(move || -> Result<i32> {
            // Attach clients connect while the runtime creates the container, so they miss
            // no output; the monitor starts it once they are all there.
            let connect_attaches = || {
                for p in pending {
                    let r = berth_monitor::attach(&rd, p.req)
                        .map_err(|e| Error::Internal(e.to_string()));
                    let _ = p.tx.send(r);
                }
            };
            let ready = berth_monitor::spawn_then(&mcfg_path, &monitor, connect_attaches)
                .map_err(monitor_err)?;
            ready
                .pid
                .ok_or_else(|| Error::Internal("the monitor did not report a pid".into()))
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
        })?;
        entry.run.send_modify(|r| r.running = true);
        let rec = entry.snapshot();
        self.publish(&rec, "start", &[]);
        self.clone().watch_exit(entry.clone());
        self.watch_health(entry.clone());
        Ok(())
    }
}

/// `mkdir -p` of the working directory inside the container's root.
fn mkdir_in_root(root: &Path, path: &str) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    let dir = |e: rustix::io::Errno| {
        Error::invalid(format!("cannot create working directory {path:?}: {e}"))
    };
    let rootfd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(dir)?;
    super::root::mkdir_in(rootfd.as_fd(), path).map_err(dir)?;
    Ok(())
}

/// berth-runtime's exec fifo for container `id` under runtime root `root`, which the monitor
/// writes itself instead of running `berth-runtime start` (berthd's specs have no poststart
/// hooks); None for any other runtime. berth-runtime documents this as stable.
fn berth_runtime_fifo(runtime: &Path, root: &Path, id: &str) -> Option<PathBuf> {
    (runtime.file_name()? == "berth-runtime").then(|| root.join(id).join("exec.fifo"))
}
