//! The load report a worker sends at least once a second, and the stress
//! figure placement compares.

use serde::{Deserialize, Serialize};

use crate::worker::stats::RoomLoad;

/// Whether a worker takes new rooms.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Active,
    /// Takes no new room; its calls go on until they end or the drain
    /// deadline moves them.
    Draining,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    /// Node id (`--id`, or the host name and media port).
    pub id: String,
    /// Control and metrics URL of the worker (`http://IP:PORT`).
    pub control: String,
    /// Address peers send media to.
    pub media: String,
    pub state: NodeState,
    /// Increases with every report of this process.
    pub seq: u64,
    pub rooms: Vec<RoomLoad>,
    pub participants: usize,
    pub tracks_in: usize,
    pub tracks_out: usize,
    pub packets_in_per_s: f64,
    pub packets_out_per_s: f64,
    pub bits_in_per_s: f64,
    pub bits_out_per_s: f64,
    /// CPU used by the worker process, in cores.
    pub cpu_process: f64,
    /// CPU used on the whole host, 0..1.
    pub cpu_host: f64,
    pub capacity_pps: f64,
    /// See [`stress`].
    pub stress: f64,
}

/// Stress of a worker in 0..1: the larger of
/// - the CPU its media thread uses (the process's CPU time in cores, since
///   all forwarding runs on one thread, one core is the limit), and
/// - its packet rate, in plus out, over the configured capacity.
///
/// The same idea as Jitsi's stress level: whichever resource runs out first.
pub fn stress(cpu_process: f64, packets_per_s: f64, capacity_pps: f64) -> f64 {
    let cpu = cpu_process.max(0.0);
    let pps = if capacity_pps > 0.0 {
        packets_per_s.max(0.0) / capacity_pps
    } else {
        0.0
    };
    cpu.max(pps).clamp(0.0, 1.0)
}

/// A report for tests: an active worker with `rooms` rooms of one
/// participant each and the given stress.
#[cfg(test)]
pub(crate) fn test_report(id: &str, stress: f64, rooms: usize) -> LoadReport {
    LoadReport {
        id: id.into(),
        control: "http://127.0.0.1:1".into(),
        media: "127.0.0.1:2".into(),
        state: NodeState::Active,
        seq: 1,
        rooms: (0..rooms)
            .map(|i| RoomLoad {
                room: format!("r{i}"),
                participants: 1,
            })
            .collect(),
        participants: rooms,
        tracks_in: 0,
        tracks_out: 0,
        packets_in_per_s: 0.0,
        packets_out_per_s: 0.0,
        bits_in_per_s: 0.0,
        bits_out_per_s: 0.0,
        cpu_process: 0.0,
        cpu_host: 0.0,
        capacity_pps: 1.0,
        stress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_is_the_scarcer_resource() {
        assert_eq!(stress(0.2, 5_000.0, 10_000.0), 0.5);
        assert_eq!(stress(0.7, 5_000.0, 10_000.0), 0.7);
        assert_eq!(stress(3.0, 0.0, 10_000.0), 1.0);
        assert_eq!(stress(0.1, 1e9, 0.0), 0.1);
    }
}
