//! Readiness checks that any StreamHouse component registers, served by
//! [`health_router`](crate::http::health_router).
//!
//! A component that owns a dependency (the object store, the writer pool) registers a named
//! async check and keeps the [`HealthRegistration`]; dropping it removes the check. A check
//! that does not answer within the registry's timeout fails.
//!
//! Probes read [`HealthRegistry::cached_check`]: one run serves every probe for
//! [`DEFAULT_CACHE_FOR`] (concurrent probes wait for the run in flight), so a probe flood
//! never reaches the store more than once a second. [`HealthRegistry::from_config`] takes
//! both bounds from `STREAMHOUSE_HEALTH_CHECK_TIMEOUT_MS` and `STREAMHOUSE_HEALTH_CACHE_MS`
//! (see [`crate::config::admin`]). A check's error text is logged
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

use crate::config::AdminConfig;
use crate::config::admin::{DEFAULT_HEALTH_CACHE_FOR, DEFAULT_HEALTH_CHECK_TIMEOUT};

/// Default bound on one check.
pub const DEFAULT_CHECK_TIMEOUT: Duration = DEFAULT_HEALTH_CHECK_TIMEOUT;
/// Default time one run of the checks answers probes for.
pub const DEFAULT_CACHE_FOR: Duration = DEFAULT_HEALTH_CACHE_FOR;

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

    /// An empty registry with the check timeout and cache period of `admin`, which
    /// [`TelemetryConfig::from_env`](crate::TelemetryConfig::from_env) reads from
    /// `STREAMHOUSE_HEALTH_CHECK_TIMEOUT_MS` and `STREAMHOUSE_HEALTH_CACHE_MS`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamhouse_observability::TelemetryConfig;
    /// use streamhouse_observability::health::HealthRegistry;
    ///
    /// let config = TelemetryConfig::from_lookup(|name| {
    ///     (name == "STREAMHOUSE_HEALTH_CACHE_MS").then(|| "5000".to_owned())
    /// })
    /// .unwrap();
    /// let health = HealthRegistry::from_config(&config.admin);
    /// assert_eq!(health.cache_for(), Duration::from_secs(5));
    /// ```
    pub fn from_config(admin: &AdminConfig) -> Self {
        Self::with_limits(admin.health_check_timeout, admin.health_cache_for)
    }

    /// How long one run of the checks answers [`cached_check`](Self::cached_check).
    pub fn cache_for(&self) -> Duration {
        self.inner.cache_for
    }

    /// The bound on one check.
    pub fn check_timeout(&self) -> Duration {
        self.inner.timeout
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
    use std::io;
    use std::sync::atomic::AtomicBool;

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

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_readiness_change_is_logged_once_per_change() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        // This thread only: a current-thread runtime runs every check here.
        let _default = tracing::subscriber::set_default(subscriber);

        let failing = Arc::new(AtomicBool::new(true));
        let reason = Arc::new(Mutex::new("disk full".to_owned()));
        let (state, text) = (Arc::clone(&failing), Arc::clone(&reason));
        let health = HealthRegistry::new();
        let _check = health.register("store", move || {
            let error = state
                .load(Ordering::Relaxed)
                .then(|| text.lock().unwrap().clone());
            async move { error.map_or(Ok(()), Err) }
        });
        let fails = |lines: &[String], reason: &str| {
            lines
                .iter()
                .filter(|l| l.contains("readiness check fails") && l.contains(reason))
                .count()
        };
        let passes = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.contains("readiness check passes again"))
                .count()
        };

        for _ in 0..3 {
            health.check().await;
        }
        let lines = captured.lines();
        assert_eq!(fails(&lines, "disk full"), 1, "{lines:#?}");
        assert!(lines[0].contains("WARN") && lines[0].contains("check=store"));

        // A new reason is a change; the same reason again is not.
        *reason.lock().unwrap() = "permission denied".to_owned();
        health.check().await;
        health.check().await;
        failing.store(false, Ordering::Relaxed);
        health.check().await;
        health.check().await;
        let lines = captured.lines();
        assert_eq!(fails(&lines, "disk full"), 1, "{lines:#?}");
        assert_eq!(fails(&lines, "permission denied"), 1, "{lines:#?}");
        assert_eq!(passes(&lines), 1, "{lines:#?}");
        assert_eq!(lines.len(), 3, "{lines:#?}");

        // Failing again after passing is logged again.
        failing.store(true, Ordering::Relaxed);
        health.check().await;
        assert_eq!(fails(&captured.lines(), "permission denied"), 2);
    }

    #[test]
    fn the_cache_period_comes_from_the_admin_config() {
        let admin = AdminConfig::default()
            .with_health_limits(Duration::from_millis(300), Duration::from_millis(7));
        let health = HealthRegistry::from_config(&admin);
        assert_eq!(health.check_timeout(), Duration::from_millis(300));
        assert_eq!(health.cache_for(), Duration::from_millis(7));
        let default = HealthRegistry::from_config(&AdminConfig::default());
        assert_eq!(default.cache_for(), DEFAULT_CACHE_FOR);
    }
}
