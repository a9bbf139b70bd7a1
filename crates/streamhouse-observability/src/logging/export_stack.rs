//! The export stack: crates whose spans and events must never be exported.
//!
//! Exporting them would feed back: an export's own HTTP/2 frames, the SDK's report of a
//! failed export, or our once-per-outage warning would become log records and spans that are
//! exported in turn (and fail in turn). They still reach the output layer, so an operator sees
//! the SDK's diagnostics and transport errors in the application's own log lines.

use tracing::Metadata;

/// Targets (crate names, or module paths inside a crate) that are never exported.
///
/// - The OpenTelemetry crates: with their `internal-logs` feature they report through
///   `tracing` with the package name as target, so the hyphenated spelling
///   (`opentelemetry-http`) appears next to the module path (`opentelemetry_http::..`).
/// - Our own transport and its failure logger (`streamhouse_observability::otlp`).
/// - Every crate the transports use to talk to a collector.
pub const EXPORT_STACK_TARGETS: &[&str] = &[
    // OpenTelemetry itself.
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-http",
    "opentelemetry_http",
    "opentelemetry-proto",
    "opentelemetry_proto",
    "opentelemetry-appender-tracing",
    "opentelemetry_appender_tracing",
    "opentelemetry-propagator-b3",
    "opentelemetry_propagator_b3",
    "opentelemetry-stdout",
    "opentelemetry_stdout",
    "tracing_opentelemetry",
    // Ours: the OTLP transport and the failure logger.
    "streamhouse_observability::otlp",
    // The transports' HTTP, gRPC and TLS stack.
    "h2",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "tonic",
    "tower",
];

/// SDK events that report one failed export each: the exporter wrapper counts every failure
/// and logs once per outage, so our output leaves these out rather than repeat an error every
/// batch for as long as a collector is down. An application's own layers still see them.
const PER_EXPORT_ERRORS: &[&str] = &[
    "BatchSpanProcessor.ExportError",
    "BatchLogProcessor.ExportError",
    "PeriodicReader.ExportError",
];

/// For `filter_fn` on our output: lets through all but [`PER_EXPORT_ERRORS`].
pub(super) fn not_per_export_error(metadata: &Metadata<'_>) -> bool {
    !(metadata.is_event() && PER_EXPORT_ERRORS.contains(&metadata.name()))
}

/// Whether `target` is one of [`EXPORT_STACK_TARGETS`] or a module of one. Whole names
/// only: `h2o` and `hyperloglog` are not `h2` and `hyper`.
///
/// ```
/// use streamhouse_observability::logging::is_export_stack;
///
/// assert!(is_export_stack("h2::codec::framed_write"));
/// assert!(is_export_stack("opentelemetry_sdk"));
/// assert!(!is_export_stack("my_app::handlers"));
/// ```
pub fn is_export_stack(target: &str) -> bool {
    EXPORT_STACK_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// For `filter_fn`: lets through what is not the export stack.
pub(super) fn not_export_stack(metadata: &Metadata<'_>) -> bool {
    !is_export_stack(metadata.target())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_crate_names_and_their_modules_match() {
        for target in [
            "h2::codec",
            "hyper_util::client::legacy",
            "opentelemetry_http",
            "opentelemetry-http",
            "opentelemetry_sdk::trace::span_processor",
            "streamhouse_observability::otlp",
            "streamhouse_observability::otlp::counted",
            "rustls::client::hs",
            "tonic::transport::channel",
        ] {
            assert!(is_export_stack(target), "{target}");
        }
    }

    #[test]
    fn other_names_do_not() {
        for target in [
            "h2o::app",
            "streamhouse::tonicity",
            "hyperloglog",
            "streamhouse_observability::otlpish",
            "streamhouse_observability::http::layer",
            "streamhouse_lite::broker",
            "opentelemetry_demo_app",
            "",
        ] {
            assert!(!is_export_stack(target), "{target}");
        }
    }
}
