//! berth-runtime: create and manage one container from an OCI bundle.
//!
//! The library is synchronous and must only be used from a single-threaded
//! process: container creation forks with namespace flags, and the kernel
//! refuses several namespace operations to multi-threaded callers.

pub mod capabilities;
mod console;
pub mod container;
pub mod default_spec;
pub mod error;
pub mod exe_seal;
pub mod exec;
pub mod exec_trampoline;
pub mod features;
mod hooks;
mod init;
pub mod manage;
mod namespaces;
mod process;
pub mod rootfs;
pub mod run;
pub mod spec;
pub mod state;
pub mod sys;
pub mod util;

pub use container::CreateOptions;
pub use error::{Error, Result};
pub use state::{Root, State, Status};

/// The OCI runtime spec version Berth implements.
pub const OCI_VERSION: &str = "1.2.1";
