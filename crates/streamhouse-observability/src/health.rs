//! Readiness checks that any StreamHouse component registers, served by
//! [`health_router`](crate::http::health_router).
//!
//! A component that owns a dependency (the object store, the writer pool) registers a named
//! async check and keeps the [`HealthRegistration`]; dropping it removes the check. A check
//! that does not answer within the registry's timeout fails.
//!
//! Probes read [`HealthRegistry::cached_check`]: one run serves every probe for
//! [`DEFAULT_CACHE_FOR`] (concurrent probes wait for the run in flight), so a probe flood
//! never reaches the store more than once a second. A check's error text is logged
//! (`warn`, once each time it changes), never sent to the prober: it may name buckets,
//! hosts or credentials.
//!
//! ```
//! use streamhouse_observability::health::HealthRegistry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let health = HealthRegistry::new();
//! let _store = health.register("object_store", || async { Ok(()) });
//! let _pool = health.register("writer_pool", || async { Err("0 of 2 agents running".to_owned()) });
//! let report = health.check().await;
//! assert!(!report.is_ready());
//! assert_eq!(report.failing().collect::<Vec<_>>(), ["writer_pool"]);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, join_all};

/// Default bound on one check.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time one run of the checks answers probes for.
pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(1);

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

struct Inner {
    next_id: AtomicU64,
    checks: Mutex<Vec<(u64, String, Check)>>,
    timeout: Duration,
    cache_for: Duration,
    /// Bumped when a check is added or removed, so a cached report never outlives the set.
    generation: AtomicU64,
    /// Held while a run is in flight: concurrent probes wait for it instead of running again.
    cached: tokio::sync::Mutex<Option<CachedReport>>,
    /// Each check's last logged error, to log once per change.
    logged: Mutex<HashMap<String, Option<String>>>,
}

struct CachedReport {
    at: Instant,
    generation: u64,
    report: HealthReport,
}

/// The named readiness checks of a process. Cheap to clone; clones share the checks.
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::with_timeout(DEFAULT_CHECK_TIMEOUT)
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checks = self
            .inner
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let names: Vec<&str> = checks.iter().map(|(_, name, _)| name.as_str()).collect();
        f.debug_struct("HealthRegistry")
            .field("checks", &names)
            .field("timeout", &self.inner.timeout)
            .field("cache_for", &self.inner.cache_for)
            .finish()
    }
}

impl HealthRegistry {
    /// An empty registry whose checks time out after [`DEFAULT_CHECK_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose checks time out after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self::with_limits(timeout, DEFAULT_CACHE_FOR)
    }

    /// An empty registry whose checks time out after `timeout` and whose
    /// [`cached_check`](Self::cached_check) reuses a run for `cache_for`.
    pub fn with_limits(timeout: Duration, cache_for: Duration) -> Self {
        HealthRegistry {
            inner: Arc::new(Inner {
                next_id: AtomicU64::new(0),
                checks: Mutex::new(Vec::new()),
                timeout,
                cache_for,
                generation: AtomicU64::new(0),
                cached: tokio::sync::Mutex::new(None),
                logged: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Registers `check` under `name`; it runs on readiness probes until the returned
    /// registration is dropped. `Err` carries the reason, logged for the operator.
    pub fn register<F, Fut>(&self, name: impl Into<String>, check: F) -> HealthRegistration
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let check: Check = Arc::new(move || check().boxed());
        self.inner
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, name.into(), check));
        self.inner.generation.fetch_add(1, Ordering::Relaxed);
        HealthRegistration {
            inner: Arc::clone(&self.inner),
            id,
        }
    }

    /// Runs every check concurrently, each bounded by the registry's timeout.
    pub async fn check(&self) -> HealthReport {
        let checks: Vec<(String, Check)> = self
            .inner
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, name, check)| (name.clone(), Arc::clone(check)))
            .collect();
        let timeout = self.inner.timeout;
        let results = join_all(checks.into_iter().map(|(name, check)| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            CheckResult {
                name,
                error: outcome.err(),
                duration: started.elapsed(),
            }
        }))
        .await;
        self.log_changes(&results);
        HealthReport { checks: results }
    }

    /// The last run's report if it is younger than the cache time, else a fresh
    /// [`check`](Self::check); concurrent callers share one run.
    pub async fn cached_check(&self) -> HealthReport {
        let mut cached = self.inner.cached.lock().await;
        let generation = self.inner.generation.load(Ordering::Relaxed);
        if let Some(last) = cached.as_ref()
            && last.generation == generation
            && last.at.elapsed() < self.inner.cache_for
        {
            return last.report.clone();
        }
        let report = self.check().await;
        *cached = Some(CachedReport {
            at: Instant::now(),
            generation,
            report: report.clone(),
        });
        report
    }

    fn log_changes(&self, results: &[CheckResult]) {
        let mut logged = self
            .inner
            .logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut now = HashMap::with_capacity(results.len());
        for result in results {
            let before = logged.remove(&result.name).flatten();
            if before != result.error {
                match &result.error {
                    Some(error) => {
                        tracing::warn!(check = %result.name, %error, "readiness check fails")
                    }
                    None => tracing::info!(check = %result.name, "readiness check passes again"),
                }
            }
            now.insert(result.name.clone(), result.error.clone());
        }
        // Only current checks are remembered, so removed ones cost nothing.
        *logged = now;
    }
}

/// Keeps a check registered; dropping it removes the check.
#[must_use = "the check is removed as soon as the registration is dropped"]
pub struct HealthRegistration {
    inner: Arc<Inner>,
    id: u64,
}

impl fmt::Debug for HealthRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRegistration")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for HealthRegistration {
    fn drop(&mut self) {
        self.inner
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _, _)| *id != self.id);
        self.inner.generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The name it was registered under.
    pub name: String,
    /// Why it failed; `None` when it passed.
    pub error: Option<String>,
    /// How long it took.
    pub duration: Duration,
}

/// The outcome of every check of one probe, in registration order.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// One result per registered check.
    pub checks: Vec<CheckResult>,
}

impl HealthReport {
    /// True when every check passed (and when there are none).
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.error.is_none())
    }

    /// The names of the checks that failed.
    pub fn failing(&self) -> impl Iterator<Item = &str> {
        self.checks
            .iter()
            .filter(|c| c.error.is_some())
            .map(|c| c.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_checks_time_out_and_dropped_checks_are_gone() {
        let health = HealthRegistry::with_timeout(Duration::from_millis(20));
        let slow = health.register("slow", || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        });
        let report = health.check().await;
        assert_eq!(report.failing().collect::<Vec<_>>(), ["slow"]);
        assert!(
            report.checks[0]
                .error
                .as_deref()
                .unwrap()
                .contains("no answer")
        );
        drop(slow);
        assert!(health.check().await.checks.is_empty());
        assert!(health.check().await.is_ready());
    }

    #[tokio::test]
    async fn a_probe_flood_runs_the_checks_once_per_cache_period() {
        let health = HealthRegistry::with_limits(Duration::from_secs(1), Duration::from_secs(60));
        let runs = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&runs);
        let _check = health.register("store", move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err("bucket s3://secret: AccessDenied".to_owned())
            }
        });
        let probes = (0..100).map(|_| health.cached_check());
        let reports = join_all(probes).await;
        assert!(reports.iter().all(|r| !r.is_ready()));
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        // A new check is part of the next probe, cache or not.
        let _other = health.register("pool", || async { Ok(()) });
        assert_eq!(health.cached_check().await.checks.len(), 2);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }
}
