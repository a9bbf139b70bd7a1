//! The bridge reader: a [`MetricReader`] that collects from the SDK when scraped.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use super::families::Snapshot;
use super::{Format, openmetrics, text};
use crate::config::PrometheusConfig;
use crate::exemplars::ExemplarStore;

/// A pull reader for Prometheus. Register a clone with the meter provider, keep one to
/// render; each render is one SDK collection, always cumulative.
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
/// assert!(reader.render_text().unwrap().contains("jobs_total 2"));
/// ```
#[derive(Clone)]
pub struct PrometheusReader {
    inner: Arc<Inner>,
}

struct Inner {
    sdk: ManualReader,
    options: PrometheusConfig,
    exemplars: ExemplarStore,
    // Reused between scrapes: the SDK refills its vectors in place.
    scratch: Mutex<Scratch>,
}

#[derive(Default)]
struct Scratch {
    metrics: ResourceMetrics,
    last_len: usize,
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
        Self::with_exemplars(options, ExemplarStore::default())
    }

    /// A reader that also renders the exemplars `store` captures (OpenMetrics only).
    pub(crate) fn with_exemplars(options: PrometheusConfig, exemplars: ExemplarStore) -> Self {
        PrometheusReader {
            inner: Arc::new(Inner {
                sdk: ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
                options,
                exemplars,
                scratch: Mutex::new(Scratch::default()),
            }),
        }
    }

    /// Collects and renders the text format 0.0.4 ([`text::CONTENT_TYPE`]).
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
        let mut scratch = self
            .inner
            .scratch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Scratch { metrics, last_len } = &mut *scratch;
        self.inner.sdk.collect(metrics)?;
        let mut out = String::with_capacity(*last_len + *last_len / 8);
        let snapshot = Snapshot::new(metrics, &self.inner.options);
        match format {
            Format::Text => text::encode(&snapshot, &mut out),
            Format::OpenMetrics => openmetrics::encode(&snapshot, &self.inner.exemplars, &mut out),
        }
        *last_len = out.len();
        Ok(out)
    }
}

impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.inner.sdk.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.inner.sdk.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.sdk.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.sdk.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, _kind: InstrumentKind) -> Temporality {
        Temporality::Cumulative
    }
}
