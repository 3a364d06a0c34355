//! The monitor process itself: one poll loop, no threads, that owns one
//! container (or exec) process from `create` to its recorded exit.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Kind, MonitorConfig};
use crate::logfile::JsonLog;
use crate::protocol::{
    self, AttachRequest, ExitInfo, OkReply, PidReply, Request, State, StatusReply, WaitReply,
};
use crate::runtime::{ChildStdio, Runtime};
use crate::{oom, paths, sys, timefmt};

/// A client further behind than this is dropped rather than stall the container.
const CLIENT_BACKLOG: usize = 1 << 20;
/// Stdin waiting for the container beyond this stops reading from clients.
const STDIN_BACKLOG: usize = 1 << 20;
/// The longest request or attach header line accepted.
const MAX_LINE: usize = 4096;
/// How long output is drained after the process exited, in case a
/// daemonised grandchild keeps the pipes open.
const DRAIN: Duration = Duration::from_secs(2);
/// How long clients get to take their last output after the exit.
const FLUSH: Duration = Duration::from_secs(2);
/// Exit code recorded when `runtime exec` fails, as Docker records it.
const EXEC_FAILED: i32 = 126;

/// The monitor's entry point, called by `main` with the config file's path.
/// Returns the process exit code.
pub fn run(config_path: &Path) -> i32 {
    if let Err(e) = sys::detach() {
        ready_line(&protocol::error_line(&format!("fork: {e}")));
        return 1;
    }
    let _ = rustix::process::setsid();
    // Container processes whose runtime parent exits become our children.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    sys::close_fds_from(3);
    crate::stderr_log::init();

    let cfg = match MonitorConfig::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            ready_line(&protocol::error_line(&e.to_string()));
            return 1;
        }
    };
    let fail = |e: String| {
        tracing::error!("{e}");
        cleanup_failed(&cfg);
        ready_line(&protocol::error_line(&e));
        1
    };
    let mut m = match Monitor::setup(&cfg) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let attaches = match (m.cfg.kind, m.cfg.start_at_once) {
        (Kind::Container, true) => m.cfg.expect_attaches as usize,
        _ => 0,
    };
    if attaches > 0 {
        // The spawner connects its attach clients while the runtime creates.
        ready_line(&protocol::line(&protocol::Listening {
            ok: true,
            listening: true,
        }));
    }
    if m.cfg.kind == Kind::Container {
        if let Err(e) = m.create() {
            return fail(e);
        }
        if m.cfg.start_at_once {
            m.wait_for_attaches(attaches, Duration::from_secs(10));
            if let Err(e) = m.start() {
                return fail(format!("start: {e}"));
            }
        }
    }
    let ready = match m.cfg.kind {
        Kind::Container => protocol::line(&PidReply {
            ok: true,
            pid: m.pid.unwrap_or(0),
        }),
        Kind::Exec => protocol::line(&OkReply { ok: true }),
    };
    ready_line(&ready);
    sys::stdout_to_devnull();
    let served = m.serve();
    // Everyone has heard of the exit: the namespace teardown may run now.
    drop(m.mnt_ns.take());
    m.release();
    match served {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("poll loop failed: {e}");
            1
        }
    }
}

fn ready_line(line: &[u8]) {
    let mut out = io::stdout().lock();
    // Nobody to tell if our spawner is gone.
    let _ = out.write_all(line);
    let _ = out.flush();
}

/// What a failed start leaves behind goes: the runtime's container and our files.
fn cleanup_failed(cfg: &MonitorConfig) {
    if cfg.kind == Kind::Container {
        let rt = Runtime::new(cfg);
        let _ = rt.run(&["delete", "--force", &cfg.id], ChildStdio::null(), None);
    }
    for name in [
        paths::CONTROL,
        paths::ATTACH,
        paths::CONSOLE,
        paths::INIT_PID,
        paths::MONITOR_PID,
        paths::RUNTIME_LOG,
    ] {
        let _ = std::fs::remove_file(cfg.run_dir.join(name));
    }
}

struct Output {
    fd: OwnedFd,
    stream: u8,
    eof: bool,
}

/// Bytes queued for a nonblocking peer.
#[derive(Default)]
struct Queue {
    data: Vec<u8>,
    pos: usize,
}

impl Queue {
    fn len(&self) -> usize {
        self.data.len() - self.pos
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }
    /// Writes what the peer takes now. Err means the peer is gone.
    fn flush_to(&mut self, mut w: impl Write) -> io::Result<()> {
        while !self.is_empty() {
            match w.write(&self.data[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.is_empty() {
            self.data.clear();
            self.pos = 0;
            // Give back what a burst grew; the monitor must stay small.
            if self.data.capacity() > 64 * 1024 {
                self.data.shrink_to(4096);
                sys::trim_heap();
            }
        } else if self.pos > 64 * 1024 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        Ok(())
    }
}

struct ControlConn {
    sock: UnixStream,
    inbuf: Vec<u8>,
    out: Queue,
    /// A request was read; the connection closes once `out` is written.
    answered: bool,
    waiting: bool,
    dead: bool,
}

struct AttachConn {
    sock: UnixStream,
    inbuf: Vec<u8>,
    req: Option<AttachRequest>,
    out: Queue,
    read_eof: bool,
    /// Close once `out` is written (the process has exited).
    closing: bool,
    dead: bool,
}

#[derive(Clone, Copy)]
enum Token {
    Signal,
    ControlListener,
    AttachListener,
    Output(usize),
    Stdin,
    Control(usize),
    Attach(usize),
}

struct Monitor {
    cfg: MonitorConfig,
    rt: Runtime,
    sigfd: OwnedFd,
    control: UnixListener,
    attach: UnixListener,
    console: Option<UnixListener>,
    started: bool,
    /// The init (or exec) process, once known.
    pid: Option<i32>,
    /// Statuses of children reaped before `pid` was known.
    early: Vec<(i32, i32)>,
    /// The container's mount namespace, held until its exit has been reported. The last
    /// process leaving a mount namespace tears it down before its parent hears of the exit,
    /// and the teardown waits for an expedited RCU grace period (~0.5 ms on a VM); holding
    /// the namespace moves that wait after the report.
    mnt_ns: Option<OwnedFd>,
    exit: Option<ExitInfo>,
    /// The container's OOM-kill counter and its value at create.
    oom: Option<(PathBuf, u64)>,
    drain_until: Option<Instant>,
    finished: bool,
    flush_until: Option<Instant>,
    outputs: Vec<Output>,
    stdin_pipe: Option<OwnedFd>,
    /// A second descriptor of the pty master: stdin and resizes go here.
    pty: Option<OwnedFd>,
    pending_size: Option<(u16, u16)>,
    stdin_buf: Queue,
    stdin_close_pending: bool,
    stdin_closed: bool,
    log: Option<JsonLog>,
    controls: Vec<ControlConn>,
    attaches: Vec<AttachConn>,
}

impl Monitor {
    fn setup(cfg: &MonitorConfig) -> Result<Monitor, String> {
        let sigfd = sys::signalfd(&[libc::SIGCHLD, libc::SIGINT, libc::SIGHUP, libc::SIGTERM])
            .map_err(|e| format!("signalfd: {e}"))?;
        std::fs::create_dir_all(&cfg.run_dir)
            .map_err(|e| format!("create {}: {e}", cfg.run_dir.display()))?;
        // A run dir is reused when a container restarts: what the previous
        // monitor left must not be taken for this run's.
        for name in [paths::EXIT_JSON, paths::INIT_PID, paths::EXEC_PID] {
            let _ = std::fs::remove_file(cfg.run_dir.join(name));
        }
        let pidfile = cfg.run_dir.join(paths::MONITOR_PID);
        sys::write_replace(&pidfile, std::process::id().to_string().as_bytes())
            .map_err(|e| format!("write {}: {e}", pidfile.display()))?;
        let control = listen(&cfg.run_dir.join(paths::CONTROL))?;
        let attach = listen(&cfg.run_dir.join(paths::ATTACH))?;
        let console = match cfg.tty {
            true => Some(listen(&cfg.run_dir.join(paths::CONSOLE))?),
            false => None,
        };
        let log = match (&cfg.log_path, cfg.kind) {
            (Some(p), Kind::Container) => Some(
                JsonLog::open(p.clone(), cfg.log_max_size, cfg.log_max_files)
                    .map_err(|e| format!("open log {}: {e}", p.display()))?,
            ),
            _ => None,
        };
        let m = Monitor {
            rt: Runtime::new(cfg),
            cfg: cfg.clone(),
            sigfd,
            control,
            attach,
            console,
            started: false,
            pid: None,
            mnt_ns: None,
            early: Vec::new(),
            exit: None,
            oom: None,
            drain_until: None,
            finished: false,
            flush_until: None,
            outputs: Vec::new(),
            stdin_pipe: None,
            pty: None,
            pending_size: None,
            stdin_buf: Queue::default(),
            stdin_close_pending: false,
            stdin_closed: false,
            log,
            controls: Vec::new(),
            attaches: Vec::new(),
        };
        Ok(m)
    }

    /// Waits until `n` attach clients have connected and sent their request (or hung up
    /// already), or until `limit` has passed: a spawner that died half-way must not hold
    /// the container.
    fn wait_for_attaches(&mut self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            self.take_pending_attaches();
            let ready = self
                .attaches
                .iter()
                .filter(|a| a.req.is_some() || a.dead)
                .count();
            let left = deadline.saturating_duration_since(Instant::now());
            if ready >= n || left.is_zero() {
                if ready < n {
                    tracing::warn!(ready, expected = n, "starting without every attach client");
                }
                return;
            }
            let mut fds = vec![libc::pollfd {
                fd: self.attach.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            for a in self.attaches.iter().filter(|a| a.req.is_none() && !a.dead) {
                fds.push(libc::pollfd {
                    fd: a.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            if sys::poll(&mut fds, ms).is_err() {
                return;
            }
        }
    }

    /// `runtime create`: the container exists, its process waits for start.
    fn create(&mut self) -> Result<(), String> {
        let stdio = self.container_stdio().map_err(|e| format!("pipes: {e}"))?;
        let run_dir = &self.cfg.run_dir;
        let pid_file = run_dir.join(paths::INIT_PID);
        let bundle = self.cfg.bundle.clone().unwrap_or_default();
        let mut args: Vec<std::ffi::OsString> = vec![
            "create".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.clone().into(),
        ];
        if self.console.is_some() {
            args.push("--console-socket".into());
            args.push(run_dir.join(paths::CONSOLE).into());
        }
        args.push(self.cfg.id.clone().into());
        let master = self.rt.run(&args, stdio, self.console.as_ref())?;
        self.take_console(master)?;
        let pid = read_pid(&pid_file)?;
        self.oom = oom::counter_path(pid).map(|path| {
            let before = oom::kills(&path).unwrap_or(0);
            (path, before)
        });
        self.set_pid(pid);
        // Init waits for `start` on the exec fifo: the pid is still its own.
        self.mnt_ns = rustix::fs::open(
            format!("/proc/{pid}/ns/mnt"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok();
        tracing::info!(id = %self.cfg.id, pid, "container created");
        Ok(())
    }

    /// The runtime's stdio: pipes we hold without a tty, nothing with one
    /// (the process's stdio is then the pty the runtime sends us).
    fn container_stdio(&mut self) -> io::Result<ChildStdio> {
        if self.cfg.tty {
            return Ok(ChildStdio::null());
        }
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
        let stdin = if self.cfg.open_stdin {
            let (r, w) = pipe()?;
            sys::set_nonblocking(w.as_fd())?;
            self.stdin_pipe = Some(w);
            r.into()
        } else {
            std::process::Stdio::null()
        };
        let mut ends = Vec::new();
        for stream in [protocol::STDOUT, protocol::STDERR] {
            let (r, w) = pipe()?;
            sys::set_nonblocking(r.as_fd())?;
            self.outputs.push(Output {
                fd: r,
                stream,
                eof: false,
            });
            ends.push(w);
        }
        let stderr = ends.pop().map(Into::into);
        let stdout = ends.pop().map(Into::into);
        Ok(ChildStdio {
            stdin,
            stdout: stdout.unwrap_or_else(std::process::Stdio::null),
            stderr: stderr.unwrap_or_else(std::process::Stdio::null),
        })
    }

    fn take_console(&mut self, master: Option<OwnedFd>) -> Result<(), String> {
        if !self.cfg.tty {
            return Ok(());
        }
        let master = master.ok_or("the runtime sent no terminal on the console socket")?;
        let _ = std::fs::remove_file(self.cfg.run_dir.join(paths::CONSOLE));
        self.console = None;
        sys::set_nonblocking(master.as_fd()).map_err(|e| format!("pty: {e}"))?;
        let dup = rustix::io::fcntl_dupfd_cloexec(&master, 3).map_err(|e| format!("pty: {e}"))?;
        if let Some((h, w)) = self.pending_size.take() {
            let _ = sys::set_winsize(dup.as_fd(), h, w);
        }
        self.pty = Some(dup);
        self.outputs.push(Output {
            fd: master,
            stream: protocol::STDOUT,
            eof: false,
        });
        Ok(())
    }

    fn set_pid(&mut self, pid: i32) {
        self.pid = Some(pid);
        if let Some(i) = self.early.iter().position(|&(p, _)| p == pid) {
            let (_, status) = self.early.swap_remove(i);
            self.on_exit(status);
        }
        self.early = Vec::new();
    }

    /// `start`: runs the process; from now on its output is pumped.
    fn start(&mut self) -> Result<i32, String> {
        if self.exit.is_some() {
            return Err("the process has already exited".into());
        }
        if self.started {
            return Err("already started".into());
        }
        self.take_pending_attaches();
        match self.cfg.kind {
            Kind::Container => {
                match &self.cfg.start_fifo {
                    Some(fifo) => start_through_fifo(fifo)?,
                    None => {
                        self.rt
                            .run(&["start", &self.cfg.id], ChildStdio::null(), None)?;
                    }
                }
                self.started = true;
                Ok(self.pid.unwrap_or(0))
            }
            Kind::Exec => {
                let result = self.exec();
                if let Err(e) = &result {
                    // The process will never run: report it as Docker does
                    // and let the monitor finish.
                    tracing::warn!("exec failed: {e}");
                    self.started = true;
                    self.record_exit(EXEC_FAILED, None);
                }
                result
            }
        }
    }

    /// Clients that connected to attach.sock before `start` was sent get
    /// every byte of output, whatever order the poll loop saw them in.
    fn take_pending_attaches(&mut self) {
        self.handle(Token::AttachListener, libc::POLLIN);
        for i in 0..self.attaches.len() {
            if self.attaches[i].req.is_none() && !self.attaches[i].dead {
                self.read_attach(i);
            }
        }
    }

    /// Stdin clients sent before asking to close it is still delivered,
    /// although it came on other connections than the request.
    fn take_pending_stdin(&mut self) {
        for i in 0..self.attaches.len() {
            loop {
                let a = &self.attaches[i];
                let readable = a.req.is_some_and(|r| r.stdin) && !a.read_eof && !a.dead;
                if !readable || self.stdin_buf.len() >= STDIN_BACKLOG || !self.read_attach(i) {
                    break;
                }
            }
        }
    }

    fn exec(&mut self) -> Result<i32, String> {
        let stdio = self.container_stdio().map_err(|e| format!("pipes: {e}"))?;
        let run_dir = &self.cfg.run_dir;
        let pid_file = run_dir.join(paths::EXEC_PID);
        let process = self.cfg.process_json.clone().unwrap_or_default();
        let mut args: Vec<std::ffi::OsString> = vec![
            "exec".into(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.clone().into(),
            "--process".into(),
            process.into(),
        ];
        if self.console.is_some() {
            args.push("--console-socket".into());
            args.push(run_dir.join(paths::CONSOLE).into());
        }
        args.push(self.cfg.id.clone().into());
        let master = self.rt.run(&args, stdio, self.console.as_ref())?;
        self.take_console(master)?;
        let pid = read_pid(&pid_file)?;
        self.started = true;
        self.set_pid(pid);
        tracing::info!(id = %self.cfg.id, pid, "exec started");
        Ok(pid)
    }

    fn on_exit(&mut self, status: i32) {
        let (code, signal) = sys::decode_status(status);
        tracing::info!(exit_code = code, ?signal, "process exited");
        self.record_exit(code, signal);
    }

    fn record_exit(&mut self, exit_code: i32, signal: Option<i32>) {
        let oom_killed = self
            .oom
            .as_ref()
            .is_some_and(|(path, before)| oom::kills(path).is_some_and(|n| n > *before));
        self.exit = Some(ExitInfo {
            exit_code,
            signal,
            finished_at: timefmt::now_rfc3339_nano(),
            oom_killed,
        });
        self.drain_until = Some(Instant::now() + DRAIN);
        self.stdin_pipe = None;
        self.stdin_buf = Queue::default();
    }

    fn reap(&mut self) {
        sys::drain_signalfd(self.sigfd.as_fd());
        while let Some((pid, status)) = sys::reap_one() {
            match self.pid {
                Some(p) if p == pid && self.exit.is_none() => self.on_exit(status),
                Some(_) => {}
                None => {
                    if self.early.len() >= 64 {
                        self.early.remove(0);
                    }
                    self.early.push((pid, status));
                }
            }
        }
    }

    /// After the exit and the drain: record the exit, answer waits, let
    /// clients go, and give the container back to the runtime.
    fn finish(&mut self) {
        self.finished = true;
        self.flush_until = Some(Instant::now() + FLUSH);
        if let Some(log) = &mut self.log {
            if let Err(e) = log.flush() {
                tracing::warn!("log: {e}");
            }
        }
        self.outputs.clear();
        self.pty = None;
        let Some(exit) = self.exit.clone() else {
            return;
        };
        let path = self.cfg.run_dir.join(paths::EXIT_JSON);
        let json = serde_json::to_vec(&exit).unwrap_or_default();
        if let Err(e) = sys::write_replace(&path, &json) {
            tracing::error!("write {}: {e}", path.display());
        }
        // A new monitor may bind these paths once berthd hears of the exit.
        for name in [paths::CONTROL, paths::ATTACH, paths::CONSOLE] {
            let _ = std::fs::remove_file(self.cfg.run_dir.join(name));
        }
        let reply = wait_line(&exit);
        for c in &mut self.controls {
            if c.waiting {
                c.waiting = false;
                c.out.push(&reply);
            }
        }
        for a in &mut self.attaches {
            a.closing = true;
        }
    }

    /// Gives the container back to the runtime, after everyone heard of the
    /// exit: that answer does not wait for the runtime. berthd waits for this
    /// process to end before it reuses the id or removes the run directory.
    fn release(&self) {
        if self.cfg.kind != Kind::Container || !self.finished {
            return;
        }
        if let Err(e) = self.rt.run(
            &["delete", "--force", &self.cfg.id],
            ChildStdio::null(),
            None,
        ) {
            tracing::warn!("runtime delete: {e}");
        }
    }

    fn status(&self) -> StatusReply {
        let state = if self.exit.is_some() {
            State::Exited
        } else if self.started {
            State::Running
        } else {
            State::Created
        };
        StatusReply {
            ok: true,
            state,
            pid: self.pid.unwrap_or(0),
            exit_code: self.exit.as_ref().map(|e| e.exit_code),
        }
    }

    fn serve(&mut self) -> io::Result<()> {
        let mut tokens = Vec::new();
        let mut fds = Vec::new();
        loop {
            if !self.finished && self.exit.is_some() {
                let drained = self.outputs.iter().all(|o| o.eof);
                if drained || self.drain_until.is_some_and(|t| Instant::now() >= t) {
                    self.finish();
                }
            }
            if self.finished {
                let flushed = self.controls.iter().all(|c| c.out.is_empty())
                    && self.attaches.iter().all(|a| a.out.is_empty());
                if flushed || self.flush_until.is_some_and(|t| Instant::now() >= t) {
                    return Ok(());
                }
            }
            tokens.clear();
            fds.clear();
            self.interest(&mut tokens, &mut fds);
            let deadline = if self.finished {
                self.flush_until
            } else {
                self.drain_until
            };
            let timeout = deadline.map_or(-1, |t| {
                let left = t.saturating_duration_since(Instant::now());
                left.as_millis().min(60_000) as i32 + 1
            });
            sys::poll(&mut fds, timeout)?;
            for (tok, fd) in tokens.iter().zip(fds.iter()) {
                if fd.revents != 0 {
                    self.handle(*tok, fd.revents);
                }
            }
            self.flush_clients();
            self.controls.retain(|c| !c.dead);
            self.attaches.retain(|a| !a.dead);
        }
    }

    fn interest(&self, tokens: &mut Vec<Token>, fds: &mut Vec<libc::pollfd>) {
        let mut add = |tok: Token, fd: i32, events: i16| {
            tokens.push(tok);
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        };
        add(Token::Signal, self.sigfd.as_raw_fd(), libc::POLLIN);
        add(
            Token::ControlListener,
            self.control.as_raw_fd(),
            libc::POLLIN,
        );
        add(Token::AttachListener, self.attach.as_raw_fd(), libc::POLLIN);
        // Before start nothing can be written; after the exit, drain.
        if self.started || self.exit.is_some() {
            for (i, o) in self.outputs.iter().enumerate() {
                if !o.eof {
                    add(Token::Output(i), o.fd.as_raw_fd(), libc::POLLIN);
                }
            }
        }
        if !self.stdin_buf.is_empty() {
            if let Some(fd) = self.stdin_fd() {
                add(Token::Stdin, fd, libc::POLLOUT);
            }
        }
        for (i, c) in self.controls.iter().enumerate() {
            let mut ev = 0;
            if !c.answered {
                ev |= libc::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= libc::POLLOUT;
            }
            add(Token::Control(i), c.sock.as_raw_fd(), ev);
        }
        let stdin_full = self.stdin_buf.len() >= STDIN_BACKLOG;
        for (i, a) in self.attaches.iter().enumerate() {
            let mut ev = 0;
            if !(a.read_eof || a.req.is_some() && stdin_full) {
                ev |= libc::POLLIN;
            }
            if !a.out.is_empty() {
                ev |= libc::POLLOUT;
            }
            // With no events asked, POLLHUP still tells of a peer that left.
            add(Token::Attach(i), a.sock.as_raw_fd(), ev);
        }
    }

    fn handle(&mut self, tok: Token, revents: i16) {
        match tok {
            Token::Signal => self.reap(),
            Token::ControlListener => {
                while let Ok((sock, _)) = self.control.accept() {
                    if sock.set_nonblocking(true).is_ok() {
                        self.controls.push(ControlConn {
                            sock,
                            inbuf: Vec::new(),
                            out: Queue::default(),
                            answered: false,
                            waiting: false,
                            dead: false,
                        });
                    }
                }
            }
            Token::AttachListener => {
                while let Ok((sock, _)) = self.attach.accept() {
                    if sock.set_nonblocking(true).is_ok() {
                        self.attaches.push(AttachConn {
                            sock,
                            inbuf: Vec::new(),
                            req: None,
                            out: Queue::default(),
                            read_eof: false,
                            closing: false,
                            dead: false,
                        });
                    }
                }
            }
            Token::Output(i) => self.read_output(i),
            Token::Stdin => self.flush_stdin(),
            Token::Control(i) => {
                if revents & libc::POLLIN != 0 {
                    self.read_control(i);
                }
                if revents & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0 {
                    self.controls[i].dead = true;
                }
            }
            Token::Attach(i) => {
                if revents & libc::POLLIN != 0 && !self.attaches[i].read_eof {
                    self.read_attach(i);
                }
                let a = &mut self.attaches[i];
                if revents & (libc::POLLERR | libc::POLLNVAL) != 0
                    || (revents & libc::POLLHUP != 0 && (a.read_eof || revents & libc::POLLIN == 0))
                {
                    a.dead = true;
                }
            }
        }
    }

    fn read_output(&mut self, i: usize) {
        let mut buf = [0u8; 32 * 1024];
        // A few reads per wakeup: fair to the other fds, cheap on syscalls.
        for _ in 0..4 {
            let o = &mut self.outputs[i];
            match rustix::io::read(&o.fd, &mut buf) {
                Ok(0) => {
                    o.eof = true;
                    return;
                }
                Ok(n) => {
                    let stream = o.stream;
                    self.on_output(stream, &buf[..n]);
                    if n < buf.len() {
                        return;
                    }
                }
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => return,
                // EIO: the pty has no slave left.
                Err(e) => {
                    if e != rustix::io::Errno::IO {
                        tracing::warn!("read output: {e}");
                    }
                    o.eof = true;
                    return;
                }
            }
        }
    }

    fn on_output(&mut self, stream: u8, data: &[u8]) {
        if let Some(log) = &mut self.log {
            if let Err(e) = log.write(stream, data) {
                tracing::warn!("log: {e}");
            }
        }
        let header = protocol::frame_header(stream, data.len());
        for a in &mut self.attaches {
            let Some(req) = a.req else { continue };
            let wanted = if stream == protocol::STDERR {
                req.stderr
            } else {
                req.stdout
            };
            if !wanted || a.dead || a.closing {
                continue;
            }
            if a.out.len() + data.len() > CLIENT_BACKLOG {
                tracing::warn!("dropping an attach client more than 1 MiB behind");
                a.dead = true;
                continue;
            }
            a.out.push(&header);
            a.out.push(data);
        }
    }

    fn stdin_fd(&self) -> Option<i32> {
        if self.stdin_closed {
            return None;
        }
        if self.cfg.tty {
            self.pty.as_ref().map(|f| f.as_raw_fd())
        } else {
            self.stdin_pipe.as_ref().map(|f| f.as_raw_fd())
        }
    }

    fn feed_stdin(&mut self, data: &[u8]) {
        if !self.cfg.open_stdin || self.stdin_close_pending || self.stdin_fd().is_none() {
            return;
        }
        self.stdin_buf.push(data);
        self.flush_stdin();
    }

    fn flush_stdin(&mut self) {
        let result = match (self.cfg.tty, &self.pty, &self.stdin_pipe) {
            (true, Some(fd), _) | (false, _, Some(fd)) => self.stdin_buf.flush_to(FdWriter(fd)),
            _ => Ok(()),
        };
        if let Err(e) = result {
            // The reader is gone (EPIPE): nothing more will be read.
            tracing::debug!("stdin: {e}");
            self.stdin_buf = Queue::default();
            self.stdin_pipe = None;
            self.stdin_closed = true;
        }
        self.maybe_close_stdin();
    }

    fn request_stdin_close(&mut self) {
        self.stdin_close_pending = true;
        self.maybe_close_stdin();
    }

    fn maybe_close_stdin(&mut self) {
        if !self.stdin_close_pending || !self.stdin_buf.is_empty() || self.stdin_closed {
            return;
        }
        self.stdin_close_pending = false;
        self.stdin_closed = true;
        if self.cfg.tty {
            // A terminal cannot be half-closed: the line discipline's EOF
            // character is what makes the reader see end of input.
            if let Some(pty) = &self.pty {
                let c = sys::eof_char(pty.as_fd());
                let _ = rustix::io::write(pty, &[c]);
            }
        } else {
            self.stdin_pipe = None;
        }
    }

    fn read_control(&mut self, i: usize) {
        let mut buf = [0u8; 1024];
        let c = &mut self.controls[i];
        let line = match (&c.sock).read(&mut buf) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.inbuf.extend_from_slice(&buf[..n]);
                match c.inbuf.iter().position(|&b| b == b'\n') {
                    Some(nl) => c.inbuf[..nl].to_vec(),
                    None if c.inbuf.len() > MAX_LINE => {
                        c.answered = true;
                        c.out.push(&protocol::error_line("request line too long"));
                        return;
                    }
                    None => return,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.dead = true;
                return;
            }
        };
        c.answered = true;
        c.inbuf = Vec::new();
        let reply = match serde_json::from_slice::<Request>(&line) {
            Err(e) => Some(protocol::error_line(&format!("bad request: {e}"))),
            Ok(req) => self.request(i, req),
        };
        if let Some(r) = reply {
            self.controls[i].out.push(&r);
        }
    }

    /// Answers one control request; `None` when the answer comes later (wait).
    fn request(&mut self, i: usize, req: Request) -> Option<Vec<u8>> {
        tracing::debug!(?req, "control request");
        Some(match req {
            Request::Start => match self.start() {
                Ok(pid) => protocol::line(&PidReply { ok: true, pid }),
                Err(e) => protocol::error_line(&e),
            },
            Request::Resize { height, width } => {
                match &self.pty {
                    Some(pty) => {
                        if let Err(e) = sys::set_winsize(pty.as_fd(), height, width) {
                            return Some(protocol::error_line(&format!("resize: {e}")));
                        }
                    }
                    None if self.cfg.tty => self.pending_size = Some((height, width)),
                    None => {}
                }
                protocol::line(&OkReply { ok: true })
            }
            Request::Wait => match (&self.exit, self.finished) {
                (Some(exit), true) => wait_line(exit),
                _ => {
                    self.controls[i].waiting = true;
                    return None;
                }
            },
            Request::Status => protocol::line(&self.status()),
            Request::CloseStdin => {
                self.take_pending_stdin();
                self.request_stdin_close();
                protocol::line(&OkReply { ok: true })
            }
        })
    }

    /// One read from attach client `i`; false when nothing was read.
    fn read_attach(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let a = &mut self.attaches[i];
        let n = match (&a.sock).read(&mut buf) {
            Ok(0) => {
                a.read_eof = true;
                match a.req {
                    None => a.dead = true,
                    Some(r) if r.stdin && self.cfg.stdin_once => self.request_stdin_close(),
                    Some(_) => {}
                }
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => {
                a.dead = true;
                return false;
            }
        };
        let mut data = &buf[..n];
        if a.req.is_none() {
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                a.inbuf.extend_from_slice(data);
                if a.inbuf.len() > MAX_LINE {
                    a.dead = true;
                }
                return false;
            };
            a.inbuf.extend_from_slice(&data[..nl]);
            data = &data[nl + 1..];
            match serde_json::from_slice::<AttachRequest>(&a.inbuf) {
                Ok(r) => {
                    a.req = Some(r);
                    a.inbuf = Vec::new();
                    // Attaching to what has already ended: just EOF.
                    a.closing = self.finished;
                }
                Err(e) => {
                    tracing::debug!("bad attach header: {e}");
                    a.dead = true;
                    return false;
                }
            }
        }
        if a.req.is_some_and(|r| r.stdin) && !data.is_empty() {
            self.feed_stdin(data);
        }
        true
    }

    fn flush_clients(&mut self) {
        for c in &mut self.controls {
            if c.dead {
                continue;
            }
            let failed = c.out.flush_to(&c.sock).is_err();
            // Answered and written: one request per connection.
            if failed || (c.answered && !c.waiting && c.out.is_empty()) {
                c.dead = true;
            }
        }
        for a in &mut self.attaches {
            if a.dead {
                continue;
            }
            if a.out.flush_to(&a.sock).is_err() {
                a.dead = true;
            } else if a.closing && a.out.is_empty() {
                let _ = a.sock.shutdown(std::net::Shutdown::Both);
                a.dead = true;
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // After finish() the paths may belong to a successor monitor.
        if !self.finished {
            for name in [paths::CONTROL, paths::ATTACH, paths::CONSOLE] {
                let _ = std::fs::remove_file(self.cfg.run_dir.join(name));
            }
        }
    }
}

struct FdWriter<'a>(&'a OwnedFd);

impl Write for FdWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(rustix::io::write(self.0, buf)?)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// berth-runtime's `start`: one byte into the exec fifo releases init, and
/// the fifo's absence marks the container running.
fn start_through_fifo(fifo: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .map_err(|e| match e.raw_os_error() {
            // No reader: init is gone.
            Some(libc::ENXIO) => "container not running".to_string(),
            _ => format!("open {}: {e}", fifo.display()),
        })?;
    f.write_all(&[0])
        .map_err(|e| format!("write {}: {e}", fifo.display()))?;
    drop(f);
    std::fs::remove_file(fifo).map_err(|e| format!("remove {}: {e}", fifo.display()))
}

fn wait_line(exit: &ExitInfo) -> Vec<u8> {
    protocol::line(&WaitReply {
        ok: true,
        exit_code: exit.exit_code,
        signal: exit.signal,
        finished_at: &exit.finished_at,
        oom_killed: exit.oom_killed,
    })
}

/// Binds a nonblocking listener only we (root) can connect to.
fn listen(path: &Path) -> Result<UnixListener, String> {
    let _ = std::fs::remove_file(path);
    // The umask makes the socket 0600 from birth; restored at once because
    // children (the runtime, the container) inherit it.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let l = bound.map_err(|e| format!("bind {}: {e}", path.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(l)
}

fn read_pid(path: &PathBuf) -> Result<i32, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {text:?}", path.display()))
}
