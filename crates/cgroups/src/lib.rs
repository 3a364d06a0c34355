//! berth-cgroups: Berth's cgroupfs layer, v1 and v2.
//!
//! The runtime's flow (all synchronous, no threads):
//!
//! ```no_run
//! # fn main() -> Result<(), berth_cgroups::Error> {
//! # let resources = oci_spec::runtime::LinuxResources::default();
//! use berth_cgroups::Cgroup;
//! // `create`: before the container's init can run.
//! let mut cg = Cgroup::for_container(Some("/berth/abc"), "abc")?;
//! cg.create_with(&resources)?;
//! cg.add_pid(1234)?; // or clone3(CLONE_INTO_CGROUP, cg.open_dir()?) on v2
//! let state = serde_json::to_string(&cg).unwrap(); // into state.json
//! // later processes: pause/resume/update/kill/delete
//! let cg: Cgroup = serde_json::from_str(&state).unwrap();
//! cg.freeze()?;
//! cg.thaw()?;
//! cg.kill_all()?;
//! cg.delete()?;
//! # Ok(()) }
//! ```

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

pub use cgroup::{Cgroup, V1Dir, FREEZE_TIMEOUT};
pub use error::{Error, Result};
pub use layout::{Layout, Mode, ProcCgroups};
pub use oom::{OomEvent, OomWatcher};
pub use path::CgroupPath;
pub use resources::{blkio_weight_to_io_weight, default_device_rules, shares_to_weight};
pub use stats::Stats;
