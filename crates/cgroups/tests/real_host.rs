//! Tests against this host's real cgroupfs: v1 hierarchies (legacy or hybrid), and the
//! cgroup2 mount in hybrid mode, which has no controllers but does have cgroup.procs,
//! cgroup.freeze, cgroup.kill and BPF device programs. Each test skips itself when the host
//! lacks what it needs (not root, no v1 memory hierarchy, ...), and a guard removes
//! everything it made even when an assertion fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_cgroups::devices_bpf;
use berth_cgroups::{Cgroup, Layout, Mode, OomEvent, ProcCgroups};
use oci_spec::runtime::LinuxResources;
use serde_json::json;

static N: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "berth-test-{}-{}-{}",
        tag,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn v1_layout() -> Option<Layout> {
    if !is_root() {
        eprintln!("skipped: not root");
        return None;
    }
    let l = Layout::detect().ok()?;
    if l.mode == Mode::Unified || l.v1_hierarchy("memory").is_none() {
        eprintln!("skipped: no cgroup v1 memory hierarchy");
        return None;
    }
    Some(l)
}

/// Undoes everything on drop: children killed and reaped, cgroup thawed and removed.
struct Guard {
    cg: Cgroup,
    children: Vec<Child>,
    raw_pids: Vec<i32>,
}

impl Guard {
    fn new(cg: Cgroup) -> Guard {
        Guard {
            cg,
            children: Vec::new(),
            raw_pids: Vec::new(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cg.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.raw_pids {
            // SAFETY: plain syscalls on our own children.
            unsafe {
                libc::kill(*p, libc::SIGKILL);
                libc::waitpid(*p, std::ptr::null_mut(), 0);
            }
        }
        let _ = self.cg.kill_all();
        let _ = self.cg.wait_empty(Duration::from_secs(2));
        if let Err(e) = self.cg.delete() {
            eprintln!("guard: delete failed: {e}");
        }
    }
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("resources json")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep")
}

#[test]
fn v1_lifecycle_with_limits() {
    let Some(layout) = v1_layout() else { return };
    let own = ProcCgroups::read_self().unwrap();
    let name = format!("/{}", unique("v1"));
    let mut cg = Cgroup::new(&layout, &own, Some(&name), "x").unwrap();
    let mut g = Guard::new(cg.clone());

    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    for d in berth_cgroups::default_device_rules() {
        devices.push(serde_json::to_value(d).unwrap());
    }
    let r = res(json!({
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432},
        "pids": {"limit": 32},
        "cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "devices": devices,
    }));
    let t0 = std::time::Instant::now();
    cg.create_with(&r).unwrap();
    eprintln!(
        "v1 create_with (9 hierarchies, 17 rules) took {:?}",
        t0.elapsed()
    );
    g.cg = cg.clone();

    let mem = cg.v1_path("memory").unwrap().to_path_buf();
    assert_eq!(
        mem,
        Path::new("/sys/fs/cgroup/memory").join(&name[1..]),
        "absolute paths are from the hierarchy root"
    );
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "134217728");
    assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "33554432");
    if let Some(p) = cg.v1_path("pids") {
        assert_eq!(read(&p.join("pids.max")), "32");
    }
    if let Some(p) = cg.v1_path("cpu") {
        assert_eq!(read(&p.join("cpu.shares")), "256");
        assert_eq!(read(&p.join("cpu.cfs_quota_us")), "20000");
        assert_eq!(read(&p.join("cpu.cfs_period_us")), "100000");
    }
    if let Some(p) = cg.v1_path("cpuset") {
        assert_eq!(read(&p.join("cpuset.cpus")), "0");
        assert_eq!(read(&p.join("cpuset.mems")), "0");
    }
    if let Some(p) = cg.v1_path("devices") {
        let list = read(&p.join("devices.list"));
        assert!(list.contains("c 1:3 rwm"), "{list}");
        assert!(list.contains("c 136:* rwm"), "{list}");
        assert!(!list.contains("a *:* rwm"), "{list}");
    }

    let child = sleeper();
    let pid = child.id() as i32;
    g.children.push(child);
    cg.add_pid(pid).unwrap();
    let proc_cg = read(Path::new(&format!("/proc/{pid}/cgroup")));
    for c in [
        "memory", "pids", "freezer", "cpu", "cpuset", "devices", "blkio",
    ] {
        if layout.v1_hierarchy(c).is_some() {
            assert!(
                proc_cg
                    .lines()
                    .any(|l| l.ends_with(&format!(":{c}:{name}"))
                        || l.contains(&format!("{c}:{name}"))),
                "{c} not joined:\n{proc_cg}"
            );
        }
    }
    if layout.mode == Mode::Hybrid {
        assert!(
            proc_cg.lines().any(|l| l == format!("0::{name}")),
            "unified not joined:\n{proc_cg}"
        );
    }
    assert_eq!(cg.pids().unwrap(), vec![pid]);

    // Update with CPUs the parent lacks: typed error, nothing written.
    let e = cg
        .apply(&res(json!({"cpu": {"cpus": "0-1023"}})))
        .unwrap_err();
    assert!(
        matches!(
            e,
            berth_cgroups::Error::InvalidResource {
                field: "linux.resources.cpu.cpus",
                ..
            }
        ),
        "{e}"
    );
    // Update: only the given field changes.
    cg.apply(&res(json!({"pids": {"limit": 16}}))).unwrap();
    if let Some(p) = cg.v1_path("pids") {
        assert_eq!(read(&p.join("pids.max")), "16");
    }
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
    // Raising memory above the current memsw limit needs memsw first; the fallback handles it.
    cg.apply(&res(
        json!({"memory": {"limit": 268435456, "swap": 536870912}}),
    ))
    .unwrap();
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "268435456");
    assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "536870912");

    if cg.v1_path("freezer").is_some() {
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        assert_eq!(
            read(&cg.v1_path("freezer").unwrap().join("freezer.state")),
            "FROZEN"
        );
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());
    }

    let s = cg.stats().unwrap();
    assert_eq!(s.memory.limit, Some(268435456));
    // Usage may be 0: v1 does not move a task's existing charges (move_charge_at_immigrate).
    if cg.v1_path("pids").is_some() {
        assert_eq!(s.pids.current, 1);
        assert_eq!(s.pids.limit, Some(16));
    }

    // A later process reopens it from state.json.
    let reopened: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).unwrap()).unwrap();
    reopened.kill_all().unwrap();
    assert!(reopened.wait_empty(Duration::from_secs(5)).unwrap());
    let st = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));

    reopened.delete().unwrap();
    for (_, p) in cg.paths() {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    reopened.delete().unwrap();
}

#[test]
fn v1_kill_without_cgroup_kill_uses_freezer() {
    let Some(layout) = v1_layout() else { return };
    // Legacy view of the host: hide the cgroup2 companion so kill has to freeze+signal.
    let legacy = Layout {
        mode: Mode::Legacy,
        v1: layout.v1.clone(),
        unified: None,
    };
    let own = ProcCgroups::read_self().unwrap();
    let name = format!("/{}", unique("v1kill"));
    let mut cg = Cgroup::new(&legacy, &own, Some(&name), "x").unwrap();
    cg.create().unwrap();
    let mut g = Guard::new(cg.clone());
    // A shell that forks children: all must die.
    // It forks only once it is inside (after the read), so the children are born inside.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read x; sleep 1000 & sleep 1000 & wait")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();
    g.children.push(child);
    cg.add_pid(pid).unwrap();
    stdin.write_all(b"go\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(cg.pids().unwrap().len() >= 3, "{:?}", cg.pids());
    cg.kill_all().unwrap();
    assert!(cg.wait_empty(Duration::from_secs(5)).unwrap());
    g.children[0].wait().unwrap();
    cg.delete().unwrap();
    assert!(!cg.v1_path("memory").unwrap().exists());
}

#[test]
fn v1_relative_path_lands_under_own_cgroup() {
    let Some(layout) = v1_layout() else { return };
    let own = ProcCgroups::read_self().unwrap();
    let rel = unique("rel");
    let mut cg = Cgroup::new(&layout, &own, Some(&rel), "x").unwrap();
    cg.create().unwrap();
    let _g = Guard::new(cg.clone());
    let mine = own.v1_path("memory").unwrap_or("/");
    let want: PathBuf = Path::new("/sys/fs/cgroup/memory")
        .join(mine.trim_start_matches('/'))
        .join(&rel);
    assert_eq!(cg.v1_path("memory").unwrap(), want);
    assert!(want.is_dir());
    cg.delete().unwrap();
    assert!(!want.exists());
}

#[test]
fn v1_cpuset_out_of_range_leaves_nothing() {
    let Some(layout) = v1_layout() else { return };
    if layout.v1_hierarchy("cpuset").is_none() {
        return;
    }
    let own = ProcCgroups::read_self().unwrap();
    let name = format!("/{}/leaf", unique("cpuset"));
    let mut cg = Cgroup::new(&layout, &own, Some(&name), "x").unwrap();
    let _g = Guard::new(cg.clone());
    let e = cg
        .create_with(&res(json!({"cpu": {"cpus": "0-4095"}})))
        .unwrap_err();
    assert!(
        matches!(
            e,
            berth_cgroups::Error::InvalidResource {
                field: "linux.resources.cpu.cpus",
                ..
            }
        ),
        "{e}"
    );
    for (_, p) in cg.paths() {
        assert!(!p.parent().unwrap().exists(), "{} left behind", p.display());
    }
    // Bad value found only by the kernel (after mkdir): everything created is removed again.
    let e = cg.create_with(&res(json!({"cpu": {"shares": 512, "quota": 1000, "period": 1000, "realtimeRuntime": 999999999}}))).unwrap_err();
    eprintln!("kernel-refused value: {e}");
    for (_, p) in cg.paths() {
        assert!(
            !p.parent().unwrap().exists(),
            "{} left behind after {e}",
            p.display()
        );
    }
}

#[test]
fn v1_oom_event_then_delete() {
    let Some(layout) = v1_layout() else { return };
    let own = ProcCgroups::read_self().unwrap();
    let name = format!("/{}", unique("oom"));
    let mut cg = Cgroup::new(&layout, &own, Some(&name), "x").unwrap();
    let mut g = Guard::new(cg.clone());
    cg.create_with(&res(
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    ))
    .unwrap();
    let mut w = cg.oom_watcher().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read x; exec dd if=/dev/zero of=/dev/null bs=200M count=1")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cg.add_pid(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    g.children.push(child);
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&w.as_fd()),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(n, 1, "no OOM event within 10s");
    assert_eq!(w.wait().unwrap(), OomEvent::Oom);
    let st = g.children[0].wait().unwrap();
    assert!(!st.success());
    assert!(cg.stats().unwrap().memory.oom_kills >= 1);
    // Delete right after the OOM kill.
    cg.delete().unwrap();
    assert!(!cg.v1_path("memory").unwrap().exists());
    // Removal also wakes the watcher.
    assert_eq!(w.wait().unwrap(), OomEvent::Gone);
}

fn unified_only() -> Option<Layout> {
    if !is_root() {
        return None;
    }
    let l = Layout::detect().ok()?;
    let u = l.unified.clone()?;
    if l.mode != Mode::Hybrid {
        // On a pure v2 host creating cgroups at the root is fine too, but this test targets the
        // controller-less companion mount; skip elsewhere.
        return None;
    }
    Some(Layout {
        mode: Mode::Unified,
        v1: Vec::new(),
        unified: Some(u),
    })
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A forked child that waits for one byte on a pipe, then tries to open /dev/null and
/// /dev/zero and exits with bit 0 set if /dev/null opened, bit 1 if /dev/zero did.
/// With `cgroup_fd`, it is born in that cgroup through clone3(CLONE_INTO_CGROUP).
fn device_prober(cgroup_fd: Option<i32>) -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe with a valid 2-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let pid = match cgroup_fd {
        None => unsafe { libc::fork() },
        Some(fd) => {
            let args = CloneArgs {
                flags: 0x2_0000_0000,
                exit_signal: libc::SIGCHLD as u64,
                cgroup: fd as u64,
                ..Default::default()
            };
            // SAFETY: clone3 without a new stack behaves like fork; the child only makes
            // async-signal-safe calls below.
            unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    &args as *const CloneArgs,
                    std::mem::size_of::<CloneArgs>(),
                ) as i32
            }
        }
    };
    assert!(pid >= 0, "fork/clone3: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, then _exit.
        unsafe {
            let mut b = 0u8;
            libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1);
            let mut code = 0;
            let a = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if a >= 0 {
                code |= 1;
            }
            let z = libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY);
            if z >= 0 {
                code |= 2;
            }
            libc::_exit(code);
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(fds[0]) };
    (pid, fds[1])
}

fn release_and_wait(pid: i32, wfd: i32) -> i32 {
    let mut st = 0;
    // SAFETY: plain syscalls on our own pipe and child.
    unsafe {
        libc::write(wfd, b"x".as_ptr() as *const libc::c_void, 1);
        libc::close(wfd);
        libc::waitpid(pid, &mut st, 0);
    }
    assert!(libc::WIFEXITED(st), "child status {st}");
    libc::WEXITSTATUS(st)
}

#[test]
fn v2_companion_bpf_devices_freeze_kill_clone_into() {
    let Some(layout) = unified_only() else {
        eprintln!("skipped: needs root and a hybrid host's cgroup2 mount");
        return;
    };
    let own = ProcCgroups::parse("0::/\n");
    let name = format!("/{}", unique("v2"));
    let mut cg = Cgroup::new(&layout, &own, Some(&name), "x").unwrap();
    let mut g = Guard::new(cg.clone());
    cg.create().unwrap();
    g.cg = cg.clone();
    let dir = cg.unified_path().unwrap().to_path_buf();
    assert!(dir.is_dir());

    // Device filter: deny everything, allow /dev/zero only.
    let r = res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
    ]}));
    cg.apply(&r).unwrap();
    let fd = cg.open_dir().unwrap();
    assert_eq!(devices_bpf::attached_count(&fd).unwrap(), 1);

    let (pid, wfd) = device_prober(None);
    g.raw_pids.push(pid);
    cg.add_pid(pid).unwrap();
    assert!(read(Path::new(&format!("/proc/{pid}/cgroup")))
        .lines()
        .any(|l| l == format!("0::{name}")));
    assert_eq!(release_and_wait(pid, wfd), 0b10, "only /dev/zero may open");
    g.raw_pids.clear();

    // Update swaps the program instead of stacking a second one.
    let r2 = res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}
    ]}));
    cg.apply(&r2).unwrap();
    assert_eq!(devices_bpf::attached_count(&fd).unwrap(), 1);

    // Born inside the cgroup through clone3(CLONE_INTO_CGROUP).
    use std::os::fd::AsRawFd;
    let (pid, wfd) = device_prober(Some(fd.as_raw_fd()));
    g.raw_pids.push(pid);
    assert!(read(Path::new(&format!("/proc/{pid}/cgroup")))
        .lines()
        .any(|l| l == format!("0::{name}")));
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    assert_eq!(
        release_and_wait(pid, wfd),
        0b01,
        "only /dev/null (read) may open"
    );
    g.raw_pids.clear();

    // Freeze/thaw through cgroup.freeze, kill through cgroup.kill.
    let child = sleeper();
    let spid = child.id() as i32;
    g.children.push(child);
    cg.add_pid(spid).unwrap();
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    cg.kill_all().unwrap();
    assert!(cg.wait_empty(Duration::from_secs(5)).unwrap());
    g.children[0].wait().unwrap();
    drop(fd);
    cg.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn for_spec_defaults_to_container_id() {
    let Some(_) = v1_layout() else { return };
    let id = unique("spec");
    let cg = Cgroup::for_spec(None, &id).unwrap();
    assert_eq!(
        cg.v1_path("memory").unwrap(),
        Path::new("/sys/fs/cgroup/memory").join(&id)
    );
    let linux: oci_spec::runtime::Linux =
        serde_json::from_value(json!({"cgroupsPath": "/berth/x"})).unwrap();
    let cg = Cgroup::for_spec(Some(&linux), &id).unwrap();
    assert_eq!(
        cg.v1_path("pids").unwrap(),
        Path::new("/sys/fs/cgroup/pids/berth/x")
    );
    // Nothing was created by planning.
    assert!(!Path::new("/sys/fs/cgroup/memory").join(&id).exists());
}
