//! A damaged store does not stop the server, and consumers read past the damage: over a store
//! on the local filesystem, a middle segment deleted and the last one cut short between two
//! runs are reported at start-up (`streamhouse_storage_faults_total`), a consumer following
//! `nextOffset` from 0 reads every record of the intact segments and reaches the high
//! watermark without spinning, and a new record gets an offset above every one acknowledged
//! before. A middle segment damaged in place (one bit, same length) is found when a read
//! loads it: reported once, skipped.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;
use streamhouse_lite::LiteConfig;
use streamhouse_lite::config::StoreLocation;
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, start_from_config, test_config};

const TOPIC: &str = "faults";

fn config(dir: &Path) -> LiteConfig {
    test_config().with_store(StoreLocation::Local(dir.to_owned()))
}

/// Produces `count` 100-byte records to partition 0 in requests of ten (ten fill and seal a
/// segment); the value acknowledged at each offset.
async fn produce(server: &LiteTestServer, count: usize) -> BTreeMap<u64, String> {
    let mut acknowledged = BTreeMap::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let values: Vec<String> = chunk.iter().map(|i| format!("{i:0100}")).collect();
        let records = values
            .iter()
            .map(|v| json!({ "value": v, "partition": 0 }))
            .collect();
        let body = server.produce_batch(TOPIC, records).await;
        for (position, value) in body["offsets"].as_array().unwrap().iter().zip(values) {
            assert_eq!(position["partition"], 0, "{body}");
            let offset = position["offset"].as_u64().unwrap();
            assert!(acknowledged.insert(offset, value).is_none(), "{body}");
        }
    }
    acknowledged
}

/// A segment file of partition 0 and the offsets its name says it holds.
struct SegmentFile {
    path: PathBuf,
    base: u64,
    last: u64,
}

/// The segment files of partition 0 of [`TOPIC`], in offset order.
fn segment_files(dir: &Path) -> Vec<SegmentFile> {
    let topic = dir.join("topics").join(TOPIC);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(topic.join("manifest.json")).unwrap()).unwrap();
    let incarnation = manifest["incarnation"].as_u64().unwrap();
    let partition = topic.join(format!("{incarnation:016x}")).join("0");
    let mut files: Vec<SegmentFile> = std::fs::read_dir(&partition)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let (base, last) = stem.split_once('-').expect("{base}-{last}.seg");
            SegmentFile {
                base: base.parse().unwrap(),
                last: last.parse().unwrap(),
                path,
            }
        })
        .collect();
    files.sort_by_key(|f| f.base);
    files
}

/// Reads partition 0 from offset 0, following `nextOffset` until `end`, asserting progress
/// on every answer; the records read (offset to value) and the requests it took.
async fn consume_to(server: &LiteTestServer, end: u64) -> (BTreeMap<u64, String>, usize) {
    let (mut offset, mut read, mut requests) = (0, BTreeMap::new(), 0);
    while offset < end {
        requests += 1;
        assert!(
            requests <= 100,
            "still at offset {offset} after 100 requests"
        );
        let (status, body) = server
            .get(&format!(
                "/api/v1/consume?topic={TOPIC}&partition=0&offset={offset}&maxRecords=7"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let next = body["nextOffset"].as_u64().unwrap();
        assert!(next > offset, "no progress at {offset}: {body}");
        for record in body["records"].as_array().unwrap() {
            let at = record["offset"].as_u64().unwrap();
            assert!(
                (offset..next).contains(&at),
                "{at} outside {offset}..{next}"
            );
            read.insert(at, record["value"].as_str().unwrap().to_owned());
        }
        offset = next;
    }
    assert_eq!(offset, end, "read past the high watermark");
    // At the high watermark: nothing more, and nowhere further to go.
    let (status, body) = server
        .get(&format!(
            "/api/v1/consume?topic={TOPIC}&partition=0&offset={end}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"], json!([]));
    assert_eq!(body["nextOffset"], end);
    (read, requests)
}

/// `streamhouse_storage_faults_total{topic=TOPIC, fault}`.
async fn faults(server: &LiteTestServer, fault: &str) -> f64 {
    server.metrics().await.get(
        &catalog::STORAGE_FAULTS,
        "",
        &[("fault", fault), ("topic", TOPIC)],
    )
}

/// The records `acknowledged` held by `files`.
fn held_by(acknowledged: &BTreeMap<u64, String>, files: &[&SegmentFile]) -> BTreeMap<u64, String> {
    acknowledged
        .iter()
        .filter(|(offset, _)| files.iter().any(|f| (f.base..=f.last).contains(*offset)))
        .map(|(offset, value)| (*offset, value.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_middle_segment_and_a_torn_last_one_are_reported_and_read_past() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_from_config(config(dir.path())).await;
    first.create_topic(TOPIC, 1).await;
    let acknowledged = produce(&first, 55).await;
    // Shutdown seals and flushes what is buffered.
    first.shutdown().await;

    let files = segment_files(dir.path());
    assert!(files.len() >= 4, "{} segments", files.len());
    let stored: u64 = files.iter().map(|f| f.last - f.base + 1).sum();
    assert_eq!(stored, acknowledged.len() as u64);
    let (lost, torn) = (&files[1], files.last().unwrap());
    std::fs::remove_file(&lost.path).unwrap();
    // Cut in the middle of the last segment's second line.
    let bytes = std::fs::read(&torn.path).unwrap();
    let first_line = bytes.iter().position(|b| *b == b'\n').unwrap();
    let cut = first_line + 1 + first_line / 2;
    assert_ne!(bytes[cut - 1], b'\n');
    std::fs::write(&torn.path, &bytes[..cut]).unwrap();

    let second = start_from_config(config(dir.path())).await;
    assert!(faults(&second, "hole").await >= 1.0);
    assert!(faults(&second, "torn_segment").await >= 1.0);
    let high_watermark = acknowledged.keys().last().unwrap() + 1;
    let intact: Vec<&SegmentFile> = files
        .iter()
        .filter(|f| f.base != lost.base && f.base != torn.base)
        .collect();
    let expected = held_by(&acknowledged, &intact);
    let (read, requests) = consume_to(&second, high_watermark).await;
    assert_eq!(read, expected);
    // 7 records a request, one more for each of the two holes at most.
    assert!(
        requests <= expected.len().div_ceil(7) + 2,
        "{requests} requests"
    );

    let (status, body) = second
        .post(
            "/api/v1/produce",
            &json!({ "topic": TOPIC, "value": "after", "partition": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let offset = body["offset"].as_u64().unwrap();
    assert!(offset >= high_watermark, "{offset} was handed out before");
    let (_, body) = second
        .get(&format!(
            "/api/v1/consume?topic={TOPIC}&partition=0&offset={offset}"
        ))
        .await;
    assert_eq!(body["records"][0]["value"], "after", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_damaged_in_place_is_reported_when_read_and_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_from_config(config(dir.path())).await;
    first.create_topic(TOPIC, 1).await;
    let acknowledged = produce(&first, 40).await;
    first.shutdown().await;

    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    let damaged = &files[1];
    let mut bytes = std::fs::read(&damaged.path).unwrap();
    let length = bytes.len();
    // A digit of the first value: `0` becomes `1`, still a valid record.
    let at = bytes.windows(9).position(|w| w == b"\"value\":\"").unwrap() + 9;
    assert_eq!(bytes[at], b'0');
    bytes[at] ^= 0x01;
    std::fs::write(&damaged.path, &bytes).unwrap();
    assert_eq!(
        std::fs::metadata(&damaged.path).unwrap().len() as usize,
        length
    );

    let second = start_from_config(config(dir.path())).await;
    // Only the last segment of a partition is read at start-up.
    assert_eq!(faults(&second, "corrupt_segment").await, 0.0);
    let high_watermark = acknowledged.keys().last().unwrap() + 1;
    let intact: Vec<&SegmentFile> = files.iter().filter(|f| f.base != damaged.base).collect();
    let expected = held_by(&acknowledged, &intact);
    let (read, _) = consume_to(&second, high_watermark).await;
    assert_eq!(read, expected);
    assert_eq!(faults(&second, "corrupt_segment").await, 1.0);
    // Read again: the same records, reported once.
    let (again, _) = consume_to(&second, high_watermark).await;
    assert_eq!(again, expected);
    assert_eq!(faults(&second, "corrupt_segment").await, 1.0);
}
