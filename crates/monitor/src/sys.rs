//! The few raw system calls the monitor needs beyond std: process detaching,
//! signalfd, reaping, poll, descriptor passing, terminals, durable writes.

use std::fs::File;
use std::io::{self, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Forks once and lets the parent exit at once, so whoever spawned us can
/// reap it immediately and we are adopted by init (or a subreaper) instead.
///
/// Must be called while the process is still single-threaded, which the
/// monitor always is.
pub fn detach() -> io::Result<()> {
    // SAFETY: the monitor never starts threads, so the child inherits a
    // consistent process image.
    match check(unsafe { libc::fork() })? {
        0 => Ok(()),
        // SAFETY: _exit skips atexit handlers and stdio flushing, which
        // belong to the child now.
        _ => unsafe { libc::_exit(0) },
    }
}

/// Closes every descriptor from `from` up: whatever our spawner leaked.
pub fn close_fds_from(from: u32) {
    // SAFETY: close_range only closes descriptors; nothing of ours is open
    // above stdio yet.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
    if ret < 0 {
        // Kernels before 5.9: close one by one.
        for fd in from as RawFd..1024 {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Blocks `signals` and returns a signalfd delivering them. std's Command
/// resets the mask in children, so the runtime and the container do not
/// inherit the block.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigemptyset(set.as_mut_ptr());
        for &s in signals {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        let set = set.assume_init();
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = check(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a signalfd; which signals arrived does not matter to the monitor
/// (SIGCHLD always leads to a reap loop, the others are ignored).
pub fn drain_signalfd(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 128 * 8];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// One child reaped without blocking: `(pid, raw wait status)`.
pub fn reap_one() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: plain waitpid with an out pointer to a local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Waits for one specific child, retrying on EINTR.
pub fn wait_pid(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: as in reap_one.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `(exit_code, signal)` as Docker reports them: 128+signal when killed.
pub fn decode_status(status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    }
}

/// poll(2) that treats EINTR as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<()> {
    // SAFETY: fds is a valid, exclusively borrowed slice of pollfd.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        for f in fds.iter_mut() {
            f.revents = 0;
        }
    }
    Ok(())
}

pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Receives one descriptor sent with SCM_RIGHTS (runc's console-socket
/// protocol: the payload is the pty's name, which we do not need).
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut data = [0u8; 256];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut data)];
    rustix::net::recvmsg(sock, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC)?;
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "console socket message carried no descriptor",
    ))
}

pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws)?;
    Ok(())
}

/// The terminal's end-of-file character (^D unless the container changed it).
pub fn eof_char(fd: BorrowedFd<'_>) -> u8 {
    rustix::termios::tcgetattr(fd)
        .map(|t| t.special_codes[rustix::termios::SpecialCodeIndex::VEOF])
        .unwrap_or(4)
}

/// Writes `data` to `path` so that a killed writer leaves either the old file
/// or the new one: a temp file in the same directory, renamed over the old.
/// Nothing is forced to disk: everything the monitor writes lives in the exec
/// root and describes processes that a power loss ends anyway, and the fsyncs
/// cost more than the rest of a monitor's start.
pub fn write_replace(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Points fd 1 at /dev/null once the ready line is out, so the pipe to our
/// spawner is closed and no later file can land on descriptor 1.
pub fn stdout_to_devnull() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        // SAFETY: dup2 onto stdout; `null` stays owned and is closed on drop.
        unsafe { libc::dup2(null.as_fd().as_raw_fd(), 1) };
    }
}

/// Hands freed heap back to the kernel after a burst (glibc keeps it
/// otherwise): an idle monitor's footprint is what counts, per container.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
