//! [`OtlpExporter`]: the SDK's span, metric and log exporter traits over our transports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Handle;

use super::Settings;
use crate::config::ConfigError;
use crate::otlp::{OtlpProtocol, Signal};

/// One encoded export request.
pub(super) enum Request {
    Metrics(ExportMetricsServiceRequest),
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Request {
    pub(super) fn signal(&self) -> Signal {
        match self {
            Request::Metrics(_) => Signal::Metrics,
            Request::Traces(_) => Signal::Traces,
            Request::Logs(_) => Signal::Logs,
        }
    }
}

/// What a collector's OTLP partial success said it refused of an accepted export: data
/// points, spans or log records, and why. Zero and empty when it took everything.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Rejected {
    pub(super) items: i64,
    pub(super) message: String,
}

impl Rejected {
    /// From a response's `partial_success` fields.
    pub(super) fn new(items: i64, message: &str) -> Self {
        Rejected {
            items,
            // A collector picks the text: bounded like every value from outside.
            message: message.chars().take(256).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.items == 0 && self.message.is_empty()
    }
}

/// An OTLP export response of any signal: what its partial success refused. One place for
/// both transports.
pub(super) trait ExportResponse: prost::Message + Default {
    fn rejected(&self) -> Rejected;
}

impl ExportResponse for ExportMetricsServiceResponse {
    fn rejected(&self) -> Rejected {
        let partial = self.partial_success.as_ref();
        partial.map_or_else(Rejected::default, |p| {
            Rejected::new(p.rejected_data_points, &p.error_message)
        })
    }
}

impl ExportResponse for ExportTraceServiceResponse {
    fn rejected(&self) -> Rejected {
        let partial = self.partial_success.as_ref();
        partial.map_or_else(Rejected::default, |p| {
            Rejected::new(p.rejected_spans, &p.error_message)
        })
    }
}

impl ExportResponse for ExportLogsServiceResponse {
    fn rejected(&self) -> Rejected {
        let partial = self.partial_success.as_ref();
        partial.map_or_else(Rejected::default, |p| {
            Rejected::new(p.rejected_log_records, &p.error_message)
        })
    }
}

// One per exporter; its size does not matter, and boxing would cost a pointer chase.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Client {
    #[cfg(feature = "otlp-grpc")]
    Grpc(super::grpc::GrpcClient),
    #[cfg(feature = "otlp-http")]
    Http(super::http::HttpClient),
}

/// Exports one signal over gRPC or HTTP/protobuf. Requests run on the telemetry handle's
/// runtime (the SDK calls exporters from its own threads), each bounded by the timeout.
pub(crate) struct OtlpExporter {
    client: Client,
    runtime: Handle,
    timeout: Duration,
    resource: ResourceAttributesWithSchema,
    shut_down: AtomicBool,
    /// Whether the last export came back with a partial success: logged when that changes,
    /// not for every batch.
    rejecting: AtomicBool,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter").finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// An exporter with `settings` over `protocol`; its connections live on `runtime`.
    pub(crate) fn new(
        settings: &Settings,
        protocol: OtlpProtocol,
        runtime: Handle,
    ) -> Result<Self, ConfigError> {
        let client = match protocol {
            #[cfg(feature = "otlp-grpc")]
            OtlpProtocol::Grpc => Client::Grpc(super::grpc::GrpcClient::new(settings, &runtime)),
            #[cfg(feature = "otlp-http")]
            OtlpProtocol::HttpProtobuf => Client::Http(super::http::HttpClient::new(settings)),
            // Settings::resolve has already refused protocols that are not compiled in.
            #[allow(unreachable_patterns)]
            _ => {
                return Err(ConfigError::new(
                    "OtlpExporterConfig::protocol",
                    protocol.as_str(),
                    "a protocol compiled in",
                ));
            }
        };
        Ok(OtlpExporter {
            client,
            runtime,
            timeout: settings.timeout,
            resource: ResourceAttributesWithSchema::default(),
            shut_down: AtomicBool::new(false),
            rejecting: AtomicBool::new(false),
        })
    }

    async fn send(&self, request: Request) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let client = self.client.clone();
        let timeout = self.timeout;
        let signal = request.signal();
        // Spawned, so the request's I/O and timers run on the runtime that drives them
        // whatever thread or executor the SDK polls this future on.
        let task = self.runtime.spawn(async move {
            let send = async {
                match client {
                    #[cfg(feature = "otlp-grpc")]
                    Client::Grpc(grpc) => grpc.send(request).await,
                    #[cfg(feature = "otlp-http")]
                    Client::Http(http) => http.send(request).await,
                }
            };
            match tokio::time::timeout(timeout, send).await {
                Ok(result) => result.map_err(OTelSdkError::InternalFailure),
                Err(_) => Err(OTelSdkError::Timeout(timeout)),
            }
        });
        match task.await {
            Ok(Ok(rejected)) => {
                self.note(signal, &rejected);
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(join) => Err(OTelSdkError::InternalFailure(format!(
                "export task failed: {join}"
            ))),
        }
    }

    /// Logs a collector's partial success when it starts and when it stops. The export
    /// itself succeeded: the rest of the batch was taken, and resending would not help.
    fn note(&self, signal: Signal, rejected: &Rejected) {
        let rejecting = !rejected.is_empty();
        if self.rejecting.swap(rejecting, Ordering::Relaxed) == rejecting {
            return;
        }
        match rejecting {
            true => tracing::warn!(
                signal = signal.as_str(),
                rejected = rejected.items,
                reason = %rejected.message,
                "the collector rejected part of an OTLP export"
            ),
            false => tracing::info!(
                signal = signal.as_str(),
                "the collector takes whole OTLP exports again"
            ),
        }
    }

    fn shutdown(&self) -> OTelSdkResult {
        match self.shut_down.swap(true, Ordering::Relaxed) {
            true => Err(OTelSdkError::AlreadyShutdown),
            false => Ok(()),
        }
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let resource_spans = group_spans_by_resource_and_scope(batch, &self.resource);
        self.send(Request::Traces(ExportTraceServiceRequest {
            resource_spans,
        }))
        .await
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

impl OtlpExporter {
    /// Sends a metrics request built from the series store (see `store_request`).
    pub(crate) async fn export_metrics(
        &self,
        request: ExportMetricsServiceRequest,
    ) -> OTelSdkResult {
        self.send(Request::Metrics(request)).await
    }
}

impl LogExporter for OtlpExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let resource_logs = group_logs_by_resource_and_scope(&batch, &self.resource);
        self.send(Request::Logs(ExportLogsServiceRequest { resource_logs }))
            .await
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}
