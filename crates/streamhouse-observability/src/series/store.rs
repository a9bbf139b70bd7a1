//! The cumulative store: the series every reader renders, built from the SDK's deltas.
//!
//! Counters, histograms and up-down counters reach it as deltas and are added up here;
//! gauges and observable instruments reach it cumulative and replace what it held. So a
//! series lives here, not in the SDK, and leaves when it is removed or idle: the SDK forgets
//! a delta series once it is neither updated nor bound.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use hashbrown::HashTable;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, Metric, MetricData, ResourceMetrics,
};

use crate::exemplars::{ExemplarStore, MetricExemplars, SeriesExemplars};
use crate::prometheus::rendered::RenderedLabels;
use crate::prometheus::write::Number;

/// What a stream's series are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum StreamKind {
    /// A monotonic sum.
    Counter,
    /// A sum that may go down (an up-down counter).
    UpDown,
    /// A last value.
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
}

impl StreamKind {
    /// Series of this kind leave when idle; gauges and up-down counters hold a level their
    /// owners keep, so a quiet one is not a dead one.
    fn expires(self) -> bool {
        matches!(self, StreamKind::Counter | StreamKind::Histogram)
    }
}

/// The number type of a stream, in the order streams of one name are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum NumberType {
    U64,
    I64,
    F64,
}

/// An explicit-bucket histogram's cumulative state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramValue {
    /// Shared by the series of a stream: one copy per bucket layout.
    pub(crate) bounds: Arc<[f64]>,
    /// One per bound, then the `+Inf` bucket; not cumulative.
    pub(crate) counts: Box<[u64]>,
    pub(crate) count: u64,
    pub(crate) sum: Number,
    pub(crate) min: Option<Number>,
    pub(crate) max: Option<Number>,
}

impl HistogramValue {
    fn of<T: Copy + Into<Number>>(point: &HistogramDataPoint<T>, bounds: Arc<[f64]>) -> Self {
        HistogramValue {
            bounds,
            counts: point.bucket_counts().collect(),
            count: point.count(),
            sum: point.sum().into(),
            min: point.min().map(Into::into),
            max: point.max().map(Into::into),
        }
    }

    fn add<T: Copy + Into<Number>>(&mut self, delta: &HistogramDataPoint<T>, bounds: Arc<[f64]>) {
        if !Arc::ptr_eq(&self.bounds, &bounds) || self.counts.len() != delta.bucket_counts().count()
        {
            *self = HistogramValue::of(delta, bounds);
            return;
        }
        for (count, add) in self.counts.iter_mut().zip(delta.bucket_counts()) {
            *count += add;
        }
        self.count += delta.count();
        self.sum = self.sum.add(delta.sum().into());
        self.min = Number::pick(
            self.min,
            delta.min().map(Into::into),
            std::cmp::Ordering::Less,
        );
        self.max = Number::pick(
            self.max,
            delta.max().map(Into::into),
            std::cmp::Ordering::Greater,
        );
    }
}

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
impl HistogramValue {
    /// Adds `other`, recorded after this; a different bucket layout replaces this one.
    fn merge(&mut self, other: HistogramValue) {
        if !Arc::ptr_eq(&self.bounds, &other.bounds) || self.counts.len() != other.counts.len() {
            *self = other;
            return;
        }
        for (count, add) in self.counts.iter_mut().zip(other.counts.iter()) {
            *count += add;
        }
        self.count += other.count;
        self.sum = self.sum.add(other.sum);
        self.min = Number::pick(self.min, other.min, std::cmp::Ordering::Less);
        self.max = Number::pick(self.max, other.max, std::cmp::Ordering::Greater);
    }
}

/// What a series holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Number(Number),
    /// Boxed: a counter's value stays two words.
    Histogram(Box<HistogramValue>),
}

/// One series.
#[derive(Debug)]
pub(crate) struct Series {
    /// Sorted by key.
    pub(crate) attributes: Box<[KeyValue]>,
    /// When this series began: a series that returns after removal begins again.
    pub(crate) start: SystemTime,
    pub(crate) value: Value,
    /// The last collection that saw it change.
    last_seen: Instant,
    /// Put by the collection being merged (streams the SDK gives cumulative).
    put: bool,
    /// The exemplar slots of a catalog series of StreamHouse's own scope, found when the
    /// series is stored (its handle was bound before it recorded); weak, so removal and
    /// idle expiry free them. Dangling for every other series.
    exemplars: Weak<SeriesExemplars>,
}

impl Series {
    /// Its exemplar slots, if it is a catalog series that has them.
    pub(crate) fn exemplars(&self) -> Option<Arc<SeriesExemplars>> {
        self.exemplars.upgrade()
    }

    /// Its value, if it is a number.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn value_number(&self) -> Option<Number> {
        match self.value {
            Value::Number(number) => Some(number),
            Value::Histogram(_) => None,
        }
    }
}

/// One instrument's stream of series.
///
/// A series keeps its slot from collection to collection, so what a renderer derives per
/// slot (rendered labels, sort order) stays valid until the slot changes: slots filled and
/// emptied since the last look are reported by [`Stream::take_changes`].
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) name: Cow<'static, str>,
    pub(crate) description: Cow<'static, str>,
    pub(crate) unit: Cow<'static, str>,
    pub(crate) kind: StreamKind,
    pub(crate) number: NumberType,
    /// `None` where a series was removed, until a new one takes the slot.
    slots: Vec<Option<Series>>,
    /// Slot numbers by attribute hash.
    index: HashTable<u32>,
    /// Empty slots, filled before the slab grows.
    free: Vec<u32>,
    live: usize,
    /// Slots filled since [`Stream::take_changes`], and whether any was emptied.
    added: Vec<u32>,
    removed: bool,
    /// The slot of each data point of the last collection, by its place in it: the SDK
    /// hands series over in the same order while its table does not change, so a series
    /// is found without hashing its attributes.
    positions: Vec<u32>,
    /// The SDK hands it over cumulative: each collection replaces its series.
    cumulative: bool,
    /// Whether this collection has replaced the series (streams the SDK gives cumulative).
    replaced: bool,
    /// What the exposition keeps of its series across scrapes.
    pub(crate) rendered: RenderedLabels,
}

/// What changed in a stream's slots since the last look.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Slots holding a series that is new since then: sorted, each once.
    pub(crate) added: Vec<u32>,
    /// Whether any slot was emptied since then.
    pub(crate) removed: bool,
}

impl Stream {
    fn new(metric: &Metric, kind: StreamKind, number: NumberType, cumulative: bool) -> Self {
        Stream {
            name: Cow::Owned(metric.name().to_owned()),
            description: Cow::Owned(metric.description().to_owned()),
            unit: Cow::Owned(metric.unit().to_owned()),
            kind,
            number,
            slots: Vec::new(),
            index: HashTable::new(),
            free: Vec::new(),
            live: 0,
            added: Vec::new(),
            removed: false,
            positions: Vec::new(),
            cumulative,
            replaced: false,
            rendered: RenderedLabels::default(),
        }
    }

    /// Its series, in slot order.
    pub(crate) fn series(&self) -> impl Iterator<Item = &Series> {
        self.slots.iter().flatten()
    }

    /// The series in `slot`, if one is there.
    pub(crate) fn slot(&self, slot: u32) -> Option<&Series> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// How many series it holds.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Every filled slot, ascending.
    pub(crate) fn filled_slots(&self) -> Vec<u32> {
        (0..self.slots.len() as u32)
            .filter(|&slot| self.slots[slot as usize].is_some())
            .collect()
    }

    /// Whether the SDK hands it over cumulative (observable instruments and gauges), so
    /// each collection replaces its series rather than adding to them.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn arrives_cumulative(&self) -> bool {
        self.cumulative
    }

    /// Whether `other` is the same instrument's stream (in another store).
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn same_instrument(&self, other: &Stream) -> bool {
        self.name == other.name
            && self.description == other.description
            && self.unit == other.unit
            && self.kind == other.kind
            && self.number == other.number
            && self.cumulative == other.cumulative
    }

    /// Adds `series`, recorded after what this stream holds of it.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    fn absorb(&mut self, series: Series, hasher: &hashbrown::DefaultHashBuilder) {
        let hash = hash_attributes(hasher, series.attributes.iter());
        let Some(slot) = self.find(hash, || series.attributes.iter()) else {
            self.insert(hash, series, hasher);
            return;
        };
        let held = self.slots[slot].as_mut().expect("found slots are filled");
        held.last_seen = series.last_seen;
        match (&mut held.value, series.value) {
            (Value::Number(sum), Value::Number(add)) => *sum = sum.add(add),
            (Value::Histogram(sum), Value::Histogram(add)) => sum.merge(*add),
            (value, other) => *value = other,
        }
    }

    /// Whether it is a monotonic sum.
    pub(crate) fn is_counter(&self) -> bool {
        self.kind == StreamKind::Counter
    }

    /// The slots filled, and whether any was emptied, since the last call.
    pub(crate) fn take_changes(&mut self) -> Changes {
        let mut added = std::mem::take(&mut self.added);
        added.sort_unstable();
        added.dedup();
        added.retain(|&slot| self.slots[slot as usize].is_some());
        Changes {
            added,
            removed: std::mem::take(&mut self.removed),
        }
    }

    fn find<'a, I: Iterator<Item = &'a KeyValue>>(
        &self,
        hash: u64,
        attributes: impl Fn() -> I,
    ) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&slot| {
                slots[slot as usize]
                    .as_ref()
                    .is_some_and(|s| s.attributes.iter().eq(attributes()))
            })
            .map(|&slot| slot as usize)
    }

    /// Stores a new series; returns its slot.
    fn insert(&mut self, hash: u64, series: Series, hasher: &hashbrown::DefaultHashBuilder) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(series);
                slot
            }
            None => {
                self.slots.push(Some(series));
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(hash, slot, |&s| hash_slot(hasher, slots, s));
        self.live += 1;
        self.added.push(slot);
        slot
    }

    /// Empties every slot whose series `drop` picks; returns how many.
    fn remove_where(
        &mut self,
        hasher: &hashbrown::DefaultHashBuilder,
        mut drop: impl FnMut(&Series) -> bool,
    ) -> usize {
        let mut removed = 0;
        for slot in 0..self.slots.len() {
            let Some(series) = self.slots[slot].as_ref().filter(|s| drop(s)) else {
                continue;
            };
            let hash = hash_attributes(hasher, series.attributes.iter());
            if let Ok(entry) = self.index.find_entry(hash, |&s| s as usize == slot) {
                entry.remove();
            }
            self.slots[slot] = None;
            self.free.push(slot as u32);
            removed += 1;
        }
        if removed > 0 {
            self.live -= removed;
            self.removed = true;
            // Mostly empty: the slab is rebuilt, and renderers see every slot anew.
            if self.live < self.slots.len() / 2 && self.slots.len() > 64 {
                self.compact(hasher);
            }
        }
        removed
    }

    fn compact(&mut self, hasher: &hashbrown::DefaultHashBuilder) {
        self.slots.retain(Option::is_some);
        self.slots.shrink_to_fit();
        self.free = Vec::new();
        self.index = HashTable::with_capacity(self.slots.len());
        let slots = &self.slots;
        for slot in 0..slots.len() as u32 {
            let hash = hash_slot(hasher, slots, slot);
            self.index
                .insert_unique(hash, slot, |&s| hash_slot(hasher, slots, s));
        }
        self.added = (0..self.slots.len() as u32).collect();
    }
}

fn hash_slot(hasher: &hashbrown::DefaultHashBuilder, slots: &[Option<Series>], slot: u32) -> u64 {
    let series = slots[slot as usize]
        .as_ref()
        .expect("an indexed slot is filled");
    hash_attributes(hasher, series.attributes.iter())
}

/// Where a data point of a collection goes: its scope and stream, and its place among its
/// metric's data points.
#[derive(Debug, Clone, Copy)]
struct At {
    scope: usize,
    stream: usize,
    position: usize,
}

/// Whether `attributes` are `held`'s by identity: the same keys and the very same strings
/// (the SDK clones a series' shared strings into each collection), other values equal.
/// Reads no string's text, so a miss costs little; a false answer only means "look up".
fn same_strings<'a>(held: &[KeyValue], mut attributes: impl Iterator<Item = &'a KeyValue>) -> bool {
    let same = |a: &str, b: &str| std::ptr::eq(a, b);
    let all = held.iter().all(|kv| {
        attributes.next().is_some_and(|other| {
            same(kv.key.as_str(), other.key.as_str())
                && match (&kv.value, &other.value) {
                    (opentelemetry::Value::String(a), opentelemetry::Value::String(b)) => {
                        same(a.as_str(), b.as_str())
                    }
                    (a, b) => a == b,
                }
        })
    });
    all && attributes.next().is_none()
}

/// The hash of an attribute list, the same for a slice and for an iterator over one.
fn hash_attributes<'a>(
    hasher: &hashbrown::DefaultHashBuilder,
    attributes: impl Iterator<Item = &'a KeyValue>,
) -> u64 {
    let mut state = hasher.build_hasher();
    let mut len = 0_usize;
    for kv in attributes {
        kv.hash(&mut state);
        len += 1;
    }
    state.write_usize(len);
    state.finish()
}

/// One instrumentation scope's streams.
#[derive(Debug)]
pub(crate) struct ScopeStreams {
    pub(crate) scope: InstrumentationScope,
    pub(crate) streams: Vec<Stream>,
}

/// Every series of one meter provider, cumulative.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) resource: Resource,
    pub(crate) scopes: Vec<ScopeStreams>,
    /// Streams of this collection no exposition can express (exponential histograms), with
    /// their series counts.
    pub(crate) unsupported: Vec<(Cow<'static, str>, u64)>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Reused to sort attributes that do not arrive sorted.
    scratch: Vec<KeyValue>,
    /// Every bucket layout seen, shared by the histogram series that use it.
    layouts: Vec<Arc<[f64]>>,
    /// Where new series of the catalog find their exemplar slots.
    exemplars: ExemplarStore,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(ExemplarStore::default())
    }
}

impl Store {
    /// An empty store whose catalog series find their exemplar slots in `exemplars`.
    pub(crate) fn new(exemplars: ExemplarStore) -> Self {
        Store {
            resource: Resource::builder_empty().build(),
            scopes: Vec::new(),
            unsupported: Vec::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            scratch: Vec::new(),
            layouts: Vec::new(),
            exemplars,
        }
    }

    /// The exemplars of `stream` in `scope`, when it is a catalog metric of StreamHouse's own
    /// scope.
    fn catalog_exemplars(&self, scope: usize, stream: usize) -> Option<Arc<MetricExemplars>> {
        let scope = &self.scopes[scope];
        let own = scope.scope.name() == crate::SCOPE_NAME;
        own.then(|| self.exemplars.metric(&scope.streams[stream].name))
            .flatten()
            .cloned()
    }

    /// Adds one SDK collection: deltas are added, cumulative streams replace what was held.
    pub(crate) fn merge(&mut self, metrics: &ResourceMetrics, now: Instant) {
        self.resource = metrics.resource().clone();
        self.unsupported.clear();
        for scope in &mut self.scopes {
            for stream in &mut scope.streams {
                stream.replaced = false;
            }
        }
        for scope_metrics in metrics.scope_metrics() {
            let scope = scope_metrics.scope();
            let index = match self.scopes.iter().position(|s| &s.scope == scope) {
                Some(index) => index,
                None => {
                    self.scopes.push(ScopeStreams {
                        scope: scope.clone(),
                        streams: Vec::new(),
                    });
                    self.scopes.len() - 1
                }
            };
            for metric in scope_metrics.metrics() {
                self.merge_metric(index, metric, now);
            }
        }
        // A cumulative stream holds what this collection put in it, nothing else; one absent
        // from it has no series now.
        let hasher = &self.hasher;
        for scope in &mut self.scopes {
            for stream in scope.streams.iter_mut().filter(|s| s.cumulative) {
                let replaced = stream.replaced;
                stream.remove_where(hasher, |series| !(replaced && series.put));
            }
        }
    }

    fn merge_metric(&mut self, scope: usize, metric: &Metric, now: Instant) {
        macro_rules! merge {
            ($data:expr, $number:expr) => {
                match $data {
                    MetricData::Sum(sum) => {
                        let kind = match sum.is_monotonic() {
                            true => StreamKind::Counter,
                            false => StreamKind::UpDown,
                        };
                        let delta = sum.temporality() == Temporality::Delta;
                        let start = sum.start_time();
                        let stream = self.stream(scope, metric, kind, $number, !delta);
                        for (position, point) in sum.data_points().enumerate() {
                            let value = Number::from(point.value());
                            self.put(
                                At {
                                    scope,
                                    stream,
                                    position,
                                },
                                || point.attributes(),
                                start,
                                now,
                                |held| match held {
                                    Some(Value::Number(n)) if delta => Value::Number(n.add(value)),
                                    _ => Value::Number(value),
                                },
                            );
                        }
                    }
                    MetricData::Gauge(gauge) => {
                        let start = gauge.start_time().unwrap_or(gauge.time());
                        let stream = self.stream(scope, metric, StreamKind::Gauge, $number, true);
                        for (position, point) in gauge.data_points().enumerate() {
                            let value = Value::Number(Number::from(point.value()));
                            let attributes = || point.attributes();
                            let at = At {
                                scope,
                                stream,
                                position,
                            };
                            self.put(at, attributes, start, now, |_| value);
                        }
                    }
                    MetricData::Histogram(histogram) => {
                        let delta = histogram.temporality() == Temporality::Delta;
                        let start = histogram.start_time();
                        let stream =
                            self.stream(scope, metric, StreamKind::Histogram, $number, !delta);
                        for (position, point) in histogram.data_points().enumerate() {
                            let bounds = self.bounds(|| point.bounds());
                            self.put(
                                At {
                                    scope,
                                    stream,
                                    position,
                                },
                                || point.attributes(),
                                start,
                                now,
                                |held| match held {
                                    Some(Value::Histogram(mut h)) if delta => {
                                        h.add(point, bounds);
                                        Value::Histogram(h)
                                    }
                                    _ => Value::Histogram(Box::new(HistogramValue::of(
                                        point, bounds,
                                    ))),
                                },
                            );
                        }
                    }
                    MetricData::ExponentialHistogram(e) => {
                        let series = e.data_points().count() as u64;
                        self.unsupported
                            .push((Cow::Owned(metric.name().to_owned()), series));
                    }
                }
            };
        }
        match metric.data() {
            AggregatedMetrics::U64(data) => merge!(data, NumberType::U64),
            AggregatedMetrics::I64(data) => merge!(data, NumberType::I64),
            AggregatedMetrics::F64(data) => merge!(data, NumberType::F64),
        }
    }

    /// The shared copy of bucket layout `bounds`.
    fn bounds<I: Iterator<Item = f64>>(&mut self, bounds: impl Fn() -> I) -> Arc<[f64]> {
        let same = |layout: &&Arc<[f64]>| {
            layout.len() == bounds().count()
                && layout
                    .iter()
                    .zip(bounds())
                    .all(|(a, b)| a.to_bits() == b.to_bits())
        };
        if let Some(layout) = self.layouts.iter().find(same) {
            return Arc::clone(layout);
        }
        let layout: Arc<[f64]> = bounds().collect();
        self.layouts.push(Arc::clone(&layout));
        layout
    }

    /// The index of `metric`'s stream in `scope`, created if new. A cumulative metric
    /// claims a stream not yet claimed in this collection, and its series start empty.
    fn stream(
        &mut self,
        scope: usize,
        metric: &Metric,
        kind: StreamKind,
        number: NumberType,
        cumulative: bool,
    ) -> usize {
        let streams = &mut self.scopes[scope].streams;
        // A stream is the SDK's instrument identity. Cumulative streams are rebuilt at every
        // collection, so two alike (a gauge and an observable gauge of one name) each claim
        // their own; the encoders order alike streams by content, not by which came first.
        let index = match streams.iter().position(|s| {
            s.name == metric.name()
                && s.description == metric.description()
                && s.unit == metric.unit()
                && s.kind == kind
                && s.number == number
                && s.cumulative == cumulative
                && !(cumulative && s.replaced)
        }) {
            Some(index) => index,
            None => {
                streams.push(Stream::new(metric, kind, number, cumulative));
                streams.len() - 1
            }
        };
        let stream = &mut streams[index];
        if cumulative {
            // Replaced by what this collection puts; the rest leaves after the merge.
            for series in stream.slots.iter_mut().flatten() {
                series.put = false;
            }
            stream.replaced = true;
        }
        index
    }

    /// Sets the series of `attributes()`, the data point `at`, to `value(held)`.
    fn put<'a, I: Iterator<Item = &'a KeyValue>>(
        &mut self,
        At {
            scope,
            stream,
            position,
        }: At,
        attributes: impl Fn() -> I,
        start: SystemTime,
        now: Instant,
        value: impl FnOnce(Option<Value>) -> Value,
    ) {
        // The SDK may hand one series over with its attributes in the caller's order or
        // sorted, from one collection to the next: the store keys them sorted. Sorted ones
        // (the recorders sort theirs) are looked up as they are, without a copy.
        let sorted = attributes().is_sorted_by_key(|kv| kv.key.as_str());
        let held = &self.scopes[scope].streams[stream];
        let hinted = held
            .positions
            .get(position)
            .and_then(|&slot| held.slot(slot).map(|series| (slot, series)))
            .filter(|(_, series)| sorted && same_strings(&series.attributes, attributes()));
        // The slot of the series, or the hash to store it under.
        let found: Result<usize, u64> = match (hinted, sorted) {
            (Some((slot, _)), _) => Ok(slot as usize),
            (None, true) => {
                let hash = hash_attributes(&self.hasher, attributes());
                let stream = &self.scopes[scope].streams[stream];
                stream.find(hash, &attributes).ok_or(hash)
            }
            (None, false) => {
                self.scratch.clear();
                self.scratch.extend(attributes().cloned());
                self.scratch
                    .sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
                let hash = hash_attributes(&self.hasher, self.scratch.iter());
                let stream = &self.scopes[scope].streams[stream];
                stream.find(hash, || self.scratch.iter()).ok_or(hash)
            }
        };
        let catalog = match found {
            Ok(_) => None,
            Err(_) => self.catalog_exemplars(scope, stream),
        };
        let stream = &mut self.scopes[scope].streams[stream];
        let slot = match found {
            Ok(slot) => {
                let series = stream.slots[slot].as_mut().expect("found slots are filled");
                let held = std::mem::replace(&mut series.value, Value::Number(Number::U64(0)));
                series.value = value(Some(held));
                series.last_seen = now;
                series.put = true;
                if stream.cumulative {
                    series.start = start;
                }
                slot as u32
            }
            Err(hash) => {
                let attributes: Box<[KeyValue]> = match sorted {
                    true => attributes().cloned().collect(),
                    false => self.scratch.as_slice().into(),
                };
                let exemplars = catalog
                    .and_then(|metric| {
                        metric.find(|name| {
                            let kv = attributes.iter().find(|kv| kv.key.as_str() == name);
                            kv.map(|kv| kv.value.as_str())
                        })
                    })
                    .map_or_else(Weak::new, |found| Arc::downgrade(&found));
                let series = Series {
                    attributes,
                    start,
                    value: value(None),
                    last_seen: now,
                    put: true,
                    exemplars,
                };
                stream.insert(hash, series, &self.hasher)
            }
        };
        if stream.positions.len() <= position {
            stream.positions.resize(position + 1, u32::MAX);
        }
        stream.positions[position] = slot;
    }

    /// Adds what `newer` collected after this store was taken (a delta push whose export
    /// failed gets its window back): deltas are added, streams the SDK gives cumulative take
    /// `newer`'s series.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn absorb(&mut self, newer: Store) {
        self.resource = newer.resource;
        for scope in newer.scopes {
            let index = match self.scopes.iter().position(|s| s.scope == scope.scope) {
                Some(index) => index,
                None => {
                    self.scopes.push(scope);
                    continue;
                }
            };
            for stream in scope.streams {
                let streams = &mut self.scopes[index].streams;
                match streams.iter_mut().find(|s| s.same_instrument(&stream)) {
                    Some(held) if held.cumulative => *held = stream,
                    Some(held) => {
                        for series in stream.slots.into_iter().flatten() {
                            held.absorb(series, &self.hasher);
                        }
                    }
                    None => streams.push(stream),
                }
            }
        }
    }

    /// Removes every series of `scope_name`'s streams carrying `key` = `value`; returns how
    /// many left.
    pub(crate) fn remove(&mut self, scope_name: &str, key: &str, value: &str) -> usize {
        let mut removed = 0;
        for scope in self
            .scopes
            .iter_mut()
            .filter(|s| s.scope.name() == scope_name)
        {
            for stream in &mut scope.streams {
                removed += stream.remove_where(&self.hasher, |series| {
                    series
                        .attributes
                        .iter()
                        .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
                });
            }
        }
        removed
    }

    /// Removes the counter and histogram series no collection has seen change for longer
    /// than `timeout`; returns how many left.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        let mut removed = 0;
        for scope in &mut self.scopes {
            for stream in scope.streams.iter_mut().filter(|s| s.kind.expires()) {
                removed += stream.remove_where(&self.hasher, |series| {
                    now.saturating_duration_since(series.last_seen) > timeout
                });
            }
        }
        removed
    }

    /// How many series it holds.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn len(&self) -> usize {
        self.scopes
            .iter()
            .flat_map(|s| &s.streams)
            .map(Stream::len)
            .sum()
    }
}

impl Number {
    /// The value as a float, as OTLP histograms carry it.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::U64(v) => v as f64,
            Number::I64(v) => v as f64,
            Number::F64(v) => v,
        }
    }

    /// `self - other` when `other` is not larger and of the same type: what a total grew
    /// by since it was `other`.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn less(self, other: Number) -> Option<Number> {
        match (self, other) {
            (Number::U64(a), Number::U64(b)) => a.checked_sub(b).map(Number::U64),
            (Number::I64(a), Number::I64(b)) if a >= b => Some(Number::I64(a.wrapping_sub(b))),
            (Number::F64(a), Number::F64(b)) if a >= b => Some(Number::F64(a - b)),
            _ => None,
        }
    }

    /// `self + other`, in `self`'s type; a sum of one stream never mixes types.
    fn add(self, other: Number) -> Number {
        match (self, other) {
            (Number::U64(a), Number::U64(b)) => Number::U64(a.wrapping_add(b)),
            (Number::I64(a), Number::I64(b)) => Number::I64(a.wrapping_add(b)),
            (Number::F64(a), Number::F64(b)) => Number::F64(a + b),
            (_, other) => other,
        }
    }

    /// Of `a` and `b`, the one `b.cmp(a)` finds `wanted`, or whichever exists.
    fn pick(a: Option<Number>, b: Option<Number>, wanted: std::cmp::Ordering) -> Option<Number> {
        match (a, b) {
            (Some(a), Some(b)) => match b.partial_cmp_number(a) == Some(wanted) {
                true => Some(b),
                false => Some(a),
            },
            (a, b) => a.or(b),
        }
    }

    fn partial_cmp_number(self, other: Number) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Number::U64(a), Number::U64(b)) => Some(a.cmp(&b)),
            (Number::I64(a), Number::I64(b)) => Some(a.cmp(&b)),
            (Number::F64(a), Number::F64(b)) => a.partial_cmp(&b),
            _ => None,
        }
    }
}
