//! Tokio runtime gauges: workers, alive tasks and global queue depth of a registered runtime.
//!
//! Collection may run on a thread outside any runtime (a push exporter's, a scrape on
//! another runtime), so the runtime is registered as an explicit [`Handle`].

use std::sync::{Arc, Mutex, PoisonError, Weak};

use opentelemetry::metrics::Meter;
use tokio::runtime::{Handle, RuntimeMetrics};

use super::super::observed::{Emit, GaugeRegistration, GaugeSources};
use crate::catalog::{self, MetricDef};

/// The registered runtimes, oldest first. The list holds them weakly: each
/// [`GaugeRegistration`] owns its handle, so dropping the registration ends its reports.
#[derive(Default)]
struct Registered {
    handles: Mutex<Vec<Weak<Handle>>>,
}

impl Registered {
    /// The most recently registered runtime still alive.
    fn latest(&self) -> Option<Arc<Handle>> {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        handles.retain(|h| h.strong_count() > 0);
        handles.last().and_then(Weak::upgrade)
    }
}

/// Registers runtimes and reads the latest one when collected.
#[derive(Clone, Default)]
pub(super) struct RuntimeGauges {
    registered: Arc<Registered>,
    // Holds each registration's handle; never read by an instrument.
    owners: GaugeSources,
}

impl RuntimeGauges {
    pub(super) fn new(meter: &Meter) -> Self {
        let gauges = RuntimeGauges::default();
        gauges.gauge(
            meter,
            &catalog::RUNTIME_WORKERS,
            RuntimeMetrics::num_workers,
        );
        gauges.gauge(
            meter,
            &catalog::RUNTIME_ALIVE_TASKS,
            RuntimeMetrics::num_alive_tasks,
        );
        gauges.gauge(
            meter,
            &catalog::RUNTIME_GLOBAL_QUEUE_DEPTH,
            RuntimeMetrics::global_queue_depth,
        );
        gauges
    }

    fn gauge(&self, meter: &Meter, def: &MetricDef, read: fn(&RuntimeMetrics) -> usize) {
        let registered = Arc::clone(&self.registered);
        meter
            .u64_observable_gauge(def.otel_name)
            .with_unit(def.unit)
            .with_description(def.description)
            .with_callback(move |observer| {
                if let Some(handle) = registered.latest() {
                    observer.observe(read(&handle.metrics()) as u64, &[]);
                }
            })
            .build();
    }

    pub(super) fn observe(&self, handle: Handle) -> GaugeRegistration {
        let handle = Arc::new(handle);
        self.registered
            .handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&handle));
        self.owners.add(move |_: Emit<'_>| {
            let _owned: &Arc<Handle> = &handle;
        })
    }
}
