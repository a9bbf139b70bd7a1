//! Sampling and temporality as configured: `always_off` exports no span, a parent-based
//! sampler follows the caller's decision, delta temporality reaches the collector while
//! `/metrics` stays cumulative.

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_sdk::metrics::Temporality;
use streamhouse_observability::catalog;
use streamhouse_observability::logging::{self, LoggingConfig};
use streamhouse_observability::otlp::{OtlpConfig, OtlpProtocol};
use streamhouse_observability::propagation;
use streamhouse_observability::sampling::TraceSampler;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::otlp_receiver::{Receiver, hex};

fn telemetry(receiver: &Receiver, sampler: TraceSampler, temporality: Temporality) -> Telemetry {
    let otlp = OtlpConfig::default()
        .with_endpoint(&receiver.http_endpoint(), OtlpProtocol::HttpProtobuf)
        .with_metric_export_interval(Duration::from_millis(100))
        .with_span_export_delay(Duration::from_millis(50))
        .with_temporality(temporality);
    Telemetry::new(
        TelemetryConfig::default()
            .with_sampler(sampler)
            .with_otlp(otlp),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_based_sampling_follows_the_caller() {
    let receiver = Receiver::start().await;
    let root_off = TraceSampler::ParentBased(Box::new(TraceSampler::AlwaysOff));
    let telemetry = telemetry(&receiver, root_off, Temporality::Cumulative);
    let sampled_parent = "4bf92f3577b34da6a3ce929d0e0e4736";
    let unsampled_parent = "0af7651916cd43dd8448eb211c80319c";
    let subscriber =
        logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let _root = tracing::info_span!("root_without_parent").entered();
        for (trace_id, flags) in [(sampled_parent, "01"), (unsampled_parent, "00")] {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                format!("00-{trace_id}-00f067aa0ba902b7-{flags}")
                    .parse()
                    .unwrap(),
            );
            let span = tracing::info_span!("handle_remote");
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let _ = span.set_parent(propagation::extract_http(&headers));
            let _entered = span.enter();
        }
    });
    telemetry.shutdown().unwrap();
    receiver.with(|r| {
        let spans = r.spans();
        let names: Vec<(&str, String)> = spans
            .iter()
            .map(|s| (s.name.as_str(), hex(&s.trace_id)))
            .collect();
        assert_eq!(
            names,
            vec![("handle_remote", sampled_parent.to_owned())],
            "only the sampled caller's span"
        );
    });
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_off_exports_no_span_but_metrics() {
    let receiver = Receiver::start().await;
    let telemetry = telemetry(&receiver, TraceSampler::AlwaysOff, Temporality::Cumulative);
    let subscriber =
        logging::subscriber(&telemetry, &LoggingConfig::default(), std::io::sink).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("never_exported").entered();
        telemetry
            .producer()
            .record_batch("orders", 1, 1, Duration::from_millis(1));
    });
    telemetry.shutdown().unwrap();
    receiver.with(|r| {
        assert!(r.spans().is_empty(), "{:?}", r.spans());
        assert!(
            r.metric(catalog::PRODUCER_RECORDS.prometheus_name)
                .is_some()
        );
    });
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_temporality_is_pushed_while_metrics_page_stays_cumulative() {
    let receiver = Receiver::start().await;
    let telemetry = telemetry(&receiver, TraceSampler::AlwaysOn, Temporality::Delta);
    let name = catalog::PRODUCER_RECORDS.prometheus_name;
    telemetry
        .producer()
        .record_batch("orders", 3, 1, Duration::from_millis(1));
    assert!(
        receiver
            .wait_until(Duration::from_secs(10), |r| r.metric(name).is_some())
            .await
    );
    telemetry
        .producer()
        .record_batch("orders", 4, 1, Duration::from_millis(1));
    let text = telemetry.render_prometheus();
    assert!(
        text.contains(&format!(
            "{}{{topic=\"orders\"}} 7\n",
            catalog::PRODUCER_RECORDS.prometheus_name
        )),
        "{text}"
    );
    telemetry.shutdown().unwrap();
    receiver.with(|r| {
        let Data::Sum(sum) = r.metric(name).unwrap().data.unwrap() else {
            panic!("a sum")
        };
        // AGGREGATION_TEMPORALITY_DELTA = 1.
        assert_eq!(sum.aggregation_temporality, 1);
        let values: Vec<i64> = r
            .metrics()
            .into_iter()
            .filter(|(_, m)| m.name == name)
            .flat_map(|(_, m)| match m.data {
                Some(Data::Sum(s)) => s.data_points,
                _ => Vec::new(),
            })
            .filter_map(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    v,
                )) => Some(v),
                _ => None,
            })
            .filter(|v| *v != 0)
            .collect();
        assert_eq!(
            values,
            vec![3, 4],
            "each push carries only its interval's records"
        );
    });
    receiver.stop().await;
}
