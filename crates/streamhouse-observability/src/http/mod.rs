//! HTTP: the axum routes StreamHouse serves for its operators.

mod layer;
mod metrics;

pub use layer::{HttpServerLayer, HttpServerService};
pub use metrics::metrics_router;
