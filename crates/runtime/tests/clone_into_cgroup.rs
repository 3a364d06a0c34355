//! clone3(CLONE_INTO_CGROUP): the child is in its cgroup from its first
//! instruction. Uses the host's cgroup2 hierarchy (the whole tree on a
//! unified host, the controller-less companion on a hybrid one).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_runtime::sys;

/// The cgroup2 mount point, if there is one.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next()? != "cgroup2" {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

/// Our own path in the cgroup2 hierarchy ("0::/path").
fn own_v2_path() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap()
}

struct RemoveDir(PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn child_starts_inside_the_cgroup() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 hierarchy mounted");
        return;
    };
    let own = own_v2_path();
    let name = format!("berth-clone3-{}", std::process::id());
    let rel = Path::new(own.trim_start_matches('/')).join(&name);
    let dir = mount.join(&rel);
    std::fs::create_dir(&dir).unwrap();
    let _rm = RemoveDir(dir.clone());
    let cg = std::fs::File::open(&dir).unwrap();

    let (r, w) = rustix::pipe::pipe().unwrap();
    let pid = match sys::clone_into_cgroup(0, &cg) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            eprintln!("skipped: no clone3 here");
            return;
        }
        Err(e) => panic!("clone3: {e}"),
    };
    if pid == 0 {
        // The test harness has threads: only raw syscalls and stack
        // buffers from here to _exit.
        let mut buf = [0u8; 4096];
        // SAFETY: NUL-terminated path, valid buffer, raw syscalls only.
        unsafe {
            let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n > 0 {
                libc::write(w.as_raw_fd(), buf.as_ptr().cast(), n as usize);
            }
            libc::_exit(0);
        }
    }
    drop(w);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
    let (_, status) = sys::waitpid(pid, 0).unwrap();
    assert_eq!(sys::exit_code(status), 0);
    let want = format!("0::/{}", rel.display());
    assert!(out.lines().any(|l| l == want), "child's cgroups: {out}");
}
