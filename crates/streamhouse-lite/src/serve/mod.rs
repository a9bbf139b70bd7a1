//! How the server listens: the SDK's bounded accept loop
//! ([`streamhouse_observability::serve::Server`]: header-read timeout, connection limit,
//! graceful shutdown with a deadline, TLS reloaded from PEM files) with the limits of
//! [`LiteConfig`], plus what only this server has: a JSON request timeout ([`deadline`]).

pub mod deadline;

pub use streamhouse_observability::serve::{Server, TransportLimits, tls};

use std::time::Duration;

use crate::config::LiteConfig;

/// The transport limits `config` sets for the API listener (and the admin listener in
/// split mode, so one set of `STREAMHOUSE_*` variables governs the server), with
/// `telemetry_share` of the stop kept for telemetry's shutdown.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_lite::{LiteConfig, serve};
///
/// let config = LiteConfig {
///     shutdown_grace: Duration::from_secs(10),
///     stop_timeout: Duration::from_secs(8),
///     ..LiteConfig::default()
/// };
/// let limits = serve::limits(&config, Duration::from_secs(5));
/// assert_eq!(limits.shutdown_grace, Duration::from_secs(3));
/// ```
pub fn limits(config: &LiteConfig, telemetry_share: Duration) -> TransportLimits {
    // Requests in flight get their grace within the stop, never into telemetry's share.
    let grace = config
        .shutdown_grace
        .min(config.stop_timeout.saturating_sub(telemetry_share));
    TransportLimits::default()
        .with_header_read_timeout(config.header_read_timeout)
        .with_max_connections(config.max_connections)
        .with_shutdown_grace(grace)
}
