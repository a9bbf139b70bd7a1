//! Counts open HTTP connections for `streamhouse_connections_active`: every accepted stream
//! is wrapped so that closing it, however it closes, decrements the count.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The open connections of every listener a server serves, reported as
/// `streamhouse_connections_active` for as long as the counter lives.
pub struct ConnectionCounter {
    open: Arc<AtomicU64>,
    _gauge: GaugeRegistration,
}

impl std::fmt::Debug for ConnectionCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionCounter")
            .field("open", &self.open())
            .finish()
    }
}

impl ConnectionCounter {
    /// A counter at zero, registered with `telemetry`.
    pub fn new(telemetry: &Telemetry) -> Self {
        let open = Arc::new(AtomicU64::new(0));
        let observed = Arc::clone(&open);
        ConnectionCounter {
            _gauge: telemetry
                .system()
                .observe_connections(move || observed.load(Ordering::Relaxed)),
            open,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts `stream` until the returned wrapper is dropped.
    pub fn track(&self, stream: TcpStream) -> CountedStream {
        self.open.fetch_add(1, Ordering::Relaxed);
        CountedStream {
            stream,
            open: Arc::clone(&self.open),
        }
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
