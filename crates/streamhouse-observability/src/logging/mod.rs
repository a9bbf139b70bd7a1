//! `tracing` set-up: the `tracing-opentelemetry` layer, so `#[instrument]` spans become
//! OpenTelemetry spans of a [`Telemetry`] instance; the OTLP log bridge when logs are pushed;
//! human or JSON log lines whose JSON form carries span fields, `trace_id` and `span_id`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RUST_LOG` | `tracing_subscriber::EnvFilter` directives for our layers (at most [`MAX_FILTER_BYTES`]) | `info` |
//! | `STREAMHOUSE_LOG_FORMAT` | `human` or `json` | `human` |
//!
//! Three ways in, each built on the one before:
//!
//! - [`layer`]: our layers as one `Layer<S>` for an application's own registry;
//! - [`subscriber`]: a registry with [`layer`] and an output layer (tests, embedders, use with
//!   `tracing::subscriber::with_default`);
//! - [`init`]: [`subscriber`] writing to stdout, installed process-wide.
//!
//! # Filters
//!
//! [`LoggingConfig::filter`] (`RUST_LOG`) is a *per-layer* filter on each of our layers: it
//! decides which spans are exported, which events become OTLP log records and which reach our
//! output layer, and it never hides anything from the application's own layers, which keep
//! their own filters. (A *global* filter the application adds with `.with(filter)` outside a
//! layer still applies to everything, ours included.) On top of it, nothing from the export
//! stack ([`EXPORT_STACK_TARGETS`]: the OpenTelemetry crates, our OTLP transport, hyper, h2,
//! tonic, tower, rustls...) is ever exported, which would feed back; it still reaches the
//! output layer.
//!
//! # The SDK's own diagnostics
//!
//! The OpenTelemetry SDK reports through `tracing` (its `internal-logs` feature), with the
//! crate name as target (`opentelemetry_sdk`, `opentelemetry`, ...) and the event name in a
//! `name` field: failed exports and dropped spans at `ERROR`/`WARN`, lifecycle at `INFO`
//! (once per provider), its chatter at `DEBUG`. At the default `info` they show among the
//! application's lines; `RUST_LOG=info,opentelemetry_sdk=debug` shows the chatter. Its
//! background threads log through the *global* subscriber, so only [`init`] (or an
//! application's own global set-up with [`layer`]) shows them.
//!
//! # Composing with an application's own layers
//!
//! ```
//! use streamhouse_observability::logging::{self, LoggingConfig};
//! use streamhouse_observability::{Telemetry, TelemetryConfig};
//! use tracing_subscriber::filter::LevelFilter;
//! use tracing_subscriber::fmt::writer::BoxMakeWriter;
//! use tracing_subscriber::layer::{Layer, SubscriberExt};
//!
//! let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
//! // The application's own output, with its own filter: it sees its debug events...
//! let app_output = tracing_subscriber::fmt::layer()
//!     .with_writer(std::io::sink)
//!     .with_filter(LevelFilter::DEBUG);
//! // ...while ours export and log at `RUST_LOG` (here the default, `info`).
//! let ours = logging::layer(
//!     &telemetry,
//!     &LoggingConfig::default(),
//!     Some(BoxMakeWriter::new(std::io::sink)),
//! )
//! .unwrap();
//! let subscriber = tracing_subscriber::registry().with(app_output).with(ours);
//! // In an application: `tracing::subscriber::set_global_default(subscriber)`.
//! tracing::subscriber::with_default(subscriber, || {
//!     let _span = tracing::info_span!("produce", topic = "orders").entered();
//!     tracing::debug!("only the application's layer sees this");
//!     tracing::info!(records = 3, "accepted");
//! });
//! ```
//!
//! # A whole subscriber
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

mod config;
mod export_stack;
mod json;

pub use config::{DEFAULT_FILTER, LogFormat, LoggingConfig, MAX_FILTER_BYTES};
pub use export_stack::{EXPORT_STACK_TARGETS, is_export_stack};
pub use json::JsonLogLayer;

use tracing::Subscriber;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Identity, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::Telemetry;
use crate::config::ConfigError;
use config::parse_filter;
use export_stack::{not_export_stack, not_per_export_error};

/// Our layers as one `Layer<S>` for any registry-based subscriber: the OpenTelemetry layer on
/// `telemetry`'s tracer, the OTLP log bridge when `telemetry` pushes logs, and, when `output`
/// is given, log lines in `config.format` written to it.
///
/// Each carries its own filter (`config.filter`, and for the first two "not the export
/// stack"), so the application's other layers see every span and event they saw before;
/// see the [module docs](self) for an example.
///
/// # Errors
/// A [`ConfigError`] naming `RUST_LOG` when `config.filter` does not parse.
pub fn layer<S>(
    telemetry: &Telemetry,
    config: &LoggingConfig,
    output: Option<BoxMakeWriter>,
) -> Result<impl Layer<S> + Send + Sync + 'static, ConfigError>
where
    // Send, Sync, 'static: the layers name `S` in their types; registries are all three.
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    // One filter per layer: `EnvFilter` is not `Clone`, and per-layer filters must be owned.
    let exported =
        || Ok::<_, ConfigError>(parse_filter(&config.filter)?.and(filter_fn(not_export_stack)));
    let otel = tracing_opentelemetry::layer()
        .with_tracer(telemetry.tracer())
        .with_filter(exported()?);
    let bridge = match telemetry.logger_provider() {
        Some(provider) => Some(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
                .with_filter(exported()?),
        ),
        None => None,
    };
    // Boxed rather than an `Option`: `Option<L>` does not pass `on_register_dispatch` on,
    // and the JSON layer needs it to find the span ids.
    let output: Box<dyn Layer<S> + Send + Sync> = match output {
        Some(make_writer) => output_layer(config.format, make_writer)
            .with_filter(parse_filter(&config.filter)?.and(filter_fn(not_per_export_error)))
            .boxed(),
        None => Identity::new().boxed(),
    };
    Ok(otel.and_then(bridge).and_then(output))
}

/// A subscriber: a registry with [`layer`], writing log lines in `config.format` to
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
    let layer = layer(telemetry, config, Some(BoxMakeWriter::new(make_writer)))?;
    Ok(tracing_subscriber::registry().with(layer))
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
            ConfigError::new("tracing", "global subscriber", "none set yet").with_source(e)
        })
}

fn output_layer<S>(format: LogFormat, make_writer: BoxMakeWriter) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
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
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::TelemetryConfig;

    /// Log output kept in memory; shared by the logging module's tests.
    #[derive(Clone, Default)]
    pub(super) struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        /// Every line written, parsed as JSON.
        pub(super) fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    fn json_lines(config: &LoggingConfig, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let buffer = Buffer::default();
        let config = config.clone().with_format(LogFormat::Json);
        let subscriber = subscriber(&telemetry, &config, buffer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, f);
        buffer.lines()
    }

    // The SDK's `otel_warn!`/`otel_debug!` expand to events like these.
    fn sdk_events() {
        tracing::debug!(target: "opentelemetry_sdk", name = "Sdk.Chatter", "chatter");
        tracing::info!(target: "opentelemetry", name = "Sdk.Lifecycle", "lifecycle");
        tracing::warn!(target: "opentelemetry_sdk", name = "Sdk.Warning", "warning");
        tracing::error!(target: "opentelemetry-http", name = "Sdk.Error", "error");
    }

    fn names(lines: &[serde_json::Value]) -> Vec<&str> {
        lines
            .iter()
            .map(|l| l["fields"]["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_default_filter_shows_sdk_warnings_but_not_its_chatter() {
        let lines = json_lines(&LoggingConfig::default(), sdk_events);
        assert_eq!(names(&lines), ["Sdk.Lifecycle", "Sdk.Warning", "Sdk.Error"]);
        assert_eq!(lines[2]["level"], "ERROR");
        assert_eq!(lines[2]["target"], "opentelemetry-http");
    }

    #[test]
    fn per_export_errors_stay_out_of_our_output() {
        let lines = json_lines(&LoggingConfig::default(), || {
            tracing::error!(name: "BatchSpanProcessor.ExportError", target: "opentelemetry_sdk", name = "BatchSpanProcessor.ExportError", "failed");
            tracing::error!(name: "PeriodicReader.ExportError", target: "opentelemetry_sdk", name = "PeriodicReader.ExportError", "failed");
            tracing::error!(name: "BatchSpanProcessor.Other", target: "opentelemetry_sdk", name = "BatchSpanProcessor.Other", "other");
        });
        assert_eq!(names(&lines), ["BatchSpanProcessor.Other"]);
    }

    #[test]
    fn rust_log_can_quiet_or_open_up_the_sdk() {
        let quiet = LoggingConfig::default().with_filter("info,opentelemetry_sdk=error");
        assert_eq!(
            names(&json_lines(&quiet, sdk_events)),
            ["Sdk.Lifecycle", "Sdk.Error"]
        );
        let chatty = LoggingConfig::default().with_filter("warn,opentelemetry_sdk=debug");
        assert_eq!(
            names(&json_lines(&chatty, sdk_events)),
            ["Sdk.Chatter", "Sdk.Warning", "Sdk.Error"]
        );
    }

    #[test]
    fn a_bad_filter_is_an_error_naming_rust_log() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let config = LoggingConfig::default().with_filter("info,=[");
        let err = subscriber(&telemetry, &config, std::io::sink)
            .err()
            .expect("refused");
        assert_eq!(err.variable, "RUST_LOG");
        let err = layer::<tracing_subscriber::Registry>(&telemetry, &config, None)
            .err()
            .expect("refused");
        assert_eq!(err.variable, "RUST_LOG");
    }
}
