//! berth-cgroups: Berth's cgroupfs layer, v1 and v2, for a single-threaded runtime process.
//!
//! The layout (legacy v1, hybrid, unified v2) is read from mountinfo at run time
//! ([`Layout::detect`], or [`Layout::from_mountinfo`] on any text, e.g. a fake tree in tests).
//! A [`Cgroup`] is the container's set of directories; it holds paths only and serializes to
//! JSON, so the process that creates it can store it in state.json and later processes
//! (`pause`, `update`, `kill`, `delete`, `events`) reopen it with serde.
//!
//! The runtime's flow:
//!
//! ```no_run
//! # fn main() -> Result<(), berth_cgroups::Error> {
//! # let resources = oci_spec::runtime::LinuxResources::default();
//! use berth_cgroups::Cgroup;
//! // `create`, before the container's init can run: place per linux.cgroupsPath
//! // (None → "/<id>"), mkdir in every hierarchy, write the limits. On error nothing is left.
//! let mut cg = Cgroup::for_container(Some("/berth/abc"), "abc")?;
//! cg.create_with(&resources)?;
//! // Then put init in it: add_pid works everywhere; on v2 (and for the v2 part of hybrid)
//! // clone3(CLONE_INTO_CGROUP) with cg.open_dir()? avoids the window outside the cgroup.
//! cg.add_pid(1234)?;
//! let state = serde_json::to_string(&cg).unwrap(); // into state.json
//!
//! // Later processes:
//! let cg: Cgroup = serde_json::from_str(&state).unwrap();
//! cg.freeze()?; // pause
//! cg.thaw()?; // resume
//! cg.apply(&resources)?; // update: writes only the fields present
//! let _pids = cg.pids()?; // ps, and exec joins with add_pid
//! let _stats = cg.stats()?; // events --stats
//! let _oom = cg.oom_watcher()?; // events: poll as_fd() or block in wait()
//! cg.signal_all(libc::SIGTERM)?; // kill --all
//! cg.kill_all()?; // delete --force
//! cg.delete()?; // delete: idempotent, fine after an OOM kill
//! # Ok(()) }
//! ```
//!
//! Device rules: on v1 they become devices.allow/deny writes, on v2 a BPF_CGROUP_DEVICE
//! program ([`devices_bpf`]). Like runc, the caller appends [`default_device_rules`] (and an
//! allow rule per `linux.devices` entry) to the spec's own `linux.resources.devices`.

mod cgroup;
pub mod devices_bpf;
mod error;
mod fsutil;
pub mod layout;
mod oom;
pub mod path;
pub mod resources;
pub mod stats;
mod v1;
mod v2;

pub use cgroup::{join_self, Cgroup, V1Dir, FREEZE_TIMEOUT};
pub use error::{Error, Result};
pub use layout::{Layout, Mode, ProcCgroups};
pub use oom::{OomEvent, OomWatcher};
pub use path::CgroupPath;
pub use resources::{blkio_weight_to_io_weight, default_device_rules, shares_to_weight};
pub use stats::Stats;
