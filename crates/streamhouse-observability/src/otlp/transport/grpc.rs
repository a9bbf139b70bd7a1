//! OTLP over gRPC: `opentelemetry-proto`'s generated tonic clients on a lazily connected
//! channel over our connector (rustls with ALPN `h2` for `https://`).
//!
//! Known limit: if the application turns on one of tonic's own TLS features, tonic refuses
//! `https://` URIs on a channel built without its TLS config (`HttpsUriWithoutTlsSupport`),
//! and such exports fail (counted and logged).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::runtime::Handle;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use super::Settings;
use super::error_chain;
use super::exporter::{ExportResponse, Rejected, Request};

/// A gRPC client of one collector; cheap to clone (the channel is shared).
#[derive(Clone)]
pub(super) struct GrpcClient {
    channel: Channel,
    headers: http::HeaderMap,
    gzip: bool,
}

impl GrpcClient {
    /// Builds the channel on `runtime` (tonic spawns its connection worker there); nothing
    /// connects until the first export.
    pub(super) fn new(settings: &Settings, runtime: &Handle) -> Self {
        let endpoint = Endpoint::from(settings.endpoint.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout);
        let _entered = runtime.enter();
        let channel = endpoint.connect_with_connector_lazy(settings.connector(true));
        GrpcClient {
            channel,
            headers: settings.headers.clone(),
            gzip: settings.gzip,
        }
    }

    pub(super) async fn send(self, request: Request) -> Result<Rejected, String> {
        let GrpcClient {
            channel,
            headers,
            gzip,
        } = self;
        fn request_of<T>(headers: http::HeaderMap, message: T) -> tonic::Request<T> {
            let metadata = MetadataMap::from_headers(headers);
            tonic::Request::from_parts(metadata, tonic::Extensions::default(), message)
        }
        // The three generated clients share no trait: one body for all of them.
        macro_rules! export {
            ($client:ident, $message:expr) => {{
                let mut client = $client::new(channel);
                if gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                let response = client.export(request_of(headers, $message)).await;
                response.map(|r| r.into_inner().rejected())
            }};
        }
        let result = match request {
            Request::Metrics(message) => export!(MetricsServiceClient, message),
            Request::Traces(message) => export!(TraceServiceClient, message),
            Request::Logs(message) => export!(LogsServiceClient, message),
        };
        result.map_err(|status| format!("gRPC export failed: {}", error_chain(&status)))
    }
}
