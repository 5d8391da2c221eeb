//! Load figures of a worker.
//!
//! The media thread counts into plain integers (no atomics per packet) and
//! publishes a snapshot into `Shared` once per loop turn at most every
//! 100 ms; readers (`/metrics`, `/readyz`) see that snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One room as the worker sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomLoad {
    pub room: String,
    pub participants: usize,
}

/// Counted on the media thread, lock-free because single-owner.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub datagrams_dropped: u64,
}

/// What other threads may read.
#[derive(Debug, Default)]
pub struct Shared {
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub datagrams_dropped: AtomicU64,
    pub rooms: Mutex<Vec<RoomLoad>>,
    pub peers: AtomicU64,
    pub tracks_in: AtomicU64,
    pub tracks_out: AtomicU64,
    pub draining: AtomicBool,
    /// Unix time in ms of the media loop's last turn: `/readyz` is false
    /// when it is old, because then calls are frozen even if HTTP answers.
    pub heartbeat_ms: AtomicU64,
}

impl Shared {
    pub fn publish(
        &self,
        c: &Counters,
        rooms: Vec<RoomLoad>,
        peers: usize,
        tracks_in: usize,
        tracks_out: usize,
    ) {
        self.packets_in.store(c.packets_in, Ordering::Relaxed);
        self.packets_out.store(c.packets_out, Ordering::Relaxed);
        self.bytes_in.store(c.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(c.bytes_out, Ordering::Relaxed);
        self.datagrams_dropped
            .store(c.datagrams_dropped, Ordering::Relaxed);
        *self.rooms.lock().unwrap_or_else(|p| p.into_inner()) = rooms;
        self.peers.store(peers as u64, Ordering::Relaxed);
        self.tracks_in.store(tracks_in as u64, Ordering::Relaxed);
        self.tracks_out.store(tracks_out as u64, Ordering::Relaxed);
        self.heartbeat_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// The media loop turned within the last `max_age_ms`.
    pub fn alive(&self, max_age_ms: u64) -> bool {
        unix_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)) <= max_age_ms
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
