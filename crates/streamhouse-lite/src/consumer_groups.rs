//! Consumer groups: members and their sessions, partition assignment, rebalances, committed
//! offsets, and the lag series each group owns.
//!
//! A group exists while it has members or commits; only then is its id a label value.
//! Members keep their session by calling (a heartbeat, or a consume or commit naming them);
//! a reaper task removes those silent past [`GroupLimits::session_timeout`] and rebalances.
//! A group goes away in one place (`Shared::remove_group_if`): when its last member leaves
//! or expires with no commits left, and when it is deleted; its series go with it.
//!
//! Locks: the map of groups, then a group's state, never the other way round. The map's
//! lock is held only to find, create or remove a group; rebalances take the group's lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use streamhouse_observability::Telemetry;
use streamhouse_observability::catalog::label;
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::task::JoinHandle;

use crate::config::LiteConfig;
use crate::topics::TopicRegistry;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

/// How many groups and members there may be, and how long a silent member stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Most groups.
    pub max_groups: usize,
    /// Most members in one group.
    pub max_members: usize,
    /// A member that does not call within this leaves its group.
    pub session_timeout: Duration,
}

impl GroupLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &LiteConfig) -> Self {
        GroupLimits {
            max_groups: config.max_groups,
            max_members: config.max_group_members,
            session_timeout: config.member_session_timeout,
        }
    }
}

#[derive(Debug)]
struct Member {
    topic: String,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct GroupState {
    members: BTreeMap<String, Member>,
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
        let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, member) in &self.members {
            subscribers.entry(&member.topic).or_default().push(id);
        }
        let mut assignments: BTreeMap<String, Vec<TopicPartition>> = self
            .members
            .keys()
            .map(|m| (m.clone(), Vec::new()))
            .collect();
        for (topic_name, members) in subscribers {
            let Some(topic) = topics.get(topic_name) else {
                continue;
            };
            for partition in 0..topic.partitions.len() as u32 {
                let member = members[partition as usize % members.len()];
                if let Some(assigned) = assignments.get_mut(member) {
                    assigned.push(TopicPartition {
                        topic: topic_name.to_owned(),
                        partition,
                    });
                }
            }
        }
        self.assignments = assignments;
    }

    /// Partitions whose lag the group reports: committed or assigned.
    fn tracked(&self) -> BTreeSet<TopicPartition> {
        self.committed
            .keys()
            .cloned()
            .chain(self.assignments.values().flatten().cloned())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.committed.is_empty()
    }

    fn membership(&self, group_id: &str, member_id: &str) -> Membership {
        Membership {
            group_id: group_id.to_owned(),
            member_id: member_id.to_owned(),
            generation: self.generation,
            assignments: self.assignments.get(member_id).cloned().unwrap_or_default(),
        }
    }
}

struct Group {
    state: Arc<Mutex<GroupState>>,
    /// The group's lag series live as long as the group.
    _lag: GaugeRegistration,
}

/// A member's view: after joining, and at each heartbeat.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The group.
    pub group_id: String,
    /// The member's id.
    pub member_id: String,
    /// Rebalance generation; a member seeing it change reads its new assignments here.
    pub generation: u64,
    /// Partitions assigned to the member.
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

/// A committed offset and the lag it leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition_id: u32,
    /// The committed offset (next to read); may be past the high watermark.
    pub committed_offset: u64,
    /// The partition's high watermark.
    pub high_watermark: u64,
    /// `high_watermark - committed_offset`, never below 0.
    pub lag: u64,
}

/// One group in the list of groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// The group.
    pub group_id: String,
    /// Topics it has committed offsets on or members subscribed to, sorted.
    pub topics: Vec<String>,
    /// Lag summed over its committed offsets.
    pub total_lag: u64,
    /// Partitions it has committed offsets on.
    pub partition_count: usize,
}

/// A group's committed offsets and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDetail {
    /// The group.
    pub group_id: String,
    /// Committed offsets of partitions that exist, by topic and partition.
    pub offsets: Vec<GroupOffset>,
    /// Member id -> assigned partitions.
    pub members: BTreeMap<String, Vec<TopicPartition>>,
}

/// How a reset picks each partition's new committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetStrategy {
    /// The log's start: offset 0 (nothing is ever deleted from a partition).
    Earliest,
    /// The high watermark: skip everything there is.
    Latest,
    /// This offset, capped at the high watermark (as Kafka's reset tool does).
    Specific(u64),
    /// The first record with a timestamp (ms since the epoch) at least this, else the high
    /// watermark.
    Timestamp(u64),
}

/// Which partitions a reset or seek moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetTarget<'a> {
    /// One topic; `None`: every partition the group has committed offsets on.
    pub topic: Option<&'a str>,
    /// One partition of `topic`; `None`: all of its partitions.
    pub partition: Option<u32>,
}

/// One partition a reset or seek moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetChange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The committed offset before; `None` when there was none.
    pub old_offset: Option<u64>,
    /// The committed offset now.
    pub new_offset: u64,
    /// For a timestamp reset: the timestamp of the record found, `None` when no record was
    /// that late (then the new offset is the high watermark).
    pub timestamp_found: Option<u64>,
}

/// Why a group operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// No such group.
    GroupNotFound,
    /// No such member in the group (it left, or its session expired).
    MemberNotFound,
    /// Creating the group would pass [`GroupLimits::max_groups`].
    TooManyGroups,
    /// The group already has [`GroupLimits::max_members`] members.
    TooManyMembers,
}

/// Whether removing a group also removes every series labelled with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    /// Yes: the group is gone for good (left, expired, deleted).
    Remove,
    /// No: the caller decides ([`ConsumerGroups::forget_topic`]).
    Keep,
}

struct Shared {
    groups: Mutex<HashMap<String, Group>>,
    topics: Arc<TopicRegistry>,
    telemetry: Telemetry,
    limits: GroupLimits,
}

/// Every consumer group, and the reaper task expiring silent members (stopped on drop).
pub struct ConsumerGroups {
    shared: Arc<Shared>,
    reaper: JoinHandle<()>,
}

impl std::fmt::Debug for ConsumerGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroups")
            .field("groups", &self.group_ids())
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for ConsumerGroups {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

impl ConsumerGroups {
    /// No groups yet; starts the reaper on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(topics: Arc<TopicRegistry>, telemetry: &Telemetry, limits: GroupLimits) -> Self {
        let shared = Arc::new(Shared {
            groups: Mutex::new(HashMap::new()),
            topics,
            telemetry: telemetry.clone(),
            limits,
        });
        let reaper = tokio::spawn(reap_silent_members(
            Arc::downgrade(&shared),
            limits.session_timeout,
        ));
        ConsumerGroups { shared, reaper }
    }

    /// Stops expiring members (at shutdown); dropping the groups stops it too.
    pub fn stop_reaper(&self) {
        self.reaper.abort();
    }

    /// The limits enforced.
    pub fn limits(&self) -> GroupLimits {
        self.shared.limits
    }

    /// Ids of the groups that exist, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.groups().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Forgets every committed offset and assignment on `topic` (the topic was deleted);
    /// members subscribed to it stay. Returns the groups that no longer exist afterwards (no
    /// members and no offsets left). Their lag series are gone with them, but their other
    /// series are not removed here: the caller, which knows why the topic went, calls
    /// `Telemetry::remove_series` for each group it wants forgotten.
    pub fn forget_topic(&self, topic: &str) -> Vec<String> {
        let mut emptied = Vec::new();
        for (group_id, state) in self.shared.snapshot() {
            let mut state = lock(&state);
            state.committed.retain(|tp, _| tp.topic != topic);
            let mut changed = false;
            for assigned in state.assignments.values_mut() {
                let before = assigned.len();
                assigned.retain(|tp| tp.topic != topic);
                changed |= assigned.len() != before;
            }
            if changed {
                // Members read their new (smaller) assignment at their next heartbeat.
                state.generation += 1;
            }
            if state.is_empty() {
                emptied.push(group_id);
            }
        }
        let mut removed: Vec<String> = emptied
            .into_iter()
            .filter(|id| {
                self.shared
                    .remove_group_if(id, Series::Keep, |s| s.is_empty().then_some(()))
                    .is_some()
            })
            .collect();
        removed.sort();
        removed
    }

    /// Every group with its topics, lag and partition count, by group id.
    pub fn summaries(&self) -> Vec<GroupSummary> {
        let mut summaries: Vec<GroupSummary> = self
            .shared
            .snapshot()
            .into_iter()
            .map(|(group_id, state)| {
                let state = lock(&state);
                let offsets = offsets_of(&state, &self.shared.topics);
                let topics: BTreeSet<String> = state
                    .committed
                    .keys()
                    .map(|tp| tp.topic.clone())
                    .chain(state.members.values().map(|m| m.topic.clone()))
                    .collect();
                GroupSummary {
                    group_id,
                    topics: topics.into_iter().collect(),
                    total_lag: offsets.iter().map(|o| o.lag).sum(),
                    partition_count: offsets.len(),
                }
            })
            .collect();
        summaries.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        summaries
    }

    /// The group's committed offsets (of partitions that exist) and members, read at once.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn detail(&self, group_id: &str) -> Result<GroupDetail, GroupError> {
        let state = self.shared.state(group_id)?;
        let state = lock(&state);
        Ok(GroupDetail {
            group_id: group_id.to_owned(),
            offsets: offsets_of(&state, &self.shared.topics),
            members: state.assignments.clone(),
        })
    }

    /// The partitions the group has committed offsets on.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn committed_partitions(&self, group_id: &str) -> Result<Vec<TopicPartition>, GroupError> {
        let state = self.shared.state(group_id)?;
        let state = lock(&state);
        Ok(state.committed.keys().cloned().collect())
    }

    /// Commits each `(partition, offset)` for a group that must exist (a reset never creates
    /// one); answers each partition's previous committed offset, if it had one.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn set_offsets(
        &self,
        group_id: &str,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<Vec<Option<u64>>, GroupError> {
        // Under the map's lock, as a commit: the group cannot be removed meanwhile.
        let groups = self.shared.groups();
        let group = groups.get(group_id).ok_or(GroupError::GroupNotFound)?;
        let mut state = lock(&group.state);
        Ok(offsets
            .iter()
            .map(|(tp, offset)| state.committed.insert(tp.clone(), *offset))
            .collect())
    }

    /// Deletes the group with its members and committed offsets, its lag series and every
    /// other series labelled with it; answers how many committed offsets went. Members
    /// still running get 404 `group_not_found` at their next call and join again.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn delete(&self, group_id: &str) -> Result<usize, GroupError> {
        self.shared
            .remove_group_if(group_id, Series::Remove, |s| Some(s.committed.len()))
            .ok_or(GroupError::GroupNotFound)
    }

    /// Whether `group_id` exists: it has members or commits.
    pub fn exists(&self, group_id: &str) -> bool {
        self.shared.groups().contains_key(group_id)
    }

    /// Adds a member subscribed to `topic` (which must exist) and rebalances the group,
    /// creating it if needed.
    ///
    /// # Errors
    /// [`GroupError::TooManyGroups`] or [`GroupError::TooManyMembers`].
    pub fn join(&self, group_id: &str, topic: &str) -> Result<Membership, GroupError> {
        let member_id = format!("{group_id}-{}", uuid::Uuid::new_v4());
        let state = {
            let mut groups = self.shared.groups();
            let group = self.shared.get_or_create(&mut groups, group_id)?;
            let mut state = lock(&group.state);
            if state.members.len() >= self.shared.limits.max_members {
                return Err(GroupError::TooManyMembers);
            }
            // Added under the map's lock, so the group cannot be removed as empty meanwhile.
            state.members.insert(
                member_id.clone(),
                Member {
                    topic: topic.to_owned(),
                    last_seen: Instant::now(),
                },
            );
            Arc::clone(&group.state)
        };
        let mut state = lock(&state);
        state.rebalance(&self.shared.topics);
        self.shared.telemetry.consumer().record_rebalance(group_id);
        Ok(state.membership(group_id, &member_id))
    }

    /// Removes a member and rebalances; a group left with no members and no commits is
    /// removed, and its lag series with it.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] or [`GroupError::MemberNotFound`].
    pub fn leave(&self, group_id: &str, member_id: &str) -> Result<(), GroupError> {
        let state = self.shared.state(group_id)?;
        let empty = {
            let mut state = lock(&state);
            if state.members.remove(member_id).is_none() {
                return Err(GroupError::MemberNotFound);
            }
            state.rebalance(&self.shared.topics);
            self.shared.telemetry.consumer().record_rebalance(group_id);
            state.is_empty()
        };
        if empty {
            self.shared.remove_if_empty(group_id);
        }
        Ok(())
    }

    /// Renews a member's session; answers its generation and assignments.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] or [`GroupError::MemberNotFound`].
    pub fn heartbeat(&self, group_id: &str, member_id: &str) -> Result<Membership, GroupError> {
        let state = self.shared.state(group_id)?;
        let mut state = lock(&state);
        let member = state
            .members
            .get_mut(member_id)
            .ok_or(GroupError::MemberNotFound)?;
        member.last_seen = Instant::now();
        Ok(state.membership(group_id, member_id))
    }

    /// Commits `offset` (the next offset to read) for a partition, creating the group if
    /// needed. The caller checks the partition exists; as in Kafka, an offset past the high
    /// watermark is kept as it is (its lag reads 0).
    ///
    /// # Errors
    /// [`GroupError::TooManyGroups`].
    pub fn commit(
        &self,
        group_id: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), GroupError> {
        let mut groups = self.shared.groups();
        let group = self.shared.get_or_create(&mut groups, group_id)?;
        lock(&group.state).committed.insert(
            TopicPartition {
                topic: topic.to_owned(),
                partition,
            },
            offset,
        );
        Ok(())
    }

    /// The committed offset of a partition, if any.
    pub fn committed(&self, group_id: &str, topic: &str, partition: u32) -> Option<u64> {
        let state = self.shared.state(group_id).ok()?;
        let state = lock(&state);
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
        let state = self.shared.state(group_id)?;
        Ok(lag_of(&state, &self.shared.topics))
    }

    /// Members and their assignments.
    ///
    /// # Errors
    /// [`GroupError::GroupNotFound`] for an unknown group.
    pub fn members(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<String, Vec<TopicPartition>>, GroupError> {
        let state = self.shared.state(group_id)?;
        let state = lock(&state);
        Ok(state.assignments.clone())
    }
}

impl Shared {
    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self, group_id: &str) -> Result<Arc<Mutex<GroupState>>, GroupError> {
        let groups = self.groups();
        let group = groups.get(group_id).ok_or(GroupError::GroupNotFound)?;
        Ok(Arc::clone(&group.state))
    }

    /// The group, created (with its lag source) if missing and the limit allows.
    fn get_or_create<'a>(
        &self,
        groups: &'a mut HashMap<String, Group>,
        group_id: &str,
    ) -> Result<&'a Group, GroupError> {
        let count = groups.len();
        match groups.entry(group_id.to_owned()) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                if count >= self.limits.max_groups {
                    return Err(GroupError::TooManyGroups);
                }
                let state = Arc::new(Mutex::new(GroupState::default()));
                let lag = self.lag_source(group_id, Arc::downgrade(&state));
                Ok(entry.insert(Group { state, _lag: lag }))
            }
        }
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

    /// Every group's id and state, taken under the map's lock and read after it.
    fn snapshot(&self) -> Vec<(String, Arc<Mutex<GroupState>>)> {
        self.groups()
            .iter()
            .map(|(id, group)| (id.clone(), Arc::clone(&group.state)))
            .collect()
    }

    /// Removes the group if it has no members and no commits (checked again under both
    /// locks: a join or commit may have come in since the caller looked), and its series.
    fn remove_if_empty(&self, group_id: &str) {
        self.remove_group_if(group_id, Series::Remove, |s| s.is_empty().then_some(()));
    }

    /// The one place a group goes away: removes it if `decide` answers `Some` for its state
    /// (under both locks), then its lag series, and with [`Series::Remove`] every series
    /// labelled with its id. Answers what `decide` did, `None` when nothing was removed.
    fn remove_group_if<T>(
        &self,
        group_id: &str,
        series: Series,
        decide: impl FnOnce(&GroupState) -> Option<T>,
    ) -> Option<T> {
        let (removed, answer) = {
            let mut groups = self.groups();
            let answer = groups
                .get(group_id)
                .and_then(|group| decide(&lock(&group.state)));
            let removed = answer.as_ref().and_then(|_| groups.remove(group_id));
            (removed, answer)
        };
        // Dropped outside the map's lock: it takes the gauge's lock.
        drop(removed);
        if answer.is_some() && series == Series::Remove {
            self.telemetry
                .remove_series(label::CONSUMER_GROUP, group_id);
        }
        answer
    }

    /// Removes every member last seen more than the session timeout before `now`, with one
    /// rebalance per group that lost any; returns how many members left.
    fn expire_silent(&self, now: Instant) -> usize {
        let timeout = self.limits.session_timeout;
        let mut expired = 0;
        for (group_id, state) in self.snapshot() {
            let empty = {
                let mut state = lock(&state);
                let before = state.members.len();
                state
                    .members
                    .retain(|_, m| now.saturating_duration_since(m.last_seen) <= timeout);
                if state.members.len() == before {
                    continue;
                }
                expired += before - state.members.len();
                state.rebalance(&self.topics);
                self.telemetry.consumer().record_rebalance(&group_id);
                state.is_empty()
            };
            if empty {
                self.remove_if_empty(&group_id);
            }
        }
        expired
    }
}

/// Expires silent members about four times per session timeout, until the groups are gone.
async fn reap_silent_members(shared: Weak<Shared>, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.expire_silent(Instant::now());
    }
}

fn lock(state: &Mutex<GroupState>) -> MutexGuard<'_, GroupState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Committed offsets of partitions that still exist, with their lag, in partition order.
fn offsets_of(state: &GroupState, topics: &TopicRegistry) -> Vec<GroupOffset> {
    state
        .committed
        .iter()
        .filter_map(|(tp, &committed_offset)| {
            let high_watermark = topics
                .get(&tp.topic)?
                .partition(tp.partition)?
                .high_watermark();
            Some(GroupOffset {
                topic: tp.topic.clone(),
                partition_id: tp.partition,
                committed_offset,
                high_watermark,
                lag: high_watermark.saturating_sub(committed_offset),
            })
        })
        .collect()
}

fn lag_of(state: &Mutex<GroupState>, topics: &TopicRegistry) -> Vec<PartitionLag> {
    let state = lock(state);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::TopicLimits;
    use streamhouse_observability::TelemetryConfig;

    const TIMEOUT: Duration = Duration::from_secs(3600);

    fn groups(max_groups: usize, max_members: usize) -> ConsumerGroups {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let limits = TopicLimits::from_config(&LiteConfig::default());
        let topics = Arc::new(TopicRegistry::new(&telemetry, 1_000, 100, limits));
        topics.create("t", 4).unwrap();
        let limits = GroupLimits {
            max_groups,
            max_members,
            session_timeout: TIMEOUT,
        };
        ConsumerGroups::new(topics, &telemetry, limits)
    }

    fn partitions(membership: &Membership) -> Vec<u32> {
        membership
            .assignments
            .iter()
            .map(|tp| tp.partition)
            .collect()
    }

    #[tokio::test]
    async fn groups_and_members_stop_at_their_limits() {
        let groups = groups(2, 2);
        groups.join("a", "t").unwrap();
        groups.commit("b", "t", 0, 0).unwrap();
        assert_eq!(
            groups.join("c", "t").unwrap_err(),
            GroupError::TooManyGroups
        );
        assert_eq!(
            groups.commit("c", "t", 0, 0).unwrap_err(),
            GroupError::TooManyGroups
        );
        assert!(!groups.exists("c"));
        groups.join("a", "t").unwrap();
        assert_eq!(
            groups.join("a", "t").unwrap_err(),
            GroupError::TooManyMembers
        );
        assert_eq!(groups.members("a").unwrap().len(), 2);
        assert_eq!(groups.group_ids(), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_silent_member_expires_and_its_partitions_move() {
        let groups = groups(10, 10);
        let first = groups.join("g", "t").unwrap();
        let second = groups.join("g", "t").unwrap();
        assert_eq!(partitions(&second).len(), 2);
        // Nobody is silent yet.
        assert_eq!(groups.shared.expire_silent(Instant::now()), 0);
        let state = groups.shared.state("g").unwrap();
        let long_ago = Instant::now().checked_sub(TIMEOUT * 2).unwrap();
        lock(&state)
            .members
            .get_mut(&first.member_id)
            .unwrap()
            .last_seen = long_ago;
        assert_eq!(groups.shared.expire_silent(Instant::now()), 1);
        let now = groups.heartbeat("g", &second.member_id).unwrap();
        assert_eq!(partitions(&now), [0, 1, 2, 3]);
        assert_eq!(now.generation, second.generation + 1);
        assert_eq!(
            groups.heartbeat("g", &first.member_id).unwrap_err(),
            GroupError::MemberNotFound
        );
    }

    #[tokio::test]
    async fn an_expired_group_without_commits_goes_away_one_with_commits_stays() {
        let groups = groups(10, 10);
        groups.join("gone", "t").unwrap();
        groups.join("kept", "t").unwrap();
        groups.commit("kept", "t", 0, 0).unwrap();
        let later = Instant::now() + TIMEOUT * 2;
        assert_eq!(groups.shared.expire_silent(later), 2);
        assert_eq!(groups.group_ids(), ["kept"]);
        assert_eq!(groups.lag("gone").unwrap_err(), GroupError::GroupNotFound);
        assert_eq!(groups.committed("kept", "t", 0), Some(0));
    }

    #[tokio::test]
    async fn forgetting_a_topic_drops_its_offsets_and_answers_the_groups_gone() {
        let groups = groups(10, 10);
        groups.shared.topics.create("u", 2).unwrap();
        groups.commit("only-t", "t", 0, 1).unwrap();
        groups.commit("both", "t", 1, 1).unwrap();
        groups.commit("both", "u", 0, 1).unwrap();
        let member = groups.join("member", "t").unwrap();
        assert_eq!(partitions(&member).len(), 4);
        assert_eq!(groups.forget_topic("t"), ["only-t"]);
        assert_eq!(groups.group_ids(), ["both", "member"]);
        assert_eq!(groups.committed_partitions("both").unwrap().len(), 1);
        // The member stays, without the topic's partitions, and sees a new generation.
        let now = groups.heartbeat("member", &member.member_id).unwrap();
        assert!(now.assignments.is_empty());
        assert_eq!(now.generation, member.generation + 1);
        assert!(groups.forget_topic("t").is_empty());
    }

    #[tokio::test]
    async fn a_deleted_group_is_gone_with_its_members_and_offsets() {
        let groups = groups(1, 10);
        let member = groups.join("g", "t").unwrap();
        groups.commit("g", "t", 0, 7).unwrap();
        groups.commit("g", "t", 1, 7).unwrap();
        assert_eq!(groups.delete("g").unwrap(), 2);
        assert_eq!(groups.delete("g").unwrap_err(), GroupError::GroupNotFound);
        assert_eq!(
            groups.heartbeat("g", &member.member_id).unwrap_err(),
            GroupError::GroupNotFound
        );
        assert_eq!(
            groups.set_offsets("g", &[]).unwrap_err(),
            GroupError::GroupNotFound
        );
        // Its place under `max_groups` is free again.
        groups.commit("h", "t", 0, 0).unwrap();
    }

    #[tokio::test]
    async fn summaries_count_committed_offsets_and_name_member_topics() {
        let groups = groups(10, 10);
        groups.shared.topics.create("u", 1).unwrap();
        groups.commit("b", "t", 2, 5).unwrap();
        groups.join("a", "u").unwrap();
        let old = groups
            .set_offsets(
                "b",
                &[(
                    TopicPartition {
                        topic: "t".into(),
                        partition: 2,
                    },
                    0,
                )],
            )
            .unwrap();
        assert_eq!(old, [Some(5)]);
        let summaries = groups.summaries();
        assert_eq!(summaries.len(), 2);
        assert_eq!(
            (
                summaries[0].group_id.as_str(),
                summaries[0].topics.as_slice()
            ),
            ("a", ["u".to_owned()].as_slice())
        );
        assert_eq!(summaries[0].partition_count, 0);
        assert_eq!(summaries[1].partition_count, 1);
        let detail = groups.detail("b").unwrap();
        assert_eq!(detail.offsets[0].partition_id, 2);
        assert_eq!(detail.offsets[0].committed_offset, 0);
    }

    #[tokio::test]
    async fn leaving_the_last_member_removes_a_group_without_commits() {
        let groups = groups(1, 10);
        let member = groups.join("g", "t").unwrap();
        assert_eq!(
            groups.leave("g", "nobody").unwrap_err(),
            GroupError::MemberNotFound
        );
        groups.leave("g", &member.member_id).unwrap();
        assert!(!groups.exists("g"));
        // Its place under `max_groups` is free again.
        groups.join("h", "t").unwrap();
    }
}
