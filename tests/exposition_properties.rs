//! Property tests of docs/exposition.md. Random hostile states (scopes, every instrument
//! kind, hostile names given through views, colliding and reserved attribute keys, hostile
//! values, a hostile resource, every bridge option) render bodies that
//!
//! - `promtool check metrics` parses (lint advice is fine, a parse error is not),
//! - Prometheus's own OpenMetrics parser (through `promtool tsdb create-blocks-from`) and
//!   the strict one of Python `prometheus_client` accept whole, the latter sample for
//!   sample as we read them,
//! - repeat no series, no label within a line, no family; put every sample under the family
//!   whose header precedes it; let no two families own one name; rename reserved labels;
//! - name families and labels only as the contract derives them from the state,
//! - expose one series set in both formats (`_created` aside) and `_created` only when asked,
//! - and are byte-identical when the same state is built in another order.
//!
//! Arbitrary text (label keys and values, HELP, names, units) comes back as it went in.
//! A failure prints the shrunk input and the offending lines.

mod support;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, SdkMeterProvider, Stream};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use streamhouse_observability::SCOPE_NAME;
use streamhouse_observability::config::{PrometheusConfig, ScopeLabels};
use streamhouse_observability::prometheus::{Format, PrometheusReader};
use support::PromtoolVerdict;
use support::exposition::{self, Dialect, Exposition};

// ---------------------------------------------------------------------------------------
// The state: what a process could have created through `Telemetry::meter_provider()`.
// ---------------------------------------------------------------------------------------

/// A string value; `Long` stands for a 10 KiB hostile string, printed short.
#[derive(Clone, PartialEq)]
enum Str {
    S(&'static str),
    Long(usize),
}

impl Str {
    fn value(&self) -> String {
        match self {
            Str::S(s) => (*s).to_owned(),
            Str::Long(n) => "long \"q\" \\ \n\r\t ☃ "
                .chars()
                .cycle()
                .scan(0, |len, c| {
                    *len += c.len_utf8();
                    (*len <= *n).then_some(c)
                })
                .collect(),
        }
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Str::S(s) => write!(f, "{s:?}"),
            Str::Long(n) => write!(f, "Long({n})"),
        }
    }
}

/// An attribute value of any OpenTelemetry type.
#[derive(Clone, Debug, PartialEq)]
enum Attr {
    Str(Str),
    Bool(bool),
    I64(i64),
    F64(f64),
    Strs(Vec<&'static str>),
    I64s(Vec<i64>),
    F64s(Vec<f64>),
    Bools(Vec<bool>),
}

impl Attr {
    fn value(&self) -> Value {
        match self {
            Attr::Str(s) => Value::from(s.value()),
            Attr::Bool(b) => Value::Bool(*b),
            Attr::I64(i) => Value::I64(*i),
            Attr::F64(x) => Value::F64(*x),
            Attr::Strs(v) => Value::Array(Array::String(
                v.iter().map(|s| StringValue::from(*s)).collect(),
            )),
            Attr::I64s(v) => Value::Array(Array::I64(v.clone())),
            Attr::F64s(v) => Value::Array(Array::F64(v.clone())),
            Attr::Bools(v) => Value::Array(Array::Bool(v.clone())),
        }
    }

    fn has_nan(&self) -> bool {
        match self {
            Attr::F64(x) => x.is_nan(),
            Attr::F64s(v) => v.iter().any(|x| x.is_nan()),
            _ => false,
        }
    }
}

type Attrs = Vec<(&'static str, Attr)>;

fn key_values(attrs: &Attrs) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.value()))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    CounterU64,
    CounterF64,
    UpDownI64,
    UpDownF64,
    GaugeF64,
    GaugeU64,
    GaugeI64,
    HistogramF64,
    HistogramU64,
    ObsCounterU64,
    ObsCounterF64,
    ObsUpDownI64,
    ObsUpDownF64,
    ObsGaugeF64,
    ObsGaugeU64,
    ObsGaugeI64,
}

const KINDS: &[Kind] = &[
    Kind::CounterU64,
    Kind::CounterF64,
    Kind::UpDownI64,
    Kind::UpDownF64,
    Kind::GaugeF64,
    Kind::GaugeU64,
    Kind::GaugeI64,
    Kind::HistogramF64,
    Kind::HistogramU64,
    Kind::ObsCounterU64,
    Kind::ObsCounterF64,
    Kind::ObsUpDownI64,
    Kind::ObsUpDownF64,
    Kind::ObsGaugeF64,
    Kind::ObsGaugeU64,
    Kind::ObsGaugeI64,
];

impl Kind {
    fn is_histogram(self) -> bool {
        matches!(self, Kind::HistogramF64 | Kind::HistogramU64)
    }

    fn is_observable(self) -> bool {
        matches!(
            self,
            Kind::ObsCounterU64
                | Kind::ObsCounterF64
                | Kind::ObsUpDownI64
                | Kind::ObsUpDownF64
                | Kind::ObsGaugeF64
                | Kind::ObsGaugeU64
                | Kind::ObsGaugeI64
        )
    }

    /// Last-value cells (gauges, and every observable: the SDK assigns what a callback
    /// reports): two measurements of one cell must agree, or the order would pick the value.
    fn last_value(self) -> bool {
        self.is_observable() || matches!(self, Kind::GaugeF64 | Kind::GaugeU64 | Kind::GaugeI64)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Buckets {
    Default,
    Explicit(Vec<f64>),
    Exponential,
}

#[derive(Clone, Debug, PartialEq)]
struct Measurement {
    attrs: Attrs,
    /// Used as is by counters, up-down counters and histograms (exact quarters, so sums do
    /// not depend on the order); last-value cells use [`cell_value`] instead.
    value: f64,
}

#[derive(Clone, Debug, PartialEq)]
struct InstSpec {
    kind: Kind,
    /// The exposed name, given by a view: the SDK validates only instrument names.
    name: String,
    unit: &'static str,
    description: String,
    buckets: Buckets,
    measurements: Vec<Measurement>,
}

#[derive(Clone, Debug, PartialEq)]
struct ScopeSpec {
    name: &'static str,
    version: Option<&'static str>,
    schema_url: Option<&'static str>,
    attributes: Attrs,
    instruments: Vec<InstSpec>,
}

impl ScopeSpec {
    fn scope(&self) -> InstrumentationScope {
        let mut builder = InstrumentationScope::builder(self.name);
        if let Some(version) = self.version {
            builder = builder.with_version(version);
        }
        if let Some(url) = self.schema_url {
            builder = builder.with_schema_url(url);
        }
        builder
            .with_attributes(key_values(&self.attributes))
            .build()
    }

    /// Equal keys are one SDK meter.
    fn key(&self) -> String {
        let mut attrs = self.attributes.clone();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        format!("{:?}", (self.name, self.version, self.schema_url, attrs))
    }
}

#[derive(Clone, Debug, PartialEq)]
struct State {
    target_info: bool,
    scope_labels: ScopeLabels,
    created: bool,
    resource: Attrs,
    scopes: Vec<ScopeSpec>,
    /// Seeds the other creation and recording order.
    shuffle: u64,
}

impl State {
    fn config(&self) -> PrometheusConfig {
        PrometheusConfig::default()
            .with_target_info(self.target_info)
            .with_scope_labels(self.scope_labels)
            .with_created_samples(self.created)
    }

    fn instruments(&self) -> impl Iterator<Item = (usize, &InstSpec)> {
        self.scopes
            .iter()
            .enumerate()
            .flat_map(|(s, scope)| scope.instruments.iter().map(move |i| (s, i)))
    }

    /// Removes what the SDK itself leaves undefined, so a difference between two orders can
    /// only come from the bridge:
    /// - one resource or scope attribute list with one key twice (kept as given): keep the
    ///   first (a measurement's repeated key is the bridge's to handle, and it does);
    /// - instrument names that differ only in ASCII case in one meter (the SDK merges them
    ///   under the first-created spelling): use the first spelling;
    /// - one stream identity (name, description, unit, kind, number) with two aggregations
    ///   (the SDK keeps the first-created one's): use the first's;
    /// - two streams in one scope with the same name, description and unit but a different
    ///   kind or number: the contract's order (scope, then name, description and unit) ties
    ///   on them, so the later one's description gets its kind.
    fn normalized(mut self) -> State {
        fn dedup(attrs: &mut Attrs) {
            let mut seen = Vec::new();
            attrs.retain(|(k, _)| {
                let fresh = !seen.contains(k);
                seen.push(*k);
                fresh
            });
        }
        dedup(&mut self.resource);
        let mut spelling: HashMap<(String, String), String> = HashMap::new();
        let mut kinds: HashMap<(String, String, String, &'static str), Kind> = HashMap::new();
        let mut buckets: HashMap<String, Buckets> = HashMap::new();
        for scope in &mut self.scopes {
            dedup(&mut scope.attributes);
            let key = scope.key();
            for inst in &mut scope.instruments {
                inst.name = spelling
                    .entry((key.clone(), inst.name.to_ascii_lowercase()))
                    .or_insert_with(|| inst.name.clone())
                    .clone();
                let first = *kinds
                    .entry((
                        key.clone(),
                        inst.name.clone(),
                        inst.description.clone(),
                        inst.unit,
                    ))
                    .or_insert(inst.kind);
                if first != inst.kind {
                    inst.description = format!("{} [{:?}]", inst.description, inst.kind);
                }
                let identity = format!(
                    "{key} {:?}",
                    (&inst.name, &inst.description, inst.unit, inst.kind)
                );
                inst.buckets = buckets
                    .entry(identity)
                    .or_insert_with(|| inst.buckets.clone())
                    .clone();
            }
        }
        self
    }
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

const NAME_PARTS: &[&str] = &[
    "a", "b", "jobs", "foo", "x", "target", "http", "9", "9lives", "_", "__", ":", ".", "-", "/",
    "a.b", "a_b", "a-b", "☃", "ü", "日本", "Mixed", " ", "\"", "total", "le",
];
const NAME_SUFFIXES: &[&str] = &[
    "", "_total", "_count", "_sum", "_bucket", "_created", "_info", ".total", "_seconds", "_ratio",
    "_bytes", ":", "_",
];
const FIXED_NAMES: &[&str] = &[
    "target",
    "target_info",
    "jobs",
    "jobs_total",
    "foo",
    "foo_count",
    "foo_sum",
    "foo_bucket",
    "foo_created",
    "foo_total",
    "a.b",
    "a_b",
    "a-b",
    "a/b",
    "9lives",
    "_x",
    "__name__",
    "x_total_total",
    "",
    "...",
    "☃",
    "http.server.request.duration",
    "streamhouse_telemetry_exposition_dropped_total",
];
const UNITS: &[&str] = &[
    "",
    "s",
    "By",
    "ms",
    "1",
    "m/s",
    "{packet}/s",
    "%",
    "{request}",
    "By/s",
    "KiBy",
    "Cel",
    "foo bar",
    "/s",
    "s/",
    "total",
    "seconds",
    "_",
    "{",
    "m/",
    "1/s",
    "x/y/z",
    "mo",
    "GiBy/h",
    "d",
    "TiBy",
];
const DESCRIPTIONS: &[&str] = &[
    "",
    "plain",
    "quote \" and backslash \\",
    "new\nline",
    "tab\tand\rcr",
    "☃ unicode",
    "trailing backslash\\",
    "\\n literal",
];
const BOUND_SETS: &[&[f64]] = &[
    &[],
    &[0.0],
    &[-1.0],
    &[-5.0, -1.0, 0.0, 1.0, 5.0],
    &[0.005, 0.01, 0.1, 1.0, 10.0],
    &[-1e-9, 1e9],
    &[1e-300],
    &[0.1, 0.2, 0.30000000000000004],
    &[1e21],
    &[-0.0, 1.0],
];
const ATTR_KEYS: &[&str] = &[
    "http.route",
    "http_route",
    "a.b",
    "a-b",
    "a_b",
    "le",
    "quantile",
    "exported_le",
    "otel_scope_name",
    "otel_scope_x",
    "otel_scope_version",
    "__name__",
    "job",
    "instance",
    "exported_job",
    "_x",
    "key_x",
    "9lives",
    "key_9lives",
    "",
    "☃",
    "service.name",
    "Zed",
    "x",
];
const SCOPE_ATTR_KEYS: &[&str] = &[
    "name",
    "version",
    "schema_url",
    "x",
    "x.y",
    "x_y",
    "le",
    "otel_scope_name",
    "",
    "_x",
];
const RESOURCE_KEYS: &[&str] = &[
    "service.name",
    "service_name",
    "service-name",
    "le",
    "job",
    "instance",
    "__name__",
    "",
    "9x",
    "_x",
    "otel_scope_name",
    "telemetry.sdk.language",
    "☃",
];
const STRINGS: &[&str] = &[
    "",
    "v",
    "quote\"d",
    "back\\slash",
    "new\nline",
    "cr\rret",
    "tab\tbed",
    "unicode ☃ ü 日本",
    "trailing\\",
    "\\n literal",
    "1",
    "true",
    "NaN",
    "+Inf",
    "{braces}=,commas",
    "a;b",
    " # not an exemplar",
];
const I64S: &[i64] = &[0, -1, 1, 42, i64::MIN, i64::MAX];
const F64S: &[f64] = &[
    0.1,
    1.0,
    1e21,
    1e-7,
    -2.5,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    5e-324,
    f64::MAX,
];
/// Scope attributes without NaN: a scope with a NaN attribute equals no scope, not even
/// itself, so the SDK would make a new meter per lookup.
const F64S_NO_NAN: &[f64] = &[0.1, 1.0, 1e21, -2.5, f64::INFINITY, 5e-324];

fn attr_value(floats: &'static [f64]) -> impl Strategy<Value = Attr> {
    prop_oneof![
        6 => select(STRINGS).prop_map(|s| Attr::Str(Str::S(s))),
        1 => Just(Attr::Str(Str::Long(10 * 1024))),
        1 => any::<bool>().prop_map(Attr::Bool),
        1 => select(I64S).prop_map(Attr::I64),
        2 => select(floats).prop_map(Attr::F64),
        1 => vec(select(STRINGS), 0..3).prop_map(Attr::Strs),
        1 => vec(select(I64S), 0..3).prop_map(Attr::I64s),
        1 => vec(select(floats), 0..3).prop_map(Attr::F64s),
        1 => vec(any::<bool>(), 0..3).prop_map(Attr::Bools),
    ]
}

fn attrs(
    keys: &'static [&'static str],
    floats: &'static [f64],
    max: usize,
) -> impl Strategy<Value = Attrs> {
    vec((select(keys), attr_value(floats)), 0..max)
}

fn exposed_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIXED_NAMES).prop_map(str::to_owned),
        2 => (select(NAME_PARTS), select(NAME_PARTS), select(NAME_SUFFIXES))
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
}

fn buckets() -> impl Strategy<Value = Buckets> {
    prop_oneof![
        3 => select(BOUND_SETS).prop_map(|b| Buckets::Explicit(b.to_vec())),
        2 => vec(-8i32..8, 0..6).prop_map(|mut q| {
            q.sort_unstable();
            q.dedup();
            Buckets::Explicit(q.into_iter().map(|q| f64::from(q) / 4.0).collect())
        }),
        1 => Just(Buckets::Default),
        1 => Just(Buckets::Exponential),
    ]
}

fn measurement() -> impl Strategy<Value = Measurement> {
    let value = prop_oneof![
        8 => (-4000i32..4000).prop_map(|q| f64::from(q) / 4.0),
        1 => select(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY][..]),
    ];
    (attrs(ATTR_KEYS, F64S, 4), value).prop_map(|(attrs, value)| Measurement { attrs, value })
}

fn instrument() -> impl Strategy<Value = InstSpec> {
    (
        select(KINDS),
        exposed_name(),
        select(UNITS),
        select(DESCRIPTIONS),
        buckets(),
        vec(measurement(), 0..4),
    )
        .prop_map(
            |(kind, name, unit, description, buckets, measurements)| InstSpec {
                kind,
                name,
                unit,
                description: description.to_owned(),
                buckets: if kind.is_histogram() {
                    buckets
                } else {
                    Buckets::Default
                },
                measurements,
            },
        )
}

fn scope() -> impl Strategy<Value = ScopeSpec> {
    const NAMES: &[&str] = &[
        "streamhouse",
        "lib.a",
        "lib-a",
        "lib_a",
        "",
        "☃ scope",
        "quote\"scope\nnl",
        "io.opentelemetry.x",
    ];
    const VERSIONS: &[&str] = &["1.0", "", "v\"2\\\n"];
    const SCHEMAS: &[&str] = &["https://opentelemetry.io/schemas/1.21.0", "", "weird\"\n"];
    (
        select(NAMES),
        option::of(select(VERSIONS)),
        option::of(select(SCHEMAS)),
        attrs(SCOPE_ATTR_KEYS, F64S_NO_NAN, 3),
        vec(instrument(), 1..5),
    )
        .prop_map(
            |(name, version, schema_url, attributes, instruments)| ScopeSpec {
                name,
                version,
                schema_url,
                attributes,
                instruments,
            },
        )
}

fn state() -> impl Strategy<Value = State> {
    (
        any::<bool>(),
        select(&[ScopeLabels::None, ScopeLabels::Foreign, ScopeLabels::All][..]),
        any::<bool>(),
        (select(STRINGS), attrs(RESOURCE_KEYS, F64S, 5)),
        vec(scope(), 1..5),
        any::<u64>(),
    )
        .prop_map(
            |(target_info, scope_labels, created, (service, mut resource), scopes, shuffle)| {
                resource.insert(0, ("service.name", Attr::Str(Str::S(service))));
                State {
                    target_info,
                    scope_labels,
                    created,
                    resource,
                    scopes,
                    shuffle,
                }
                .normalized()
            },
        )
}

// ---------------------------------------------------------------------------------------
// Building a state on a real SDK provider.
// ---------------------------------------------------------------------------------------

/// SplitMix64: a seeded, dependency-free shuffle.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// The value a last-value cell (or a cell the SDK cannot find again: an attribute that is
/// NaN is unequal to itself, so each measurement makes a new data point) reports: a
/// function of the cell alone, so no order can change it. The cell is the stream name and
/// the attribute set as the SDK normalizes it (sorted by key).
fn cell_value(name: &str, attrs: &[KeyValue]) -> u64 {
    let mut sorted = attrs.to_vec();
    sorted.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let mut hasher = DefaultHasher::new();
    format!("{name:?}{sorted:?}").hash(&mut hasher);
    hasher.finish()
}

const F64_CELLS: &[f64] = &[
    0.0,
    -0.0,
    1.5,
    -2.25,
    1e21,
    5e-324,
    f64::MAX,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.1,
];
const U64_CELLS: &[u64] = &[0, 1, 42, u64::MAX, (1 << 53) + 1];
const I64_CELLS: &[i64] = &[i64::MIN, -1, 0, 7, i64::MAX];

/// One measurement as recorded: the generated value, or the cell's.
#[derive(Clone, Copy)]
struct Recorded {
    f64: f64,
    u64: u64,
    i64: i64,
}

fn recorded(inst: &InstSpec, attrs: &[KeyValue], m: &Measurement) -> Recorded {
    let nan_key = m.attrs.iter().any(|(_, v)| v.has_nan());
    let h = cell_value(&inst.name, attrs);
    let pick = |n: usize| (h % n as u64) as usize;
    if inst.kind.last_value() {
        Recorded {
            f64: F64_CELLS[pick(F64_CELLS.len())],
            u64: U64_CELLS[pick(U64_CELLS.len())],
            i64: I64_CELLS[pick(I64_CELLS.len())],
        }
    } else if nan_key {
        // Summed cells: small values, as the SDK panics on an integer sum that overflows.
        Recorded {
            f64: F64_CELLS[pick(F64_CELLS.len())].clamp(-1e6, 1e6),
            u64: h % 1000,
            i64: (h % 2000) as i64 - 1000,
        }
    } else {
        // Small integers for integer instruments (the infinities are for f64 ones): sums
        // stay exact and never overflow.
        let small = if m.value.is_finite() { m.value } else { 0.0 };
        Recorded {
            f64: m.value,
            u64: small.abs() as u64,
            i64: small as i64,
        }
    }
}

enum Handle {
    CounterU64(opentelemetry::metrics::Counter<u64>),
    CounterF64(opentelemetry::metrics::Counter<f64>),
    UpDownI64(opentelemetry::metrics::UpDownCounter<i64>),
    UpDownF64(opentelemetry::metrics::UpDownCounter<f64>),
    GaugeF64(opentelemetry::metrics::Gauge<f64>),
    GaugeU64(opentelemetry::metrics::Gauge<u64>),
    GaugeI64(opentelemetry::metrics::Gauge<i64>),
    HistogramF64(opentelemetry::metrics::Histogram<f64>),
    HistogramU64(opentelemetry::metrics::Histogram<u64>),
    Observable(#[allow(dead_code)] Box<dyn Any>),
}

impl Handle {
    fn record(&self, r: Recorded, attrs: &[KeyValue]) {
        match self {
            Handle::CounterU64(i) => i.add(r.u64, attrs),
            Handle::CounterF64(i) => i.add(r.f64, attrs),
            Handle::UpDownI64(i) => i.add(r.i64, attrs),
            Handle::UpDownF64(i) => i.add(r.f64, attrs),
            Handle::GaugeF64(i) => i.record(r.f64, attrs),
            Handle::GaugeU64(i) => i.record(r.u64, attrs),
            Handle::GaugeI64(i) => i.record(r.i64, attrs),
            Handle::HistogramF64(i) => i.record(r.f64, attrs),
            Handle::HistogramU64(i) => i.record(r.u64, attrs),
            Handle::Observable(_) => {}
        }
    }
}

/// A built state: the reader to render, and what must stay alive.
struct Built {
    reader: PrometheusReader,
    _provider: SdkMeterProvider,
    _handles: Vec<Handle>,
}

impl Built {
    fn render(&self, format: Format) -> String {
        self.reader.render(format).expect("render")
    }
}

fn view_stream(inst: &InstSpec) -> Stream {
    let mut builder = Stream::builder().with_name(inst.name.clone());
    if inst.kind.is_histogram() {
        match &inst.buckets {
            Buckets::Default => {}
            Buckets::Explicit(bounds) => {
                builder = builder.with_aggregation(Aggregation::ExplicitBucketHistogram {
                    boundaries: bounds.clone(),
                    record_min_max: false,
                });
            }
            Buckets::Exponential => {
                builder = builder.with_aggregation(Aggregation::Base2ExponentialHistogram {
                    max_size: 160,
                    max_scale: 20,
                    record_min_max: false,
                });
            }
        }
    }
    builder.build().expect("valid stream")
}

/// Builds `state` on a fresh provider. With `shuffle`, meters are first requested, then
/// instruments created, then measurements recorded and observed in seeded random orders.
fn build(state: &State, shuffle: bool) -> Built {
    let instruments: Vec<(usize, &InstSpec)> = state.instruments().collect();
    // Instruments get valid SDK names `i<n>`; the view gives each its hostile name.
    let specs: Arc<Vec<InstSpec>> =
        Arc::new(instruments.iter().map(|(_, i)| (*i).clone()).collect());
    let view_specs = Arc::clone(&specs);
    let view = move |instrument: &Instrument| {
        let n: usize = instrument.name().strip_prefix('i')?.parse().ok()?;
        Some(view_stream(view_specs.get(n)?))
    };
    let reader = PrometheusReader::new(state.config());
    let resource = Resource::builder_empty()
        .with_attributes(key_values(&state.resource))
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader.clone())
        .with_view(view)
        .build();

    let mut rng = Rng(state.shuffle);
    let mut scope_order: Vec<usize> = (0..state.scopes.len()).collect();
    let mut inst_order: Vec<usize> = (0..instruments.len()).collect();
    if shuffle {
        rng.shuffle(&mut scope_order);
        rng.shuffle(&mut inst_order);
    }
    let mut meters: HashMap<usize, Meter> = HashMap::new();
    for s in scope_order {
        meters.insert(s, provider.meter_with_scope(state.scopes[s].scope()));
    }
    let mut handles: Vec<Option<Handle>> = (0..instruments.len()).map(|_| None).collect();
    for n in inst_order {
        let (s, inst) = instruments[n];
        let mut observed: Vec<(Vec<KeyValue>, Recorded)> = inst
            .measurements
            .iter()
            .map(|m| {
                let attrs = key_values(&m.attrs);
                let r = recorded(inst, &attrs, m);
                (attrs, r)
            })
            .collect();
        if shuffle {
            rng.shuffle(&mut observed);
        }
        handles[n] = Some(create(&meters[&s], n, inst, Arc::new(observed)));
    }
    let handles: Vec<Handle> = handles.into_iter().map(|h| h.expect("created")).collect();

    let mut measurements: Vec<(usize, &Measurement)> = instruments
        .iter()
        .enumerate()
        .flat_map(|(n, (_, inst))| inst.measurements.iter().map(move |m| (n, m)))
        .collect();
    if shuffle {
        rng.shuffle(&mut measurements);
    }
    for (n, m) in measurements {
        let attrs = key_values(&m.attrs);
        handles[n].record(recorded(instruments[n].1, &attrs, m), &attrs);
    }
    Built {
        reader,
        _provider: provider,
        _handles: handles,
    }
}

fn create(
    meter: &Meter,
    n: usize,
    inst: &InstSpec,
    observed: Arc<Vec<(Vec<KeyValue>, Recorded)>>,
) -> Handle {
    let name = format!("i{n}");
    let (unit, description) = (inst.unit, inst.description.clone());
    macro_rules! sync {
        ($method:ident, $variant:ident) => {
            Handle::$variant(
                meter
                    .$method(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build(),
            )
        };
    }
    macro_rules! observable {
        ($method:ident, $field:ident) => {
            Handle::Observable(Box::new(
                meter
                    .$method(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |observer| {
                        for (attrs, r) in observed.iter() {
                            observer.observe(r.$field, attrs);
                        }
                    })
                    .build(),
            ))
        };
    }
    match inst.kind {
        Kind::CounterU64 => sync!(u64_counter, CounterU64),
        Kind::CounterF64 => sync!(f64_counter, CounterF64),
        Kind::UpDownI64 => sync!(i64_up_down_counter, UpDownI64),
        Kind::UpDownF64 => sync!(f64_up_down_counter, UpDownF64),
        Kind::GaugeF64 => sync!(f64_gauge, GaugeF64),
        Kind::GaugeU64 => sync!(u64_gauge, GaugeU64),
        Kind::GaugeI64 => sync!(i64_gauge, GaugeI64),
        Kind::HistogramF64 => sync!(f64_histogram, HistogramF64),
        Kind::HistogramU64 => sync!(u64_histogram, HistogramU64),
        Kind::ObsCounterU64 => observable!(u64_observable_counter, u64),
        Kind::ObsCounterF64 => observable!(f64_observable_counter, f64),
        Kind::ObsUpDownI64 => observable!(i64_observable_up_down_counter, i64),
        Kind::ObsUpDownF64 => observable!(f64_observable_up_down_counter, f64),
        Kind::ObsGaugeF64 => observable!(f64_observable_gauge, f64),
        Kind::ObsGaugeU64 => observable!(u64_observable_gauge, u64),
        Kind::ObsGaugeI64 => observable!(i64_observable_gauge, i64),
    }
}

// ---------------------------------------------------------------------------------------
// The names docs/exposition.md allows. Where the contract leaves a choice open (see the
// comments), every reading is accepted: the check is that no exposed name comes from
// nowhere, not one implementation's spelling.
// ---------------------------------------------------------------------------------------

/// "Sanitising": characters outside `[a-zA-Z0-9_]` (and `:` in metric names) become `_`,
/// runs of `_` collapse, a leading digit gets `key_`, a leading `_` gets `key`; a name with
/// nothing valid in it (empty, or only punctuation) becomes `key_`.
fn sanitize(name: &str, colon: bool) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = match c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') {
            true => c,
            false => '_',
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    if out.chars().all(|c| c == '_') {
        return "key_".to_owned();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') {
        out.insert_str(0, "key");
    }
    out
}

/// The label name of an attribute key.
fn label_name(key: &str) -> String {
    sanitize(key, false)
}

fn main_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The unit suffixes "Units" allows: `Some(options)` (`None` in it: no suffix), or `None`
/// when the contract does not pin the spelling (junk units: "sanitised and used as it is"
/// leaves open how, for example, `/s` or `{` read).
fn unit_suffixes(unit: &str, family: &str) -> Option<Vec<Option<String>>> {
    let annotation =
        |u: &str| u.starts_with('{') && u.ends_with('}') && u.matches('{').count() == 1;
    if unit.is_empty() || annotation(unit) {
        return Some(vec![None]);
    }
    if unit == "1" {
        return Some(match family {
            "gauge" => vec![Some("ratio".to_owned())],
            "counter" => vec![None],
            // Histograms: the contract names gauges and counters only.
            _ => vec![None, Some("ratio".to_owned())],
        });
    }
    if let Some(main) = main_unit(unit) {
        return Some(vec![Some(main.to_owned())]);
    }
    if let Some((a, b)) = unit.split_once('/') {
        let per = per_unit(b)?;
        if annotation(a) {
            return Some(vec![Some(format!("per_{per}"))]);
        }
        return Some(vec![Some(format!("{}_per_{per}", main_unit(a)?))]);
    }
    let plain = unit.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
        && !unit.starts_with('_')
        && !unit.ends_with('_')
        && !unit.contains("__");
    plain.then(|| vec![Some(unit.to_owned())])
}

/// The Prometheus family type of an instrument kind.
fn family_type(kind: Kind) -> &'static str {
    match kind {
        Kind::CounterU64 | Kind::CounterF64 | Kind::ObsCounterU64 | Kind::ObsCounterF64 => {
            "counter"
        }
        Kind::HistogramF64 | Kind::HistogramU64 => "histogram",
        _ => "gauge",
    }
}

/// Whether `exposed` (a text 0.0.4 family name of type `family`) is what "Metric names"
/// makes of `inst`: the sanitised name, the unit suffix unless the name already ends in it,
/// `_total` for counters unless already there, the unit before `_total`.
fn derivable(exposed: &str, name: &str, unit: &str, family: &str) -> bool {
    let stem = sanitize(name, true);
    let counter = family == "counter";
    let base = match counter {
        true => stem.strip_suffix("_total").unwrap_or(&stem),
        false => stem.as_str(),
    };
    let Some(suffixes) = unit_suffixes(unit, family) else {
        // An unpinned unit spelling: the stem must still lead.
        return exposed.starts_with(base) && (!counter || exposed.ends_with("_total"));
    };
    let mut candidates = Vec::new();
    for suffix in suffixes {
        let mut names = vec![base.to_owned()];
        if let Some(suffix) = suffix {
            // "Unless the name already ends in it": as a word or as text.
            let as_word = base == suffix || base.ends_with(&format!("_{suffix}"));
            let as_text = base.ends_with(&suffix);
            names = [as_word, as_text]
                .iter()
                .map(|&ends| match ends {
                    true => base.to_owned(),
                    false => format!("{base}_{suffix}"),
                })
                .collect();
        }
        for name in names {
            candidates.push(match counter {
                true => format!("{name}_total"),
                false => name,
            });
        }
    }
    // Appending a suffix to a name ending in `_` may or may not collapse the run.
    candidates
        .iter()
        .any(|c| c == exposed || c.replace("__", "_") == exposed)
}

/// Exposed family and label names that no rule of the contract derives from the state.
fn naming_violations(state: &State, text: &Exposition) -> Vec<String> {
    let mut violations = Vec::new();
    let mut attribute_labels: Vec<String> = Vec::new();
    for (_, inst) in state.instruments() {
        for m in &inst.measurements {
            for (key, _) in &m.attrs {
                attribute_labels.push(label_name(key));
            }
        }
    }
    let scope_labels_on = state.scope_labels != ScopeLabels::None;
    let mut allowed: Vec<String> = attribute_labels.clone();
    for label in &attribute_labels {
        // Labels rule 2: reserved names become `exported_<name>`.
        if label == "le"
            || label == "quantile"
            || (scope_labels_on && label.starts_with("otel_scope_"))
        {
            allowed.push(format!("exported_{label}"));
        }
    }
    if scope_labels_on {
        allowed.extend(
            [
                "otel_scope_name",
                "otel_scope_version",
                "otel_scope_schema_url",
            ]
            .map(str::to_owned),
        );
        for scope in &state.scopes {
            for (key, _) in &scope.attributes {
                // `otel_scope_<key>`: the key sanitised alone or with the prefix.
                let names = [
                    format!("otel_scope_{}", label_name(key)),
                    label_name(&format!("otel_scope_{key}")),
                ];
                for name in names {
                    allowed.push(format!("exported_{name}"));
                    allowed.push(name);
                }
            }
        }
    }
    let mut resource_labels: Vec<String> = Vec::new();
    for (key, _) in &state.resource {
        // Whether "everywhere" includes `target_info` is not said: both accepted.
        let name = label_name(key);
        resource_labels.push(format!("exported_{name}"));
        resource_labels.push(name);
    }
    for family in &text.families {
        let kind = family.kind.as_deref().unwrap_or_default();
        let resource = state.target_info && family.name == "target_info";
        if !resource
            && !state.instruments().any(|(_, inst)| {
                family_type(inst.kind) == kind
                    && derivable(&family.name, &inst.name, inst.unit, kind)
            })
        {
            violations.push(format!(
                "family {} ({kind}) is no instrument's exposed name: {:?}",
                family.name,
                state
                    .instruments()
                    .filter(|(_, i)| family_type(i.kind) == kind)
                    .map(|(_, i)| (&i.name, i.unit))
                    .collect::<Vec<_>>()
            ));
        }
        for sample in &family.samples {
            for (label, _) in &sample.labels {
                let ok = match resource {
                    true => resource_labels.contains(label),
                    false => label == "le" || allowed.contains(label),
                };
                if !ok {
                    violations.push(format!(
                        "line {}: label {label} comes from no attribute key: {}",
                        sample.line,
                        exposition::truncate(&sample.raw, 300)
                    ));
                }
            }
            // Labels rule 4: `foreign` labels every scope but StreamHouse's own, `all` every
            // scope (a scope named "" gives an empty label, which may be left out).
            let scope_name = sample
                .labels
                .iter()
                .find(|(label, _)| label == "otel_scope_name")
                .map(|(_, value)| value.as_str());
            let wrong = match state.scope_labels {
                ScopeLabels::Foreign => scope_name == Some(SCOPE_NAME),
                ScopeLabels::All => {
                    !resource
                        && scope_name.is_none()
                        && state.scopes.iter().all(|s| !s.name.is_empty())
                }
                ScopeLabels::None => false,
            };
            if wrong {
                violations.push(format!(
                    "line {}: scope labels {:?} broken: {}",
                    sample.line,
                    state.scope_labels,
                    exposition::truncate(&sample.raw, 300)
                ));
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------

/// Violations found in one state, each with the lines that show it.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn add(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }
}

/// Reads a body and records its own violations under `label`.
fn read_body(
    report: &mut Report,
    label: &str,
    body: &str,
    dialect: Dialect,
    target_info: bool,
) -> Exposition {
    let (exposition, violations) = exposition::read(body, dialect);
    for v in violations {
        report.add(format!("{label}: {v}"));
    }
    for v in exposition::contract_violations(&exposition, dialect, target_info) {
        report.add(format!("{label}: {v}"));
    }
    exposition
}

/// The first differing line of two bodies, with its neighbours.
fn first_difference(a: &str, b: &str) -> Option<String> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
    let i = (0..la.len().max(lb.len())).find(|&i| la.get(i) != lb.get(i))?;
    Some(format!(
        "first difference at line {}:\n  built in order:   {}\n  built reordered:  {}\nin order, around it:\n{}\nreordered, around it:\n{}",
        i + 1,
        exposition::truncate(la.get(i).unwrap_or(&"<end>"), 300),
        exposition::truncate(lb.get(i).unwrap_or(&"<end>"), 300),
        exposition::context(a, i + 1),
        exposition::context(b, i + 1),
    ))
}

/// `_created` values are the stream start time, which differs between two providers.
fn without_created_values(body: &str) -> String {
    body.split('\n')
        .map(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            match (
                line.starts_with('#'),
                line[..name_end].ends_with("_created"),
            ) {
                (false, true) => match line.rfind(' ') {
                    Some(i) => format!("{} <created>", &line[..i]),
                    None => line.to_owned(),
                },
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn same_value(a: &str, b: &str) -> bool {
    match (exposition::parse_value(a), exposition::parse_value(b)) {
        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// Every check of one state; `Err` lists what the contract or a peer says is wrong.
fn check(state: &State) -> Result<(), String> {
    let built = build(state, false);
    let text = built.render(Format::Text);
    let om = built.render(Format::OpenMetrics);
    let mut report = Report::default();

    // Peers nobody here wrote.
    if let PromtoolVerdict::ParseError(e) = support::promtool_verdict(&text) {
        let line = e
            .split("in line ")
            .nth(1)
            .and_then(|rest| rest.split(':').next()?.parse().ok())
            .unwrap_or(1);
        report.add(format!(
            "promtool rejects the text body: {e}\n{}",
            exposition::context(&text, line)
        ));
    }
    if let Some(e) = support::promtool_openmetrics_error(&om) {
        report.add(format!(
            "Prometheus's OpenMetrics parser rejects the body: {}",
            exposition::truncate(&e, 600)
        ));
    }
    let python = support::prometheus_client_check("openmetrics", &om);
    if let Err(e) = &python {
        report.add(format!(
            "prometheus_client rejects the OpenMetrics body: {}",
            exposition::truncate(e, 600)
        ));
    }

    // Our own careful reading.
    let text_exposition = read_body(&mut report, "text", &text, Dialect::Text, state.target_info);
    let om_exposition = read_body(
        &mut report,
        "openmetrics",
        &om,
        Dialect::OpenMetrics,
        state.target_info,
    );
    for v in exposition::created_violations(&om_exposition, state.created) {
        report.add(format!("openmetrics: {v}"));
    }
    for v in naming_violations(state, &text_exposition) {
        report.add(format!("text: {v}"));
    }

    // The Python parser read the same samples we did (it drops a repeated series silently).
    if let Ok(parsed) = &python {
        let mut theirs: Vec<String> = parsed
            .samples
            .iter()
            .map(|(name, labels, _)| format!("{name}{labels:?}"))
            .collect();
        let mut ours: Vec<String> = om_exposition
            .samples()
            .map(|s| format!("{}{:?}", s.name, s.label_set()))
            .collect();
        theirs.sort();
        ours.sort();
        if theirs != ours {
            let only_ours: Vec<_> = ours
                .iter()
                .filter(|s| !theirs.contains(s))
                .take(5)
                .collect();
            let only_theirs: Vec<_> = theirs
                .iter()
                .filter(|s| !ours.contains(s))
                .take(5)
                .collect();
            report.add(format!(
                "prometheus_client read {} samples, we read {}: only ours {only_ours:?}, only theirs {only_theirs:?}",
                theirs.len(),
                ours.len()
            ));
        }
    }

    // One series set in both formats.
    let text_series = exposition::series_values(&text_exposition, Dialect::Text);
    let om_series = exposition::series_values(&om_exposition, Dialect::OpenMetrics);
    let only_text: Vec<_> = text_series
        .keys()
        .filter(|k| !om_series.contains_key(*k))
        .take(5)
        .collect();
    let only_om: Vec<_> = om_series
        .keys()
        .filter(|k| !text_series.contains_key(*k))
        .take(5)
        .collect();
    if !only_text.is_empty() || !only_om.is_empty() {
        report.add(format!(
            "the formats expose different series: only in text {only_text:?}, only in OpenMetrics {only_om:?}"
        ));
    }
    for (key, value) in &text_series {
        if let Some(other) = om_series.get(key)
            && !same_value(value, other)
        {
            report.add(format!(
                "{key:?} is {value} in text, {other} in OpenMetrics"
            ));
        }
    }

    // The resource, once, never shadowed (Families rule 2: `target_info` is admitted first).
    if state.target_info {
        for (label, exposition) in [("text", &text_exposition), ("openmetrics", &om_exposition)] {
            let n = exposition
                .samples()
                .filter(|s| s.name == "target_info")
                .count();
            if n != 1 {
                report.add(format!("{label}: {n} target_info samples, want 1"));
            }
        }
        if let Some(family) = om_exposition.families.iter().find(|f| f.name == "target")
            && family.kind.as_deref() != Some("info")
        {
            report.add(format!(
                "openmetrics: family target is {:?}, not info",
                family.kind
            ));
        }
    }

    // Determinism: a second render, and the same state built in another order.
    if built.render(Format::Text) != text || built.render(Format::OpenMetrics) != om {
        report.add("a second render of the same provider differs");
    }
    let reordered = build(state, true);
    for (label, format, body) in [
        ("text", Format::Text, &text),
        ("openmetrics", Format::OpenMetrics, &om),
    ] {
        let other = reordered.render(format);
        let (a, b) = (without_created_values(body), without_created_values(&other));
        if let Some(diff) = first_difference(&a, &b) {
            report.add(format!(
                "{label}: the reordered state renders another body; {diff}"
            ));
        }
    }

    if report.0.is_empty() {
        return Ok(());
    }
    let shown: Vec<&String> = report.0.iter().take(12).collect();
    Err(format!(
        "{} violation(s) of docs/exposition.md; first {}:\n\n{}\n",
        report.0.len(),
        shown.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    ))
}

// ---------------------------------------------------------------------------------------
// Arbitrary text where the contract says "as it is".
// ---------------------------------------------------------------------------------------

/// Any strings: label values ("strings as they are ... never truncated"), HELP, a label key
/// and a metric name and unit that must sanitise to something legal.
#[derive(Debug, Clone)]
struct Texts {
    name: String,
    unit: String,
    description: String,
    key: String,
    values: Vec<String>,
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        3 => "[\\\\\"\n\r\t ={},#;a-z0-9_.☃ü\u{0}\u{7f}\u{2028}\u{feff}]{0,24}",
        1 => Just("x\\\"\n".repeat(10 * 1024 / 4)),
    ]
}

fn texts() -> impl Strategy<Value = Texts> {
    (
        any_text(),
        "[ -~]{0,12}",
        any_text(),
        any_text(),
        vec(any_text(), 1..6),
    )
        .prop_map(|(name, unit, description, key, mut values)| {
            values.sort();
            values.dedup();
            Texts {
                name,
                unit,
                description,
                key,
                values,
            }
        })
}

/// Text 0.0.4 HELP unescaped: `\\` and `\n` only.
fn unescape_text_help(help: &str) -> String {
    let mut out = String::new();
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Builds a counter `rt` counting each value under `key`, and a gauge named `name` through
/// a view; checks both bodies with the peers and that every value comes back as it went in.
fn round_trip(t: &Texts) -> Result<(), String> {
    let reader = PrometheusReader::new(
        PrometheusConfig::default()
            .with_target_info(false)
            .with_scope_labels(ScopeLabels::None),
    );
    let hostile = t.name.clone();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader.clone())
        .with_view(move |i: &Instrument| {
            (i.name() == "hostile")
                .then(|| Stream::builder().with_name(hostile.clone()).build().ok())
                .flatten()
        })
        .build();
    let meter = provider.meter("rt");
    let counter = meter
        .u64_counter("rt")
        .with_description(t.description.clone())
        .build();
    for v in &t.values {
        counter.add(1, &[KeyValue::new(t.key.clone(), v.clone())]);
    }
    meter
        .f64_gauge("hostile")
        .with_unit(t.unit.clone())
        .with_description(t.description.clone())
        .build()
        .record(1.0, &[]);
    let text = reader.render(Format::Text).expect("render");
    let om = reader.render(Format::OpenMetrics).expect("render");

    let mut report = Report::default();
    if let PromtoolVerdict::ParseError(e) = support::promtool_verdict(&text) {
        report.add(format!("promtool rejects the text body: {e}"));
    }
    let text_exposition = read_body(&mut report, "text", &text, Dialect::Text, false);
    let om_exposition = read_body(&mut report, "openmetrics", &om, Dialect::OpenMetrics, false);
    if let Some(e) = support::promtool_openmetrics_error(&om) {
        report.add(format!(
            "Prometheus's OpenMetrics parser rejects the body: {}",
            exposition::truncate(&e, 600)
        ));
    }
    let python = support::prometheus_client_check("openmetrics", &om);

    // The label: the key's name, `exported_` when reserved (Labels rule 2).
    let name = match label_name(&t.key) {
        n if n == "le" || n == "quantile" => format!("exported_{n}"),
        n => n,
    };
    let has = |labels: &BTreeMap<String, String>, v: &str| {
        // An empty value is the same series as no label (Prometheus data model).
        (v.is_empty() && labels.is_empty())
            || (labels.len() == 1 && labels.get(&name).map(String::as_str) == Some(v))
    };
    for v in &t.values {
        let in_text = text_exposition
            .samples()
            .filter(|s| s.name == "rt_total" && has(&s.label_set(), v))
            .count();
        let in_om = om_exposition
            .samples()
            .filter(|s| s.name == "rt_total" && has(&s.label_set(), v))
            .count();
        if in_text != 1 || in_om != 1 {
            report.add(format!(
                "value {:?} under key {:?} ({name}) is in {in_text} text and {in_om} OpenMetrics series",
                exposition::truncate(v, 80),
                exposition::truncate(&t.key, 80)
            ));
        }
    }
    match &python {
        Err(e) => report.add(format!(
            "prometheus_client rejects the OpenMetrics body: {}",
            exposition::truncate(e, 600)
        )),
        Ok(parsed) => {
            for v in &t.values {
                let n = parsed
                    .samples
                    .iter()
                    .filter(|(name, labels, _)| name == "rt_total" && has(labels, v))
                    .count();
                if n != 1 {
                    report.add(format!(
                        "prometheus_client reads value {:?} in {n} series",
                        exposition::truncate(v, 80)
                    ));
                }
            }
            // HELP as it is, escaped and read back.
            match parsed.families.get("rt") {
                // The parser drops the spaces that start a HELP text (it splits the line
                // on runs of them), so those cannot come back.
                Some((_, help, _)) if help == t.description.trim_start_matches(' ') => {}
                other => report.add(format!(
                    "OpenMetrics HELP of rt reads back as {other:?}, want {:?}",
                    exposition::truncate(&t.description, 80)
                )),
            }
        }
    }
    let text_help = text_exposition
        .families
        .iter()
        .find(|f| f.name == "rt_total")
        .and_then(|f| f.help.as_deref())
        .map(unescape_text_help);
    if text_help.as_deref() != Some(t.description.as_str()) {
        report.add(format!(
            "text HELP of rt_total reads back as {text_help:?}, want {:?}",
            exposition::truncate(&t.description, 80)
        ));
    }
    // The gauge: what its name and unit make.
    for family in text_exposition
        .families
        .iter()
        .filter(|f| f.name != "rt_total")
    {
        if family.kind.as_deref() != Some("gauge")
            || !derivable(&family.name, &t.name, &t.unit, "gauge")
        {
            report.add(format!(
                "family {} ({:?}) is not what {:?} with unit {:?} makes",
                family.name, family.kind, t.name, t.unit
            ));
        }
    }
    if report.0.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\n\ntext body:\n{}\nOpenMetrics body:\n{}",
        report.0.join("\n\n"),
        exposition::truncate(&text, 2000),
        exposition::truncate(&om, 2000)
    ))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_state_renders_bodies_the_peers_accept_whole(state in state()) {
        if let Err(report) = check(&state) {
            prop_assert!(false, "{}", report);
        }
    }

    #[test]
    fn any_text_comes_back_as_it_went_in(texts in texts()) {
        if let Err(report) = round_trip(&texts) {
            prop_assert!(false, "{}", report);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Regressions: states the properties found or docs/exposition.md names, kept explicit.
// ---------------------------------------------------------------------------------------

fn m(attrs: Attrs, value: f64) -> Measurement {
    Measurement { attrs, value }
}

fn inst(kind: Kind, name: &str, unit: &'static str, measurements: Vec<Measurement>) -> InstSpec {
    InstSpec {
        kind,
        name: name.to_owned(),
        unit,
        description: String::new(),
        buckets: Buckets::Default,
        measurements,
    }
}

fn histogram(name: &str, bounds: &[f64], values: &[f64]) -> InstSpec {
    InstSpec {
        buckets: Buckets::Explicit(bounds.to_vec()),
        ..inst(
            Kind::HistogramF64,
            name,
            "",
            values.iter().map(|v| m(vec![], *v)).collect(),
        )
    }
}

fn s(value: &'static str) -> Attr {
    Attr::Str(Str::S(value))
}

/// One scope `lib` (no scope labels) holding `instruments`, and a resource.
fn one_scope(instruments: Vec<InstSpec>) -> State {
    State {
        target_info: true,
        scope_labels: ScopeLabels::None,
        created: true,
        resource: vec![("service.name", s("svc")), ("service_name", s("svc2"))],
        scopes: vec![ScopeSpec {
            name: "lib",
            version: None,
            schema_url: None,
            attributes: vec![],
            instruments,
        }],
        shuffle: 7,
    }
    .normalized()
}

fn assert_checks(state: &State) {
    if let Err(report) = check(state) {
        panic!("{report}\nstate: {state:#?}");
    }
}

fn bodies(state: &State) -> (String, String) {
    let built = build(state, false);
    (
        built.render(Format::Text),
        built.render(Format::OpenMetrics),
    )
}

#[test]
fn a_negative_bound_leaves_out_sum_and_count_in_both_formats() {
    // Found by the property: `_count` without `_sum`, which the strict parser rejects.
    let state = one_scope(vec![histogram("neg", &[-1.0, 1.0], &[0.5, -3.0])]);
    assert_checks(&state);
    let (text, om) = bodies(&state);
    for body in [&text, &om] {
        assert!(body.contains("neg_bucket{le=\"+Inf\"} 2"), "{body}");
        assert!(
            !body.contains("neg_sum") && !body.contains("neg_count"),
            "{body}"
        );
    }
}

#[test]
fn a_negative_sum_over_non_negative_bounds_is_accepted_whole() {
    // Found by the property: bounds [0, 1] (or none) and a negative observation give a
    // negative `_sum`, which OpenMetrics forbids ("Counter-like samples cannot be negative").
    let state = one_scope(vec![
        histogram("below", &[0.0, 1.0], &[-412.5]),
        histogram("no_bounds", &[], &[2.0, -3.0]),
    ]);
    assert_checks(&state);
}

#[test]
fn the_documented_collisions_render_as_documented() {
    let state = one_scope(vec![
        // Families rule 2: the gauge `jobs` sorts first and keeps its name; the counter
        // (`jobs_total`, owning `jobs`) is dropped. The histogram `foo` owns `foo_count`.
        inst(Kind::GaugeF64, "jobs", "", vec![m(vec![], 1.5)]),
        inst(Kind::CounterU64, "jobs", "", vec![m(vec![], 3.0)]),
        histogram("foo", &[1.0], &[0.5]),
        inst(Kind::GaugeF64, "foo_count", "", vec![m(vec![], 2.0)]),
        // Labels rules 1 to 3, and Sanitising.
        inst(
            Kind::CounterU64,
            "hostile",
            "",
            vec![m(
                vec![
                    ("http.route", s("/a")),
                    ("http_route", s("/b")),
                    ("le", s("x")),
                    ("quantile", s("q")),
                    ("__name__", s("n")),
                    ("9lives", s("cat")),
                    ("_tmp", s("t")),
                    ("job", s("j")),
                    ("instance", s("i")),
                ],
                2.0,
            )],
        ),
    ]);
    assert_checks(&state);
    let (text, om) = bodies(&state);
    let series = concat!(
        r#"hostile_total{exported_le="x",exported_quantile="q",http_route="/a;/b","#,
        r#"instance="i",job="j",key_9lives="cat",key_name_="n",key_tmp="t"} 2"#
    );
    for body in [&text, &om] {
        assert!(body.contains(series), "no {series} in\n{body}");
        assert!(
            body.contains("# TYPE jobs gauge") && body.contains("\njobs "),
            "{body}"
        );
        assert!(!body.contains("jobs_total"), "{body}");
        assert!(!body.contains("TYPE foo_count"), "{body}");
        assert!(body.contains("service_name=\"svc;svc2\""), "{body}");
    }
}

#[test]
fn an_empty_label_value_is_the_series_without_that_label() {
    // Found by the property: `x{k=""}` and `x` are one series to Prometheus, which keeps
    // the first sample of a scrape and silently drops the other.
    let state = one_scope(vec![
        inst(
            Kind::CounterU64,
            "x",
            "",
            vec![m(vec![], 1.0), m(vec![("k", s(""))], 2.0)],
        ),
        InstSpec {
            buckets: Buckets::Explicit(vec![0.0]),
            ..inst(
                Kind::HistogramF64,
                "h",
                "",
                vec![m(vec![], 1.0), m(vec![("__name__", s(""))], 2.0)],
            )
        },
    ]);
    assert_checks(&state);
}

#[test]
fn names_with_nothing_valid_become_key_() {
    // Three streams with nothing valid in their names all become `key_`: one family, one
    // series kept (the duplicates are dropped, never exposed twice).
    let state = one_scope(vec![
        inst(Kind::GaugeF64, "", "", vec![m(vec![], 1.0)]),
        inst(Kind::GaugeF64, "☃", "", vec![m(vec![], 2.0)]),
        inst(Kind::GaugeF64, "...", "", vec![m(vec![], 3.0)]),
    ]);
    assert_checks(&state);
    let (text, _) = bodies(&state);
    assert_eq!(text.matches("# TYPE key_ gauge").count(), 1, "{text}");
}

#[test]
fn a_user_target_info_is_shadowed_only_while_the_resource_is_exposed() {
    // The harness once read a user gauge `target_info` (resource off) as the resource.
    let mut state = one_scope(vec![
        inst(Kind::GaugeF64, "target_info", "", vec![m(vec![], 5.0)]),
        inst(Kind::CounterU64, "target", "", vec![m(vec![], 1.0)]),
    ]);
    assert_checks(&state);
    state.target_info = false;
    assert_checks(&state);
}

// ---------------------------------------------------------------------------------------
// The harness itself: each check fails on a body that breaks its rule.
// ---------------------------------------------------------------------------------------

fn violations(body: &str, dialect: Dialect) -> Vec<String> {
    let (exposition, mut violations) = exposition::read(body, dialect);
    violations.extend(exposition::contract_violations(&exposition, dialect, true));
    violations
}

#[test]
fn the_reader_catches_what_the_peers_let_through() {
    // A repeated series: the strict parser keeps one silently, the reader does not.
    let repeated = "# TYPE a counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n# EOF\n";
    let parsed = support::prometheus_client_check("openmetrics", repeated).expect("accepted");
    assert_eq!(parsed.samples.len(), 1);
    assert!(violations(repeated, Dialect::OpenMetrics)[0].starts_with("duplicate series"));
    // And promtool lets a repeated text series through too.
    let repeated = "# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n";
    assert!(!matches!(
        support::promtool_verdict(repeated),
        PromtoolVerdict::ParseError(_)
    ));
    assert!(!violations(repeated, Dialect::Text).is_empty());

    let cases = [
        ("# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", "label x twice"),
        (
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\na 2\n",
            "declared again",
        ),
        ("# TYPE a gauge\na 1\n# TYPE a gauge\n", "second TYPE"),
        ("# TYPE a gauge\na_total 1\n", "is not one of family a"),
        ("a 1\n", "without a # TYPE"),
        ("# TYPE a gauge\na{le=\"1\"} 1\n", "reserved label le"),
        ("# TYPE a gauge\na{_x=\"1\"} 1\n", "starts with _"),
        ("# TYPE a gauge\na{x=\"\\t\"} 1\n", "invalid escape"),
        ("# HELP a say \\\"hi\\\"\n# TYPE a gauge\na 1\n", "in HELP"),
        (
            "# TYPE a_total counter\na_total -1\n",
            "counter-like sample is -1",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n# TYPE h_count gauge\nh_count 1\n",
            "name h_count owned by family h",
        ),
        (
            "# TYPE b gauge\nb 1\n# TYPE target_info gauge\ntarget_info 1\n# TYPE target gauge\ntarget 1\n",
            "name target owned",
        ),
    ];
    for (body, want) in cases {
        let found = violations(body, Dialect::Text);
        assert!(
            found.iter().any(|v| v.contains(want)),
            "{want:?} not in {found:?} for\n{body}"
        );
    }
    let found = violations("# TYPE a gauge\na 1\n", Dialect::OpenMetrics);
    assert!(found.iter().any(|v| v.contains("no # EOF")), "{found:?}");
}

#[test]
fn promtool_tells_a_parse_error_from_lint_advice() {
    assert!(matches!(
        support::promtool_verdict("# TYPE a gauge\na 1\n"),
        PromtoolVerdict::Lint(_)
    ));
    assert!(matches!(
        support::promtool_verdict("# HELP a a.\n# TYPE a gauge\na 1\n"),
        PromtoolVerdict::Clean
    ));
    assert!(matches!(
        support::promtool_verdict("a{x=\"1} 1\n"),
        PromtoolVerdict::ParseError(_)
    ));
    // And Prometheus's OpenMetrics parser, through the backfill command.
    let good = "# TYPE a gauge\na{x=\"\\\"\"} 1\n# EOF\n";
    assert_eq!(support::promtool_openmetrics_error(good), None);
    let bad = "# TYPE a gauge\na{x=\"1\"} 1\n";
    assert!(support::promtool_openmetrics_error(bad).is_some());
}

#[test]
fn the_naming_oracle_flags_names_from_nowhere() {
    let state = one_scope(vec![inst(
        Kind::CounterU64,
        "jobs",
        "s",
        vec![m(vec![("job", s("x"))], 1.0)],
    )]);
    let body = "# TYPE jobs_seconds_total counter\njobs_seconds_total{job=\"x\"} 1\n\
                jobs_seconds_total{exported_job=\"x\"} 1\n# TYPE jobs_total counter\njobs_total 1\n";
    let (exposition, _) = exposition::read(body, Dialect::Text);
    let found = naming_violations(&state, &exposition);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("label exported_job"), "{found:?}");
    assert!(found[1].contains("family jobs_total"), "{found:?}");
}

#[test]
fn the_scope_label_check_flags_streamhouse_labelled_as_foreign() {
    let mut state = one_scope(vec![inst(Kind::GaugeF64, "g", "", vec![m(vec![], 1.0)])]);
    state.scope_labels = ScopeLabels::Foreign;
    let body =
        "# TYPE g gauge\ng{otel_scope_name=\"streamhouse\"} 1\ng{otel_scope_name=\"lib\"} 1\n";
    let (exposition, _) = exposition::read(body, Dialect::Text);
    let found = naming_violations(&state, &exposition);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("line 2: scope labels Foreign"),
        "{found:?}"
    );
    state.scope_labels = ScopeLabels::All;
    let body = "# TYPE g gauge\ng 1\n";
    let (exposition, _) = exposition::read(body, Dialect::Text);
    assert_eq!(naming_violations(&state, &exposition).len(), 1);
}

#[test]
fn a_reordered_body_is_told_apart() {
    let a = "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n";
    let b = "# TYPE b gauge\nb 1\n# TYPE a gauge\na 1\n";
    assert!(first_difference(a, b).is_some());
    assert!(first_difference(a, a).is_none());
    assert_eq!(
        without_created_values("x_created 17.5\nx_total 1\n"),
        "x_created <created>\nx_total 1\n"
    );
}
