//! Segment puts are create-only: a second server started on the same store, writing the
//! same partition, fails loudly (its partition is fenced, readiness names it) instead of
//! overwriting the first server's segment.

mod support;

use std::time::Duration;

use object_store::{ObjectStore, ObjectStoreExt, local::LocalFileSystem};
use reqwest::StatusCode;
use serde_json::json;
use streamhouse_lite::config::StoreLocation;
use support::lite::{LiteTestServer, eventually, start_from_config, test_config};

async fn produce(server: &LiteTestServer, value: &str) -> StatusCode {
    let body = json!({ "topic": "shared", "value": value, "partition": 0 });
    server.post("/api/v1/produce", &body).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_store_is_fenced_not_overwriting() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Segments seal at once, so both servers put one-record segments at the same offsets.
    let config = test_config()
        .with_store(StoreLocation::Local(dir.path().to_owned()))
        .with_segment_max_age(Duration::from_millis(20));
    let first = start_from_config(config.clone()).await;
    first.create_topic("shared", 1).await;
    assert_eq!(produce(&first, "before").await, StatusCode::OK);
    first.shutdown().await;

    let a = start_from_config(config.clone()).await;
    let b = start_from_config(config).await;
    assert_eq!(produce(&a, "from-a").await, StatusCode::OK);
    assert_eq!(produce(&b, "from-b").await, StatusCode::OK);

    // Whichever put second finds the segment stored with other records: fenced.
    let (fenced, kept) = eventually(Duration::from_secs(10), "one server fenced", || async {
        for (fenced, kept, name) in [(&a, "from-b", "a"), (&b, "from-a", "b")] {
            let (status, body) = fenced.get("/health/ready").await;
            if status == StatusCode::SERVICE_UNAVAILABLE
                && body["failing"] == json!(["partition shared/0"])
            {
                return Some((name, kept));
            }
        }
        None
    })
    .await;
    let server = if fenced == "a" { &a } else { &b };
    let (status, body) = server
        .post(
            "/api/v1/produce",
            &json!({ "topic": "shared", "value": "x", "partition": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("another server"),
        "{body}"
    );

    // The segment at offset 1 holds the other server's record, never overwritten.
    let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
        .await
        .unwrap();
    let segment = listed
        .iter()
        .find(|m| {
            m.location
                .as_ref()
                .ends_with("00000000000000000001-00000000000000000001.seg")
        })
        .unwrap_or_else(|| panic!("no segment at offset 1 in {listed:?}"));
    let bytes = store
        .get(&segment.location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains(kept), "{bytes:?}");
}
