//! Running the OCI runtime binary (berth-runtime or runc) and turning its
//! failures into one-line messages.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::config::MonitorConfig;
use crate::sys;

/// The stdio the runtime (and through it the container process) gets.
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ChildStdio {
    pub fn null() -> ChildStdio {
        ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

pub struct Runtime {
    binary: PathBuf,
    /// `--root R [runtime_args] --log L --log-format json`
    global: Vec<std::ffi::OsString>,
    /// The runtime's own log: with a non-tty container its stderr *is* the
    /// container's, so errors are read from here, as containerd does.
    log: PathBuf,
}

#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

impl Runtime {
    pub fn new(cfg: &MonitorConfig) -> Runtime {
        let log = cfg.run_dir.join("runtime.log");
        let mut global: Vec<std::ffi::OsString> =
            vec!["--root".into(), cfg.runtime_root.clone().into()];
        global.extend(cfg.runtime_args.iter().map(Into::into));
        global.extend([
            "--log".into(),
            log.clone().into(),
            "--log-format".into(),
            "json".into(),
        ]);
        Runtime {
            binary: cfg.runtime.clone(),
            global,
            log,
        }
    }

    /// Runs `runtime GLOBAL args...` to completion. With `console`, accepts
    /// the runtime's connection meanwhile and returns the pty master it sends.
    /// The error is the runtime's own message, on one line.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        stdio: ChildStdio,
        console: Option<&UnixListener>,
    ) -> Result<Option<OwnedFd>, String> {
        let offset = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.global)
            .args(args)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        tracing::debug!(?cmd, "running the runtime");
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        drop(cmd);
        // The Child is never waited through std: the pid is reaped here, by
        // pid, so the monitor's reap-all loop and std never race for it.
        let pid = child.id() as i32;
        drop(child);
        let (status, master) = match console {
            Some(listener) => self.wait_with_console(pid, listener),
            None => (sys::wait_pid(pid), None),
        };
        let status = status.map_err(|e| format!("wait for the runtime: {e}"))?;
        let (code, signal) = sys::decode_status(status);
        if code == 0 && signal.is_none() {
            return Ok(master);
        }
        Err(self.error_since(offset).unwrap_or_else(|| match signal {
            Some(s) => format!("{} killed by signal {s}", self.binary.display()),
            None => format!("{} exited with status {code}", self.binary.display()),
        }))
    }

    fn wait_with_console(
        &self,
        pid: i32,
        listener: &UnixListener,
    ) -> (std::io::Result<i32>, Option<OwnedFd>) {
        let mut master = None;
        let pidfd = match rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).expect("spawned pid is positive"),
            rustix::process::PidfdFlags::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                // Cannot watch both at once: take the master after the fact.
                let status = sys::wait_pid(pid);
                let _ = e;
                return (status, accept_master(listener));
            }
        };
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if let Err(e) = sys::poll(&mut fds, -1) {
                return (Err(e), master);
            }
            if fds[0].revents != 0 && master.is_none() {
                master = accept_master(listener);
            }
            if fds[1].revents != 0 {
                if master.is_none() {
                    master = accept_master(listener);
                }
                return (sys::wait_pid(pid), master);
            }
        }
    }

    /// The last error the runtime logged after `offset`, on one line.
    fn error_since(&self, offset: u64) -> Option<String> {
        let mut f = std::fs::File::open(&self.log).ok()?;
        f.seek(SeekFrom::Start(offset)).ok()?;
        let mut text = String::new();
        f.take(1 << 20).read_to_string(&mut text).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
            .filter(|l| matches!(l.level.as_str(), "error" | "fatal" | "panic"))
            .map(|l| l.msg.replace(['\n', '\r'], " "))
            .next_back()
    }
}

/// Takes one pending console connection, if any, and the descriptor on it.
fn accept_master(listener: &UnixListener) -> Option<OwnedFd> {
    let (conn, _) = listener.accept().ok()?;
    // The runtime sends right after connecting; a blocking receive is fine.
    match sys::recv_fd(conn.as_fd()) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::warn!("console socket: {e}");
            None
        }
    }
}
