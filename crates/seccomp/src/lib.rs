//! berth-seccomp: OCI seccomp profiles compiled to classic BPF and installed without libseccomp
//! in the container's init child.
//!
//! Life of a profile in the runtime:
//! 1. parent, before fork: [`FilterCache::get_or_compile`] (or [`compile`]) → [`CompiledFilter`];
//! 2. init child, last step before `execve`: [`install`] (raw syscall, no allocation);
//! 3. if it returned a listener fd: [`send_fd`] it to the parent over the sync socket, the parent
//!    [`recv_fd`]s it and [`send_to_listener`]s it to `linux.seccomp.listenerPath`.
//!
//! The daemon side converts Docker's default profile with [`docker_profile::to_oci`].

mod cache;
mod compile;
pub mod docker_profile;
mod enosys;
mod error;
mod install;
mod listener;
#[cfg(target_env = "musl")]
mod musl_link;
mod program;

pub use cache::{CacheStatus, FilterCache};
pub use compile::{compile, parse_oci_seccomp};
pub use error::Error;
pub use install::install;
pub use listener::{process_state, recv_fd, recv_listener_message, send_fd, send_to_listener};
pub use program::{flags, CompiledFilter, SockFilter, BPF_MAXINSNS};
