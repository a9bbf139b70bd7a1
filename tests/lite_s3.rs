//! The S3 path against a real S3-compatible server (`moto`, started on loopback): segments
//! flushed with one `put` each, read back with a `get`, readiness following the server.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::config::StoreLocation;
use streamhouse_lite::store;
use streamhouse_observability::catalog;
use support::lite::{Moto, eventually, start, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_round_trip_through_s3() {
    let mut moto = Moto::start().await;
    moto.create_bucket("streamhouse").await;
    let location = StoreLocation::parse("s3://streamhouse/lite/test").unwrap();
    let vars = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let s3 = store::open_with_env(&location, vars).expect("S3 store");
    let server = start(test_config().with_store(location), s3).await;
    server.create_topic("s3-topic", 1).await;
    assert_eq!(server.get("/health/ready").await.0, StatusCode::OK);

    for batch in 0..2 {
        let records: Vec<Value> = (0..10)
            .map(|i| json!({ "key": format!("k{i}"), "value": format!("{:0100}", batch * 10 + i) }))
            .collect();
        let (status, body) = server
            .post(
                "/api/v1/produce/batch",
                &json!({ "topic": "s3-topic", "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let m = eventually(Duration::from_secs(30), "2 flushes to S3", || async {
        let m = server.metrics().await;
        (m.sum(&catalog::SEGMENT_FLUSHES, "") == 2.0).then_some(m)
    })
    .await;
    // Two segments and, before the first, the topic's manifest.
    assert_eq!(
        m.get(&catalog::S3_REQUESTS, "", &[("operation", "put")]),
        3.0
    );
    assert_eq!(m.sum(&catalog::S3_ERRORS, ""), 0.0);

    // The objects are in the bucket under the prefix, where the layout says.
    let listing = reqwest::get(format!(
        "{}/streamhouse?list-type=2&prefix=lite/test/",
        moto.endpoint
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let topic = server.server.broker().topics().get("s3-topic").unwrap();
    let segments = format!(
        "lite/test/topics/s3-topic/{:016x}/0",
        topic.incarnation().id()
    );
    assert!(
        listing.contains("lite/test/topics/s3-topic/manifest.json"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "{segments}/00000000000000000000-00000000000000000009.seg"
        )),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "{segments}/00000000000000000010-00000000000000000019.seg"
        )),
        "{listing}"
    );

    let (status, body) = server
        .get("/api/v1/consume?topic=s3-topic&partition=0&offset=12&maxRecords=100")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["value"], format!("{:0100}", 12));
    assert_eq!(body["records"][0]["key"], "k2");
    assert_eq!(body["nextOffset"], 20);
    let m = server.metrics().await;
    assert_eq!(
        m.get(&catalog::S3_REQUESTS, "", &[("operation", "get")]),
        1.0
    );
    assert_eq!(m.get(&catalog::CACHE_MISSES, "", &[]), 1.0);

    // The server goes away: readiness names the store, and the failed listings are counted.
    moto.stop();
    let (_, body) = eventually(Duration::from_secs(30), "readiness to fail", || async {
        let answer = server.get("/health/ready").await;
        (answer.0 == StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await;
    assert_eq!(body["failing"], json!(["object_store"]), "{body}");
    eventually(Duration::from_secs(30), "a failed list counted", || async {
        let m = server.metrics().await;
        let failed_lists: f64 = m
            .parsed
            .samples
            .iter()
            .filter(|s| s.name == catalog::S3_ERRORS.prometheus_name)
            .filter(|s| s.labels.get("operation").map(String::as_str) == Some("list"))
            .map(|s| s.value)
            .sum();
        (failed_lists >= 1.0).then_some(())
    })
    .await;
}
