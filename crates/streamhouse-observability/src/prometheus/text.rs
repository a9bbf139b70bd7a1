//! Prometheus text exposition format 0.0.4.
//!
//! Contract: every family gets `# HELP` and `# TYPE`; counters are named with `_total`;
//! histograms emit cumulative `_bucket{le}` lines in ascending bound order ending with
//! `+Inf`, then `_sum` and `_count` (both left out when a bound is negative); label values escape `\`, `"` and newline, help text `\`
//! and newline. Families come sorted by name and series by label set,
//! so the same state always renders the same bytes.

use std::io;

use super::body::Body;
use super::families::{Sample, Snapshot};
use super::naming::FamilyType;
use super::write::{self, BucketLines, Number};

const TARGET_INFO_HELP: &str = "Target metadata";

/// Appends `snapshot` to `out`.
///
/// # Errors
/// The error of `out`'s writer: the render stops.
pub(crate) fn encode(snapshot: &Snapshot<'_>, out: &mut Body<'_>) -> io::Result<()> {
    if let Some(set) = &snapshot.target_info {
        header(out, "target_info", TARGET_INFO_HELP, FamilyType::Gauge);
        sample(
            out,
            "target_info",
            "",
            snapshot.label_text(set),
            Number::U64(1),
        );
    }
    let mut buckets = BucketLines::default();
    for family in &snapshot.families {
        let name = &family.name;
        header(out, name, family.help, family.kind);
        snapshot.rows(family, |row| {
            let labels = row.text;
            match row.sample {
                Sample::Number(value) => sample(out, name, "", labels, value),
                Sample::Histogram(point) => {
                    buckets.series(name, labels);
                    let mut index = 0;
                    point.cumulative_buckets(|bound, cumulative| {
                        buckets.line(out, index, bound, cumulative);
                        out.push('\n');
                        index += 1;
                    });
                    buckets.infinity(out, point.count());
                    out.push('\n');
                    if let Some(sum) = point.sum() {
                        sample(out, name, "_sum", labels, sum);
                        sample(out, name, "_count", labels, Number::U64(point.count()));
                    }
                }
            }
            out.flush_full()
        })?;
    }
    Ok(())
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

fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: Number) {
    write::sample(out, name, suffix, labels, value);
    out.push('\n');
}
