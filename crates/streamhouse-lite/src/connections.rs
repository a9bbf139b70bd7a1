//! Counts open HTTP connections for `streamhouse_connections_active`: a listener whose
//! connections decrement the count when they close, however they close.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::serve::Listener;
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener that counts the connections it accepted and that are still open.
pub struct CountingListener {
    inner: TcpListener,
    open: Arc<AtomicU64>,
    _gauge: GaugeRegistration,
}

impl CountingListener {
    /// Wraps `inner` and registers the count as `streamhouse_connections_active`.
    pub fn new(inner: TcpListener, telemetry: &Telemetry) -> Self {
        let open = Arc::new(AtomicU64::new(0));
        let observed = Arc::clone(&open);
        CountingListener {
            inner,
            _gauge: telemetry
                .system()
                .observe_connections(move || observed.load(Ordering::Relaxed)),
            open,
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.open)
    }
}

impl Listener for CountingListener {
    type Io = CountedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        self.open.fetch_add(1, Ordering::Relaxed);
        let counted = CountedStream {
            stream,
            open: Arc::clone(&self.open),
        };
        (counted, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; closing (dropping) it decrements the count.
pub struct CountedStream {
    stream: TcpStream,
    open: Arc<AtomicU64>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
