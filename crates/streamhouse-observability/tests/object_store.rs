//! `InstrumentedObjectStore` over a real in-memory store: what counts as one request, the
//! error types, and results identical to the inner store's.

use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use streamhouse_observability::catalog;
use streamhouse_observability::object_store::InstrumentedObjectStore;
use streamhouse_observability::{Telemetry, TelemetryConfig};

fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn requests(telemetry: &Telemetry, operation: &str) -> f64 {
    let labels = format!("{{operation=\"{operation}\"}}");
    sample(
        &telemetry.render_prometheus(),
        catalog::S3_REQUESTS.prometheus_name,
        &labels,
    )
}

fn errors(telemetry: &Telemetry, operation: &str, kind: &str) -> f64 {
    let labels = format!("{{error_type=\"{kind}\",operation=\"{operation}\"}}");
    sample(
        &telemetry.render_prometheus(),
        catalog::S3_ERRORS.prometheus_name,
        &labels,
    )
}

#[tokio::test]
async fn counts_each_operation_once_with_its_error_type() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    let store = InstrumentedObjectStore::new(InMemory::new(), &telemetry);
    for name in ["a/1", "a/2", "b/1"] {
        store.put(&Path::from(name), name.into()).await.unwrap();
    }
    assert_eq!(requests(&telemetry, "put"), 3.0);

    // Same results as the inner store.
    let bytes = store
        .get(&Path::from("a/1"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"a/1");
    assert_eq!(
        store.get_range(&Path::from("a/2"), 1..3).await.unwrap(),
        "/2"
    );
    assert_eq!(store.head(&Path::from("b/1")).await.unwrap().size, 3);
    assert_eq!(requests(&telemetry, "get"), 2.0);
    assert_eq!(requests(&telemetry, "head"), 1.0);

    // A listing counts once, when it ends, however many items it yields.
    let mut listing = store.list(Some(&Path::from("a")));
    assert!(listing.next().await.unwrap().is_ok());
    assert_eq!(requests(&telemetry, "list"), 0.0);
    assert!(listing.next().await.unwrap().is_ok());
    assert!(listing.next().await.is_none());
    assert_eq!(requests(&telemetry, "list"), 1.0);
    drop(listing);
    assert_eq!(requests(&telemetry, "list"), 1.0);
    // ... or when dropped unfinished.
    let mut partial = store.list(None);
    partial.next().await;
    drop(partial);
    assert_eq!(requests(&telemetry, "list"), 2.0);
    let listed = store.list_with_delimiter(None).await.unwrap();
    assert_eq!(listed.common_prefixes.len(), 2);
    assert_eq!(requests(&telemetry, "list"), 3.0);

    // Copy, rename, delete.
    store
        .copy(&Path::from("a/1"), &Path::from("c/1"))
        .await
        .unwrap();
    store
        .rename(&Path::from("c/1"), &Path::from("c/2"))
        .await
        .unwrap();
    store.delete(&Path::from("c/2")).await.unwrap();
    assert_eq!(requests(&telemetry, "copy"), 1.0);
    assert_eq!(requests(&telemetry, "rename"), 1.0);
    assert_eq!(requests(&telemetry, "delete"), 1.0);

    // A multipart upload is one request, from start to completion.
    let mut upload = store.put_multipart(&Path::from("big")).await.unwrap();
    upload
        .put_part(PutPayload::from(vec![7u8; 600]))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from(vec![7u8; 400]))
        .await
        .unwrap();
    assert_eq!(requests(&telemetry, "multipart_upload"), 0.0);
    upload.complete().await.unwrap();
    assert_eq!(requests(&telemetry, "multipart_upload"), 1.0);
    assert_eq!(store.head(&Path::from("big")).await.unwrap().size, 1000);

    // Errors by type.
    assert!(store.get(&Path::from("missing")).await.is_err());
    assert!(store.head(&Path::from("missing")).await.is_err());
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    assert!(
        store
            .put_opts(&Path::from("a/1"), "x".into(), create)
            .await
            .is_err()
    );
    assert_eq!(errors(&telemetry, "get", "not_found"), 1.0);
    assert_eq!(errors(&telemetry, "head", "not_found"), 1.0);
    assert_eq!(errors(&telemetry, "put", "already_exists"), 1.0);
    assert_eq!(requests(&telemetry, "put"), 4.0);
    let latency = format!("{}_count", catalog::S3_LATENCY.prometheus_name);
    assert_eq!(
        sample(
            &telemetry.render_prometheus(),
            &latency,
            "{operation=\"put\"}"
        ),
        4.0
    );
    assert_eq!(store.to_string(), "Instrumented(InMemory)");
}
