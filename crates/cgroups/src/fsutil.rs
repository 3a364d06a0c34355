//! Small, allocation-light file access for cgroupfs.
//!
//! A cgroup directory is opened once (O_PATH) and its control files are reached with openat, so
//! writing a dozen limits costs a dozen open+write+close triples and no path building. Paths are
//! only joined when an error needs to name the file.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};

pub(crate) struct CgDir<'p> {
    fd: OwnedFd,
    path: &'p Path,
}

/// A control file of a [`CgDir`] held open.
pub(crate) struct CgFile<'d, 'p> {
    dir: &'d CgDir<'p>,
    file: &'d str,
    fd: OwnedFd,
}

impl CgFile<'_, '_> {
    /// One write(2) of the whole value, as [`CgDir::write`].
    pub(crate) fn write(&self, value: &[u8]) -> Result<()> {
        rustix::io::write(&self.fd, value)
            .map_err(|e| self.dir.write_error(self.file, value, e))?;
        tracing::trace!(dir = %self.dir.path.display(), file = self.file, value = %String::from_utf8_lossy(value), "cgroup write");
        Ok(())
    }
}

impl<'p> CgDir<'p> {
    pub(crate) fn open(path: &'p Path) -> Result<CgDir<'p>> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", path, e.into()))?;
        Ok(CgDir { fd, path })
    }

    pub(crate) fn file_path(&self, file: &str) -> PathBuf {
        self.path.join(file)
    }

    pub(crate) fn exists(&self, file: &str) -> bool {
        rustix::fs::accessat(
            &self.fd,
            file,
            rustix::fs::Access::EXISTS,
            rustix::fs::AtFlags::empty(),
        )
        .is_ok()
    }

    /// One write(2) of the whole value: cgroupfs parses each write as one command, so splitting
    /// a value over two writes would be wrong, not just slow. O_APPEND changes nothing on
    /// cgroupfs, but on the plain files of a test tree it keeps every write, so tests can check
    /// sequences such as device rules, not just the last value.
    pub(crate) fn write(&self, file: &str, value: &[u8]) -> Result<()> {
        // An open that fails is reported as the write it was for, with the value.
        let fd = rustix::fs::openat(
            &self.fd,
            file,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.write_error(file, value, e))?;
        CgFile {
            dir: self,
            file,
            fd,
        }
        .write(value)
    }

    fn write_error(&self, file: &str, value: &[u8], e: rustix::io::Errno) -> Error {
        Error::Write {
            path: self.file_path(file),
            value: String::from_utf8_lossy(value).into_owned(),
            source: e.into(),
        }
    }

    /// Opens a control file for a series of writes, each one command (device rules: the
    /// kernel takes one per write, and a container gets a score of them).
    pub(crate) fn open_file<'d>(&'d self, file: &'d str) -> Result<CgFile<'d, 'p>> {
        let fd = rustix::fs::openat(
            &self.fd,
            file,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", self.file_path(file), e.into()))?;
        Ok(CgFile {
            dir: self,
            file,
            fd,
        })
    }

    pub(crate) fn write_num(&self, file: &str, v: i64) -> Result<()> {
        let mut buf = NumBuf::new();
        self.write(file, buf.fmt_i64(v))
    }

    pub(crate) fn write_u64(&self, file: &str, v: u64) -> Result<()> {
        let mut buf = NumBuf::new();
        self.write(file, buf.fmt_u64(v))
    }

    /// Reads a whole (small) control file into `buf`, which is cleared first.
    pub(crate) fn read_into(&self, file: &str, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let fd = rustix::fs::openat(
            &self.fd,
            file,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", self.file_path(file), e.into()))?;
        read_fd_into(&fd, buf).map_err(|e| Error::io("read", self.file_path(file), e))
    }

    pub(crate) fn read_string(&self, file: &str) -> Result<String> {
        let mut buf = Vec::with_capacity(64);
        self.read_into(file, &mut buf)?;
        String::from_utf8(buf).map_err(|_| Error::Parse {
            path: self.file_path(file),
            reason: "not UTF-8".into(),
        })
    }

    /// Reads a file holding one integer, or `max` (returned as `None`).
    pub(crate) fn read_u64_or_max(&self, file: &str) -> Result<Option<u64>> {
        let s = self.read_string(file)?;
        let t = s.trim();
        if t == "max" {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| Error::Parse {
            path: self.file_path(file),
            reason: format!("expected an integer, got {t:?}"),
        })
    }

    pub(crate) fn read_u64(&self, file: &str) -> Result<u64> {
        Ok(self.read_u64_or_max(file)?.unwrap_or(u64::MAX))
    }
}

impl AsFd for CgDir<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub(crate) fn read_fd_into(fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Decimal formatting on the stack.
pub(crate) struct NumBuf {
    buf: [u8; 24],
}

impl NumBuf {
    pub(crate) fn new() -> NumBuf {
        NumBuf { buf: [0; 24] }
    }

    pub(crate) fn fmt_u64(&mut self, mut v: u64) -> &[u8] {
        let mut i = self.buf.len();
        loop {
            i -= 1;
            self.buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        &self.buf[i..]
    }

    pub(crate) fn fmt_i64(&mut self, v: i64) -> &[u8] {
        if v >= 0 {
            return self.fmt_u64(v as u64);
        }
        let len = self.fmt_u64(v.unsigned_abs()).len();
        let start = self.buf.len() - len - 1;
        self.buf[start] = b'-';
        &self.buf[start..]
    }
}

/// mkdir that reports whether it created the directory (EEXIST is not an error).
pub(crate) fn mkdir(path: &Path) -> Result<bool> {
    match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(Error::io("mkdir", path, e.into())),
    }
}

/// Creates `path` and its missing parents, returning the directories created, outermost first.
/// Stops at `stop` (the hierarchy's mount point), which must exist.
pub(crate) fn mkdir_all(stop: &Path, path: &Path) -> Result<Vec<PathBuf>> {
    // Walk up to find the first existing ancestor; in the common case (parent exists) this is
    // one failed mkdir at most.
    let mut missing: Vec<&Path> = Vec::new();
    let mut cur = path;
    loop {
        if cur == stop {
            break;
        }
        match rustix::fs::mkdir(cur, Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                let mut created = Vec::with_capacity(missing.len() + 1);
                created.push(cur.to_path_buf());
                // Now create the deeper ones we skipped, outermost first.
                for p in missing.iter().rev() {
                    match mkdir(p) {
                        Ok(true) => created.push(p.to_path_buf()),
                        Ok(false) => {}
                        Err(e) => {
                            remove_created(&created);
                            return Err(e);
                        }
                    }
                }
                return Ok(created);
            }
            Err(rustix::io::Errno::EXIST) => break,
            Err(rustix::io::Errno::NOENT) => {
                missing.push(cur);
                match cur.parent() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            Err(e) => return Err(Error::io("mkdir", cur, e.into())),
        }
    }
    // `cur` exists; create what is below it.
    let mut created = Vec::new();
    for p in missing.iter().rev() {
        match mkdir(p) {
            Ok(true) => created.push(p.to_path_buf()),
            Ok(false) => {}
            Err(e) => {
                remove_created(&created);
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// Best-effort undo of `mkdir_all`, innermost first.
pub(crate) fn remove_created(created: &[PathBuf]) {
    for p in created.iter().rev() {
        if let Err(e) = rustix::fs::rmdir(p) {
            if e != rustix::io::Errno::NOENT {
                tracing::warn!(path = %p.display(), error = %e, "could not remove cgroup dir");
            }
        }
    }
}

/// Removes a cgroup directory and every child cgroup below it, deepest first. cgroupfs rmdir
/// succeeds on a directory that still holds control files, but not on one with children or
/// tasks; tasks that were just killed (after an OOM, say) linger for a moment, hence the retry.
pub(crate) fn remove_cgroup_tree(path: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read_dir", path, e)),
    };
    for ent in entries {
        let ent = ent.map_err(|e| Error::io("read_dir", path, e))?;
        let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            remove_cgroup_tree(&ent.path())?;
        }
    }
    rmdir_retry(path)
}

fn rmdir_retry(path: &Path) -> Result<()> {
    let mut delay = std::time::Duration::from_millis(5);
    for attempt in 0..8 {
        match rustix::fs::rmdir(path) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::BUSY) | Err(rustix::io::Errno::NOTEMPTY) if attempt < 7 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(rustix::io::Errno::BUSY) => {
                return Err(Error::Busy {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(Error::io("rmdir", path, e.into())),
        }
    }
    Err(Error::Busy {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbuf() {
        let mut b = NumBuf::new();
        assert_eq!(b.fmt_i64(0), b"0");
        assert_eq!(b.fmt_i64(-1), b"-1");
        assert_eq!(b.fmt_i64(i64::MIN), b"-9223372036854775808");
        assert_eq!(b.fmt_u64(u64::MAX), b"18446744073709551615");
        assert_eq!(b.fmt_u64(1234), b"1234");
    }

    #[test]
    fn mkdir_all_reports_created_dirs() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        let leaf = t.path().join("a/b/c");
        let created = mkdir_all(t.path(), &leaf).unwrap();
        assert_eq!(created, vec![t.path().join("a/b"), leaf.clone()]);
        assert!(mkdir_all(t.path(), &leaf).unwrap().is_empty());
        remove_created(&created);
        assert!(!t.path().join("a/b").exists());
        assert!(t.path().join("a").exists());
    }
}
