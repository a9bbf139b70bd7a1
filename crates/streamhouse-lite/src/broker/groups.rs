//! Consumer groups: join, leave, commit, lag, with their error counts.

use streamhouse_observability::metrics::ConsumerError;

use super::Broker;
use crate::api::error::ApiError;
use crate::consumer_groups::{GroupError, Membership, PartitionLag};

/// Longest consumer group id, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 255;

impl Broker {
    /// Adds a member to `group` subscribed to `topic`; the group rebalances.
    ///
    /// # Errors
    /// 400 for a bad group id, 404 `topic_not_found`.
    pub fn join_group(&self, group: &str, topic: &str) -> Result<Membership, ApiError> {
        check_group_id(group).inspect_err(|_| {
            self.record_consume_error(topic, group, ConsumerError::InvalidRequest)
        })?;
        if self.inner.topics.get(topic).is_none() {
            self.record_consume_error(topic, group, ConsumerError::TopicNotFound);
            return Err(ApiError::not_found(
                "topic_not_found",
                format!("topic {topic:?} does not exist"),
            ));
        }
        Ok(self.inner.groups.join(group, topic))
    }

    /// Removes a member from `group`; the group rebalances, and goes away if it has no
    /// members and no commits left.
    ///
    /// # Errors
    /// 404 `group_not_found` for an unknown group or member.
    pub fn leave_group(&self, group: &str, member: &str) -> Result<(), ApiError> {
        self.inner.groups.leave(group, member).map_err(|e| {
            self.record_consume_error("", group, ConsumerError::GroupNotFound);
            let what = match e {
                GroupError::GroupNotFound => format!("group {group:?} does not exist"),
                GroupError::MemberNotFound => {
                    format!("group {group:?} has no member {member:?}")
                }
            };
            ApiError::not_found("group_not_found", what)
        })
    }

    /// Commits `offset` (the next offset to read) for a partition.
    ///
    /// # Errors
    /// 400 for a bad group id or an offset past the high watermark, 404 for an unknown
    /// topic or partition.
    pub fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ApiError> {
        let fail = |(error, kind): (ApiError, ConsumerError)| {
            self.record_consume_error(topic, group, kind);
            error
        };
        check_group_id(group)
            .map_err(|e| (e, ConsumerError::InvalidRequest))
            .map_err(fail)?;
        let log = self.partition_log(topic, partition).map_err(fail)?;
        let high_watermark = log.high_watermark();
        if offset > high_watermark {
            return Err(fail((
                ApiError::bad_request(
                    "offset_out_of_range",
                    format!("offset {offset} is past the high watermark {high_watermark}"),
                ),
                ConsumerError::OffsetOutOfRange,
            )));
        }
        self.inner.groups.commit(group, topic, partition, offset);
        Ok(())
    }

    /// Per-partition lag of `group`.
    ///
    /// # Errors
    /// 404 `group_not_found`.
    pub fn lag(&self, group: &str) -> Result<Vec<PartitionLag>, ApiError> {
        self.inner.groups.lag(group).map_err(|_| {
            self.record_consume_error("", group, ConsumerError::GroupNotFound);
            ApiError::not_found("group_not_found", format!("group {group:?} does not exist"))
        })
    }
}

fn check_group_id(group: &str) -> Result<(), ApiError> {
    if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("group id must be 1 to {MAX_GROUP_ID_LEN} bytes"),
        ));
    }
    Ok(())
}
