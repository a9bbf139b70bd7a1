//! Topic deletion survives restarts and crashes, over a store on the local filesystem: a
//! deleted topic never comes back, segments left behind by a delete that did not finish are
//! ignored (and cleaned up) by recovery, and a topic created again starts from offset 0
//! without ever showing an old record.
//!
//! A crash between the tombstone and the segment deletion is arranged directly in the store's
//! files: a tombstoned manifest beside the segments it names.

mod support;

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::LiteConfig;
use streamhouse_lite::config::StoreLocation;
use support::lite::{LiteTestServer, start_from_config, test_config};

fn config(dir: &Path) -> LiteConfig {
    test_config().with_store(StoreLocation::Local(dir.to_owned()))
}

/// A 100-byte value, distinct per prefix and index: ten fill a 1000-byte segment.
fn value(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:0>width$}", width = 100 - prefix.len())
}

/// Produces `values` to partition 0 in requests of ten: ten 100-byte values fill and seal
/// a segment.
async fn produce(server: &LiteTestServer, topic: &str, values: &[String]) {
    for chunk in values.chunks(10) {
        let records = chunk
            .iter()
            .map(|v| json!({ "value": v, "partition": 0 }))
            .collect();
        server.produce_batch(topic, records).await;
    }
}

/// Every value of partition 0 of `topic`, reading from offset 0 to the end.
async fn consume_all(server: &LiteTestServer, topic: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let (status, body) = server
            .get(&format!(
                "/api/v1/consume?topic={topic}&partition=0&offset={offset}&maxRecords=1000"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let records = body["records"].as_array().unwrap();
        if records.is_empty() {
            return values;
        }
        values.extend(
            records
                .iter()
                .map(|r| r["value"].as_str().unwrap().to_owned()),
        );
        offset = body["nextOffset"].as_u64().unwrap();
    }
}

async fn topic_names(server: &LiteTestServer) -> Vec<String> {
    let (status, body) = server.get("/api/v1/topics").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every segment file under `dir`, recursively.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(segment_files(&path));
        } else if path.extension().is_some_and(|e| e == "seg") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn manifest(dir: &Path, topic: &str) -> Value {
    let path = dir.join("topics").join(topic).join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The directory holding the segments of `topic`'s incarnation.
fn incarnation_dir(dir: &Path, topic: &str) -> PathBuf {
    let incarnation = manifest(dir, topic)["incarnation"].as_u64().unwrap();
    dir.join("topics")
        .join(topic)
        .join(format!("{incarnation:016x}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_does_not_come_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_from_config(config(dir.path())).await;
    first.create_topic("gone", 1).await;
    first.create_topic("kept", 1).await;
    let old: Vec<String> = (0..25).map(|i| value("old-", i)).collect();
    produce(&first, "gone", &old).await;
    produce(&first, "kept", &[value("kept-", 0)]).await;
    // Two full segments of "gone" are flushed; delete with them in the store.
    support::eventually(std::time::Duration::from_secs(10), "2 flushes", || async {
        (segment_files(&dir.path().join("topics/gone")).len() == 2).then_some(())
    })
    .await;
    let response = first
        .client
        .delete(first.url("/api/v1/topics/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    first.shutdown().await;

    // On disk: a tombstone, no segment of "gone"; "kept" flushed at shutdown.
    assert!(manifest(dir.path(), "gone")["deleted_at"].is_string());
    assert_eq!(
        segment_files(&dir.path().join("topics/gone")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(segment_files(&dir.path().join("topics/kept")).len(), 1);

    let second = start_from_config(config(dir.path())).await;
    assert_eq!(topic_names(&second).await, ["kept"]);
    let (status, body) = second.get("/api/v1/topics/gone").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(consume_all(&second, "kept").await, [value("kept-", 0)]);
    // Created again after the restart: from offset 0, with only its own records.
    second.create_topic("gone", 1).await;
    let (status, body) = second
        .post(
            "/api/v1/produce",
            &json!({ "topic": "gone", "value": "new", "partition": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 0);
    assert_eq!(consume_all(&second, "gone").await, ["new"]);
    second.shutdown().await;

    let third = start_from_config(config(dir.path())).await;
    assert_eq!(topic_names(&third).await, ["gone", "kept"]);
    assert_eq!(consume_all(&third, "gone").await, ["new"]);
    let (_, detail) = third.get("/api/v1/topics/gone").await;
    assert_eq!(detail["message_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_left_beside_a_tombstone_are_ignored_and_cleaned_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_from_config(config(dir.path())).await;
    first.create_topic("t", 1).await;
    let old: Vec<String> = (0..25).map(|i| value("old-", i)).collect();
    produce(&first, "t", &old).await;
    first.shutdown().await;
    assert_eq!(segment_files(dir.path()).len(), 3);

    // The crash: the tombstone is stored (the manifest rewritten as deleted), the segments
    // are not deleted yet.
    let mut tombstone = manifest(dir.path(), "t");
    tombstone["deleted_at"] = json!("2025-01-01T00:00:00.000Z");
    std::fs::write(
        dir.path().join("topics/t/manifest.json"),
        serde_json::to_vec(&tombstone).unwrap(),
    )
    .unwrap();

    let second = start_from_config(config(dir.path())).await;
    assert_eq!(topic_names(&second).await, Vec::<String>::new());
    let (status, body) = second.get("/api/v1/topics/t").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = second
        .get("/api/v1/consume?topic=t&partition=0&offset=0")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Recovery deleted the dead segments.
    assert_eq!(segment_files(dir.path()), Vec::<PathBuf>::new());

    second.create_topic("t", 1).await;
    let (status, body) = second
        .post(
            "/api/v1/produce",
            &json!({ "topic": "t", "value": "new", "partition": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 0);
    assert_eq!(consume_all(&second, "t").await, ["new"]);
    second.shutdown().await;

    let third = start_from_config(config(dir.path())).await;
    assert_eq!(consume_all(&third, "t").await, ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_of_an_older_incarnation_never_reappear() {
    let dir = tempfile::tempdir().expect("temp dir");
    let saved = tempfile::tempdir().expect("temp dir");
    let first = start_from_config(config(dir.path())).await;
    first.create_topic("t", 1).await;
    let old: Vec<String> = (0..20).map(|i| value("old-", i)).collect();
    produce(&first, "t", &old).await;
    first.shutdown().await;
    let old_dir = incarnation_dir(dir.path(), "t");
    copy_dir(&old_dir, saved.path());
    assert_eq!(segment_files(saved.path()).len(), 2);

    // Deleted and created again, with three records of its own.
    let second = start_from_config(config(dir.path())).await;
    let response = second
        .client
        .delete(second.url("/api/v1/topics/t"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(segment_files(dir.path()), Vec::<PathBuf>::new());
    second.create_topic("t", 1).await;
    let new: Vec<String> = (0..3).map(|i| format!("new-{i}")).collect();
    produce(&second, "t", &new).await;
    second.shutdown().await;
    let new_dir = incarnation_dir(dir.path(), "t");
    assert_ne!(new_dir, old_dir);

    // The old incarnation's segments are back beside the new manifest, as if the delete
    // had crashed before removing them.
    copy_dir(saved.path(), &old_dir);
    let third = start_from_config(config(dir.path())).await;
    assert_eq!(consume_all(&third, "t").await, new);
    let (_, detail) = third.get("/api/v1/topics/t").await;
    assert_eq!(detail["message_count"], 3);
    let (status, body) = third
        .post(
            "/api/v1/produce",
            &json!({ "topic": "t", "value": "after", "partition": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 3);
    // Recovery cleaned the dead incarnation up.
    assert_eq!(segment_files(&old_dir), Vec::<PathBuf>::new());
    assert_eq!(segment_files(&new_dir).len(), 1);
}
