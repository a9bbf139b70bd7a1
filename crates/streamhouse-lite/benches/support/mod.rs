//! What the produce benchmarks share.

use streamhouse_lite::broker::ProduceRecord;

/// `count` order records with keys spread over 64 customers, as a produce request carries.
pub fn order_records(count: usize) -> Vec<ProduceRecord> {
    (0..count)
        .map(|i| ProduceRecord {
            key: Some(format!("customer-{}", i % 64)),
            value: format!("{{\"order\":{i},\"amount\":1999,\"currency\":\"EUR\"}}"),
            partition: None,
            headers: Default::default(),
        })
        .collect()
}
