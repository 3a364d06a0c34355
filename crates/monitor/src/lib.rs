//! berth-monitor: the small single-threaded process berthd starts for every
//! container and every exec. It drives the OCI runtime, holds the process's
//! stdio or pty, writes its json-file log, serves attach and control clients
//! on unix sockets, reaps the process and records its exit, and lives on
//! when berthd restarts. README.md holds the contract berthd relies on.
//!
//! This library holds both sides: the types and the blocking client berthd
//! uses, and [`run`], the monitor itself (called by the `berth-monitor`
//! binary).

mod client;
mod config;
mod logfile;
mod monitor;
mod oom;
pub mod protocol;
mod runtime;
mod stderr_log;
mod sys;
mod timefmt;

pub use client::{
    attach, attach_socket_path, read_exit, spawn, spawn_then, status_or_exit, wait_gone, Control,
    Ready,
};
pub use config::{Kind, MonitorConfig};
pub use monitor::run;
pub use protocol::{AttachRequest, ExitInfo, State, Status};

/// File names inside a monitor's `run_dir`.
pub mod paths {
    pub const CONTROL: &str = "control.sock";
    pub const ATTACH: &str = "attach.sock";
    pub const CONSOLE: &str = "console.sock";
    pub const MONITOR_PID: &str = "monitor.pid";
    pub const INIT_PID: &str = "init.pid";
    pub const EXEC_PID: &str = "exec.pid";
    pub const EXIT_JSON: &str = "exit.json";
    /// The runtime's own log (`--log`), where its error messages are read.
    pub const RUNTIME_LOG: &str = "runtime.log";
    /// The monitor's stderr when started through [`crate::spawn`].
    pub const MONITOR_LOG: &str = "monitor.log";
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid monitor config: {0}")]
    Config(String),
    /// The monitor answered `{"ok":false,"error":...}`.
    #[error("{0}")]
    Monitor(String),
    #[error("monitor protocol: {0}")]
    Protocol(String),
    /// The monitor closed the connection without answering (it exited).
    #[error("the monitor is gone")]
    Gone,
}

impl Error {
    pub(crate) fn io(context: String, source: std::io::Error) -> Error {
        Error::Io { context, source }
    }
}
