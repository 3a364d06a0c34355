//! The monitor's configuration file, written by berthd before spawning it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Whether the monitor drives a container's init or one `docker exec` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Container,
    Exec,
}

/// Everything one monitor needs; see README.md for the meaning of each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub kind: Kind,
    /// The runtime's container id (for exec: the container the process joins).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    #[serde(default)]
    pub runtime_args: Vec<String>,
    /// The OCI bundle (container kind only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    /// An OCI process object for `runtime exec --process` (exec kind only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_json: Option<PathBuf>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    #[serde(default)]
    pub log_max_size: Option<u64>,
    #[serde(default = "one")]
    pub log_max_files: u32,
    /// Where the monitor keeps its sockets, pid files and exit.json.
    pub run_dir: PathBuf,
    /// berth-runtime's exec fifo for this container: when set, the monitor
    /// starts the container by writing to it, as `berth-runtime start` does,
    /// instead of running that command (one process less per start). Only
    /// for berth-runtime and a spec without poststart hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_fifo: Option<PathBuf>,
    /// Start the container as soon as it is created, before the ready line, instead of on
    /// a `start` request. Saves the round trip through the spawner.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_at_once: bool,
    /// With `start_at_once`: how many attach clients the spawner connects before the start
    /// (they must miss no output). The monitor then prints a `listening` line once its
    /// sockets exist, before `create`, and starts only when they are all connected.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expect_attaches: u32,
}

fn one() -> u32 {
    1
}

impl MonitorConfig {
    pub fn load(path: &Path) -> Result<MonitorConfig, Error> {
        let data =
            std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let config: MonitorConfig = serde_json::from_slice(&data)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses configurations whose kind lacks the file it needs, before anything runs.
    pub fn validate(&self) -> Result<(), Error> {
        match self.kind {
            Kind::Container if self.bundle.is_none() => {
                Err(Error::Config("container kind needs \"bundle\"".into()))
            }
            Kind::Exec if self.process_json.is_none() => {
                Err(Error::Config("exec kind needs \"process_json\"".into()))
            }
            _ if self.id.is_empty() => Err(Error::Config("\"id\" is empty".into())),
            _ => Ok(()),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
