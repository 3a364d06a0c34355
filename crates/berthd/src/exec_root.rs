//! The exec root (monitors' sockets, bundles, the runtime's state) lives on a tmpfs.
//!
//! Everything there describes processes and must not outlive the machine, as under
//! dockerd's /var/run/docker, which is tmpfs wherever /run is. Where the exec root is on
//! a disk filesystem (this matters on ext4, whose inode allocation slows to a millisecond
//! after many recent deletions; a container start creates a dozen files there), berthd
//! mounts a tmpfs of its own on it, and takes it away again at a clean shutdown with no
//! container left running.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_engine::volumes::mountinfo_unescape;

/// The mount's source name, by which berthd recognises its own tmpfs.
const SOURCE: &str = "berthd-exec";
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Makes sure the exec root exists and is a tmpfs. An exec root on another filesystem
/// that already holds files (state of a berthd that did not mount one) is used as it is.
pub fn prepare(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if is_tmpfs(dir) {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_none();
    if !empty {
        tracing::info!(
            exec_root = %dir.display(),
            "the exec root is not a tmpfs and holds state: used as it is"
        );
        return Ok(());
    }
    rustix::mount::mount(
        SOURCE,
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        c"mode=0711",
    )
    .with_context(|| format!("mounting a tmpfs on the exec root {}", dir.display()))?;
    tracing::debug!(exec_root = %dir.display(), "exec root on a tmpfs of its own");
    Ok(())
}

/// At a clean shutdown: once the monitors in the exec root are gone, unmounts berthd's
/// tmpfs there, unless containers still run (they keep their state in it).
pub fn release(dir: &Path, containers_alive: bool) {
    if containers_alive || !is_ours(dir) {
        return;
    }
    // A monitor whose container just exited still gives it back to the runtime.
    if let Ok(rd) = std::fs::read_dir(dir.join("c")) {
        for run_dir in rd.flatten() {
            berth_monitor::wait_gone(&run_dir.path(), Duration::from_secs(5));
        }
    }
    if let Err(e) = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH) {
        tracing::warn!(exec_root = %dir.display(), error = %e, "unmounting the exec root");
    }
}

fn is_tmpfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == TMPFS_MAGIC)
}

/// Whether `dir` is the mount point of a tmpfs berthd mounted.
fn is_ours(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    info.lines().any(|l| {
        let mut halves = l.split(" - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            return false;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        let mut r = right.split(' ');
        let (fstype, source) = (r.next().unwrap_or_default(), r.next().unwrap_or_default());
        mountinfo_unescape(mount_point) == want && fstype == "tmpfs" && source == SOURCE
    })
}
