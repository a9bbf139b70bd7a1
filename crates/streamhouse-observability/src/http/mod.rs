//! HTTP: the axum routes StreamHouse serves for its operators.

mod auth;
mod health;
mod layer;
mod metrics;

pub use auth::{BearerAuth, BearerAuthLayer};
pub use health::health_router;
pub use layer::{HttpServerLayer, HttpServerService};
pub use metrics::metrics_router;
