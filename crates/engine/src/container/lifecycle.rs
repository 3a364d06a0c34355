//! Stop, kill, wait, remove, pause, restart; exits and restart policies; re-attaching
//! to running containers after a daemon restart.

use super::model::Container;
use super::{Containers, Entry, PendingAttach};
use crate::error::{Error, Result};
use berth_monitor::{AttachRequest, Control, ExitInfo};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn runtime_cmd(c: &Containers, rec: &Container) -> Result<tokio::process::Command> {
    let rt = c
        .config
        .runtime_path(Some(&rec.runtime))
        .ok_or_else(|| Error::invalid(format!("unknown runtime {}", rec.runtime)))?;
    let mut cmd = tokio::process::Command::new(rt);
    cmd.arg("--root").arg(c.config.runtime_root());
    cmd.args(c.config.runtime_args(Some(&rec.runtime)));
    cmd.stdin(std::process::Stdio::null());
    Ok(cmd)
}

pub(crate) async fn run_runtime(c: &Containers, rec: &Container, args: &[&str]) -> Result<()> {
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

fn alive(pid: i64) -> bool {
    pid > 0
        && rustix::process::test_kill_process(
            rustix::process::Pid::from_raw(pid as i32).expect("positive pid"),
        )
        .is_ok()
}

impl Containers {
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
        let code = info.exit_code as i64;
        let record = |c: &mut Container| {
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
        };
        let _ = if rec.host_config.auto_remove {
            self.update_in_memory(&entry, record)
        } else {
            self.update(&entry, record)
        };
        // Docker's order: oom, die, then what the clean-up releases.
        if info.oom_killed {
            self.publish(&rec, "oom", &[]);
        }
        self.publish(&rec, "die", &[("exitCode", code.to_string())]);
        let rootfs = self.run_dir(&rec.id).join("rootfs");
        let _ = tokio::task::spawn_blocking(move || berth_image::snapshot::unmount_rootfs(&rootfs))
            .await;
        self.teardown_network(&entry).await;
        self.forget_execs(&rec.id);
        for mp in rec.mounts.iter().filter(|m| m.kind == "volume") {
            self.publish_volume(
                "unmount",
                &mp.name,
                &[("container", rec.id.clone()), ("driver", "local".into())],
            );
        }
        let rec = entry.snapshot();
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
        // Decided on the record as it is now: a `stop` may have come in since the exit.
        let restart = self
            .update(&entry, |c| {
                let yes = Self::should_restart(c);
                if yes {
                    c.state.restarting = true;
                    c.state.status = "restarting".into();
                }
                yes
            })
            .unwrap_or(false);
        if restart {
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
                if now.state.running || now.manually_stopped || !now.state.restarting {
                    if now.state.restarting {
                        let _ = me.update(&entry, |c| {
                            c.state.restarting = false;
                            c.state.status = "exited".into();
                        });
                    }
                    return;
                }
                let _ = me.update(&entry, |c| c.restart_count += 1);
                if let Err(e) = me.start_locked(&entry).await {
                    tracing::warn!(id = %rec.id, error = %e, "restart failed");
                }
            });
        }
    }

    fn should_restart(rec: &Container) -> bool {
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

    /// Sends `sig` through the runtime and, once sent, publishes Docker's `kill` event: for
    /// `kill`, and for the signals `stop` and `rm -f` send.
    async fn signal(&self, rec: &Container, sig: i32) -> Result<()> {
        run_runtime(self, rec, &["kill", &rec.id, &sig.to_string()]).await?;
        self.publish(rec, "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, name_or_id: &str, signal: Option<&str>) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        // As dockerd: a bad signal is refused before the container's state is looked at.
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => berth_image::spec::parse_signal(s)
                .map_err(|_| Error::invalid(format!("Invalid signal: {s}")))?,
            None => 9,
        };
        if !rec.state.running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if sig == 9 {
            let _ = self.update(&entry, |c| c.manually_stopped = true);
        }
        self.signal(&rec, sig).await?;
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
        let mut rec = entry.snapshot();
        if rec.state.restarting && !rec.state.running {
            // A policy restart may be under way: let it finish, then decide.
            let _op = entry.op.lock().await;
            rec = entry.snapshot();
        }
        if rec.state.restarting && !rec.state.running {
            // Between two runs of a restart policy: cancel the next one.
            self.update(&entry, |c| {
                c.manually_stopped = true;
                c.state.restarting = false;
                c.state.status = "exited".into();
            })?;
            self.publish(&rec, "stop", &[]);
            return Ok(());
        }
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
            if let Err(e) = self.signal(&rec, sig).await {
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
            let _ = self.signal(&rec, 9).await;
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
                    // As dockerd: a removal that went through reports no error, even after a
                    // failed start (the CLI would print "Error waiting for container" on top of
                    // the start's own error).
                    let error = if condition == "removed" {
                        None
                    } else {
                        now.error
                    };
                    return (now.exit_code, error);
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
        // No restart policy may bring it back while it is being removed. A container that
        // neither runs nor waits to restart gets the flag with the "removing" state below.
        let live = {
            let r = entry.snapshot();
            r.state.running || r.state.restarting
        };
        if force && live {
            let _ = self.update(&entry, |c| {
                c.manually_stopped = true;
                c.state.restarting = false;
            });
        }
        // A restart policy may start it again between the kill and the lock: retry.
        let mut attempts = 0;
        let _op = loop {
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
                if rec.state.paused {
                    let _ = run_runtime(self, &rec, &["resume", &rec.id]).await;
                }
                let mut rx = entry.run.subscribe();
                let _ = self.signal(&rec, 9).await;
                let _ = tokio::time::timeout(Duration::from_secs(30), async {
                    while rx.borrow().running {
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                })
                .await;
            }
            let op = entry.op.lock().await;
            if !entry.snapshot().state.running {
                break op;
            }
            attempts += 1;
            if attempts >= 3 {
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": could not stop it",
                    rec.name
                )));
            }
        };
        let rec = entry.snapshot();
        if rec.state.status == "removing" {
            return Err(Error::Conflict(format!(
                "removal of container {} is already in progress",
                rec.id
            )));
        }
        let removing = |c: &mut Container| {
            c.state.status = "removing".into();
            c.state.restarting = false;
            c.manually_stopped = true;
        };
        let _ = if rec.host_config.auto_remove {
            self.update_in_memory(&entry, removing)
        } else {
            self.update_volatile(&entry, removing)
        };
        let id = rec.id.clone();
        let run_dir = self.run_dir(&id);
        let rootfs = run_dir.join("rootfs");
        tokio::task::spawn_blocking(move || berth_image::snapshot::unmount_rootfs(&rootfs))
            .await
            .map_err(|e| Error::internal("removing the container", e))?
            .ok();
        super::remove_record_and_layer(&self.config, self.images.svc.snapshots.clone(), &id);
        // The monitor may still be giving the container back to the runtime (`delete`,
        // milliseconds). Its run directory is nobody else's, so the removal does not wait.
        super::remove_run_dir_later(run_dir);
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
        self.set_paused(name_or_id, true).await
    }

    pub async fn unpause(&self, name_or_id: &str) -> Result<()> {
        self.set_paused(name_or_id, false).await
    }

    /// Freezes or thaws every process of the container through the runtime.
    async fn set_paused(&self, name_or_id: &str, pause: bool) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        let refusal = match (pause, rec.state.running, rec.state.paused) {
            (true, false, _) => Some("is not running"),
            (true, true, true) => Some("is already paused"),
            (false, _, false) => Some("is not paused"),
            _ => None,
        };
        if let Some(why) = refusal {
            return Err(Error::Conflict(format!("Container {} {why}", rec.id)));
        }
        let (verb, status, action) = if pause {
            ("pause", "paused", "pause")
        } else {
            ("resume", "running", "unpause")
        };
        run_runtime(self, &rec, &[verb, &rec.id]).await?;
        self.update(&entry, |c| {
            c.state.paused = pause;
            c.state.status = status.into();
        })?;
        self.publish(&rec, action, &[]);
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
        self.publish(&rec, "attach", &[]);
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
            if !rec.state.running {
                // A crash between a container's exit and its clean-up leaves its root mounted
                // and its network namespace pinned.
                let rootfs = self.run_dir(&rec.id).join("rootfs");
                let _ = tokio::task::spawn_blocking(move || {
                    berth_image::snapshot::unmount_rootfs(&rootfs)
                })
                .await;
                if !rec.netns_path.is_empty() {
                    self.teardown_network(&entry).await;
                }
                // An --rm container that exited before a crash is removed now, as dockerd does.
                if rec.host_config.auto_remove && rec.has_been_started {
                    if let Err(e) = self.remove(&rec.id, true, true).await {
                        tracing::warn!(id = %rec.id, error = %e, "auto-remove failed");
                    }
                    continue;
                }
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
                    self.clone().watch_exit(entry.clone());
                    self.watch_health(entry.clone());
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
