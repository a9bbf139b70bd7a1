//! The OTLP metrics request of the series store, with exemplars.
//!
//! The SDK's own export path cannot carry exemplars: `opentelemetry_sdk` 0.33 keeps the
//! `exemplars` of its data points private, its aggregators always leave them empty, and
//! none of its data objects can be built outside the SDK. So every metrics export, in
//! either temporality, is built here from what the Prometheus bridge reads too (the series
//! store and the exemplar slots): names, series removal and exemplars are the same on both
//! paths.
//!
//! - **Cumulative**: every series with its own start time (a series that came back after
//!   removal starts again), and per bucket (or counter series) the latest exemplar, as
//!   `/metrics` shows it: a collector's Prometheus exporter keeps showing it whatever the
//!   scrape interval, and a backend stores an exemplar it already has once.
//! - **Delta** (and low memory): counters and histograms carry what was recorded since the
//!   last export and the exemplars recorded in that window; up-down counters and gauges are
//!   levels, sent cumulative as the specification's temporality preferences say. Observable
//!   counters arrive as totals: delta differences them against the last export, low memory
//!   sends them cumulative. A window whose export failed goes out with the next one.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_sdk::metrics::Temporality;

use crate::prometheus::write::Number;
use crate::series::store::{NumberType, Series, Store, Stream, StreamKind, Value};

/// What delta export remembers between two exports.
#[derive(Debug)]
pub(crate) struct DeltaState {
    /// The end of the last export's window: the start of the next one's points.
    since: SystemTime,
    /// Low memory: observable counters go cumulative instead of being differenced.
    low_memory: bool,
    /// The last total of each observable counter series, to difference the next against.
    totals: Totals,
}

/// Observable counter totals by stream name and attributes.
type Totals = HashMap<(String, Box<[KeyValue]>), Number>;

impl DeltaState {
    /// Windows start at `since`; `temporality` is [`Temporality::Delta`] or low memory.
    pub(crate) fn new(since: SystemTime, temporality: Temporality) -> Self {
        DeltaState {
            since,
            low_memory: temporality == Temporality::LowMemory,
            totals: HashMap::new(),
        }
    }
}

/// The request carrying every series of `store`, cumulative, stamped `now`.
pub(crate) fn cumulative_request(store: &Store, now: SystemTime) -> ExportMetricsServiceRequest {
    request(store, |_, stream| {
        Some(cumulative_metric(stream, to_nanos(now)))
    })
}

/// The delta request of the window from the last export to `now`: counters and histograms
/// from `pending` (what was recorded in the window), levels from `store`; with the state
/// to keep once it is sent.
pub(crate) fn delta_request(
    store: &Store,
    pending: &Store,
    state: &DeltaState,
    now: SystemTime,
) -> (ExportMetricsServiceRequest, DeltaState) {
    let window = Window {
        start: to_nanos(state.since),
        end: to_nanos(now),
    };
    let mut totals = HashMap::new();
    let request = request(store, |scope, stream| {
        match (stream.kind, stream.arrives_cumulative()) {
            (StreamKind::Counter | StreamKind::Histogram, false) => {
                let recorded = pending
                    .scopes
                    .iter()
                    .find(|s| s.scope == *scope)?
                    .streams
                    .iter()
                    .find(|s| s.same_instrument(stream))?;
                Some(delta_metric(recorded, window))
            }
            (StreamKind::Counter, true) if !state.low_memory => Some(differenced_metric(
                stream,
                &state.totals,
                &mut totals,
                window,
            )),
            _ => Some(cumulative_metric(stream, window.end)),
        }
    });
    let next = DeltaState {
        since: now,
        low_memory: state.low_memory,
        totals,
    };
    (request, next)
}

/// The request of `store`'s scopes, each stream's metric made by `metric` (given the
/// scope and the stream); empty ones left out.
fn request(
    store: &Store,
    mut metric: impl FnMut(&opentelemetry::InstrumentationScope, &Stream) -> Option<Metric>,
) -> ExportMetricsServiceRequest {
    let resource = &store.resource;
    let scope_metrics = store
        .scopes
        .iter()
        .map(|scope| ScopeMetrics {
            scope: Some(InstrumentationScope::from((&scope.scope, None))),
            metrics: scope
                .streams
                .iter()
                .filter_map(|stream| metric(&scope.scope, stream))
                .filter(has_points)
                .collect(),
            schema_url: scope.scope.schema_url().unwrap_or_default().to_owned(),
        })
        .filter(|s| !s.metrics.is_empty())
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource::from(resource)),
            scope_metrics,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }],
    }
}

fn has_points(metric: &Metric) -> bool {
    match &metric.data {
        Some(Data::Sum(sum)) => !sum.data_points.is_empty(),
        Some(Data::Gauge(gauge)) => !gauge.data_points.is_empty(),
        Some(Data::Histogram(histogram)) => !histogram.data_points.is_empty(),
        _ => false,
    }
}

/// A time span in Unix nanoseconds: exemplars recorded in `(start, end]` belong to it.
/// Exemplar times come from a coarse clock (a few ms), so one recorded within a tick of an
/// export may fall into the neighbouring window; each still goes out once.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
}

/// `stream`'s metric with `temporality`, its points made by `number` and `histogram`.
fn metric_of(
    stream: &Stream,
    temporality: AggregationTemporality,
    number: impl Fn(&Series) -> Option<NumberDataPoint>,
    histogram: impl Fn(&Series) -> Option<HistogramDataPoint>,
) -> Metric {
    let numbers = || stream.series().filter_map(&number).collect();
    let data = match stream.kind {
        StreamKind::Counter | StreamKind::UpDown => Data::Sum(Sum {
            data_points: numbers(),
            aggregation_temporality: temporality as i32,
            is_monotonic: stream.kind == StreamKind::Counter,
        }),
        StreamKind::Gauge => Data::Gauge(Gauge {
            data_points: numbers(),
        }),
        StreamKind::Histogram => Data::Histogram(Histogram {
            data_points: stream.series().filter_map(histogram).collect(),
            aggregation_temporality: temporality as i32,
        }),
    };
    Metric {
        name: stream.name.to_string(),
        description: stream.description.to_string(),
        unit: stream.unit.to_string(),
        metadata: Vec::new(),
        data: Some(data),
    }
}

fn cumulative_metric(stream: &Stream, now: u64) -> Metric {
    // The latest of each slot, however old: a series' slots go with its handles when it is
    // removed or idle, so they never outlive the series. The coarse exemplar clock may put
    // the first one a tick before the series' start: it is moved to the start.
    let exemplars = |series: &Series| {
        let start = to_nanos(series.start);
        let window = Window { start: 0, end: now };
        let mut kept = exemplars(stream, series, window);
        for exemplar in &mut kept {
            exemplar.time_unix_nano = exemplar.time_unix_nano.max(start);
        }
        kept
    };
    metric_of(
        stream,
        AggregationTemporality::Cumulative,
        |series| {
            let value = series.value_number()?;
            number_point(series, value, series.start, now, exemplars(series))
        },
        |series| histogram_point(series, to_nanos(series.start), now, exemplars(series)),
    )
}

fn delta_metric(recorded: &Stream, window: Window) -> Metric {
    metric_of(
        recorded,
        AggregationTemporality::Delta,
        |series| {
            let exemplars = exemplars(recorded, series, window);
            let start = from_nanos(window.start);
            number_point(series, series.value_number()?, start, window.end, exemplars)
        },
        |series| {
            let exemplars = exemplars(recorded, series, window);
            histogram_point(series, window.start, window.end, exemplars)
        },
    )
}

/// An observable counter as deltas: each series' total less the one it had at the last
/// export (all of it when new, or when it went down: a reset). Fills `totals` for next time.
fn differenced_metric(
    stream: &Stream,
    last: &Totals,
    totals: &mut Totals,
    window: Window,
) -> Metric {
    let totals = std::cell::RefCell::new(totals);
    metric_of(
        stream,
        AggregationTemporality::Delta,
        |series| {
            let total = series.value_number()?;
            let key = (stream.name.to_string(), series.attributes.clone());
            let delta = match last.get(&key) {
                Some(before) => total.less(*before).unwrap_or(total),
                None => total,
            };
            totals.borrow_mut().insert(key, total);
            let start = from_nanos(window.start);
            number_point(series, delta, start, window.end, Vec::new())
        },
        |_| None,
    )
}

fn number_point(
    series: &Series,
    value: Number,
    start: SystemTime,
    time: u64,
    exemplars: Vec<Exemplar>,
) -> Option<NumberDataPoint> {
    let value = match value {
        Number::U64(v) => number_data_point::Value::AsInt(i64::try_from(v).unwrap_or(i64::MAX)),
        Number::I64(v) => number_data_point::Value::AsInt(v),
        Number::F64(v) => number_data_point::Value::AsDouble(v),
    };
    Some(NumberDataPoint {
        attributes: series.attributes.iter().map(Into::into).collect(),
        start_time_unix_nano: to_nanos(start),
        time_unix_nano: time,
        exemplars,
        flags: 0,
        value: Some(value),
    })
}

fn histogram_point(
    series: &Series,
    start: u64,
    time: u64,
    exemplars: Vec<Exemplar>,
) -> Option<HistogramDataPoint> {
    let Value::Histogram(h) = &series.value else {
        return None;
    };
    Some(HistogramDataPoint {
        attributes: series.attributes.iter().map(Into::into).collect(),
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: h.count,
        sum: Some(h.sum.as_f64()),
        bucket_counts: h.counts.to_vec(),
        explicit_bounds: h.bounds.to_vec(),
        exemplars,
        flags: 0,
        min: h.min.map(Number::as_f64),
        max: h.max.map(Number::as_f64),
    })
}

/// The exemplars of `series` recorded in `window`: one per bucket of a histogram (in bucket
/// order), one for a counter; none for other kinds or series without slots.
fn exemplars(stream: &Stream, series: &Series, window: Window) -> Vec<Exemplar> {
    let slots_count = match (&series.value, stream.kind) {
        (Value::Histogram(h), StreamKind::Histogram) => h.counts.len(),
        (Value::Number(_), StreamKind::Counter) => 1,
        _ => return Vec::new(),
    };
    let Some(slots) = series.exemplars() else {
        return Vec::new();
    };
    (0..slots_count)
        .filter_map(|bucket| slots.get(bucket))
        .filter_map(|kept| {
            let time = (kept.timestamp * 1e9) as u64;
            (window.start < time && time <= window.end).then(|| Exemplar {
                filtered_attributes: Vec::new(),
                time_unix_nano: time,
                span_id: id_bytes(kept.span_id != SpanId::INVALID, &kept.span_id.to_bytes()),
                trace_id: id_bytes(kept.trace_id != TraceId::INVALID, &kept.trace_id.to_bytes()),
                value: Some(exemplar_value(stream, kept.value)),
            })
        })
        .collect()
}

/// An exemplar's value in its stream's number type: a whole increment of an integer
/// counter stays an integer.
fn exemplar_value(stream: &Stream, value: f64) -> exemplar::Value {
    let integer = stream.kind == StreamKind::Counter && stream.number != NumberType::F64;
    match integer && value.fract() == 0.0 && value.abs() < 9.0e15 {
        true => exemplar::Value::AsInt(value as i64),
        false => exemplar::Value::AsDouble(value),
    }
}

/// An id's bytes; empty when it is not valid (an `always_on` exemplar outside a span).
fn id_bytes(valid: bool, bytes: &[u8]) -> Vec<u8> {
    match valid {
        true => bytes.to_vec(),
        false => Vec::new(),
    }
}

fn to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn from_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_nanos(nanos)
}
