//! Builds the periodic metric readers and the span and log processors from [`OtlpConfig`]:
//! OTLP ones on our own transports (see [`transport`](super::transport)), console ones on
//! `opentelemetry-stdout`.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
use opentelemetry_sdk::logs::{BatchConfigBuilder as LogBatchConfigBuilder, BatchLogProcessor};
use opentelemetry_sdk::logs::{LoggerProviderBuilder, SdkLoggerProvider, SimpleLogProcessor};
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader};
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};
use opentelemetry_sdk::trace::{SimpleSpanProcessor, TracerProviderBuilder};

use super::bounded::{BoundedLogProcessor, BoundedSpanProcessor};
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
use super::counted::Counted;
use super::counted::ExportFailures;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
use super::push::StorePush;
use super::runtime::ExportRuntime;
use super::{OtlpConfig, Signal};
use crate::TelemetryError;
use crate::series::collector::Collector;

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
type Exporter = Counted<super::transport::OtlpExporter>;

/// What [`build_pipelines`] made, and the runtime our transports run on (kept alive as long
/// as they are).
#[derive(Default)]
pub(crate) struct Pipelines {
    console_metrics: Option<PeriodicReader<opentelemetry_stdout::MetricExporter>>,
    span_processor: Option<BoundedSpanProcessor>,
    console_spans: bool,
    log_processor: Option<BoundedLogProcessor>,
    console_logs: bool,
    /// The runtime of our transports; `None` when nothing is pushed over OTLP.
    pub(crate) runtime: Option<ExportRuntime>,
}

impl Pipelines {
    /// Adds the metric readers to `meters`.
    pub(crate) fn add_readers(&mut self, mut meters: MeterProviderBuilder) -> MeterProviderBuilder {
        if let Some(reader) = self.console_metrics.take() {
            meters = meters.with_reader(reader);
        }
        meters
    }

    /// Adds the span processors to `tracers`.
    pub(crate) fn add_span_processors(
        &mut self,
        mut tracers: TracerProviderBuilder,
    ) -> TracerProviderBuilder {
        if let Some(processor) = self.span_processor.take() {
            tracers = tracers.with_span_processor(processor);
        }
        if std::mem::take(&mut self.console_spans) {
            tracers = tracers.with_span_processor(SimpleSpanProcessor::new(
                opentelemetry_stdout::SpanExporter::default(),
            ));
        }
        tracers
    }

    /// The logger provider, when logs are pushed or written to the console.
    pub(crate) fn logger_provider(&mut self, resource: &Resource) -> Option<SdkLoggerProvider> {
        let otlp = self.log_processor.take();
        let console = std::mem::take(&mut self.console_logs);
        if otlp.is_none() && !console {
            return None;
        }
        let mut builder: LoggerProviderBuilder =
            SdkLoggerProvider::builder().with_resource(resource.clone());
        if let Some(processor) = otlp {
            builder = builder.with_log_processor(processor);
        }
        if console {
            builder = builder.with_log_processor(SimpleLogProcessor::new(
                opentelemetry_stdout::LogExporter::default(),
            ));
        }
        Some(builder.build())
    }
}

/// Builds what `config` asks for.
///
/// # Errors
/// [`TelemetryError::Config`] naming the setting when an exporter's settings cannot be used
/// (a protocol or TLS whose feature is off, an unreadable certificate, ...);
/// [`TelemetryError::Runtime`] when the export runtime cannot start. Messages never
/// contain header values.
pub(crate) fn build_pipelines(
    config: &OtlpConfig,
    failures: &Arc<ExportFailures>,
    collector: &Arc<Collector>,
) -> Result<Pipelines, TelemetryError> {
    let mut pipelines = Pipelines::default();
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    otlp_pipelines(config, failures, collector, &mut pipelines)?;
    #[cfg(not(any(feature = "otlp-grpc", feature = "otlp-http")))]
    {
        let _ = (failures, collector);
        for signal in Signal::ALL {
            if let Some(exporter) = config.exporter(signal) {
                // Names the protocol's missing feature (or a bad endpoint) first.
                super::transport::Settings::resolve(exporter)?;
            }
        }
    }
    if config.console.contains(&Signal::Metrics) {
        let exporter = opentelemetry_stdout::MetricExporter::builder()
            .with_temporality(config.temporality)
            .build();
        pipelines.console_metrics = Some(
            PeriodicReader::builder(exporter)
                .with_interval(config.metric_export_interval)
                .build(),
        );
    }
    pipelines.console_spans = config.console.contains(&Signal::Traces);
    pipelines.console_logs = config.console.contains(&Signal::Logs);
    Ok(pipelines)
}

/// The OTLP reader and processors, on the runtime they share.
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
fn otlp_pipelines(
    config: &OtlpConfig,
    failures: &Arc<ExportFailures>,
    collector: &Arc<Collector>,
    pipelines: &mut Pipelines,
) -> Result<(), TelemetryError> {
    if !Signal::ALL.iter().any(|s| config.exporter(*s).is_some()) {
        return Ok(());
    }
    let runtime = ExportRuntime::new().map_err(TelemetryError::Runtime)?;
    let handle = runtime.handle();
    pipelines.runtime = Some(runtime);
    if let Some(exporter) = exporter(config, Signal::Metrics, failures, &handle)? {
        // Both temporalities read the series store: removal and idle expiry reach the push,
        // and its requests carry exemplars.
        let push = StorePush::start(
            Arc::downgrade(collector),
            exporter,
            config.metric_export_interval,
            handle.clone(),
            config.temporality,
        )
        .map_err(TelemetryError::Runtime)?;
        collector.set_push(Box::new(push));
    }
    if let Some(exporter) = exporter(config, Signal::Traces, failures, &handle)? {
        let batch = config.span_batch();
        let settings = BatchConfigBuilder::default()
            .with_max_queue_size(batch.queue_size)
            .with_scheduled_delay(batch.schedule_delay)
            .with_max_export_batch_size(batch.max_export_batch_size)
            .build();
        pipelines.span_processor = Some(BoundedSpanProcessor {
            inner: BatchSpanProcessor::builder(exporter)
                .with_batch_config(settings)
                .build(),
            queue: Arc::clone(&failures.span_queue),
            limit: batch.queue_size,
        });
    }
    if let Some(exporter) = exporter(config, Signal::Logs, failures, &handle)? {
        let batch = config.log_batch;
        let settings = LogBatchConfigBuilder::default()
            .with_max_queue_size(batch.queue_size)
            .with_scheduled_delay(batch.schedule_delay)
            .with_max_export_batch_size(batch.max_export_batch_size)
            .build();
        pipelines.log_processor = Some(BoundedLogProcessor {
            inner: BatchLogProcessor::builder(exporter)
                .with_batch_config(settings)
                .build(),
            queue: Arc::clone(&failures.log_queue),
            limit: batch.queue_size,
        });
    }
    Ok(())
}

/// The counted OTLP exporter of `signal`, if configured.
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
fn exporter(
    config: &OtlpConfig,
    signal: Signal,
    failures: &Arc<ExportFailures>,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<Exporter>, TelemetryError> {
    use super::transport::{OtlpExporter, Settings};
    let Some(exporter) = config.exporter(signal) else {
        return Ok(None);
    };
    let settings = Settings::resolve(exporter)?;
    let inner = OtlpExporter::new(&settings, exporter.protocol, runtime.clone())?;
    let (deadline, queue) = match signal {
        Signal::Metrics => (config.metric_export_timeout, None),
        Signal::Traces => (
            config.span_export_timeout,
            Some(Arc::clone(&failures.span_queue)),
        ),
        Signal::Logs => (
            config.log_batch.export_timeout,
            Some(Arc::clone(&failures.log_queue)),
        ),
    };
    Ok(Some(Counted {
        inner,
        signal,
        failures: Arc::clone(failures),
        runtime: runtime.clone(),
        deadline,
        queue,
    }))
}

#[cfg(all(test, feature = "otlp-http"))]
mod tests {
    use std::time::Duration;

    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};

    use crate::otlp::{BatchConfig, OtlpConfig, OtlpProtocol, Signal};
    use crate::{Telemetry, TelemetryConfig};

    #[test]
    fn log_records_past_the_queue_bound_are_dropped_and_counted() {
        let mut batch = BatchConfig::new(Duration::from_secs(3600));
        batch.queue_size = 2;
        // A collector that takes the connection and never answers: admitted records stay in
        // flight (queued, or in an export that hangs), so exactly the bound is admitted. A
        // refused connection would fail fast and free the queue while the test emits.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let otlp = OtlpConfig::default()
            .with_endpoint(
                &format!("http://{}", silent.local_addr().unwrap()),
                OtlpProtocol::HttpProtobuf,
            )
            .map_exporters(|e| e.with_timeout(Duration::from_secs(60)))
            .with_log_batch(batch);
        let telemetry = Telemetry::new(
            TelemetryConfig::default()
                .with_otlp(otlp)
                .with_shutdown_timeout(Duration::from_secs(2)),
        )
        .unwrap();
        let logger = telemetry.logger_provider().unwrap().logger("test");
        for i in 0..10 {
            let mut record = logger.create_log_record();
            record.set_body(format!("record {i}").into());
            logger.emit(record);
        }
        assert_eq!(telemetry.dropped_log_records(), 8);
        assert_eq!(telemetry.dropped_spans(), 0);
        let text = telemetry.render_prometheus();
        assert!(
            text.lines().any(
                |l| l.starts_with("streamhouse_telemetry_log_records_dropped_total")
                    && l.ends_with(" 8")
            ),
            "{text}"
        );
        let _ = telemetry.shutdown();
    }

    #[test]
    fn console_exporters_need_no_collector() {
        let otlp = OtlpConfig::default()
            .with_console(Signal::Metrics)
            .with_console(Signal::Traces)
            .with_console(Signal::Logs);
        let telemetry = Telemetry::new(TelemetryConfig::default().with_otlp(otlp)).unwrap();
        // Logs go to the console without an OTLP log exporter.
        assert!(telemetry.logger_provider().is_some());
        telemetry.shutdown().unwrap();
    }

    #[test]
    fn an_invalid_ca_file_fails_telemetry_new_naming_the_setting() {
        let otlp = OtlpConfig::default()
            .with_endpoint("https://127.0.0.1:9", OtlpProtocol::HttpProtobuf)
            .map_exporters(|e| e.with_ca_certificate("/nonexistent/ca.pem"));
        let err = Telemetry::new(TelemetryConfig::default().with_otlp(otlp)).unwrap_err();
        #[cfg(feature = "tls")]
        assert!(
            err.to_string()
                .contains("OtlpExporterConfig::ca_certificate"),
            "{err}"
        );
        #[cfg(not(feature = "tls"))]
        assert!(err.to_string().contains("`tls` feature"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
