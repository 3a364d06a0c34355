//! `docker exec`: a process started in a running container through its own exec monitor,
//! which holds the process's stdio and records its exit.

use super::Containers;
use crate::error::{Error, Result};
use berth_monitor::{AttachRequest, Control, Kind, MonitorConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The body of `POST /containers/{id}/exec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    pub tty: bool,
    #[serde(deserialize_with = "null_vec")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "null_vec")]
    pub cmd: Vec<String>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
}

fn null_vec<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

pub struct ExecEntry {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
    pub run_dir: PathBuf,
    /// Woken once the exit code is recorded.
    pub exited: tokio::sync::Notify,
}

#[derive(Clone, Debug, Default)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub pid: i64,
    pub exit_code: Option<i64>,
}

#[derive(Default)]
pub struct ExecTable {
    map: Mutex<HashMap<String, Arc<ExecEntry>>>,
}

impl ExecTable {
    fn get(&self, id: &str) -> Result<Arc<ExecEntry>> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }
}

impl ExecEntry {
    fn current(&self) -> ExecState {
        let mut st = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        if st.started && st.exit_code.is_none() {
            if let Some(info) = berth_monitor::read_exit(&self.run_dir) {
                st.exit_code = Some(info.exit_code as i64);
                st.running = false;
                if let Ok(mut s) = self.state.lock() {
                    *s = st.clone();
                }
            }
        }
        st
    }

    pub fn inspect(&self) -> Value {
        let st = self.current();
        let (entry, args) = self
            .config
            .cmd
            .split_first()
            .map(|(a, b)| (a.clone(), b.to_vec()))
            .unwrap_or_default();
        json!({
            "ID": self.id,
            "Running": st.running,
            "ExitCode": st.exit_code,
            "ProcessConfig": {
                "tty": self.config.tty, "entrypoint": entry, "arguments": args,
                "privileged": self.config.privileged, "user": self.config.user,
            },
            "OpenStdin": self.config.attach_stdin,
            "OpenStderr": self.config.attach_stderr,
            "OpenStdout": self.config.attach_stdout,
            "CanRemove": false,
            "ContainerID": self.container_id,
            "DetachKeys": self.config.detach_keys,
            "Pid": st.pid,
        })
    }
}

impl Containers {
    pub fn exec_create(&self, name_or_id: &str, config: ExecConfig) -> Result<String> {
        let c = self.get(name_or_id)?.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if c.state.paused {
            return Err(Error::Conflict(format!(
                "container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if config.cmd.is_empty() {
            return Err(Error::invalid("No exec command specified"));
        }
        let id = crate::ids::new_id();
        let run_dir = self.config.exec_run_dir(&id);
        let entry = Arc::new(ExecEntry {
            id: id.clone(),
            container_id: c.id.clone(),
            config: config.clone(),
            state: Mutex::new(ExecState::default()),
            run_dir,
            exited: tokio::sync::Notify::new(),
        });
        self.execs
            .map
            .lock()
            .map_err(|_| Error::Internal("exec table poisoned".into()))?
            .insert(id.clone(), entry);
        self.publish(
            &c,
            &format!("exec_create: {}", config.cmd.join(" ")),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    pub fn exec_inspect(&self, exec_id: &str) -> Result<Value> {
        Ok(self.execs.get(exec_id)?.inspect())
    }

    pub fn exec_config(&self, exec_id: &str) -> Result<ExecConfig> {
        Ok(self.execs.get(exec_id)?.config.clone())
    }

    /// Starts the process; with `attach`, returns the monitor stream connected before it ran.
    pub async fn exec_start(
        self: &Arc<Self>,
        exec_id: &str,
        detach: bool,
    ) -> Result<Option<std::os::unix::net::UnixStream>> {
        let ex = self.execs.get(exec_id)?;
        {
            let mut st = ex
                .state
                .lock()
                .map_err(|_| Error::Internal("exec poisoned".into()))?;
            if st.started {
                return Err(Error::Conflict(format!(
                    "Error: Exec command {exec_id} has already run"
                )));
            }
            st.started = true;
            st.running = true;
        }
        let c = self.get(&ex.container_id)?.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let cfg = &ex.config;
        let rootfs = self.run_dir(&c.id).join("rootfs");
        let user_spec = if cfg.user.is_empty() {
            c.config.user.clone()
        } else {
            cfg.user.clone()
        };
        let rf = rootfs.clone();
        let user = match tokio::task::spawn_blocking(move || {
            berth_image::spec::resolve_user(&rf, &user_spec)
        })
        .await
        .map_err(|e| Error::internal("resolving the user", e))
        .and_then(|r| r.map_err(|e| Error::invalid(e.to_string())))
        {
            Ok(u) => u,
            Err(e) => {
                // As Docker: the exec ran and failed, with the code of a command that
                // cannot run.
                if let Ok(mut st) = ex.state.lock() {
                    st.running = false;
                    st.exit_code = Some(126);
                }
                return Err(e);
            }
        };
        let mut env = berth_image::spec::merge_env(&c.config.env, &cfg.env);
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.insert(0, format!("HOSTNAME={}", c.config.hostname));
        }
        super::spec::default_env(&mut env, &user.home, cfg.tty);
        let mut hc = c.host_config.clone();
        if cfg.privileged {
            hc.privileged = true;
        }
        let caps = super::spec::capabilities(&hc)?;
        let sec = super::spec::security_opts(&c.host_config)?;
        let cwd = if !cfg.working_dir.is_empty() {
            cfg.working_dir.clone()
        } else if !c.config.working_dir.is_empty() {
            c.config.working_dir.clone()
        } else {
            "/".into()
        };
        let process = json!({
            "terminal": cfg.tty,
            "user": { "uid": user.uid, "gid": user.gid, "additionalGids": super::spec::additional_gids(&user, &c.host_config.group_add)? },
            "args": cfg.cmd,
            "env": env,
            "cwd": cwd,
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "noNewPrivileges": sec.no_new_privileges,
        });
        std::fs::create_dir_all(&ex.run_dir)?;
        let pjson = ex.run_dir.join("process.json");
        crate::store::write_json_volatile(&pjson, &process)?;
        let runtime = self
            .config
            .runtime_path(Some(&c.runtime))
            .ok_or_else(|| Error::invalid(format!("unknown runtime {}", c.runtime)))?;
        let mcfg = MonitorConfig {
            kind: Kind::Exec,
            id: c.id.clone(),
            exec_id: Some(ex.id.clone()),
            runtime,
            runtime_root: self.config.runtime_root(),
            runtime_args: self.config.runtime_args(Some(&c.runtime)),
            bundle: None,
            process_json: Some(pjson),
            tty: cfg.tty,
            open_stdin: cfg.attach_stdin,
            stdin_once: true,
            log_path: None,
            log_max_size: None,
            log_max_files: 1,
            run_dir: ex.run_dir.clone(),
            start_fifo: None,
            start_at_once: false,
            expect_attaches: 0,
        };
        let mpath = ex.run_dir.join("monitor.json");
        crate::store::write_json_volatile(&mpath, &mcfg)?;
        let monitor = self.config.monitor.clone();
        let rd = ex.run_dir.clone();
        let attach = (!detach).then_some(AttachRequest {
            stdin: cfg.attach_stdin,
            stdout: cfg.attach_stdout,
            stderr: cfg.attach_stderr,
        });
        let res = tokio::task::spawn_blocking(
            move || -> Result<(i32, Option<std::os::unix::net::UnixStream>)> {
                berth_monitor::spawn(&mpath, &monitor).map_err(exec_err)?;
                let stream = match attach {
                    Some(a) => Some(berth_monitor::attach(&rd, a).map_err(exec_err)?),
                    None => None,
                };
                let pid = Control::connect(&rd)
                    .map_err(exec_err)?
                    .start()
                    .map_err(exec_err)?;
                Ok((pid, stream))
            },
        )
        .await
        .map_err(|e| Error::internal("starting the exec", e))?;
        let (pid, stream) = match res {
            Ok(v) => v,
            Err(e) => {
                let code = cannot_run_code(&e.to_string()).unwrap_or(126);
                if let Ok(mut st) = ex.state.lock() {
                    st.running = false;
                    st.exit_code = Some(code);
                }
                return Err(e);
            }
        };
        if let Ok(mut st) = ex.state.lock() {
            st.pid = pid as i64;
        }
        self.publish(
            &c,
            &format!("exec_start: {}", cfg.cmd.join(" ")),
            &[("execID", ex.id.clone())],
        );
        let me = self.clone();
        let ex2 = ex.clone();
        tokio::spawn(async move {
            let rd = ex2.run_dir.clone();
            let info = tokio::task::spawn_blocking(move || {
                Control::connect(&rd)
                    .and_then(|c| c.wait())
                    .ok()
                    .or_else(|| berth_monitor::read_exit(&rd))
            })
            .await
            .ok()
            .flatten();
            let code = info.map(|i| i.exit_code as i64).unwrap_or(126);
            if let Ok(mut st) = ex2.state.lock() {
                st.running = false;
                st.exit_code = Some(code);
            }
            ex2.exited.notify_waiters();
            if let Ok(c) = me.get(&ex2.container_id) {
                me.publish(
                    &c.snapshot(),
                    "exec_die",
                    &[("execID", ex2.id.clone()), ("exitCode", code.to_string())],
                );
            }
        });
        Ok(stream)
    }

    pub async fn exec_resize(&self, exec_id: &str, h: u16, w: u16) -> Result<()> {
        let ex = self.execs.get(exec_id)?;
        let rd = ex.run_dir.clone();
        tokio::task::spawn_blocking(move || Control::connect(&rd)?.resize(h, w))
            .await
            .map_err(|e| Error::internal("resizing", e))?
            .map_err(|e| Error::Conflict(e.to_string()))
    }

    /// The exit code of a finished exec, None while it runs (or when there is none).
    pub(crate) fn exec_exit_code(&self, exec_id: &str) -> Option<i64> {
        self.execs.get(exec_id).ok()?.current().exit_code
    }

    /// The exec's exit code once it is recorded, waiting up to `within`.
    pub(crate) async fn exec_wait_exit(&self, exec_id: &str, within: Duration) -> Option<i64> {
        let ex = self.execs.get(exec_id).ok()?;
        let recorded = async {
            loop {
                let exited = ex.exited.notified();
                if let Some(code) = ex.current().exit_code {
                    return code;
                }
                exited.await;
            }
        };
        tokio::time::timeout(within, recorded).await.ok()
    }

    /// SIGKILL to a running exec's process (a health probe past its timeout).
    pub(crate) fn exec_kill(&self, exec_id: &str) {
        let Ok(ex) = self.execs.get(exec_id) else {
            return;
        };
        let pid = ex.current().pid;
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32).filter(|_| pid > 0) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }

    /// Drops one exec instance and its files (a health probe's, once read).
    pub(crate) fn forget_exec(&self, exec_id: &str) {
        if let Ok(mut m) = self.execs.map.lock() {
            if let Some(e) = m.remove(exec_id) {
                let _ = std::fs::remove_dir_all(&e.run_dir);
            }
        }
    }

    /// Drops the exec instances of a removed container.
    pub(crate) fn forget_execs(&self, container_id: &str) {
        if let Ok(mut m) = self.execs.map.lock() {
            m.retain(|_, e| {
                let keep = e.container_id != container_id;
                if !keep {
                    let _ = std::fs::remove_dir_all(&e.run_dir);
                }
                keep
            });
        }
    }
}

/// Docker's exit code for a process the runtime could not start, from the runtime's words:
/// 127 when the command is not found, 126 when it is not executable; None for other causes.
pub(crate) fn cannot_run_code(msg: &str) -> Option<i64> {
    if msg.contains("not found") || msg.contains("no such file") {
        Some(127)
    } else if msg.contains("permission denied") {
        Some(126)
    } else {
        None
    }
}

/// The runtime's words for an exec that could not start: Docker answers 126/127 from them.
fn exec_err(e: berth_monitor::Error) -> Error {
    match e {
        berth_monitor::Error::Monitor(msg) => {
            Error::InvalidParameter(format!("OCI runtime exec failed: {msg}"))
        }
        other => Error::Internal(other.to_string()),
    }
}
