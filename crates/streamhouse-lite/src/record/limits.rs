//! The bounds on one produced record and on one request's record count, with the answer
//! each gives when passed.

use std::collections::BTreeMap;
use std::fmt;

use axum::http::StatusCode;
use streamhouse_observability::metrics::ProducerError;

use crate::api::error::ApiError;
use crate::config::LiteConfig;
use crate::trace_context;

/// Limits on one record, from [`LiteConfig`], with room for trace context kept out of what a
/// client's own headers may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Largest key.
    pub max_key_bytes: usize,
    /// Largest value.
    pub max_value_bytes: usize,
    /// Most headers in all, trace context included.
    pub max_headers: usize,
    /// Most header bytes (names and values) in all, trace context included.
    pub max_header_bytes: usize,
    /// Whether `baggage` is trace context (with room reserved) rather than a client header.
    pub record_baggage: bool,
}

impl RecordLimits {
    /// The limits `config` sets.
    pub fn new(config: &LiteConfig) -> Self {
        RecordLimits {
            max_key_bytes: config.max_key_bytes,
            max_value_bytes: config.max_value_bytes,
            max_headers: config.max_headers,
            max_header_bytes: config.max_record_header_bytes,
            record_baggage: config.record_baggage,
        }
    }

    /// Headers a client may set itself: the limit minus the slots kept for trace context.
    pub fn client_headers(&self) -> usize {
        self.max_headers
            .saturating_sub(trace_context::reserved(self.record_baggage).0)
    }

    /// Header bytes a client may use itself: the limit minus the most trace context takes.
    pub fn client_header_bytes(&self) -> usize {
        self.max_header_bytes
            .saturating_sub(trace_context::reserved(self.record_baggage).1)
    }

    /// Checks a key's size.
    ///
    /// # Errors
    /// [`RecordRejection::KeyTooLarge`].
    pub fn check_key(&self, key: &str) -> Result<(), RecordRejection> {
        if key.len() > self.max_key_bytes {
            return Err(RecordRejection::KeyTooLarge {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Checks a value's size.
    ///
    /// # Errors
    /// [`RecordRejection::ValueTooLarge`].
    pub fn check_value(&self, value: &str) -> Result<(), RecordRejection> {
        if value.len() > self.max_value_bytes {
            return Err(RecordRejection::ValueTooLarge {
                len: value.len(),
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks headers as they are read: `count` headers of `bytes` so far, trace context
    /// included, within the overall limits. [`Self::check_headers`] then checks exactly.
    ///
    /// # Errors
    /// [`RecordRejection::TooManyHeaders`] or [`RecordRejection::HeadersTooLarge`].
    pub fn check_header_totals(&self, count: usize, bytes: usize) -> Result<(), RecordRejection> {
        if count > self.max_headers {
            return Err(RecordRejection::TooManyHeaders {
                max: self.client_headers(),
            });
        }
        if bytes > self.max_header_bytes {
            return Err(self.headers_too_large(bytes));
        }
        Ok(())
    }

    /// Checks a client's own headers (trace headers aside) against what is left to them.
    /// Trace headers are bounded by their W3C limits instead (see `trace_context`).
    ///
    /// # Errors
    /// [`RecordRejection::TooManyHeaders`] or [`RecordRejection::HeadersTooLarge`].
    pub fn check_headers(&self, headers: &BTreeMap<String, String>) -> Result<(), RecordRejection> {
        let (count, bytes) = headers
            .iter()
            .filter(|(name, _)| !trace_context::is_trace_header(name, self.record_baggage))
            .fold((0, 0), |(count, bytes), (name, value)| {
                (count + 1, bytes + name.len() + value.len())
            });
        self.check_header_totals(headers.len(), headers_bytes(headers))?;
        if count > self.client_headers() {
            return Err(RecordRejection::TooManyHeaders {
                max: self.client_headers(),
            });
        }
        if bytes > self.client_header_bytes() {
            return Err(self.headers_too_large(bytes));
        }
        Ok(())
    }

    fn headers_too_large(&self, len: usize) -> RecordRejection {
        RecordRejection::HeadersTooLarge {
            len,
            max: self.client_header_bytes(),
            reserved: trace_context::reserved(self.record_baggage).1,
        }
    }

    /// Checks a whole record.
    ///
    /// # Errors
    /// The first limit it passes.
    pub fn check(
        &self,
        key: Option<&str>,
        value: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<(), RecordRejection> {
        self.check_value(value)?;
        if let Some(key) = key {
            self.check_key(key)?;
        }
        self.check_headers(headers)
    }
}

fn headers_bytes(headers: &BTreeMap<String, String>) -> usize {
    headers.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Why a record, or a request's records, were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRejection {
    /// The key passed [`RecordLimits::max_key_bytes`].
    KeyTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value passed [`RecordLimits::max_value_bytes`].
    ValueTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More headers than a client may set.
    TooManyHeaders {
        /// Headers a client may set.
        max: usize,
    },
    /// The client's headers passed what is left to them.
    HeadersTooLarge {
        /// Their size (or the size read so far).
        len: usize,
        /// Bytes a client's headers may use.
        max: usize,
        /// Bytes kept for trace context.
        reserved: usize,
    },
    /// A negative partition.
    NegativePartition(i64),
    /// More records in one request than `max_batch_records`.
    TooManyRecords {
        /// The limit.
        max: usize,
    },
}

impl RecordRejection {
    /// The answer (status and code) and the `error_type` it is counted under:
    /// 413 `record_too_large` for sizes, 413 `too_many_records` for the batch limit, 400
    /// `invalid_record` otherwise. `index` is the record's place in the request.
    pub fn into_error(self, index: usize) -> (ApiError, ProducerError) {
        let (status, code, kind) = match self {
            RecordRejection::KeyTooLarge { .. }
            | RecordRejection::ValueTooLarge { .. }
            | RecordRejection::HeadersTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "record_too_large",
                ProducerError::RecordTooLarge,
            ),
            RecordRejection::TooManyRecords { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_records",
                ProducerError::RecordTooLarge,
            ),
            RecordRejection::TooManyHeaders { .. } | RecordRejection::NegativePartition(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_record",
                ProducerError::InvalidRecord,
            ),
        };
        let message = match self {
            RecordRejection::TooManyRecords { .. } => self.to_string(),
            _ => format!("record {index}: {self}"),
        };
        (ApiError::new(status, code, message), kind)
    }
}

impl fmt::Display for RecordRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordRejection::KeyTooLarge { len, max } => {
                write!(f, "key is {len} bytes, the limit is {max}")
            }
            RecordRejection::ValueTooLarge { len, max } => {
                write!(f, "value is {len} bytes, the limit is {max}")
            }
            RecordRejection::TooManyHeaders { max } => write!(
                f,
                "at most {max} headers besides traceparent and tracestate"
            ),
            RecordRejection::HeadersTooLarge { len, max, reserved } => write!(
                f,
                "headers are at least {len} bytes; a record's own headers may use {max} \
                 (STREAMHOUSE_MAX_RECORD_HEADER_BYTES less {reserved} kept for trace context)"
            ),
            RecordRejection::NegativePartition(p) => {
                write!(f, "partition must be >= 0, got {p}")
            }
            RecordRejection::TooManyRecords { max } => {
                write!(
                    f,
                    "more than {max} records in one request (STREAMHOUSE_MAX_BATCH_RECORDS)"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RecordLimits {
        RecordLimits::new(&LiteConfig {
            max_headers: 4,
            max_record_header_bytes: 1_000,
            ..LiteConfig::default()
        })
    }

    fn headers(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn client_headers_get_the_limit_less_the_trace_reservation() {
        let limits = limits();
        let reserved = trace_context::reserved(false);
        assert_eq!(limits.client_headers(), 4 - reserved.0);
        assert_eq!(limits.client_header_bytes(), 1_000 - reserved.1);
        let room = limits.client_header_bytes();
        let fits = headers(&[("h", "x".repeat(room - 1))]);
        assert_eq!(limits.check_headers(&fits), Ok(()));
        let full = headers(&[("h", "x".repeat(room))]);
        assert!(matches!(
            limits.check_headers(&full),
            Err(RecordRejection::HeadersTooLarge { len, max, .. }) if len == room + 1 && max == room
        ));
        // Trace headers use the reserved room, not the client's.
        let traced = headers(&[
            ("h", "x".repeat(room - 1)),
            ("traceparent", "p".repeat(55)),
            ("tracestate", "s".repeat(100)),
        ]);
        assert_eq!(limits.check_headers(&traced), Ok(()));
        let three = headers(&[
            ("a", String::new()),
            ("b", String::new()),
            ("c", String::new()),
        ]);
        assert_eq!(
            limits.check_headers(&three),
            Err(RecordRejection::TooManyHeaders { max: 2 })
        );
    }

    #[test]
    fn baggage_is_reserved_only_when_recorded() {
        let with = RecordLimits::new(&LiteConfig {
            record_baggage: true,
            ..LiteConfig::default()
        });
        let without = RecordLimits::new(&LiteConfig::default());
        assert_eq!(
            without.client_header_bytes() - with.client_header_bytes(),
            "baggage".len() + 8192
        );
        let baggage = headers(&[("baggage", "k=v".to_owned())]);
        assert_eq!(with.check_headers(&baggage), Ok(()));
        assert_eq!(without.check_headers(&baggage), Ok(()));
    }

    #[test]
    fn each_rejection_answers_its_status_and_code() {
        let (error, kind) = RecordRejection::TooManyRecords { max: 3 }.into_error(3);
        assert_eq!(
            (error.status, error.code, kind),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_records",
                ProducerError::RecordTooLarge
            )
        );
        let (error, kind) = RecordRejection::ValueTooLarge { len: 9, max: 8 }.into_error(2);
        assert_eq!(
            (error.code, kind),
            ("record_too_large", ProducerError::RecordTooLarge)
        );
        assert!(
            error.message.starts_with("record 2: value is 9 bytes"),
            "{error}"
        );
        let (error, _) = RecordRejection::NegativePartition(-1).into_error(0);
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "invalid_record")
        );
    }
}
