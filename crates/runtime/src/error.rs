//! The runtime's error type. Messages reuse runc's words where containerd and
//! Docker match on them ("does not exist", "container not running", ...).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config.json: {field}: {reason}")]
    InvalidConfig { field: String, reason: String },

    #[error("cannot read {path}: {io}")]
    ReadConfig { path: PathBuf, io: std::io::Error },

    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("container with id exists: {0}")]
    Exists(String),

    #[error("container {0:?} does not exist")]
    NotExist(String),

    #[error("container not running")]
    NotRunning,

    #[error("cannot {action} container {id:?}: it is {status}")]
    WrongStatus {
        id: String,
        action: &'static str,
        status: String,
    },

    #[error("cannot delete container {id:?} that is not stopped: {status}")]
    NotStopped { id: String, status: String },

    #[error("invalid signal {0:?}")]
    InvalidSignal(String),

    #[error("{context}: {source}")]
    Sys {
        context: String,
        source: std::io::Error,
    },

    /// Something a container needs that a runtime without root cannot give.
    #[error("rootless container: {0}")]
    Rootless(String),

    #[error("container init failed: {0}")]
    Init(String),

    #[error("error running hook: {kind} hook {path:?}: {reason}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        reason: String,
    },

    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),

    #[error(transparent)]
    Seccomp(#[from] berth_seccomp::Error),

    #[error("corrupt state file {path}: {reason}")]
    CorruptState { path: PathBuf, reason: String },
}

impl Error {
    /// An error the container's init (or exec) child reported; it already carries the
    /// "container init failed" prefix when it was one itself, so it is not repeated.
    pub fn from_child(msg: &[u8]) -> Error {
        let text = String::from_utf8_lossy(msg);
        let text = text
            .strip_prefix("container init failed: ")
            .unwrap_or(&text);
        Error::Init(text.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Adds a description of what was being done to an `io::Result`.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            context: what(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        })
    }
}

impl<T> Context<T> for rustix::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            context: what(),
            source: std::io::Error::from_raw_os_error(errno.raw_os_error()),
        })
    }
}
