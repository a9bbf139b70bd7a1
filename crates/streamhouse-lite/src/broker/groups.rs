//! Consumer groups: join, leave, heartbeat, commit, lag, list, describe, reset, seek and
//! delete, with their error counts; and the checks of the names every consumer-side request
//! carries.
//!
//! Label values come only from things that exist (see [`Broker::consumer_labels`]): a
//! client's topic or group string is never a label unless it names a real topic or group.

use axum::http::StatusCode;
use streamhouse_observability::metrics::ConsumerError;

use super::Broker;
use crate::api::error::ApiError;
use crate::consumer_groups::{
    GroupDetail, GroupError, GroupSummary, Membership, OffsetChange, PartitionLag, ResetStrategy,
    ResetTarget, TopicPartition,
};
use crate::topics::{UNKNOWN_TOPIC, is_valid_topic_name};

/// Longest consumer group id, in bytes. Any UTF-8 up to this is a valid id.
pub const MAX_GROUP_ID_LEN: usize = 255;

/// Whether `group` is a valid group id: 1 to [`MAX_GROUP_ID_LEN`] bytes.
pub fn is_valid_group_id(group: &str) -> bool {
    !group.is_empty() && group.len() <= MAX_GROUP_ID_LEN
}

/// 400 for a group id that is not valid; the message does not repeat it.
fn invalid_group_id(group: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_group_id",
        format!(
            "a group id is 1 to {MAX_GROUP_ID_LEN} bytes of UTF-8; got {} bytes",
            group.len()
        ),
    )
}

impl Broker {
    /// The label values a consumer-side count may use for `topic` and `group`: the topic's
    /// name if it exists, [`UNKNOWN_TOPIC`] if it names none (or is not a valid name), `""`
    /// when no topic was named; the group's id if the group exists, else `""`.
    pub fn consumer_labels<'a>(&self, topic: &'a str, group: &'a str) -> (&'a str, &'a str) {
        let topic = if topic.is_empty() || self.inner.topics.get(topic).is_some() {
            topic
        } else {
            UNKNOWN_TOPIC
        };
        let group = if self.inner.groups.exists(group) {
            group
        } else {
            ""
        };
        (topic, group)
    }

    /// Checks the names a consumer-side request carries, before anything else about it.
    ///
    /// # Errors
    /// 400 `invalid_topic_name` or `invalid_group_id`, counted as `invalid_request` under
    /// [`Self::consumer_labels`].
    pub fn check_consumer_names(&self, topic: &str, group: Option<&str>) -> Result<(), ApiError> {
        let error = if !is_valid_topic_name(topic) {
            ApiError::invalid_topic_name()
        } else if let Some(group) = group.filter(|g| !is_valid_group_id(g)) {
            invalid_group_id(group)
        } else {
            return Ok(());
        };
        self.record_consume_error(topic, group.unwrap_or(""), ConsumerError::InvalidRequest);
        Err(error)
    }

    /// Adds a member to `group` subscribed to `topic`; the group rebalances.
    ///
    /// # Errors
    /// 400 for a bad topic name or group id, 404 `topic_not_found`, 409 `too_many_groups`
    /// or `too_many_members`.
    pub fn join_group(&self, group: &str, topic: &str) -> Result<Membership, ApiError> {
        self.check_consumer_names(topic, Some(group))?;
        if self.inner.topics.get(topic).is_none() {
            self.record_consume_error(topic, group, ConsumerError::TopicNotFound);
            return Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {topic:?} does not exist"),
            ));
        }
        self.inner
            .groups
            .join(group, topic)
            .map_err(|e| self.group_error(e, topic, group))
    }

    /// Removes a member from `group`; the group rebalances, and goes away if it has no
    /// members and no commits left.
    ///
    /// # Errors
    /// 404 `group_not_found` or `member_not_found`.
    pub fn leave_group(&self, group: &str, member: &str) -> Result<(), ApiError> {
        self.inner
            .groups
            .leave(group, member)
            .map_err(|e| self.group_error(e, "", group))
    }

    /// Renews a member's session (see [`crate::LiteConfig::member_session_timeout`]).
    ///
    /// # Errors
    /// 400 for a bad group id, 404 `group_not_found` or `member_not_found`.
    pub fn heartbeat(&self, group: &str, member: &str) -> Result<Membership, ApiError> {
        self.touch_member(group, member, "")
    }

    /// Renews `member`'s session for a consume or commit naming it, counting a failure
    /// under `topic`.
    pub(super) fn touch_member(
        &self,
        group: &str,
        member: &str,
        topic: &str,
    ) -> Result<Membership, ApiError> {
        if !is_valid_group_id(group) {
            self.record_consume_error(topic, "", ConsumerError::InvalidRequest);
            return Err(invalid_group_id(group));
        }
        self.inner
            .groups
            .heartbeat(group, member)
            .map_err(|e| self.group_error(e, topic, group))
    }

    /// Commits `offset` (the next offset to read) for a partition; a `member` naming itself
    /// renews its session. As in Kafka, an offset past the high watermark is accepted (its
    /// lag reads 0 until the log reaches it).
    ///
    /// # Errors
    /// 400 for a bad name, 404 for an unknown topic, partition or member, 409
    /// `too_many_groups`.
    pub fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
        member: Option<&str>,
    ) -> Result<(), ApiError> {
        self.check_consumer_names(topic, Some(group))?;
        if let Some(member) = member {
            self.touch_member(group, member, topic)?;
        }
        self.partition_log(topic, partition)
            .map_err(|(error, kind)| {
                self.record_consume_error(topic, group, kind);
                error
            })?;
        self.inner
            .groups
            .commit(group, topic, partition, offset)
            .map_err(|e| self.group_error(e, topic, group))
    }

    /// Per-partition lag of `group`.
    ///
    /// # Errors
    /// 404 `group_not_found`.
    pub fn lag(&self, group: &str) -> Result<Vec<PartitionLag>, ApiError> {
        self.inner
            .groups
            .lag(group)
            .map_err(|e| self.group_error(e, "", group))
    }

    /// Every group, by id.
    pub fn list_groups(&self) -> Vec<GroupSummary> {
        self.inner.groups.summaries()
    }

    /// `group`'s committed offsets with their lag, and its members.
    ///
    /// # Errors
    /// 400 `invalid_group_id`, 404 `group_not_found`.
    pub fn describe_group(&self, group: &str) -> Result<GroupDetail, ApiError> {
        self.check_group_id(group)?;
        self.inner
            .groups
            .detail(group)
            .map_err(|e| self.group_error(e, "", group))
    }

    /// Deletes `group`: members, committed offsets, and every series labelled with it.
    /// Answers how many committed offsets went.
    ///
    /// # Errors
    /// 400 `invalid_group_id`, 404 `group_not_found`.
    pub fn delete_group(&self, group: &str) -> Result<usize, ApiError> {
        self.check_group_id(group)?;
        self.inner
            .groups
            .delete(group)
            .map_err(|e| self.group_error(e, "", group))
    }

    /// Moves `group`'s committed offsets of `target` by `strategy`; the group must exist (a
    /// reset never creates one). For a timestamp, partitions are searched one after another,
    /// each a segment at a time.
    ///
    /// # Errors
    /// 400 for a bad name or a partition without a topic, 404 `group_not_found` /
    /// `topic_not_found` / `partition_not_found`, 503 `storage_failure`; each counted.
    pub async fn reset_offsets(
        &self,
        group: &str,
        target: ResetTarget<'_>,
        strategy: ResetStrategy,
    ) -> Result<Vec<OffsetChange>, ApiError> {
        let topic_label = target.topic.unwrap_or_default();
        let fail = |(error, kind): (ApiError, ConsumerError)| {
            self.record_consume_error(topic_label, group, kind);
            error
        };
        match target.topic {
            Some(topic) => self.check_consumer_names(topic, Some(group))?,
            None => self.check_group_id(group)?,
        }
        if target.topic.is_none() && target.partition.is_some() {
            return Err(fail((
                ApiError::bad_request("missing_field", "`partition` needs `topic`"),
                ConsumerError::InvalidRequest,
            )));
        }
        if !self.inner.groups.exists(group) {
            return Err(self.group_error(GroupError::GroupNotFound, topic_label, group));
        }
        let partitions = match (target.topic, target.partition) {
            (Some(topic), Some(partition)) => {
                self.partition_log(topic, partition).map_err(fail)?;
                vec![TopicPartition {
                    topic: topic.to_owned(),
                    partition,
                }]
            }
            (Some(topic), None) => {
                let count = self.partition_count(topic).map_err(fail)?;
                (0..count)
                    .map(|partition| TopicPartition {
                        topic: topic.to_owned(),
                        partition,
                    })
                    .collect()
            }
            _ => self
                .inner
                .groups
                .committed_partitions(group)
                .map_err(|e| self.group_error(e, topic_label, group))?,
        };
        let mut changes = Vec::with_capacity(partitions.len());
        let mut offsets = Vec::with_capacity(partitions.len());
        for tp in partitions {
            // A committed partition whose topic has gone meanwhile is left alone.
            let Ok(log) = self.partition_log(&tp.topic, tp.partition) else {
                continue;
            };
            let high_watermark = log.high_watermark();
            let (new_offset, timestamp_found) = match strategy {
                ResetStrategy::Earliest => (0, None),
                ResetStrategy::Latest => (high_watermark, None),
                ResetStrategy::Specific(offset) => (offset.min(high_watermark), None),
                ResetStrategy::Timestamp(timestamp) => {
                    match self.find_by_timestamp(&log, timestamp).await.map_err(
                        |(error, kind)| {
                            self.record_consume_error(&tp.topic, group, kind);
                            error
                        },
                    )? {
                        Some((offset, found)) => (offset, Some(found)),
                        None => (high_watermark, None),
                    }
                }
            };
            changes.push(OffsetChange {
                topic: tp.topic.clone(),
                partition: tp.partition,
                old_offset: None,
                new_offset,
                timestamp_found,
            });
            offsets.push((tp, new_offset));
        }
        let old = self
            .inner
            .groups
            .set_offsets(group, &offsets)
            .map_err(|e| self.group_error(e, topic_label, group))?;
        for (change, old) in changes.iter_mut().zip(old) {
            change.old_offset = old;
        }
        Ok(changes)
    }

    /// Partitions of `topic`, or 404 `topic_not_found`.
    fn partition_count(&self, topic: &str) -> Result<u32, (ApiError, ConsumerError)> {
        match self.inner.topics.get(topic) {
            Some(topic) => Ok(topic.partitions.len() as u32),
            None => Err((
                ApiError::not_found("topic_not_found", format!("topic {topic:?} does not exist")),
                ConsumerError::TopicNotFound,
            )),
        }
    }

    /// 400 `invalid_group_id` (counted) unless `group` is a valid group id.
    fn check_group_id(&self, group: &str) -> Result<(), ApiError> {
        if is_valid_group_id(group) {
            return Ok(());
        }
        self.record_consume_error("", "", ConsumerError::InvalidRequest);
        Err(invalid_group_id(group))
    }

    /// Answers and counts a failed group operation.
    fn group_error(&self, error: GroupError, topic: &str, group: &str) -> ApiError {
        let limits = self.inner.groups.limits();
        let (error, kind) = match error {
            GroupError::GroupNotFound => (
                ApiError::not_found("group_not_found", format!("group {group:?} does not exist")),
                ConsumerError::GroupNotFound,
            ),
            GroupError::MemberNotFound => (
                ApiError::not_found(
                    "member_not_found",
                    format!(
                        "group {group:?} has no such member (it left, or was silent longer \
                         than {:?}); join again",
                        limits.session_timeout
                    ),
                ),
                ConsumerError::GroupNotFound,
            ),
            GroupError::TooManyGroups => (
                ApiError::new(
                    StatusCode::CONFLICT,
                    "too_many_groups",
                    format!(
                        "{} consumer groups exist, the most allowed",
                        limits.max_groups
                    ),
                ),
                ConsumerError::LimitExceeded,
            ),
            GroupError::TooManyMembers => (
                ApiError::new(
                    StatusCode::CONFLICT,
                    "too_many_members",
                    format!(
                        "group {group:?} has {} members, the most allowed",
                        limits.max_members
                    ),
                ),
                ConsumerError::LimitExceeded,
            ),
        };
        self.record_consume_error(topic, group, kind);
        error
    }
}
