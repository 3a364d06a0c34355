//! The blocking client berthd uses (from `spawn_blocking`): spawn a monitor,
//! talk to its control socket, open attach connections, read exit.json.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::MonitorConfig;
use crate::protocol::{AttachRequest, ExitInfo, Reply, Request, State, Status};
use crate::{paths, Error};

/// What a monitor reports once its container exists (or its exec is ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The container's init process (container kind only).
    pub pid: Option<i32>,
    /// The monitor process, which lives on until the process exits.
    pub monitor_pid: i32,
}

/// Spawns `monitor_binary CONFIG_PATH` and waits for its ready line. The
/// monitor's stderr goes to `run_dir/monitor.log`. The process we spawn forks
/// the real monitor and exits at once; it is reaped here, so berthd keeps no
/// child (or zombie) per container.
pub fn spawn(config_path: &Path, monitor_binary: &Path) -> Result<Ready, Error> {
    spawn_then(config_path, monitor_binary, || {})
}

/// [`spawn`] for a config with `expect_attaches`: `connect_attaches` runs once the
/// monitor listens (while the runtime creates the container) and must connect that many
/// attach clients; the ready line follows the start.
pub fn spawn_then(
    config_path: &Path,
    monitor_binary: &Path,
    connect_attaches: impl FnOnce(),
) -> Result<Ready, Error> {
    let cfg = MonitorConfig::load(config_path)?;
    std::fs::create_dir_all(&cfg.run_dir)
        .map_err(|e| Error::io(format!("create {}", cfg.run_dir.display()), e))?;
    let log_path = cfg.run_dir.join(paths::MONITOR_LOG);
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(format!("open {}", log_path.display()), e))?;
    let mut child = Command::new(monitor_binary)
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| Error::io(format!("spawn {}", monitor_binary.display()), e))?;
    let stdout = child.stdout.take();
    // The intermediate process exits right after forking.
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for the monitor".into(), e))?;
    let mut out = stdout.map(|o| BufReader::new(o.take(64 * 1024)));
    let mut next_reply = || -> Result<Reply, Error> {
        let mut line = String::new();
        if let Some(out) = out.as_mut() {
            out.read_line(&mut line)
                .map_err(|e| Error::io("read the monitor's ready line".into(), e))?;
        }
        if line.trim().is_empty() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("").to_string();
            return Err(Error::Protocol(format!(
                "the monitor exited ({status}) without a ready line: {last}"
            )));
        }
        let reply: Reply = serde_json::from_str(line.trim())
            .map_err(|e| Error::Protocol(format!("bad ready line {:?}: {e}", line.trim())))?;
        if !reply.ok {
            return Err(Error::Monitor(reply.error.unwrap_or_default()));
        }
        Ok(reply)
    };
    if cfg.start_at_once && cfg.expect_attaches > 0 {
        let listening = next_reply()?;
        if !listening.listening {
            return Err(Error::Protocol(
                "the monitor did not say it listens for attach clients".into(),
            ));
        }
        connect_attaches();
    }
    let reply = next_reply()?;
    let pidfile = cfg.run_dir.join(paths::MONITOR_PID);
    let monitor_pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Protocol(format!("no pid in {}", pidfile.display())))?;
    Ok(Ready {
        pid: reply.pid,
        monitor_pid,
    })
}

/// A handle on one monitor's control socket. Each request is its own
/// connection, so a `wait` in one thread does not block a `status` in another.
#[derive(Debug, Clone)]
pub struct Control {
    run_dir: PathBuf,
}

impl Control {
    /// Checks that a monitor is listening in `run_dir`.
    pub fn connect(run_dir: &Path) -> Result<Control, Error> {
        let path = run_dir.join(paths::CONTROL);
        UnixStream::connect(&path)
            .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
        Ok(Control {
            run_dir: run_dir.to_path_buf(),
        })
    }

    fn request(&self, req: &Request) -> Result<Reply, Error> {
        let path = self.run_dir.join(paths::CONTROL);
        let mut sock = UnixStream::connect(&path)
            .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
        let mut line = serde_json::to_vec(req).map_err(|e| Error::Protocol(e.to_string()))?;
        line.push(b'\n');
        sock.write_all(&line)
            .map_err(|e| Error::io("send a control request".into(), e))?;
        let mut answer = String::new();
        BufReader::new(sock.take(64 * 1024))
            .read_line(&mut answer)
            .map_err(|e| Error::io("read a control answer".into(), e))?;
        if answer.trim().is_empty() {
            return Err(Error::Gone);
        }
        let reply: Reply = serde_json::from_str(answer.trim())
            .map_err(|e| Error::Protocol(format!("bad answer {:?}: {e}", answer.trim())))?;
        if !reply.ok {
            return Err(Error::Monitor(reply.error.unwrap_or_default()));
        }
        Ok(reply)
    }

    /// Starts the process; returns its pid.
    pub fn start(&self) -> Result<i32, Error> {
        Ok(self.request(&Request::Start)?.pid.unwrap_or(0))
    }

    pub fn resize(&self, height: u16, width: u16) -> Result<(), Error> {
        self.request(&Request::Resize { height, width }).map(drop)
    }

    /// Blocks until the process exited and its output was drained. If the
    /// monitor goes away meanwhile, the answer comes from exit.json.
    pub fn wait(&self) -> Result<ExitInfo, Error> {
        match self.request(&Request::Wait) {
            Ok(r) => Ok(ExitInfo {
                exit_code: r.exit_code.unwrap_or(0),
                signal: r.signal,
                finished_at: r.finished_at.unwrap_or_default(),
                oom_killed: r.oom_killed.unwrap_or(false),
            }),
            Err(Error::Gone) | Err(Error::Io { .. }) => read_exit(&self.run_dir).ok_or(Error::Gone),
            Err(e) => Err(e),
        }
    }

    pub fn status(&self) -> Result<Status, Error> {
        let r = self.request(&Request::Status)?;
        Ok(Status {
            state: r
                .state
                .ok_or_else(|| Error::Protocol("status answer without state".into()))?,
            pid: r.pid.unwrap_or(0),
            exit_code: r.exit_code,
        })
    }

    pub fn close_stdin(&self) -> Result<(), Error> {
        self.request(&Request::CloseStdin).map(drop)
    }
}

/// The recorded exit of a process whose monitor has finished.
pub fn read_exit(run_dir: &Path) -> Option<ExitInfo> {
    let data = std::fs::read(run_dir.join(paths::EXIT_JSON)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// The status of a container whatever its monitor's state: asked from the
/// monitor if it runs, read from exit.json if it is gone.
pub fn status_or_exit(run_dir: &Path) -> Result<Status, Error> {
    match Control::connect(run_dir).and_then(|c| c.status()) {
        Ok(s) => Ok(s),
        Err(e) => match read_exit(run_dir) {
            Some(exit) => Ok(Status {
                state: State::Exited,
                pid: 0,
                exit_code: Some(exit.exit_code),
            }),
            None => Err(e),
        },
    }
}

pub fn attach_socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(paths::ATTACH)
}

/// Connects to attach.sock and sends the header. Read multiplexed frames
/// from the stream (see `protocol::read_frame`); write stdin to it;
/// `shutdown(Write)` is stdin's EOF.
pub fn attach(run_dir: &Path, req: AttachRequest) -> Result<UnixStream, Error> {
    let path = attach_socket_path(run_dir);
    let mut sock = UnixStream::connect(&path)
        .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
    let mut line = serde_json::to_vec(&req).map_err(|e| Error::Protocol(e.to_string()))?;
    line.push(b'\n');
    sock.write_all(&line)
        .map_err(|e| Error::io("send the attach header".into(), e))?;
    Ok(sock)
}

/// Waits, up to `limit`, for the monitor that last ran in `run_dir` to end.
/// After answering waits it still deletes the container from the runtime;
/// until it ends, the container id and the run directory are its own.
pub fn wait_gone(run_dir: &Path, limit: std::time::Duration) {
    let Some(pid) = std::fs::read_to_string(run_dir.join(paths::MONITOR_PID))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&p| p > 0)
    else {
        return;
    };
    let deadline = std::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_micros(500);
    while is_live_monitor(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    }
}

/// The pid names a running (not zombie) berth-monitor: pids are reused.
fn is_live_monitor(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    comm == "berth-monitor" && !matches!(state, Some('Z') | Some('X'))
}
