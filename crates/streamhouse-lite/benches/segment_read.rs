//! Reading from a cached segment: held decoded (`Vec<Record>`, cloning the records a
//! consume returns, as the cache did) against held encoded ([`EncodedSegment`], decoding
//! just those records), and what a cache miss costs each way (decode everything, or check
//! the offsets and copy the bytes). The segment is 1 MiB of records shaped like the load
//! generator's; BENCHMARKS.md has the numbers and the memory each form takes.
//!
//! ```text
//! cargo bench -p streamhouse-lite --bench segment_read
//! ```

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use streamhouse_lite::record::Record;
use streamhouse_lite::segment::{self, EncodedSegment};

#[path = "../tests/fixtures/loadgen_record.rs"]
mod loadgen_record;
use loadgen_record::loadgen_record;

/// About 1 MiB encoded: the default `STREAMHOUSE_SEGMENT_MAX_BYTES`.
fn loadgen_segment() -> Vec<u8> {
    let mut records = Vec::new();
    let mut encoded = 0;
    for offset in 0.. {
        let record = loadgen_record(0, offset);
        encoded += serde_json::to_vec(&record).expect("serializes").len() + 1;
        records.push(record);
        if encoded >= 1 << 20 {
            break;
        }
    }
    segment::encode(&records)
}

fn decoded_read(records: &[Record], offset: u64, max: usize) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.offset >= offset)
        .take(max)
        .cloned()
        .collect()
}

fn main() {
    let bytes = loadgen_segment();
    let decoded = segment::decode(&bytes).expect("decodes");
    let encoded = EncodedSegment::parse(&bytes).expect("parses");
    let middle = decoded.len() as u64 / 2;
    let mut criterion = Criterion::default().configure_from_args();

    for (name, offset, max) in [("200_from_middle", middle, 200), ("50_from_start", 0, 50)] {
        let mut group = criterion.benchmark_group(format!("segment_read/{name}"));
        group.throughput(Throughput::Elements(max as u64));
        group.bench_function("decoded_clone", |b| {
            b.iter(|| decoded_read(black_box(&decoded), black_box(offset), max))
        });
        group.bench_function("encoded_decode", |b| {
            b.iter(|| {
                black_box(&encoded)
                    .read(black_box(offset), max)
                    .expect("reads")
            })
        });
        group.finish();
    }

    let mut group = criterion.benchmark_group("segment_read/miss_1MiB");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode_all", |b| {
        b.iter(|| segment::decode(black_box(&bytes)).expect("decodes"))
    });
    group.bench_function("parse_encoded", |b| {
        b.iter(|| EncodedSegment::parse(black_box(&bytes)).expect("parses"))
    });
    group.finish();
    criterion.final_summary();
}
