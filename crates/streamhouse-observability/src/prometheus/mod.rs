//! The Prometheus bridge: a pull [`PrometheusReader`] over the SDK's collection, and the
//! exposition encoders, written straight from the SDK's data.
//!
//! Names follow the OpenTelemetry "Prometheus and OpenMetrics Compatibility" specification:
//! dots become underscores, a unit suffix and `_total` are appended when missing (catalog
//! streams already carry their pinned names), attribute keys become label names, and the
//! resource is exposed as `target_info`. Any collection renders to a valid exposition: name
//! and label collisions, reserved names, clashing families and values a type cannot hold each
//! have one deterministic outcome, written down in `docs/exposition.md`, and what is left out
//! is counted in `streamhouse_telemetry_exposition_dropped_total`.

mod body;
mod families;
mod labels;
pub(crate) mod naming;
mod negotiate;
mod openmetrics;
mod reader;
pub(crate) mod rendered;
mod text;
pub(crate) mod write;

#[cfg(feature = "axum")]
pub(crate) use negotiate::parse_qvalue;
pub use negotiate::{Format, ScrapeProtocol};
pub use reader::{PrometheusReader, RENDER_CHUNK_BYTES, RenderError};

#[cfg(test)]
mod tests;
