//! State gauges: owners register a source, one observable instrument reads them all.
//!
//! A source lives as long as its [`GaugeRegistration`]. Drop the registration (the owner is
//! gone) and its series are absent from the next collection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableGauge};

use crate::catalog::MetricDef;

/// Receives one observation: a value and its label set.
pub(crate) type Emit<'a> = &'a mut dyn FnMut(u64, &[KeyValue]);
type Source = Arc<dyn Fn(Emit<'_>) + Send + Sync>;

#[derive(Default)]
struct SourceList {
    next_id: AtomicU64,
    sources: Mutex<Vec<(u64, Source)>>,
}

/// The sources of one observable gauge.
#[derive(Clone, Default)]
pub(crate) struct GaugeSources {
    list: Arc<SourceList>,
}

impl GaugeSources {
    /// Creates the observable gauge for `def`, reading every registered source.
    pub(crate) fn register_gauge(&self, meter: &Meter, def: &MetricDef) -> ObservableGauge<u64> {
        let list = Arc::clone(&self.list);
        meter
            .u64_observable_gauge(def.otel_name)
            .with_unit(def.unit)
            .with_description(def.description)
            .with_callback(move |observer| {
                // Clone the list so a source may register or drop registrations itself.
                let sources: Vec<Source> = list
                    .sources
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|(_, s)| Arc::clone(s))
                    .collect();
                for source in sources {
                    source(&mut |value, attributes| observer.observe(value, attributes));
                }
            })
            .build()
    }

    pub(crate) fn add(
        &self,
        source: impl Fn(Emit<'_>) + Send + Sync + 'static,
    ) -> GaugeRegistration {
        let id = self.list.next_id.fetch_add(1, Ordering::Relaxed);
        self.list
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, Arc::new(source)));
        GaugeRegistration {
            list: Arc::clone(&self.list),
            id,
        }
    }
}

/// Keeps a gauge source registered; dropping it removes the source and its series.
///
/// ```
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let registration = telemetry.system().observe_topics(|| 3);
/// assert!(telemetry.render_prometheus().contains("streamhouse_topics_total 3"));
/// drop(registration);
/// assert!(!telemetry.render_prometheus().contains("streamhouse_topics_total 3"));
/// ```
#[must_use = "the source is removed as soon as the registration is dropped"]
pub struct GaugeRegistration {
    list: Arc<SourceList>,
    id: u64,
}

impl std::fmt::Debug for GaugeRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaugeRegistration")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for GaugeRegistration {
    fn drop(&mut self) {
        self.list
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.id);
    }
}
