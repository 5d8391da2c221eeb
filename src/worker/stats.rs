//! Load figures of a worker, as its media thread counts them.
//!
//! The media thread counts into plain integers ([`Counters`], no atomics per
//! packet) and publishes a [`Snapshot`] into [`Shared`] once per loop turn
//! at most every 100 ms; readers (the load reporter, `/readyz`, the drain)
//! see that snapshot. One lock for the whole snapshot is fine: it is taken
//! ten times a second, never on the packet path, and readers get figures of
//! one instant instead of fields published at different times.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
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

/// What other threads may read.
#[derive(Debug, Default)]
pub struct Shared {
    snapshot: Mutex<Snapshot>,
    /// Set by the media thread once it drains.
    pub draining: AtomicBool,
    /// Unix time in ms of the media loop's last turn: `/readyz` is false
    /// when it is old, because then calls are frozen even if HTTP answers.
    heartbeat_ms: AtomicU64,
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
}
