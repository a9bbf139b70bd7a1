//! OTLP protobuf over HTTP POST with hyper-util's client over our connector.

use std::io::Write as _;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prost::Message as _;

use super::exporter::{ExportResponse, Rejected, Request};
use super::settings::Connector;
use super::{Settings, error_chain};
use crate::otlp::Signal;

/// Most of a response body read: a collector answers with a small status message, and
/// anything larger is not worth memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// An HTTP client of one signal's URL; cheap to clone (the pool is shared).
#[derive(Clone)]
pub(super) struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    endpoint: http::Uri,
    headers: http::HeaderMap,
    gzip: bool,
}

impl HttpClient {
    pub(super) fn new(settings: &Settings) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(settings.connector(false));
        HttpClient {
            client,
            endpoint: settings.endpoint.clone(),
            headers: settings.headers.clone(),
            gzip: settings.gzip,
        }
    }

    pub(super) async fn send(self, request: Request) -> Result<Rejected, String> {
        let signal = request.signal();
        let body = match request {
            Request::Metrics(message) => message.encode_to_vec(),
            Request::Traces(message) => message.encode_to_vec(),
            Request::Logs(message) => message.encode_to_vec(),
        };
        let body = match self.gzip {
            true => gzip(&body).map_err(|e| format!("gzip: {e}"))?,
            false => body,
        };
        let mut builder = http::Request::post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                http::header::USER_AGENT,
                concat!("streamhouse-observability/", env!("CARGO_PKG_VERSION")),
            );
        if self.gzip {
            builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
        }
        let mut request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("HTTP request: {e}"))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name, value.clone());
        }
        let response = self.client.request(request).await.map_err(|e| {
            format!(
                "HTTP export to {} failed: {}",
                self.endpoint,
                error_chain(&e)
            )
        })?;
        let status = response.status();
        // Read (bounded) so the connection can be reused, and for the error message.
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(rejected(signal, &body))
        } else {
            let detail = String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
            Err(format!(
                "HTTP export to {} failed: status {status}: {}",
                self.endpoint,
                detail.escape_debug()
            ))
        }
    }
}

/// The partial success of a 2xx answer's protobuf body. An empty or undecodable body means
/// the collector took everything: the status is what OTLP/HTTP success is.
fn rejected(signal: Signal, body: &[u8]) -> Rejected {
    use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
    fn decoded<R: ExportResponse>(body: &[u8]) -> Rejected {
        R::decode(body).map(|r| r.rejected()).unwrap_or_default()
    }
    match signal {
        Signal::Metrics => decoded::<metrics::v1::ExportMetricsServiceResponse>(body),
        Signal::Traces => decoded::<trace::v1::ExportTraceServiceResponse>(body),
        Signal::Logs => decoded::<logs::v1::ExportLogsServiceResponse>(body),
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };

    use super::*;

    #[test]
    fn partial_success_is_read_from_the_body_and_bounded() {
        let body = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "x".repeat(1000),
            }),
        }
        .encode_to_vec();
        let got = rejected(Signal::Logs, &body);
        assert_eq!(got.items, 3);
        assert_eq!(got.message.len(), 256);
        // Success without a body, or one that is not OTLP: everything was taken.
        assert_eq!(rejected(Signal::Logs, b""), Rejected::default());
        assert_eq!(
            rejected(Signal::Metrics, b"\xff\xff\xff"),
            Rejected::default()
        );
    }
}
