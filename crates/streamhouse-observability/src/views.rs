//! Views derived from the catalog: they pin every stream's exposed name and buckets, for
//! every reader (the Prometheus bridge and any push exporter see the same streams), and set
//! the cardinality limit.

use opentelemetry_sdk::metrics::{Aggregation, Instrument, Stream};

use crate::catalog::{Catalog, MetricKind};

/// The view for a meter provider: `catalog` instruments get their pinned name, unit,
/// description and buckets; every instrument gets the cardinality limit, past which the SDK
/// folds new label sets into the series labelled `otel.metric.overflow="true"`.
///
/// No attribute allow-list is set: the recorders pass exactly the catalog's labels, and the
/// SDK's filter would copy the attributes of every unbound measurement.
pub fn catalog_view(
    catalog: &Catalog,
    cardinality_limit: usize,
) -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + 'static {
    let catalog = catalog.clone();
    move |instrument| {
        let builder = Stream::builder().with_cardinality_limit(cardinality_limit);
        let builder = match catalog.by_otel_name(instrument.name()) {
            None => builder,
            Some(def) => {
                let builder = builder
                    .with_name(def.prometheus_name)
                    .with_unit(def.unit)
                    .with_description(def.description);
                if def.kind == MetricKind::Histogram {
                    builder.with_aggregation(Aggregation::ExplicitBucketHistogram {
                        boundaries: def.buckets.to_vec(),
                        record_min_max: false,
                    })
                } else {
                    builder
                }
            }
        };
        // A limit of 0 or usize::MAX is the only way build() fails; config rules both out.
        builder.build().ok()
    }
}
