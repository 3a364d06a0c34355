//! Blob bytes from the page cache straight to a plain TCP socket with sendfile(2), under
//! hyper's HTTP/1 framing.
//!
//! hyper only ever hands its transport bytes, so a file-backed body gives hyper stand-ins:
//! slices of a static region that is never read. [`ZeroCopyStream`], the connection's
//! transport, recognises those slices by address when hyper writes them and sends the
//! matching file range instead. Each stand-in frame queues its file range on the connection
//! when the body yields it, and hyper writes a connection's frames in the order it polled
//! them, so the queue's front always belongs to the first stand-in byte hyper writes.
//!
//! A stand-in byte with no queued range is an error, never zeros on the wire. sendfile may
//! wait for the disk when a blob is not cached; the body asks the kernel to read ahead so
//! that rarely happens on a worker thread.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Largest stand-in frame. The region lives in .bss and is never touched, so it costs
/// address space only.
const STANDIN_LEN: usize = 4 << 20;
static STANDIN: [u8; STANDIN_LEN] = [0; STANDIN_LEN];
/// How much of a blob the kernel is asked to read ahead at once when a body starts.
const WILLNEED_LEN: u64 = 16 << 20;

fn is_standin(buf: &[u8]) -> bool {
    let start = STANDIN.as_ptr() as usize;
    let p = buf.as_ptr() as usize;
    !buf.is_empty() && p >= start && p + buf.len() <= start + STANDIN_LEN
}

struct Span {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

type SpanQueue = Arc<Mutex<VecDeque<Span>>>;

fn lock(q: &SpanQueue) -> std::sync::MutexGuard<'_, VecDeque<Span>> {
    // The queue holds plain data; a panic elsewhere leaves it consistent.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's handle for file-backed bodies, put in each request's extensions. Only
/// connections served by a [`ZeroCopyStream`] have one.
#[derive(Clone)]
pub struct FileSender {
    spans: SpanQueue,
}

impl FileSender {
    /// A body of `len` bytes of `file` from `offset`, sent with sendfile on this connection.
    /// The file must not shrink while the body is sent; blobs are immutable.
    pub fn body(&self, file: File, offset: u64, len: u64) -> axum::body::Body {
        advise(&file, offset, len);
        let state = (self.spans.clone(), Arc::new(file), offset, len);
        let frames =
            futures_util::stream::unfold(state, |(spans, file, offset, left)| async move {
                if left == 0 {
                    return None;
                }
                let n = left.min(STANDIN_LEN as u64);
                lock(&spans).push_back(Span {
                    file: file.clone(),
                    offset,
                    len: n,
                });
                let chunk = Bytes::from_static(&STANDIN[..n as usize]);
                Some((
                    Ok::<_, io::Error>(chunk),
                    (spans, file, offset + n, left - n),
                ))
            });
        axum::body::Body::from_stream(frames)
    }
}

fn advise(file: &File, offset: u64, len: u64) {
    let (Ok(off), Ok(head), Ok(all)) = (
        i64::try_from(offset),
        i64::try_from(len.min(WILLNEED_LEN)),
        i64::try_from(len),
    ) else {
        return;
    };
    // SAFETY: plain syscalls on a descriptor `file` owns; only hints, so errors are ignored.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), off, all, libc::POSIX_FADV_SEQUENTIAL);
        libc::posix_fadvise(file.as_raw_fd(), off, head, libc::POSIX_FADV_WILLNEED);
    }
}

/// A plain TCP connection whose writes turn stand-in bytes into sendfile calls.
pub struct ZeroCopyStream {
    inner: TcpStream,
    spans: SpanQueue,
}

impl ZeroCopyStream {
    pub fn new(inner: TcpStream) -> (Self, FileSender) {
        let spans = SpanQueue::default();
        let sender = FileSender {
            spans: spans.clone(),
        };
        (Self { inner, spans }, sender)
    }

    /// Sends up to `want` bytes from the front span.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let mut spans = lock(&self.spans);
            let Some(span) = spans.front_mut() else {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "file body bytes without a queued file range",
                )));
            };
            let count = (want as u64).min(span.len) as usize;
            let (sock, file) = (self.inner.as_raw_fd(), span.file.as_raw_fd());
            let mut off = libc::off_t::try_from(span.offset).map_err(io::Error::other)?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                // SAFETY: both descriptors stay open for the call (the socket is borrowed
                // from `self.inner`, the file from the span) and `off` is a valid off_t.
                let r = unsafe { libc::sendfile(sock, file, &mut off, count) };
                if r < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(r as usize)
                }
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob shorter than its size",
                    )))
                }
                Ok(n) => {
                    span.offset += n as u64;
                    span.len -= n as u64;
                    if span.len == 0 {
                        spans.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                // Readiness was stale; try_io cleared it, so the next poll waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes runs of ordinary slices with writev and stand-in slices with sendfile, in
    /// order, stopping at the first short or pending write.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut written = 0;
        let mut i = 0;
        while i < bufs.len() {
            let (res, wanted) = if is_standin(&bufs[i]) {
                let want = bufs[i].len();
                i += 1;
                (this.poll_send_file(cx, want), want)
            } else {
                let run = bufs[i..].iter().take_while(|b| !is_standin(b)).count();
                let slices = &bufs[i..i + run];
                i += run;
                let want = slices.iter().map(|b| b.len()).sum();
                (
                    Pin::new(&mut this.inner).poll_write_vectored(cx, slices),
                    want,
                )
            };
            match res {
                Poll::Ready(Ok(n)) => {
                    written += n;
                    if n < wanted {
                        break;
                    }
                }
                Poll::Ready(Err(e)) if written == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if written == 0 => return Poll::Pending,
                // What was written counts; the error or wait shows again on the next call.
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standin_detection() {
        assert!(is_standin(&STANDIN[..10]));
        assert!(is_standin(&STANDIN[STANDIN_LEN - 1..]));
        assert!(!is_standin(&STANDIN[..0]));
        let other = [0u8; 16];
        assert!(!is_standin(&other));
        assert!(!is_standin(b"hello"));
    }
}
