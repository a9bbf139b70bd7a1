//! `GET /metrics` and `HEAD /metrics`: the scrape protocol follows the `Accept` header
//! ([`ScrapeProtocol::negotiate`]), gzip when `Accept-Encoding` allows it, a bound on
//! concurrent scrapes past which it answers 503, and a deadline past which a render stops.
//!
//! The body is rendered in a blocking task straight into the response: chunks go through a
//! bounded channel, gzipped in the render thread when the scraper accepts it, so neither
//! the body nor its compressed copy is ever held whole.

use std::convert::Infallible;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::Telemetry;
use crate::metrics::ScrapeStop;
use crate::prometheus::{
    Format, PrometheusReader, RENDER_CHUNK_BYTES, RenderError, ScrapeProtocol, parse_qvalue,
};

/// The longest a scrape may take, and the deadline of a scrape that names none: past it the
/// render stops and its permit is free again. Prometheus's own timeout
/// (`X-Prometheus-Scrape-Timeout-Seconds`) can only shorten it.
const MAX_SCRAPE_DEADLINE: Duration = Duration::from_secs(30);

/// The header Prometheus sends with its `scrape_timeout`, in seconds.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// gzip level 1: compressing must cost no more than rendering. On the seed shape's text
/// (100k series, 48 MB) flate2's default backend at level 1 adds 0.63x the render's own time
/// and shrinks the body 16.7x; level 2 adds 2.1x for 21.3x, level 3 3.3x for 23.2x
/// (BENCHMARKS.md, "gzip while rendering").
const GZIP_LEVEL: u32 = 1;

/// Chunks queued between the render thread and the connection. With chunks of about
/// [`RENDER_CHUNK_BYTES`], a scrape holds at most a few hundred KiB whatever its size, and
/// a slow reader holds back the render instead of piling up its body.
const QUEUED_CHUNKS: usize = 4;

#[derive(Clone)]
struct Scrapes {
    telemetry: Telemetry,
    permits: Arc<Semaphore>,
}

/// A router serving `GET /metrics` and `HEAD /metrics` (other methods get 405). Merge it into
/// your own router.
///
/// The answer is in the protocol [`ScrapeProtocol::negotiate`] picks from the `Accept`
/// header, with that protocol's `Content-Type`, gzipped when `Accept-Encoding` ranks gzip
/// at least as high as `identity` (q-values, `*` and `identity;q=0` as RFC 9110 reads
/// them; no `Accept-Encoding` means identity, and when neither is acceptable the body goes
/// uncompressed). `HEAD` answers the same headers without collecting. With telemetry
/// disabled, the body is empty (text) or `# EOF\n` (OpenMetrics), never compressed.
///
/// Bounds: past [`PrometheusConfig::max_concurrent_scrapes`](crate::config::PrometheusConfig::max_concurrent_scrapes)
/// scrapes at once, `GET` answers 503 with `Retry-After: 1`. Each scrape has a deadline, 30 s
/// or the `X-Prometheus-Scrape-Timeout-Seconds` Prometheus sends if shorter (a value that
/// is not a positive number of seconds is ignored); once it passes, or once the scraper
/// closes the connection, the render stops and frees its permit. A scrape stopped before
/// its first byte answers 503, one stopped later ends its body with an error (the
/// connection is cut, so no scraper takes a partial body as complete). Each scrape is
/// recorded in [`Telemetry::scrapes`]: its duration and body size, or the refusal, or why it
/// stopped.
///
/// ```no_run
/// use streamhouse_observability::{Telemetry, TelemetryConfig, http::metrics_router};
///
/// # async fn run() -> std::io::Result<()> {
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let app = axum::Router::new().merge(metrics_router(&telemetry));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub fn metrics_router(telemetry: &Telemetry) -> Router {
    // `Telemetry::new` validated the limit (1 to MAX_CONCURRENT_SCRAPES), so it is neither 0,
    // which would answer every scrape 503, nor past `Semaphore::MAX_PERMITS`, where
    // `Semaphore::new` panics.
    let limit = telemetry.config().prometheus.max_concurrent_scrapes;
    let state = Scrapes {
        telemetry: telemetry.clone(),
        permits: Arc::new(Semaphore::new(limit)),
    };
    Router::new()
        // Without its own HEAD handler axum would run the GET handler, collecting, and
        // drop the body.
        .route("/metrics", get(metrics).head(head))
        .with_state(state)
}

/// The protocol to answer with. Several `Accept` fields are one comma-separated list
/// (RFC 9110, section 5.3); a field that is not visible ASCII is not looked at.
fn negotiate(headers: &HeaderMap) -> ScrapeProtocol {
    let fields: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    match fields.as_slice() {
        [] => ScrapeProtocol::negotiate(None),
        [one] => ScrapeProtocol::negotiate(Some(one)),
        many => ScrapeProtocol::negotiate(Some(&many.join(","))),
    }
}

/// Whether to gzip: `Accept-Encoding` (RFC 9110, section 12.5.3) gives gzip a weight above 0
/// and at least identity's. Weights are in thousandths; an entry whose weight does not parse
/// is skipped. Identity keeps its place unless listed itself or through `*`; gzip is not
/// acceptable unless listed itself or through `*`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut identity, mut any) = (None, None, None);
    for field in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(field) = field.to_str() else { continue };
        for entry in field.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            if let Some(weight) = weight(parts) {
                // Listed twice: the higher weight counts.
                *slot = Some(slot.map_or(weight, |old: u16| old.max(weight)));
            }
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    let identity = identity.or(any).unwrap_or(0);
    gzip > 0 && gzip >= identity
}

/// The `q` parameter among `params`, in thousandths (1000 when absent); `None` when it is
/// not a qvalue (`0` to `1` with at most three decimals).
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        return parse_qvalue(value.trim());
    }
    Some(1000)
}

/// How long this scrape may take: Prometheus's timeout when it is a positive number of
/// seconds, at most [`MAX_SCRAPE_DEADLINE`]; else that maximum.
fn scrape_budget(headers: &HeaderMap) -> Duration {
    headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(MAX_SCRAPE_DEADLINE, |seconds| {
            Duration::from_secs_f64(seconds.min(MAX_SCRAPE_DEADLINE.as_secs_f64()))
        })
}

/// A 200 in `protocol`, gzipped or not.
fn answer(protocol: ScrapeProtocol, gzip: bool, body: Body) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, protocol.content_type()),
            // The body depends on both: caches must not serve one scraper's to another.
            (header::VARY, "accept, accept-encoding"),
        ],
        body,
    )
        .into_response();
    if gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn unavailable(message: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}

async fn metrics(State(scrapes): State<Scrapes>, headers: HeaderMap) -> Response {
    let protocol = negotiate(&headers);
    let format = protocol.format();
    let Some(reader) = scrapes.telemetry.prometheus().cloned() else {
        return answer(protocol, false, Body::from(format.empty_body()));
    };
    let recorder = scrapes.telemetry.scrapes().clone();
    let Ok(permit) = Arc::clone(&scrapes.permits).try_acquire_owned() else {
        recorder.record_refused();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many concurrent scrapes\n",
        )
            .into_response();
    };
    let gzip = accepts_gzip(&headers);
    let started = Instant::now();
    let deadline = started + scrape_budget(&headers);
    let (sender, mut chunks) = mpsc::channel(QUEUED_CHUNKS);
    let runtime = Handle::current();
    // A large collection takes milliseconds of CPU, a large render seconds: keep both off the
    // async workers.
    let render = tokio::task::spawn_blocking(move || {
        let mut body = BodyWriter::new(sender, runtime, deadline);
        let rendered = render_into(&reader, format, gzip, &mut body);
        // Room for the end mark first: the outcome is recorded and the permit free before
        // the scraper can see its body end, so a scraper reading the metrics next sees its
        // scrape, and a scrape it sends next finds the permit.
        let end = rendered.and_then(|sent| match body.reserve_end() {
            Ok(slot) => Ok((sent, slot)),
            Err(reason) => Err(Failed::Stopped(reason)),
        });
        match end {
            Ok((sent, slot)) => {
                recorder.record_served(started.elapsed(), sent);
                drop(permit);
                slot.send(Piece::End);
                Ok(sent)
            }
            Err(failed) => {
                if let Failed::Stopped(reason) = failed {
                    recorder.record_stopped(reason);
                }
                // Before `body` goes, which closes the channel.
                drop(permit);
                Err(failed)
            }
        }
    });
    // Headers go out with the first chunk, so a collection that fails, or a deadline that
    // passes before anything is written, can still answer 503.
    match chunks.recv().await {
        Some(Piece::Chunk(first)) => answer(protocol, gzip, streamed(first, chunks)),
        Some(Piece::End) => answer(protocol, gzip, Body::empty()),
        // The render ended without a byte: wait for it, so its permit is free and its
        // outcome recorded by the time the scraper reads the answer.
        None => match render.await {
            Ok(Err(Failed::Collect(error))) => unavailable(format!("{error}\n")),
            Ok(Err(Failed::Stopped(ScrapeStop::Deadline))) => {
                unavailable("the scrape deadline passed before the first byte\n".to_owned())
            }
            // Nobody reads this one: the scraper is gone.
            Ok(Err(Failed::Stopped(ScrapeStop::ClientGone))) => {
                unavailable("the scraper went away\n".to_owned())
            }
            Ok(Err(Failed::Write(error))) => unavailable(format!("{error}\n")),
            Ok(Ok(_)) => unavailable("the render ended without its body\n".to_owned()),
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
        },
    }
}

async fn head(State(scrapes): State<Scrapes>, headers: HeaderMap) -> Response {
    let protocol = negotiate(&headers);
    if scrapes.telemetry.prometheus().is_none() {
        // Nothing to collect: GET's body is known, and so is its Content-Length.
        return answer(protocol, false, Body::from(protocol.format().empty_body()));
    }
    // A body of unknown length, which axum drops: an empty body would make it announce
    // `Content-Length: 0`, claiming GET's body is empty.
    let unknown_length = Body::from_stream(futures::stream::empty::<Result<Bytes, Infallible>>());
    answer(protocol, accepts_gzip(&headers), unknown_length)
}

/// What the render thread hands the connection.
enum Piece {
    Chunk(Bytes),
    /// The body is complete. A channel closed without it means the render stopped.
    End,
}

/// Why a render did not finish.
enum Failed {
    Collect(String),
    Stopped(ScrapeStop),
    Write(io::Error),
}

/// Collects and renders `format` into `body`, through gzip when `gzip`; the body bytes sent.
fn render_into(
    reader: &PrometheusReader,
    format: Format,
    gzip: bool,
    body: &mut BodyWriter,
) -> Result<u64, Failed> {
    let rendered = if gzip {
        let mut encoder = GzEncoder::new(&mut *body, Compression::new(GZIP_LEVEL));
        reader
            .render_to(format, &mut encoder)
            .and_then(|_| encoder.try_finish().map_err(RenderError::Write))
    } else {
        reader.render_to(format, body).map(|_| ())
    };
    let rendered = rendered.and_then(|()| body.send_pending().map_err(RenderError::Write));
    match (rendered, body.stopped) {
        (Ok(()), _) => Ok(body.sent),
        (Err(RenderError::Collect(error)), _) => Err(Failed::Collect(error.to_string())),
        (Err(_), Some(reason)) => Err(Failed::Stopped(reason)),
        (Err(RenderError::Write(error)), None) => Err(Failed::Write(error)),
    }
}

/// The response body as the render writes it: about [`RENDER_CHUNK_BYTES`] at a time into a
/// bounded channel. A write fails once the deadline has passed or the connection is gone,
/// which stops the render.
struct BodyWriter {
    sender: mpsc::Sender<Piece>,
    runtime: Handle,
    deadline: Instant,
    pending: BytesMut,
    sent: u64,
    stopped: Option<ScrapeStop>,
}

impl BodyWriter {
    fn new(sender: mpsc::Sender<Piece>, runtime: Handle, deadline: Instant) -> Self {
        BodyWriter {
            sender,
            runtime,
            deadline,
            pending: BytesMut::new(),
            sent: 0,
            stopped: None,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        if self.stopped.is_none() && Instant::now() >= self.deadline {
            self.stopped = Some(ScrapeStop::Deadline);
        }
        match self.stopped {
            None => Ok(()),
            Some(ScrapeStop::Deadline) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the scrape deadline passed",
            )),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the scraper went away",
            )),
        }
    }

    /// Queues `piece`, waiting for room until the deadline.
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        self.check()?;
        let queued = self.runtime.block_on(tokio::time::timeout_at(
            self.deadline,
            self.sender.send(piece),
        ));
        match queued {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                self.stopped = Some(ScrapeStop::ClientGone);
                self.check()
            }
            Err(_) => {
                self.stopped = Some(ScrapeStop::Deadline);
                self.check()
            }
        }
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.pending).freeze();
        let len = chunk.len() as u64;
        self.send(Piece::Chunk(chunk))?;
        self.sent += len;
        Ok(())
    }

    /// Room for the end mark, waiting until the deadline.
    fn reserve_end(&self) -> Result<mpsc::Permit<'_, Piece>, ScrapeStop> {
        if let Some(reason) = self.stopped {
            return Err(reason);
        }
        let reserve = tokio::time::timeout_at(self.deadline, self.sender.reserve());
        match self.runtime.block_on(reserve) {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) => Err(ScrapeStop::ClientGone),
            Err(_) => Err(ScrapeStop::Deadline),
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        if self.pending.is_empty() {
            self.pending.reserve(RENDER_CHUNK_BYTES.max(data.len()));
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() >= RENDER_CHUNK_BYTES {
            self.send_pending()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}

/// The body: `first`, then the chunks the render sends. A channel closed before the end
/// yields an error, so hyper cuts the connection instead of ending the body as if complete.
fn streamed(first: Bytes, chunks: mpsc::Receiver<Piece>) -> Body {
    let first = futures::stream::once(async move { Ok::<_, io::Error>(first) });
    let rest = futures::stream::unfold(Some(chunks), |chunks| async move {
        let mut chunks = chunks?;
        match chunks.recv().await {
            Some(Piece::Chunk(chunk)) => Some((Ok(chunk), Some(chunks))),
            Some(Piece::End) => None,
            None => Some((Err(io::Error::other("the render stopped")), None)),
        }
    });
    Body::from_stream(futures::StreamExt::chain(first, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn gzip_for(values: &[&'static str]) -> bool {
        let pairs: Vec<_> = values.iter().map(|v| ("accept-encoding", *v)).collect();
        accepts_gzip(&headers(&pairs))
    }

    #[test]
    fn accept_encoding_follows_rfc_9110() {
        for yes in [
            &["gzip"][..],
            &["GZip"],
            &["x-gzip"],
            &["deflate, gzip;q=0.8"],
            &["*"],
            &["gzip, identity;q=0.5"],
            &["identity;q=0.5, gzip;q=0.5"],
            &["br", "gzip;q=1.000"],
            &["gzip ; Q=0.001"],
            &["*;q=0.3, identity;q=0.2"],
            &["gzip;q=0, gzip;q=0.5"],
        ] {
            assert!(gzip_for(yes), "{yes:?}");
        }
        for no in [
            &[][..],
            &[""],
            &["identity"],
            &["gzip;q=0"],
            &["gzip;q=0.000"],
            &["br, deflate"],
            &["*;q=0"],
            &["identity;q=1, gzip;q=0.5"],
            &["*, gzip;q=0"],
            // Not qvalues: the entry is skipped.
            &["gzip;q=2"],
            &["gzip;q=0.5555"],
            &["gzip;q=abc"],
            &["gzip;q=1.5"],
            &["gzip;q="],
        ] {
            assert!(!gzip_for(no), "{no:?}");
        }
    }

    #[test]
    fn scrape_timeout_shortens_the_deadline_only() {
        let budget = |value: &'static str| {
            scrape_budget(&headers(&[("x-prometheus-scrape-timeout-seconds", value)]))
        };
        assert_eq!(budget("10"), Duration::from_secs(10));
        assert_eq!(budget(" 0.25 "), Duration::from_millis(250));
        assert_eq!(budget("3600"), MAX_SCRAPE_DEADLINE);
        for ignored in ["0", "-1", "soon", "NaN", "inf", ""] {
            assert_eq!(budget(ignored), MAX_SCRAPE_DEADLINE, "{ignored:?}");
        }
        assert_eq!(scrape_budget(&HeaderMap::new()), MAX_SCRAPE_DEADLINE);
    }

    fn writer(deadline: Instant, capacity: usize) -> (BodyWriter, mpsc::Receiver<Piece>) {
        let (sender, receiver) = mpsc::channel(capacity);
        (
            BodyWriter::new(sender, Handle::current(), deadline),
            receiver,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_writer_chunks_and_stops_at_the_deadline_or_when_the_reader_leaves() {
        let far = Instant::now() + Duration::from_secs(60);
        let (mut body, mut receiver) = writer(far, 8);
        let sent = tokio::task::spawn_blocking(move || {
            body.write_all(&[b'a'; 10]).unwrap();
            body.write_all(&vec![b'b'; RENDER_CHUNK_BYTES]).unwrap();
            body.write_all(b"tail").unwrap();
            body.send_pending().unwrap();
            body.reserve_end().unwrap().send(Piece::End);
            body.sent
        })
        .await
        .unwrap();
        assert_eq!(sent, 10 + RENDER_CHUNK_BYTES as u64 + 4);
        let mut lengths = Vec::new();
        while let Some(Piece::Chunk(chunk)) = receiver.recv().await {
            lengths.push(chunk.len());
        }
        assert_eq!(lengths, [10 + RENDER_CHUNK_BYTES, 4]);

        // Nobody reads: the send waits for room until the deadline, then fails.
        let soon = Instant::now() + Duration::from_millis(100);
        let (mut body, _receiver) = writer(soon, 1);
        let stopped = tokio::task::spawn_blocking(move || {
            let chunk = vec![b'c'; RENDER_CHUNK_BYTES];
            let error = (0..3).find_map(|_| body.write_all(&chunk).err()).unwrap();
            (error.kind(), body.stopped)
        })
        .await
        .unwrap();
        assert_eq!(
            stopped,
            (io::ErrorKind::TimedOut, Some(ScrapeStop::Deadline))
        );

        // The reader left.
        let (mut body, receiver) = writer(far, 1);
        drop(receiver);
        let stopped = tokio::task::spawn_blocking(move || {
            let error = body.write_all(&vec![b'd'; RENDER_CHUNK_BYTES]).unwrap_err();
            (error.kind(), body.stopped)
        })
        .await
        .unwrap();
        assert_eq!(
            stopped,
            (io::ErrorKind::BrokenPipe, Some(ScrapeStop::ClientGone))
        );
    }
}
