//! A catalog any component can extend: StreamHouse components outside this crate register
//! their own entries, and get pinned names and buckets on every reader like the built-in ones.

use std::collections::HashSet;
use std::fmt;

use super::{ALL, MetricDef, MetricKind};
use crate::prometheus::naming::{FamilyType, family_name, label_name};

/// The metrics a [`Telemetry`](crate::Telemetry) pins with views: the built-in catalog
/// ([`ALL`]) plus what components register.
///
/// ```
/// use streamhouse_observability::TelemetryConfig;
/// use streamhouse_observability::catalog::{Catalog, MetricDef};
///
/// // In a component crate: its metrics, declared once.
/// const COMPACTIONS: MetricDef = MetricDef::counter(
///     "streamhouse.compactor.compactions",
///     "streamhouse_compactor_compactions_total",
///     "{compaction}",
///     "Total segment compactions",
///     &["topic"],
/// );
///
/// let config = TelemetryConfig::default().with_metrics(&[COMPACTIONS]).unwrap();
/// assert!(config.catalog.by_otel_name("streamhouse.compactor.compactions").is_some());
///
/// // A clash with an existing name is refused at registration.
/// let mut catalog = Catalog::streamhouse();
/// let clash = MetricDef::gauge(
///     "streamhouse.producer.latency.count",
///     "streamhouse_producer_latency_seconds_count",
///     "{request}",
///     "Shadows the histogram's _count samples",
///     &[],
/// );
/// assert!(catalog.register(clash).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    entries: Vec<MetricDef>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::streamhouse()
    }
}

/// Why a catalog entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// The entry's OpenTelemetry instrument name.
    pub metric: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot register metric {}: {}", self.metric, self.reason)
    }
}

impl std::error::Error for CatalogError {}

impl Catalog {
    /// The built-in StreamHouse catalog. Not checked entry by entry here: it is built on
    /// every `TelemetryConfig::default()`, and its tests register each entry instead.
    pub fn streamhouse() -> Self {
        Catalog {
            entries: ALL.to_vec(),
        }
    }

    /// Adds `def` after checking it: a valid instrument name, an exposed name already in the
    /// form the bridge would give it (`_total` on counters, the unit suffix), unique label
    /// keys that are not reserved, ascending finite buckets on histograms only, a
    /// description, and no name that clashes with an entry already here or with
    /// `target_info`.
    ///
    /// # Errors
    /// A [`CatalogError`] saying what is wrong; the catalog is left unchanged.
    pub fn register(&mut self, def: MetricDef) -> Result<(), CatalogError> {
        let refuse = |reason: String| CatalogError {
            metric: def.otel_name.to_owned(),
            reason,
        };
        check_entry(&def).map_err(refuse)?;
        if self.by_otel_name(def.otel_name).is_some() {
            return Err(refuse("the instrument name is already registered".into()));
        }
        let claims = claimed_names(&def);
        let taken = |name: &String| {
            name == "target"
                || name == "target_info"
                || self.entries.iter().any(|e| claimed_names(e).contains(name))
        };
        if let Some(name) = claims.iter().find(|name| taken(name)) {
            return Err(refuse(format!(
                "exposed name {name} is already taken (by target_info or another entry)"
            )));
        }
        self.entries.push(def);
        Ok(())
    }

    /// Every entry, built-in ones first, in registration order.
    pub fn entries(&self) -> &[MetricDef] {
        &self.entries
    }

    /// The entry for an OpenTelemetry instrument name.
    pub fn by_otel_name(&self, name: &str) -> Option<&MetricDef> {
        self.entries.iter().find(|def| def.otel_name == name)
    }

    /// The entry for an exposed (Prometheus) name.
    pub fn by_prometheus_name(&self, name: &str) -> Option<&MetricDef> {
        self.entries.iter().find(|def| def.prometheus_name == name)
    }
}

/// The Prometheus type a metric of `kind` is exposed as.
pub(crate) fn family_type(kind: MetricKind) -> FamilyType {
    match kind {
        MetricKind::Counter => FamilyType::Counter,
        MetricKind::Gauge => FamilyType::Gauge,
        MetricKind::Histogram => FamilyType::Histogram,
    }
}

fn claimed_names(def: &MetricDef) -> Vec<String> {
    family_type(def.kind).claimed_names(def.prometheus_name)
}

fn check_entry(def: &MetricDef) -> Result<(), String> {
    // The SDK's instrument name rule: a letter, then up to 254 of [A-Za-z0-9_.-/].
    let otel = def.otel_name;
    let otel_ok = otel.len() <= 255
        && otel.starts_with(|c: char| c.is_ascii_alphabetic())
        && otel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !otel_ok {
        return Err(format!("invalid instrument name {otel:?}"));
    }
    if def.unit.len() > 63 || !def.unit.is_ascii() {
        return Err(format!(
            "invalid unit {:?}: at most 63 ASCII characters",
            def.unit
        ));
    }
    let exposed = def.prometheus_name;
    let kind = family_type(def.kind);
    if family_name(exposed, def.unit, kind) != exposed {
        let want = family_name(exposed, def.unit, kind);
        return Err(format!(
            "exposed name {exposed:?} is not in exposed form (the bridge would expose {want:?})"
        ));
    }
    if def.description.is_empty() {
        return Err("empty description".into());
    }
    let mut seen = HashSet::new();
    for key in def.labels {
        let name = label_name(key);
        let reserved = ["le", "quantile"].contains(&&*name) || name.starts_with("otel_scope_");
        if key.is_empty() || reserved || !seen.insert(name.clone()) {
            return Err(format!(
                "label {key:?} is empty, reserved, or exposed as the same name as another"
            ));
        }
    }
    let is_histogram = def.kind == MetricKind::Histogram;
    let buckets_ok = match is_histogram {
        true => {
            !def.buckets.is_empty()
                && def.buckets.iter().all(|b| b.is_finite())
                && def.buckets.windows(2).all(|w| w[0] < w[1])
        }
        false => def.buckets.is_empty(),
    };
    if !buckets_ok {
        return Err(format!(
            "buckets {:?}: a histogram needs ascending finite bounds, other kinds none",
            def.buckets
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn gauge(otel: &'static str, exposed: &'static str) -> MetricDef {
        MetricDef::gauge(otel, exposed, "{thing}", "A gauge", &["topic"])
    }

    #[test]
    fn the_built_in_catalog_registers() {
        let mut catalog = Catalog {
            entries: Vec::new(),
        };
        for def in ALL {
            catalog.register(*def).unwrap();
        }
        assert_eq!(catalog, Catalog::streamhouse());
    }

    #[test]
    fn refuses_clashes_with_every_name_a_family_emits() {
        let clashes = [
            // Same instrument name.
            gauge("streamhouse.producer.records", "new_name"),
            // Same exposed name.
            gauge("a.b", "streamhouse_consumer_lag"),
            // A histogram's sample names.
            gauge("a.c", "streamhouse_producer_latency_seconds_bucket"),
            gauge("a.d", "streamhouse_producer_latency_seconds_sum"),
            // A counter's OpenMetrics family name and _created sample.
            gauge("a.e", "streamhouse_producer_records"),
            gauge("a.f", "streamhouse_producer_records_created"),
            // The resource family.
            gauge("a.g", "target_info"),
            gauge("a.h", "target"),
        ];
        for def in clashes {
            let mut catalog = Catalog::streamhouse();
            let err = catalog.register(def).unwrap_err();
            assert_eq!(err.metric, def.otel_name);
            assert_eq!(catalog, Catalog::streamhouse(), "{def:?}");
        }
    }

    #[test]
    fn refuses_malformed_entries() {
        let bad = [
            gauge("9starts.with.digit", "ok_name"),
            gauge("has space", "ok_name"),
            // Not in exposed form: the bridge would add `_total` / `_seconds`.
            MetricDef::counter("a.counter", "a_counter", "{x}", "c", &[]),
            MetricDef::gauge("a.time", "a_time", "s", "t", &[]),
            MetricDef::gauge("a.bad", "a-bad", "", "b", &[]),
            MetricDef::gauge("a.empty", "a_empty", "", "", &[]),
            MetricDef::gauge("a.le", "a_le", "", "d", &["le"]),
            MetricDef::gauge("a.dup", "a_dup", "", "d", &["http.route", "http_route"]),
            MetricDef::histogram("a.h", "a_h", "", "d", &[], &[]),
            MetricDef::histogram("a.h2", "a_h2", "", "d", &[], &[2.0, 1.0]),
            MetricDef::histogram("a.h3", "a_h3", "", "d", &[], &[1.0, f64::INFINITY]),
        ];
        for def in bad {
            assert!(Catalog::streamhouse().register(def).is_err(), "{def:?}");
        }
    }

    #[test]
    fn accepts_a_component_entry() {
        let mut catalog = Catalog::streamhouse();
        let def = MetricDef::histogram(
            "streamhouse.compactor.duration",
            "streamhouse_compactor_duration_seconds",
            "s",
            "Compaction duration",
            &["topic"],
            &[0.1, 1.0, 10.0],
        );
        catalog.register(def).unwrap();
        assert_eq!(catalog.by_otel_name(def.otel_name), Some(&def));
        assert_eq!(catalog.by_prometheus_name(def.prometheus_name), Some(&def));
        assert_eq!(catalog.entries().len(), ALL.len() + 1);
    }
}
