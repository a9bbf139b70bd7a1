//! The SDK's own HTTP listener, for applications without an axum server of their own:
//! [`AdminServer`] serves `/metrics` and `/health*` in one call; [`Server`] is the accept loop
//! under it, which any axum [`Router`] can use (the StreamHouse reference server does).
//!
//! ```no_run
//! use streamhouse_observability::health::HealthRegistry;
//! use streamhouse_observability::serve::AdminServer;
//! use streamhouse_observability::{Telemetry, TelemetryConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = Telemetry::new(TelemetryConfig::from_env()?)?;
//! let health = HealthRegistry::from_config(&telemetry.config().admin);
//! let admin = AdminServer::start(&telemetry, &health).await?;
//! println!("scrape {}/metrics", admin.url());
//! // ... the application runs ...
//! admin.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Why not `axum::serve`: it sets no timer, so hyper's header-read timeout never fires, and it
//! has no connection limit. [`Server`] is HTTP/1.1 on hyper with:
//!
//! - **Connections**: at most [`TransportLimits::max_connections`] at once. A permit is taken
//!   *before* `accept`, so excess clients wait in the kernel's listen backlog and the process
//!   never holds more sockets.
//! - **Header-read timeout**: a connection that has not sent a whole request head within
//!   [`TransportLimits::header_read_timeout`] is closed. The clock starts when hyper waits for
//!   a head, so it also closes idle keep-alive connections and clients that never send; a TLS
//!   handshake gets the same bound.
//! - **Shutdown**: stop accepting, let requests in flight finish, and after
//!   [`TransportLimits::shutdown_grace`] drop the connections still open, so a half-sent
//!   request cannot hold shutdown.
//! - **TLS** (feature `tls`): rustls from PEM files, reloaded when the files change (see
//!   [`tls`]).
//!
//! HTTP/1 only: an HTTP/2 client is refused at its first bytes, so no HTTP/2 handshake or
//! stream needs bounding. Request timeouts belong to the router, so they answer in the
//! router's own format ([`admin_router`] answers a plain-text 503).

mod admin;
#[cfg(feature = "tls")]
pub mod tls;

pub use admin::{AdminServer, AdminServerError, admin_router};

pub use crate::config::admin::TransportLimits;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::util::MapRequest;

/// Pause after an accept error that is not the client's (out of file descriptors, say), so
/// the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// An axum router served with transport limits (see the [module docs](self)).
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use streamhouse_observability::serve::{Server, TransportLimits};
///
/// # async fn run() -> std::io::Result<()> {
/// let app = Router::new().route("/", get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// Server::new(app, TransportLimits::default())
///     .serve(listener, async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    router: Router,
    limits: TransportLimits,
    #[cfg(feature = "tls")]
    tls: Option<tls::TlsAcceptor>,
    open: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Server");
        debug.field("limits", &self.limits);
        #[cfg(feature = "tls")]
        debug.field("tls", &self.tls.is_some());
        debug.field("counted", &self.open.is_some()).finish()
    }
}

impl Server {
    /// Serves `router` in plain HTTP within `limits`.
    pub fn new(router: Router, limits: TransportLimits) -> Self {
        Server {
            router,
            limits,
            #[cfg(feature = "tls")]
            tls: None,
            open: None,
        }
    }

    /// Serves HTTPS through `acceptor` (see [`tls::acceptor`]).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, acceptor: tls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// Adds each connection to `open` while it is open, so the caller can report open
    /// connections (several servers may share one counter).
    pub fn count_connections(mut self, open: Arc<AtomicU64>) -> Self {
        self.open = Some(open);
        self
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully within
    /// [`TransportLimits::shutdown_grace`]. Accept errors are logged and retried, never
    /// returned.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let limits = self.limits;
        let permits = Arc::new(Semaphore::new(
            limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let (stop, stopping) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permit = Arc::clone(&permits).acquire_owned() => {
                    permit.expect("the semaphore is never closed")
                }
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok((stream, peer)) => (stream, peer),
                Err(error) if is_client_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "accept failed; pausing");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            };
            // Finished tasks are reaped here, so the set holds at most one per permit.
            while connections.try_join_next().is_some() {}
            let connection = Connection {
                router: self.router.clone(),
                peer,
                limits,
                stopping: stopping.clone(),
                _open: self.open.as_ref().map(OpenGuard::new),
                _permit: permit,
            };
            #[cfg(feature = "tls")]
            connections.spawn(connection.run(stream, self.tls.clone()));
            #[cfg(not(feature = "tls"))]
            connections.spawn(connection.serve_http(stream));
        }
        drop(listener);
        let _ = stop.send(true);
        let drained = tokio::time::timeout(limits.shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = connections.len(),
                grace = ?limits.shutdown_grace,
                "closing connections still open after the shutdown grace"
            );
            connections.shutdown().await;
        }
    }
}

/// Errors of one client's connection attempt; the listener itself is fine.
fn is_client_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Counts one connection in the caller's counter until the connection's task ends, however
/// it ends (served, timed out, or dropped at the shutdown grace).
struct OpenGuard(Arc<AtomicU64>);

impl OpenGuard {
    fn new(open: &Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(Arc::clone(open))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One accepted connection and what it holds; its permit is returned when it ends.
struct Connection {
    router: Router,
    /// Given to handlers and layers as axum's `ConnectInfo` (the server span's
    /// `client.address`).
    peer: SocketAddr,
    limits: TransportLimits,
    stopping: watch::Receiver<bool>,
    _open: Option<OpenGuard>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    #[cfg(feature = "tls")]
    async fn run(self, stream: tokio::net::TcpStream, tls: Option<tls::TlsAcceptor>) {
        let Some(acceptor) = tls else {
            return self.serve_http(stream).await;
        };
        // A client that connects and sends nothing (or trickles its hello) is closed at the
        // header-read bound, like one that never sends a request head.
        let handshake = acceptor.accept(stream);
        match tokio::time::timeout(self.limits.header_read_timeout, handshake).await {
            Ok(Ok(stream)) => self.serve_http(stream).await,
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        }
    }

    async fn serve_http<Io>(mut self, io: Io)
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = ConnectInfo(self.peer);
        let router = MapRequest::new(self.router, move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(peer);
            request
        });
        let service = TowerToHyperService::new(router);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let stopping = async {
            // The guard `wait_for` returns is not `Send`: drop it at once.
            let _ = self.stopping.wait_for(|stop| *stop).await.is_ok();
        };
        let outcome = tokio::select! {
            outcome = connection.as_mut() => outcome,
            () = stopping => {
                // Finishes the request in flight, if any, then closes; the caller's grace
                // deadline bounds the wait.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = outcome {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}
