//! The one SDK reader of a telemetry instance: collects deltas into the [`Store`], applies
//! removal and idle expiry, and lends the store to whoever renders or pushes it.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use super::store::Store;
use super::{Caches, Clock, SystemClock};
use crate::exemplars::ExemplarStore;

/// What the lifecycle of series needs from its telemetry instance.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    pub(crate) caches: Arc<Caches>,
    pub(crate) exemplars: ExemplarStore,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) idle_timeout: Option<Duration>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            caches: Arc::default(),
            exemplars: ExemplarStore::default(),
            clock: Arc::new(SystemClock),
            idle_timeout: None,
        }
    }
}

/// A push of the store that must run on flush and once more at shutdown.
pub(crate) trait Flush: Send + Sync {
    fn force_flush(&self) -> OTelSdkResult;
    fn shutdown(&self, timeout: Duration) -> OTelSdkResult;
}

/// Collects the SDK's deltas into one cumulative store.
pub(crate) struct Collector {
    sdk: ManualReader,
    store: Mutex<Store>,
    lifecycle: Lifecycle,
    /// Idle times are kept as ns since this instant.
    origin: Instant,
    push: OnceLock<Box<dyn Flush>>,
    /// With delta push: what was collected since the last push took it, deltas added up.
    pending: OnceLock<Mutex<Store>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("idle_timeout", &self.lifecycle.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Collector {
    pub(crate) fn new(lifecycle: Lifecycle) -> Self {
        let origin = lifecycle.clock.now();
        Collector {
            sdk: ManualReader::builder()
                .with_temporality(Temporality::Delta)
                .build(),
            store: Mutex::new(Store::new(lifecycle.exemplars.clone())),
            lifecycle,
            origin,
            push: OnceLock::new(),
            pending: OnceLock::new(),
        }
    }

    /// Deltas for what the store adds up, cumulative for what it replaces: observable
    /// instruments report totals, and a gauge has no delta.
    pub(crate) fn temporality(kind: InstrumentKind) -> Temporality {
        match kind {
            InstrumentKind::Counter | InstrumentKind::Histogram | InstrumentKind::UpDownCounter => {
                Temporality::Delta
            }
            _ => Temporality::Cumulative,
        }
    }

    /// Collects, then calls `read` with the store.
    ///
    /// # Errors
    /// The SDK's error when the provider is shut down or not yet built.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&mut Store) -> R) -> Result<R, OTelSdkError> {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        self.collect(&mut store)?;
        Ok(read(&mut store))
    }

    /// Collects into the store, leaving the SDK's collection in `rm`.
    pub(crate) fn collect_into(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        self.collect_with(&mut store, rm)
    }

    /// A fresh collection each time, dropped once merged: kept for reuse, it would hold a
    /// second copy of every series that changed, and the SDK allocates each data point's
    /// attributes anyway.
    fn collect(&self, store: &mut Store) -> OTelSdkResult {
        self.collect_with(store, &mut ResourceMetrics::default())
    }

    fn collect_with(&self, store: &mut Store, metrics: &mut ResourceMetrics) -> OTelSdkResult {
        self.sdk.collect(metrics)?;
        self.keep_pending(metrics);
        if self.fold(store, metrics) {
            self.collect_again(store)?;
        }
        Ok(())
    }

    /// A second collection right after handles were retired: the SDK forgets their series
    /// (unbound and quiet since the first), so their cardinality slots are free now rather
    /// than at the next collection.
    fn collect_again(&self, store: &mut Store) -> OTelSdkResult {
        let mut metrics = ResourceMetrics::default();
        self.sdk.collect(&mut metrics)?;
        self.keep_pending(&metrics);
        store.merge(&metrics, self.lifecycle.clock.now());
        Ok(())
    }

    /// Adds a collection to what delta push has not taken yet. Taken with the store's lock
    /// held, so the order is always store, then pending.
    fn keep_pending(&self, metrics: &ResourceMetrics) {
        if let Some(pending) = self.pending.get() {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.merge(metrics, self.lifecycle.clock.now());
        }
    }

    /// Keeps what each collection adds from now on, for [`Collector::read_delta`].
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn keep_deltas(&self) {
        let exemplars = self.lifecycle.exemplars.clone();
        let _ = self.pending.set(Mutex::new(Store::new(exemplars)));
    }

    /// Collects, then calls `read` with the store and what was collected since the last
    /// call (deltas added up; empty unless [`Collector::keep_deltas`] was called), which it
    /// takes: memory holds only the series that changed between two pushes. Returns what
    /// it took too, for [`Collector::restore_pending`] when the export fails.
    ///
    /// # Errors
    /// The SDK's error when the provider is shut down or not yet built.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn read_delta<R>(
        &self,
        read: impl FnOnce(&Store, &Store) -> R,
    ) -> Result<(R, Store), OTelSdkError> {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        self.collect(&mut store)?;
        let pending = match self.pending.get() {
            Some(pending) => {
                let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
                let empty = Store::new(self.lifecycle.exemplars.clone());
                std::mem::replace(&mut *pending, empty)
            }
            None => Store::default(),
        };
        Ok((read(&store, &pending), pending))
    }

    /// Puts back what [`Collector::read_delta`] took, with what was collected since added
    /// to it: an export that failed loses nothing, the next one carries both windows.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn restore_pending(&self, taken: Store) {
        if let Some(pending) = self.pending.get() {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            let newer = std::mem::replace(&mut *pending, taken);
            pending.absorb(newer);
        }
    }

    /// Merges `metrics` and expires idle series; returns whether handles were retired.
    fn fold(&self, store: &mut Store, metrics: &ResourceMetrics) -> bool {
        let now = self.lifecycle.clock.now();
        store.merge(metrics, now);
        let Some(timeout) = self.lifecycle.idle_timeout else {
            return false;
        };
        let expired = store.expire(now, timeout);
        let retired = self.lifecycle.caches.sweep(self.nanos(now), nanos(timeout));
        if expired + retired > 0 {
            self.lifecycle.exemplars.forget_unused();
        }
        retired > 0
    }

    fn nanos(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.origin))
    }

    /// Removes every series of `scope`'s streams carrying `key` = `value`; returns how many
    /// left the store.
    pub(crate) fn remove(&self, scope: &str, key: &str, value: &str) -> usize {
        self.lifecycle.caches.retire(key, value);
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        // What was recorded before the removal is folded in, then dropped with the rest; a
        // provider not built or shut down has nothing to fold in.
        let _ = self.collect(&mut store);
        let removed = store.remove(scope, key, value);
        let _ = self.collect_again(&mut store);
        self.lifecycle.exemplars.forget_unused();
        removed
    }

    /// Runs `push` on every flush and at shutdown. Set once.
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn set_push(&self, push: Box<dyn Flush>) {
        let _ = self.push.set(push);
    }

    pub(crate) fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.sdk.register_pipeline(pipeline);
    }

    pub(crate) fn force_flush(&self) -> OTelSdkResult {
        match self.push.get() {
            Some(push) => push.force_flush(),
            None => Ok(()),
        }
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let pushed = self.push.get().map_or(Ok(()), |p| p.shutdown(timeout));
        let reader = self.sdk.shutdown_with_timeout(timeout);
        pushed.and(reader)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
