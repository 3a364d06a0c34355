//! Typed errors. Every error that comes from user input names the OCI field it came from, so the
//! runtime can report it the way runc does ("linux.resources.cpu.cpus: ...").

use std::io;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value in `linux.resources` is out of range or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidResource { field: &'static str, reason: String },

    /// `linux.cgroupsPath` (or the container id used in its place) is unusable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    /// The resource needs a controller that this host does not offer (not mounted on v1, not
    /// enabled in `cgroup.controllers` on v2).
    #[error("{field}: cgroup controller {controller:?} is not available on this host")]
    ControllerUnavailable {
        field: &'static str,
        controller: String,
    },

    /// The resource exists in the spec but not in this cgroup version.
    #[error("{field} is not supported on cgroup {version}")]
    Unsupported {
        field: &'static str,
        version: &'static str,
    },

    /// No cgroup filesystem in the mount table, or it could not be parsed.
    #[error("cgroup layout: {0}")]
    Layout(String),

    /// A kernel file had content we could not parse.
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },

    /// A filesystem operation failed. `op` is the syscall-level verb (mkdir, open, write, ...).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing a value into a cgroup file was refused by the kernel.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    /// Freezing did not complete in time (a task stuck in uninterruptible sleep, for example).
    #[error("timed out waiting for {path} to become {state}")]
    Timeout { path: PathBuf, state: &'static str },

    /// The cgroup still has processes (or children) after the retries of `delete`.
    #[error("cgroup {path} is busy")]
    Busy { path: PathBuf },

    /// A bpf(2) command failed while installing the v2 device filter.
    #[error("bpf {op}: {source}{}", if log.is_empty() { String::new() } else { format!("\nverifier log:\n{log}") })]
    Bpf {
        op: &'static str,
        #[source]
        source: io::Error,
        log: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidResource {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the underlying OS error is `errno`; lets callers treat ENOENT and friends
    /// specially without matching every variant.
    pub fn is_errno(&self, errno: i32) -> bool {
        let src = match self {
            Error::Io { source, .. } | Error::Write { source, .. } | Error::Bpf { source, .. } => {
                source
            }
            _ => return false,
        };
        src.raw_os_error() == Some(errno)
    }
}
