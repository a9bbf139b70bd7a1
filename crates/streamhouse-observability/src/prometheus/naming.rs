//! OTel metric, unit and attribute names to Prometheus names, per the OpenTelemetry
//! specification "Prometheus and OpenMetrics Compatibility" (rules in `docs/exposition.md`).
//!
//! Catalog streams already carry their pinned Prometheus name, which this translation leaves
//! unchanged (it only appends a unit or `_total` suffix that is missing). Hand-written:
//! `opentelemetry-prometheus` keeps its translation private and appends suffixes even when
//! present.

use std::borrow::Cow;

/// The Prometheus type of a family, which also decides its name's suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FamilyType {
    Counter,
    Gauge,
    Histogram,
}

impl FamilyType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
        }
    }

    /// Every name a family of this type called `name` (as exposed in text 0.0.4) may emit in
    /// either format, `_created` included: two families owning one name cannot coexist.
    pub(crate) fn claimed_names(self, name: &str) -> Vec<String> {
        let suffixes: &[&str] = match self {
            FamilyType::Counter => {
                let stem = name.strip_suffix("_total").unwrap_or(name);
                return vec![stem.to_owned(), name.to_owned(), format!("{stem}_created")];
            }
            FamilyType::Gauge => &[""],
            FamilyType::Histogram => &["", "_bucket", "_count", "_sum", "_created"],
        };
        suffixes.iter().map(|s| format!("{name}{s}")).collect()
    }
}

/// The exposed name of a metric family of `kind`, from an instrument (or view) name and its
/// UCUM unit.
pub(crate) fn family_name<'a>(name: &'a str, unit: &str, kind: FamilyType) -> Cow<'a, str> {
    let mut exposed = sanitize(name, true);
    let is_counter = kind == FamilyType::Counter;
    // A counter's unit suffix goes before `_total`, so look for it there.
    let had_total = is_counter && exposed.len() > "_total".len() && exposed.ends_with("_total");
    let stem_len = match had_total {
        true => exposed.len() - "_total".len(),
        false => exposed.len(),
    };
    if let Some(suffix) = unit_suffix(unit, kind)
        && !ends_with_word(&exposed[..stem_len], &suffix)
    {
        let owned = exposed.to_mut();
        owned.truncate(stem_len);
        push_word(owned, &suffix);
        if had_total {
            owned.push_str("_total");
        }
    }
    if is_counter && !had_total {
        push_word(exposed.to_mut(), "total");
    }
    exposed
}

/// A label name for an attribute key (rules in `docs/exposition.md`).
pub(crate) fn label_name(key: &str) -> Cow<'_, str> {
    sanitize(key, false)
}

/// Appends `_word` to `name`, without doubling an underscore `name` ends with.
fn push_word(name: &mut String, word: &str) {
    if !name.ends_with('_') {
        name.push('_');
    }
    name.push_str(word);
}

fn ends_with_word(name: &str, word: &str) -> bool {
    name.strip_suffix(word)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('_'))
}

/// Replaces every character outside `[a-zA-Z0-9_]` (and `:` when `colon`) by `_`, collapses
/// runs of `_`, and prefixes `key_` to a leading digit and `key` to a leading `_` (so `__`,
/// which Prometheus reserves, never starts a name, and no leading `_` is invented). Empty
/// input becomes `key_`.
pub(crate) fn sanitize(name: &str, colon: bool) -> Cow<'_, str> {
    if is_clean(name, colon) {
        return Cow::Borrowed(name);
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    let mut out = String::with_capacity(name.len() + 4);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push_str("key_");
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic() || (colon && c == ':')) {
        // A leading `_`, an invalid character or nothing: `key` + `_…`.
        out.push_str("key");
    }
    for c in name.chars() {
        let c = if valid(c) { c } else { '_' };
        if c != '_' || !out.ends_with('_') {
            out.push(c);
        }
    }
    if out == "key" {
        out.push('_');
    }
    Cow::Owned(out)
}

/// True when [`sanitize`] leaves `name` as it is. One pass over the bytes: it runs for every
/// label of every series of a scrape.
fn is_clean(name: &str, colon: bool) -> bool {
    let bytes = name.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || (colon && first == b':')) {
        return false;
    }
    let mut previous = first;
    for &c in rest {
        let valid =
            c.is_ascii_alphanumeric() || (c == b'_' && previous != b'_') || (colon && c == b':');
        if !valid {
            return false;
        }
        previous = c;
    }
    true
}

/// The Prometheus suffix of a UCUM unit: the specification's table, `a/b` as
/// `<a>_per_<b>`, bracketed annotations dropped, `1` as `ratio` on gauges only; any other
/// unit sanitised. `None` when nothing is left.
pub(crate) fn unit_suffix(unit: &str, kind: FamilyType) -> Option<Cow<'static, str>> {
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main.trim(), Some(per.trim())),
        None => (unit.trim(), None),
    };
    let annotation = |part: &str| part.is_empty() || part.contains(['{', '}']);
    let main = match main {
        _ if annotation(main) => None,
        "1" if kind == FamilyType::Gauge && per.is_none() => Some(Cow::Borrowed("ratio")),
        "1" => None,
        other => word(other, main_unit(other)),
    };
    let per = per
        .filter(|per| !annotation(per))
        .and_then(|per| word(per, per_unit(per)));
    match (main, per) {
        (main, None) => main,
        (None, Some(per)) => Some(Cow::Owned(format!("per_{per}"))),
        (Some(main), Some(per)) => Some(Cow::Owned(format!("{main}_per_{per}"))),
    }
}

/// The table's word, or the unit itself sanitised (`None` if nothing valid is left).
fn word(unit: &str, known: Option<&'static str>) -> Option<Cow<'static, str>> {
    if let Some(known) = known {
        return Some(Cow::Borrowed(known));
    }
    let cleaned = sanitize(unit, false);
    let trimmed = cleaned
        .strip_prefix("key")
        .filter(|_| !unit.starts_with("key"))
        .unwrap_or(&cleaned)
        .trim_matches('_');
    (!trimmed.is_empty()).then(|| Cow::Owned(trimmed.to_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use FamilyType::{Counter, Gauge, Histogram};

    #[test]
    fn pinned_catalog_names_are_unchanged() {
        for def in crate::catalog::ALL {
            let kind = crate::catalog::family_type(def.kind);
            assert_eq!(
                family_name(def.prometheus_name, def.unit, kind),
                def.prometheus_name
            );
        }
    }

    #[test]
    fn translates_otel_names() {
        let cases = [
            (
                "http.server.request.duration",
                "s",
                Histogram,
                "http_server_request_duration_seconds",
            ),
            ("rpc.calls", "{call}", Counter, "rpc_calls_total"),
            ("disk.io", "By", Counter, "disk_io_bytes_total"),
            ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
            ("cpu.utilization", "1", Counter, "cpu_utilization_total"),
            ("2xx..count", "", Gauge, "key_2xx_count"),
            ("_tmp", "", Gauge, "key_tmp"),
            ("a__b", "", Gauge, "a_b"),
            ("...", "", Gauge, "key_"),
            ("...", "", Counter, "key_total"),
            ("", "s", Gauge, "key_seconds"),
            ("a_seconds", "s", Gauge, "a_seconds"),
            ("jobs_totalled", "", Counter, "jobs_totalled_total"),
            ("io_total", "By", Counter, "io_bytes_total"),
            ("total", "", Counter, "total_total"),
            ("job:rate5m", "", Gauge, "job:rate5m"),
            ("é.size", "By", Gauge, "key_size_bytes"),
            ("foo_", "s", Counter, "foo_seconds_total"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(
                family_name(name, unit, kind),
                want,
                "{name} {unit} {kind:?}"
            );
        }
    }

    #[test]
    fn translates_the_unit_table() {
        let cases = [
            ("d", "days"),
            ("min", "minutes"),
            ("us", "microseconds"),
            ("TiBy", "tebibytes"),
            ("TBy", "terabytes"),
            ("Cel", "celsius"),
            ("%", "percent"),
            ("m/s", "meters_per_second"),
            ("By/s", "bytes_per_second"),
            ("{packet}/s", "per_second"),
            ("1/s", "per_second"),
            ("{request}/mo", "per_month"),
            ("m/{x}", "meters"),
            ("widgets", "widgets"),
            ("µs", "s"),
            ("kg.m", "kg_m"),
        ];
        for (unit, want) in cases {
            assert_eq!(unit_suffix(unit, Gauge).as_deref(), Some(want), "{unit}");
        }
        for unit in ["", "{request}", "{a}/{b}", "/", " ", "..."] {
            assert_eq!(unit_suffix(unit, Gauge), None, "{unit:?}");
        }
        assert_eq!(unit_suffix("1", Histogram), None);
        assert_eq!(
            family_name("net.rate", "By/s", Gauge),
            "net_rate_bytes_per_second"
        );
        assert_eq!(
            family_name("net_rate_bytes_per_second", "By/s", Counter),
            "net_rate_bytes_per_second_total"
        );
    }

    #[test]
    fn sanitizes_label_names() {
        let cases = [
            ("otel.metric.overflow", "otel_metric_overflow"),
            ("topic", "topic"),
            ("9lives", "key_9lives"),
            ("a:b", "a_b"),
            ("_x", "key_x"),
            ("__name__", "key_name_"),
            ("a--b", "a_b"),
            ("", "key_"),
            ("ünï", "key_n_"),
            ("Le", "Le"),
        ];
        for (key, want) in cases {
            assert_eq!(label_name(key), want, "{key:?}");
        }
    }
}
