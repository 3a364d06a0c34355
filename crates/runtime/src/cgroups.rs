//! The runtime's view of the container's cgroup: create, join, list, freeze,
//! remove. A thin layer until resource limits arrive with berth-cgroups.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Context, Result};

/// Mount points of the cgroup hierarchies that hold processes.
fn hierarchies() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mp = pre.split(' ').nth(4)?;
            ((fstype == "cgroup" || fstype == "cgroup2") && mp.starts_with("/sys/fs/cgroup"))
                .then(|| PathBuf::from(mp))
        })
        .collect()
}

/// The cgroup path inside each hierarchy: `linux.cgroupsPath` or `/<id>`.
pub fn inner_path(spec: &Spec, id: &str) -> PathBuf {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from("/").join(id));
    let rel: PathBuf = p
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    rel
}

pub fn create(inner: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for h in hierarchies() {
        let dir = h.join(inner);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            remove(&out);
            return Err(e).context(|| format!("create cgroup {}", dir.display()));
        }
        if h.ends_with("cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                inherit_cpuset(&h, inner, f);
            }
        }
        out.push(dir);
    }
    Ok(out)
}

/// A new v1 cpuset cgroup starts empty and accepts no task: copy each level's
/// value from its parent.
fn inherit_cpuset(mount: &Path, inner: &Path, file: &str) {
    let mut cur = mount.to_path_buf();
    for comp in inner.components() {
        let parent_val = std::fs::read_to_string(cur.join(file)).unwrap_or_default();
        cur.push(comp);
        let mine = std::fs::read_to_string(cur.join(file)).unwrap_or_default();
        if mine.trim().is_empty() {
            let _ = std::fs::write(cur.join(file), parent_val.trim());
        }
    }
}

pub fn join(paths: &[PathBuf], pid: i32) -> Result<()> {
    let s = pid.to_string();
    for p in paths {
        std::fs::write(p.join("cgroup.procs"), &s)
            .context(|| format!("add pid {pid} to {}", p.display()))?;
    }
    Ok(())
}

/// Every pid in the container's cgroup (the first hierarchy that has it).
pub fn pids(paths: &[PathBuf]) -> Vec<i32> {
    let mut out = Vec::new();
    if let Some(p) = paths.iter().find(|p| p.join("cgroup.procs").exists()) {
        collect_pids(p, &mut out);
    }
    out
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

pub fn remove(paths: &[PathBuf]) {
    for p in paths {
        for _ in 0..50 {
            match std::fs::remove_dir(p) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }
}
