//! The server: `/api/v1` and the admin endpoints (`/metrics`, `/health*`), on one port
//! ([`LiteServer::serve`]) or on two ([`LiteServer::serve_split`], built on
//! [`LiteServer::serve_api`] and [`LiteServer::serve_admin`]), each through the SDK's bounded
//! accept loop (see [`crate::serve`]).
//!
//! Shutdown order on two ports: the API stops accepting, buffered segments are flushed, and
//! only then does the admin listener stop (after [`LiteConfig::admin_linger`]), so a scrape
//! during or after the flush sees the flushed state.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use object_store::ObjectStore;
use streamhouse_observability::Telemetry;
use streamhouse_observability::config::ConfigError;
use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::http::HttpServerLayer;
use streamhouse_observability::metrics::GaugeRegistration;
use streamhouse_observability::serve::admin_router;
use streamhouse_observability::serve::tls::{self, TlsAcceptor};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::api;
use crate::broker::Broker;
use crate::config::LiteConfig;
use crate::connections::ConnectionCounter;
use crate::serve::{self, Server, TransportLimits, deadline};
use crate::store;

/// A started broker with its health checks, ready to serve.
#[derive(Debug, Clone)]
pub struct LiteServer {
    broker: Broker,
    health: HealthRegistry,
    telemetry: Telemetry,
    connections: Arc<ConnectionCounter>,
    _runtime_gauges: Arc<GaugeRegistration>,
}

impl LiteServer {
    /// Opens the object store `config` names, starts the broker, and recovers the topics
    /// and segments already in the store (see [`Broker::recover`]).
    ///
    /// # Errors
    /// The store cannot be opened (see [`store::open`]), listed or read.
    pub async fn start(
        config: LiteConfig,
        telemetry: &Telemetry,
    ) -> Result<Self, object_store::Error> {
        let store = store::open(&config.store)?;
        let server = Self::start_with_store(config, telemetry, store);
        server.broker.recover().await?;
        Ok(server)
    }

    /// Starts the broker over `store` (any store: tests pass failing or remote ones).
    pub fn start_with_store(
        config: LiteConfig,
        telemetry: &Telemetry,
        store: Arc<dyn ObjectStore>,
    ) -> Self {
        // STREAMHOUSE_HEALTH_CHECK_TIMEOUT_MS and STREAMHOUSE_HEALTH_CACHE_MS.
        let health = HealthRegistry::from_config(&telemetry.config().admin);
        let broker = Broker::start(config, telemetry, store, &health);
        LiteServer {
            broker,
            health,
            telemetry: telemetry.clone(),
            connections: Arc::new(ConnectionCounter::new(telemetry)),
            // Collection may run off the runtime, so the server names the one it runs on.
            _runtime_gauges: Arc::new(telemetry.process().observe_runtime(Handle::current())),
        }
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The readiness checks; other components may add theirs.
    pub fn health(&self) -> &HealthRegistry {
        &self.health
    }

    /// Connections open now on every listener this server serves.
    pub fn open_connections(&self) -> u64 {
        self.connections.open()
    }

    /// `/api/v1`: every answer JSON (unknown paths and wrong methods included), each request
    /// bounded by [`LiteConfig::request_timeout`], and each counted with a server span.
    pub fn api_router(&self) -> Router {
        let timeout = self.broker.config().request_timeout;
        deadline::with_request_timeout(api::router(self.broker.clone()), timeout)
            // Server spans (parented by an incoming `traceparent`) and request durations.
            .layer(HttpServerLayer::new(&self.telemetry))
    }

    /// `/metrics`, `/health`, `/health/live` and `/health/ready`: the SDK's
    /// [`admin_router`], behind the telemetry configuration's bearer token when it has one,
    /// each request bounded by its admin request timeout.
    pub fn admin_router(&self) -> Router {
        admin_router(&self.telemetry, &self.health)
    }

    /// [`Self::api_router`] and [`Self::admin_router`] together, for one port.
    pub fn router(&self) -> Router {
        self.api_router().merge(self.admin_router())
    }

    /// The admin listener's TLS acceptor when the telemetry configuration names PEM files;
    /// it serves new files when they change (see [`tls`]).
    ///
    /// # Errors
    /// A file cannot be read or used; see [`tls::acceptor`].
    pub fn admin_tls(&self) -> Result<Option<TlsAcceptor>, ConfigError> {
        self.telemetry
            .config()
            .admin
            .tls
            .as_ref()
            .map(tls::acceptor)
            .transpose()
    }

    /// Serves [`Self::router`] on `listener` until `shutdown` completes, within the
    /// configuration's transport limits; then seals and flushes what is buffered, within
    /// what [`LiteConfig::stop_timeout`] leaves after the requests in flight and telemetry's
    /// shutdown timeout.
    ///
    /// # Errors
    /// When records were left unflushed at the deadline (the log counts them); accept errors
    /// are logged and retried.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (shutdown, signalled) = timed(shutdown);
        self.serve_router(listener, self.router(), self.api_limits(), None, shutdown)
            .await;
        self.flush(signalled).await
    }

    /// Seals and flushes every segment within the stop deadline that began at `signalled`,
    /// keeping telemetry's shutdown timeout for after.
    async fn flush(&self, signalled: Arc<OnceLock<Instant>>) -> std::io::Result<()> {
        let began = signalled.get().copied().unwrap_or_else(Instant::now);
        let telemetry_share = self.telemetry.config().shutdown_timeout;
        let left = self
            .broker
            .config()
            .stop_timeout
            .saturating_sub(telemetry_share)
            .saturating_sub(began.elapsed());
        let unflushed = self.broker.shutdown(left).await;
        if unflushed.is_empty() {
            return Ok(());
        }
        tracing::error!(
            segments = unflushed.segments,
            bytes = unflushed.bytes,
            "the stop deadline passed with records not in the object store"
        );
        Err(std::io::Error::other(format!(
            "{} bytes of records ({} sealed segments) not flushed within \
             STREAMHOUSE_STOP_TIMEOUT_MS less STREAMHOUSE_SHUTDOWN_TIMEOUT_MS",
            unflushed.bytes, unflushed.segments
        )))
    }

    /// As [`Self::serve`], with [`Self::api_router`] only: the public port when the admin
    /// endpoints have a listener of their own.
    ///
    /// # Errors
    /// As [`Self::serve`].
    pub async fn serve_api(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (shutdown, signalled) = timed(shutdown);
        self.serve_router(
            listener,
            self.api_router(),
            self.api_limits(),
            None,
            shutdown,
        )
        .await;
        self.flush(signalled).await
    }

    /// [`Self::serve_api`] on `api` and [`Self::serve_admin`] on `admin` (HTTPS with `tls`)
    /// until `shutdown` completes. The admin listener outlives the API: it stops after the
    /// final flush and then [`LiteConfig::admin_linger`], so the last scrapes see what the
    /// flush did.
    ///
    /// # Errors
    /// As [`Self::serve`].
    pub async fn serve_split(
        &self,
        api: TcpListener,
        admin: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (flushed, flush_done) = oneshot::channel::<()>();
        let linger = self.broker.config().admin_linger;
        let admin_stop = async move {
            // Also when the API side ends abnormally and drops the sender.
            let _ = flush_done.await;
            tokio::time::sleep(linger).await;
        };
        let api_then_flush = async {
            let served = self.serve_api(api, shutdown).await;
            let _ = flushed.send(());
            served
        };
        let (api, admin) = tokio::join!(api_then_flush, self.serve_admin(admin, tls, admin_stop));
        api.and(admin)
    }

    /// Serves [`Self::admin_router`] on `listener` (HTTPS with `tls`) until `shutdown`
    /// completes, within the admin configuration's transport limits
    /// (`STREAMHOUSE_METRICS_*`, see
    /// [`AdminConfig`](streamhouse_observability::config::AdminConfig)); the broker is left
    /// running.
    ///
    /// # Errors
    /// As [`Self::serve`].
    pub async fn serve_admin(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.telemetry.config().admin.limits;
        self.serve_router(listener, self.admin_router(), limits, tls, shutdown)
            .await;
        Ok(())
    }

    fn api_limits(&self) -> TransportLimits {
        serve::limits(
            self.broker.config(),
            self.telemetry.config().shutdown_timeout,
        )
    }

    async fn serve_router(
        &self,
        listener: TcpListener,
        router: Router,
        limits: TransportLimits,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let server = Server::new(router, limits).count_connections(self.connections.shared());
        let server = match tls {
            Some(acceptor) => server.with_tls(acceptor),
            None => server,
        };
        server.serve(listener, shutdown).await;
    }
}

/// `shutdown`, noting when it completed: the stop deadline counts from there.
fn timed(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    impl Future<Output = ()> + Send + 'static,
    Arc<OnceLock<Instant>>,
) {
    let signalled = Arc::new(OnceLock::new());
    let noted = Arc::clone(&signalled);
    let shutdown = async move {
        shutdown.await;
        let _ = noted.set(Instant::now());
    };
    (shutdown, signalled)
}
