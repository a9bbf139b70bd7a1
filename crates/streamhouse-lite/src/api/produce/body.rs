//! Produce bodies, read in one streaming pass (serde_json driving our own visitors) that
//! checks every limit as it goes and stops at the first one passed: a 16 MiB batch is never
//! held whole, and a bad body is never parsed twice.
//!
//! The topic is needed to label an error, and JSON puts no order on keys. When `topic` comes
//! first (as every client we ship sends it), it is checked at once: an invalid or absent
//! topic ends the pass, and a record past a limit ends it too. When `records` comes first,
//! stopping there would leave the error unlabelled, so the rest of the records is skipped
//! with `IgnoredAny` (parsed, not kept: no allocation per record) to reach `topic`. That is
//! one pass, bounded by the body limit, and cheaper than a second parse or a hand-written
//! key scanner. A body that breaks off before `topic` is counted under the placeholder.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use streamhouse_observability::metrics::ProducerError;

use crate::api::error::ApiError;
use crate::broker::ProduceRecord;
use crate::record::limits::{RecordLimits, RecordRejection};
use crate::topics::is_valid_topic_name;

/// Which endpoint's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `{"topic", "key"?, "value", "partition"?, "headers"?}`.
    Single,
    /// `{"topic", "records": [...]}`.
    Batch,
}

/// The `topic` field as read. Only a valid name is kept: an invalid one may be megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TopicField {
    /// Not read (absent, or the body broke off before it).
    Missing,
    /// Not a valid topic name.
    Invalid,
    /// A valid name (which may or may not exist).
    Named(String),
}

/// What one pass over a body found.
#[derive(Debug)]
pub(super) struct ParsedBody {
    /// The topic, as far as the pass read it.
    pub topic: TopicField,
    /// The records, or why the body was refused.
    pub records: Result<Vec<ProduceRecord>, (ApiError, ProducerError)>,
}

/// Reads `body` once. `exists` says whether a valid topic name exists.
pub(super) fn parse(
    body: &[u8],
    shape: Shape,
    limits: &RecordLimits,
    max_records: usize,
    exists: &dyn Fn(&str) -> bool,
) -> ParsedBody {
    let mut pass = Pass {
        shape,
        limits,
        max_records,
        exists,
        topic: TopicField::Missing,
        rejection: None,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result = (&mut pass)
        .deserialize(&mut deserializer)
        .and_then(|records| deserializer.end().map(|()| records));
    let records = match (pass.rejection, result) {
        (Some((index, rejection)), _) => Err(rejection.into_error(index)),
        (None, Ok(records)) => Ok(records),
        (None, Err(error)) => Err(malformed(&error)),
    };
    ParsedBody {
        topic: pass.topic,
        records,
    }
}

/// Longest serde message echoed: it may quote the offending input.
const MAX_MESSAGE_BYTES: usize = 256;

fn malformed(error: &serde_json::Error) -> (ApiError, ProducerError) {
    let mut message = format!("malformed produce request: {error}");
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    (
        ApiError::bad_request("invalid_record", message),
        ProducerError::InvalidRecord,
    )
}

/// The error that ends a pass once the answer is known; the answer is in [`Pass`].
fn stop<E: de::Error>() -> E {
    E::custom("stopped at the first refusal")
}

struct Pass<'a> {
    shape: Shape,
    limits: &'a RecordLimits,
    max_records: usize,
    exists: &'a dyn Fn(&str) -> bool,
    topic: TopicField,
    /// The first refusal and the index of the record it concerns.
    rejection: Option<(usize, RecordRejection)>,
}

impl Pass<'_> {
    /// Whether a refusal may end the pass now: the topic to label it with is known.
    fn can_stop(&self) -> bool {
        self.topic != TopicField::Missing
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Topic,
    Records,
    Key,
    Value,
    Partition,
    Headers,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for &mut Pass<'_> {
    type Value = Vec<ProduceRecord>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(BodyVisitor(self))
    }
}

struct BodyVisitor<'p, 'a>(&'p mut Pass<'a>);

impl<'de> Visitor<'de> for BodyVisitor<'_, '_> {
    type Value = Vec<ProduceRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a produce request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let pass = self.0;
        let mut records = None;
        let mut fields = RecordFields::default();
        let mut single_rejection = None;
        while let Some(field) = map.next_key::<Field>()? {
            match (field, pass.shape) {
                (Field::Topic, _) => {
                    if pass.topic != TopicField::Missing {
                        return Err(de::Error::duplicate_field("topic"));
                    }
                    pass.topic = map.next_value_seed(TopicSeed)?;
                    let usable = match &pass.topic {
                        TopicField::Named(name) => (pass.exists)(name),
                        _ => false,
                    };
                    if !usable {
                        return Err(stop());
                    }
                }
                (Field::Records, Shape::Batch) => {
                    if records.is_some() {
                        return Err(de::Error::duplicate_field("records"));
                    }
                    records = Some(map.next_value_seed(RecordsSeed(&mut *pass))?);
                }
                (Field::Key | Field::Value | Field::Partition | Field::Headers, Shape::Single)
                    if single_rejection.is_none() =>
                {
                    single_rejection = fields.read(field, &mut map, pass.limits)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if pass.topic == TopicField::Missing && pass.rejection.is_none() {
            return Err(de::Error::missing_field("topic"));
        }
        match pass.shape {
            Shape::Batch => records.ok_or_else(|| de::Error::missing_field("records")),
            Shape::Single => {
                let record = match single_rejection {
                    Some(rejection) => Err(rejection),
                    None => fields.finish::<A::Error>(pass.limits)?,
                };
                match record {
                    Ok(record) => Ok(vec![record]),
                    Err(rejection) => {
                        pass.rejection = Some((0, rejection));
                        Ok(Vec::new())
                    }
                }
            }
        }
    }
}

/// Reads a topic, keeping it only when it is a valid name.
struct TopicSeed;

impl<'de> DeserializeSeed<'de> for TopicSeed {
    type Value = TopicField;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TopicSeed {
    type Value = TopicField;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a topic name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(if is_valid_topic_name(name) {
            TopicField::Named(name.to_owned())
        } else {
            TopicField::Invalid
        })
    }
}

/// Reads `records`, refusing the first record past the limit before reading it.
struct RecordsSeed<'p, 'a>(&'p mut Pass<'a>);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = Vec<ProduceRecord>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = Vec<ProduceRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let pass = self.0;
        let mut records = Vec::new();
        loop {
            let index = records.len();
            if index == pass.max_records {
                let max = pass.max_records;
                let can_stop = pass.can_stop();
                // Noted first: refusing the next element ends the pass with this answer.
                pass.rejection = Some((index, RecordRejection::TooManyRecords { max }));
                if seq.next_element_seed(Overflow { max, can_stop })?.is_none() {
                    pass.rejection = None;
                    return Ok(records);
                }
                break;
            }
            match seq.next_element_seed(RecordSeed(pass.limits))? {
                None => return Ok(records),
                Some(Ok(record)) => records.push(record),
                Some(Err(rejection)) => {
                    pass.rejection = Some((index, rejection));
                    if pass.can_stop() {
                        return Err(stop());
                    }
                    break;
                }
            }
        }
        // Refused, with the topic still to come: skip to it without keeping anything.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }
}

/// Stands for the first record past the limit: refuses it unread when the pass may stop,
/// else skips it.
struct Overflow {
    max: usize,
    can_stop: bool,
}

impl<'de> DeserializeSeed<'de> for Overflow {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.can_stop {
            return Err(de::Error::custom(format_args!(
                "more than {} records",
                self.max
            )));
        }
        IgnoredAny::deserialize(deserializer).map(|_| ())
    }
}

/// Reads one record of a batch; a refused record is the inner `Err`.
struct RecordSeed<'a>(&'a RecordLimits);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Result<ProduceRecord, RecordRejection>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Result<ProduceRecord, RecordRejection>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = RecordFields::default();
        while let Some(field) = map.next_key::<Field>()? {
            if let Some(rejection) = fields.read(field, &mut map, self.0)? {
                // The rest of this record cannot change the answer.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(Err(rejection));
            }
        }
        fields.finish(self.0)
    }
}

/// A record's fields as they arrive, each checked as soon as it is read.
#[derive(Default)]
struct RecordFields {
    key: Option<Option<String>>,
    value: Option<String>,
    partition: Option<Option<i64>>,
    headers: Option<BTreeMap<String, String>>,
}

impl RecordFields {
    /// Reads the value of `field` (skipping fields a record does not have); returns the
    /// limit it passes, if any.
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        field: Field,
        map: &mut A,
        limits: &RecordLimits,
    ) -> Result<Option<RecordRejection>, A::Error> {
        let duplicate = match field {
            Field::Key => self.key.is_some(),
            Field::Value => self.value.is_some(),
            Field::Partition => self.partition.is_some(),
            Field::Headers => self.headers.is_some(),
            Field::Topic | Field::Records | Field::Other => {
                map.next_value::<IgnoredAny>()?;
                return Ok(None);
            }
        };
        if duplicate {
            return Err(de::Error::custom("duplicate record field"));
        }
        let checked = match field {
            Field::Key => {
                let key: Option<String> = map.next_value()?;
                let checked = key.as_deref().map_or(Ok(()), |k| limits.check_key(k));
                self.key = Some(key);
                checked
            }
            Field::Value => {
                let value: String = map.next_value()?;
                let checked = limits.check_value(&value);
                self.value = Some(value);
                checked
            }
            Field::Partition => {
                let partition: Option<i64> = map.next_value()?;
                self.partition = Some(partition);
                match partition {
                    Some(p) if p < 0 => Err(RecordRejection::NegativePartition(p)),
                    _ => Ok(()),
                }
            }
            _ => map
                .next_value_seed(HeadersSeed(limits))?
                .map(|headers| self.headers = Some(headers)),
        };
        Ok(checked.err())
    }

    /// The record, once every field is read, checked whole.
    fn finish<E: de::Error>(
        self,
        limits: &RecordLimits,
    ) -> Result<Result<ProduceRecord, RecordRejection>, E> {
        let value = self.value.ok_or_else(|| E::missing_field("value"))?;
        let record = ProduceRecord {
            key: self.key.flatten(),
            value,
            partition: self.partition.flatten(),
            headers: self.headers.unwrap_or_default(),
        };
        Ok(limits
            .check(record.key.as_deref(), &record.value, &record.headers)
            .map(|()| record))
    }
}

/// Reads a record's headers, refusing as soon as their count or bytes pass the limits.
struct HeadersSeed<'a>(&'a RecordLimits);

impl<'de> DeserializeSeed<'de> for HeadersSeed<'_> {
    type Value = Result<BTreeMap<String, String>, RecordRejection>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeadersSeed<'_> {
    type Value = Result<BTreeMap<String, String>, RecordRejection>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string headers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut headers = BTreeMap::new();
        let mut bytes = 0;
        let mut count = 0;
        while let Some((name, value)) = map.next_entry::<String, String>()? {
            count += 1;
            bytes += name.len() + value.len();
            if let Err(rejection) = self.0.check_header_totals(count, bytes) {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(Err(rejection));
            }
            headers.insert(name, value);
        }
        Ok(Ok(headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LiteConfig;
    use axum::http::StatusCode;

    fn limits() -> RecordLimits {
        RecordLimits::new(&LiteConfig {
            max_value_bytes: 8,
            ..LiteConfig::default()
        })
    }

    fn batch(body: &str, max: usize) -> ParsedBody {
        parse(body.as_bytes(), Shape::Batch, &limits(), max, &|name| {
            name == "orders"
        })
    }

    fn code(parsed: &ParsedBody) -> &'static str {
        parsed.records.as_ref().unwrap_err().0.code
    }

    #[test]
    fn reads_a_batch_in_either_key_order() {
        let first = batch(
            r#"{"topic":"orders","records":[{"value":"a"},{"value":"b","key":"k"}]}"#,
            2,
        );
        let last = batch(
            r#"{"records":[{"value":"a"},{"value":"b","key":"k"}],"extra":[1],"topic":"orders"}"#,
            2,
        );
        for parsed in [first, last] {
            assert_eq!(parsed.topic, TopicField::Named("orders".into()));
            let records = parsed.records.unwrap();
            assert_eq!(records.len(), 2);
            assert_eq!(records[1].key.as_deref(), Some("k"));
        }
    }

    #[test]
    fn stops_at_the_record_past_the_limit_without_reading_it() {
        // The third record is not even JSON: the pass never reaches it.
        let parsed = batch(
            r#"{"topic":"orders","records":[{"value":"a"},{"value":"b"},{"value": nope"#,
            2,
        );
        assert_eq!(code(&parsed), "too_many_records");
        assert_eq!(
            parsed.records.unwrap_err().0.status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // Topic last: the rest is skipped to label the error, and still refused.
        let parsed = batch(
            r#"{"records":[{"value":"a"},{"value":"b"},{"value":1}],"topic":"orders"}"#,
            2,
        );
        assert_eq!(
            (code(&parsed), parsed.topic),
            ("too_many_records", TopicField::Named("orders".into()))
        );
    }

    #[test]
    fn stops_at_the_first_record_over_a_size_limit() {
        let parsed = batch(
            r#"{"topic":"orders","records":[{"value":"ok"},{"value":"123456789"},{"value": nope"#,
            10,
        );
        let (error, kind) = parsed.records.unwrap_err();
        assert_eq!(
            (error.code, kind),
            ("record_too_large", ProducerError::RecordTooLarge)
        );
        assert!(
            error.message.starts_with("record 1: value is 9 bytes"),
            "{error}"
        );
        let parsed = batch(
            r#"{"topic":"orders","records":[{"value":"v","partition":-2}]}"#,
            10,
        );
        assert_eq!(code(&parsed), "invalid_record");
    }

    #[test]
    fn an_invalid_or_absent_topic_ends_the_pass_and_is_not_kept() {
        let long = "t".repeat(64 << 10);
        let parsed = batch(
            &format!(r#"{{"topic":"{long}","records":[{{"value": nope"#),
            10,
        );
        assert_eq!(parsed.topic, TopicField::Invalid);
        let parsed = batch(r#"{"topic":"absent","records": nope"#, 10);
        assert_eq!(parsed.topic, TopicField::Named("absent".into()));
        let parsed = batch(r#"{"records":[{"value":"a"}]"#, 10);
        assert_eq!(
            (parsed.topic, code(&batch("[]", 1))),
            (TopicField::Missing, "invalid_record")
        );
    }

    #[test]
    fn headers_are_refused_as_soon_as_they_pass_the_limits() {
        let limits = RecordLimits::new(&LiteConfig {
            max_headers: 3,
            ..LiteConfig::default()
        });
        let body = r#"{"topic":"orders","value":"v","headers":{"a":"1","b":"2","c":"3","d":"4"}}"#;
        let parsed = parse(body.as_bytes(), Shape::Single, &limits, 10, &|_| true);
        assert_eq!(code(&parsed), "invalid_record");
        assert!(
            parsed
                .records
                .unwrap_err()
                .0
                .message
                .contains("at most 1 headers")
        );
    }

    #[test]
    fn reads_a_single_record_and_explains_malformed_ones_briefly() {
        let body = r#"{"value":"v","partition":1,"topic":"orders","headers":{"h":"x"}}"#;
        let parsed = parse(body.as_bytes(), Shape::Single, &limits(), 10, &|_| true);
        let record = &parsed.records.unwrap()[0];
        assert_eq!((record.value.as_str(), record.partition), ("v", Some(1)));
        assert_eq!(record.headers["h"], "x");
        let noisy = format!(
            r#"{{"topic":"orders","value":"v","partition":"{}"}}"#,
            "x".repeat(10_000)
        );
        let parsed = parse(noisy.as_bytes(), Shape::Single, &limits(), 10, &|_| true);
        let message = parsed.records.unwrap_err().0.message;
        assert!(
            message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8(),
            "{message}"
        );
        let missing = parse(
            br#"{"topic":"orders"}"#,
            Shape::Single,
            &limits(),
            10,
            &|_| true,
        );
        assert!(missing.records.unwrap_err().0.message.contains("value"));
    }
}
