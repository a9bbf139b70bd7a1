//! The server: `/api/v1` and the admin endpoints (`/metrics`, `/health*`), on one port
//! ([`LiteServer::serve`]) or on two ([`LiteServer::serve_api`] and
//! [`LiteServer::serve_admin`]), each through the bounded accept loop of [`crate::serve`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use object_store::ObjectStore;
use streamhouse_observability::Telemetry;
use streamhouse_observability::config::ConfigError;
use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::http::{
    BearerAuthLayer, HttpServerLayer, health_router, metrics_router,
};
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_rustls::TlsAcceptor;

use crate::api;
use crate::broker::Broker;
use crate::config::LiteConfig;
use crate::connections::ConnectionCounter;
use crate::serve::{self, TransportLimits, deadline, tls};
use crate::store;

/// How long shutdown waits for the writer pool to flush what is left.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

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
        let health = HealthRegistry::new();
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

    /// `/metrics`, `/health`, `/health/live` and `/health/ready`, behind the telemetry
    /// configuration's bearer token when it has one.
    pub fn admin_router(&self) -> Router {
        let timeout = self.broker.config().request_timeout;
        let admin = metrics_router(&self.telemetry).merge(health_router(&self.health));
        let admin = deadline::with_request_timeout(admin, timeout);
        match &self.telemetry.config().admin.bearer_token {
            Some(token) => admin.layer(BearerAuthLayer::new(token.clone())),
            None => admin,
        }
    }

    /// [`Self::api_router`] and [`Self::admin_router`] together, for one port.
    pub fn router(&self) -> Router {
        self.api_router().merge(self.admin_router())
    }

    /// The admin listener's TLS acceptor when the telemetry configuration names PEM files.
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
    /// configuration's transport limits; then flushes what is buffered (bounded by
    /// [`SHUTDOWN_FLUSH_TIMEOUT`]).
    ///
    /// # Errors
    /// None today: accept errors are logged and retried. The signature leaves room for
    /// listener failures.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_router(listener, self.router(), None, shutdown)
            .await;
        self.broker.shutdown(SHUTDOWN_FLUSH_TIMEOUT).await;
        Ok(())
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
        self.serve_router(listener, self.api_router(), None, shutdown)
            .await;
        self.broker.shutdown(SHUTDOWN_FLUSH_TIMEOUT).await;
        Ok(())
    }

    /// Serves [`Self::admin_router`] on `listener` (HTTPS with `tls`) until `shutdown`
    /// completes; the broker is left running.
    ///
    /// # Errors
    /// As [`Self::serve`].
    pub async fn serve_admin(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_router(listener, self.admin_router(), tls, shutdown)
            .await;
        Ok(())
    }

    async fn serve_router(
        &self,
        listener: TcpListener,
        router: Router,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let limits = TransportLimits::from_config(self.broker.config());
        serve::serve(listener, router, limits, tls, &self.connections, shutdown).await;
    }
}
