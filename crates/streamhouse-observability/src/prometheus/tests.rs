//! One test per rule of `docs/exposition.md`, with the exact lines expected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, SdkMeterProvider, Stream};

use super::{Format, PrometheusReader};
use crate::config::{PrometheusConfig, ScopeLabels};

/// A provider with `reader`, an empty resource unless given, and views renaming instruments
/// (`rename` maps instrument name to exposed name, which the SDK does not validate).
fn provider(
    reader: &PrometheusReader,
    resource: Resource,
    rename: &[(&'static str, &'static str)],
) -> SdkMeterProvider {
    let rename: HashMap<&str, &str> = rename.iter().copied().collect();
    SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader.clone())
        .with_view(move |i: &Instrument| {
            let name = rename.get(i.name())?;
            Stream::builder().with_name(*name).build().ok()
        })
        .build()
}

fn reader(config: PrometheusConfig) -> PrometheusReader {
    PrometheusReader::new(config)
}

fn no_scope_labels() -> PrometheusConfig {
    PrometheusConfig::default().with_scope_labels(ScopeLabels::None)
}

fn empty() -> Resource {
    Resource::builder_empty().build()
}

fn text(reader: &PrometheusReader) -> String {
    reader.render(Format::Text).unwrap()
}

fn openmetrics(reader: &PrometheusReader) -> String {
    reader.render(Format::OpenMetrics).unwrap()
}

/// The sample lines of `body` (no comments).
fn samples(body: &str) -> Vec<&str> {
    body.lines().filter(|l| !l.starts_with('#')).collect()
}

fn dropped(reader: &PrometheusReader) -> HashMap<&'static str, u64> {
    let mut counts = HashMap::new();
    reader.dropped_series().for_each(|reason, n| {
        counts.insert(reason, n);
    });
    counts
}

fn scope(name: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name).build()
}

#[test]
fn keys_that_sanitise_to_one_name_merge_in_key_order() {
    let r = reader(no_scope_labels());
    let p = provider(&r, empty(), &[]);
    let jobs = p.meter("m").u64_counter("jobs").build();
    jobs.add(
        1,
        &[
            KeyValue::new("http_route", "b"),
            KeyValue::new("http.route", "a"),
            KeyValue::new("http-route", 7),
        ],
    );
    assert_eq!(samples(&text(&r)), [r#"jobs_total{http_route="7;a;b"} 1"#]);
}

#[test]
fn reserved_label_names_are_exported_everywhere() {
    let r = reader(PrometheusConfig::default().with_scope_labels(ScopeLabels::All));
    let p = provider(&r, empty(), &[]);
    let meter = p.meter_with_scope(scope("lib"));
    let h = meter.f64_histogram("h").with_boundaries(vec![1.0]).build();
    h.record(
        0.5,
        &[KeyValue::new("le", "x"), KeyValue::new("exported_le", "y")],
    );
    let g = meter.i64_gauge("g").build();
    g.record(
        3,
        &[
            KeyValue::new("quantile", "q"),
            KeyValue::new("otel_scope_name", "fake"),
        ],
    );
    let body = text(&r);
    assert_eq!(
        samples(&body),
        [
            r#"g{exported_otel_scope_name="fake",exported_quantile="q",otel_scope_name="lib"} 3"#,
            r#"h_bucket{exported_le="y;x",otel_scope_name="lib",le="1"} 1"#,
            r#"h_bucket{exported_le="y;x",otel_scope_name="lib",le="+Inf"} 1"#,
            r#"h_sum{exported_le="y;x",otel_scope_name="lib"} 0.5"#,
            r#"h_count{exported_le="y;x",otel_scope_name="lib"} 1"#,
        ],
        "{body}"
    );
}

#[test]
fn names_are_sanitised_with_key_prefixes_and_job_instance_kept() {
    let r = reader(no_scope_labels());
    let p = provider(&r, empty(), &[("two", "2xx..count"), ("under", "_tmp")]);
    let meter = p.meter("m");
    meter.u64_gauge("two").build().record(
        1,
        &[
            KeyValue::new("9lives", "a"),
            KeyValue::new("__name__", "b"),
            KeyValue::new("_x", "c"),
            KeyValue::new("job", "d"),
            KeyValue::new("instance", "e"),
        ],
    );
    meter.u64_gauge("under").build().record(2, &[]);
    assert_eq!(
        samples(&text(&r)),
        [
            r#"key_2xx_count{instance="e",job="d",key_9lives="a",key_name_="b",key_x="c"} 1"#,
            "key_tmp 2",
        ]
    );
}

#[test]
fn one_name_from_two_scopes_keeps_the_first_scopes_series() {
    for order in [["b", "a"], ["a", "b"]] {
        let r = reader(no_scope_labels());
        let p = provider(&r, empty(), &[]);
        for name in order {
            let value = if name == "a" { 10 } else { 20 };
            let c = p.meter_with_scope(scope(name)).u64_counter("jobs").build();
            c.add(value, &[KeyValue::new("k", "same")]);
            c.add(1, &[KeyValue::new("k", name)]);
        }
        assert_eq!(
            samples(&text(&r)),
            [
                r#"jobs_total{k="a"} 1"#,
                r#"jobs_total{k="b"} 1"#,
                r#"jobs_total{k="same"} 10"#,
            ]
        );
        assert_eq!(dropped(&r)["duplicate_series"], 1);
    }
}

#[test]
fn instrument_names_that_expose_one_name_form_one_family() {
    let r = reader(no_scope_labels());
    let p = provider(&r, empty(), &[]);
    let meter = p.meter("m");
    meter
        .u64_counter("jobs")
        .with_description("first")
        .build()
        .add(1, &[]);
    meter
        .u64_counter("jobs_total")
        .with_description("second")
        .build()
        .add(2, &[KeyValue::new("k", "v")]);
    meter.u64_counter("a_b").build().add(3, &[]);
    meter.u64_counter("a.b").build().add(4, &[]);
    assert_eq!(
        text(&r),
        "# HELP a_b_total \n# TYPE a_b_total counter\na_b_total 4\n\
         # HELP jobs_total first\n# TYPE jobs_total counter\njobs_total 1\njobs_total{k=\"v\"} 2\n"
    );
    assert_eq!(dropped(&r)["duplicate_series"], 1);
}

#[test]
fn clashing_families_keep_one_by_the_documented_order() {
    let r = reader(no_scope_labels());
    let p = provider(
        &r,
        Resource::builder_empty()
            .with_attribute(KeyValue::new("service.name", "s"))
            .build(),
        &[],
    );
    let meter = p.meter("lib");
    meter.u64_counter("jobs").build().add(1, &[]);
    meter.u64_gauge("jobs").build().record(2, &[]);
    let foo = meter
        .f64_histogram("foo")
        .with_boundaries(vec![1.0])
        .build();
    foo.record(0.5, &[]);
    meter.u64_gauge("foo_count").build().record(9, &[]);
    meter.u64_gauge("target_info").build().record(5, &[]);
    meter.u64_gauge("target").build().record(6, &[]);
    // A foreign gauge named like a catalog counter's OpenMetrics family loses to it.
    meter
        .u64_gauge("streamhouse_cache_hits")
        .build()
        .record(7, &[]);
    let own = p.meter(crate::SCOPE_NAME);
    own.u64_counter("streamhouse_cache_hits_total")
        .build()
        .add(8, &[]);
    assert_eq!(
        samples(&text(&r)),
        [
            r#"target_info{service_name="s"} 1"#,
            "foo_bucket{le=\"1\"} 1",
            "foo_bucket{le=\"+Inf\"} 1",
            "foo_sum 0.5",
            "foo_count 1",
            "jobs 2",
            "streamhouse_cache_hits_total 8",
        ]
    );
    assert_eq!(dropped(&r)["name_conflict"], 5);
    let body = openmetrics(&r);
    assert_eq!(body.matches("# TYPE").count(), 4, "{body}");
}

#[test]
fn the_resource_merges_colliding_keys() {
    let r = reader(no_scope_labels());
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service_name", "b"),
            KeyValue::new("service.name", "a"),
            KeyValue::new("le", "x"),
        ])
        .build();
    let p = provider(&r, resource, &[]);
    p.meter("m").u64_counter("c").build().add(1, &[]);
    assert_eq!(
        samples(&text(&r)),
        [
            r#"target_info{exported_le="x",service_name="a;b"} 1"#,
            "c_total 1"
        ]
    );
}

#[test]
fn negative_bounds_drop_sum_and_count_in_both_formats() {
    let r = reader(no_scope_labels());
    let p = provider(&r, empty(), &[]);
    let h = p
        .meter("m")
        .f64_histogram("temp")
        .with_unit("Cel")
        .with_boundaries(vec![-10.0, 0.0, 10.0])
        .build();
    h.record(-5.0, &[]);
    assert_eq!(
        samples(&text(&r)),
        [
            r#"temp_celsius_bucket{le="-10"} 0"#,
            r#"temp_celsius_bucket{le="0"} 1"#,
            r#"temp_celsius_bucket{le="10"} 1"#,
            r#"temp_celsius_bucket{le="+Inf"} 1"#,
        ]
    );
    let body = openmetrics(&r);
    assert!(!body.contains("_sum") && !body.contains("_count"), "{body}");
}

#[test]
fn negative_counters_are_left_out() {
    // The SDK itself drops NaN and infinite measurements; a negative increment or an
    // observable counter reporting a negative total reaches the bridge.
    let r = reader(no_scope_labels());
    let p = provider(&r, empty(), &[]);
    let meter = p.meter("m");
    let c = meter.f64_counter("c").build();
    c.add(-1.0, &[KeyValue::new("k", "negative")]);
    c.add(2.5, &[KeyValue::new("k", "ok")]);
    let _observed = meter
        .f64_observable_counter("o")
        .with_callback(|observer| observer.observe(-5.0, &[]))
        .build();
    assert_eq!(samples(&text(&r)), [r#"c_total{k="ok"} 2.5"#]);
    assert_eq!(dropped(&r)["invalid_value"], 2);
}

#[test]
fn foreign_scopes_get_scope_labels_by_default_and_own_scope_does_not() {
    let r = reader(PrometheusConfig::default());
    let p = provider(&r, empty(), &[]);
    let lib = InstrumentationScope::builder("lib")
        .with_version("1.2")
        .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
        .with_attributes([KeyValue::new("team", "x"), KeyValue::new("name", "shadow")])
        .build();
    p.meter_with_scope(lib)
        .u64_counter("lib_calls")
        .build()
        .add(1, &[]);
    p.meter(crate::SCOPE_NAME)
        .u64_counter("own_calls")
        .build()
        .add(2, &[]);
    assert_eq!(
        samples(&text(&r)),
        [
            "lib_calls_total{exported_otel_scope_name=\"shadow\",otel_scope_name=\"lib\",\
             otel_scope_schema_url=\"https://opentelemetry.io/schemas/1.30.0\",\
             otel_scope_team=\"x\",otel_scope_version=\"1.2\"} 1",
            "own_calls_total 2",
        ]
    );
}

#[test]
fn the_same_state_renders_the_same_bytes_whatever_the_creation_order() {
    let build = |reverse: bool| {
        let r = reader(PrometheusConfig::default().with_created_samples(false));
        let p = provider(&r, empty(), &[("x", "same.name"), ("y", "same_name")]);
        let mut steps: Vec<Box<dyn Fn()>> = Vec::new();
        for (scope_name, instrument, value) in [("s1", "x", 1u64), ("s2", "y", 2), ("s3", "x", 3)] {
            let p = p.clone();
            steps.push(Box::new(move || {
                let meter = p.meter_with_scope(scope(scope_name));
                let c = meter
                    .u64_counter(instrument)
                    .with_description(scope_name)
                    .build();
                c.add(
                    value,
                    &[KeyValue::new("a.b", "v"), KeyValue::new("a_b", "w")],
                );
            }));
        }
        if reverse {
            steps.reverse();
        }
        steps.iter().for_each(|step| step());
        (text(&r), openmetrics(&r))
    };
    let forward = build(false);
    assert_eq!(forward, build(true));
    assert!(
        forward.0.contains("# HELP same_name_total s1\n"),
        "{}",
        forward.0
    );
}

#[test]
fn openmetrics_units_created_samples_and_counter_families() {
    let r = reader(
        no_scope_labels()
            .with_created_samples(true)
            .with_target_info(false),
    );
    let p = provider(&r, empty(), &[]);
    let meter = p.meter("m");
    meter
        .f64_counter("io")
        .with_unit("By")
        .build()
        .add(5.0, &[]);
    let rate = meter.f64_gauge("speed").with_unit("m/s").build();
    rate.record(1.5, &[]);
    let body = openmetrics(&r);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        &lines[..3],
        [
            "# TYPE io_bytes counter",
            "# HELP io_bytes ",
            "# UNIT io_bytes bytes"
        ]
    );
    assert_eq!(lines[3], "io_bytes_total 5");
    assert!(lines[4].starts_with("io_bytes_created 1"), "{body}");
    assert_eq!(
        &lines[5..],
        [
            "# TYPE speed_meters_per_second gauge",
            "# HELP speed_meters_per_second ",
            "# UNIT speed_meters_per_second meters_per_second",
            "speed_meters_per_second 1.5",
            "# EOF",
        ]
    );
    // Text 0.0.4 has no _created samples.
    assert!(!text(&r).contains("_created"));
}

/// Counts `tracing` warnings.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.lock().unwrap().push(format!("{event:?}"));
        }
    }
}

#[test]
fn drops_are_counted_per_render_and_logged_once_per_name() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        let r = reader(no_scope_labels());
        let p = provider(&r, empty(), &[]);
        p.meter("m").u64_counter("jobs").build().add(1, &[]);
        p.meter("m").u64_gauge("jobs").build().record(2, &[]);
        for _ in 0..3 {
            text(&r);
        }
        assert_eq!(dropped(&r)["name_conflict"], 3);
    });
    let warnings = warnings.0.lock().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("jobs_total") && warnings[0].contains("name_conflict"));
}

#[test]
fn exponential_histograms_are_counted_as_unsupported() {
    let r = reader(no_scope_labels());
    let p = SdkMeterProvider::builder()
        .with_reader(r.clone())
        .with_resource(empty())
        .with_view(|_: &Instrument| {
            Stream::builder()
                .with_aggregation(Aggregation::Base2ExponentialHistogram {
                    max_size: 20,
                    max_scale: 5,
                    record_min_max: false,
                })
                .build()
                .ok()
        })
        .build();
    let e = p.meter("m").f64_histogram("e").build();
    // Histograms reach the reader as deltas: one is seen in collections where it changed.
    e.record(1.0, &[]);
    assert_eq!(text(&r), "");
    e.record(1.0, &[]);
    assert_eq!(openmetrics(&r), "# EOF\n");
    assert_eq!(text(&r), "");
    assert_eq!(dropped(&r)["unsupported"], 2);
}

#[test]
fn an_empty_value_is_no_label() {
    let r = reader(PrometheusConfig::default());
    let p = provider(&r, empty(), &[]);
    let c = p.meter_with_scope(scope("")).u64_counter("c").build();
    c.add(1, &[KeyValue::new("k", "")]);
    c.add(2, &[]);
    c.add(3, &[KeyValue::new("k", ""), KeyValue::new("j", "x")]);
    // The scope name is empty too: no otel_scope_name label.
    assert_eq!(samples(&text(&r)), ["c_total 2", r#"c_total{j="x"} 3"#]);
    assert_eq!(dropped(&r)["duplicate_series"], 1);
}

#[test]
fn a_histogram_of_signed_values_has_no_sum_or_count() {
    let r = reader(no_scope_labels());
    let p = provider(&r, empty(), &[]);
    let h = p
        .meter("m")
        .f64_histogram("delta")
        .with_boundaries(vec![0.0, 1.0])
        .build();
    h.record(-2.0, &[]);
    h.record(0.5, &[]);
    assert_eq!(
        samples(&text(&r)),
        [
            r#"delta_bucket{le="0"} 1"#,
            r#"delta_bucket{le="1"} 2"#,
            r#"delta_bucket{le="+Inf"} 2"#,
        ]
    );
}

#[test]
fn a_repeated_key_exposes_alike_whichever_form_the_sdk_reports() {
    // The SDK keeps a set with a repeated key under both the given order and its sorted,
    // deduplicated form, and reports whichever its hash map yields first: fresh providers
    // (fresh hash seeds) must all render the same bytes, with no label twice.
    let bodies: std::collections::HashSet<String> = (0..24)
        .map(|_| {
            let r = reader(no_scope_labels());
            let p = provider(&r, empty(), &[]);
            let c = p.meter("m").u64_counter("c").build();
            c.add(1, &[KeyValue::new("a", "1"), KeyValue::new("b", "2")]);
            c.add(2, &[KeyValue::new("b", "2"), KeyValue::new("a", "1")]);
            let repeated = [
                KeyValue::new("b", "2"),
                KeyValue::new("a", "0"),
                KeyValue::new("a", "1"),
            ];
            c.add(4, &repeated);
            text(&r)
        })
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let body = bodies.into_iter().next().unwrap();
    // The canonical form keeps a="0", a set of its own.
    assert_eq!(
        samples(&body),
        [r#"c_total{a="0",b="2"} 4"#, r#"c_total{a="1",b="2"} 3"#]
    );
}

/// Renders the text and OpenMetrics bodies through kept label texts, then through the general
/// path (every series gathered and sorted at the scrape), then through texts rendered anew.
fn three_ways(reader: &PrometheusReader) -> [(String, String); 3] {
    let kept = (text(reader), openmetrics(reader));
    super::families::GENERAL_ONLY.set(true);
    let general = (text(reader), openmetrics(reader));
    super::families::GENERAL_ONLY.set(false);
    reader.forget_rendered();
    let fresh = (text(reader), openmetrics(reader));
    [kept, general, fresh]
}

#[test]
fn kept_label_texts_render_what_the_general_path_does_through_churn() {
    let reader = reader(PrometheusConfig::default());
    let provider = provider(&reader, empty(), &[]);
    let own = provider.meter(crate::SCOPE_NAME);
    let foreign = provider.meter("other");
    let counter = own.u64_counter("c").build();
    let histogram = foreign.f64_histogram("h").build();
    let gauge = own.i64_gauge("g").build();
    // Values whose text order differs from their byte order once quoted (`a!` sorts
    // before `a"`), escapes, and multi-byte characters.
    let values = ["a", "a!", "a,", "b", "é", "q\"x", "z\\", "0", "10", "9", ""];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut renders = 0;
    for round in 0..40 {
        for _ in 0..1 + next(12) {
            let topic = values[next(values.len())];
            let partition = next(3).to_string();
            let attributes = [
                KeyValue::new("topic", topic),
                KeyValue::new("partition", partition),
            ];
            match next(6) {
                0 => counter.add(next(5) as u64, &attributes),
                // Keys that sanitise alike: such a stream's series may render alike.
                5 => counter.add(1, &[KeyValue::new(["x.y", "x_y"][next(2)], topic)]),
                1 => histogram.record(next(100) as f64 / 10.0, &attributes),
                2 => gauge.record(next(100) as i64 - 50, &attributes[..1]),
                3 => {
                    let scope = [crate::SCOPE_NAME, "other"][next(2)];
                    reader.collector().remove(scope, "topic", topic);
                }
                _ => {}
            }
        }
        let [kept, general, fresh] = three_ways(&reader);
        assert_eq!(kept, general, "round {round}");
        assert_eq!(kept, fresh, "round {round}");
        renders += samples(&kept.0).len();
    }
    assert!(
        renders > 100,
        "the churn exposed too little to prove anything: {renders}"
    );
}

/// Takes `accept` writes, then fails every write; records the size of each write.
struct Failing {
    accept: usize,
    writes: Vec<usize>,
}

impl std::io::Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.writes.len() == self.accept {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline",
            ));
        }
        self.writes.push(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn render_to_writes_in_chunks_and_stops_at_the_first_failed_write() {
    let reader = reader(PrometheusConfig::default());
    let provider = provider(&reader, empty(), &[]);
    let histogram = provider.meter("m").f64_histogram("latency").build();
    for i in 0..5000 {
        histogram.record(1.0, &[KeyValue::new("topic", format!("topic-{i:05}"))]);
    }
    let whole = text(&reader);
    assert!(
        whole.len() > 8 * super::RENDER_CHUNK_BYTES,
        "{}",
        whole.len()
    );

    let mut streamed = Vec::new();
    let written = reader.render_to(Format::Text, &mut streamed).unwrap();
    assert_eq!(written, whole.len() as u64);
    assert_eq!(String::from_utf8(streamed).unwrap(), whole);

    let mut failing = Failing {
        accept: 2,
        writes: Vec::new(),
    };
    let error = reader.render_to(Format::Text, &mut failing).unwrap_err();
    assert!(
        matches!(&error, super::RenderError::Write(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{error}"
    );
    // Chunks end at series boundaries, a little past the chunk size, and nothing is written
    // after a failure (`tests/scrape_memory.rs` shows the body is never held whole).
    assert_eq!(failing.writes.len(), 2);
    for size in &failing.writes {
        assert!(
            (super::RENDER_CHUNK_BYTES..2 * super::RENDER_CHUNK_BYTES).contains(size),
            "{size}"
        );
    }
}
