//! Telemetry overhead on the produce path: the broker's `produce` (what the HTTP handler
//! calls after parsing JSON) with telemetry on and with `OTEL_SDK_DISABLED`-style no-op
//! telemetry, side by side in one run. Segments flush to a store that discards them, so
//! memory stays flat however long criterion runs.
//!
//! ```text
//! cargo bench -p streamhouse-lite --bench produce_overhead
//! ```

use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use streamhouse_lite::LiteConfig;
use streamhouse_lite::broker::{Broker, ProduceRecord};
use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::{Telemetry, TelemetryConfig};

/// Takes every put and keeps nothing; anything else is unsupported.
#[derive(Debug)]
struct DiscardStore;

impl fmt::Display for DiscardStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DiscardStore")
    }
}

fn unsupported() -> object_store::Error {
    object_store::Error::NotSupported {
        source: "the benchmark store only takes puts".into(),
    }
}

#[async_trait]
impl ObjectStore for DiscardStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(unsupported())
    }

    async fn get_opts(&self, _: &Path, _: GetOptions) -> Result<GetResult> {
        Err(unsupported())
    }

    fn delete_stream(
        &self,
        _: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        stream::once(async { Err(unsupported()) }).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        stream::once(async { Err(unsupported()) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> Result<ListResult> {
        Err(unsupported())
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(unsupported())
    }
}

fn records(count: usize) -> Vec<ProduceRecord> {
    (0..count)
        .map(|i| ProduceRecord {
            key: Some(format!("customer-{}", i % 64)),
            value: format!("{{\"order\":{i},\"amount\":1999,\"currency\":\"EUR\"}}"),
            partition: None,
            headers: Default::default(),
        })
        .collect()
}

fn produce_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let brokers: Vec<(&str, Telemetry, HealthRegistry, Broker)> = [("on", false), ("off", true)]
        .into_iter()
        .map(|(name, disabled)| {
            let telemetry = Telemetry::new(TelemetryConfig::default().with_disabled(disabled))
                .expect("telemetry");
            let health = HealthRegistry::new();
            let broker = Broker::start(
                LiteConfig::default(),
                &telemetry,
                Arc::new(DiscardStore),
                &health,
            );
            broker.create_topic("bench", 8).expect("topic");
            (name, telemetry, health, broker)
        })
        .collect();

    for batch in [1usize, 100] {
        let mut group = c.benchmark_group(format!("produce_batch_{batch}"));
        group.throughput(Throughput::Elements(batch as u64));
        let input = records(batch);
        for (name, _telemetry, _health, broker) in &brokers {
            group.bench_function(format!("telemetry_{name}"), |b| {
                b.iter_batched(
                    || input.clone(),
                    |records| black_box(broker.produce("bench", records, Instant::now()).unwrap()),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, produce_overhead);
criterion_main!(benches);
