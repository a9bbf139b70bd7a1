//! The accept loop: HTTP/1.1 on hyper with the transport limits `axum::serve` cannot give
//! (it sets no timer, so hyper's header-read timeout never fires).
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
//!
//! HTTP/1 only: an HTTP/2 client is refused at its first bytes, so no HTTP/2 handshake or
//! stream needs bounding. Request timeouts are a router layer ([`deadline`]), so they answer
//! JSON and are counted like other answers.

pub mod deadline;
pub mod tls;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::LiteConfig;
use crate::connections::{ConnectionCounter, CountedStream};

/// Pause after an accept error that is not the client's (out of file descriptors, say), so
/// the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The limits one listener enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportLimits {
    /// A connection that has not sent a whole request head within this is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
}

impl TransportLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &LiteConfig) -> Self {
        TransportLimits {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            shutdown_grace: config.shutdown_grace,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then shuts down gracefully
/// within [`TransportLimits::shutdown_grace`]. With `tls`, every connection is HTTPS.
/// Connections are counted in `counter`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: TransportLimits,
    tls: Option<TlsAcceptor>,
    counter: &ConnectionCounter,
    shutdown: impl Future<Output = ()> + Send,
) {
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
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
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
            router: router.clone(),
            limits,
            stopping: stopping.clone(),
            _permit: permit,
        };
        connections.spawn(connection.run(counter.track(stream), tls.clone()));
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

/// Errors of one client's connection attempt; the listener itself is fine.
fn is_client_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection and what it needs; its permit is returned when it ends.
struct Connection {
    router: Router,
    limits: TransportLimits,
    stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: CountedStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else {
            return self.serve_http(stream).await;
        };
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
        let service = TowerToHyperService::new(self.router);
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
