//! Builds the periodic metric reader and the batch span and log processors from
//! [`OtlpConfig`].

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    Compression, ExporterBuildError, LogExporter, MetricExporter, SpanExporter, WithExportConfig,
    WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::logs::{BatchConfigBuilder as LogBatchConfigBuilder, BatchLogProcessor};
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};

use super::bounded::BoundedSpanProcessor;
use super::counted::{Counted, ExportFailures};
use super::runtime::ExportRuntime;
use super::{OtlpConfig, OtlpExporterConfig, OtlpProtocol, Signal};

/// What [`build_pipelines`] made: at most one reader and one processor, and the runtime the
/// gRPC exporters need (kept alive as long as they are).
#[derive(Default)]
pub(crate) struct Pipelines {
    pub(crate) metric_reader: Option<PeriodicReader<Counted<MetricExporter>>>,
    pub(crate) span_processor: Option<BoundedSpanProcessor>,
    pub(crate) log_processor: Option<BatchLogProcessor>,
    pub(crate) runtime: Option<ExportRuntime>,
}

/// Builds what `config` asks for. Errors are build errors of the exporters (the config
/// parser has already checked endpoints and headers); they never contain header values.
pub(crate) fn build_pipelines(
    config: &OtlpConfig,
    failures: &Arc<ExportFailures>,
) -> Result<Pipelines, String> {
    let mut pipelines = Pipelines::default();
    let uses_grpc = [&config.metrics, &config.traces, &config.logs]
        .into_iter()
        .flatten()
        .any(|e| e.protocol == OtlpProtocol::Grpc);
    if uses_grpc {
        let runtime = ExportRuntime::new().map_err(|e| format!("OTLP runtime: {e}"))?;
        pipelines.runtime = Some(runtime);
    }
    let handle = pipelines.runtime.as_ref().map(ExportRuntime::handle);
    // tonic spawns its connection worker on the current runtime while building.
    let _entered = handle.as_ref().map(|h| h.enter());

    if let Some(exporter) = &config.metrics {
        let inner = metric_exporter(exporter, config)
            .map_err(|e| format!("OTLP metric exporter for {}: {e}", exporter.endpoint))?;
        let counted = Counted {
            inner,
            signal: Signal::Metrics,
            failures: Arc::clone(failures),
            runtime: grpc_handle(exporter, &handle),
            span_queue: None,
        };
        pipelines.metric_reader = Some(
            PeriodicReader::builder(counted)
                .with_interval(config.metric_export_interval)
                .build(),
        );
    }
    if let Some(exporter) = &config.traces {
        let inner = span_exporter(exporter)
            .map_err(|e| format!("OTLP span exporter for {}: {e}", exporter.endpoint))?;
        let counted = Counted {
            inner,
            signal: Signal::Traces,
            failures: Arc::clone(failures),
            runtime: grpc_handle(exporter, &handle),
            span_queue: Some(Arc::clone(&failures.span_queue)),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.span_queue_size)
            .with_scheduled_delay(config.span_export_delay)
            .build();
        pipelines.span_processor = Some(BoundedSpanProcessor {
            inner: BatchSpanProcessor::builder(counted)
                .with_batch_config(batch)
                .build(),
            queue: Arc::clone(&failures.span_queue),
            limit: config.span_queue_size,
        });
    }
    if let Some(exporter) = &config.logs {
        let inner = log_exporter(exporter)
            .map_err(|e| format!("OTLP log exporter for {}: {e}", exporter.endpoint))?;
        let counted = Counted {
            inner,
            signal: Signal::Logs,
            failures: Arc::clone(failures),
            runtime: grpc_handle(exporter, &handle),
            span_queue: None,
        };
        // Same bound and pace as spans: logs are as bursty and as disposable.
        let batch = LogBatchConfigBuilder::default()
            .with_max_queue_size(config.span_queue_size)
            .with_scheduled_delay(config.span_export_delay)
            .build();
        pipelines.log_processor = Some(
            BatchLogProcessor::builder(counted)
                .with_batch_config(batch)
                .build(),
        );
    }
    Ok(pipelines)
}

fn grpc_handle(
    exporter: &OtlpExporterConfig,
    handle: &Option<tokio::runtime::Handle>,
) -> Option<tokio::runtime::Handle> {
    (exporter.protocol == OtlpProtocol::Grpc)
        .then(|| handle.clone())
        .flatten()
}

fn metric_exporter(
    exporter: &OtlpExporterConfig,
    config: &OtlpConfig,
) -> Result<MetricExporter, ExporterBuildError> {
    let builder = MetricExporter::builder().with_temporality(config.temporality);
    match exporter.protocol {
        OtlpProtocol::Grpc => grpc(builder.with_tonic(), exporter)?.build(),
        OtlpProtocol::HttpProtobuf => http_protobuf(builder.with_http(), exporter).build(),
    }
}

fn span_exporter(exporter: &OtlpExporterConfig) -> Result<SpanExporter, ExporterBuildError> {
    match exporter.protocol {
        OtlpProtocol::Grpc => grpc(SpanExporter::builder().with_tonic(), exporter)?.build(),
        OtlpProtocol::HttpProtobuf => {
            http_protobuf(SpanExporter::builder().with_http(), exporter).build()
        }
    }
}

fn log_exporter(exporter: &OtlpExporterConfig) -> Result<LogExporter, ExporterBuildError> {
    match exporter.protocol {
        OtlpProtocol::Grpc => grpc(LogExporter::builder().with_tonic(), exporter)?.build(),
        OtlpProtocol::HttpProtobuf => {
            http_protobuf(LogExporter::builder().with_http(), exporter).build()
        }
    }
}

/// Endpoint, timeout, metadata and compression of a gRPC exporter of any signal.
fn grpc<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    exporter: &OtlpExporterConfig,
) -> Result<B, ExporterBuildError> {
    let builder = builder
        .with_endpoint(&exporter.endpoint)
        .with_timeout(exporter.timeout)
        .with_metadata(metadata(exporter)?);
    Ok(match exporter.gzip {
        true => builder.with_compression(Compression::Gzip),
        false => builder,
    })
}

/// Endpoint, timeout, headers and compression of an HTTP/protobuf exporter of any signal.
fn http_protobuf<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    exporter: &OtlpExporterConfig,
) -> B {
    let builder = builder
        .with_endpoint(&exporter.endpoint)
        .with_timeout(exporter.timeout)
        .with_headers(headers(exporter));
    match exporter.gzip {
        true => builder.with_compression(Compression::Gzip),
        false => builder,
    }
}

fn headers(exporter: &OtlpExporterConfig) -> HashMap<String, String> {
    exporter.headers.iter().cloned().collect()
}

fn metadata(exporter: &OtlpExporterConfig) -> Result<MetadataMap, ExporterBuildError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in &exporter.headers {
        // The config parser already checked both; the message names the header, not its value.
        let invalid = || {
            ExporterBuildError::InternalFailure(format!("header {name} is not valid gRPC metadata"))
        };
        let key = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = http::HeaderValue::from_str(value).map_err(|_| invalid())?;
        map.insert(key, value);
    }
    Ok(MetadataMap::from_headers(map))
}
