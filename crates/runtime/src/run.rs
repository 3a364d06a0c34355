//! Foreground `run`: create and start the container, forward signals to it,
//! relay its terminal when it has one, and return its exit status.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::container::{self, CreateOptions};
use crate::error::{Context, Result};
use crate::state::Root;
use crate::{console, sys};

/// Runs the container to completion; returns the exit code to exit with.
/// With `keep`, the stopped container stays for `state` and `delete`.
pub fn run(root: &Root, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        container::create(root, opts, None)?;
        container::start(root, &opts.id)?;
        return Ok(0);
    }
    let sfd = foreground_signals()?;

    let spec = opts.spec_or_load(&opts.bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
        && opts.console_socket.is_none();
    let (ours, theirs) = if terminal {
        let (a, b) = sys::seqpacket_pair().context(|| "socketpair".into())?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let state = container::create(root, opts, theirs)?;
    let master = match &ours {
        Some(sock) => Some(console::recv_fd(sock).context(|| "receive pty master".into())?),
        None => None,
    };
    let raw = attach_terminal(master.as_ref());
    container::start(root, &opts.id)?;
    tracing::debug!("run {}: started", opts.id);
    let code = supervise(state.pid, &sfd, master.as_ref());
    tracing::debug!("run {}: exited with {code}", opts.id);
    drop(raw);
    if !keep {
        let _ = container::delete(root, &opts.id, true);
        tracing::debug!("run {}: deleted", opts.id);
    }
    Ok(code)
}

/// Relays the terminal and signals until `pid` exits; returns its exit code.
pub(crate) fn supervise(pid: i32, sfd: &SignalFd, master: Option<&OwnedFd>) -> i32 {
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.get(1).copied().unwrap_or(false) {
            if let Some(m) = master {
                match rustix::io::read(m, &mut buf) {
                    Ok(n) if n > 0 => write_all(std::io::stdout().as_fd(), &buf[..n]),
                    _ => {}
                }
            }
        }
        if ready.get(2).copied().unwrap_or(false) {
            if let Some(m) = master {
                match rustix::io::read(stdin.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => write_all(m.as_fd(), &buf[..n]),
                    _ => stdin_open = false,
                }
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    continue;
                }
                if sig == libc::SIGWINCH {
                    if let (Some(m), Some((r, c))) = (master, console::get_size(0)) {
                        console::set_size(m.as_raw_fd(), r, c);
                    }
                    continue;
                }
                let _ = sys::kill(pid, sig);
            }
            // Reap everything; init's status decides.
            loop {
                match sys::waitpid(-1, libc::WNOHANG) {
                    Ok((0, _)) | Err(_) => break,
                    Ok((p, status)) if p == pid => {
                        if let Some(m) = master {
                            drain(m);
                        }
                        return sys::exit_code(status);
                    }
                    Ok(_) => {}
                }
            }
        }
    }
}

/// Blocks signals and returns a signalfd for them: the foreground runtime
/// forwards what it receives to the container. Children unblock signals in
/// themselves before exec. Orphans of an intermediate process come back to
/// us for reaping.
pub(crate) fn foreground_signals() -> Result<SignalFd> {
    let mut mask = SigSet::all();
    for s in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        mask.remove(s);
    }
    mask.thread_block().context(|| "block signals".into())?;
    sys::set_child_subreaper().context(|| "prctl(PR_SET_CHILD_SUBREAPER)".into())?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context(|| "signalfd".into())
}

/// Our terminal in raw mode and sized like the container's, while a
/// foreground process with a terminal runs.
pub(crate) fn attach_terminal(master: Option<&OwnedFd>) -> Option<RawMode> {
    let m = master?;
    if let Some((rows, cols)) = console::get_size(0) {
        console::set_size(m.as_raw_fd(), rows, cols);
    }
    RawMode::enter(0)
}

/// Copies what the container printed just before exiting.
fn drain(master: &OwnedFd) {
    let _ = rustix::fs::fcntl_setfl(master, rustix::fs::OFlags::NONBLOCK);
    let mut buf = [0u8; 8192];
    while let Ok(n) = rustix::io::read(master, &mut buf) {
        if n == 0 {
            break;
        }
        write_all(std::io::stdout().as_fd(), &buf[..n]);
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

/// Puts our terminal in raw mode for the container's pty; restores on drop.
pub(crate) struct RawMode {
    fd: i32,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter(fd: i32) -> Option<Self> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        // SAFETY: fd 0 stays open for the life of the process.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = tcgetattr(b).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(b, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        // SAFETY: as in enter.
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}
