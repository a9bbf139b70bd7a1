//! Instruments built from catalog entries, so a recorder never spells a name or a bucket,
//! and that offer every measurement to the exemplar store.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{self as otel, Meter};

use crate::catalog::{MetricDef, MetricKind};
use crate::exemplars::{ExemplarStore, MetricExemplars, SeriesExemplars};

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

    #[inline]
    pub(crate) fn add(&self, value: u64, attributes: &[KeyValue]) {
        self.sdk.add(value, attributes);
        if let Some(exemplars) = &self.exemplars {
            exemplars.offer(value as f64, attributes);
        }
    }

    pub(crate) fn bind(&self, attributes: &[KeyValue]) -> BoundCounter {
        BoundCounter {
            sdk: self.sdk.bind(attributes),
            exemplars: self.exemplars.as_ref().and_then(|e| e.series(attributes)),
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

    #[inline]
    pub(crate) fn record(&self, value: f64, attributes: &[KeyValue]) {
        self.sdk.record(value, attributes);
        if let Some(exemplars) = &self.exemplars {
            exemplars.offer(value, attributes);
        }
    }

    pub(crate) fn bind(&self, attributes: &[KeyValue]) -> BoundHistogram {
        BoundHistogram {
            sdk: self.sdk.bind(attributes),
            exemplars: self.exemplars.as_ref().and_then(|e| e.series(attributes)),
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
