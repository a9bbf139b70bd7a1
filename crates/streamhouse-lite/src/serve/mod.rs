//! How the server listens: the SDK's bounded accept loop
//! ([`streamhouse_observability::serve::Server`]: header-read timeout, connection limit,
//! graceful shutdown with a deadline, TLS reloaded from PEM files) with the limits of
//! [`LiteConfig`], plus what only this server has: a JSON request timeout ([`deadline`]).

pub mod deadline;

pub use streamhouse_observability::serve::{Server, TransportLimits, tls};

use crate::config::LiteConfig;

/// The transport limits `config` sets for the API listener (and the admin listener in
/// split mode, so one set of `STREAMHOUSE_*` variables governs the server).
pub fn limits(config: &LiteConfig) -> TransportLimits {
    TransportLimits::default()
        .with_header_read_timeout(config.header_read_timeout)
        .with_max_connections(config.max_connections)
        // Requests in flight get their grace within the whole stop, never past it.
        .with_shutdown_grace(config.shutdown_grace.min(config.stop_timeout))
}
