//! The whole server on one router: `/api/v1`, `/metrics` and `/health*`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use object_store::ObjectStore;
use streamhouse_observability::Telemetry;
use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::http::{HttpServerLayer, health_router, metrics_router};
use tokio::net::TcpListener;

use crate::api;
use crate::broker::Broker;
use crate::config::LiteConfig;
use crate::connections::CountingListener;
use crate::store;

/// How long shutdown waits for the writer pool to flush what is left.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A started broker with its health checks, ready to serve.
#[derive(Debug, Clone)]
pub struct LiteServer {
    broker: Broker,
    health: HealthRegistry,
    telemetry: Telemetry,
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

    /// `/api/v1`, `/metrics` and `/health`, `/health/live`, `/health/ready`.
    pub fn router(&self) -> Router {
        // Server spans (parented by an incoming `traceparent`) and request durations for the API.
        api::router(self.broker.clone())
            .layer(HttpServerLayer::new(&self.telemetry))
            .merge(metrics_router(&self.telemetry))
            .merge(health_router(&self.health))
    }

    /// Serves [`Self::router`] on `listener`, counting connections, until `shutdown`
    /// completes; then flushes what is buffered (bounded by [`SHUTDOWN_FLUSH_TIMEOUT`]).
    ///
    /// # Errors
    /// The listener failed.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = CountingListener::new(listener, &self.telemetry);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        self.broker.shutdown(SHUTDOWN_FLUSH_TIMEOUT).await;
        Ok(())
    }
}
