//! Named network namespaces (bind-mounted nsfs files) and running work inside one.
//!
//! Namespaces are per thread: every `unshare`/`setns` here happens on a fresh
//! `std::thread` that exits afterwards, never on a tokio worker, so no caller's thread
//! ever changes namespace.

use std::future::Future;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{NetError, Result};

fn ns_err(path: &Path, op: &'static str, errno: nix::errno::Errno) -> NetError {
    NetError::Netns {
        path: path.to_path_buf(),
        op,
        source: std::io::Error::from_raw_os_error(errno as i32),
    }
}

/// Runs `f` on a new thread and hands back its result without blocking the async caller.
async fn on_thread<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| NetError::Worker(format!("spawning a namespace thread: {e}")))?;
    rx.await
        .map_err(|_| NetError::Worker("namespace thread panicked".into()))?
}

/// Drives `fut` to completion on a single-threaded runtime owned by the current thread,
/// so everything it opens (netlink sockets) lives in this thread's namespace.
fn block_on_here<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetError::Worker(format!("building a namespace runtime: {e}")))?;
    rt.block_on(fut)
}

/// Creates a new network namespace and pins it at `path` (a new empty file is created;
/// its parent directory must exist). Inside, `lo` is brought up.
pub async fn create_netns(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref().to_path_buf();
    on_thread(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| NetError::Netns {
                path: path.clone(),
                op: "create mount point",
                source: e,
            })?;
        let pinned = unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| ns_err(&path, "unshare", e))
            .and_then(|()| {
                mount(
                    Some(Path::new("/proc/thread-self/ns/net")),
                    &path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| ns_err(&path, "bind mount", e))
            });
        if let Err(e) = pinned {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        if let Err(e) = block_on_here(crate::link::set_up_by_name("lo")) {
            let _ = umount2(&path, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(())
    })
    .await
}

/// Unpins and deletes a namespace file made by [`create_netns`]. A missing file is not an
/// error, so this also serves as cleanup after a partial failure.
pub fn remove_netns(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(ns_err(path, "unmount", e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::Netns {
            path: path.to_path_buf(),
            op: "remove",
            source: e,
        }),
    }
}

/// Runs the future made by `make` inside the network namespace at `path`, on a dedicated
/// thread with its own single-threaded runtime.
pub async fn in_netns<T, Fut, F>(path: impl AsRef<Path>, make: F) -> Result<T>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T>>,
    F: FnOnce() -> Fut + Send + 'static,
{
    let path: PathBuf = path.as_ref().to_path_buf();
    on_thread(move || {
        enter(&path)?;
        block_on_here(make())
    })
    .await
}

/// Synchronous variant of [`in_netns`] for callers that are not async (and for tests).
pub fn in_netns_blocking<T, F>(path: impl AsRef<Path>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path: PathBuf = path.as_ref().to_path_buf();
    std::thread::spawn(move || -> Result<T> {
        enter(&path)?;
        Ok(f())
    })
    .join()
    .map_err(|_| NetError::Worker("namespace thread panicked".into()))?
}

fn enter(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| NetError::Netns {
        path: path.to_path_buf(),
        op: "open",
        source: e,
    })?;
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| ns_err(path, "setns", e))
}
