//! The container's cgroup: where its directories are, and the operations the runtime needs.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use rustix::fs::{Mode as FsMode, OFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{self, CgDir};
use crate::layout::{Layout, Mode, ProcCgroups};
use crate::oom::OomWatcher;
use crate::path::CgroupPath;
use crate::resources::{check_subset, device_rules, F_CPU_CPUS, F_CPU_MEMS};
use crate::stats::{self, Stats};
use crate::{v1, v2};

/// How long freeze/thaw may take before giving up.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Our directory in one v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    pub path: PathBuf,
}

/// A container's cgroup. Build it with [`Cgroup::for_container`] (or [`Cgroup::new`] for a
/// given layout), then [`Cgroup::create`] it. It serializes to JSON so a later process can
/// reopen it from the runtime's state file; no file descriptors are kept inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    mode: Mode,
    /// One per mounted v1 hierarchy; empty in unified mode.
    v1: Vec<V1Dir>,
    /// Our cgroup2 directory: the only one in unified mode, the controller-less companion in
    /// hybrid mode (there it gives cgroup.kill and CLONE_INTO_CGROUP, nothing else).
    unified: Option<PathBuf>,
    unified_mount: Option<PathBuf>,
    /// Directories this process created, outermost first, to undo a failed create. Not
    /// persisted: a later process deletes only the container's own directories.
    #[serde(skip)]
    created: Vec<PathBuf>,
}

/// Maps a hierarchy path onto the filesystem, given the mount's root (see mountinfo).
fn fs_path(mount: &Path, root: &str, hpath: &str) -> PathBuf {
    let rel = if root != "/" {
        match hpath.strip_prefix(root) {
            Some(r) if r.is_empty() || r.starts_with('/') => r,
            _ => hpath,
        }
    } else {
        hpath
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

impl Cgroup {
    /// Detects the layout and our own cgroup from /proc/self and places the container's cgroup
    /// per `linux.cgroupsPath` (`None` → `/<id>`). Touches nothing.
    pub fn for_container(cgroups_path: Option<&str>, container_id: &str) -> Result<Cgroup> {
        let layout = Layout::detect()?;
        let own = ProcCgroups::read_self()?;
        Self::new(&layout, &own, cgroups_path, container_id)
    }

    /// [`Cgroup::for_container`] with `linux.cgroupsPath` taken from the spec.
    pub fn for_spec(
        linux: Option<&oci_spec::runtime::Linux>,
        container_id: &str,
    ) -> Result<Cgroup> {
        let p = linux.and_then(|l| l.cgroups_path().as_deref());
        let s = match p {
            Some(p) => Some(p.to_str().ok_or_else(|| Error::InvalidPath {
                path: p.to_string_lossy().into_owned(),
                reason: "not UTF-8",
            })?),
            None => None,
        };
        Self::for_container(s, container_id)
    }

    /// As [`Cgroup::for_container`], with the layout and our own cgroups given.
    pub fn new(
        layout: &Layout,
        own: &ProcCgroups,
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Cgroup> {
        let cp = CgroupPath::parse(cgroups_path, container_id)?;
        let mut v1 = Vec::with_capacity(layout.v1.len());
        for h in &layout.v1 {
            let mine = h
                .controllers
                .iter()
                .find_map(|c| own.v1_path(c))
                .unwrap_or("/");
            let hp = cp.resolve(mine)?;
            if hp == "/" {
                return Err(Error::InvalidPath {
                    path: cgroups_path.unwrap_or("").to_string(),
                    reason: "resolves to the hierarchy root",
                });
            }
            v1.push(V1Dir {
                controllers: h.controllers.clone(),
                mount_point: h.mount_point.clone(),
                path: fs_path(&h.mount_point, &h.root, &hp),
            });
        }
        let (unified, unified_mount) = match &layout.unified {
            Some(m) => {
                let hp = cp.resolve(own.v2_path().unwrap_or("/"))?;
                if hp == "/" {
                    return Err(Error::InvalidPath {
                        path: cgroups_path.unwrap_or("").to_string(),
                        reason: "resolves to the hierarchy root",
                    });
                }
                (
                    Some(fs_path(&m.mount_point, &m.root, &hp)),
                    Some(m.mount_point.clone()),
                )
            }
            None => (None, None),
        };
        Ok(Cgroup {
            mode: layout.mode,
            v1,
            unified,
            unified_mount,
            created: Vec::new(),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The directory in the v1 hierarchy carrying `controller`.
    pub fn v1_path(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }

    pub fn v1_dirs(&self) -> &[V1Dir] {
        &self.v1
    }

    /// Our cgroup2 directory (unified mode, or the companion in hybrid mode).
    pub fn unified_path(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Controller → directory, as `runc state`/`runc events` report cgroup paths. The v2
    /// directory is listed under "" (as runc does in hybrid and unified mode).
    pub fn paths(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for d in &self.v1 {
            for c in &d.controllers {
                out.push((c.clone(), d.path.clone()));
            }
        }
        if let Some(u) = &self.unified {
            out.push((String::new(), u.clone()));
        }
        out
    }

    fn all_dirs(&self) -> impl Iterator<Item = &Path> {
        self.v1
            .iter()
            .map(|d| d.path.as_path())
            .chain(self.unified.as_deref())
    }

    /// Creates the directories (all mounted v1 hierarchies, as runc does; plus the cgroup2 one
    /// when present). On v1 a new cpuset cgroup starts with empty cpus/mems and refuses tasks,
    /// so they are filled from the nearest configured ancestor. On v2 the root's controllers
    /// are enabled down to the parent. Existing directories are fine (runc joins them). On
    /// error, whatever was created is removed again.
    pub fn create(&mut self) -> Result<()> {
        self.created.clear();
        let res = self.create_dirs();
        if res.is_err() {
            self.undo_create();
        }
        res
    }

    /// [`Cgroup::create`] then [`Cgroup::apply`], validating first so that bad input fails
    /// before anything exists, and removing what was created if applying fails. This is the
    /// call for `create`: do it before the container's init runs (or exec's), then
    /// [`Cgroup::add_pid`] (or clone into [`Cgroup::open_dir`] on v2).
    pub fn create_with(&mut self, resources: &LinuxResources) -> Result<()> {
        v1::validate(resources)?;
        self.check_cpuset_range(resources)?;
        self.create()?;
        if let Err(e) = self.apply_unchecked(resources) {
            self.undo_create();
            return Err(e);
        }
        Ok(())
    }

    fn create_dirs(&mut self) -> Result<()> {
        for i in 0..self.v1.len() {
            let d = &self.v1[i];
            let created = fsutil::mkdir_all(&d.mount_point, &d.path)?;
            self.created.extend(created.iter().cloned());
            let d = &self.v1[i];
            if d.controllers.iter().any(|c| c == "cpuset") {
                if let Some(top) = created.first() {
                    let (cpus, mems, mut fill) = nearest_cpuset(&d.mount_point, top)?;
                    fill.extend(created);
                    for dir in &fill {
                        let cd = CgDir::open(dir)?;
                        cd.write("cpuset.cpus", cpus.as_bytes())?;
                        cd.write("cpuset.mems", mems.as_bytes())?;
                    }
                }
            }
        }
        if let (Some(dir), Some(mount)) = (self.unified.as_deref(), self.unified_mount.as_deref()) {
            match fsutil::mkdir_all(mount, dir) {
                Ok(created) => self.created.extend(created),
                // In hybrid mode the cgroup2 directory is a convenience (cgroup.kill,
                // CLONE_INTO_CGROUP) holding no limits; a read-only or foreign-owned cgroup2
                // mount, as inside some containers, must not stop the container.
                Err(e) if self.mode == Mode::Hybrid => {
                    tracing::warn!(error = %e, "not using the cgroup2 hierarchy in hybrid mode");
                    self.unified = None;
                    self.unified_mount = None;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            if self.mode == Mode::Unified {
                v2::enable_controllers(mount, dir)?;
            }
        }
        Ok(())
    }

    /// Requested cpus/mems must be within the parent's, or the kernel refuses them with a bare
    /// EINVAL; check first to name the field and the offending CPU. Reads only when the
    /// resources ask for a cpuset.
    fn check_cpuset_range(&self, r: &LinuxResources) -> Result<()> {
        let cpu = r.cpu().as_ref();
        let want_cpus = cpu
            .and_then(|c| c.cpus().as_deref())
            .filter(|s| !s.is_empty());
        let want_mems = cpu
            .and_then(|c| c.mems().as_deref())
            .filter(|s| !s.is_empty());
        if want_cpus.is_none() && want_mems.is_none() {
            return Ok(());
        }
        match self.mode {
            Mode::Legacy | Mode::Hybrid => {
                if let Some(d) = self
                    .v1
                    .iter()
                    .find(|d| d.controllers.iter().any(|c| c == "cpuset"))
                {
                    let (cpus, mems, _) = nearest_cpuset(&d.mount_point, &d.path)?;
                    check_requested(&cpus, &mems, want_cpus, want_mems)?;
                }
            }
            Mode::Unified => {
                // The nearest existing ancestor: the leaf may not exist yet.
                let mut cur = self.unified.as_deref().and_then(Path::parent);
                while let Some(c) = cur {
                    if c.exists() {
                        break;
                    }
                    cur = c.parent();
                }
                if let Some(parent) = cur {
                    let pd = CgDir::open(parent)?;
                    // Absent on a hierarchy without the cpuset controller; apply reports that.
                    if let (Some(c), Ok(have)) =
                        (want_cpus, pd.read_string("cpuset.cpus.effective"))
                    {
                        check_subset(F_CPU_CPUS, c, &have)?;
                    }
                    if let (Some(m), Ok(have)) =
                        (want_mems, pd.read_string("cpuset.mems.effective"))
                    {
                        check_subset(F_CPU_MEMS, m, &have)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn undo_create(&mut self) {
        // Innermost first across all hierarchies; order between hierarchies does not matter.
        fsutil::remove_created(&self.created);
        self.created.clear();
    }

    /// Writes the limits. Also the implementation of `update`: only the fields present are
    /// written. Devices go to devices.allow/deny on v1 and to a BPF program on v2.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        self.check_cpuset_range(r)?;
        self.apply_unchecked(r)
    }

    fn apply_unchecked(&self, r: &LinuxResources) -> Result<()> {
        match self.mode {
            Mode::Legacy | Mode::Hybrid => v1::apply(self, r),
            Mode::Unified => {
                let dir = self
                    .unified
                    .as_deref()
                    .ok_or_else(|| Error::Layout("no cgroup2 directory".into()))?;
                v2::apply(dir, r)?;
                if let Some(devs) = r.devices() {
                    if !devs.is_empty() {
                        let rules = device_rules(devs)?;
                        let d = CgDir::open(dir)?;
                        crate::devices_bpf::apply(&d, &rules)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Moves a process (all its threads) into the cgroup, in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::invalid("pid", format!("{pid} is not a process id")));
        }
        let mut nb = fsutil::NumBuf::new();
        let val = nb.fmt_i64(pid as i64);
        for dir in self.all_dirs() {
            CgDir::open(dir)?.write("cgroup.procs", val)?;
        }
        Ok(())
    }

    /// The v1 `tasks` files, opened for a new process to join its cgroup by itself with
    /// [`join_self`]. Writing a pid to `cgroup.procs` takes the kernel's global threadgroup
    /// lock, whose first writer after a quiet spell waits out an RCU grace period (10-25 ms
    /// here); a single thread moving itself through `tasks` does not. The kernel checks the
    /// opener's credentials, so a parent may open them for a child in a user namespace.
    pub fn v1_join_files(&self) -> Result<Vec<OwnedFd>> {
        self.v1
            .iter()
            .map(|d| {
                let p = d.path.join("tasks");
                rustix::fs::open(&p, OFlags::WRONLY | OFlags::CLOEXEC, FsMode::empty())
                    .map_err(|e| Error::io("open", &p, e.into()))
            })
            .collect()
    }

    /// Moves a process into the cgroup2 directory only (the v1 hierarchies joined with
    /// [`join_self`], or none).
    pub fn add_pid_unified(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::invalid("pid", format!("{pid} is not a process id")));
        }
        if let Some(dir) = self.unified.as_deref() {
            let mut nb = fsutil::NumBuf::new();
            CgDir::open(dir)?.write("cgroup.procs", nb.fmt_i64(pid as i64))?;
        }
        Ok(())
    }

    /// The directory whose membership is authoritative for pids/kill: v2 in unified mode,
    /// otherwise the freezer hierarchy (what freezing acts on), or any v1 one.
    fn procs_dir(&self) -> Option<&Path> {
        match self.mode {
            Mode::Unified => self.unified.as_deref(),
            _ => self
                .v1_path("freezer")
                .or_else(|| self.v1_path("pids"))
                .or_else(|| self.v1_path("memory"))
                .or_else(|| self.v1.first().map(|d| d.path.as_path()))
                .or(self.unified.as_deref()),
        }
    }

    /// Every process in the cgroup and its descendants. A cgroup that does not exist (already
    /// deleted) has none.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            collect_pids(d, &mut out)?;
        }
        Ok(out)
    }

    /// Freezes every process (v1 freezer, else cgroup.freeze) and waits until they are.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, freeze: bool) -> Result<()> {
        if self.mode != Mode::Unified {
            if let Some(d) = self.v1_path("freezer") {
                return v1::set_freezer(d, freeze, FREEZE_TIMEOUT);
            }
        }
        match self.unified.as_deref() {
            Some(d) if d.join("cgroup.freeze").exists() => {
                v2::set_freeze(d, freeze, FREEZE_TIMEOUT)
            }
            _ => Err(Error::ControllerUnavailable {
                field: "freeze",
                controller: "freezer".into(),
            }),
        }
    }

    /// Whether the cgroup is frozen (for `runc state`'s "paused").
    pub fn is_frozen(&self) -> Result<bool> {
        if self.mode != Mode::Unified {
            if let Some(d) = self.v1_path("freezer") {
                let s = CgDir::open(d)?.read_string("freezer.state")?;
                return Ok(s.trim() == "FROZEN");
            }
        }
        match self.unified.as_deref() {
            Some(d) => {
                let s = CgDir::open(d)?
                    .read_string("cgroup.events")
                    .unwrap_or_default();
                Ok(s.lines().any(|l| l == "frozen 1"))
            }
            None => Ok(false),
        }
    }

    /// Sends `signal` to every process, with the cgroup frozen meanwhile so that nothing forks
    /// out from under the walk (`runc kill --all`). Processes already gone are skipped.
    pub fn signal_all(&self, signal: i32) -> Result<()> {
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(Error::ControllerUnavailable { .. }) => false,
            Err(e) => return Err(e),
        };
        let res = self.pids().map(|pids| {
            for pid in pids {
                // SAFETY: kill(2) with plain integers; no memory is involved.
                if unsafe { libc::kill(pid, signal) } != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::ESRCH) {
                        tracing::warn!(pid, error = %e, "signal failed");
                    }
                }
            }
        });
        if frozen {
            self.thaw()?;
        }
        res
    }

    /// SIGKILLs everything in the cgroup: cgroup.kill when the kernel has it (v2, and the v2
    /// companion in hybrid mode), else freeze, kill each, thaw. Returns once signals are sent;
    /// use [`Cgroup::wait_empty`] to wait for the processes to be gone.
    pub fn kill_all(&self) -> Result<()> {
        if let Some(d) = self.unified.as_deref() {
            let cd = CgDir::open(d);
            if let Ok(cd) = cd {
                if cd.exists("cgroup.kill") {
                    return cd.write("cgroup.kill", b"1");
                }
            } else if self.mode == Mode::Unified {
                // Already deleted: nothing to kill.
                return Ok(());
            }
        }
        self.signal_all(libc::SIGKILL)
    }

    /// Polls until no process is left, or `timeout` passes (returns whether it emptied).
    pub fn wait_empty(&self, timeout: Duration) -> Result<bool> {
        let start = std::time::Instant::now();
        loop {
            if self.pids()?.is_empty() {
                return Ok(true);
            }
            if start.elapsed() >= timeout {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Removes the container's directories (and any child cgroups the container made), in
    /// every hierarchy. Missing directories are fine, so this is idempotent and works after an
    /// OOM kill or a reboot. Parents such as `/berth` are left, as runc leaves them.
    pub fn delete(&self) -> Result<()> {
        let mut first_err = None;
        for d in self.all_dirs() {
            if let Err(e) = fsutil::remove_cgroup_tree(d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn stats(&self) -> Result<Stats> {
        Ok(match self.mode {
            Mode::Unified => match self.unified.as_deref() {
                Some(d) => stats::read_v2(d),
                None => Stats::default(),
            },
            _ => stats::read_v1(
                self.v1_path("memory"),
                self.v1_path("cpu"),
                self.v1_path("cpuacct"),
                self.v1_path("pids"),
                self.v1_path("blkio"),
            ),
        })
    }

    /// An O_PATH directory fd on our cgroup2 directory, for clone3's CLONE_INTO_CGROUP. In
    /// hybrid mode this places the child only in the (controller-less) v2 hierarchy; the v1
    /// memberships still need [`Cgroup::add_pid`].
    pub fn open_dir(&self) -> Result<OwnedFd> {
        let d = self.unified.as_deref().ok_or(Error::Unsupported {
            field: "CLONE_INTO_CGROUP",
            version: "v1",
        })?;
        rustix::fs::open(
            d,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FsMode::empty(),
        )
        .map_err(|e| Error::io("open", d, e.into()))
    }

    /// OOM notifications (v1 memory eventfd; v2 memory.events).
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        match self.mode {
            Mode::Unified => {
                let d = self
                    .unified
                    .as_deref()
                    .ok_or_else(|| Error::Layout("no cgroup2 directory".into()))?;
                OomWatcher::v2(d)
            }
            _ => {
                let d = self.v1_path("memory").ok_or(Error::ControllerUnavailable {
                    field: "oom notifications",
                    controller: "memory".into(),
                })?;
                OomWatcher::v1(d)
            }
        }
    }
}

impl v1::V1Dirs for Cgroup {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.v1_path(controller)
    }
}

fn check_requested(
    cpus: &str,
    mems: &str,
    want_cpus: Option<&str>,
    want_mems: Option<&str>,
) -> Result<()> {
    if let Some(c) = want_cpus {
        check_subset(F_CPU_CPUS, c, cpus)?;
    }
    if let Some(m) = want_mems {
        check_subset(F_CPU_MEMS, m, mems)?;
    }
    Ok(())
}

/// cpus and mems of the nearest existing ancestor of `dir` (which may not exist yet) whose
/// cpuset is configured, plus the ancestors in between whose sets are empty and must be filled
/// before anything below them can hold tasks (outermost first).
fn nearest_cpuset(mount: &Path, dir: &Path) -> Result<(String, String, Vec<PathBuf>)> {
    let mut empty = Vec::new();
    let mut cur = dir.parent();
    // Skip ancestors that do not exist yet (validation runs before mkdir).
    while let Some(c) = cur {
        if c == mount || c.exists() {
            break;
        }
        cur = c.parent();
    }
    while let Some(c) = cur {
        let d = CgDir::open(c)?;
        let cpus = d.read_string("cpuset.cpus")?;
        let mems = d.read_string("cpuset.mems")?;
        if !cpus.trim().is_empty() && !mems.trim().is_empty() {
            empty.reverse();
            return Ok((cpus.trim().to_string(), mems.trim().to_string(), empty));
        }
        if c == mount {
            break;
        }
        empty.push(c.to_path_buf());
        cur = c.parent();
    }
    Err(Error::Layout(format!(
        "no cpuset ancestor of {} has cpus and mems set",
        dir.display()
    )))
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let d = match CgDir::open(dir) {
        Ok(d) => d,
        Err(e) if e.is_errno(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    match d.read_string("cgroup.procs") {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        // Removed between the open and the read.
        Err(e) if e.is_errno(libc::ENOENT) || e.is_errno(libc::ENODEV) => return Ok(()),
        Err(e) => return Err(e),
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read_dir", dir, e)),
    };
    for ent in rd.flatten() {
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&ent.path(), out)?;
        }
    }
    Ok(())
}

/// Moves the calling thread into the cgroups whose `tasks` files are `files` (from
/// [`Cgroup::v1_join_files`]). Called by a single-threaded process, this moves the process.
pub fn join_self(files: &[OwnedFd]) -> std::io::Result<()> {
    for f in files {
        rustix::io::write(f, b"0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_path_strips_the_mount_root() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(fs_path(m, "/", "/a/b"), m.join("a/b"));
        // A bind mount of /docker/x at the mount point: paths below it are reachable.
        assert_eq!(fs_path(m, "/docker/x", "/docker/x/c"), m.join("c"));
        assert_eq!(fs_path(m, "/docker/x", "/docker/x"), m.to_path_buf());
        // "/docker/xy" is not below "/docker/x".
        assert_eq!(fs_path(m, "/docker/x", "/docker/xy"), m.join("docker/xy"));
    }
}
