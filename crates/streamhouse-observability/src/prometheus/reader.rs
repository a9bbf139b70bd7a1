//! The bridge reader: a [`MetricReader`] that collects from the SDK when scraped.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, Pipeline, Temporality};

use super::body::Body;
use super::families::{DropReason, Dropped, Snapshot};
use super::{Format, openmetrics, text};
use crate::config::PrometheusConfig;
use crate::exemplars::ExemplarStore;
use crate::series::collector::{Collector, Lifecycle};

/// A pull reader for Prometheus. Register a clone with the meter provider, keep one to
/// render; each render is one SDK collection, always cumulative: the SDK hands over deltas
/// and the reader keeps the totals (see [`series`](crate::series)).
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
/// use streamhouse_observability::config::PrometheusConfig;
/// use streamhouse_observability::prometheus::PrometheusReader;
///
/// let reader = PrometheusReader::new(PrometheusConfig::default());
/// let provider = SdkMeterProvider::builder().with_reader(reader.clone()).build();
/// provider.meter("demo").u64_counter("jobs").build().add(2, &[]);
/// // A scope other than StreamHouse's own is labelled, as the specification's default.
/// let text = reader.render_text().unwrap();
/// assert!(text.contains(r#"jobs_total{otel_scope_name="demo"} 2"#));
/// ```
#[derive(Clone)]
pub struct PrometheusReader {
    inner: Arc<Inner>,
}

struct Inner {
    collector: Arc<Collector>,
    options: PrometheusConfig,
    exemplars: ExemplarStore,
    dropped: Arc<DroppedSeries>,
    /// The length of the last exposition, to size the next.
    last_len: AtomicUsize,
}

/// About how many bytes [`PrometheusReader::render_to`] renders before each write.
pub const RENDER_CHUNK_BYTES: usize = 64 * 1024;

/// Why [`PrometheusReader::render_to`] stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RenderError {
    /// The collection failed (the provider is shut down or not yet built); nothing was
    /// written.
    Collect(OTelSdkError),
    /// The writer failed; the body written so far is incomplete.
    Write(std::io::Error),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Collect(e) => write!(f, "collection failed: {e}"),
            RenderError::Write(e) => write!(f, "writing the exposition failed: {e}"),
        }
    }
}

impl std::error::Error for RenderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RenderError::Collect(e) => Some(e),
            RenderError::Write(e) => Some(e),
        }
    }
}

/// Series left out of rendered expositions, per reason, and the (name, reason) pairs
/// already logged.
#[derive(Debug, Default)]
pub(crate) struct DroppedSeries {
    counts: [AtomicU64; DropReason::ALL.len()],
    logged: Mutex<HashSet<(String, DropReason)>>,
}

/// Names remembered for logging once; past it, new names are not logged (still counted).
const MAX_LOGGED_NAMES: usize = 1024;

impl DroppedSeries {
    /// Calls `f` with each reason's `reason` label value and its count so far.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        for reason in DropReason::ALL {
            f(
                reason.as_str(),
                self.counts[reason as usize].load(Ordering::Relaxed),
            );
        }
    }

    fn record(&self, dropped: &Dropped<'_>) {
        for reason in DropReason::ALL {
            let n = dropped.counts[reason as usize];
            if n > 0 {
                self.counts[reason as usize].fetch_add(n, Ordering::Relaxed);
            }
        }
        if dropped.names.is_empty() {
            return;
        }
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, reason) in &dropped.names {
            let key = (name.to_string(), *reason);
            if logged.len() < MAX_LOGGED_NAMES && !logged.contains(&key) {
                tracing::warn!(
                    metric = %name,
                    reason = reason.as_str(),
                    "series left out of /metrics; see docs/exposition.md"
                );
                logged.insert(key);
            }
        }
    }
}

impl fmt::Debug for PrometheusReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusReader")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl PrometheusReader {
    /// A reader rendering with `options`.
    pub fn new(options: PrometheusConfig) -> Self {
        Self::with_lifecycle(options, Lifecycle::default())
    }

    /// A reader whose series follow `lifecycle`, and that also renders the exemplars it
    /// captures (OpenMetrics only).
    pub(crate) fn with_lifecycle(options: PrometheusConfig, lifecycle: Lifecycle) -> Self {
        let exemplars = lifecycle.exemplars.clone();
        PrometheusReader {
            inner: Arc::new(Inner {
                collector: Arc::new(Collector::new(lifecycle)),
                options,
                exemplars,
                dropped: Arc::default(),
                last_len: AtomicUsize::new(0),
            }),
        }
    }

    /// The collector behind this reader, shared with the OTLP push.
    pub(crate) fn collector(&self) -> &Arc<Collector> {
        &self.inner.collector
    }

    /// Collects and renders the text format 0.0.4.
    ///
    /// # Errors
    /// The SDK's error when the provider is shut down or not yet built.
    pub fn render_text(&self) -> Result<String, OTelSdkError> {
        self.render(Format::Text)
    }

    /// Collects and renders `format`.
    ///
    /// # Errors
    /// The SDK's error when the provider is shut down or not yet built.
    pub fn render(&self, format: Format) -> Result<String, OTelSdkError> {
        let last_len = self.inner.last_len.load(Ordering::Relaxed);
        let body = Body::whole(last_len + last_len / 8);
        match self.encode(format, body) {
            Ok((text, _)) => Ok(text),
            Err(RenderError::Collect(e)) => Err(e),
            // A body kept whole has no writer to fail.
            Err(RenderError::Write(e)) => Err(OTelSdkError::InternalFailure(e.to_string())),
        }
    }

    /// Collects and writes `format` to `out` as it renders, in chunks of about
    /// [`RENDER_CHUNK_BYTES`], so a large exposition is never held whole (wrap `out` in a
    /// gzip encoder to compress while rendering). A write error stops the render at once:
    /// a writer that knows nobody waits any more (a deadline passed, the client left)
    /// returns one. Returns the bytes written.
    ///
    /// The series store stays locked while the render runs: a writer that blocks holds
    /// up removal, OTLP push and other scrapes, so give it a deadline.
    ///
    /// ```
    /// use streamhouse_observability::config::PrometheusConfig;
    /// use streamhouse_observability::prometheus::{Format, PrometheusReader};
    /// # use opentelemetry::metrics::MeterProvider as _;
    /// # let reader = PrometheusReader::new(PrometheusConfig::default());
    /// # let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
    /// #     .with_reader(reader.clone()).build();
    /// # provider.meter("demo").u64_counter("jobs").build().add(2, &[]);
    /// let mut body = Vec::new();
    /// let written = reader.render_to(Format::Text, &mut body).unwrap();
    /// assert_eq!(written, body.len() as u64);
    /// ```
    ///
    /// # Errors
    /// [`RenderError::Collect`] when the provider is shut down or not yet built, before
    /// anything is written; [`RenderError::Write`] with the writer's error.
    pub fn render_to(
        &self,
        format: Format,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, RenderError> {
        let (_, written) = self.encode(format, Body::chunked(out))?;
        Ok(written)
    }

    /// Collects and encodes into `body`; returns what it kept (a body kept whole) and the
    /// bytes written.
    fn encode(&self, format: Format, mut body: Body<'_>) -> Result<(String, u64), RenderError> {
        let options = &self.inner.options;
        let encoded = self
            .inner
            .collector
            .read(|store| {
                let snapshot = Snapshot::new(store, options);
                self.inner.dropped.record(&snapshot.dropped);
                match format {
                    Format::Text => text::encode(&snapshot, &mut body),
                    Format::OpenMetrics => openmetrics::encode(
                        &snapshot,
                        &self.inner.exemplars,
                        options.created_samples,
                        &mut body,
                    ),
                }
            })
            .map_err(RenderError::Collect)?;
        encoded.map_err(RenderError::Write)?;
        let (text, written) = body.finish().map_err(RenderError::Write)?;
        self.inner
            .last_len
            .store(written as usize, Ordering::Relaxed);
        Ok((text, written))
    }

    /// Forgets every kept label text, so the next render renders them anew.
    #[cfg(test)]
    pub(crate) fn forget_rendered(&self) {
        let _ = self.inner.collector.read(|store| {
            for stream in store.scopes.iter_mut().flat_map(|s| &mut s.streams) {
                stream.rendered = Default::default();
            }
        });
    }

    /// Series left out of rendered expositions so far, by reason.
    pub(crate) fn dropped_series(&self) -> Arc<DroppedSeries> {
        Arc::clone(&self.inner.dropped)
    }
}

/// As a reader of its own, it collects into its store like a render does; `rm` receives the
/// collection as the SDK gave it (deltas for counters, histograms and up-down counters).
impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.inner.collector.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.inner.collector.collect_into(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.collector.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.collector.shutdown(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        Collector::temporality(kind)
    }
}
