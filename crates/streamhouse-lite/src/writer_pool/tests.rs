use std::fmt;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    PutMultipartOptions, PutOptions, PutResult, Result,
};
use streamhouse_observability::TelemetryConfig;

use super::*;
use crate::record::NewRecord;
use crate::topics::{Topic, TopicLimits, TopicRegistry};

/// A topic `t` of `partitions` partitions whose segments seal at 4 bytes.
fn topic(telemetry: &Telemetry, partitions: u32) -> Arc<Topic> {
    let limits = TopicLimits {
        max_topics: 1,
        max_partitions: partitions,
        max_total_partitions: u64::from(partitions),
    };
    let registry = TopicRegistry::new(telemetry, 4, 1_000, limits);
    registry.create("t", partitions).unwrap()
}

fn config(agents: usize) -> LiteConfig {
    LiteConfig {
        writer_agents: agents,
        flush_retry_initial: Duration::from_millis(5),
        flush_retry_max: Duration::from_millis(50),
        ..LiteConfig::default()
    }
}

/// How [`ScriptedStore`] answers a segment put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Take,
    /// Never finishes.
    Hang,
    /// Refused: permission denied (permanent).
    Refuse,
    /// A server error (transient).
    Fail,
}

/// An in-memory store whose segment puts are delayed and answered as `answer` says per
/// partition, recording the order of the puts it takes and the most run at once per
/// partition.
struct ScriptedStore {
    inner: InMemory,
    delay: Duration,
    answer: Mutex<Box<dyn Fn(u32) -> Answer + Send + Sync>>,
    taken: Mutex<Vec<(u32, u64)>>,
    in_flight: Mutex<std::collections::HashMap<u32, usize>>,
    max_in_flight: AtomicUsize,
    puts: AtomicUsize,
}

impl ScriptedStore {
    fn new(delay: Duration, answer: impl Fn(u32) -> Answer + Send + Sync + 'static) -> Self {
        ScriptedStore {
            inner: InMemory::new(),
            delay,
            answer: Mutex::new(Box::new(answer)),
            taken: Mutex::default(),
            in_flight: Mutex::default(),
            max_in_flight: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
        }
    }

    fn answer_with(&self, answer: impl Fn(u32) -> Answer + Send + Sync + 'static) {
        *lock(&self.answer) = Box::new(answer);
    }

    fn taken(&self) -> Vec<(u32, u64)> {
        lock(&self.taken).clone()
    }
}

impl fmt::Debug for ScriptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScriptedStore")
    }
}

impl fmt::Display for ScriptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScriptedStore")
    }
}

#[async_trait]
impl ObjectStore for ScriptedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let Some(segment) = crate::segment::parse_path(location) else {
            return self.inner.put_opts(location, payload, opts).await;
        };
        let partition = segment.partition;
        let answer = lock(&self.answer)(partition);
        if answer == Answer::Hang {
            std::future::pending::<()>().await;
        }
        let running = {
            let mut in_flight = lock(&self.in_flight);
            let n = in_flight.entry(partition).or_default();
            *n += 1;
            *n
        };
        self.max_in_flight.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        *lock(&self.in_flight).get_mut(&partition).unwrap() -= 1;
        self.puts.fetch_add(1, Ordering::SeqCst);
        match answer {
            Answer::Refuse => Err(object_store::Error::PermissionDenied {
                path: location.to_string(),
                source: "refused".into(),
            }),
            Answer::Fail => Err(object_store::Error::Generic {
                store: "ScriptedStore",
                source: "503 slow down".into(),
            }),
            _ => {
                let result = self.inner.put_opts(location, payload, opts).await?;
                lock(&self.taken).push((partition, segment.base_offset));
                Ok(result)
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Appends one record of `value` to `log`, reserving its bytes as a produce does.
fn append(pool: &WriterPool, topic: &Topic, partition: u32, value: &str) -> bool {
    let record = NewRecord {
        key: None,
        value: value.to_owned(),
        headers: Default::default(),
    };
    pool.budget().try_reserve(value.len()).unwrap();
    topic.incarnation().appended(value.len());
    let log = &topic.partitions[partition as usize];
    log.append(vec![record], 1, u64::MAX).unwrap().1
}

/// Appends a full segment to `partition` and seals it through the pool.
fn seal_one(pool: &WriterPool, topic: &Topic, partition: u32, value: &str) -> bool {
    assert!(
        append(pool, topic, partition, value),
        "one record fills a segment"
    );
    let alive = topic.incarnation().appending().unwrap();
    pool.try_seal(
        &alive,
        &topic.partitions[partition as usize],
        PartitionLog::seal_if_full,
    )
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), waited)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test]
async fn without_a_slot_the_segment_stays_unsealed_and_readable() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let config = LiteConfig {
        writer_queue_segments: 1,
        ..config(1)
    };
    let store = ScriptedStore::new(Duration::ZERO, |_| Answer::Hang);
    let pool = WriterPool::start(&config, Arc::new(store), &telemetry);
    let topic = topic(&telemetry, 1);
    let log = &topic.partitions[0];

    assert!(seal_one(&pool, &topic, 0, "aaaa"));
    // The one slot is taken until the (stuck) put ends.
    let mut sealed = false;
    assert!(append(&pool, &topic, 0, "bbbb"));
    let alive = topic.incarnation().appending().unwrap();
    let room = pool.try_seal(&alive, log, |log| {
        sealed = true;
        log.seal_if_full()
    });
    assert!(!room && !sealed, "no slot, so nothing sealed");
    assert_eq!(pool.pending(), 1);
    // Not lost: still in the active segment, sealed later with what follows.
    assert!(
        matches!(log.plan_read(1, 10), crate::partition_log::ReadPlan::Memory(r) if r[0].value == "bbbb")
    );
    assert!(append(&pool, &topic, 0, "cccc"));
    let next = log.seal_if_due(Duration::from_secs(3600)).unwrap();
    assert_eq!((next.base_offset, next.records.len()), (1, 2));
}

#[tokio::test]
async fn a_partitions_segments_are_stored_one_at_a_time_in_order() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = Arc::new(ScriptedStore::new(Duration::from_millis(3), |_| {
        Answer::Take
    }));
    let pool = WriterPool::start(&config(4), Arc::clone(&store) as _, &telemetry);
    let topic = topic(&telemetry, 2);
    for i in 0..20 {
        for partition in 0..2 {
            assert!(seal_one(&pool, &topic, partition, &format!("{i:04}")));
        }
    }
    until("every segment is stored", || pool.pending() == 0).await;
    assert_eq!(
        store.max_in_flight.load(Ordering::SeqCst),
        1,
        "one put per partition at a time"
    );
    for partition in 0..2 {
        let order: Vec<u64> = store
            .taken()
            .into_iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, base)| base)
            .collect();
        assert_eq!(
            order,
            (0..20).collect::<Vec<u64>>(),
            "partition {partition}"
        );
    }
    assert_eq!(pool.unflushed_bytes(), 0);
}

#[tokio::test]
async fn a_permanent_error_fences_one_partition_and_the_others_keep_flushing() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = Arc::new(ScriptedStore::new(Duration::ZERO, |p| {
        if p == 1 { Answer::Refuse } else { Answer::Take }
    }));
    // One agent: were it pinned by the refused partition, nothing else would flush.
    let pool = WriterPool::start(&config(1), Arc::clone(&store) as _, &telemetry);
    let topic = topic(&telemetry, 3);
    assert!(seal_one(&pool, &topic, 1, "xxxx"));
    assert!(
        append(&pool, &topic, 1, "yyyy"),
        "a second record waits in memory"
    );
    let fenced = &topic.partitions[1];
    until("partition 1 is fenced", || fenced.failure().is_some()).await;
    assert!(fenced.failure().unwrap().contains("refused"));
    // Its 8 bytes left the budget, its sealed segment its slot; its appends are refused,
    // its waiters fail.
    assert_eq!(pool.unflushed_bytes(), 0);
    assert_eq!(pool.pending(), 0);
    let refused = fenced.append(vec![NewRecord::default()], 1, u64::MAX);
    assert!(matches!(
        refused,
        Err((crate::partition_log::AppendRefused::Failed(_), _))
    ));
    assert!(fenced.stored(0).await.is_err());
    for i in 0..5 {
        for partition in [0, 2] {
            assert!(seal_one(&pool, &topic, partition, &format!("{i:04}")));
        }
    }
    until("the other partitions are stored", || {
        store.taken().len() == 10
    })
    .await;
    assert_eq!(pool.unflushed_bytes(), 0);
    let refused_puts = store.puts.load(Ordering::SeqCst) - 10;
    assert!(refused_puts >= 1, "the fenced partition was tried");

    // The store takes its puts again: the next probe lifts the fence and stores it.
    store.answer_with(|_| Answer::Take);
    until("partition 1 is stored", || {
        store.taken().iter().any(|(p, _)| *p == 1)
    })
    .await;
    until("the fence is lifted", || fenced.failure().is_none()).await;
    fenced.stored(0).await.unwrap();
    // The record still in memory is counted in the budget again.
    assert_eq!(pool.unflushed_bytes(), 4);
}

#[tokio::test]
async fn transient_errors_are_retried_until_the_store_takes_the_segment() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = Arc::new(ScriptedStore::new(Duration::ZERO, |_| Answer::Fail));
    let pool = WriterPool::start(&config(2), Arc::clone(&store) as _, &telemetry);
    let topic = topic(&telemetry, 1);
    assert!(seal_one(&pool, &topic, 0, "aaaa"));
    until("three attempts failed", || {
        store.puts.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert!(topic.partitions[0].failure().is_none(), "not fenced");
    assert!(pool.health().unwrap_err().contains("503 slow down"));
    store.answer_with(|_| Answer::Take);
    topic.partitions[0].stored(0).await.unwrap();
    assert!(pool.health().is_ok());
}

#[tokio::test]
async fn waiting_produces_share_one_put_per_partition() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = Arc::new(ScriptedStore::new(Duration::from_millis(20), |_| {
        Answer::Take
    }));
    let pool = Arc::new(WriterPool::start(
        &config(4),
        Arc::clone(&store) as _,
        &telemetry,
    ));
    let topic = topic(&telemetry, 1);
    let log = Arc::clone(&topic.partitions[0]);
    let mut waiters = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..40 {
        // Small records: no segment fills; each "request" asks for a flush and waits.
        let record = NewRecord {
            value: "v".into(),
            ..NewRecord::default()
        };
        pool.budget().try_reserve(1).unwrap();
        topic.incarnation().appended(1);
        let (offset, _) = log.append(vec![record], 1, u64::MAX).unwrap();
        {
            let alive = topic.incarnation().appending().unwrap();
            pool.request_flush(&alive, &log);
        }
        let log = Arc::clone(&log);
        waiters.push(tokio::spawn(async move { log.stored(offset).await }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let arriving = started.elapsed();
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    let puts = store.puts.load(Ordering::SeqCst);
    // One put in flight at a time, each taking 20 ms: the requests arriving meanwhile share
    // the next one, so puts follow the time the requests took to arrive, not their number.
    let most = (arriving.as_millis() / 20) as usize + 2;
    assert!(
        (2..=most.min(39)).contains(&puts),
        "{puts} puts for 40 waiting requests arriving over {arriving:?}"
    );
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_put_is_create_only() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = Arc::new(InMemory::new());
    let pool = WriterPool::start(&config(1), Arc::clone(&store) as _, &telemetry);
    let topic = topic(&telemetry, 2);
    // Partition 0's first segment is already stored with the same bytes (a lost answer);
    // partition 1's with other records (another server).
    for (partition, value) in [(0, "aaaa"), (1, "zzzz")] {
        let record = crate::record::Record {
            partition,
            offset: 0,
            key: None,
            value: value.into(),
            timestamp: 1,
            headers: Default::default(),
        };
        let segment = SealedSegment {
            topic: "t".into(),
            incarnation: topic.incarnation().id(),
            partition,
            base_offset: 0,
            records: vec![record],
            payload_bytes: 4,
        };
        store
            .put(&segment.path(), segment.encode().into())
            .await
            .unwrap();
    }
    assert!(seal_one(&pool, &topic, 0, "aaaa"));
    assert!(seal_one(&pool, &topic, 1, "aaaa"));
    topic.partitions[0].stored(0).await.unwrap();
    let refused = topic.partitions[1].stored(0).await.unwrap_err();
    assert!(refused.contains("another server"), "{refused}");
    let path = crate::segment::object_path("t", topic.incarnation().id(), 1, 0, 0);
    let kept = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(
        String::from_utf8_lossy(&kept).contains("zzzz"),
        "never overwritten"
    );
}

#[tokio::test]
async fn segments_of_a_deleted_topic_are_dropped_not_stored() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = Arc::new(InMemory::new());
    let pool = WriterPool::start(&config(1), Arc::clone(&store) as _, &telemetry);
    let topic = topic(&telemetry, 1);
    let incarnation = Arc::clone(topic.incarnation());

    // The delete is under way: appends are over, the agent waits to flush.
    let flushes = incarnation.block_flushes().await;
    assert!(seal_one(&pool, &topic, 0, "aaaa"));
    incarnation.stop_appends();
    assert!(incarnation.appending().is_none());
    drop(flushes);
    assert_eq!(incarnation.wait_for_flushes().await, 4);
    pool.budget().release(4);
    until("the agent drops the segment", || pool.pending() == 0).await;
    let stored: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "nothing stored, not even the manifest: {stored:?}"
    );
    assert_eq!(pool.unflushed_bytes(), 0);
}
