//! The handle that owns the providers, the resource and the recorders.

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, MeterProvider as _, ObservableCounter};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::catalog::{self, label};
use crate::config::{ConfigError, MAX_LABEL_VALUE_BYTES, MIN_LABEL_VALUE_BYTES, TelemetryConfig};
use crate::exemplars::ExemplarStore;
use crate::metrics::value_bound::truncate_label_value;
use crate::metrics::{
    ConsumerMetrics, HttpServerMetrics, Instruments, ProcessMetrics, ProducerMetrics, Recorders,
    ScrapeMetrics, StorageMetrics, SystemMetrics,
};
use crate::otlp::{ExportFailures, Signal, build_pipelines};
use crate::prometheus::{Format, PrometheusReader};
use crate::series::Caches;
use crate::series::collector::Lifecycle;
use crate::views::catalog_view;

/// The instrumentation scope of every StreamHouse instrument.
pub const SCOPE_NAME: &str = "streamhouse";

/// Why telemetry could not start or stop.
#[derive(Debug)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A configuration value could not be used.
    Config(ConfigError),
    /// Providers reported errors while shutting down (one per failing provider, metrics,
    /// traces, logs in that order; the first is the [`source`](std::error::Error::source)).
    Shutdown(Vec<OTelSdkError>),
    /// Shutdown did not finish within the configured timeout; it goes on in the background.
    ShutdownTimeout(Duration),
    /// A thread or runtime telemetry needs (OTLP export, shutdown) could not be started.
    Runtime(std::io::Error),
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelemetryError::Config(err) => err.fmt(f),
            TelemetryError::Shutdown(errors) => {
                f.write_str("telemetry shutdown failed")?;
                for (i, error) in errors.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{error}")?;
                }
                Ok(())
            }
            TelemetryError::ShutdownTimeout(t) => {
                write!(f, "telemetry shutdown did not finish within {t:?}")
            }
            TelemetryError::Runtime(err) => write!(f, "telemetry could not start a thread: {err}"),
        }
    }
}

impl std::error::Error for TelemetryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TelemetryError::Config(err) => Some(err),
            TelemetryError::Runtime(err) => Some(err),
            TelemetryError::Shutdown(errors) => errors
                .first()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

impl From<ConfigError> for TelemetryError {
    fn from(err: ConfigError) -> Self {
        TelemetryError::Config(err)
    }
}

/// Owns the meter and tracer providers, the resource and the typed recorders.
///
/// Cheap to clone (all clones share one set of providers). Build independent instances with
/// [`Telemetry::new`]; install one process-wide with [`Telemetry::init_global`]. Providers
/// are shut down by [`Telemetry::shutdown`], or when the last clone is dropped.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default().with_service_name("docs")).unwrap();
/// telemetry.producer().record_batch("orders", 10, 1_000, Duration::from_millis(2));
/// let text = telemetry.render_prometheus();
/// assert!(text.contains(r#"service_name="docs""#));
/// assert!(text.contains(r#"streamhouse_producer_bytes_total{topic="orders"} 1000"#));
/// telemetry.shutdown().unwrap();
/// ```
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    config: TelemetryConfig,
    resource: Resource,
    meter_provider: SdkMeterProvider,
    tracer_provider: SdkTracerProvider,
    logger_provider: Option<SdkLoggerProvider>,
    prometheus: Option<PrometheusReader>,
    recorders: Recorders,
    scrapes: ScrapeMetrics,
    export_failures: Arc<ExportFailures>,
    _self_metrics: Vec<ObservableCounter<u64>>,
    // Last: the gRPC exporters run on it until the providers above are dropped.
    _otlp_runtime: Option<crate::otlp::ExportRuntime>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.inner.config.service_name)
            .field("disabled", &self.inner.config.disabled)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Telemetry> = OnceLock::new();
static GLOBAL_INIT: Mutex<()> = Mutex::new(());

impl Telemetry {
    /// Builds an independent instance: its own providers, recorders and `/metrics` state.
    ///
    /// # Errors
    /// [`TelemetryError::Config`] when a value set in code is out of range (see
    /// [`PrometheusConfig::validate`](crate::config::PrometheusConfig::validate));
    /// [`TelemetryError::Config`] naming the setting when an OTLP exporter's settings cannot
    /// be used (a protocol or `https://` whose feature is off, an unreadable or invalid
    /// certificate file); [`TelemetryError::Runtime`] when its runtime cannot start.
    pub fn new(config: TelemetryConfig) -> Result<Self, TelemetryError> {
        config.prometheus.validate()?;
        let resource = build_resource(&config);
        let export_failures = Arc::new(ExportFailures::default());
        let mut meters = SdkMeterProvider::builder().with_resource(resource.clone());
        let mut tracers = SdkTracerProvider::builder().with_resource(resource.clone());
        let exemplars = match config.disabled {
            false => ExemplarStore::new(config.cardinality_limit, config.exemplar_filter),
            true => ExemplarStore::default(),
        };
        let caches = Arc::new(Caches::default());
        let mut otlp_runtime = None;
        let mut logger_provider = None;
        let prometheus = if config.disabled {
            tracers = tracers.with_sampler(Sampler::AlwaysOff);
            None
        } else {
            let lifecycle = Lifecycle {
                caches: Arc::clone(&caches),
                exemplars: exemplars.clone(),
                clock: Arc::clone(&config.clock.0),
                idle_timeout: config.metric_idle_timeout,
            };
            let reader = PrometheusReader::with_lifecycle(config.prometheus.clone(), lifecycle);
            // One view for every reader: push carries the same names and buckets as /metrics.
            meters = meters
                .with_reader(reader.clone())
                .with_view(catalog_view(&config.catalog, config.cardinality_limit));
            let mut pipelines =
                build_pipelines(&config.otlp, &export_failures, reader.collector())?;
            meters = pipelines.add_readers(meters);
            tracers = pipelines.add_span_processors(tracers);
            logger_provider = pipelines.logger_provider(&resource);
            tracers = tracers.with_sampler(config.sampler.to_sdk());
            otlp_runtime = pipelines.runtime.take();
            Some(reader)
        };
        let meter_provider = meters.build();
        let meter = meter_provider.meter_with_scope(scope());
        let instruments = Instruments {
            meter: &meter,
            exemplars: &exemplars,
            cardinality_limit: config.cardinality_limit,
            max_label_value_bytes: config
                .max_label_value_bytes
                .clamp(MIN_LABEL_VALUE_BYTES, MAX_LABEL_VALUE_BYTES),
            caches: &caches,
        };
        let recorders = Recorders::new(&instruments, Instant::now(), &config.http_server);
        let scrapes = ScrapeMetrics::new(&instruments);
        let self_metrics = match &prometheus {
            None => Vec::new(),
            Some(reader) => register_self_metrics(&meter, &export_failures, reader),
        };
        Ok(Telemetry {
            inner: Arc::new(Inner {
                config,
                resource,
                meter_provider,
                tracer_provider: tracers.build(),
                logger_provider,
                prometheus,
                recorders,
                scrapes,
                export_failures,
                _self_metrics: self_metrics,
                _otlp_runtime: otlp_runtime,
            }),
        })
    }

    /// Builds an instance from the environment (see [`crate::config`]).
    ///
    /// # Errors
    /// [`TelemetryError::Config`] naming the variable whose value cannot be used.
    pub fn from_env() -> Result<Self, TelemetryError> {
        Self::new(TelemetryConfig::from_env()?)
    }

    /// Builds the process-wide instance once and installs its providers (and the HTTP
    /// propagators of [`TelemetryConfig::propagators`], `OTEL_PROPAGATORS`) as the
    /// `opentelemetry::global` ones, and its label value length as the
    /// bound on topic and group values in [`propagation`](crate::propagation)'s messaging
    /// spans. Later calls return the same handle and ignore `config`.
    ///
    /// # Errors
    /// As [`Telemetry::new`]; a failed first call leaves nothing installed.
    pub fn init_global(config: TelemetryConfig) -> Result<Self, TelemetryError> {
        let _guard = GLOBAL_INIT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = GLOBAL.get() {
            return Ok(existing.clone());
        }
        let telemetry = Telemetry::new(config)?;
        crate::metrics::set_span_value_bytes(telemetry.inner.config.max_label_value_bytes);
        opentelemetry::global::set_meter_provider(telemetry.inner.meter_provider.clone());
        opentelemetry::global::set_tracer_provider(telemetry.inner.tracer_provider.clone());
        // Libraries that propagate through the global API then speak what OTEL_PROPAGATORS
        // names, as our HTTP layer does.
        opentelemetry::global::set_text_map_propagator(telemetry.inner.config.propagators.clone());
        Ok(GLOBAL.get_or_init(|| telemetry).clone())
    }

    /// The process-wide instance, if [`Telemetry::init_global`] has run.
    pub fn global() -> Option<Self> {
        GLOBAL.get().cloned()
    }

    /// Producer metrics.
    pub fn producer(&self) -> &ProducerMetrics {
        &self.inner.recorders.producer
    }

    /// Consumer metrics.
    pub fn consumer(&self) -> &ConsumerMetrics {
        &self.inner.recorders.consumer
    }

    /// Storage metrics: segments, object store, cache.
    pub fn storage(&self) -> &StorageMetrics {
        &self.inner.recorders.storage
    }

    /// System gauges.
    pub fn system(&self) -> &SystemMetrics {
        &self.inner.recorders.system
    }

    /// HTTP server metrics.
    pub fn http_server(&self) -> &HttpServerMetrics {
        &self.inner.recorders.http_server
    }

    /// Process and tokio runtime metrics.
    pub fn process(&self) -> &ProcessMetrics {
        &self.inner.recorders.process
    }

    /// `/metrics` scrape metrics: duration, body size, refusals, renders stopped early.
    pub fn scrapes(&self) -> &ScrapeMetrics {
        &self.inner.scrapes
    }

    /// A tracer of this instance's provider, for the `tracing-opentelemetry` layer and for
    /// spans started by hand.
    pub fn tracer(&self) -> SdkTracer {
        self.inner.tracer_provider.tracer_with_scope(scope())
    }

    /// Spans dropped so far because the OTLP export queue was full (also exposed as
    /// [`TELEMETRY_SPANS_DROPPED`](catalog::TELEMETRY_SPANS_DROPPED)).
    pub fn dropped_spans(&self) -> u64 {
        self.inner.export_failures.span_queue.dropped()
    }

    /// Log records dropped so far because the OTLP log export queue was full (also exposed
    /// as [`TELEMETRY_LOG_RECORDS_DROPPED`](catalog::TELEMETRY_LOG_RECORDS_DROPPED)).
    pub fn dropped_log_records(&self) -> u64 {
        self.inner.export_failures.log_queue.dropped()
    }

    /// Failed OTLP exports of `signal` so far (also exposed as
    /// [`TELEMETRY_EXPORT_FAILURES`](catalog::TELEMETRY_EXPORT_FAILURES)).
    pub fn export_failures(&self, signal: Signal) -> u64 {
        self.inner.export_failures.count(signal)
    }

    /// The meter provider, for instruments outside the catalog. They are exposed on
    /// `/metrics` too, named by the OTel-to-Prometheus translation.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.inner.meter_provider
    }

    /// The tracer provider.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.inner.tracer_provider
    }

    /// The logger provider pushing `tracing` events over OTLP; `None` unless a logs endpoint
    /// is configured. [`logging::subscriber`](crate::logging::subscriber) bridges to it.
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.inner.logger_provider.as_ref()
    }

    /// The resource shared by every signal.
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }

    /// The configuration this instance was built with.
    pub fn config(&self) -> &TelemetryConfig {
        &self.inner.config
    }

    /// The Prometheus reader; `None` when telemetry is disabled.
    pub fn prometheus(&self) -> Option<&PrometheusReader> {
        self.inner.prometheus.as_ref()
    }

    /// The current state in the Prometheus text format 0.0.4. Empty when telemetry is
    /// disabled or shut down.
    pub fn render_prometheus(&self) -> String {
        self.render(Format::Text)
    }

    /// The current state in `format`. When telemetry is disabled or shut down there is
    /// nothing to render: the text format is then empty, and OpenMetrics is `# EOF\n` alone
    /// (an OpenMetrics body must end with it).
    ///
    /// ```
    /// use streamhouse_observability::prometheus::Format;
    /// use streamhouse_observability::{Telemetry, TelemetryConfig};
    ///
    /// let telemetry = Telemetry::new(TelemetryConfig::default().with_disabled(true)).unwrap();
    /// assert_eq!(telemetry.render(Format::OpenMetrics), "# EOF\n");
    /// assert_eq!(telemetry.render(Format::Text), "");
    /// ```
    pub fn render(&self, format: Format) -> String {
        self.prometheus()
            .and_then(|reader| reader.render(format).ok())
            .unwrap_or_else(|| format.empty_body().to_owned())
    }

    /// Removes every series of StreamHouse's own instruments that carries the label `key`
    /// (a catalog label key such as [`catalog::label::TOPIC`](crate::catalog::label::TOPIC))
    /// with `value`, from `/metrics` and the OTLP push alike, from the next collection on;
    /// returns how many series left. Their exemplars and cached handles go, and their places
    /// under the cardinality limit are free again. A series recorded again afterwards starts
    /// from zero; a record racing with the removal may be dropped with it. Instruments of
    /// other scopes are left alone (idle expiry covers them). See [`series`](crate::series).
    ///
    /// ```
    /// use streamhouse_observability::{Telemetry, TelemetryConfig, catalog::label};
    ///
    /// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    /// telemetry.consumer().record_records("orders", "billing", 5);
    /// assert!(telemetry.render_prometheus().contains(r#"consumer_group="billing""#));
    /// assert_eq!(telemetry.remove_series(label::CONSUMER_GROUP, "billing"), 1);
    /// assert!(!telemetry.render_prometheus().contains(r#"consumer_group="billing""#));
    /// ```
    pub fn remove_series(&self, key: &str, value: &str) -> usize {
        let Some(reader) = self.prometheus() else {
            return 0;
        };
        let max = self
            .inner
            .config
            .max_label_value_bytes
            .clamp(MIN_LABEL_VALUE_BYTES, MAX_LABEL_VALUE_BYTES);
        let value = truncate_label_value(value, max);
        reader.collector().remove(SCOPE_NAME, key, value)
    }

    /// Flushes and shuts down the meter, tracer and logger providers in parallel, each
    /// bounded by the configured `shutdown_timeout`, and waits at most that long: a metrics
    /// collector that hangs does not keep spans and logs from their final flush. Calling it
    /// again is harmless. It blocks; from async code use [`Telemetry::shutdown_async`].
    ///
    /// # Errors
    /// [`TelemetryError::ShutdownTimeout`] when a provider did not finish in time (the log
    /// names it), [`TelemetryError::Shutdown`] when one reported a failure.
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        let timeout = self.inner.config.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        let meters = self.inner.meter_provider.clone();
        let tracers = self.inner.tracer_provider.clone();
        let loggers = self.inner.logger_provider.clone();
        let providers: [(Signal, ProviderShutdown); 3] = [
            (
                Signal::Metrics,
                Box::new(move || meters.shutdown_with_timeout(timeout)),
            ),
            (
                Signal::Traces,
                Box::new(move || tracers.shutdown_with_timeout(timeout)),
            ),
            (
                Signal::Logs,
                Box::new(move || loggers.map_or(Ok(()), |l| l.shutdown_with_timeout(timeout))),
            ),
        ];
        let (done, finished) = mpsc::channel();
        for (signal, shutdown) in providers {
            let done = done.clone();
            // A thread each, so an exporter stuck past its timeout holds neither the caller
            // nor the other signals.
            std::thread::Builder::new()
                .name(format!("telemetry-shutdown-{}", signal.as_str()))
                .spawn(move || {
                    let _ = done.send((signal, shutdown()));
                })
                .map_err(TelemetryError::Runtime)?;
        }
        drop(done);
        let mut pending: Vec<Signal> = Signal::ALL.to_vec();
        let mut errors = Vec::new();
        while !pending.is_empty() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Ok((signal, result)) = finished.recv_timeout(wait) else {
                let signals: Vec<&str> = pending.iter().map(|s| s.as_str()).collect();
                tracing::warn!(?signals, ?timeout, "telemetry shutdown timed out");
                return Err(TelemetryError::ShutdownTimeout(timeout));
            };
            pending.retain(|s| *s != signal);
            match result {
                // Shutting down twice is not a failure.
                Ok(()) | Err(OTelSdkError::AlreadyShutdown) => {}
                Err(error) => errors.push(error),
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(TelemetryError::Shutdown(errors)),
        }
    }

    /// [`Telemetry::shutdown`] for async code: the wait runs on tokio's blocking pool, so
    /// no runtime worker is held while exporters flush.
    ///
    /// # Errors
    /// As [`Telemetry::shutdown`]; [`TelemetryError::Runtime`] when the blocking task could
    /// not run.
    ///
    /// ```
    /// # async fn run() -> Result<(), streamhouse_observability::TelemetryError> {
    /// let telemetry = streamhouse_observability::Telemetry::from_env()?;
    /// telemetry.shutdown_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_async(&self) -> Result<(), TelemetryError> {
        let telemetry = self.clone();
        tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .map_err(|e| TelemetryError::Runtime(std::io::Error::other(e)))?
    }
}

/// One provider's shutdown, run on a thread of its own.
type ProviderShutdown = Box<dyn FnOnce() -> Result<(), OTelSdkError> + Send>;

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Exposes export failures, dropped spans and log records, and series left out of
/// `/metrics`; every series always, zero when nothing failed, so dashboards and alerts need
/// not special-case a missing series.
fn register_self_metrics(
    meter: &Meter,
    failures: &Arc<ExportFailures>,
    reader: &PrometheusReader,
) -> Vec<ObservableCounter<u64>> {
    let def = &catalog::TELEMETRY_EXPORT_FAILURES;
    let counts = Arc::clone(failures);
    let export_failures = meter
        .u64_observable_counter(def.otel_name)
        .with_unit(def.unit)
        .with_description(def.description)
        .with_callback(move |observer| {
            for signal in Signal::ALL {
                observer.observe(
                    counts.count(signal),
                    &[KeyValue::new(label::SIGNAL, signal.as_str())],
                );
            }
        })
        .build();
    let def = &catalog::TELEMETRY_SPANS_DROPPED;
    let queue = Arc::clone(&failures.span_queue);
    let spans_dropped = meter
        .u64_observable_counter(def.otel_name)
        .with_unit(def.unit)
        .with_description(def.description)
        .with_callback(move |observer| observer.observe(queue.dropped(), &[]))
        .build();
    let def = &catalog::TELEMETRY_LOG_RECORDS_DROPPED;
    let queue = Arc::clone(&failures.log_queue);
    let log_records_dropped = meter
        .u64_observable_counter(def.otel_name)
        .with_unit(def.unit)
        .with_description(def.description)
        .with_callback(move |observer| observer.observe(queue.dropped(), &[]))
        .build();
    let def = &catalog::TELEMETRY_EXPOSITION_DROPPED;
    let dropped = reader.dropped_series();
    let exposition_dropped = meter
        .u64_observable_counter(def.otel_name)
        .with_unit(def.unit)
        .with_description(def.description)
        .with_callback(move |observer| {
            dropped.for_each(|reason, count| {
                observer.observe(count, &[KeyValue::new(label::REASON, reason)]);
            })
        })
        .build();
    vec![
        export_failures,
        spans_dropped,
        log_records_dropped,
        exposition_dropped,
    ]
}

fn build_resource(config: &TelemetryConfig) -> Resource {
    let instance_id = config
        .service_instance_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attributes([
            KeyValue::new("service.name", config.service_name.clone()),
            KeyValue::new("service.version", config.service_version.clone()),
            KeyValue::new("service.instance.id", instance_id),
        ])
        .build()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn shutdown_errors_are_listed_and_the_first_is_the_source() {
        let err = TelemetryError::Shutdown(vec![
            OTelSdkError::InternalFailure("metrics export failed".into()),
            OTelSdkError::Timeout(Duration::from_secs(1)),
        ]);
        let text = err.to_string();
        assert!(text.starts_with("telemetry shutdown failed: "), "{text}");
        assert!(text.contains("metrics export failed; "), "{text}");
        let source = err.source().expect("a source").to_string();
        assert!(source.contains("metrics export failed"), "{source}");
    }

    #[test]
    fn a_runtime_error_keeps_its_io_error() {
        let err = TelemetryError::Runtime(std::io::Error::other("no threads left"));
        assert_eq!(err.source().unwrap().to_string(), "no threads left");
    }
}
