//! Readiness checks naming each fenced partition (see [`crate::writer_pool`]): one check
//! per partition, `partition {topic}/{n}`, so `/health/ready` lists it under `"failing"`
//! while the reason (which may carry store details) is only logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use streamhouse_observability::health::{HealthRegistration, HealthRegistry};

use crate::topics::TopicRegistry;

/// The readiness checks of fenced partitions, kept in step with the logs by
/// [`FenceChecks::sync`] (the sealer's tick).
pub(crate) struct FenceChecks {
    health: HealthRegistry,
    registered: Mutex<HashMap<(String, u32), HealthRegistration>>,
}

impl FenceChecks {
    pub(crate) fn new(health: &HealthRegistry) -> Self {
        FenceChecks {
            health: health.clone(),
            registered: Mutex::default(),
        }
    }

    /// Registers a check for every partition fenced now and drops those of partitions no
    /// longer fenced (or gone with their topic).
    pub(crate) fn sync(&self, topics: &TopicRegistry) {
        let mut registered = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut fenced = HashMap::new();
        for topic in topics.all() {
            for (partition, _) in topic.failed_partitions() {
                let key = (topic.name.clone(), partition);
                let check = registered.remove(&key).unwrap_or_else(|| {
                    let log = Arc::downgrade(&topic.partitions[partition as usize]);
                    let name = format!("partition {}/{partition}", topic.name);
                    self.health.register(name, move || {
                        // Truthful between ticks: passes as soon as the fence lifts.
                        let failure = log.upgrade().and_then(|log| log.failure());
                        async move {
                            match failure {
                                Some(reason) => Err(format!("fenced: {reason}")),
                                None => Ok(()),
                            }
                        }
                    })
                });
                fenced.insert(key, check);
            }
        }
        *registered = fenced;
    }
}
