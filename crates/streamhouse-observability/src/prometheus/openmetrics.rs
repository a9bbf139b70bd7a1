//! OpenMetrics 1.0 text format, with exemplars.
//!
//! Contract: families with `# TYPE`, `# HELP` and, where the name ends in its unit,
//! `# UNIT`; a counter family is named without `_total` and sampled as `_total`; histograms
//! as in the text format, each bucket line carrying the exemplar of that bucket when one
//! was captured, `# {trace_id="…",span_id="…"} value timestamp`; counters carry theirs on
//! the `_total` line; optional `_created` samples follow a series' last line; the resource
//! is the info family `target`; `# EOF` ends the body. `le` is spelled as in the text format
//! (`le="1"`, not the canonical `1.0`) so a bucket series is the same in both formats.
//! Families and series are ordered as in the text format.

use std::io;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::body::Body;
use super::families::{Family, Sample, Snapshot};
use super::naming::{FamilyType, unit_suffix};
use super::write::{self, BucketLines, Number};
use crate::exemplars::{Exemplar, ExemplarStore, SeriesExemplars};

/// Appends `snapshot` to `out`, with the exemplars `store` holds for its series, and
/// `_created` samples when `created`.
///
/// # Errors
/// The error of `out`'s writer: the render stops.
pub(crate) fn encode(
    snapshot: &Snapshot<'_>,
    store: &ExemplarStore,
    created: bool,
    out: &mut Body<'_>,
) -> io::Result<()> {
    if let Some(set) = &snapshot.target_info {
        out.push_str("# TYPE target info\n# HELP target Target metadata\n");
        let labels = snapshot.label_text(set);
        sample(out, "target", "_info", labels, Number::U64(1), None);
    }
    let mut buckets = BucketLines::default();
    for family in &snapshot.families {
        let stem = match family.kind {
            FamilyType::Counter => family.name.strip_suffix("_total").unwrap_or(&family.name),
            _ => &family.name,
        };
        header(out, stem, family);
        let exemplars = store.metric(&family.name);
        snapshot.rows(family, |row| {
            let source = &snapshot.sources[row.source as usize];
            let labels = row.text;
            // Catalog exemplars belong to StreamHouse's own streams only.
            let slots = exemplars
                .filter(|_| source.own)
                .and_then(|m| row.exemplars.slots(m));
            let exemplar = |i: usize| slots.as_ref().and_then(|s: &Arc<SeriesExemplars>| s.get(i));
            match (family.kind, row.sample) {
                (FamilyType::Counter, Sample::Number(value)) => {
                    sample(out, stem, "_total", labels, value, exemplar(0))
                }
                (_, Sample::Number(value)) => sample(out, stem, "", labels, value, None),
                (_, Sample::Histogram(point)) => {
                    buckets.series(stem, labels);
                    let mut index = 0;
                    point.cumulative_buckets(|bound, cumulative| {
                        buckets.line(out, index, bound, cumulative);
                        end_line(out, exemplar(index));
                        index += 1;
                    });
                    buckets.infinity(out, point.count());
                    end_line(out, exemplar(index));
                    if let Some(sum) = point.sum() {
                        sample(out, stem, "_sum", labels, sum, None);
                        let count = Number::U64(point.count());
                        sample(out, stem, "_count", labels, count, None);
                    }
                }
            }
            if created && let Some(start) = row.start {
                let seconds = start
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                sample(out, stem, "_created", labels, Number::F64(seconds), None);
            }
            out.flush_full()
        })?;
    }
    out.push_str("# EOF\n");
    Ok(())
}

fn header(out: &mut String, stem: &str, family: &Family<'_>) {
    out.push_str("# TYPE ");
    out.push_str(stem);
    out.push(' ');
    out.push_str(family.kind.as_str());
    out.push_str("\n# HELP ");
    out.push_str(stem);
    out.push(' ');
    write::openmetrics_help(out, family.help);
    out.push('\n');
    // OpenMetrics requires a family with a UNIT to end in it.
    if let Some(unit) = unit_suffix(family.unit, family.kind)
        && stem
            .strip_suffix(&*unit)
            .is_some_and(|rest| rest.ends_with('_'))
    {
        out.push_str("# UNIT ");
        out.push_str(stem);
        out.push(' ');
        out.push_str(&unit);
        out.push('\n');
    }
}

fn sample(
    out: &mut String,
    stem: &str,
    suffix: &str,
    labels: &str,
    value: Number,
    exemplar: Option<Exemplar>,
) {
    write::sample(out, stem, suffix, labels, value);
    write_exemplar(out, exemplar);
    out.push('\n');
}

/// Ends a sample line, with its exemplar if any.
fn end_line(out: &mut String, exemplar: Option<Exemplar>) {
    write_exemplar(out, exemplar);
    out.push('\n');
}

/// ` # {trace_id="…",span_id="…"} value timestamp`: 63 characters of labels, well inside
/// the 128 OpenMetrics allows. An exemplar kept outside a sampled span (filter `always_on`)
/// has no ids: ` # {} value timestamp`.
fn write_exemplar(out: &mut String, exemplar: Option<Exemplar>) {
    let Some(exemplar) = exemplar else {
        return;
    };
    if exemplar.trace_id == opentelemetry::trace::TraceId::INVALID {
        out.push_str(" # {} ");
    } else {
        out.push_str(" # {trace_id=\"");
        out.push_str(&exemplar.trace_id.to_string());
        out.push_str("\",span_id=\"");
        out.push_str(&exemplar.span_id.to_string());
        out.push_str("\"} ");
    }
    write::float(out, exemplar.value);
    out.push(' ');
    // Millisecond precision is what Prometheus keeps.
    write::float(out, (exemplar.timestamp * 1000.0).round() / 1000.0);
}
