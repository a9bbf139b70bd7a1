//! Resident memory per series of one library holding one shape of N series (the workloads of
//! `benches/scrape.rs`), and the peak during a scrape; one library, shape and N per process,
//! so memory one library freed cannot hide another's. `scripts/scrape-memory` runs them all
//! and prints the tables.
//!
//! ```text
//! scrape_memory <ours|ours_exemplars|sdk|prometheus_client|tikv|otel_prometheus> <seed|generic> <N>
//! scrape_memory limit <ours|sdk> <L>
//! ```
//!
//! Readings (VmRSS of `/proc/self/status`, each after glibc's `malloc_trim(0)`, so memory
//! freed to the allocator does not count, for every library alike): `rss_before` once the
//! empty registry or provider is built, `rss_after` once every series is recorded and one
//! scrape rendered with its body dropped; `bytes_per_series` is their difference over N.
//! Then `/proc/self/clear_refs` resets the high-water mark and a second scrape runs:
//! `peak_extra_bytes` is VmHWM over the RSS before it (the body included), `peak_over_body`
//! that over the body size. For `sdk` (the bare SDK with a cumulative manual reader, no
//! encoding) `rss_after` is the SDK's own state, and `rss_after_kept` /
//! `bytes_per_series_kept` hold a collection kept too, as a reader that renders from it does.
//! Every library's scrape is then checked (the same series and values as in the bench).
//!
//! `limit` mode (the cardinality limit's own cost): the four seed families over 10 topics, on
//! our `Telemetry` (every catalog instrument gets the limit) or the bare SDK (the four
//! instruments), with cardinality limit L; reports RSS and virtual size grown since the
//! process started.
//!
//! One JSON line on stdout.

#[allow(dead_code)] // Shared with benches/scrape.rs, which uses other parts.
#[path = "../benches/scrape_shapes/mod.rs"]
mod scrape_shapes;

use std::error::Error;

use scrape_shapes::{Library, OursSeed, Sdk, Shape};
use serde_json::json;
use streamhouse_observability::catalog::Catalog;

/// Topics of the `limit` mode: few series, so the limit's own cost shows.
const LIMIT_TOPICS: usize = 10;

const USAGE: &str = "usage: scrape_memory <ours|ours_exemplars|sdk|prometheus_client|tikv|otel_prometheus> <seed|generic> <N>\n       scrape_memory limit <ours|sdk> <L>";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["limit", library, limit] => limit_cost(library, limit.parse()?),
        [library, shape, n] => {
            let shape = Shape::parse(shape).ok_or(USAGE)?;
            per_series(library, shape, n.parse()?)
        }
        _ => Err(USAGE.into()),
    }
}

fn per_series(library: &str, shape: Shape, n: usize) -> Result<(), Box<dyn Error>> {
    let mut lib = scrape_shapes::build(library, shape, n, shape.limit(n)).ok_or(USAGE)?;
    let rss_before = rss()?;
    lib.populate();
    let (rss_after, kept) = match lib.collection() {
        Some(collection) => {
            let kept = rss()?;
            drop(collection);
            (rss()?, Some(kept))
        }
        None => {
            lib.scrape();
            (rss()?, None)
        }
    };
    let start = rss()?;
    std::fs::write("/proc/self/clear_refs", "5")?;
    let body_bytes = lib.scrape();
    let peak_extra = status_bytes("VmHWM:")?.saturating_sub(start);
    lib.check();
    let per_series = |rss: u64| rss.saturating_sub(rss_before) as f64 / n as f64;
    let mut line = json!({
        "library": library,
        "shape": shape.name(),
        "n": n,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "bytes_per_series": per_series(rss_after).round(),
        "body_bytes": body_bytes,
        "peak_extra_bytes": peak_extra,
        "peak_over_body": (body_bytes > 0).then(|| peak_extra as f64 / body_bytes as f64),
    });
    if let Some(kept) = kept {
        line["rss_after_kept"] = json!(kept);
        line["bytes_per_series_kept"] = json!(per_series(kept).round());
    }
    println!("{line}");
    Ok(())
}

fn limit_cost(library: &str, limit: usize) -> Result<(), Box<dyn Error>> {
    let n = LIMIT_TOPICS * 4;
    let rss_base = rss()?;
    let vm_base = status_bytes("VmSize:")?;
    let (mut lib, instruments): (Box<dyn Library>, usize) = match library {
        "ours" => (
            Box::new(OursSeed::new(n, limit, false)),
            Catalog::streamhouse().entries().len(),
        ),
        "sdk" => (Box::new(Sdk::new(Shape::Seed, n, limit)), 4),
        _ => return Err(USAGE.into()),
    };
    lib.populate();
    lib.scrape();
    let rss_after = rss()?;
    let vm_after = status_bytes("VmSize:")?;
    lib.check();
    println!(
        "{}",
        json!({
            "library": library,
            "mode": "limit",
            "limit": limit,
            "series": n,
            "instruments": instruments,
            "rss_base": rss_base,
            "rss_after": rss_after,
            "rss_bytes": rss_after.saturating_sub(rss_base),
            "vm_size_bytes": vm_after.saturating_sub(vm_base),
        })
    );
    Ok(())
}

/// Resident bytes, after handing memory freed to the allocator back to the system.
fn rss() -> Result<u64, Box<dyn Error>> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
    status_bytes("VmRSS:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?
        .parse()?;
    Ok(kib * 1024)
}
