//! `tracing` set-up: an env filter, human or JSON output, and the `tracing-opentelemetry`
//! layer, so `#[instrument]` spans become OpenTelemetry spans of a [`Telemetry`] instance and
//! JSON log lines carry their `trace_id` and `span_id`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RUST_LOG` | `tracing_subscriber::EnvFilter` directives | `info` |
//! | `STREAMHOUSE_LOG_FORMAT` | `human` or `json` | `human` |
//!
//! Install process-wide with [`init`]; for an independent instance (tests, embedders) build a
//! [`subscriber`] and use it with `tracing::subscriber::with_default`:
//!
//! ```
//! use streamhouse_observability::logging::{self, LogFormat, LoggingConfig};
//! use streamhouse_observability::{Telemetry, TelemetryConfig};
//!
//! let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
//! let config = LoggingConfig::default().with_format(LogFormat::Json);
//! let subscriber = logging::subscriber(&telemetry, &config, std::io::sink).unwrap();
//! tracing::subscriber::with_default(subscriber, || {
//!     let _span = tracing::info_span!("produce").entered();
//!     tracing::info!(records = 3, "accepted");
//! });
//! ```

mod json;

pub use json::JsonLogLayer;

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::Telemetry;
use crate::config::ConfigError;

/// The default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `tracing-subscriber`'s human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, with `trace_id` and `span_id` inside spans.
    Json,
}

/// Filter and format of the log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// `EnvFilter` directives, as in `RUST_LOG`.
    pub filter: String,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            filter: DEFAULT_FILTER.to_owned(),
            format: LogFormat::Human,
        }
    }
}

impl LoggingConfig {
    /// Reads `RUST_LOG` and `STREAMHOUSE_LOG_FORMAT` from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value cannot be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`.
    ///
    /// ```
    /// use streamhouse_observability::logging::{LogFormat, LoggingConfig};
    ///
    /// let config = LoggingConfig::from_lookup(|name| match name {
    ///     "STREAMHOUSE_LOG_FORMAT" => Some("json".to_owned()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(config.format, LogFormat::Json);
    /// assert_eq!(config.filter, "info");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = LoggingConfig::default();
        if let Some(filter) = get("RUST_LOG") {
            EnvFilter::try_new(&filter).map_err(|_| {
                ConfigError::new(
                    "RUST_LOG",
                    &filter,
                    "tracing-subscriber EnvFilter directives",
                )
            })?;
            config.filter = filter;
        }
        if let Some(raw) = get("STREAMHOUSE_LOG_FORMAT") {
            config.format = match raw.trim().to_ascii_lowercase().as_str() {
                "human" | "text" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "STREAMHOUSE_LOG_FORMAT",
                        &raw,
                        "human or json",
                    ));
                }
            };
        }
        Ok(config)
    }

    /// Sets the filter directives.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = filter.into();
        self
    }

    /// Sets the line format.
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }
}

/// Targets whose spans must not become OTel spans: the exporters' own HTTP and gRPC stacks
/// would otherwise trace their exports, which would be exported, and so on.
const EXPORT_STACK_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "tonic",
    "tower",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
];

/// A subscriber: `config.filter`, the OpenTelemetry layer on `telemetry`'s tracer, the
/// OTLP log bridge when `telemetry` pushes logs, and log lines in `config.format` written to
/// `make_writer` (e.g. `std::io::stdout`).
///
/// # Errors
/// A [`ConfigError`] naming `RUST_LOG` when the filter does not parse.
pub fn subscriber<W>(
    telemetry: &Telemetry,
    config: &LoggingConfig,
    make_writer: W,
) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.filter).map_err(|_| {
        ConfigError::new(
            "RUST_LOG",
            &config.filter,
            "tracing-subscriber EnvFilter directives",
        )
    })?;
    let otel = tracing_opentelemetry::layer()
        .with_tracer(telemetry.tracer())
        .with_filter(filter_fn(not_export_stack));
    // Pushes events as OTLP log records (with the current span's ids) when a logs endpoint
    // is configured; a `None` layer does nothing.
    let otlp_logs = telemetry.logger_provider().map(|provider| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
            .with_filter(filter_fn(not_export_stack))
    });
    Ok(tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(otlp_logs)
        .with(output_layer(config.format, make_writer)))
}

fn not_export_stack(metadata: &tracing::Metadata<'_>) -> bool {
    !is_export_stack(metadata.target())
}

/// Whether `target` is one of [`EXPORT_STACK_TARGETS`] or a module of it.
fn is_export_stack(target: &str) -> bool {
    EXPORT_STACK_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs [`subscriber`] (writing to stdout) as the process-wide default.
///
/// # Errors
/// A [`ConfigError`] for a bad filter; a [`ConfigError`] naming `tracing` when another
/// global subscriber is already set.
pub fn init(telemetry: &Telemetry, config: &LoggingConfig) -> Result<(), ConfigError> {
    subscriber(telemetry, config, std::io::stdout)?
        .try_init()
        .map_err(|e| {
            ConfigError::new(
                "tracing",
                "global subscriber",
                format!("none set yet ({e})"),
            )
        })
}

fn output_layer<S, W>(format: LogFormat, make_writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => JsonLogLayer::new(make_writer).boxed(),
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(make_writer)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_stack_targets_match_whole_crate_names() {
        let matches = is_export_stack;
        assert!(matches("h2::codec"));
        assert!(matches("hyper_util::client::legacy"));
        assert!(matches("opentelemetry_otlp"));
        assert!(!matches("h2o::app"));
        assert!(!matches("streamhouse::tonicity"));
    }
}
