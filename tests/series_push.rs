//! Removal and idle expiry reach the OTLP push too: a removed series is absent from the next
//! export, and one that returns is pushed from zero with a later start time.

mod support;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use streamhouse_observability::catalog::{self, label};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
use streamhouse_observability::series::ManualClock;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::otlp_receiver::{Received, Receiver, attribute};

/// The data points of the last pushed `consumer_records` sum.
fn consumer_points(received: &Received) -> Vec<NumberDataPoint> {
    let requests = &received.metrics;
    let last = requests.last().expect("a request");
    last.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == catalog::CONSUMER_RECORDS.prometheus_name)
        .flat_map(|m| match &m.data {
            Some(Data::Sum(sum)) => sum.data_points.clone(),
            other => panic!("not a sum: {other:?}"),
        })
        .collect()
}

fn group_of(point: &NumberDataPoint) -> String {
    attribute(&point.attributes, label::CONSUMER_GROUP).expect("a group")
}

fn int(point: &NumberDataPoint) -> i64 {
    match point.value {
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v,
        other => panic!("not an int: {other:?}"),
    }
}

fn pushing(receiver: &Receiver, config: TelemetryConfig) -> Telemetry {
    let otlp = OtlpConfig::default()
        .with_endpoint(&receiver.grpc_endpoint(), OtlpProtocol::Grpc)
        // Pushes happen on flush in these tests.
        .with_metric_export_interval(Duration::from_secs(3600));
    Telemetry::new(config.with_otlp(otlp)).expect("telemetry starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_series_leaves_the_push_and_returns_from_zero() {
    let receiver = Receiver::start().await;
    let t = pushing(&receiver, TelemetryConfig::default());
    t.consumer().record_records("orders", "billing", 40);
    t.consumer().record_records("orders", "audit", 2);
    let flush = |t: &Telemetry| {
        let t = t.clone();
        async move {
            tokio::task::spawn_blocking(move || t.meter_provider().force_flush())
                .await
                .unwrap()
                .expect("flush")
        }
    };
    flush(&t).await;
    let first = receiver.with(consumer_points);
    let mut groups: Vec<String> = first.iter().map(group_of).collect();
    groups.sort();
    assert_eq!(groups, ["audit", "billing"]);
    let billing_start = first
        .iter()
        .find(|p| group_of(p) == "billing")
        .unwrap()
        .start_time_unix_nano;

    assert_eq!(t.remove_series(label::CONSUMER_GROUP, "billing"), 1);
    flush(&t).await;
    let second = receiver.with(consumer_points);
    assert_eq!(second.iter().map(group_of).collect::<Vec<_>>(), ["audit"]);
    assert_eq!(int(&second[0]), 2, "cumulative: the total so far");

    tokio::time::sleep(Duration::from_millis(5)).await;
    t.consumer().record_records("orders", "billing", 3);
    flush(&t).await;
    let third = receiver.with(consumer_points);
    let billing = third.iter().find(|p| group_of(p) == "billing").unwrap();
    assert_eq!(int(billing), 3, "a returning series starts from zero");
    assert!(billing.start_time_unix_nano > billing_start);
    t.shutdown().unwrap();
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_series_leave_the_push_and_shutdown_pushes_the_rest() {
    let receiver = Receiver::start().await;
    let clock = Arc::new(ManualClock::new());
    let t = pushing(
        &receiver,
        TelemetryConfig::default()
            .with_metric_idle_timeout(Some(Duration::from_secs(30)))
            .with_clock(clock.clone()),
    );
    t.consumer().record_records("orders", "idle", 1);
    t.consumer().record_records("orders", "busy", 1);
    t.render_prometheus();
    clock.advance(Duration::from_secs(31));
    t.consumer().record_records("orders", "busy", 1);
    // Shutdown pushes once more, from the store.
    let shut = t.clone();
    tokio::task::spawn_blocking(move || shut.shutdown())
        .await
        .unwrap()
        .expect("shutdown");
    let last = receiver.with(consumer_points);
    assert_eq!(last.iter().map(group_of).collect::<Vec<_>>(), ["busy"]);
    assert_eq!(int(&last[0]), 2);
    receiver.stop().await;
}
