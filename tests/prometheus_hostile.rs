//! A real Prometheus scrapes a hostile state (the collisions and reserved names of
//! docs/exposition.md) from four targets: a `Telemetry`'s own `/metrics` and a provider whose
//! views give instruments names the SDK would refuse, each once as OpenMetrics (Prometheus's
//! own `Accept`) and once as text 0.0.4 (`Accept` stripped). Every target is up, Prometheus
//! rejects no sample as a duplicate, both formats give the same series, and the hostile
//! series come back with their sanitised names and labels.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, SdkMeterProvider, Stream};
use streamhouse_observability::config::PrometheusConfig;
use streamhouse_observability::http::metrics_router;
use streamhouse_observability::prometheus::{PrometheusReader, ScrapeProtocol};
use streamhouse_observability::{SCOPE_NAME, Telemetry, TelemetryConfig};

/// Attributes hitting every label rule: a collision, `le`, `quantile`, `__name__`, a
/// leading digit and underscore, `job` and `instance`, and (scope labels are on for foreign
/// scopes) an `otel_scope_` key.
fn hostile_attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.route", "/a"),
        KeyValue::new("http_route", "/b"),
        KeyValue::new("le", "x"),
        KeyValue::new("quantile", "q"),
        KeyValue::new("__name__", "n"),
        KeyValue::new("9lives", "cat"),
        KeyValue::new("_tmp", "t"),
        KeyValue::new("job", "user-job"),
        KeyValue::new("instance", "user-instance"),
        KeyValue::new("otel_scope_name", "s"),
    ]
}

/// The labels Prometheus stores for [`hostile_attributes`] in scope `scope` (without the
/// target's `job` and `instance`): `job` and `instance` become `exported_*` at scrape time.
fn hostile_labels(scope: &str) -> BTreeMap<String, String> {
    [
        ("http_route", "/a;/b"),
        ("exported_le", "x"),
        ("exported_quantile", "q"),
        ("key_name_", "n"),
        ("key_9lives", "cat"),
        ("key_tmp", "t"),
        ("exported_job", "user-job"),
        ("exported_instance", "user-instance"),
        ("exported_otel_scope_name", "s"),
        ("otel_scope_name", scope),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A `Telemetry` (catalog included) to which a third-party library added colliding
/// instruments through `meter_provider()`.
fn hostile_telemetry() -> Telemetry {
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_instance_id("hostile")
            // Labels rule 1 on `target_info`: `service.name` and `service_name` merge.
            .with_resource_attribute("service_name", "svc2"),
    )
    .expect("telemetry starts");
    // The catalog family the foreign gauge below collides with.
    telemetry
        .producer()
        .topic("orders")
        .record_batch(1, 10, Duration::from_millis(1));
    let provider = telemetry.meter_provider();
    let meter = provider.meter_with_scope(InstrumentationScope::builder("hostile.lib").build());
    meter
        .u64_counter("req")
        .build()
        .add(3, &hostile_attributes());
    // Families rule 2: the gauge `jobs` keeps its name, the counter `jobs` is dropped.
    meter.f64_gauge("jobs").build().record(1.5, &[]);
    meter.u64_counter("jobs").build().add(7, &[]);
    // A histogram `foo` owns `foo_count`; `target_info` owns `target`; a catalog metric owns
    // its name against a foreign gauge.
    meter.f64_histogram("foo").build().record(0.5, &[]);
    meter.f64_gauge("foo_count").build().record(9.0, &[]);
    meter.u64_counter("target").build().add(1, &[]);
    meter.f64_gauge("target_info").build().record(1.0, &[]);
    meter
        .f64_gauge("streamhouse_producer_records_total")
        .build()
        .record(-1.0, &[]);
    // Families rule 4: a negative counter is dropped; negative bounds lose `_sum`.
    meter.f64_counter("refunds").build().add(-2.0, &[]);
    meter
        .f64_histogram("offset")
        .with_boundaries(vec![-10.0, 0.0, 10.0])
        .build()
        .record(-3.0, &[]);
    // Families rule 3: StreamHouse's own scope (never labelled) twice, one series.
    for version in ["1", "2"] {
        provider
            .meter_with_scope(
                InstrumentationScope::builder(SCOPE_NAME)
                    .with_version(version)
                    .build(),
            )
            .u64_counter("own.twice")
            .build()
            .add(1, &[]);
    }
    // `k=""` is no label to Prometheus: these are one series, which must be exposed once.
    let empty = meter.u64_counter("empty").build();
    empty.add(1, &[]);
    empty.add(2, &[KeyValue::new("k", "")]);
    for value in support::HOSTILE {
        meter
            .u64_counter("values")
            .build()
            .add(1, &[KeyValue::new("v", *value)]);
    }
    telemetry
}

/// A provider whose views give instruments names the SDK refuses for instruments.
fn hostile_views() -> (PrometheusReader, SdkMeterProvider) {
    let renames: BTreeMap<&str, &str> = [
        ("c1", "9lives.requests"),
        ("c2", "x:y-z/total"),
        ("g1", "a.b"),
        ("g2", "a_b"),
        ("g3", "☃"),
        ("g4", ""),
        ("g5", "target"),
        ("h1", "http.server.duration"),
    ]
    .into_iter()
    .collect();
    let view = move |i: &Instrument| {
        let mut stream = Stream::builder().with_name(*renames.get(i.name())?);
        if i.name() == "h1" {
            stream = stream.with_aggregation(Aggregation::ExplicitBucketHistogram {
                boundaries: vec![-5.0, 0.0, 5.0],
                record_min_max: false,
            });
        }
        stream.build().ok()
    };
    let reader = PrometheusReader::new(PrometheusConfig::default());
    let provider = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_attributes([
                    KeyValue::new("service.name", "views"),
                    KeyValue::new("service_name", "v2"),
                ])
                .build(),
        )
        .with_reader(reader.clone())
        .with_view(view)
        .build();
    let meter = provider.meter_with_scope(
        InstrumentationScope::builder("views.lib")
            .with_version("1.0")
            .build(),
    );
    meter
        .u64_counter("c1")
        .with_unit("{request}")
        .build()
        .add(4, &hostile_attributes());
    meter.u64_counter("c2").build().add(5, &[]);
    // One exposed name, one label set, two values: only the first stream (`a.b`) is kept.
    meter
        .f64_gauge("g1")
        .build()
        .record(1.0, &[KeyValue::new("k", "v")]);
    meter
        .f64_gauge("g2")
        .build()
        .record(2.0, &[KeyValue::new("k", "v")]);
    meter.f64_gauge("g3").build().record(3.0, &[]);
    meter.f64_gauge("g4").build().record(4.0, &[]);
    meter.f64_gauge("g5").build().record(5.0, &[]);
    meter
        .f64_histogram("h1")
        .with_unit("ms")
        .build()
        .record(-1.0, &[]);
    (reader, provider)
}

/// Serves `reader` at `/metrics` in the protocol the `Accept` header negotiates.
fn reader_router(reader: PrometheusReader) -> Router {
    async fn metrics(State(reader): State<PrometheusReader>, headers: HeaderMap) -> Response {
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let protocol = ScrapeProtocol::negotiate(accept);
        let body = reader.render(protocol.format()).expect("render");
        ([(CONTENT_TYPE, protocol.content_type())], body).into_response()
    }
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(reader)
}

/// Counts the scrapes that asked for OpenMetrics, and with `strip` removes `Accept` so the
/// target answers text 0.0.4.
fn observed(router: Router, openmetrics: Arc<AtomicUsize>, strip: bool) -> Router {
    router.layer(axum::middleware::map_request(
        move |mut request: Request| {
            let openmetrics = Arc::clone(&openmetrics);
            async move {
                let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
                if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
                    openmetrics.fetch_add(1, Ordering::Relaxed);
                }
                if strip {
                    request.headers_mut().remove(ACCEPT);
                }
                request
            }
        },
    ))
}

fn value(result: &serde_json::Value) -> f64 {
    result["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("sample value")
}

/// The one series `promql` selects, once Prometheus has it.
async fn one(
    prometheus: &support::Prometheus,
    client: &reqwest::Client,
    promql: &str,
) -> serde_json::Value {
    let results = support::eventually(Duration::from_secs(30), promql, || async {
        prometheus
            .query(client, promql)
            .await
            .filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(results.len(), 1, "{promql}: {results:#?}");
    results[0].clone()
}

fn labels_without_target(result: &serde_json::Value) -> BTreeMap<String, String> {
    result["metric"]
        .as_object()
        .expect("labels")
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "job" | "instance" | "__name__"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The samples the last scrape of `job` read, and the series Prometheus holds for it.
async fn read_scraped_and_stored(
    prometheus: &support::Prometheus,
    client: &reqwest::Client,
    job: &str,
) -> Option<(f64, f64)> {
    let scraped = format!("scrape_samples_scraped{{job=\"{job}\"}}");
    let stored = format!("count({{job=\"{job}\",__name__!~\"up|scrape_.+\"}})");
    let scraped = prometheus.query(client, &scraped).await?;
    let stored = prometheus.query(client, &stored).await?;
    Some((value(scraped.first()?), value(stored.first()?)))
}

/// [`read_scraped_and_stored`], read again a few scrapes later when they differ: a target's
/// series set may grow between two queries, a repeated series differs every time.
async fn scraped_and_stored(
    prometheus: &support::Prometheus,
    client: &reqwest::Client,
    job: &str,
) -> Option<(f64, f64)> {
    let first = read_scraped_and_stored(prometheus, client, job).await?;
    if first.0 == first.1 {
        return Some(first);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    read_scraped_and_stored(prometheus, client, job).await
}

/// What our own reader finds wrong in the body `target` serves to `job`'s scrapes.
async fn body_violations(client: &reqwest::Client, target: &str, job: &str) -> Vec<String> {
    use support::exposition::{self, Dialect};
    // Prometheus 2.x's own `Accept`.
    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let body = client
        .get(format!("http://{target}/metrics"))
        .header(ACCEPT, PROMETHEUS_ACCEPT)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let dialect = match job.starts_with("om_") {
        true => Dialect::OpenMetrics,
        false => Dialect::Text,
    };
    let (read, mut violations) = exposition::read(&body, dialect);
    violations.extend(exposition::contract_violations(&read, dialect, true));
    violations
}

/// The value of Prometheus's own `counter` in a self-scrape taken after `after` (seconds).
async fn self_scraped(
    prometheus: &support::Prometheus,
    client: &reqwest::Client,
    counter: &str,
    after: f64,
) -> f64 {
    let fresh = format!(
        "{counter}{{job=\"prometheus\"}} and timestamp({counter}{{job=\"prometheus\"}}) > {after}"
    );
    let results = support::eventually(Duration::from_secs(30), &fresh, || async {
        prometheus
            .query(client, &fresh)
            .await
            .filter(|r| !r.is_empty())
    })
    .await;
    value(&results[0])
}

const JOBS: [&str; 4] = ["om_telemetry", "text_telemetry", "om_views", "text_views"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_hostile_state_whole_in_both_formats() {
    let telemetry = hostile_telemetry();
    let (reader, _provider) = hostile_views();
    let asked: Vec<Arc<AtomicUsize>> = JOBS.iter().map(|_| Arc::default()).collect();
    let routers = [
        observed(metrics_router(&telemetry), Arc::clone(&asked[0]), false),
        observed(metrics_router(&telemetry), Arc::clone(&asked[1]), true),
        observed(reader_router(reader.clone()), Arc::clone(&asked[2]), false),
        observed(reader_router(reader), Arc::clone(&asked[3]), true),
    ];
    let mut jobs = String::new();
    let mut targets = Vec::new();
    for (job, router) in JOBS.iter().zip(routers) {
        let target = support::serve(router).await;
        targets.push(target);
        jobs.push_str(&format!(
            "- job_name: {job}\n  static_configs:\n  - targets: ['{target}']\n"
        ));
    }
    let prometheus = support::Prometheus::start_with_own_port(|port| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}\
             - job_name: prometheus\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
        )
    });
    let client = reqwest::Client::new();

    // Three scrapes of every target, all up.
    for job in JOBS {
        let scrapes = format!("count_over_time(up{{job=\"{job}\"}}[1h])");
        support::eventually(Duration::from_secs(60), &scrapes, || async {
            let r = prometheus.query(&client, &scrapes).await?;
            (r.len() == 1 && value(&r[0]) >= 3.0).then_some(())
        })
        .await;
        let up = format!("min_over_time(up{{job=\"{job}\"}}[1h])");
        assert_eq!(
            value(&one(&prometheus, &client, &up).await),
            1.0,
            "{job} was down"
        );
    }
    // Prometheus's own `Accept` negotiated OpenMetrics on the OpenMetrics targets.
    assert!(asked[0].load(Ordering::Relaxed) >= 3 && asked[2].load(Ordering::Relaxed) >= 3);

    // Prometheus stored every sample of those scrapes. Prometheus 2.x keeps the first of
    // two samples of one series in one scrape and counts nothing, so compare what it
    // scraped with the series it holds; and its own counters of rejected samples (which
    // see a series given two values for one timestamp across scrapes) stay 0, read from a
    // self-scrape taken after those scrapes.
    for (job, target) in JOBS.into_iter().zip(&targets) {
        let (scraped, stored) = support::eventually(
            Duration::from_secs(30),
            "scraped and stored samples",
            || scraped_and_stored(&prometheus, &client, job),
        )
        .await;
        if scraped != stored {
            let said = body_violations(&client, &target.to_string(), job).await;
            panic!("{job}: {scraped} samples scraped, {stored} series stored; the body: {said:#?}");
        }
    }
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for counter in [
        "prometheus_target_scrapes_sample_duplicate_timestamp_total",
        "prometheus_target_scrapes_sample_out_of_order_total",
        "prometheus_target_scrapes_sample_out_of_bounds_total",
    ] {
        let total = self_scraped(&prometheus, &client, counter, after).await;
        assert_eq!(total, 0.0, "{counter}");
    }

    // One series set in both formats, target for target.
    for (om, text) in [
        ("om_telemetry", "text_telemetry"),
        ("om_views", "text_views"),
    ] {
        let of = |job: &'static str| {
            let prometheus = &prometheus;
            let client = &client;
            async move {
                let series = prometheus
                    .series(client, &format!("{{job=\"{job}\"}}"))
                    .await
                    .expect("series");
                series
                    .into_iter()
                    .map(|mut labels| {
                        labels.remove("job");
                        labels.remove("instance");
                        format!("{labels:?}")
                    })
                    .collect::<BTreeSet<String>>()
            }
        };
        let (om_series, text_series) = (of(om).await, of(text).await);
        assert!(om_series.len() > 10, "{om_series:#?}");
        let only_om: Vec<_> = om_series.difference(&text_series).collect();
        let only_text: Vec<_> = text_series.difference(&om_series).collect();
        assert!(
            only_om.is_empty() && only_text.is_empty(),
            "only in {om}: {only_om:#?}\nonly in {text}: {only_text:#?}"
        );
    }

    for job in JOBS {
        let telemetry = job.ends_with("telemetry");
        let scope = if telemetry {
            "hostile.lib"
        } else {
            "views.lib"
        };
        let name = if telemetry {
            "req_total"
        } else {
            "key_9lives_requests_total"
        };
        let hostile = one(&prometheus, &client, &format!("{name}{{job=\"{job}\"}}")).await;
        let mut want = hostile_labels(scope);
        if !telemetry {
            want.insert("otel_scope_version".into(), "1.0".into());
        }
        assert_eq!(labels_without_target(&hostile), want, "{job}");
        assert_eq!(value(&hostile), if telemetry { 3.0 } else { 4.0 });

        let service = if telemetry {
            "streamhouse;svc2"
        } else {
            "views;v2"
        };
        let target_info = one(
            &prometheus,
            &client,
            &format!("target_info{{job=\"{job}\"}}"),
        )
        .await;
        assert_eq!(target_info["metric"]["service_name"], service, "{job}");

        // Names owned by another family never reach Prometheus.
        let shadowed =
            format!("{{job=\"{job}\",__name__=~\"target|target_total|jobs_total|x_y_z_total\"}}");
        let found = prometheus.query(&client, &shadowed).await.expect("query");
        assert!(found.is_empty(), "{job}: {found:#?}");
    }

    for job in ["om_telemetry", "text_telemetry"] {
        let jobs = one(&prometheus, &client, &format!("jobs{{job=\"{job}\"}}")).await;
        assert_eq!(value(&jobs), 1.5);
        // `foo_count` is the histogram's count (1), not the foreign gauge's 9.
        let count = one(&prometheus, &client, &format!("foo_count{{job=\"{job}\"}}")).await;
        assert_eq!(value(&count), 1.0);
        // The catalog's own counter keeps its name; the foreign gauge is not among it.
        let records = format!("streamhouse_producer_records_total{{job=\"{job}\"}}");
        let records = one(&prometheus, &client, &records).await;
        assert_eq!(records["metric"]["topic"], "orders", "{records:#?}");
        let own = one(
            &prometheus,
            &client,
            &format!("own_twice_total{{job=\"{job}\"}}"),
        )
        .await;
        assert_eq!(labels_without_target(&own), BTreeMap::new());
        // Families rule 4: no `_sum`, so no `_count`, under a negative bound.
        let offset = format!("{{job=\"{job}\",__name__=~\"offset_(sum|count)\"}}");
        assert!(
            prometheus
                .query(&client, &offset)
                .await
                .expect("query")
                .is_empty()
        );
        // Every hostile label value arrives as it was recorded.
        let values = format!("values_total{{job=\"{job}\"}}");
        let results = prometheus.query(&client, &values).await.expect("query");
        let got: BTreeSet<String> = results
            .iter()
            .map(|r| r["metric"]["v"].as_str().unwrap_or_default().to_owned())
            .collect();
        let want: BTreeSet<String> = support::HOSTILE.iter().map(|v| v.to_string()).collect();
        assert_eq!(got, want, "{job}");
        // Families rule 5: what was left out is counted, per reason.
        for reason in ["name_conflict", "duplicate_series", "invalid_value"] {
            let dropped = format!(
                "streamhouse_telemetry_exposition_dropped_total{{job=\"{job}\",reason=\"{reason}\"}}"
            );
            assert!(
                value(&one(&prometheus, &client, &dropped).await) > 0.0,
                "{dropped}"
            );
        }
    }

    for job in ["om_views", "text_views"] {
        let kept = one(&prometheus, &client, &format!("a_b{{job=\"{job}\"}}")).await;
        assert_eq!(value(&kept), 1.0, "{job}: the first stream, a.b, is kept");
        let colon = one(
            &prometheus,
            &client,
            &format!("x:y_z_total{{job=\"{job}\"}}"),
        )
        .await;
        assert_eq!(value(&colon), 5.0);
        assert_eq!(
            value(&one(&prometheus, &client, &format!("key_{{job=\"{job}\"}}")).await),
            4.0,
            "{job}: of the two names with nothing valid, \"\" sorts first"
        );
        let inf = format!("http_server_duration_milliseconds_bucket{{job=\"{job}\",le=\"+Inf\"}}");
        assert_eq!(value(&one(&prometheus, &client, &inf).await), 1.0);
    }
}

/// Both checks above can fail: a target repeating a series in one scrape leaves Prometheus
/// holding fewer series than it scraped, and one giving a series two values for one
/// timestamp across scrapes makes Prometheus count a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_shows_both_kinds_of_repeated_series() {
    let repeats = Router::new().route(
        "/metrics",
        get(|| async { "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n" }),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let scrapes = Arc::new(AtomicUsize::new(0));
    let rewrites = Router::new().route(
        "/metrics",
        get(move || {
            let n = scrapes.fetch_add(1, Ordering::Relaxed);
            async move { format!("# TYPE b gauge\nb {n} {now_ms}\n") }
        }),
    );
    let (repeats, rewrites) = (
        support::serve(repeats).await,
        support::serve(rewrites).await,
    );
    let prometheus = support::Prometheus::start_with_own_port(|port| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
             - job_name: repeats\n  static_configs:\n  - targets: ['{repeats}']\n\
             - job_name: rewrites\n  static_configs:\n  - targets: ['{rewrites}']\n\
             - job_name: prometheus\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
        )
    });
    let client = reqwest::Client::new();
    let (scraped, stored) = support::eventually(
        Duration::from_secs(60),
        "scraped and stored samples",
        || scraped_and_stored(&prometheus, &client, "repeats"),
    )
    .await;
    assert_eq!((scraped, stored), (2.0, 1.0));
    let counter = "prometheus_target_scrapes_sample_duplicate_timestamp_total";
    support::eventually(Duration::from_secs(60), "a counted duplicate", || async {
        (self_scraped(&prometheus, &client, counter, 0.0).await > 0.0).then_some(())
    })
    .await;
}
