//! `promtool check metrics` (the Prometheus project's linter) accepts the exposition; its
//! only complaints are the two gauges the seed named `_total`.

mod support;

use streamhouse_observability::catalog;

#[test]
fn promtool_finds_nothing_but_the_seed_total_gauges() {
    let telemetry = support::telemetry();
    let _recorded = support::record_every_metric(&telemetry);
    let body = telemetry.render_prometheus();

    let (_, complaints) = support::promtool_check_metrics(&body);
    let allowed = [
        catalog::PARTITIONS.prometheus_name,
        catalog::TOPICS.prometheus_name,
    ];
    for complaint in &complaints {
        assert!(
            allowed.iter().any(|name| complaint.starts_with(name)),
            "unexpected promtool complaint: {complaint}"
        );
    }
    // The linter ran: it flags each seed gauge exactly once.
    for name in allowed {
        let hits = complaints.iter().filter(|c| c.starts_with(name)).count();
        assert_eq!(hits, 1, "{name} in {complaints:?}");
    }
}

#[test]
fn promtool_rejects_a_broken_exposition() {
    // Guards the check above: promtool must fail on malformed input, not just print nothing.
    let (ok, complaints) = support::promtool_check_metrics("broken{a=\"b} 1\n");
    assert!(!ok);
    assert!(!complaints.is_empty());
}
