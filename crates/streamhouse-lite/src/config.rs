//! Server configuration, built in code or read from `STREAMHOUSE_*` variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STREAMHOUSE_HTTP_ADDR` | where the server listens | `127.0.0.1:8080` |
//! | `STREAMHOUSE_OBJECT_STORE` | a directory, `memory`, or `s3://bucket/prefix` (credentials, region and `AWS_ENDPOINT_URL` from the usual `AWS_*` variables) | `./data` |
//! | `STREAMHOUSE_SEGMENT_MAX_BYTES` | seal a segment at this many payload bytes | 1048576 |
//! | `STREAMHOUSE_SEGMENT_MAX_AGE_MS` | seal a non-empty segment this old | 2000 |
//! | `STREAMHOUSE_WRITER_AGENTS` | writer-pool agents flushing segments | 4 |
//! | `STREAMHOUSE_CACHE_MAX_BYTES` | segment cache bound | 67108864 |
//! | `STREAMHOUSE_MAX_VALUE_BYTES` | largest record value | 1048576 |
//! | `STREAMHOUSE_MAX_BODY_BYTES` | largest request body (413 above) | 16777216 |
//! | `STREAMHOUSE_MAX_BATCH_RECORDS` | most records in one produce request, enforced while parsing | 10000 |
//! | `STREAMHOUSE_MAX_RECORD_HEADER_BYTES` | header bytes of one record, trace context included | 65536 |
//! | `STREAMHOUSE_RECORD_BAGGAGE` | `on` copies the request's W3C `baggage` into each record | `off` |
//! | `STREAMHOUSE_HEADER_READ_TIMEOUT_MS` | a connection that has not sent a request's headers within this is closed | 5000 |
//! | `STREAMHOUSE_REQUEST_TIMEOUT_MS` | longest a request may take, body included (503 after) | 30000 |
//! | `STREAMHOUSE_MAX_CONNECTIONS` | client connections open at once; more wait to be accepted | 1024 |
//! | `STREAMHOUSE_SHUTDOWN_GRACE_MS` | how long shutdown waits for requests in flight | 10000 |
//! | `STREAMHOUSE_STOP_TIMEOUT_MS` | the whole stop: requests in flight, the final flush, then telemetry's shutdown timeout | 30000 |
//! | `STREAMHOUSE_ADMIN_LINGER_MS` | with the admin endpoints on their own port: how long they keep serving after the final flush (0 to 600000), so a last scrape sees it | 0 |
//! | `STREAMHOUSE_MAX_TOPICS` | topics (409 above) | 10000 |
//! | `STREAMHOUSE_MAX_PARTITIONS_PER_TOPIC` | partitions in one topic | 1024 |
//! | `STREAMHOUSE_MAX_TOTAL_PARTITIONS` | partitions over all topics | 100000 |
//! | `STREAMHOUSE_MAX_GROUPS` | consumer groups | 10000 |
//! | `STREAMHOUSE_MAX_GROUP_MEMBERS` | members of one group | 1000 |
//! | `STREAMHOUSE_MEMBER_SESSION_TIMEOUT_MS` | a member silent this long leaves its group | 30000 |
//! | `STREAMHOUSE_MAX_CONSUME_RECORDS` | most records one consume returns | 100000 |
//! | `STREAMHOUSE_MAX_CONSUME_BYTES` | most record bytes one consume returns (`maxBytes` asks for less) | 33554432 |
//! | `STREAMHOUSE_MAX_UNFLUSHED_BYTES` | payload bytes waiting for a flush, all partitions together (503 above) | 134217728 |
//! | `STREAMHOUSE_FLUSH_RETRY_MAX_MS` | longest delay between retries of a failed flush; also how often a fenced partition's store is probed | 2000 |
//! | `STREAMHOUSE_WRITER_QUEUE_SEGMENTS` | sealed segments not yet stored, all partitions together; past it records wait unsealed | 1024 |
//! | `STREAMHOUSE_PRODUCE_ACK` | `memory` answers a produce once its records are appended; `flushed` once they are in the object store | `memory` |
//! | `STREAMHOUSE_OFFSET_RESERVATION` | offsets of a partition reserved in its topic's manifest at a time, so none is handed out twice after a crash | 10000 |
//! | `STREAMHOUSE_LOADGEN` | `off` disables the example's load generator | `on` |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use streamhouse_observability::config::ConfigError;

/// Where segments are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// An S3 bucket and key prefix; the rest comes from the `AWS_*` variables.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket; may be empty.
        prefix: String,
    },
    /// In process memory; for tests and benchmarks.
    Memory,
}

impl StoreLocation {
    /// Parses `s3://bucket/prefix`, `memory`, or a directory path.
    ///
    /// ```
    /// use streamhouse_lite::config::StoreLocation;
    ///
    /// assert_eq!(
    ///     StoreLocation::parse("s3://logs/streamhouse/dev").unwrap(),
    ///     StoreLocation::S3 { bucket: "logs".into(), prefix: "streamhouse/dev".into() }
    /// );
    /// assert!(StoreLocation::parse("s3://").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(config_error(
                    "STREAMHOUSE_OBJECT_STORE",
                    raw,
                    "s3://bucket/prefix",
                ));
            }
            return Ok(StoreLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if raw == "memory" {
            return Ok(StoreLocation::Memory);
        }
        if raw.is_empty() || raw.contains("://") {
            return Err(config_error(
                "STREAMHOUSE_OBJECT_STORE",
                raw,
                "a directory, `memory`, or s3://bucket/prefix",
            ));
        }
        Ok(StoreLocation::Local(PathBuf::from(raw)))
    }
}

/// Everything the server needs besides telemetry and the object store.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_lite::LiteConfig;
///
/// let config = LiteConfig::default()
///     .with_segment_max_bytes(4096)
///     .with_segment_max_age(Duration::from_millis(100));
/// assert_eq!(config.segment_max_bytes, 4096);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LiteConfig {
    /// Listening address (used by the example and [`crate::server`] helpers).
    pub http_addr: SocketAddr,
    /// Where segments go.
    pub store: StoreLocation,
    /// A segment is sealed once its payload reaches this many bytes.
    pub segment_max_bytes: usize,
    /// A non-empty segment is sealed once it is this old.
    pub segment_max_age: Duration,
    /// Writer-pool agents.
    pub writer_agents: usize,
    /// Segment cache bound, in resident bytes (segments are held encoded; see
    /// [`crate::segment_cache`]).
    pub cache_max_bytes: u64,
    /// Largest record value, in bytes.
    pub max_value_bytes: usize,
    /// Largest record key, in bytes.
    pub max_key_bytes: usize,
    /// Most headers on one record.
    pub max_headers: usize,
    /// Header names and values of one record together, trace context included, in bytes.
    pub max_record_header_bytes: usize,
    /// Whether records carry the request's W3C `baggage` (trace context they always carry).
    pub record_baggage: bool,
    /// Most records in one produce request; parsing stops at the limit.
    pub max_batch_records: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// A connection that has not sent a whole request head within this is closed.
    pub header_read_timeout: Duration,
    /// Longest a request may take, reading its body included.
    pub request_timeout: Duration,
    /// Client connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
    /// The whole stop, from the stop signal to exit: requests in flight, then sealing and
    /// flushing every segment, then telemetry's own shutdown timeout, which comes out of it.
    pub stop_timeout: Duration,
    /// With the admin endpoints on their own listener, how long that listener keeps serving
    /// after the final flush (it always stops after the flush, never with the API).
    pub admin_linger: Duration,
    /// Most topics.
    pub max_topics: usize,
    /// Most partitions in one topic.
    pub max_partitions: u32,
    /// Most partitions over all topics.
    pub max_total_partitions: u64,
    /// Most consumer groups.
    pub max_groups: usize,
    /// Most members in one consumer group.
    pub max_group_members: usize,
    /// A member that sends no heartbeat (nor consume or commit naming it) within this leaves.
    pub member_session_timeout: Duration,
    /// Most records one consume request returns.
    pub max_consume_records: usize,
    /// Most record bytes (keys, values and headers) one consume request returns.
    pub max_consume_bytes: usize,
    /// Produce fails with 503 while this many payload bytes, over all partitions, wait for a
    /// flush.
    pub max_unflushed_bytes: usize,
    /// Sealed segments not yet stored, over all partitions; past it sealing is deferred and
    /// records stay readable in the active segment (the unflushed-bytes budget pushes back
    /// on producers).
    pub writer_queue_segments: usize,
    /// First delay before retrying a failed flush; doubles up to [`Self::flush_retry_max`].
    pub flush_retry_initial: Duration,
    /// Longest delay between flush retries; also how often a partition fenced after a
    /// permanent error is tried again (`STREAMHOUSE_FLUSH_RETRY_MAX_MS`).
    pub flush_retry_max: Duration,
    /// When a produce is answered.
    pub produce_ack: ProduceAck,
    /// Offsets of a partition reserved in its topic's manifest at a time (see
    /// [`crate::manifest`]).
    pub offset_reservation: u64,
}

/// When a produce is answered (`STREAMHOUSE_PRODUCE_ACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProduceAck {
    /// Once the records are appended in memory: a crash before their segment is flushed
    /// loses them (their offsets are never handed out again).
    #[default]
    Memory,
    /// Once the records' segment is in the object store. Requests waiting at once share one
    /// flush per partition.
    Flushed,
}

impl Default for LiteConfig {
    fn default() -> Self {
        LiteConfig {
            http_addr: "127.0.0.1:8080".parse().expect("default address parses"),
            store: StoreLocation::Local(PathBuf::from("./data")),
            segment_max_bytes: 1 << 20,
            segment_max_age: Duration::from_secs(2),
            writer_agents: 4,
            cache_max_bytes: 64 << 20,
            max_value_bytes: 1 << 20,
            max_key_bytes: 16 << 10,
            max_headers: 64,
            max_record_header_bytes: 64 << 10,
            record_baggage: false,
            max_batch_records: 10_000,
            max_body_bytes: 16 << 20,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 1_024,
            shutdown_grace: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(30),
            admin_linger: Duration::ZERO,
            max_topics: 10_000,
            max_partitions: 1_024,
            max_total_partitions: 100_000,
            max_groups: 10_000,
            max_group_members: 1_000,
            member_session_timeout: Duration::from_secs(30),
            max_consume_records: 100_000,
            max_consume_bytes: 32 << 20,
            max_unflushed_bytes: 128 << 20,
            writer_queue_segments: 1_024,
            flush_retry_initial: Duration::from_millis(50),
            flush_retry_max: Duration::from_secs(2),
            produce_ack: ProduceAck::Memory,
            offset_reservation: 10_000,
        }
    }
}

impl LiteConfig {
    /// Checks that the stop deadline leaves the final flush time after telemetry's share of
    /// it, `telemetry_shutdown` (`STREAMHOUSE_SHUTDOWN_TIMEOUT_MS`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming `STREAMHOUSE_STOP_TIMEOUT_MS` when it is not longer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamhouse_lite::LiteConfig;
    ///
    /// let config = LiteConfig::default();
    /// assert!(config.check_stop_timeout(Duration::from_secs(5)).is_ok());
    /// let err = config.check_stop_timeout(Duration::from_secs(60)).unwrap_err();
    /// assert_eq!(err.variable, "STREAMHOUSE_STOP_TIMEOUT_MS");
    /// ```
    pub fn check_stop_timeout(&self, telemetry_shutdown: Duration) -> Result<(), ConfigError> {
        if self.stop_timeout > telemetry_shutdown {
            return Ok(());
        }
        Err(ConfigError::new(
            "STREAMHOUSE_STOP_TIMEOUT_MS",
            &self.stop_timeout.as_millis().to_string(),
            format!(
                "more than STREAMHOUSE_SHUTDOWN_TIMEOUT_MS ({} ms), which comes out of it",
                telemetry_shutdown.as_millis()
            ),
        ))
    }

    /// Reads the `STREAMHOUSE_*` variables of the [module table](self).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Self::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = LiteConfig::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(raw) = get("STREAMHOUSE_HTTP_ADDR") {
            config.http_addr = raw.trim().parse().map_err(|_| {
                config_error(
                    "STREAMHOUSE_HTTP_ADDR",
                    &raw,
                    "an address like 127.0.0.1:8080",
                )
            })?;
        }
        if let Some(raw) = get("STREAMHOUSE_OBJECT_STORE") {
            config.store = StoreLocation::parse(&raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_SEGMENT_MAX_BYTES") {
            config.segment_max_bytes = positive("STREAMHOUSE_SEGMENT_MAX_BYTES", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_SEGMENT_MAX_AGE_MS") {
            let ms = positive("STREAMHOUSE_SEGMENT_MAX_AGE_MS", &raw)?;
            config.segment_max_age = Duration::from_millis(ms as u64);
        }
        if let Some(raw) = get("STREAMHOUSE_WRITER_AGENTS") {
            config.writer_agents = positive("STREAMHOUSE_WRITER_AGENTS", &raw)?;
        }
        if let Some(raw) = get("STREAMHOUSE_CACHE_MAX_BYTES") {
            config.cache_max_bytes = positive("STREAMHOUSE_CACHE_MAX_BYTES", &raw)? as u64;
        }
        if let Some(raw) = get("STREAMHOUSE_MAX_VALUE_BYTES") {
            config.max_value_bytes = positive("STREAMHOUSE_MAX_VALUE_BYTES", &raw)?;
        }
        let count = |name: &str, field: &mut usize| -> Result<(), ConfigError> {
            if let Some(raw) = get(name) {
                *field = positive(name, &raw)?;
            }
            Ok(())
        };
        count("STREAMHOUSE_MAX_BODY_BYTES", &mut config.max_body_bytes)?;
        count(
            "STREAMHOUSE_MAX_BATCH_RECORDS",
            &mut config.max_batch_records,
        )?;
        count(
            "STREAMHOUSE_MAX_RECORD_HEADER_BYTES",
            &mut config.max_record_header_bytes,
        )?;
        count("STREAMHOUSE_MAX_CONNECTIONS", &mut config.max_connections)?;
        count("STREAMHOUSE_MAX_TOPICS", &mut config.max_topics)?;
        count("STREAMHOUSE_MAX_GROUPS", &mut config.max_groups)?;
        count(
            "STREAMHOUSE_MAX_GROUP_MEMBERS",
            &mut config.max_group_members,
        )?;
        count(
            "STREAMHOUSE_MAX_CONSUME_RECORDS",
            &mut config.max_consume_records,
        )?;
        count(
            "STREAMHOUSE_MAX_CONSUME_BYTES",
            &mut config.max_consume_bytes,
        )?;
        count(
            "STREAMHOUSE_MAX_UNFLUSHED_BYTES",
            &mut config.max_unflushed_bytes,
        )?;
        count(
            "STREAMHOUSE_WRITER_QUEUE_SEGMENTS",
            &mut config.writer_queue_segments,
        )?;
        let mut partitions = config.max_partitions as usize;
        count("STREAMHOUSE_MAX_PARTITIONS_PER_TOPIC", &mut partitions)?;
        config.max_partitions = u32::try_from(partitions).map_err(|_| {
            config_error(
                "STREAMHOUSE_MAX_PARTITIONS_PER_TOPIC",
                &partitions.to_string(),
                "at most 4294967295",
            )
        })?;
        let mut total = config.max_total_partitions as usize;
        count("STREAMHOUSE_MAX_TOTAL_PARTITIONS", &mut total)?;
        config.max_total_partitions = total as u64;
        let millis = |name: &str, field: &mut Duration| -> Result<(), ConfigError> {
            if let Some(raw) = get(name) {
                *field = Duration::from_millis(positive(name, &raw)? as u64);
            }
            Ok(())
        };
        millis(
            "STREAMHOUSE_HEADER_READ_TIMEOUT_MS",
            &mut config.header_read_timeout,
        )?;
        millis(
            "STREAMHOUSE_REQUEST_TIMEOUT_MS",
            &mut config.request_timeout,
        )?;
        millis("STREAMHOUSE_SHUTDOWN_GRACE_MS", &mut config.shutdown_grace)?;
        millis("STREAMHOUSE_STOP_TIMEOUT_MS", &mut config.stop_timeout)?;
        millis(
            "STREAMHOUSE_MEMBER_SESSION_TIMEOUT_MS",
            &mut config.member_session_timeout,
        )?;
        if let Some(raw) = get("STREAMHOUSE_ADMIN_LINGER_MS") {
            config.admin_linger = match raw.trim().parse::<u64>() {
                Ok(ms) if ms <= MAX_ADMIN_LINGER_MS => Duration::from_millis(ms),
                _ => {
                    return Err(config_error(
                        "STREAMHOUSE_ADMIN_LINGER_MS",
                        &raw,
                        "whole milliseconds from 0 to 600000",
                    ));
                }
            };
        }
        if let Some(raw) = get("STREAMHOUSE_PRODUCE_ACK") {
            config.produce_ack = match raw.trim().to_ascii_lowercase().as_str() {
                "memory" => ProduceAck::Memory,
                "flushed" => ProduceAck::Flushed,
                _ => {
                    return Err(config_error(
                        "STREAMHOUSE_PRODUCE_ACK",
                        &raw,
                        "`memory` or `flushed`",
                    ));
                }
            };
        }
        if let Some(raw) = get("STREAMHOUSE_FLUSH_RETRY_MAX_MS") {
            let ms = positive("STREAMHOUSE_FLUSH_RETRY_MAX_MS", &raw)?;
            config.flush_retry_max = Duration::from_millis(ms as u64);
            config.flush_retry_initial = config.flush_retry_initial.min(config.flush_retry_max);
        }
        if let Some(raw) = get("STREAMHOUSE_OFFSET_RESERVATION") {
            config.offset_reservation = positive("STREAMHOUSE_OFFSET_RESERVATION", &raw)? as u64;
        }
        if let Some(raw) = get("STREAMHOUSE_RECORD_BAGGAGE") {
            config.record_baggage = match raw.trim().to_ascii_lowercase().as_str() {
                "on" | "true" => true,
                "off" | "false" => false,
                _ => {
                    return Err(config_error(
                        "STREAMHOUSE_RECORD_BAGGAGE",
                        &raw,
                        "`on` or `off`",
                    ));
                }
            };
        }
        Ok(config)
    }

    /// Sets where segments are stored.
    pub fn with_store(mut self, store: StoreLocation) -> Self {
        self.store = store;
        self
    }

    /// Sets the size at which a segment is sealed.
    pub fn with_segment_max_bytes(mut self, bytes: usize) -> Self {
        self.segment_max_bytes = bytes.max(1);
        self
    }

    /// Sets the age at which a non-empty segment is sealed.
    pub fn with_segment_max_age(mut self, age: Duration) -> Self {
        self.segment_max_age = age;
        self
    }

    /// Sets the number of writer-pool agents.
    pub fn with_writer_agents(mut self, agents: usize) -> Self {
        self.writer_agents = agents.max(1);
        self
    }

    /// Sets the segment cache bound.
    pub fn with_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Sets the largest record value.
    pub fn with_max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }
}

/// Longest [`LiteConfig::admin_linger`] from the environment: ten minutes, past any sane
/// scrape interval, so a typo cannot hold a stopping process for hours.
const MAX_ADMIN_LINGER_MS: u64 = 600_000;

fn config_error(variable: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::new(variable, value, expected)
}

fn positive(variable: &str, raw: &str) -> Result<usize, ConfigError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(config_error(variable, raw, "a positive integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_variables_and_names_bad_ones() {
        let config = LiteConfig::from_lookup(|name| match name {
            "STREAMHOUSE_OBJECT_STORE" => Some("s3://bucket".into()),
            "STREAMHOUSE_WRITER_AGENTS" => Some("2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            config.store,
            StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(config.writer_agents, 2);
        let err = LiteConfig::from_lookup(|name| {
            (name == "STREAMHOUSE_SEGMENT_MAX_BYTES").then(|| "-1".into())
        })
        .unwrap_err();
        assert_eq!(err.variable, "STREAMHOUSE_SEGMENT_MAX_BYTES");
        assert_eq!(err.value, "-1");
    }

    #[test]
    fn reads_every_limit_and_names_a_bad_one() {
        let config = LiteConfig::from_lookup(|name| match name {
            "STREAMHOUSE_MAX_TOPICS" => Some("7".into()),
            "STREAMHOUSE_HEADER_READ_TIMEOUT_MS" => Some("250".into()),
            "STREAMHOUSE_MAX_TOTAL_PARTITIONS" => Some("9".into()),
            "STREAMHOUSE_RECORD_BAGGAGE" => Some("ON".into()),
            "STREAMHOUSE_ADMIN_LINGER_MS" => Some("0".into()),
            "STREAMHOUSE_PRODUCE_ACK" => Some("Flushed".into()),
            "STREAMHOUSE_OFFSET_RESERVATION" => Some("64".into()),
            "STREAMHOUSE_FLUSH_RETRY_MAX_MS" => Some("20".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.produce_ack, ProduceAck::Flushed);
        assert_eq!(config.offset_reservation, 64);
        assert_eq!(config.flush_retry_max, Duration::from_millis(20));
        assert!(config.flush_retry_initial <= config.flush_retry_max);
        assert_eq!(config.admin_linger, Duration::ZERO);
        assert_eq!(config.max_topics, 7);
        assert_eq!(config.header_read_timeout, Duration::from_millis(250));
        assert_eq!(config.max_total_partitions, 9);
        assert!(config.record_baggage);
        for variable in [
            "STREAMHOUSE_MAX_CONNECTIONS",
            "STREAMHOUSE_MEMBER_SESSION_TIMEOUT_MS",
            "STREAMHOUSE_MAX_CONSUME_BYTES",
            "STREAMHOUSE_RECORD_BAGGAGE",
            "STREAMHOUSE_ADMIN_LINGER_MS",
            "STREAMHOUSE_PRODUCE_ACK",
            "STREAMHOUSE_OFFSET_RESERVATION",
            "STREAMHOUSE_FLUSH_RETRY_MAX_MS",
        ] {
            let err = LiteConfig::from_lookup(|name| (name == variable).then(|| "0x10".into()))
                .unwrap_err();
            assert_eq!(err.variable, variable);
        }
    }

    #[test]
    fn the_admin_linger_is_bounded() {
        let read = |value: &str| {
            LiteConfig::from_lookup(|name| {
                (name == "STREAMHOUSE_ADMIN_LINGER_MS").then(|| value.to_owned())
            })
        };
        assert_eq!(read("15000").unwrap().admin_linger, Duration::from_secs(15));
        assert_eq!(
            read("600000").unwrap().admin_linger,
            Duration::from_secs(600)
        );
        for bad in ["600001", "-1", "1s"] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.variable, "STREAMHOUSE_ADMIN_LINGER_MS");
            assert_eq!(err.value, bad);
        }
    }
}
