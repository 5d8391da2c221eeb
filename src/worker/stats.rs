//! Load figures of a worker, as its media shards count them.
//!
//! Each shard's thread counts into plain integers ([`Counters`], no atomics
//! per packet) and publishes a [`Snapshot`] into its [`Shared`] once per
//! loop turn at most every 100 ms; readers (the load reporter, `/readyz`,
//! the drain, placement inside the worker) see those snapshots, one shard
//! at a time or summed by [`WorkerStats`]. One lock for the whole snapshot is fine: it is taken
//! ten times a second, never on the packet path, and readers get figures of
//! one instant instead of fields published at different times.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One room as the worker sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomLoad {
    pub room: String,
    pub participants: usize,
    /// What its moderators shut it with, kept by the cluster beside its
    /// placement so that a room made anew after a failover keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<super::DoorSettings>,
}

/// Cumulative counts since the worker started, kept by the media thread
/// alone; the load reporter takes rates from two of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub packets_in: u64,
    pub packets_out: u64,
    /// RTP payload bytes.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub datagrams_dropped: u64,
    /// Datagrams the kernel gave another shard's socket, handed to this
    /// shard, their owner's.
    pub handoffs_in: u64,
}

/// The media thread's figures at one instant.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub counters: Counters,
    pub rooms: Vec<RoomLoad>,
    /// Participants on this worker.
    pub peers: usize,
    /// Published tracks received.
    pub tracks_in: usize,
    /// Track copies forwarded.
    pub tracks_out: usize,
}

/// What other threads may read of one shard.
#[derive(Debug, Default)]
pub struct Shared {
    snapshot: Mutex<Snapshot>,
    /// Set by the media thread once it drains.
    pub draining: AtomicBool,
    /// The shard's thread id (0 until it runs): its CPU time is read from
    /// `/proc/self/task/TID/schedstat`.
    pub tid: AtomicI32,
    /// Unix time in ms of the media loop's last turn: `/readyz` is false
    /// when it is old, because then calls are frozen even if HTTP answers.
    heartbeat_ms: AtomicU64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.datagrams_dropped += o.datagrams_dropped;
        self.handoffs_in += o.handoffs_in;
    }
}

impl Shared {
    /// Replaces the figures, and marks the media loop alive.
    pub fn publish(&self, snapshot: Snapshot) {
        *self.lock() = snapshot;
        self.heartbeat_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// The figures last published.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// Participants on this worker, without copying the room list.
    pub fn peers(&self) -> usize {
        self.lock().peers
    }

    /// The media loop turned within the last `max_age_ms`.
    pub fn alive(&self, max_age_ms: u64) -> bool {
        unix_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)) <= max_age_ms
    }

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The figures of every shard of a worker.
#[derive(Debug)]
pub struct WorkerStats {
    shards: Vec<Arc<Shared>>,
}

impl Default for WorkerStats {
    /// One shard's.
    fn default() -> Self {
        WorkerStats::new(vec![Arc::default()])
    }
}

impl WorkerStats {
    pub fn new(shards: Vec<Arc<Shared>>) -> Self {
        WorkerStats { shards }
    }

    /// The shards, in order.
    pub fn shards(&self) -> &[Arc<Shared>] {
        &self.shards
    }

    /// The worker's figures: every shard's summed, the rooms of all.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = Snapshot::default();
        for shard in &self.shards {
            let s = shard.lock();
            sum.counters.add(&s.counters);
            sum.rooms.extend(s.rooms.iter().cloned());
            sum.peers += s.peers;
            sum.tracks_in += s.tracks_in;
            sum.tracks_out += s.tracks_out;
        }
        sum
    }

    /// Participants on this worker, without copying the room lists.
    pub fn peers(&self) -> usize {
        self.shards.iter().map(|s| s.peers()).sum()
    }

    /// CPU seconds each shard's thread has run so far (0 for one that has
    /// not started): rates are taken between two readings.
    pub fn shard_cpu_seconds(&self) -> Vec<f64> {
        self.shards
            .iter()
            .map(|s| super::cores::thread_cpu_seconds(s.tid.load(Ordering::Relaxed)))
            .collect()
    }

    /// Every shard turned within the last `max_age_ms`: one frozen shard
    /// freezes its calls.
    pub fn alive(&self, max_age_ms: u64) -> bool {
        self.shards.iter().all(|s| s.alive(max_age_ms))
    }

    /// Every shard drains (a drain reaches them all).
    pub fn is_draining(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.draining.load(Ordering::Relaxed))
    }

    /// Publishes into the first shard: tests of what reads the figures.
    #[cfg(test)]
    pub fn publish(&self, snapshot: Snapshot) {
        self.shards[0].publish(snapshot);
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch: what expiries in credentials and grants
/// are written in.
pub(crate) fn unix_secs() -> u64 {
    unix_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_the_last_published_snapshot() {
        let shared = Shared::default();
        assert!(!shared.alive(60_000), "never published: not alive");
        let snapshot = Snapshot {
            counters: Counters {
                packets_in: 3,
                ..Counters::default()
            },
            rooms: vec![RoomLoad {
                room: "r".into(),
                participants: 2,
                door: None,
            }],
            peers: 2,
            tracks_in: 1,
            tracks_out: 2,
        };
        shared.publish(snapshot.clone());
        assert_eq!(shared.snapshot(), snapshot);
        assert_eq!(shared.peers(), 2);
        assert!(shared.alive(60_000));
    }

    #[test]
    fn a_worker_sums_its_shards() {
        let shards: Vec<Arc<Shared>> = vec![Arc::default(), Arc::default()];
        let stats = WorkerStats::new(shards.clone());
        let shard = |room: &str, n: usize, packets: u64| Snapshot {
            counters: Counters {
                packets_in: packets,
                handoffs_in: 1,
                ..Counters::default()
            },
            rooms: vec![RoomLoad {
                room: room.into(),
                participants: n,
                door: None,
            }],
            peers: n,
            tracks_in: n,
            tracks_out: n * (n - 1),
        };
        shards[0].publish(shard("a", 2, 10));
        assert!(!stats.alive(60_000), "a shard that never ran is not alive");
        shards[1].publish(shard("b", 3, 5));
        assert!(stats.alive(60_000));
        let sum = stats.snapshot();
        assert_eq!((sum.peers, sum.tracks_in, sum.tracks_out), (5, 5, 8));
        assert_eq!((sum.counters.packets_in, sum.counters.handoffs_in), (15, 2));
        assert_eq!(sum.rooms.len(), 2);
        assert_eq!(stats.peers(), 5);
        shards[0].draining.store(true, Ordering::Relaxed);
        assert!(!stats.is_draining(), "a drain reaches every shard");
        shards[1].draining.store(true, Ordering::Relaxed);
        assert!(stats.is_draining());
    }
}
