//! Readiness checks that any StreamHouse component registers, served by
//! [`health_router`](crate::http::health_router).
//!
//! A component that owns a dependency (the object store, the writer pool) registers a named
//! async check and keeps the [`HealthRegistration`]; dropping it removes the check. A check
//! that does not answer within the registry's timeout fails.
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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, join_all};

/// Default bound on one check.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

struct Inner {
    next_id: AtomicU64,
    checks: Mutex<Vec<(u64, String, Check)>>,
    timeout: Duration,
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
        HealthRegistry {
            inner: Arc::new(Inner {
                next_id: AtomicU64::new(0),
                checks: Mutex::new(Vec::new()),
                timeout,
            }),
        }
    }

    /// Registers `check` under `name`; it runs on every readiness probe until the returned
    /// registration is dropped. `Err` carries the reason shown to the operator.
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
        HealthReport { checks: results }
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
}
