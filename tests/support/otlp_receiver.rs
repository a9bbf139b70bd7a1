//! An in-process OTLP receiver (gRPC and HTTP/protobuf) built on `opentelemetry-proto`: it
//! keeps every request it decodes so tests can assert on what arrived. Fast tests use it;
//! `rotel` is the real peer.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::oneshot;

/// Everything received so far, with the request headers of the last request.
#[derive(Default, Debug)]
pub struct Received {
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub last_headers: Vec<(String, String)>,
    /// Every request's transport and headers, in arrival order.
    pub requests: Vec<(Transport, Vec<(String, String)>)>,
}

/// How a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Received {
    fn note(&mut self, transport: Transport, headers: Vec<(String, String)>) {
        self.requests.push((transport, headers.clone()));
        self.last_headers = headers;
    }
}

type Shared = Arc<Mutex<Received>>;

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    received: Shared,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on free loopback ports.
    pub async fn start() -> Receiver {
        Self::start_on(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
    }

    /// Starts on the given addresses (to come back where a stopped receiver was).
    pub async fn start_on(grpc: SocketAddr, http: SocketAddr) -> Receiver {
        let received = Shared::default();
        let grpc_listener = tokio::net::TcpListener::bind(grpc)
            .await
            .expect("bind gRPC");
        let http_listener = tokio::net::TcpListener::bind(http)
            .await
            .expect("bind HTTP");
        let grpc_addr = grpc_listener.local_addr().unwrap();
        let http_addr = http_listener.local_addr().unwrap();

        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let service = Service(received.clone());
        let grpc_task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc_listener);
            let _ = tonic::transport::Server::builder()
                .add_service(
                    MetricsServiceServer::new(service.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .add_service(
                    TraceServiceServer::new(service.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .add_service(
                    LogsServiceServer::new(service)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = grpc_stopped.await;
                })
                .await;
        });

        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let metrics_state = received.clone();
        let traces_state = received.clone();
        let logs_state = received.clone();
        let router = axum::Router::new()
            .route(
                "/v1/metrics",
                post(move |headers: HeaderMap, body: Bytes| async move {
                    decode_into(&metrics_state, &headers, &body, |r, m| r.metrics.push(m))
                        .map(|_| encoded(ExportMetricsServiceResponse::default()))
                }),
            )
            .route(
                "/v1/traces",
                post(move |headers: HeaderMap, body: Bytes| async move {
                    decode_into(&traces_state, &headers, &body, |r, t| r.traces.push(t))
                        .map(|_| encoded(ExportTraceServiceResponse::default()))
                }),
            )
            .route(
                "/v1/logs",
                post(move |headers: HeaderMap, body: Bytes| async move {
                    decode_into(&logs_state, &headers, &body, |r, l| r.logs.push(l))
                        .map(|_| encoded(ExportLogsServiceResponse::default()))
                }),
            );
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(http_listener, router)
                .with_graceful_shutdown(async {
                    let _ = http_stopped.await;
                })
                .await;
        });
        Receiver {
            grpc_addr,
            http_addr,
            received,
            stops: vec![grpc_stop, http_stop],
            tasks: vec![grpc_task, http_task],
        }
    }

    /// `http://<gRPC address>`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://<HTTP address>` (the base; exporters append `/v1/<signal>`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Runs `f` on what has been received.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().unwrap())
    }

    /// Polls until `done` holds or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Received) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.with(&done) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops both servers and waits until their ports are closed.
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            // Graceful shutdown waits for open connections; exporters keep theirs open.
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn encoded<M: Message>(message: M) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    (
        [("content-type", "application/x-protobuf")],
        message.encode_to_vec(),
    )
}

fn decode_into<M: Message + Default>(
    state: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    push: impl FnOnce(&mut Received, M),
) -> Result<(), StatusCode> {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let bytes = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        out
    } else {
        body.to_vec()
    };
    let message = M::decode(bytes.as_slice()).map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut received = state.lock().unwrap();
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    received.note(Transport::Http, headers);
    push(&mut received, message);
    Ok(())
}

#[derive(Clone)]
struct Service(Shared);

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        received.note(Transport::Grpc, metadata_pairs(request.metadata()));
        received.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        received.note(Transport::Grpc, metadata_pairs(request.metadata()));
        received.traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        received.note(Transport::Grpc, metadata_pairs(request.metadata()));
        received.logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn metadata_pairs(metadata: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    metadata
        .clone()
        .into_headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl Received {
    /// Every metric of every request, with the resource it came with.
    pub fn metrics(&self) -> Vec<(Option<Resource>, Metric)> {
        self.metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|rm| {
                rm.scope_metrics
                    .iter()
                    .flat_map(|sm| &sm.metrics)
                    .map(|m| (rm.resource.clone(), m.clone()))
            })
            .collect()
    }

    /// The last received metric named `name`.
    pub fn metric(&self, name: &str) -> Option<Metric> {
        self.metrics()
            .into_iter()
            .rev()
            .find(|(_, m)| m.name == name)
            .map(|(_, m)| m)
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.clone()))
            .collect()
    }

    /// Every log record received.
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|rl| rl.scope_logs.iter().flat_map(|sl| sl.log_records.clone()))
            .collect()
    }

    /// The resources spans came with.
    pub fn span_resources(&self) -> Vec<Resource> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|rs| rs.resource.clone())
            .collect()
    }
}

/// The string value of attribute `key`.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_string)
}

/// An attribute value as text (`42`, `true`, `orders`).
pub fn any_value_string(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
