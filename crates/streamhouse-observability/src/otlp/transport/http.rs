//! OTLP protobuf over HTTP POST with hyper-util's client over our connector.

use std::io::Write as _;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prost::Message as _;

use super::exporter::Request;
use super::settings::Connector;
use super::{Settings, error_chain};

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

    pub(super) async fn send(self, request: Request) -> Result<(), String> {
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
            Ok(())
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

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body)?;
    encoder.finish()
}
