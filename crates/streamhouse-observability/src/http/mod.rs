//! HTTP: the axum routes StreamHouse serves for its operators.

mod metrics;

pub use metrics::metrics_router;
