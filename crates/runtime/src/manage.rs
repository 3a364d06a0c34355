//! Operations on a running container's cgroup: pause, resume, update, and
//! the statistics and OOM events `events` reports.

use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::state::{Root, State, Status};

fn running_cgroup(
    root: &Root,
    id: &str,
    action: &'static str,
    want: &[Status],
) -> Result<(State, berth_cgroups::Cgroup)> {
    let state = root.load(id)?;
    let status = state.live_status(&root.container_dir(id));
    if !want.contains(&status) {
        return Err(Error::WrongStatus {
            id: id.into(),
            action,
            status: status.to_string(),
        });
    }
    // Only a rootless container runs without one.
    let cg = state.cgroup.clone().ok_or_else(|| {
        Error::Rootless(format!("cannot {action} a container that has no cgroup"))
    })?;
    Ok((state, cg))
}

pub fn pause(root: &Root, id: &str) -> Result<()> {
    let (_, cg) = running_cgroup(root, id, "pause", &[Status::Running, Status::Created])?;
    cg.freeze()?;
    Ok(())
}

pub fn resume(root: &Root, id: &str) -> Result<()> {
    let (_, cg) = running_cgroup(root, id, "resume", &[Status::Paused])?;
    cg.thaw()?;
    Ok(())
}

pub fn update(root: &Root, id: &str, resources: &LinuxResources) -> Result<()> {
    let (_, cg) = running_cgroup(
        root,
        id,
        "update",
        &[Status::Running, Status::Created, Status::Paused],
    )?;
    cg.apply(resources)?;
    Ok(())
}

/// One `{"type":"stats",...}` event in runc's shape.
pub fn stats_event(root: &Root, id: &str) -> Result<serde_json::Value> {
    let (_, cg) = running_cgroup(
        root,
        id,
        "get stats of",
        &[Status::Running, Status::Created, Status::Paused],
    )?;
    let stats = cg.stats()?;
    Ok(serde_json::json!({"type": "stats", "id": id, "data": stats}))
}

/// Streams events to `emit` until the container stops: stats every
/// `interval`, and an `oom` event whenever the kernel OOM-kills in it.
pub fn events(
    root: &Root,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(serde_json::Value),
) -> Result<()> {
    let (state, cg) = running_cgroup(
        root,
        id,
        "watch",
        &[Status::Running, Status::Created, Status::Paused],
    )?;
    let mut watcher = cg.oom_watcher().ok();
    let dir = root.container_dir(id);
    loop {
        if state.live_status(&dir) == Status::Stopped {
            return Ok(());
        }
        let oom = match &watcher {
            Some(w) => wait_readable(w.as_fd(), interval),
            None => {
                std::thread::sleep(interval);
                false
            }
        };
        if oom {
            if let Some(w) = watcher.as_mut() {
                match w.wait() {
                    Ok(berth_cgroups::OomEvent::Oom) => {
                        emit(serde_json::json!({"type": "oom", "id": id}))
                    }
                    _ => watcher = None,
                }
            }
        } else if let Ok(s) = cg.stats() {
            emit(serde_json::json!({"type": "stats", "id": id, "data": s}));
        }
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN | PollFlags::POLLPRI)];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    matches!(poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE)), Ok(n) if n > 0)
}
