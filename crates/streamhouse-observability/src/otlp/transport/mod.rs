//! Our own OTLP transports: gRPC (`otlp-grpc`) and HTTP/protobuf (`otlp-http`), encoded by
//! `opentelemetry-proto`'s `transform` module, over one connector that speaks TLS through
//! rustls when the `tls` feature is on.
//!
//! Why not `opentelemetry-otlp` 0.33: it reads the environment whatever the code says (it
//! merges `OTEL_EXPORTER_OTLP_HEADERS` over code headers and reads protocol, compression,
//! insecure and timeouts from the environment when code leaves them unset, so a config
//! built in code for HTTP plus `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` fails to build), it has no
//! client certificates for HTTP, its gRPC TLS needs tonic's own TLS features, and its HTTP
//! transport brings reqwest, a second HTTP stack beside the hyper that gRPC needs anyway.
//! Here every value comes from
//! [`OtlpExporterConfig`](super::OtlpExporterConfig) and nowhere else.
//!
//! [`Settings`] is the one place where endpoint, headers, compression, timeout and TLS are
//! resolved; every transport (and any later one) is built from it.

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod exporter;
#[cfg(feature = "otlp-grpc")]
mod grpc;
#[cfg(feature = "otlp-http")]
mod http;
mod settings;
#[cfg(feature = "tls")]
mod tls;

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
pub(crate) use exporter::OtlpExporter;
pub(crate) use settings::Settings;

/// The full chain of an error, `outer: inner: ...`, so a log line shows the root cause (a
/// TLS alert, a refused connection) and not only "transport error".
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: a cyclic or very deep chain must not make a huge log line.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
