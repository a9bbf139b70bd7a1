//! Counts open HTTP connections for `streamhouse_connections_active`: the SDK's accept loop
//! adds each connection to the shared count while it is open, however it closes (see
//! [`Server::count_connections`](streamhouse_observability::serve::Server::count_connections)).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;

/// The open connections of every listener a server serves, reported as
/// `streamhouse_connections_active` for as long as the counter lives.
pub struct ConnectionCounter {
    open: Arc<AtomicU64>,
    _gauge: GaugeRegistration,
}

impl std::fmt::Debug for ConnectionCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionCounter")
            .field("open", &self.open())
            .finish()
    }
}

impl ConnectionCounter {
    /// A counter at zero, registered with `telemetry`.
    pub fn new(telemetry: &Telemetry) -> Self {
        let open = Arc::new(AtomicU64::new(0));
        let observed = Arc::clone(&open);
        ConnectionCounter {
            _gauge: telemetry
                .system()
                .observe_connections(move || observed.load(Ordering::Relaxed)),
            open,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The count itself, for
    /// [`Server::count_connections`](streamhouse_observability::serve::Server::count_connections).
    pub fn shared(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.open)
    }
}
