//! Terminals: init opens a pty inside the container's devpts, makes it its
//! controlling terminal and hands the master to whoever asked, over a unix
//! socket with SCM_RIGHTS, as runc's --console-socket does.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::sys;

/// Opens a pty pair from /dev/ptmx of the current root.
pub fn open_pty() -> io::Result<(OwnedFd, OwnedFd, String)> {
    use rustix::fs::{Mode, OFlags};
    let master: OwnedFd = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::pty::unlockpt(&master)?;
    let n = rustix::pty::ptsname(&master, Vec::new())?;
    let name = n.to_string_lossy().into_owned();
    // TIOCGPTPEER opens the peer through the master, with no path lookup an
    // attacker could redirect.
    const TIOCGPTPEER: libc::Ioctl = 0x5441;
    // SAFETY: ioctl on our master fd returns a new descriptor.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor from the kernel.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok((master, slave, name))
}

/// Makes `slave` the controlling terminal and the stdio of this process.
pub fn attach_stdio(slave: &OwnedFd) -> io::Result<()> {
    // SAFETY: ioctl on our own descriptor.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for fd in 0..3 {
        sys::dup2(slave.as_raw_fd(), fd)?;
    }
    Ok(())
}

/// Sets the window size of a terminal.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid winsize struct.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

pub fn get_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn send_fd(sock: &OwnedFd, fd: &OwnedFd, name: &str) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(io::Error::from)
}

pub fn recv_fd(sock: &OwnedFd) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no descriptor in console message",
    ))
}

/// Connects to a `--console-socket` path.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)?;
    Ok(OwnedFd::from(s))
}
