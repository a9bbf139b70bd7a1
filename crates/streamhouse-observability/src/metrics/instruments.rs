//! Instruments built from catalog entries, so a recorder never spells a name or a bucket,
//! and that offer every measurement to the exemplar store.
//!
//! Recording is through bound handles only: a label set is resolved once (bind), and a
//! record call goes straight to its series' aggregator. Label sets past the cardinality limit share one handle
//! bound to the SDK's overflow series.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{self as otel, Meter};

use super::bound_cache::{BoundCache, Entry, Retire};
use super::value_bound::truncate_label_value;
use crate::catalog::{MetricDef, MetricKind};
use crate::exemplars::{ExemplarStore, MetricExemplars, SeriesExemplars};
use crate::series::Caches;

/// What every recorder builds its instruments from.
pub(crate) struct Instruments<'a> {
    pub(crate) meter: &'a Meter,
    pub(crate) exemplars: &'a ExemplarStore,
    pub(crate) cardinality_limit: usize,
    /// Longest label value in bytes; see [`truncate_label_value`].
    pub(crate) max_label_value_bytes: usize,
    /// Where caches register for removal and idle expiry.
    pub(crate) caches: &'a Caches,
}

impl Instruments<'_> {
    pub(crate) fn counter(&self, def: &MetricDef) -> Counter {
        Counter::new(self.meter, def, self.exemplars)
    }

    pub(crate) fn histogram(&self, def: &MetricDef) -> Histogram {
        Histogram::new(self.meter, def, self.exemplars)
    }

    pub(crate) fn up_down_counter(&self, def: &MetricDef) -> UpDownCounter {
        UpDownCounter::new(self.meter, def)
    }

    pub(crate) fn labeled<const N: usize>(&self, def: &'static MetricDef) -> LabeledCounter<N> {
        assert_eq!(def.labels.len(), N, "{}", def.otel_name);
        LabeledCounter {
            counter: self.counter(def),
            def,
            bound: self.cache(def.labels, true),
            max_value_bytes: self.max_label_value_bytes,
        }
    }

    /// A cache of handles keyed by values of label `keys` (empty when the key is not in
    /// catalog order: then removal by label does not reach it); `expires` for handles of
    /// counters and histograms.
    pub(crate) fn cache<V: Send + Sync + 'static>(
        &self,
        keys: &'static [&'static str],
        expires: bool,
    ) -> Arc<BoundCache<V>> {
        let cache = Arc::new(BoundCache::new(self.cardinality_limit, keys, expires));
        self.caches.register(Arc::clone(&cache) as Arc<dyn Retire>);
        cache
    }
}

/// The attribute set of the SDK's overflow series (`otel_metric_overflow="true"` on
/// `/metrics`). Binding it directly always gives that series' handle: the SDK's table is
/// full whenever a cache overflows, and even if it were not, the series bound is the one
/// the SDK's own overflow writes to.
fn overflow_attributes() -> [KeyValue; 1] {
    [KeyValue::new("otel.metric.overflow", true)]
}

/// Attributes for label `values` given in catalog order, sorted by key: the SDK keeps one
/// entry per series when attributes arrive sorted, two otherwise. Values must be cut to
/// their bound already. Each value is one shared string, so the SDK's series table and the
/// series store hold it once between them.
pub(crate) fn attributes<const N: usize>(
    keys: &[&'static str],
    values: [&str; N],
) -> [KeyValue; N] {
    let mut attributes: [KeyValue; N] =
        std::array::from_fn(|i| KeyValue::new(keys[i], Arc::<str>::from(values[i])));
    attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    attributes
}

/// A counter recorded with label values per call, through cached bound handles.
#[derive(Debug, Clone)]
pub(crate) struct LabeledCounter<const N: usize> {
    counter: Counter,
    def: &'static MetricDef,
    bound: Arc<BoundCache<BoundCounter>>,
    max_value_bytes: usize,
}

impl<const N: usize> LabeledCounter<N> {
    /// Adds `value` to the series of label `values`, in catalog order.
    #[inline]
    pub(crate) fn add(&self, values: [&str; N], value: u64) {
        let values = values.map(|v| truncate_label_value(v, self.max_value_bytes));
        self.bound.with(
            &values,
            || self.bind_truncated(values),
            || self.counter.bind_overflow(),
            |c| c.add(value),
        );
    }

    /// A handle on the series of label `values`, in catalog order, for callers that keep it.
    pub(crate) fn hold(&self, values: [&str; N]) -> HeldCounter<N> {
        let values = values.map(|v| truncate_label_value(v, self.max_value_bytes));
        let entry = self.bound.entry(
            &values,
            || self.bind_truncated(values),
            || self.counter.bind_overflow(),
        );
        HeldCounter {
            bound: entry.value().clone(),
            entry,
            values: Arc::new(values.map(Box::from)),
            counter: self.clone(),
        }
    }

    fn bind_truncated(&self, values: [&str; N]) -> BoundCounter {
        self.counter.bind(&attributes(self.def.labels, values))
    }
}

/// A labeled counter's handle on one label set, kept by a caller. When its series is
/// removed or idle, it records through the cache, which binds the series anew.
#[derive(Debug, Clone)]
pub(crate) struct HeldCounter<const N: usize> {
    /// The entry's handle, kept here too: the record does not wait for the entry's state.
    bound: BoundCounter,
    entry: Arc<Entry<BoundCounter>>,
    values: Arc<[Box<str>; N]>,
    counter: LabeledCounter<N>,
}

impl<const N: usize> HeldCounter<N> {
    #[inline]
    pub(crate) fn add(&self, value: u64) {
        match self.entry.use_live() {
            true => self.bound.add(value),
            false => self.add_retired(value),
        }
    }

    /// Out of line: the hot path stays one branch and the bound record.
    #[cold]
    #[inline(never)]
    fn add_retired(&self, value: u64) {
        self.counter
            .add(self.values.each_ref().map(|v| &**v), value);
    }
}

/// A `u64` counter of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct Counter {
    sdk: otel::Counter<u64>,
    exemplars: Option<Arc<MetricExemplars>>,
}

impl Counter {
    pub(crate) fn new(meter: &Meter, def: &MetricDef, exemplars: &ExemplarStore) -> Self {
        debug_assert_eq!(def.kind, MetricKind::Counter, "{}", def.otel_name);
        let sdk = meter
            .u64_counter(def.otel_name)
            .with_unit(def.unit)
            .with_description(def.description)
            .build();
        Counter {
            sdk,
            exemplars: exemplars.metric(def.prometheus_name).cloned(),
        }
    }

    /// Binds the series and exposes it at 0 from now on, so `rate()` works from the
    /// first event: the SDK reports a delta series only once it was updated.
    pub(crate) fn bind(&self, attributes: &[KeyValue]) -> BoundCounter {
        let sdk = self.sdk.bind(attributes);
        sdk.add(0);
        BoundCounter {
            sdk,
            exemplars: self.exemplars.as_ref().and_then(|e| e.series(attributes)),
        }
    }

    /// The overflow series' handle; it keeps no exemplars (its label values are not ours).
    pub(crate) fn bind_overflow(&self) -> BoundCounter {
        BoundCounter {
            sdk: self.sdk.bind(&overflow_attributes()),
            exemplars: None,
        }
    }
}

/// A counter bound to one label set.
#[derive(Debug, Clone)]
pub(crate) struct BoundCounter {
    sdk: otel::BoundCounter<u64>,
    exemplars: Option<Arc<SeriesExemplars>>,
}

impl BoundCounter {
    #[inline]
    pub(crate) fn add(&self, value: u64) {
        self.sdk.add(value);
        if let Some(exemplars) = &self.exemplars {
            exemplars.offer(value as f64);
        }
    }
}

/// An `f64` histogram of the catalog, with the catalog's buckets.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    sdk: otel::Histogram<f64>,
    exemplars: Option<Arc<MetricExemplars>>,
}

impl Histogram {
    pub(crate) fn new(meter: &Meter, def: &MetricDef, exemplars: &ExemplarStore) -> Self {
        debug_assert_eq!(def.kind, MetricKind::Histogram, "{}", def.otel_name);
        let sdk = meter
            .f64_histogram(def.otel_name)
            .with_unit(def.unit)
            .with_description(def.description)
            .with_boundaries(def.buckets.to_vec())
            .build();
        Histogram {
            sdk,
            exemplars: exemplars.metric(def.prometheus_name).cloned(),
        }
    }

    pub(crate) fn bind(&self, attributes: &[KeyValue]) -> BoundHistogram {
        BoundHistogram {
            sdk: self.sdk.bind(attributes),
            exemplars: self.exemplars.as_ref().and_then(|e| e.series(attributes)),
        }
    }

    /// The overflow series' handle; it keeps no exemplars (its label values are not ours).
    pub(crate) fn bind_overflow(&self) -> BoundHistogram {
        BoundHistogram {
            sdk: self.sdk.bind(&overflow_attributes()),
            exemplars: None,
        }
    }
}

/// A histogram bound to one label set.
#[derive(Debug, Clone)]
pub(crate) struct BoundHistogram {
    sdk: otel::BoundHistogram<f64>,
    exemplars: Option<Arc<SeriesExemplars>>,
}

impl BoundHistogram {
    #[inline]
    pub(crate) fn record(&self, value: f64) {
        self.sdk.record(value);
        if let Some(exemplars) = &self.exemplars {
            exemplars.offer(value);
        }
    }
}

/// An `i64` up-down counter of the catalog (a gauge on `/metrics`). No exemplars: a gauge
/// has none in OpenMetrics.
#[derive(Debug, Clone)]
pub(crate) struct UpDownCounter {
    sdk: otel::UpDownCounter<i64>,
}

impl UpDownCounter {
    pub(crate) fn new(meter: &Meter, def: &MetricDef) -> Self {
        debug_assert_eq!(def.kind, MetricKind::Gauge, "{}", def.otel_name);
        let sdk = meter
            .i64_up_down_counter(def.otel_name)
            .with_unit(def.unit)
            .with_description(def.description)
            .build();
        UpDownCounter { sdk }
    }

    pub(crate) fn bind(&self, attributes: &[KeyValue]) -> otel::BoundUpDownCounter<i64> {
        self.sdk.bind(attributes)
    }

    /// The overflow series' handle.
    pub(crate) fn bind_overflow(&self) -> otel::BoundUpDownCounter<i64> {
        self.sdk.bind(&overflow_attributes())
    }
}
