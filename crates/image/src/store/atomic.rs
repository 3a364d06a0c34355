//! Durable replace-by-rename (DEPENDENCIES.md pitfall 14): temp file in the same directory,
//! fsync, rename, fsync the directory.

use crate::error::{IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const TEMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique across threads and processes sharing the directory.
pub(crate) fn temp_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{TEMP_PREFIX}{}-{n}-{nanos}", std::process::id())
}

pub(crate) fn temp_path_in(dir: &Path) -> PathBuf {
    dir.join(temp_name())
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("fsync directory {}", dir.display()))
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path_in(dir);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes temp files a crash left behind.
pub(crate) fn clean_temp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).ctx(|| format!("read {}", dir.display())),
    };
    for entry in rd {
        let entry = entry.ctx(|| format!("read {}", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let p = entry.path();
            let r = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.ctx(|| format!("remove stale {}", p.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}
