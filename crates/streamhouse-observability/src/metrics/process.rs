//! Process and runtime gauges, read when collected, so operators can see the server's
//! memory, CPU, file descriptors, threads and tokio scheduler stay within bounds.

#[cfg(target_os = "linux")]
mod procfs;
mod runtime;

use opentelemetry::metrics::Meter;
use tokio::runtime::Handle;

use super::observed::GaugeRegistration;
use runtime::RuntimeGauges;

/// Process metrics (resident memory, CPU seconds, open and maximum file descriptors,
/// threads), registered for every telemetry handle, and the tokio runtime figures of a
/// runtime the application registers. Get it from
/// [`Telemetry::process`](crate::Telemetry::process).
///
/// The process figures are read from `/proc/self` on Linux; on other systems they are
/// absent.
///
/// ```
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let _runtime = telemetry
///     .process()
///     .observe_runtime(tokio::runtime::Handle::current());
/// let text = telemetry.render_prometheus();
/// assert!(text.contains("streamhouse_runtime_workers "));
/// # #[cfg(target_os = "linux")]
/// assert!(text.contains("process_resident_memory_bytes "));
/// # });
/// ```
#[derive(Clone)]
pub struct ProcessMetrics {
    runtime: RuntimeGauges,
}

impl std::fmt::Debug for ProcessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMetrics").finish_non_exhaustive()
    }
}

impl ProcessMetrics {
    pub(crate) fn new(meter: &Meter) -> Self {
        #[cfg(target_os = "linux")]
        register_process_gauges(meter);
        ProcessMetrics {
            runtime: RuntimeGauges::new(meter),
        }
    }

    /// Reports the workers, alive tasks and global queue depth of the runtime behind
    /// `handle` until the registration is dropped. With several registrations alive, the
    /// most recent one is reported (the gauges carry no label to tell runtimes apart).
    pub fn observe_runtime(&self, handle: Handle) -> GaugeRegistration {
        self.runtime.observe(handle)
    }
}

#[cfg(target_os = "linux")]
fn register_process_gauges(meter: &Meter) {
    use crate::catalog::{self, MetricDef};

    let gauge = |def: &MetricDef, read: fn() -> Option<u64>| {
        meter
            .u64_observable_gauge(def.otel_name)
            .with_unit(def.unit)
            .with_description(def.description)
            .with_callback(move |observer| {
                if let Some(value) = read() {
                    observer.observe(value, &[]);
                }
            })
            .build();
    };
    gauge(&catalog::PROCESS_RESIDENT_MEMORY, procfs::resident_bytes);
    gauge(&catalog::PROCESS_OPEN_FDS, procfs::open_fds);
    gauge(&catalog::PROCESS_MAX_FDS, procfs::max_fds);
    gauge(&catalog::PROCESS_THREADS, procfs::threads);
    let cpu = &catalog::PROCESS_CPU;
    meter
        .f64_observable_counter(cpu.otel_name)
        .with_unit(cpu.unit)
        .with_description(cpu.description)
        .with_callback(|observer| {
            if let Some(seconds) = procfs::cpu_seconds() {
                observer.observe(seconds, &[]);
            }
        })
        .build();
}
