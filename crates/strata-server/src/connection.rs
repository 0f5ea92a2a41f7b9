//! A served connection: counted out of its thread's open connections when
//! dropped, and with its replies coalesced into fewer writes.
//!
//! HTTP/2 (h2) writes and flushes its frames each time its connection
//! task runs, and that task runs once per finished request when requests
//! finish one at a time: one `writev` per reply. Here a flush with bytes
//! pending first yields once (the task is woken at once and returns to
//! the back of its thread's run queue), so the requests already runnable
//! on the thread finish and add their replies, and one write carries them
//! all. A flush with nothing else runnable costs one extra turn of the
//! scheduler, not a wait. Measured: docs/benchmarks.md, "Serving threads".

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes held for a coalesced write; past this a write goes out at once.
const PENDING_BYTES_MAX: usize = 256 << 10;

pub(crate) struct Connection {
    stream: TcpStream,
    /// Open connections of this connection's thread.
    open: Arc<AtomicUsize>,
    /// Bytes accepted from h2 and not yet written; `pending[written..]`
    /// is what remains after a partial write.
    pending: Vec<u8>,
    written: usize,
    /// A flush has yielded once for the pending bytes already.
    yielded: bool,
}

impl Connection {
    /// Counts the connection into `open` (the caller counted it already).
    pub(crate) fn new(stream: TcpStream, open: Arc<AtomicUsize>) -> Connection {
        Connection {
            stream,
            open,
            pending: Vec::new(),
            written: 0,
            yielded: false,
        }
    }

    /// Writes every pending byte.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        self.yielded = false;
        Poll::Ready(Ok(()))
    }

    /// Takes `bufs` into the pending bytes, writing those out first if
    /// they would grow past `PENDING_BYTES_MAX`.
    fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.pending.len() + len > PENDING_BYTES_MAX {
            ready!(self.poll_write_pending(cx))?;
            if len > PENDING_BYTES_MAX {
                return Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            self.pending.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_take(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_take(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.written < this.pending.len() && !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection over a loopback socket, and the socket's other end.
    async fn pair(open: &Arc<AtomicUsize>) -> (Connection, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        open.fetch_add(1, Ordering::Relaxed);
        (
            Connection::new(accepted.unwrap().0, open.clone()),
            client.unwrap(),
        )
    }

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_go_out_together() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, mut peer) = pair(&open).await;
        conn.write_all(b"first ").await.unwrap();
        conn.write_all(b"second").await.unwrap();
        assert_eq!(conn.pending, b"first second", "held until the flush");
        // The first poll of the flush yields (and wakes itself); the
        // second writes.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut conn).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut conn).poll_flush(&mut cx).is_ready());
        assert!(conn.pending.is_empty());
        let mut got = [0u8; 12];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"first second");
        drop(conn);
        assert_eq!(open.load(Ordering::Relaxed), 0, "counted out when dropped");
    }

    #[tokio::test]
    async fn large_writes_and_shutdown_lose_nothing() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, mut peer) = pair(&open).await;
        let big: Vec<u8> = (0..3 * PENDING_BYTES_MAX)
            .map(|i| (i % 251) as u8)
            .collect();
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).await.unwrap();
            all
        });
        conn.write_all(b"head").await.unwrap();
        conn.write_all(&big).await.unwrap();
        conn.write_all(b"tail").await.unwrap();
        conn.shutdown().await.unwrap();
        let all = reader.await.unwrap();
        assert_eq!(all.len(), 8 + big.len());
        assert_eq!(&all[..4], b"head");
        assert_eq!(&all[4..4 + big.len()], &big[..]);
        assert_eq!(&all[4 + big.len()..], b"tail");
    }
}
