//! Consumer groups: members, partition assignment, rebalances, committed offsets, and the
//! lag series each group owns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde::Serialize;
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;

use crate::topics::TopicRegistry;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Member id -> subscribed topic.
    members: BTreeMap<String, String>,
    /// Member id -> assigned partitions.
    assignments: BTreeMap<String, Vec<TopicPartition>>,
    /// Next offset to read, per partition.
    committed: BTreeMap<TopicPartition, u64>,
    generation: u64,
}

impl GroupState {
    /// Spreads each topic's partitions over its subscribers, in member-id order.
    fn rebalance(&mut self, topics: &TopicRegistry) {
        self.generation += 1;
        self.assignments = self
            .members
            .keys()
            .map(|m| (m.clone(), Vec::new()))
            .collect();
        let subscribed: BTreeSet<&String> = self.members.values().collect();
        for topic_name in subscribed {
            let Some(topic) = topics.get(topic_name) else {
                continue;
            };
            let subscribers: Vec<&String> = self
                .members
                .iter()
                .filter(|(_, t)| *t == topic_name)
                .map(|(m, _)| m)
                .collect();
            for partition in 0..topic.partitions.len() as u32 {
                let member = subscribers[partition as usize % subscribers.len()];
                if let Some(assigned) = self.assignments.get_mut(member) {
                    assigned.push(TopicPartition {
                        topic: topic_name.clone(),
                        partition,
                    });
                }
            }
        }
    }

    /// Partitions whose lag the group reports: committed or assigned.
    fn tracked(&self) -> BTreeSet<TopicPartition> {
        self.committed
            .keys()
            .cloned()
            .chain(self.assignments.values().flatten().cloned())
            .collect()
    }
}

struct Group {
    state: Arc<Mutex<GroupState>>,
    /// The group's lag series live as long as the group.
    _lag: GaugeRegistration,
}

/// A member's view after joining.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The group.
    pub group_id: String,
    /// The new member's id.
    pub member_id: String,
    /// Rebalance generation.
    pub generation: u64,
    /// Partitions assigned to the new member.
    pub assignments: Vec<TopicPartition>,
}

/// One partition's lag.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset (next to read); 0 when none was committed.
    pub committed_offset: u64,
    /// The partition's high watermark.
    pub high_watermark: u64,
    /// `high_watermark - committed_offset`.
    pub lag: u64,
}

/// Why a group operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// No such group.
    GroupNotFound,
    /// No such member in the group.
    MemberNotFound,
}

/// Every consumer group.
pub struct ConsumerGroups {
    groups: Mutex<HashMap<String, Group>>,
    topics: Arc<TopicRegistry>,
    telemetry: Telemetry,
}

impl std::fmt::Debug for ConsumerGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroups")
            .field("groups", &self.group_ids())
            .finish_non_exhaustive()
    }
}

impl ConsumerGroups {
    /// No groups yet.
    pub fn new(topics: Arc<TopicRegistry>, telemetry: &Telemetry) -> Self {
        ConsumerGroups {
            groups: Mutex::new(HashMap::new()),
            topics,
            telemetry: telemetry.clone(),
        }
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ids of the groups that exist, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.groups().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The group's state, created (with its lag source) if missing.
    fn state_of(&self, group_id: &str) -> Arc<Mutex<GroupState>> {
        let mut groups = self.groups();
        let group = groups.entry(group_id.to_owned()).or_insert_with(|| {
            let state = Arc::new(Mutex::new(GroupState::default()));
            let lag = self.lag_source(group_id, Arc::downgrade(&state));
            Group { state, _lag: lag }
        });
        Arc::clone(&group.state)
    }

    fn lag_source(&self, group_id: &str, state: Weak<Mutex<GroupState>>) -> GaugeRegistration {
        let group_id = group_id.to_owned();
        let topics = Arc::downgrade(&self.topics);
        self.telemetry.consumer().observe_lag(move |report| {
            let (Some(state), Some(topics)) = (state.upgrade(), topics.upgrade()) else {
                return;
            };
            for lag in lag_of(&state, &topics) {
                report.lag(&lag.topic, lag.partition, &group_id, lag.lag);
            }
        })
    }

    /// Adds a member subscribed to `topic` (which must exist) and rebalances the group.
    pub fn join(&self, group_id: &str, topic: &str) -> Membership {
        let state = self.state_of(group_id);
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let member_id = format!("{group_id}-{}", uuid::Uuid::new_v4());
        state.members.insert(member_id.clone(), topic.to_owned());
        state.rebalance(&self.topics);
        self.telemetry.consumer().record_rebalance(group_id);
        Membership {
            group_id: group_id.to_owned(),
            assignments: state
                .assignments
                .get(&member_id)
                .cloned()
                .unwrap_or_default(),
            member_id,
            generation: state.generation,
        }
    }

    /// Removes a member and rebalances; a group left with no members and no commits is
    /// removed, and its lag series with it.
    ///
    /// # Errors
    /// [`GroupError`] when the group or member is unknown.
    pub fn leave(&self, group_id: &str, member_id: &str) -> Result<(), GroupError> {
        let removed = {
            let mut groups = self.groups();
            let group = groups.get(group_id).ok_or(GroupError::GroupNotFound)?;
            let mut state = group.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.members.remove(member_id).is_none() {
                return Err(GroupError::MemberNotFound);
            }
            state.rebalance(&self.topics);
            self.telemetry.consumer().record_rebalance(group_id);
            let empty = state.members.is_empty() && state.committed.is_empty();
            drop(state);
            if empty { groups.remove(group_id) } else { None }
        };
        // Dropped outside the map's lock: it takes the gauge's lock.
        drop(removed);
        Ok(())
    }

    /// Commits `offset` (the next offset to read) for a partition, creating the group if
    /// needed. The caller checks the partition exists and the offset is in range.
    pub fn commit(&self, group_id: &str, topic: &str, partition: u32, offset: u64) {
        let state = self.state_of(group_id);
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.committed.insert(
            TopicPartition {
                topic: topic.to_owned(),
                partition,
            },
            offset,
        );
    }

    /// The committed offset of a partition, if any.
    pub fn committed(&self, group_id: &str, topic: &str, partition: u32) -> Option<u64> {
        let groups = self.groups();
        let state = groups
            .get(group_id)?
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .committed
            .get(&TopicPartition {
                topic: topic.to_owned(),
                partition,
            })
            .copied()
    }

    /// Lag of every partition the group commits to or is assigned.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn lag(&self, group_id: &str) -> Result<Vec<PartitionLag>, GroupError> {
        let state = {
            let groups = self.groups();
            Arc::clone(&groups.get(group_id).ok_or(GroupError::GroupNotFound)?.state)
        };
        Ok(lag_of(&state, &self.topics))
    }

    /// Members and their assignments.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn members(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<String, Vec<TopicPartition>>, GroupError> {
        let groups = self.groups();
        let group = groups.get(group_id).ok_or(GroupError::GroupNotFound)?;
        let state = group.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(state.assignments.clone())
    }
}

fn lag_of(state: &Mutex<GroupState>, topics: &TopicRegistry) -> Vec<PartitionLag> {
    let state = state.lock().unwrap_or_else(PoisonError::into_inner);
    state
        .tracked()
        .into_iter()
        .filter_map(|tp| {
            let log = topics.get(&tp.topic)?.partition(tp.partition)?.clone();
            let high_watermark = log.high_watermark();
            let committed_offset = state.committed.get(&tp).copied().unwrap_or(0);
            Some(PartitionLag {
                lag: high_watermark.saturating_sub(committed_offset),
                topic: tp.topic,
                partition: tp.partition,
                committed_offset,
                high_watermark,
            })
        })
        .collect()
}
