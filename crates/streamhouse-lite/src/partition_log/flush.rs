//! The writer pool's side of a partition log: scheduling its flushes one at a time, group
//! commit for produces waiting on the store, the fence after a permanent store error, and
//! what waiting produces watch.

use std::sync::Arc;

use super::PartitionLog;
use crate::segment::SealedSegment;

/// How far a partition is in the store, for produces waiting on it.
#[derive(Debug, Clone, Default)]
pub(super) struct Durability {
    /// Every offset below is stored (or was lost before a restart).
    pub(super) stored_below: u64,
    /// Set while the partition is fenced.
    pub(super) failed: Option<Arc<str>>,
}

/// What a partition holds in memory, not yet stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Payload bytes: sealed segments' and the active segment's.
    pub bytes: usize,
    /// Sealed segments.
    pub segments: usize,
}

impl super::LogState {
    fn held(&self) -> Held {
        Held {
            bytes: self.unflushed_bytes + self.active_bytes,
            segments: self.unflushed.len(),
        }
    }
}

/// What an agent flushes next for a partition it holds (see [`PartitionLog::next_to_flush`]).
#[derive(Debug)]
pub enum NextFlush {
    /// The oldest sealed segment not yet stored.
    Segment(Arc<SealedSegment>),
    /// None is sealed, but produces wait for the active segment: seal it, then ask again.
    SealWanted,
    /// Nothing to flush: the partition is no longer scheduled.
    Idle,
}

impl PartitionLog {
    /// Asks for the active segment to be stored soon (a produce waits for it). Returns
    /// whether the caller should seal it now: no flush of this partition is in flight (an
    /// agent flushing one seals it when done, for every waiter at once).
    pub fn want_flush(&self) -> bool {
        let mut state = self.state();
        if state.active.is_empty() {
            return false;
        }
        state.flush_wanted = true;
        !state.scheduled
    }

    /// Marks the partition scheduled for the writer pool; returns whether it was not (the
    /// caller then queues a job for it). A fenced partition stays with its probe.
    pub fn schedule(&self) -> bool {
        let mut state = self.state();
        let idle = !state.scheduled && state.failed.is_none();
        state.scheduled |= idle;
        idle
    }

    /// What the agent holding this partition flushes next; [`NextFlush::Idle`] unschedules
    /// it under the same lock a seal takes, so no sealed segment is left without a job.
    pub fn next_to_flush(&self) -> NextFlush {
        let mut state = self.state();
        if let Some(front) = state.unflushed.front() {
            return NextFlush::Segment(Arc::clone(front));
        }
        if state.flush_wanted && !state.active.is_empty() {
            return NextFlush::SealWanted;
        }
        state.scheduled = false;
        NextFlush::Idle
    }

    /// Moves the next offset up to `offset` (at start-up, before any append: past offsets a
    /// crash may have handed out without storing them). What lies between is a gap reads
    /// step over.
    pub fn skip_to(&self, offset: u64) {
        let mut state = self.state();
        state.next_offset = state.next_offset.max(offset);
        let next = state.next_offset;
        drop(state);
        self.durable
            .send_modify(|d| d.stored_below = d.stored_below.max(next));
    }

    /// Unschedules the partition unless a sealed segment waits (a seal raced the caller);
    /// returns whether it did.
    pub fn unschedule(&self) -> bool {
        let mut state = self.state();
        if state.unflushed.is_empty() {
            state.scheduled = false;
        }
        !state.scheduled
    }

    /// Drops every sealed segment (its topic is deleted, so none is stored); returns how
    /// many.
    pub fn drop_sealed(&self) -> usize {
        let mut state = self.state();
        state.unflushed_bytes = 0;
        std::mem::take(&mut state.unflushed).len()
    }

    /// Fences the partition after a permanent store error: appends are refused and waiting
    /// produces fail. Returns what it holds, which leaves the writer pool's budget and
    /// segment slots. It stays scheduled: its agent probes the store again later.
    pub fn fail(&self, reason: &str) -> Held {
        let reason: Arc<str> = reason.into();
        let mut state = self.state();
        state.failed = Some(Arc::clone(&reason));
        let held = state.held();
        drop(state);
        self.durable.send_modify(|d| d.failed = Some(reason));
        held
    }

    /// Lifts the fence once the store takes a put again; returns what it holds, which
    /// rejoins the writer pool's budget and segment slots.
    pub fn recover(&self) -> Held {
        let mut state = self.state();
        state.failed = None;
        let held = state.held();
        drop(state);
        self.durable.send_modify(|d| d.failed = None);
        held
    }

    /// Why the partition is fenced, if it is.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.state().failed.clone()
    }

    /// What the partition holds in memory, not yet stored.
    pub fn held(&self) -> Held {
        self.state().held()
    }

    /// Waits until every offset up to `last` is in the store.
    ///
    /// # Errors
    /// The partition is fenced (the reason).
    pub async fn stored(&self, last: u64) -> Result<(), Arc<str>> {
        let mut durable = self.durable.subscribe();
        let seen = durable
            .wait_for(|d| d.stored_below > last || d.failed.is_some())
            .await
            .map_err(|_| Arc::<str>::from("the partition's log is gone"))?;
        match &seen.failed {
            Some(reason) if seen.stored_below <= last => Err(Arc::clone(reason)),
            _ => Ok(()),
        }
    }
}
