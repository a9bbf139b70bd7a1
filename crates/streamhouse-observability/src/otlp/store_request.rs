//! The OTLP request of the series store: cumulative sums, gauges and histograms, each series
//! with its own start time (a series that returned after removal starts again).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::prometheus::write::Number;
use crate::series::store::{Series, Store, Stream, StreamKind, Value};

/// The request carrying every series of `store`, stamped `now`.
pub(crate) fn metrics_request(store: &Store, now: SystemTime) -> ExportMetricsServiceRequest {
    let resource = &store.resource;
    let scope_metrics = store
        .scopes
        .iter()
        .map(|scope| ScopeMetrics {
            scope: Some(InstrumentationScope::from((&scope.scope, None))),
            metrics: scope
                .streams
                .iter()
                .filter(|s| s.len() > 0)
                .map(|s| metric(s, now))
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

fn metric(stream: &Stream, now: SystemTime) -> Metric {
    let time = to_nanos(now);
    let cumulative = AggregationTemporality::Cumulative as i32;
    let numbers = || {
        stream
            .series()
            .filter_map(|s| number_point(s, time))
            .collect()
    };
    let data = match stream.kind {
        StreamKind::Counter | StreamKind::UpDown => Data::Sum(Sum {
            data_points: numbers(),
            aggregation_temporality: cumulative,
            is_monotonic: stream.kind == StreamKind::Counter,
        }),
        StreamKind::Gauge => Data::Gauge(Gauge {
            data_points: numbers(),
        }),
        StreamKind::Histogram => Data::Histogram(Histogram {
            data_points: stream
                .series()
                .filter_map(|s| histogram_point(s, time))
                .collect(),
            aggregation_temporality: cumulative,
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

fn number_point(series: &Series, time: u64) -> Option<NumberDataPoint> {
    let Value::Number(number) = series.value else {
        return None;
    };
    let value = match number {
        Number::U64(v) => number_data_point::Value::AsInt(i64::try_from(v).unwrap_or(i64::MAX)),
        Number::I64(v) => number_data_point::Value::AsInt(v),
        Number::F64(v) => number_data_point::Value::AsDouble(v),
    };
    Some(NumberDataPoint {
        attributes: series.attributes.iter().map(Into::into).collect(),
        start_time_unix_nano: to_nanos(series.start),
        time_unix_nano: time,
        exemplars: Vec::new(),
        flags: 0,
        value: Some(value),
    })
}

fn histogram_point(series: &Series, time: u64) -> Option<HistogramDataPoint> {
    let Value::Histogram(h) = &series.value else {
        return None;
    };
    Some(HistogramDataPoint {
        attributes: series.attributes.iter().map(Into::into).collect(),
        start_time_unix_nano: to_nanos(series.start),
        time_unix_nano: time,
        count: h.count,
        sum: Some(h.sum.as_f64()),
        bucket_counts: h.counts.to_vec(),
        explicit_bounds: h.bounds.to_vec(),
        exemplars: Vec::new(),
        flags: 0,
        min: h.min.map(Number::as_f64),
        max: h.max.map(Number::as_f64),
    })
}

fn to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
