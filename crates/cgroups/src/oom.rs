//! OOM notifications for `runc events`.
//!
//! v1: an eventfd registered through cgroup.event_control against memory.oom_control; the
//! kernel signals it on every OOM in the cgroup, and also when the cgroup is removed.
//! v2: there is no eventfd interface; memory.events changes (a kernfs notification, seen by
//! inotify as IN_MODIFY) and its `oom_kill` counter tells whether an OOM kill happened.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};
use crate::fsutil::{CgDir, NumBuf};
use crate::stats::parse_kv;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// One or more OOM events (v1) or new OOM kills (v2) happened.
    Oom,
    /// The cgroup was removed; no further events will come.
    Gone,
}

#[derive(Debug)]
pub struct OomWatcher {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    V1 {
        efd: OwnedFd,
        dir: PathBuf,
        // Registration lasts as long as this fd is open.
        _oom_control: OwnedFd,
    },
    V2 {
        inotify: OwnedFd,
        dir: PathBuf,
        last_kills: u64,
    },
}

impl OomWatcher {
    pub(crate) fn v1(memory_dir: &Path) -> Result<OomWatcher> {
        let d = CgDir::open(memory_dir)?;
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
            .map_err(|e| Error::io("eventfd", memory_dir, e.into()))?;
        let oc = rustix::fs::openat(
            &d,
            "memory.oom_control",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", d.file_path("memory.oom_control"), e.into()))?;
        let mut line = Vec::with_capacity(24);
        let mut nb = NumBuf::new();
        line.extend_from_slice(nb.fmt_i64(std::os::fd::AsRawFd::as_raw_fd(&efd) as i64));
        line.push(b' ');
        line.extend_from_slice(nb.fmt_i64(std::os::fd::AsRawFd::as_raw_fd(&oc) as i64));
        d.write("cgroup.event_control", &line)?;
        Ok(OomWatcher {
            inner: Inner::V1 {
                efd,
                dir: memory_dir.to_path_buf(),
                _oom_control: oc,
            },
        })
    }

    pub(crate) fn v2(dir: &Path) -> Result<OomWatcher> {
        let inotify = rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::CLOEXEC)
            .map_err(|e| Error::io("inotify_init", dir, e.into()))?;
        let events = dir.join("memory.events");
        rustix::fs::inotify::add_watch(&inotify, &events, rustix::fs::inotify::WatchFlags::MODIFY)
            .map_err(|e| Error::io("inotify_add_watch", &events, e.into()))?;
        let last_kills = read_kills(dir).unwrap_or(0);
        Ok(OomWatcher {
            inner: Inner::V2 {
                inotify,
                dir: dir.to_path_buf(),
                last_kills,
            },
        })
    }

    /// Blocks until the next OOM event or the cgroup's removal.
    pub fn wait(&mut self) -> Result<OomEvent> {
        match &mut self.inner {
            Inner::V1 { efd, dir, .. } => {
                let mut b = [0u8; 8];
                loop {
                    match rustix::io::read(&*efd, &mut b) {
                        Ok(_) => break,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => return Err(Error::io("read eventfd", &*dir, e.into())),
                    }
                }
                // Removal signals the eventfd too; tell the two apart by the directory.
                if dir.join("memory.oom_control").exists() {
                    Ok(OomEvent::Oom)
                } else {
                    Ok(OomEvent::Gone)
                }
            }
            Inner::V2 {
                inotify,
                dir,
                last_kills,
            } => loop {
                match read_kills(dir) {
                    Some(k) if k > *last_kills => {
                        *last_kills = k;
                        return Ok(OomEvent::Oom);
                    }
                    Some(_) => {}
                    None => return Ok(OomEvent::Gone),
                }
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1024];
                let mut r = rustix::fs::inotify::Reader::new(&*inotify, &mut buf);
                match r.next() {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(Error::io("read inotify", &*dir, e.into())),
                }
            },
        }
    }

    /// A descriptor that becomes readable when [`OomWatcher::wait`] would not block (for a
    /// poll loop that watches other things too). On v2 a readable fd can be a memory.events
    /// change that is not an OOM kill; `wait` then blocks again, so check with poll first.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::V1 { efd, .. } => efd.as_fd(),
            Inner::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

fn read_kills(dir: &Path) -> Option<u64> {
    let t = std::fs::read_to_string(dir.join("memory.events")).ok()?;
    Some(parse_kv(&t).get("oom_kill").copied().unwrap_or(0))
}
