//! Self-metrics of `/metrics`: how long scrapes take, how large their bodies are, and how
//! many were refused or stopped before their end.

use std::time::Duration;

use super::instruments::{BoundCounter, BoundHistogram, Instruments, attributes};
use crate::catalog;

/// Why a scrape's render stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScrapeStop {
    /// The scrape's deadline passed: Prometheus's `X-Prometheus-Scrape-Timeout-Seconds`, or
    /// the server's own bound.
    Deadline,
    /// The scraper closed the connection.
    ClientGone,
}

impl ScrapeStop {
    /// Every reason.
    pub const ALL: [ScrapeStop; 2] = [ScrapeStop::Deadline, ScrapeStop::ClientGone];

    /// The `reason` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ScrapeStop::Deadline => "deadline",
            ScrapeStop::ClientGone => "client_gone",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Records `/metrics` scrapes. The SDK's own handler
/// ([`metrics_router`](crate::http::metrics_router)) records into it; a handler of your own
/// serving [`PrometheusReader::render_to`](crate::prometheus::PrometheusReader::render_to)
/// may too. Get it from [`Telemetry::scrapes`](crate::Telemetry::scrapes).
///
/// Every series is bound at start-up, so the counters read 0 before anything happened.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::metrics::ScrapeStop;
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// telemetry.scrapes().record_served(Duration::from_millis(3), 12_345);
/// telemetry.scrapes().record_stopped(ScrapeStop::Deadline);
/// let text = telemetry.render_prometheus();
/// assert!(text.contains("streamhouse_telemetry_scrape_body_bytes_sum 12345\n"));
/// assert!(text.contains(r#"streamhouse_telemetry_scrapes_stopped_total{reason="deadline"} 1"#));
/// assert!(text.contains(r#"streamhouse_telemetry_scrapes_stopped_total{reason="client_gone"} 0"#));
/// assert!(text.contains("streamhouse_telemetry_scrapes_refused_total 0\n"));
/// ```
#[derive(Debug, Clone)]
pub struct ScrapeMetrics {
    duration: BoundHistogram,
    body: BoundHistogram,
    refused: BoundCounter,
    stopped: [BoundCounter; ScrapeStop::ALL.len()],
}

impl ScrapeMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        let stopped = instruments.counter(&catalog::TELEMETRY_SCRAPES_STOPPED);
        let labels = catalog::TELEMETRY_SCRAPES_STOPPED.labels;
        ScrapeMetrics {
            duration: instruments
                .histogram(&catalog::TELEMETRY_SCRAPE_DURATION)
                .bind(&[]),
            body: instruments
                .histogram(&catalog::TELEMETRY_SCRAPE_BODY_SIZE)
                .bind(&[]),
            refused: instruments
                .counter(&catalog::TELEMETRY_SCRAPES_REFUSED)
                .bind(&[]),
            stopped: ScrapeStop::ALL.map(|reason| {
                debug_assert_eq!(ScrapeStop::ALL[reason.index()], reason);
                stopped.bind(&attributes(labels, [reason.as_str()]))
            }),
        }
    }

    /// Records a scrape served to its end: how long it took and the body bytes sent.
    pub fn record_served(&self, duration: Duration, body_bytes: u64) {
        self.duration.record(duration.as_secs_f64());
        self.body.record(body_bytes as f64);
    }

    /// Counts a scrape refused (503) past the concurrent scrape limit.
    pub fn record_refused(&self) {
        self.refused.add(1);
    }

    /// Counts a render stopped before its end for `reason`.
    pub fn record_stopped(&self, reason: ScrapeStop) {
        self.stopped[reason.index()].add(1);
    }
}
