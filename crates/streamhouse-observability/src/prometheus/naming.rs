//! OTel metric and attribute names to Prometheus names, per the OpenTelemetry specification
//! "Prometheus and OpenMetrics Compatibility".
//!
//! Catalog streams already carry their pinned Prometheus name, which this translation leaves
//! unchanged (it only appends a unit or `_total` suffix that is missing). Hand-written:
//! `opentelemetry-prometheus` keeps its translation private and appends suffixes even when
//! present.

use std::borrow::Cow;

/// The exposed name of a metric family.
pub(crate) fn family_name<'a>(name: &'a str, unit: &str, is_counter: bool) -> Cow<'a, str> {
    let mut exposed = sanitize(name, true);
    // A counter's unit suffix goes before `_total`, so look for it there.
    let had_total = is_counter && ends_with_word(&exposed, "total");
    let stem_len = match had_total {
        true => exposed.len().saturating_sub("_total".len()),
        false => exposed.len(),
    };
    if let Some(suffix) = unit_suffix(unit, is_counter)
        && !ends_with_word(&exposed[..stem_len], suffix)
    {
        let owned = exposed.to_mut();
        owned.truncate(stem_len);
        owned.push('_');
        owned.push_str(suffix);
        if had_total {
            owned.push_str("_total");
        }
    }
    if is_counter && !ends_with_word(&exposed, "total") {
        exposed.to_mut().push_str("_total");
    }
    exposed
}

/// A label name: invalid characters become `_`, a leading digit gets a `_` prefix.
pub(crate) fn label_name(key: &str) -> Cow<'_, str> {
    sanitize(key, false)
}

fn ends_with_word(name: &str, word: &str) -> bool {
    name.strip_suffix(word)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('_'))
}

fn sanitize(name: &str, allow_colon: bool) -> Cow<'_, str> {
    let valid = |i: usize, c: char| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (allow_colon && c == ':')
            || (i > 0 && c.is_ascii_digit())
    };
    if !name.is_empty() && name.char_indices().all(|(i, c)| valid(i, c)) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        out.push('_');
    }
    // A run of invalid characters becomes one underscore.
    let mut replacing = false;
    for c in name.chars() {
        if valid(1, c) {
            out.push(c);
            replacing = false;
        } else if !replacing {
            out.push('_');
            replacing = true;
        }
    }
    Cow::Owned(out)
}

/// The Prometheus suffix of a UCUM unit; annotations like `{record}` have none.
pub(crate) fn unit_suffix(unit: &str, is_counter: bool) -> Option<&'static str> {
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
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        "1" if !is_counter => "ratio",
        "By/s" => "bytes_per_second",
        "{request}/s" | "1/s" => "per_second",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_catalog_names_are_unchanged() {
        for def in crate::catalog::ALL {
            let is_counter = def.kind == crate::catalog::MetricKind::Counter;
            assert_eq!(
                family_name(def.prometheus_name, def.unit, is_counter),
                def.prometheus_name
            );
        }
    }

    #[test]
    fn translates_otel_names() {
        assert_eq!(
            family_name("http.server.request.duration", "s", false),
            "http_server_request_duration_seconds"
        );
        assert_eq!(family_name("rpc.calls", "{call}", true), "rpc_calls_total");
        assert_eq!(family_name("disk.io", "By", true), "disk_io_bytes_total");
        assert_eq!(
            family_name("cpu.utilization", "1", false),
            "cpu_utilization_ratio"
        );
        assert_eq!(family_name("2xx..count", "", false), "_2xx_count");
        assert_eq!(family_name("a_seconds", "s", false), "a_seconds");
        assert_eq!(
            family_name("jobs_totalled", "", true),
            "jobs_totalled_total"
        );
        assert_eq!(family_name("io_total", "By", true), "io_bytes_total");
        assert_eq!(family_name("total", "", true), "total");
    }

    #[test]
    fn sanitizes_label_names() {
        assert_eq!(label_name("otel.metric.overflow"), "otel_metric_overflow");
        assert_eq!(label_name("topic"), "topic");
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name("a:b"), "a_b");
    }
}
