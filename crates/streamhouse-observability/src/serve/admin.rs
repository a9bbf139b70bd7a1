//! [`AdminServer`]: `/metrics` and `/health*` on the SDK's own listener, in one call.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Server;
use crate::Telemetry;
use crate::config::ConfigError;
use crate::health::HealthRegistry;
use crate::http::{BearerAuthLayer, health_router, metrics_router};

/// `/metrics` and `/health*` as the admin configuration of `telemetry` asks: each request
/// bounded by [`AdminConfig::request_timeout`](crate::config::AdminConfig::request_timeout)
/// (503 after), behind the bearer token when one is set. [`AdminServer`] serves it; an
/// application with an axum server of its own can merge it instead.
///
/// ```
/// use streamhouse_observability::health::HealthRegistry;
/// use streamhouse_observability::serve::admin_router;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let admin: axum::Router = admin_router(&telemetry, &HealthRegistry::new());
/// ```
pub fn admin_router(telemetry: &Telemetry, health: &HealthRegistry) -> Router {
    let admin = &telemetry.config().admin;
    let router = metrics_router(telemetry)
        .merge(health_router(health))
        .layer(from_fn_with_state(admin.request_timeout, bounded));
    match &admin.bearer_token {
        Some(token) => router.layer(BearerAuthLayer::new(token.clone())),
        None => router,
    }
}

async fn bounded(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {} ms\n", limit.as_millis()),
        )
            .into_response(),
    }
}

/// Why [`AdminServer::start`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminServerError {
    /// The TLS files cannot be used; the error names the variable that named them.
    Tls(ConfigError),
    /// The address cannot be bound (in use, or not an address of this host).
    Bind {
        /// The address from [`TelemetryConfig::metrics_addr`](crate::TelemetryConfig::metrics_addr).
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl fmt::Display for AdminServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminServerError::Tls(error) => write!(f, "admin listener TLS: {error}"),
            AdminServerError::Bind { addr, .. } => write!(
                f,
                "cannot listen on {addr} for /metrics (set OTEL_EXPORTER_PROMETHEUS_HOST/_PORT \
                 or STREAMHOUSE_METRICS_ADDR)"
            ),
        }
    }
}

impl std::error::Error for AdminServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminServerError::Tls(error) => Some(error),
            AdminServerError::Bind { source, .. } => Some(source),
        }
    }
}

impl From<ConfigError> for AdminServerError {
    fn from(error: ConfigError) -> Self {
        AdminServerError::Tls(error)
    }
}

/// The SDK's own admin listener: [`admin_router`] served on
/// [`TelemetryConfig::metrics_addr`](crate::TelemetryConfig::metrics_addr) with the
/// [`AdminConfig`](crate::config::AdminConfig)'s transport limits, bearer token and TLS
/// (reloaded when the files change). Runs on the current tokio runtime until
/// [`shutdown`](Self::shutdown) or drop.
///
/// ```no_run
/// use streamhouse_observability::health::HealthRegistry;
/// use streamhouse_observability::serve::AdminServer;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = Telemetry::init_global(TelemetryConfig::from_env()?)?;
/// let health = HealthRegistry::from_config(&telemetry.config().admin);
/// let admin = AdminServer::start(&telemetry, &health).await?;
/// tokio::signal::ctrl_c().await?;
/// admin.shutdown().await;
/// telemetry.shutdown()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    https: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Loads the TLS files (if any), binds the admin address and starts serving
    /// `/metrics` and `/health*` (readiness from `health`).
    ///
    /// # Errors
    /// [`AdminServerError::Tls`] when a TLS file cannot be used (before anything is bound);
    /// [`AdminServerError::Bind`] when the address cannot be bound.
    pub async fn start(
        telemetry: &Telemetry,
        health: &HealthRegistry,
    ) -> Result<Self, AdminServerError> {
        Self::start_with_router(telemetry, admin_router(telemetry, health)).await
    }

    /// As [`Self::start`], serving `router` (for example [`admin_router`] merged with routes
    /// of the application's own) in place of [`admin_router`].
    ///
    /// # Errors
    /// As [`Self::start`].
    pub async fn start_with_router(
        telemetry: &Telemetry,
        router: Router,
    ) -> Result<Self, AdminServerError> {
        let config = telemetry.config();
        let server = Server::new(router, config.admin.limits);
        let (server, https) = match &config.admin.tls {
            #[cfg(feature = "tls")]
            Some(files) => (server.with_tls(super::tls::acceptor(files)?), true),
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                return Err(AdminServerError::Tls(ConfigError::new(
                    crate::config::admin::TLS_CERT_VAR,
                    "",
                    "no TLS files: this build lacks the `tls` feature",
                )));
            }
            None => (server, false),
        };
        let addr = config.metrics_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminServerError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| AdminServerError::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        tracing::info!(%addr, https, "admin listener serving /metrics and /health");
        Ok(AdminServer {
            addr,
            https,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on (the bound port when the configuration said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr` or `https://addr`, without a trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish within the shutdown grace, and
    /// returns when the listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the admin listener task ended abnormally");
        }
    }
}

impl Drop for AdminServer {
    /// Starts the shutdown without waiting for it; the task finishes in the background.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
