//! Metric push from the series store: a thread of its own exports the store at every
//! interval, on flush, and once more at shutdown, cumulative or delta (see
//! `store_request`). The SDK's periodic reader cannot do it: its data points carry no
//! exemplars, and in cumulative mode it would keep a second copy of every series in the
//! SDK, which removal and idle expiry cannot reach (see [`series`](crate::series)).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use tokio::runtime::Handle;

use super::counted::Counted;
use super::store_request::{DeltaState, cumulative_request, delta_request};
use super::transport::OtlpExporter;
use crate::series::collector::{Collector, Flush};

enum Control {
    Flush(Sender<OTelSdkResult>),
    Shutdown(Sender<OTelSdkResult>),
}

/// The push thread's handle.
pub(crate) struct StorePush {
    control: Mutex<Option<Sender<Control>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StorePush {
    /// Starts pushing what `collector` holds every `interval` through `exporter`, whose
    /// requests run on `runtime`, in `temporality`.
    pub(crate) fn start(
        collector: Weak<Collector>,
        exporter: Counted<OtlpExporter>,
        interval: Duration,
        runtime: Handle,
        temporality: Temporality,
    ) -> std::io::Result<Self> {
        let (control, commands) = mpsc::channel();
        let mut delta = match temporality {
            Temporality::Cumulative => None,
            _ => {
                if let Some(collector) = collector.upgrade() {
                    collector.keep_deltas();
                }
                Some(DeltaState::new(SystemTime::now(), temporality))
            }
        };
        let mut export = move || -> OTelSdkResult {
            let Some(collector) = collector.upgrade() else {
                return Ok(());
            };
            let send = |request| runtime.block_on(exporter.export_request(request));
            match &mut delta {
                None => export_cumulative(&collector, send),
                Some(state) => export_delta(&collector, state, send),
            }
        };
        let thread = std::thread::Builder::new()
            .name("streamhouse-metrics-push".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match commands.recv_timeout(wait) {
                        Ok(Control::Flush(done)) => {
                            let _ = done.send(export());
                        }
                        Ok(Control::Shutdown(done)) => {
                            let _ = done.send(export());
                            return;
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            // Failures are counted and logged by the exporter.
                            let _ = export();
                            next = Instant::now() + interval;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(StorePush {
            control: Mutex::new(Some(control)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn ask(
        &self,
        command: impl FnOnce(Sender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (done, answer) = mpsc::channel();
        let sent = self
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|c| c.send(command(done)).is_ok());
        if !sent {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        answer
            .recv_timeout(timeout)
            .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
    }
}

/// Sends every series of the store, if it holds any.
fn export_cumulative(
    collector: &Collector,
    send: impl FnOnce(ExportMetricsServiceRequest) -> OTelSdkResult,
) -> OTelSdkResult {
    // Stamped after the collection, so the request holds everything it collected.
    let request = collector
        .read(|store| (store.len() > 0).then(|| cumulative_request(store, SystemTime::now())))?;
    request.map_or(Ok(()), send)
}

/// Sends the window since the last export; a window that fails to go out is put back for
/// the next one, which then starts where this one did.
fn export_delta(
    collector: &Collector,
    state: &mut DeltaState,
    send: impl FnOnce(ExportMetricsServiceRequest) -> OTelSdkResult,
) -> OTelSdkResult {
    let (request, taken) = collector.read_delta(|store, pending| {
        let now = SystemTime::now();
        (store.len() + pending.len() > 0).then(|| delta_request(store, pending, state, now))
    })?;
    let Some((request, next)) = request else {
        return Ok(());
    };
    let result = send(request);
    match result {
        Ok(()) => *state = next,
        Err(_) => collector.restore_pending(taken),
    }
    result
}

/// Longest wait for a flush's export; the exporter's own timeout bounds it first.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

impl Flush for StorePush {
    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, FLUSH_TIMEOUT)
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.ask(Control::Shutdown, timeout);
        self.control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if result.is_ok()
            && let Some(thread) = self
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        {
            let _ = thread.join();
        }
        result
    }
}
