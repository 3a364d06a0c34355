//! The lifecycle operations behind runc's commands: create, start, state,
//! kill, delete, and the foreground run that strings them together.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::capabilities::{self, CapSets};
use crate::error::{Context, Error, Result};
use crate::init::{self, msg, InitArgs};
use crate::namespaces::{self, Plan};
use crate::state::{Root, State, Status, EXEC_FIFO};
use crate::{console, hooks, spec, sys, util};
use berth_cgroups::Cgroup;

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// A sealed [`crate::exec_trampoline`] for init's final execve, given
    /// when the caller did not re-execute from a sealed copy of itself.
    pub exec_trampoline: Option<std::sync::Arc<OwnedFd>>,
    /// The bundle's config.json as the caller already read it, so that one
    /// create parses it once and every decision sees the same content.
    pub spec: Option<std::sync::Arc<Spec>>,
}

impl CreateOptions {
    /// The spec the caller passed, else the one in `bundle`.
    pub fn spec_or_load(&self, bundle: &Path) -> Result<std::borrow::Cow<'_, Spec>> {
        match &self.spec {
            Some(s) => Ok(std::borrow::Cow::Borrowed(s.as_ref())),
            None => spec::load(bundle).map(std::borrow::Cow::Owned),
        }
    }
}

/// Undoes a half-done create: kills init, removes the cgroup and the state
/// directory. Disarmed once create succeeds.
struct CreateGuard<'a> {
    dir: &'a Path,
    pid: i32,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.pid > 0 {
            let _ = sys::kill(self.pid, libc::SIGKILL);
            let _ = sys::waitpid(self.pid, 0);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all();
            let _ = cg.delete();
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

/// Creates the container and leaves its init waiting for `start`.
/// `console` overrides `--console-socket` with an already-connected socket
/// (used by foreground `run`).
pub fn create(root: &Root, opts: &CreateOptions, console: Option<OwnedFd>) -> Result<State> {
    spec::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| Error::config("bundle", format!("{}: {e}", opts.bundle.display())))?;
    let spec = opts.spec_or_load(&bundle)?;
    spec::validate(&spec, true)?;
    if opts.exec_trampoline.is_some() && !crate::exec_trampoline::suffices(&spec) {
        return Err(Error::config(
            "config.json",
            "does not allow the exec trampoline it was given",
        ));
    }
    // As runc: hooks and relative paths see the bundle as the working directory.
    std::env::set_current_dir(&bundle).context(|| format!("chdir {}", bundle.display()))?;
    let rootfs = spec::rootfs(&spec, &bundle)?;
    tracing::debug!("create {}: config loaded", opts.id);
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    let caps = CapSets::from_spec(process.capabilities().as_ref(), "process.capabilities")?;
    let plan = Plan::new(&spec)?;
    let terminal = process.terminal().unwrap_or(false);
    let console = match (terminal, console, &opts.console_socket) {
        (true, Some(c), _) => Some(c),
        (true, None, Some(path)) => Some(
            console::connect(path)
                .context(|| format!("connect to console socket {}", path.display()))?,
        ),
        (true, None, None) => {
            return Err(Error::config(
                "process.terminal",
                "a terminal needs --console-socket (or run in the foreground)",
            ))
        }
        (false, _, Some(_)) => {
            return Err(Error::config(
                "process.terminal",
                "--console-socket was given but the process has no terminal",
            ))
        }
        (false, _, None) => None,
    };

    let dir = root.create_dir(&opts.id)?;
    let mut guard = CreateGuard {
        dir: &dir,
        pid: 0,
        cgroup: None,
        armed: true,
    };
    let mut state = State {
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: util::now_rfc3339(),
        owner: String::new(),
        status: Status::Creating,
        annotations: spec.annotations().clone().unwrap_or_default(),
        hooks: spec.hooks().clone(),
        cgroup: None,
    };

    let fifo_path = dir.join(EXEC_FIFO);
    sys::mkfifo(&fifo_path, 0o600).context(|| "create exec fifo".into())?;
    // Opened read-write so init's blocking read waits for data rather than
    // seeing end-of-file, and `start` can open it without blocking.
    let exec_fifo: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo_path)
        .context(|| "open exec fifo".into())?
        .into();

    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => {
            let cache = berth_seccomp::FilterCache::new(root.path.join(".seccomp"));
            Some(cache.get_or_compile(profile)?.0)
        }
        None => None,
    };

    // The cgroup is made before init exists. Init is cloned straight into its
    // cgroup2 directory (unified mode, or the companion in hybrid mode) and
    // moves itself into the v1 hierarchies: having the parent write init's
    // pid there would wait out an RCU grace period (see v1_join_files).
    let mut cg = Cgroup::for_spec(spec.linux().as_ref(), &opts.id)?;
    let resources = cgroup_resources(&spec);
    let rootless = sys::geteuid() != 0;
    // Recorded first: if we are killed while it is made, `delete` still
    // finds it.
    state.cgroup = Some(cg.clone());
    root.save(&state)?;
    let (cgroup, cgroup_fd, cgroup_join) = if create_cgroup(&mut cg, &resources, rootless)? {
        let join = cg.v1_join_files()?;
        (Some(cg.clone()), cg.open_dir().ok(), join)
    } else {
        (None, None, Vec::new())
    };
    guard.cgroup = cgroup.clone();
    if state.cgroup != cgroup {
        // Rootless without a cgroup, or a hybrid host whose cgroup2 part
        // could not be used: record what there is.
        state.cgroup = cgroup.clone();
        root.save(&state)?;
    }
    let cgroup_paths: Vec<PathBuf> = cgroup
        .iter()
        .flat_map(|c| c.paths())
        .map(|(_, p)| p)
        .collect();
    let idmapped = crate::rootfs::idmap::prepare(&spec)?;

    let (parent_sock, child_sock) = sys::seqpacket_pair().context(|| "socketpair".into())?;
    let hooks = spec.hooks().as_ref();
    let parent_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    let args = InitArgs {
        spec: &spec,
        rootfs: &rootfs,
        sync: &child_sock,
        exec_fifo: &exec_fifo,
        console: console.as_ref(),
        no_pivot: opts.no_pivot,
        caps,
        last_cap: capabilities::last_cap(),
        new_cgroupns: plan.new_cgroupns,
        new_timens: plan.new_timens,
        in_userns: plan.new_userns()
            || plan
                .joins
                .iter()
                .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::User),
        parent_hooks,
        cgroup_paths: &cgroup_paths,
        cgroup_join: &cgroup_join,
        exec_trampoline: opts.exec_trampoline.as_deref(),
        preserve_fds: opts.preserve_fds,
        seccomp: seccomp.as_ref(),
        idmapped: &idmapped,
    };

    let (pid, in_cgroup) = spawn_init(&plan, args, &parent_sock, cgroup_fd.as_ref())?;
    tracing::debug!(
        "create {}: init cloned (pid {pid}{})",
        opts.id,
        if in_cgroup { ", into its cgroup" } else { "" }
    );
    drop(idmapped);
    guard.pid = pid;
    drop(child_sock);

    // Init prepares its rootfs while we write its id maps. Nothing of the
    // container's runs before init is released. If init failed meanwhile, its
    // own message says more than the error we meet trying to reach it.
    let released = (|| -> Result<()> {
        if plan.new_userns() {
            namespaces::write_id_maps(&spec, pid)?;
        }
        if cgroup.is_some() && !in_cgroup {
            cg.add_pid_unified(pid)?;
        }
        if let Some(adj) = process.oom_score_adj() {
            std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
                .context(|| "set oom_score_adj".into())?;
        }
        // Not saved yet: if we are killed before init is ready, init meets a
        // closed socket and exits, and `delete` kills whatever is left in the
        // cgroup recorded above.
        state.pid = pid;
        state.pid_start_time = crate::state::proc_stat(pid).map(|s| s.1).unwrap_or(0);
        // Init's hooks get the state with its pid, which only we know.
        let mut go = vec![msg::GO];
        serde_json::to_writer(&mut go, &state.to_oci_json(Status::Creating))
            .map_err(|e| Error::Init(e.to_string()))?;
        init::send(&parent_sock, &go).context(|| "release init".into())
    })();
    if let Err(e) = released {
        return Err(init::pending_error(&parent_sock).unwrap_or(e));
    }

    let mut buf = vec![0u8; 8192];
    loop {
        // A seccomp listener descriptor must be read with its control
        // message; everything else is plain.
        if init::peek(&parent_sock).context(|| "read from init".into())? == Some(msg::SECCOMP_FD) {
            forward_seccomp_listener(&spec, &state, &parent_sock)?;
            continue;
        }
        let n = init::recv(&parent_sock, &mut buf).context(|| "read from init".into())?;
        if n == 0 {
            return Err(Error::Init("init exited during set-up".into()));
        }
        match buf[0] {
            msg::HOOKS => {
                let json =
                    serde_json::to_vec(&state.to_oci_json(Status::Creating)).unwrap_or_default();
                hooks::run_all("prestart", hooks.and_then(|h| h.prestart().as_ref()), &json)?;
                hooks::run_all(
                    "createRuntime",
                    hooks.and_then(|h| h.create_runtime().as_ref()),
                    &json,
                )?;
                init::send(&parent_sock, &[msg::HOOKS_DONE]).context(|| "resume init".into())?;
            }
            msg::READY => {
                tracing::debug!("create {}: init ready", opts.id);
                break;
            }
            msg::ERROR => return Err(Error::from_child(&buf[1..n])),
            other => {
                return Err(Error::Init(format!(
                    "unexpected message {other:#x} from init"
                )))
            }
        }
    }

    state.status = Status::Created;
    root.save(&state)?;
    if let Some(p) = &opts.pid_file {
        util::write_replace_volatile(p, pid.to_string().as_bytes())
            .context(|| format!("write pid file {}", p.display()))?;
    }
    guard.armed = false;
    Ok(state)
}

/// Makes the container's cgroup and writes its limits. Returns false when
/// there is none: as runc does rootless, a cgroup we may not create is done
/// without, as long as no limit was asked for.
fn create_cgroup(
    cg: &mut Cgroup,
    resources: &oci_spec::runtime::LinuxResources,
    rootless: bool,
) -> Result<bool> {
    if let Err(e) = cg.create_with(resources) {
        let denied = [libc::EACCES, libc::EPERM, libc::EROFS]
            .iter()
            .any(|&n| e.is_errno(n));
        if !(rootless && denied) {
            return Err(e.into());
        }
        if let Some(field) = requested_limit(resources) {
            return Err(Error::Rootless(format!(
                "{field} is set but the container's cgroup cannot be created ({e}); \
                 remove the limit or delegate a writable cgroup to this user"
            )));
        }
        tracing::debug!("rootless: running without a cgroup ({e})");
        return Ok(false);
    }
    // An existing cgroup may be frozen (init would hang there) or hold
    // other processes.
    if cg.is_frozen().unwrap_or(false) {
        return Err(Error::Init("container's cgroup unexpectedly frozen".into()));
    }
    if cg.pids().is_ok_and(|p| !p.is_empty()) {
        tracing::warn!("container's cgroup is not empty");
    }
    tracing::debug!("cgroup created");
    Ok(true)
}

/// The first resource limit the spec asks for, by field name. Device rules
/// do not count: without root no device node can be made anyway.
fn requested_limit(r: &oci_spec::runtime::LinuxResources) -> Option<&'static str> {
    let checks: [(&'static str, bool); 8] = [
        ("linux.resources.memory", r.memory().is_some()),
        ("linux.resources.cpu", r.cpu().is_some()),
        ("linux.resources.pids", r.pids().is_some()),
        ("linux.resources.blockIO", r.block_io().is_some()),
        (
            "linux.resources.hugepageLimits",
            r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()),
        ),
        ("linux.resources.network", r.network().is_some()),
        (
            "linux.resources.rdma",
            r.rdma().as_ref().is_some_and(|v| !v.is_empty()),
        ),
        (
            "linux.resources.unified",
            r.unified().as_ref().is_some_and(|v| !v.is_empty()),
        ),
    ];
    checks.iter().find(|(_, set)| *set).map(|(f, _)| *f)
}

/// The spec's device rules plus the allow rules for the devices every
/// container gets, as runc builds them.
fn cgroup_resources(spec: &Spec) -> oci_spec::runtime::LinuxResources {
    let linux = spec.linux().as_ref();
    let mut res = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules = res.devices().clone().unwrap_or_default();
    // linux.devices only creates nodes; whether they may be opened is up to
    // linux.resources.devices, as with runc.
    rules.extend(berth_cgroups::default_device_rules());
    res.set_devices(Some(rules));
    res
}

/// Init installed a filter with a user notification listener: hand the
/// descriptor to the agent at `listenerPath` with the container's state.
pub(crate) fn forward_seccomp_listener(spec: &Spec, state: &State, sock: &OwnedFd) -> Result<()> {
    use std::os::fd::AsFd;
    let fd = berth_seccomp::recv_fd(sock.as_fd())?;
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    let Some(path) = seccomp.listener_path() else {
        return Ok(());
    };
    let oci_state: oci_spec::runtime::State =
        serde_json::from_value(state.to_oci_json(Status::Creating))
            .map_err(|e| Error::Init(e.to_string()))?;
    let msg =
        berth_seccomp::process_state(state.pid, seccomp.listener_metadata().clone(), oci_state);
    berth_seccomp::send_to_listener(path, fd.as_fd(), &msg)?;
    Ok(())
}

/// Starts init directly with clone, or through an intermediate process when
/// namespaces must be joined first (setns into a pid namespace only affects
/// children, and the parent must stay in its own namespaces).
///
/// With `cgroup` (a cgroup2 directory), the first process is cloned into
/// it, and init with it. Returns init's pid and whether it is in its cgroup.
fn spawn_init(
    plan: &Plan,
    args: InitArgs,
    parent_sock: &OwnedFd,
    cgroup: Option<&OwnedFd>,
) -> Result<(i32, bool)> {
    if plan.joins.is_empty() {
        let (pid, in_cgroup) = clone_child(plan.clone_flags, cgroup)?;
        if pid == 0 {
            sys::close_in_child(parent_sock);
            init::run(args);
        }
        return Ok((pid, in_cgroup));
    }
    // Init is the intermediate's child and inherits its cgroup.
    let (mid, in_cgroup) = clone_child(0, cgroup)?;
    if mid == 0 {
        sys::close_in_child(parent_sock);
        let result = plan
            .join_all()
            .and_then(|()| sys::clone_with_flags(plan.clone_flags).context(|| "clone".into()));
        match result {
            Ok(0) => init::run(args),
            Ok(pid) => init::report_pid_and_exit(args.sync, pid),
            Err(e) => init::fail_to_parent(args.sync, &e),
        }
    }
    Ok((init::read_intermediate(parent_sock, mid)?, in_cgroup))
}

/// clone(2) with `flags`, or clone3 into `cgroup` when given and the kernel
/// has it. Returns 0 in the child, like fork.
fn clone_child(flags: libc::c_int, cgroup: Option<&OwnedFd>) -> Result<(i32, bool)> {
    if let Some(fd) = cgroup {
        match sys::clone_into_cgroup(flags, fd) {
            Ok(pid) => return Ok((pid, true)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::E2BIG)) => {
                tracing::debug!("clone3 unavailable ({e}); cloning, then joining the cgroup");
            }
            Err(e) => {
                return Err(Error::Sys {
                    context: "clone3 into the container's cgroup".into(),
                    source: e,
                })
            }
        }
    }
    let pid = sys::clone_with_flags(flags).context(|| "clone".into())?;
    Ok((pid, false))
}

pub fn start(root: &Root, id: &str) -> Result<()> {
    let mut state = root.load(id)?;
    let dir = root.container_dir(id);
    let status = state.live_status(&dir);
    if status != Status::Created {
        return Err(Error::WrongStatus {
            id: id.into(),
            action: "start",
            status: status.to_string(),
        });
    }
    let fifo = dir.join(EXEC_FIFO);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(&fifo)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => Error::NotRunning,
            _ => Error::Sys {
                context: "open exec fifo".into(),
                source: e,
            },
        })?;
    f.write_all(&[0]).context(|| "write exec fifo".into())?;
    drop(f);
    // The fifo's absence is what makes the container running (live_status);
    // the state file keeps saying created.
    std::fs::remove_file(&fifo).context(|| "remove exec fifo".into())?;
    state.status = Status::Running;
    let json = serde_json::to_vec(&state.to_oci_json(Status::Running)).unwrap_or_default();
    hooks::run_all_warn(
        "poststart",
        state.hooks.as_ref().and_then(|h| h.poststart().as_ref()),
        &json,
    );
    Ok(())
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

pub fn state(root: &Root, id: &str) -> Result<serde_json::Value> {
    let state = root.load(id)?;
    let status = state.live_status(&root.container_dir(id));
    Ok(state.to_oci_json(status))
}

pub fn kill(root: &Root, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = util::parse_signal(signal).ok_or_else(|| Error::InvalidSignal(signal.into()))?;
    let state = root.load(id)?;
    let status = state.live_status(&root.container_dir(id));
    if all {
        // Every process of the cgroup, which may be none: like runc, that is
        // not an error.
        match &state.cgroup {
            Some(cg) => cg.signal_all(sig)?,
            // Rootless without a cgroup: init is all we know of.
            None if status != Status::Stopped => {
                let _ = sys::kill(state.pid, sig);
            }
            None => {}
        }
    } else {
        if status == Status::Stopped {
            return Err(Error::NotRunning);
        }
        sys::kill(state.pid, sig).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => Error::Sys {
                context: "kill".into(),
                source: std::io::Error::other("no such process"),
            },
            _ => Error::Sys {
                context: "kill".into(),
                source: e,
            },
        })?;
    }
    // A frozen process keeps a SIGKILL pending until it is thawed (cgroup v1's
    // freezer): thaw, as runc does, so the kill takes effect now.
    if sig == libc::SIGKILL && status == Status::Paused {
        if let Some(cg) = &state.cgroup {
            cg.thaw()?;
        }
    }
    Ok(())
}

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    let state = match root.load(id) {
        Ok(s) => s,
        // A directory without a state file is a create that died early.
        // With --force, a missing container is already deleted (runc agrees);
        // a directory without a state file is a create that died early.
        Err(Error::NotExist(_)) if force => {
            let _ = std::fs::remove_dir_all(root.container_dir(id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let dir = root.container_dir(id);
    let status = state.live_status(&dir);
    match status {
        Status::Stopped => {}
        // A created container has run nothing of the user's yet.
        Status::Created | Status::Creating => kill_and_wait(&state),
        _ if force => kill_and_wait(&state),
        _ => {
            return Err(Error::NotStopped {
                id: id.into(),
                status: status.to_string(),
            })
        }
    }
    if let Some(cg) = &state.cgroup {
        cg.delete()?;
    }
    std::fs::remove_dir_all(&dir).context(|| format!("remove {}", dir.display()))?;
    let json = serde_json::to_vec(&state.to_oci_json(Status::Stopped)).unwrap_or_default();
    hooks::run_all_warn(
        "poststop",
        state.hooks.as_ref().and_then(|h| h.poststop().as_ref()),
        &json,
    );
    Ok(())
}

/// SIGKILLs every process of the container and waits until they are gone.
fn kill_and_wait(state: &State) {
    let mut pids = Vec::new();
    if let Some(cg) = &state.cgroup {
        pids = cg.pids().unwrap_or_default();
        // A frozen task cannot die: thaw first.
        let _ = cg.thaw();
        let _ = cg.kill_all();
    }
    if state.pid > 0
        && crate::state::process_alive(state.pid, state.pid_start_time)
        && !pids.contains(&state.pid)
    {
        pids.push(state.pid);
    }
    for p in &pids {
        let _ = sys::kill(*p, libc::SIGKILL);
    }
    for _ in 0..2000 {
        let alive = pids
            .iter()
            .any(|p| crate::state::proc_stat(*p).is_some_and(|(s, _)| s != 'Z' && s != 'X'));
        if !alive {
            break;
        }
        // Reap it if it is our child (foreground run).
        let _ = sys::waitpid(-1, libc::WNOHANG);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// One line of `list`.
pub fn list(root: &Root) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for id in root.list()? {
        if let Ok(state) = root.load(&id) {
            let status = state.live_status(&root.container_dir(&id));
            out.push(state.to_oci_json(status));
        }
    }
    Ok(out)
}

pub fn pids(root: &Root, id: &str) -> Result<Vec<i32>> {
    let state = root.load(id)?;
    let mut p = match &state.cgroup {
        Some(cg) => cg.pids()?,
        // Rootless without a cgroup: init is all we know of.
        None if state.live_status(&root.container_dir(id)) != Status::Stopped => {
            vec![state.pid]
        }
        None => Vec::new(),
    };
    p.sort_unstable();
    p.dedup();
    Ok(p)
}
