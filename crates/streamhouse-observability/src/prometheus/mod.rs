//! The Prometheus bridge: a pull [`PrometheusReader`] over the SDK's collection, and the
//! exposition encoders, written straight from the SDK's data.
//!
//! Names follow the OpenTelemetry "Prometheus and OpenMetrics Compatibility" specification:
//! dots become underscores, a unit suffix and `_total` are appended when missing (catalog
//! streams already carry their pinned names), attribute keys become label names, and the
//! resource is exposed as `target_info`.

mod families;
mod naming;
mod negotiate;
pub mod openmetrics;
mod reader;
pub mod text;
mod write;

pub use negotiate::Format;
pub use reader::PrometheusReader;
