//! Exemplars: the latest sampled (trace id, span id, value, time) per histogram bucket and
//! per counter series, so a dashboard can jump from a slow bucket to the trace behind it.
//!
//! The OpenTelemetry Rust SDK collects no exemplars, so the recorders offer each measurement
//! here too. Which measurements become exemplars is the [`ExemplarFilter`]
//! (`OTEL_METRICS_EXEMPLAR_FILTER`): by default only those made while a *sampled* span is
//! current (an OTel context, or a `tracing` span entered under `tracing-opentelemetry`, which
//! activates its OTel context); otherwise the cost is one thread-local check. Memory is bounded: one slot per bucket (or
//! per counter series), for at most the cardinality limit of series per metric, keyed by
//! label values the recorders have already cut to their length bound. Slots are resolved
//! when a handle is bound, so recording never looks them up; the overflow series has none.

mod slot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};

use crate::catalog::{self, MetricDef, MetricKind};
use crate::config::ConfigError;
pub use slot::Exemplar;
use slot::Slot;

/// Which measurements may become exemplars (`OTEL_METRICS_EXEMPLAR_FILTER`).
///
/// ```
/// use streamhouse_observability::exemplars::ExemplarFilter;
///
/// let filter = ExemplarFilter::parse("OTEL_METRICS_EXEMPLAR_FILTER", "Always_On").unwrap();
/// assert_eq!(filter, ExemplarFilter::AlwaysOn);
/// assert_eq!(ExemplarFilter::default(), ExemplarFilter::TraceBased);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExemplarFilter {
    /// Every measurement (`always_on`). Outside a sampled span the exemplar has no trace or
    /// span id, and OpenMetrics shows it with empty labels (`# {} 0.5 1700000000.123`): an
    /// unsampled span is never exported, so its ids would lead nowhere.
    AlwaysOn,
    /// None: exemplars are not captured at all (`always_off`).
    AlwaysOff,
    /// Measurements made while a sampled span is current (`trace_based`), the specification's
    /// default.
    #[default]
    TraceBased,
}

impl ExemplarFilter {
    /// Parses `always_on`, `always_off` or `trace_based`, case-insensitive.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `variable` for any other value.
    pub fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "always_on" => Ok(ExemplarFilter::AlwaysOn),
            "always_off" => Ok(ExemplarFilter::AlwaysOff),
            "trace_based" => Ok(ExemplarFilter::TraceBased),
            _ => Err(ConfigError::new(
                variable,
                raw,
                "always_on, always_off or trace_based",
            )),
        }
    }
}

/// The sampled span current on this thread, if any.
#[inline]
fn sampled_span() -> Option<(TraceId, SpanId)> {
    Context::map_current(|cx| {
        if !cx.has_active_span() {
            return None;
        }
        let span = cx.span();
        let context = span.span_context();
        context
            .is_sampled()
            .then(|| (context.trace_id(), context.span_id()))
    })
}

/// A wall clock cheap enough for the hot path: the coarse monotonic clock (a few ns, ms
/// resolution) offset from a wall-clock reading taken once.
#[derive(Debug, Clone, Copy)]
struct TimeBase {
    wall_seconds: f64,
    monotonic: coarsetime::Instant,
}

impl TimeBase {
    fn now() -> Self {
        TimeBase {
            wall_seconds: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            monotonic: coarsetime::Instant::now_without_cache_update(),
        }
    }

    #[inline]
    fn offset_nanos(&self) -> u64 {
        coarsetime::Instant::now_without_cache_update()
            .duration_since(self.monotonic)
            .as_nanos()
    }

    fn seconds(&self, offset_nanos: u64) -> f64 {
        self.wall_seconds + offset_nanos as f64 / 1e9
    }
}

/// The exemplar slots of one series: one per bucket (the last for `+Inf`), or one.
#[derive(Debug)]
pub(crate) struct SeriesExemplars {
    /// Made at the first exemplar kept: most series never have one.
    slots: OnceLock<Box<[Slot]>>,
    metric: Arc<Shared>,
}

/// What the series of one metric share.
#[derive(Debug)]
struct Shared {
    buckets: &'static [f64],
    time: TimeBase,
    /// [`ExemplarFilter::AlwaysOn`]: keep values outside sampled spans too.
    always: bool,
    /// Whether any series has kept an exemplar: until then a render looks none up.
    kept: AtomicBool,
}

impl SeriesExemplars {
    fn new(metric: &MetricExemplars) -> Self {
        SeriesExemplars {
            slots: OnceLock::new(),
            metric: Arc::clone(&metric.shared),
        }
    }

    /// Keeps `value` as this series' exemplar if a sampled span is current, or always (then
    /// without ids outside one) under [`ExemplarFilter::AlwaysOn`].
    #[inline]
    pub(crate) fn offer(&self, value: f64) {
        match sampled_span() {
            Some((trace_id, span_id)) => self.write(value, trace_id, span_id),
            None if self.metric.always => self.write(value, TraceId::INVALID, SpanId::INVALID),
            None => {}
        }
    }

    fn write(&self, value: f64, trace_id: TraceId, span_id: SpanId) {
        // Bucket i holds values in (bounds[i-1], bounds[i]]; NaN lands in +Inf.
        let metric = &*self.metric;
        let bucket = metric.buckets.partition_point(|bound| *bound < value);
        let slots = self.slots.get_or_init(|| {
            metric.kept.store(true, Ordering::Relaxed);
            (0..=metric.buckets.len())
                .map(|_| Slot::default())
                .collect()
        });
        slots[bucket].write(value, trace_id, span_id, metric.time.offset_nanos());
    }

    /// The exemplar of bucket `index` (0 for a counter).
    pub(crate) fn get(&self, index: usize) -> Option<Exemplar> {
        let (value, trace_id, span_id, offset) = self.slots.get()?.get(index)?.read()?;
        Some(Exemplar {
            value,
            trace_id,
            span_id,
            timestamp: self.metric.time.seconds(offset),
        })
    }
}

/// The exemplars of one catalog metric, by label values in catalog order.
#[derive(Debug)]
pub(crate) struct MetricExemplars {
    def: &'static MetricDef,
    series: RwLock<HashMap<Box<[u8]>, Arc<SeriesExemplars>>>,
    limit: usize,
    shared: Arc<Shared>,
}

impl MetricExemplars {
    /// The slots of the series with these attributes, created if there is room. For bound
    /// handles, resolved once at bind time.
    pub(crate) fn series(&self, attributes: &[KeyValue]) -> Option<Arc<SeriesExemplars>> {
        let key = series_key(self.def, |name| {
            attributes
                .iter()
                .find(|kv| kv.key.as_str() == name)
                .map(|kv| kv.value.as_str())
        })?;
        {
            let series = self.read();
            if let Some(found) = series.get(&key) {
                return Some(Arc::clone(found));
            }
            if series.len() >= self.limit {
                return None;
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if series.len() >= self.limit && !series.contains_key(&key) {
            return None;
        }
        let created = series
            .entry(key)
            .or_insert_with(|| Arc::new(SeriesExemplars::new(self)));
        Some(Arc::clone(created))
    }

    /// The slots of an exposed series, looked up by its label (name, value) pairs.
    pub(crate) fn lookup<'a>(
        &self,
        label: impl Fn(&str) -> Option<std::borrow::Cow<'a, str>>,
    ) -> Option<Arc<SeriesExemplars>> {
        if !self.shared.kept.load(Ordering::Relaxed) {
            return None;
        }
        self.find(label)
    }

    /// The slots of a series, looked up by its label (name, value) pairs whether or not
    /// any exemplar was kept yet: for callers that keep what they find.
    pub(crate) fn find<'a>(
        &self,
        label: impl Fn(&str) -> Option<std::borrow::Cow<'a, str>>,
    ) -> Option<Arc<SeriesExemplars>> {
        let key = series_key(self.def, label)?;
        self.read().get(&key).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<[u8]>, Arc<SeriesExemplars>>> {
        self.series.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Catalog labels the semantic conventions make conditional: a series may lack them
/// (`http.route` when no route matched, `error.type` when the request succeeded).
const CONDITIONAL_LABELS: &[&str] = &[catalog::label::HTTP_ROUTE, catalog::label::HTTP_ERROR_TYPE];

/// Length prefix of an absent conditional label: no value is this long.
const ABSENT: u32 = u32::MAX;

/// Label values in catalog order, each length-prefixed so no two label sets share a key.
/// `None` when a label other than a conditional one is missing: the series is not ours.
fn series_key<'a>(
    def: &MetricDef,
    label: impl Fn(&str) -> Option<std::borrow::Cow<'a, str>>,
) -> Option<Box<[u8]>> {
    let mut key = Vec::new();
    for name in def.labels {
        match label(name) {
            Some(value) => {
                key.extend_from_slice(&(value.len() as u32).to_le_bytes());
                key.extend_from_slice(value.as_bytes());
            }
            None if CONDITIONAL_LABELS.contains(name) => {
                key.extend_from_slice(&ABSENT.to_le_bytes())
            }
            None => return None,
        }
    }
    Some(key.into_boxed_slice())
}

/// The exemplars of every catalog counter and histogram of one telemetry instance.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExemplarStore {
    by_name: Arc<HashMap<&'static str, Arc<MetricExemplars>>>,
}

impl ExemplarStore {
    /// A store for the catalog, keeping at most `limit` series per metric, capturing what
    /// `filter` lets through. [`ExemplarFilter::AlwaysOff`] gives the empty store: no
    /// series gets slots, so recording does not even check for a span.
    pub(crate) fn new(limit: usize, filter: ExemplarFilter) -> Self {
        if filter == ExemplarFilter::AlwaysOff {
            return ExemplarStore::default();
        }
        let always = filter == ExemplarFilter::AlwaysOn;
        let time = TimeBase::now();
        let by_name = catalog::ALL
            .iter()
            .filter(|def| def.kind != MetricKind::Gauge)
            .map(|def| {
                let metric = MetricExemplars {
                    def,
                    series: RwLock::default(),
                    limit,
                    shared: Arc::new(Shared {
                        buckets: def.buckets,
                        time,
                        always,
                        kept: AtomicBool::new(false),
                    }),
                };
                (def.prometheus_name, Arc::new(metric))
            })
            .collect();
        ExemplarStore {
            by_name: Arc::new(by_name),
        }
    }

    /// Frees the slots of series no handle holds any more (removed or idle), so their
    /// places go to new series.
    pub(crate) fn forget_unused(&self) {
        for metric in self.by_name.values() {
            let mut series = metric
                .series
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            series.retain(|_, slots| Arc::strong_count(slots) > 1);
        }
    }

    /// The exemplars of the metric exposed as `prometheus_name`.
    pub(crate) fn metric(&self, prometheus_name: &str) -> Option<&Arc<MetricExemplars>> {
        self.by_name.get(prometheus_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};

    fn span_context(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes([0xab; 16]),
            SpanId::from_bytes([0xcd; 8]),
            flags,
            false,
            TraceState::default(),
        ))
    }

    #[test]
    fn captures_only_inside_a_sampled_span_into_the_right_bucket() {
        let store = ExemplarStore::new(10, ExemplarFilter::TraceBased);
        let metric = store
            .metric(catalog::PRODUCER_LATENCY.prometheus_name)
            .unwrap();
        let attributes = [KeyValue::new(catalog::label::TOPIC, "orders")];
        let series = metric.series(&attributes).unwrap();

        series.offer(0.003);
        {
            let _unsampled = span_context(false).attach();
            series.offer(0.003);
        }
        assert!((0..=11).all(|i| series.get(i).is_none()));

        let _sampled = span_context(true).attach();
        series.offer(0.003); // (0.001, 0.005]: bucket 1
        series.offer(99.0); // +Inf: bucket 11
        let exemplar = series.get(1).unwrap();
        assert_eq!(exemplar.value, 0.003);
        assert_eq!(exemplar.trace_id, TraceId::from_bytes([0xab; 16]));
        assert_eq!(exemplar.span_id, SpanId::from_bytes([0xcd; 8]));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (exemplar.timestamp - now).abs() < 5.0,
            "{} vs {now}",
            exemplar.timestamp
        );
        assert_eq!(series.get(11).unwrap().value, 99.0);
        assert!(series.get(0).is_none() && series.get(2).is_none());

        // Binding the same label set again finds the same slots.
        let again = metric.series(&attributes).unwrap();
        again.offer(0.2);
        assert_eq!(series.get(6).unwrap().value, 0.2); // (0.1, 0.25]
    }

    #[test]
    fn series_beyond_the_limit_get_no_slots() {
        let store = ExemplarStore::new(2, ExemplarFilter::TraceBased);
        let metric = store.metric(catalog::CACHE_HITS.prometheus_name).unwrap();
        assert!(metric.series(&[]).is_some());
        let errors = store.metric(catalog::S3_ERRORS.prometheus_name).unwrap();
        let attrs = |op: &'static str| {
            [
                KeyValue::new(catalog::label::OPERATION, op),
                KeyValue::new(catalog::label::ERROR_TYPE, "timeout"),
            ]
        };
        assert!(errors.series(&attrs("get")).is_some());
        assert!(errors.series(&attrs("put")).is_some());
        assert!(errors.series(&attrs("list")).is_none());
        assert!(errors.series(&attrs("get")).is_some());
        assert_eq!(errors.read().len(), 2);
        // A missing catalog label means the series is not ours: no slots.
        assert!(errors.series(&attrs("get")[..1]).is_none());
    }

    #[test]
    fn always_on_keeps_values_outside_spans_without_ids_and_always_off_keeps_none() {
        let store = ExemplarStore::new(10, ExemplarFilter::AlwaysOn);
        let metric = store
            .metric(catalog::PRODUCER_LATENCY.prometheus_name)
            .unwrap();
        let series = metric
            .series(&[KeyValue::new(catalog::label::TOPIC, "orders")])
            .unwrap();
        series.offer(0.003);
        let kept = series.get(1).unwrap();
        assert_eq!((kept.value, kept.trace_id), (0.003, TraceId::INVALID));
        assert_eq!(kept.span_id, SpanId::INVALID);
        {
            // Unsampled: kept, but its ids would lead nowhere.
            let _unsampled = span_context(false).attach();
            series.offer(0.004);
            assert_eq!(series.get(1).unwrap().trace_id, TraceId::INVALID);
        }
        let _sampled = span_context(true).attach();
        series.offer(0.002);
        assert_eq!(
            series.get(1).unwrap().trace_id,
            TraceId::from_bytes([0xab; 16])
        );

        let off = ExemplarStore::new(10, ExemplarFilter::AlwaysOff);
        assert!(
            off.metric(catalog::PRODUCER_LATENCY.prometheus_name)
                .is_none()
        );
    }

    #[test]
    fn filter_names_parse_case_insensitively_and_bad_ones_name_the_variable() {
        for (raw, want) in [
            ("always_on", ExemplarFilter::AlwaysOn),
            ("ALWAYS_OFF", ExemplarFilter::AlwaysOff),
            (" Trace_Based ", ExemplarFilter::TraceBased),
        ] {
            assert_eq!(ExemplarFilter::parse("V", raw).unwrap(), want);
        }
        let err = ExemplarFilter::parse("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes").unwrap_err();
        assert_eq!(err.variable, "OTEL_METRICS_EXEMPLAR_FILTER");
        assert_eq!(err.value, "sometimes");
    }

    #[test]
    fn a_conditional_label_may_be_absent_and_stays_apart_from_an_empty_value() {
        let store = ExemplarStore::new(10, ExemplarFilter::TraceBased);
        let metric = store
            .metric(catalog::HTTP_SERVER_REQUEST_DURATION.prometheus_name)
            .unwrap();
        let base = [
            KeyValue::new(catalog::label::HTTP_REQUEST_METHOD, "GET"),
            KeyValue::new(catalog::label::HTTP_RESPONSE_STATUS_CODE, 200),
            KeyValue::new(catalog::label::URL_SCHEME, "http"),
        ];
        let absent = metric.series(&base).unwrap();
        let mut with_empty = base.to_vec();
        with_empty.push(KeyValue::new(catalog::label::HTTP_ERROR_TYPE, ""));
        with_empty.push(KeyValue::new(catalog::label::HTTP_ROUTE, ""));
        let empty = metric.series(&with_empty).unwrap();
        assert!(!Arc::ptr_eq(&absent, &empty));
        // Without the required scheme the series is not ours.
        assert!(metric.series(&base[..2]).is_none());
    }
}
