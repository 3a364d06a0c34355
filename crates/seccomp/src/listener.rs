//! Handing the seccomp notification fd to its consumers.
//!
//! Two hops, as in runc: the init child sends the fd to the runtime parent over their sync
//! socket ([`send_fd`], async-signal-safe), then the parent, which knows the container state,
//! sends it to the agent at `linux.seccomp.listenerPath` ([`send_to_listener`]) with the OCI
//! "container process state" JSON in the same message.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::{ContainerProcessState, State, SECCOMP_FD_NAME};

use crate::Error;

/// OCI runtime-spec version written in the messages we produce.
const OCI_VERSION: &str = "1.2.0";

/// Largest state message accepted by [`recv_listener_message`]; runc uses the same order of size.
const MAX_MESSAGE: usize = 64 * 1024;

/// Room for one `cmsghdr` carrying one fd, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct OneFdCmsg([u8; 32]);

// SAFETY: CMSG_SPACE is pure arithmetic.
const ONE_FD_SPACE: usize =
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
// Checked at compile time so that the forked child can never fail (or panic) on it.
const _: () = assert!(ONE_FD_SPACE <= std::mem::size_of::<OneFdCmsg>());

/// Sends `fd` with a one-byte payload over a connected unix socket, with `SCM_RIGHTS`.
///
/// Async-signal-safe: raw `sendmsg` with stack buffers. Meant for the init child right after
/// [`crate::install`]; the filter must allow `sendmsg` (and not send it to NOTIFY).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut payload = [b'S'; 1];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut cmsg = OneFdCmsg([0; 32]);
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = ONE_FD_SPACE as _;
    // SAFETY: msg_control points at ONE_FD_SPACE writable, aligned bytes, enough for one header.
    unsafe {
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        (*hdr).cmsg_level = libc::SOL_SOCKET;
        (*hdr).cmsg_type = libc::SCM_RIGHTS;
        (*hdr).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: every pointer in msg refers to live stack buffers.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Receives one fd sent by [`send_fd`] (parent side). The fd is close-on-exec.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let mut payload = [0u8; 1];
    let (_, mut fds) = recv_with_fds(sock, &mut payload)?;
    if fds.is_empty() {
        return Err(Error::io(
            "receiving seccomp fd",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "message carried no fd"),
        ));
    }
    Ok(fds.swap_remove(0))
}

/// The OCI container process state sent along with the fd (`fds: ["seccompFd"]`).
pub fn process_state(pid: i32, metadata: Option<String>, state: State) -> ContainerProcessState {
    let mut s = ContainerProcessState::default();
    s.set_version(OCI_VERSION.to_string());
    s.set_fds(vec![SECCOMP_FD_NAME.to_string()]);
    s.set_pid(pid);
    s.set_metadata(metadata);
    s.set_state(state);
    s
}

/// Connects to the seccomp agent at `listener_path` and sends it the state JSON and the
/// listener fd in one `SCM_RIGHTS` message, as runc does.
pub fn send_to_listener(
    listener_path: &Path,
    seccomp_fd: BorrowedFd<'_>,
    state: &ContainerProcessState,
) -> Result<(), Error> {
    let context = || format!("seccomp listener {}", listener_path.display());
    let json =
        serde_json::to_vec(state).map_err(|e| Error::io(context(), std::io::Error::other(e)))?;
    let stream = UnixStream::connect(listener_path).map_err(|e| Error::io(context(), e))?;
    let fds = [seccomp_fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(&json)];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::io(context(), e.into()))?;
    if sent != json.len() {
        return Err(Error::io(
            context(),
            std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short write of state message",
            ),
        ));
    }
    Ok(())
}

/// Agent side of [`send_to_listener`]: reads one state message and the fds attached to it.
pub fn recv_listener_message(
    sock: BorrowedFd<'_>,
) -> Result<(ContainerProcessState, Vec<OwnedFd>), Error> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, fds) = recv_with_fds(sock, &mut buf)?;
    let state = serde_json::from_slice(&buf[..n]).map_err(|e| Error::Parse {
        field: "container process state".into(),
        reason: e.to_string(),
    })?;
    Ok((state, fds))
}

fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), Error> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::io("receiving fd message", e.into()))?;
    let mut fds = Vec::new();
    for c in msg
        .cmsgs()
        .map_err(|e| Error::io("reading control messages", e.into()))?
    {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS installed these fds in our table just now; we own them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(Error::io(
            "receiving fd message",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "control data truncated"),
        ));
    }
    Ok((msg.bytes, fds))
}
