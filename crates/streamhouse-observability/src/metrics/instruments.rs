//! Instruments built from catalog entries, so a recorder never spells a name or a bucket.

use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::catalog::{MetricDef, MetricKind};

pub(crate) fn counter(meter: &Meter, def: &MetricDef) -> Counter<u64> {
    debug_assert_eq!(def.kind, MetricKind::Counter, "{}", def.otel_name);
    meter
        .u64_counter(def.otel_name)
        .with_unit(def.unit)
        .with_description(def.description)
        .build()
}

pub(crate) fn histogram(meter: &Meter, def: &MetricDef) -> Histogram<f64> {
    debug_assert_eq!(def.kind, MetricKind::Histogram, "{}", def.otel_name);
    meter
        .f64_histogram(def.otel_name)
        .with_unit(def.unit)
        .with_description(def.description)
        .with_boundaries(def.buckets.to_vec())
        .build()
}
