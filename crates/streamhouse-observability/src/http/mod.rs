//! HTTP: the axum routes StreamHouse serves for its operators.

mod health;
mod metrics;

pub use health::health_router;
pub use metrics::metrics_router;
