//! The per-container state directory under the runtime root: `state.json`
//! (written atomically) and the `exec.fifo` that holds init until `start`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::util;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers of a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init; 0 while creating.
    pub pid: i32,
    /// Start time of init in clock ticks since boot (/proc/PID/stat field
    /// 22), so a recycled pid is not mistaken for the container.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    /// The status last recorded; the live status is derived from it.
    pub status: Status,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// The container's cgroup, for kill --all, ps, pause, update and delete.
    #[serde(default)]
    pub cgroup: Option<berth_cgroups::Cgroup>,
}

impl State {
    /// The live status: recorded status checked against the process.
    pub fn live_status(&self, dir: &Path) -> Status {
        if self.status == Status::Creating {
            return Status::Creating;
        }
        if self.pid <= 0 || !process_alive(self.pid, self.pid_start_time) {
            return Status::Stopped;
        }
        if self.is_frozen() {
            return Status::Paused;
        }
        if dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    fn is_frozen(&self) -> bool {
        self.cgroup
            .as_ref()
            .is_some_and(|c| c.is_frozen().unwrap_or(false))
    }

    /// The OCI state document (what `state` prints), with runc's extra
    /// fields that containerd reads.
    pub fn to_oci_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        let mut v = serde_json::json!({
            "ociVersion": crate::OCI_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.to_string(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        });
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

/// The runtime's root directory (`--root`), holding one directory per
/// container.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Root { path: path.into() }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Creates the container's state directory; fails if it exists.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.path)
            .map_err(|source| Error::Sys {
                context: format!("create runtime root {}", self.path.display()),
                source,
            })?;
        let dir = self.container_dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(source) => Err(Error::Sys {
                context: format!("create state directory {}", dir.display()),
                source,
            }),
        }
    }

    pub fn load(&self, id: &str) -> Result<State> {
        crate::spec::validate_id(id).map_err(|_| Error::NotExist(id.to_string()))?;
        let path = self.container_dir(id).join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.to_string()))
            }
            Err(source) => {
                return Err(Error::Sys {
                    context: format!("read {}", path.display()),
                    source,
                })
            }
        };
        serde_json::from_slice(&data).map_err(|e| Error::CorruptState {
            path,
            reason: e.to_string(),
        })
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let path = self.container_dir(&state.id).join(STATE_FILE);
        let data = serde_json::to_vec(state).map_err(|e| Error::CorruptState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        util::write_replace_volatile(&path, &data).map_err(|source| Error::Sys {
            context: format!("write {}", path.display()),
            source,
        })
    }

    /// Ids of every container with a state directory, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Sys {
                    context: format!("read {}", self.path.display()),
                    source,
                })
            }
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Reads the state character and start time of a process.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // Field 22 overall is the 20th after the state field.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub fn process_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some((state, start)) => state != 'Z' && state != 'X' && start == start_time,
        None => false,
    }
}
