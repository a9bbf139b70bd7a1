//! Prometheus text exposition format 0.0.4.
//!
//! Contract: every family gets `# HELP` and `# TYPE`; counters are named with `_total`;
//! histograms emit cumulative `_bucket{le}` lines in ascending bound order ending with
//! `+Inf`, then `_sum` and `_count`; label values escape `\`, `"` and newline, help text `\`
//! and newline. Families come sorted by name and series by label set,
//! so the same state always renders the same bytes.

use super::families::{FamilyType, Label, LabelValue, Sample, Snapshot};
use super::write::{self, Number};

/// The content type of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const TARGET_INFO_HELP: &str = "Target metadata";

/// Appends `snapshot` to `out`.
pub(crate) fn encode(snapshot: &Snapshot<'_>, out: &mut String) {
    let mut labels = String::new();
    if let Some(range) = &snapshot.target_info {
        header(out, "target_info", TARGET_INFO_HELP, FamilyType::Gauge);
        render_labels(&mut labels, snapshot.labels(range));
        sample(out, "target_info", "", &labels, Number::U64(1));
    }
    for family in &snapshot.families {
        header(out, &family.name, family.help, family.kind);
        for series in &family.series {
            labels.clear();
            render_labels(&mut labels, snapshot.labels(&series.labels));
            match series.sample {
                Sample::Number(value) => sample(out, &family.name, "", &labels, value),
                Sample::Histogram(point) => {
                    point.cumulative_buckets(|bound, cumulative| {
                        bucket(out, &family.name, &labels, Bound::Finite(bound), cumulative)
                    });
                    bucket(out, &family.name, &labels, Bound::Inf, point.count());
                    sample(out, &family.name, "_sum", &labels, point.sum());
                    sample(
                        out,
                        &family.name,
                        "_count",
                        &labels,
                        Number::U64(point.count()),
                    );
                }
            }
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: FamilyType) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    write::help(out, help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind.as_str());
    out.push('\n');
}

/// Renders `a="x",b="y"` (no braces) once per series, reused by every line of it.
pub(crate) fn render_labels(out: &mut String, labels: &[Label<'_>]) {
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&label.name);
        out.push_str("=\"");
        match label.value {
            LabelValue::Attribute(value) => write::attribute_value(out, value),
            LabelValue::Text(text) => write::label_value(out, text),
        }
        out.push('"');
    }
}

fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: Number) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    value.write(out);
    out.push('\n');
}

enum Bound {
    Finite(f64),
    Inf,
}

fn bucket(out: &mut String, name: &str, labels: &str, bound: Bound, cumulative: u64) {
    out.push_str(name);
    out.push_str("_bucket{");
    out.push_str(labels);
    if !labels.is_empty() {
        out.push(',');
    }
    out.push_str("le=\"");
    match bound {
        Bound::Finite(b) => write::float(out, b),
        Bound::Inf => out.push_str("+Inf"),
    }
    out.push_str("\"} ");
    out.push_str(itoa::Buffer::new().format(cumulative));
    out.push('\n');
}
