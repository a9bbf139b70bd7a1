//! One incarnation of a topic: its manifest in the store, the offset reservations the
//! manifest holds, and what orders the topic's deletion against appends and flushes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use object_store::ObjectStore;

use crate::manifest::{MAX_SKIPPED_RANGES, SkippedOffsets, TopicManifest};
use crate::partition_log::PartitionLog;

/// Whether an incarnation's manifest is in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ManifestState {
    /// Not yet: stored before the first segment.
    Pending,
    /// Stored, live.
    Stored,
    /// Rewritten as a tombstone: nothing of this incarnation is stored any more.
    Tombstoned,
}

/// One incarnation of a topic: its manifest, and what orders its deletion against appends
/// and flushes.
///
/// - Appends (and seals) run under [`Incarnation::appending`]; [`Incarnation::stop_appends`]
///   waits for them, so no record is appended, and no byte reserved, once it returns.
/// - Each flush attempt runs under [`Incarnation::flushing`];
///   [`Incarnation::wait_for_flushes`] waits for the attempt in flight, after which no
///   segment of this incarnation is ever put again (queued ones are dropped).
/// - The manifest is stored before the first segment ([`Incarnation::ensure_stored`]) and
///   never again after the tombstone ([`Incarnation::store_tombstone`]).
/// - Offsets are handed out below [`Incarnation::reserved`] only, which the manifest holds
///   ([`Incarnation::extend_reservations`]).
#[derive(Debug)]
pub struct Incarnation {
    manifest: TopicManifest,
    deleting: AtomicBool,
    /// Set once deleted; wakes what waits for it ([`Incarnation::deleted`]).
    deletion: tokio::sync::watch::Sender<bool>,
    appends: RwLock<()>,
    flushes: tokio::sync::RwLock<()>,
    stored: tokio::sync::Mutex<ManifestState>,
    /// Payload bytes appended and not yet in the store (reserved in the writer pool budget).
    memory_bytes: AtomicU64,
    /// Encoded bytes of the segments in the store.
    stored_bytes: AtomicU64,
    /// Per partition, the offset reservation of the manifest (stored, or stored with it
    /// before the first segment: offsets of a topic never stored do not outlive a restart).
    reserved: Vec<AtomicU64>,
    /// Offsets reserved ahead at a time.
    reservation: u64,
    /// A background extension of the reservations is under way.
    extending: AtomicBool,
    /// Offsets restarts skipped, kept in the manifest.
    skipped: std::sync::Mutex<Vec<SkippedOffsets>>,
}

/// Held while appending to or sealing an incarnation's partitions: it is not deleted
/// meanwhile.
#[derive(Debug)]
pub struct Appending<'a> {
    incarnation: &'a Arc<Incarnation>,
    _guard: RwLockReadGuard<'a, ()>,
}

impl Appending<'_> {
    /// The incarnation appended to.
    pub fn incarnation(&self) -> &Arc<Incarnation> {
        self.incarnation
    }
}

impl Incarnation {
    pub(super) fn new(
        manifest: TopicManifest,
        state: ManifestState,
        stored_bytes: u64,
        reservation: u64,
    ) -> Self {
        // A new topic starts with one reservation; a recovered one with what its manifest
        // says, raised to each partition's next offset by recovery.
        let initial = if state == ManifestState::Pending {
            reservation
        } else {
            0
        };
        let reserved = (0..manifest.partitions as usize)
            .map(|p| {
                let stored = manifest.reserved_offsets.get(p).copied().unwrap_or(0);
                AtomicU64::new(stored.max(initial))
            })
            .collect();
        Incarnation {
            skipped: std::sync::Mutex::new(manifest.skipped_offsets.clone()),
            reserved,
            reservation,
            extending: AtomicBool::new(false),
            manifest,
            deleting: AtomicBool::new(false),
            deletion: tokio::sync::watch::Sender::new(false),
            appends: RwLock::new(()),
            flushes: tokio::sync::RwLock::new(()),
            stored: tokio::sync::Mutex::new(state),
            memory_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(stored_bytes),
        }
    }

    /// The incarnation id: part of every segment path.
    pub fn id(&self) -> u64 {
        self.manifest.incarnation
    }

    /// The manifest of this incarnation, as stored while it is live.
    pub fn manifest(&self) -> &TopicManifest {
        &self.manifest
    }

    /// Whether the incarnation is deleted: nothing more is appended or flushed.
    pub fn is_deleted(&self) -> bool {
        *self.deletion.borrow()
    }

    /// Resolves once the incarnation is deleted.
    pub async fn deleted(&self) {
        // The sender lives in `self`, so the wait ends only by the deletion.
        let _ = self.deletion.subscribe().wait_for(|deleted| *deleted).await;
    }

    /// A guard to append under; `None` once deleted.
    pub fn appending(self: &Arc<Self>) -> Option<Appending<'_>> {
        let guard = self.appends.read().unwrap_or_else(PoisonError::into_inner);
        (!self.is_deleted()).then_some(Appending {
            incarnation: self,
            _guard: guard,
        })
    }

    /// Counts `bytes` appended (payload, as reserved in the budget).
    pub fn appended(&self, bytes: usize) {
        self.memory_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A guard to put a segment under; `None` once deleted (the segment is dropped).
    pub async fn flushing(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        let guard = self.flushes.read().await;
        (!self.is_deleted()).then_some(guard)
    }

    /// Offsets of `partition` below this are reserved in the manifest: only they may be
    /// handed out.
    pub fn reserved(&self, partition: u32) -> u64 {
        self.reserved
            .get(partition as usize)
            .map_or(0, |r| r.load(Ordering::Acquire))
    }

    /// Raises `partition`'s reservation to at least `offset` (recovery: the partition's next
    /// offset, everything below is spent).
    pub fn reserve_through(&self, partition: u32, offset: u64) {
        if let Some(reserved) = self.reserved.get(partition as usize) {
            reserved.fetch_max(offset, Ordering::AcqRel);
        }
    }

    /// Whether `partition`, next handing out `next`, has less than half a reservation left:
    /// time to extend in the background, before a produce has to wait for it.
    pub fn reservation_low(&self, partition: u32, next: u64) -> bool {
        self.reserved(partition).saturating_sub(next) < self.reservation / 2
    }

    /// Claims the background extension; `false` if one is under way.
    pub fn claim_extension(&self) -> bool {
        !self.extending.swap(true, Ordering::AcqRel)
    }

    /// Gives back the claim of [`Self::claim_extension`].
    pub fn end_extension(&self) {
        self.extending.store(false, Ordering::Release);
    }

    /// Whether a restart already skipped `first..=last` of `partition`.
    pub fn was_skipped(&self, partition: u32, first: u64, last: u64) -> bool {
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|s| s.partition == partition && s.first <= first && last <= s.last)
    }

    /// Records that a restart skipped `first..=last` of `partition` (stored with the next
    /// manifest write).
    pub fn skipped(&self, partition: u32, first: u64, last: u64) {
        let mut skipped = self.skipped.lock().unwrap_or_else(PoisonError::into_inner);
        skipped.push(SkippedOffsets {
            partition,
            first,
            last,
        });
        let excess = skipped.len().saturating_sub(MAX_SKIPPED_RANGES);
        skipped.drain(..excess);
    }

    /// The manifest as stored now: with the reservations.
    fn current_manifest(&self) -> TopicManifest {
        self.manifest_reserving(
            self.reserved
                .iter()
                .map(|r| r.load(Ordering::Acquire))
                .collect(),
        )
    }

    /// The manifest with `reserved` offsets and the skipped ranges.
    fn manifest_reserving(&self, reserved: Vec<u64>) -> TopicManifest {
        TopicManifest {
            reserved_offsets: reserved,
            skipped_offsets: self
                .skipped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ..self.manifest.clone()
        }
    }

    /// Rewrites the manifest with a reservation of [`crate::config::LiteConfig::offset_reservation`] more
    /// offsets past the high watermark for every partition of `logs` short of half of one,
    /// and at least `needed` past it for `partition`; then hands them out. Concurrent calls
    /// share one put. `Ok(false)` once the topic is deleted.
    ///
    /// # Errors
    /// The store's: nothing more is handed out.
    pub async fn extend_reservations(
        &self,
        store: &dyn ObjectStore,
        logs: &[Arc<PartitionLog>],
        partition: u32,
        needed: u64,
    ) -> Result<bool, object_store::Error> {
        let mut state = self.stored.lock().await;
        if *state == ManifestState::Tombstoned {
            return Ok(false);
        }
        let targets: Vec<u64> = logs
            .iter()
            .zip(&self.reserved)
            .map(|(log, reserved)| {
                let next = log.high_watermark();
                let have = reserved.load(Ordering::Acquire);
                let want = if log.partition() == partition {
                    needed.max(self.reservation / 2)
                } else {
                    self.reservation / 2
                };
                if have.saturating_sub(next) >= want {
                    have
                } else {
                    have.max(next + want.max(self.reservation))
                }
            })
            .collect();
        let unchanged = targets
            .iter()
            .zip(&self.reserved)
            .all(|(t, r)| *t == r.load(Ordering::Acquire));
        if unchanged && *state == ManifestState::Stored {
            return Ok(true);
        }
        self.manifest_reserving(targets.clone())
            .store(store)
            .await?;
        *state = ManifestState::Stored;
        for (reserved, target) in self.reserved.iter().zip(targets) {
            reserved.fetch_max(target, Ordering::AcqRel);
        }
        Ok(true)
    }

    /// Rewrites a stored manifest with each partition's reservation cut back to its high
    /// watermark (at a clean stop, everything flushed and appends over), so the next start
    /// continues each partition without a gap.
    ///
    /// # Errors
    /// The store's: the next start skips what stays reserved.
    pub async fn settle_reservations(
        &self,
        store: &dyn ObjectStore,
        logs: &[Arc<PartitionLog>],
    ) -> Result<(), object_store::Error> {
        let state = self.stored.lock().await;
        if *state != ManifestState::Stored {
            return Ok(());
        }
        // Cut under the append lock: an append racing the stop either lands below the cut
        // or finds no offsets left and waits for an extension (behind this put).
        let settled: Vec<u64> = {
            let _appends = self.appends.write().unwrap_or_else(PoisonError::into_inner);
            logs.iter()
                .zip(&self.reserved)
                .map(|(log, reserved)| {
                    let next = log.high_watermark();
                    reserved.store(next, Ordering::Release);
                    next
                })
                .collect()
        };
        self.manifest_reserving(settled).store(store).await
    }

    /// Stores the manifest unless it is already stored; `Ok(false)` once the tombstone is
    /// (the segment must be dropped). Called under [`Self::flushing`] before each put.
    ///
    /// # Errors
    /// The store's.
    pub async fn ensure_stored(
        &self,
        store: &dyn ObjectStore,
    ) -> Result<bool, object_store::Error> {
        let mut state = self.stored.lock().await;
        match *state {
            ManifestState::Stored => Ok(true),
            ManifestState::Tombstoned => Ok(false),
            ManifestState::Pending => {
                self.current_manifest().store(store).await?;
                *state = ManifestState::Stored;
                Ok(true)
            }
        }
    }

    /// Stops counting `bytes` in memory: they belong to a fenced partition and left the
    /// unflushed budget ([`Self::unfenced`] counts them again).
    pub fn fenced(&self, bytes: usize) {
        self.memory_bytes.fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a fenced partition's `bytes` in memory again.
    pub fn unfenced(&self, bytes: usize) {
        self.appended(bytes);
    }

    /// Counts a segment stored: `payload` bytes left memory, `encoded` bytes are stored.
    pub fn flushed(&self, payload: usize, encoded: usize) {
        self.memory_bytes
            .fetch_sub(payload as u64, Ordering::Relaxed);
        self.stored_bytes
            .fetch_add(encoded as u64, Ordering::Relaxed);
    }

    /// Payload bytes in memory plus encoded bytes in the store: what the topic holds.
    pub fn size_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed) + self.stored_bytes.load(Ordering::Relaxed)
    }

    /// Claims the deletion of this incarnation; `false` if another request has.
    pub fn claim_delete(&self) -> bool {
        !self.deleting.swap(true, Ordering::AcqRel)
    }

    /// Stores the tombstone (step one of a delete, after [`Self::claim_delete`]). On error
    /// the claim is given back and the live manifest is stored again before the next
    /// segment, in case the failed put took effect.
    ///
    /// # Errors
    /// The store's.
    pub async fn store_tombstone(
        &self,
        store: &dyn ObjectStore,
    ) -> Result<(), object_store::Error> {
        let mut state = self.stored.lock().await;
        match self.current_manifest().tombstone().store(store).await {
            Ok(()) => {
                *state = ManifestState::Tombstoned;
                Ok(())
            }
            Err(error) => {
                *state = ManifestState::Pending;
                self.deleting.store(false, Ordering::Release);
                Err(error)
            }
        }
    }

    /// Marks the incarnation deleted once the appends in progress are done: no record is
    /// appended after this returns.
    pub fn stop_appends(&self) {
        let _all = self.appends.write().unwrap_or_else(PoisonError::into_inner);
        self.deletion.send_replace(true);
    }

    /// Holds off every flush attempt while the guard lives (tests pin an agent with it).
    #[cfg(test)]
    pub(crate) async fn block_flushes(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.flushes.write().await
    }

    /// Waits for the flush attempt in progress (after [`Self::stop_appends`]); returns the
    /// payload bytes that will never be flushed, for the caller to release from the budget.
    pub async fn wait_for_flushes(&self) -> u64 {
        let _all = self.flushes.write().await;
        self.memory_bytes.swap(0, Ordering::AcqRel)
    }
}
