//! The model both exposition encoders write: metric families sorted by name, each with its
//! series sorted by label set, built from one SDK collection without copying label values.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, Metric, MetricData, ResourceMetrics,
};

use super::naming::{family_name, label_name};
use super::write::{self, Number};
use crate::config::PrometheusConfig;

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FamilyType {
    Counter,
    Gauge,
    Histogram,
}

impl FamilyType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
        }
    }
}

/// A label of a series: an exposed name and a borrowed value.
#[derive(Debug, Clone)]
pub(crate) struct Label<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) value: LabelValue<'a>,
}

/// A label value: an attribute's value or plain text (scope name and version).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LabelValue<'a> {
    Attribute(&'a Value),
    Text(&'a str),
}

impl LabelValue<'_> {
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            LabelValue::Attribute(value) => value.as_str(),
            LabelValue::Text(text) => Cow::Borrowed(text),
        }
    }
}

/// A histogram data point of any number type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HistogramPoint<'a> {
    U64(&'a HistogramDataPoint<u64>),
    I64(&'a HistogramDataPoint<i64>),
    F64(&'a HistogramDataPoint<f64>),
}

impl HistogramPoint<'_> {
    /// Calls `f` with each finite upper bound and the cumulative count at or below it.
    /// The `+Inf` bucket is [`Self::count`].
    pub(crate) fn cumulative_buckets(&self, mut f: impl FnMut(f64, u64)) {
        fn walk<T>(point: &HistogramDataPoint<T>, f: &mut impl FnMut(f64, u64)) {
            let mut cumulative = 0;
            for (bound, count) in point.bounds().zip(point.bucket_counts()) {
                cumulative += count;
                f(bound, cumulative);
            }
        }
        match self {
            HistogramPoint::U64(p) => walk(p, &mut f),
            HistogramPoint::I64(p) => walk(p, &mut f),
            HistogramPoint::F64(p) => walk(p, &mut f),
        }
    }

    pub(crate) fn count(&self) -> u64 {
        match self {
            HistogramPoint::U64(p) => p.count(),
            HistogramPoint::I64(p) => p.count(),
            HistogramPoint::F64(p) => p.count(),
        }
    }

    pub(crate) fn sum(&self) -> Number {
        match self {
            HistogramPoint::U64(p) => Number::U64(p.sum()),
            HistogramPoint::I64(p) => Number::I64(p.sum()),
            HistogramPoint::F64(p) => Number::F64(p.sum()),
        }
    }
}

/// What a series holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sample<'a> {
    Number(Number),
    Histogram(HistogramPoint<'a>),
}

/// The labels of one series: ranges into [`Snapshot::labels`] and into the rendered text
/// (`a="x",b="y"`, escaped, no braces) that both sorting and encoding use.
#[derive(Debug, Clone)]
pub(crate) struct LabelSet {
    labels: Range<usize>,
    text: Range<usize>,
}

/// One series: its labels and its sample.
#[derive(Debug, Clone)]
pub(crate) struct Series<'a> {
    pub(crate) labels: LabelSet,
    pub(crate) sample: Sample<'a>,
}

/// One metric family.
#[derive(Debug)]
pub(crate) struct Family<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) help: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) kind: FamilyType,
    pub(crate) series: Vec<Series<'a>>,
}

/// Labels of every series of a snapshot, and their rendered text, in two flat buffers.
#[derive(Debug, Default)]
struct Arena<'a> {
    labels: Vec<Label<'a>>,
    text: String,
}

impl<'a> Arena<'a> {
    /// Ends the label set begun at `start`: sorts it by name, adds scope labels, renders it.
    fn finish(&mut self, start: usize, scope: Option<&'a InstrumentationScope>) -> LabelSet {
        self.labels[start..].sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(scope) = scope {
            push_scope_labels(scope, &mut self.labels);
        }
        let text_start = self.text.len();
        write::labels(&mut self.text, &self.labels[start..]);
        LabelSet {
            labels: start..self.labels.len(),
            text: text_start..self.text.len(),
        }
    }
}

/// A collection, ready to encode.
#[derive(Debug)]
pub(crate) struct Snapshot<'a> {
    /// Labels of `target_info`, when it is exposed.
    pub(crate) target_info: Option<LabelSet>,
    pub(crate) families: Vec<Family<'a>>,
    arena: Arena<'a>,
}

impl<'a> Snapshot<'a> {
    /// Builds the families of `metrics`. Exponential histograms have no text representation
    /// and are left out; a family whose name is taken by another type is left out too.
    pub(crate) fn new(metrics: &'a ResourceMetrics, options: &PrometheusConfig) -> Self {
        let mut arena = Arena::default();
        let target_info = (options.target_info && !metrics.resource().is_empty())
            .then(|| resource_labels(metrics.resource(), &mut arena));

        let mut by_name: BTreeMap<Cow<'a, str>, Family<'a>> = BTreeMap::new();
        for scope_metrics in metrics.scope_metrics() {
            let scope = match options.scope_labels {
                crate::config::ScopeLabels::None => None,
                crate::config::ScopeLabels::Foreign
                    if scope_metrics.scope().name() == crate::SCOPE_NAME =>
                {
                    None
                }
                _ => Some(scope_metrics.scope()),
            };
            for metric in scope_metrics.metrics() {
                let Some(kind) = family_type(metric) else {
                    continue;
                };
                let name = family_name(metric.name(), metric.unit(), kind == FamilyType::Counter);
                let family = by_name.entry(name.clone()).or_insert_with(|| Family {
                    name,
                    help: metric.description(),
                    unit: metric.unit(),
                    kind,
                    series: Vec::new(),
                });
                if family.kind == kind {
                    push_series(metric, scope, &mut arena, &mut family.series);
                }
            }
        }

        let mut families: Vec<Family<'a>> = by_name
            .into_values()
            .filter(|f| !f.series.is_empty())
            .collect();
        // By rendered labels: one contiguous byte comparison per step. Label sets are unique
        // within a family (the SDK merges equal ones), so an unstable sort is deterministic.
        let text = &arena.text;
        for family in &mut families {
            family.series.sort_unstable_by(|a, b| {
                text[a.labels.text.clone()].cmp(&text[b.labels.text.clone()])
            });
        }
        Snapshot {
            target_info,
            families,
            arena,
        }
    }

    /// The labels of a series (or of `target_info`).
    pub(crate) fn labels(&self, set: &LabelSet) -> &[Label<'a>] {
        &self.arena.labels[set.labels.clone()]
    }

    /// The rendered labels of a series (or of `target_info`): `a="x",b="y"`, escaped.
    pub(crate) fn label_text(&self, set: &LabelSet) -> &str {
        &self.arena.text[set.text.clone()]
    }
}

fn family_type(metric: &Metric) -> Option<FamilyType> {
    fn of<T>(data: &MetricData<T>) -> Option<FamilyType> {
        match data {
            MetricData::Gauge(_) => Some(FamilyType::Gauge),
            MetricData::Sum(sum) if sum.is_monotonic() => Some(FamilyType::Counter),
            MetricData::Sum(_) => Some(FamilyType::Gauge),
            MetricData::Histogram(_) => Some(FamilyType::Histogram),
            MetricData::ExponentialHistogram(_) => None,
        }
    }
    match metric.data() {
        AggregatedMetrics::U64(data) => of(data),
        AggregatedMetrics::I64(data) => of(data),
        AggregatedMetrics::F64(data) => of(data),
    }
}

fn push_series<'a>(
    metric: &'a Metric,
    scope: Option<&'a InstrumentationScope>,
    arena: &mut Arena<'a>,
    out: &mut Vec<Series<'a>>,
) {
    let mut push = |attributes: &mut dyn Iterator<Item = &'a KeyValue>, sample: Sample<'a>| {
        let start = arena.labels.len();
        arena.labels.extend(attributes.map(|kv| Label {
            name: label_name(kv.key.as_str()),
            value: LabelValue::Attribute(&kv.value),
        }));
        let labels = arena.finish(start, scope);
        out.push(Series { labels, sample });
    };
    macro_rules! points {
        ($data:expr, $number:path, $histogram:path) => {
            match $data {
                MetricData::Gauge(g) => g
                    .data_points()
                    .for_each(|p| push(&mut p.attributes(), Sample::Number($number(p.value())))),
                MetricData::Sum(s) => s
                    .data_points()
                    .for_each(|p| push(&mut p.attributes(), Sample::Number($number(p.value())))),
                MetricData::Histogram(h) => h
                    .data_points()
                    .for_each(|p| push(&mut p.attributes(), Sample::Histogram($histogram(p)))),
                MetricData::ExponentialHistogram(_) => {}
            }
        };
    }
    match metric.data() {
        AggregatedMetrics::U64(data) => points!(data, Number::U64, HistogramPoint::U64),
        AggregatedMetrics::I64(data) => points!(data, Number::I64, HistogramPoint::I64),
        AggregatedMetrics::F64(data) => points!(data, Number::F64, HistogramPoint::F64),
    }
}

fn push_scope_labels<'a>(scope: &'a InstrumentationScope, labels: &mut Vec<Label<'a>>) {
    labels.push(Label {
        name: Cow::Borrowed("otel_scope_name"),
        value: LabelValue::Text(scope.name()),
    });
    if let Some(version) = scope.version() {
        labels.push(Label {
            name: Cow::Borrowed("otel_scope_version"),
            value: LabelValue::Text(version),
        });
    }
}

fn resource_labels<'a>(resource: &'a Resource, arena: &mut Arena<'a>) -> LabelSet {
    let start = arena.labels.len();
    arena
        .labels
        .extend(resource.iter().map(|(key, value)| Label {
            name: label_name(key.as_str()),
            value: LabelValue::Attribute(value),
        }));
    arena.finish(start, None)
}
