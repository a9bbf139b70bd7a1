//! `docs/metrics.md` is generated from the catalog and must match it.
//! Regenerate with `STREAMHOUSE_BLESS=1 cargo test --test catalog_docs`.

use std::path::Path;

use streamhouse_observability::catalog;

const HEADER: &str = "# StreamHouse metrics\n\n\
Generated from `crates/streamhouse-observability/src/catalog/mod.rs` by `tests/catalog_docs.rs`;\n\
do not edit by hand. `streamhouse_partitions_total` and `streamhouse_topics_total` are gauges\n\
whose `_total` names come from the original contract and are kept for existing dashboards.\n\n";

#[test]
fn metrics_doc_matches_the_catalog() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
    let want = format!("{HEADER}{}", catalog::to_markdown());
    if std::env::var_os("STREAMHOUSE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/metrics.md is stale: run STREAMHOUSE_BLESS=1 cargo test --test catalog_docs"
    );
}
