//! The load report a worker sends at least once a second, and the stress
//! figure placement compares.

use serde::{Deserialize, Serialize};

use super::load::Rates;
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
    /// Flattened: its fields are keys of the report itself, as they were
    /// before `Rates` was a type of its own.
    #[serde(flatten)]
    pub rates: Rates,
    pub capacity_pps: f64,
    /// See [`stress`].
    pub stress: f64,
}

/// A figure of a report that a worker exports as a Prometheus gauge.
pub struct Figure {
    pub name: &'static str,
    pub help: &'static str,
    pub read: fn(&LoadReport) -> f64,
}

/// Every figure of a report exported at `/metrics`: a figure added to the
/// report is exported by a line here.
pub const FIGURES: &[Figure] = &[
    Figure {
        name: "parloir_worker_stress",
        help: "Load in 0..1: max of CPU and packet rate over capacity",
        read: |r| r.stress,
    },
    Figure {
        name: "parloir_worker_rooms",
        help: "Rooms on this worker",
        read: |r| r.rooms.len() as f64,
    },
    Figure {
        name: "parloir_worker_participants",
        help: "Participants on this worker",
        read: |r| r.participants as f64,
    },
    Figure {
        name: "parloir_worker_tracks_in",
        help: "Published tracks received",
        read: |r| r.tracks_in as f64,
    },
    Figure {
        name: "parloir_worker_tracks_out",
        help: "Track copies forwarded",
        read: |r| r.tracks_out as f64,
    },
    Figure {
        name: "parloir_worker_packets_in_per_second",
        help: "RTP packets received per second",
        read: |r| r.rates.packets_in_per_s,
    },
    Figure {
        name: "parloir_worker_packets_out_per_second",
        help: "RTP packets forwarded per second",
        read: |r| r.rates.packets_out_per_s,
    },
    Figure {
        name: "parloir_worker_bits_in_per_second",
        help: "RTP payload bits received per second",
        read: |r| r.rates.bits_in_per_s,
    },
    Figure {
        name: "parloir_worker_bits_out_per_second",
        help: "RTP payload bits forwarded per second",
        read: |r| r.rates.bits_out_per_s,
    },
    Figure {
        name: "parloir_worker_cpu_process_cores",
        help: "CPU used by the worker process, in cores",
        read: |r| r.rates.cpu_process,
    },
    Figure {
        name: "parloir_worker_cpu_host_ratio",
        help: "CPU used on the host, 0..1",
        read: |r| r.rates.cpu_host,
    },
    Figure {
        name: "parloir_worker_capacity_pps",
        help: "Configured packet-rate capacity",
        read: |r| r.capacity_pps,
    },
    Figure {
        name: "parloir_worker_draining",
        help: "1 while the worker drains",
        read: |r| f64::from(u8::from(r.state == NodeState::Draining)),
    },
];

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

/// A report for tests: an idle worker listing these rooms, one
/// participant each.
#[cfg(test)]
pub(crate) fn test_listing<S: AsRef<str>>(id: &str, rooms: &[S]) -> LoadReport {
    let mut r = test_report(id, 0.0, 0);
    r.rooms = rooms
        .iter()
        .map(|room| crate::worker::stats::RoomLoad {
            room: room.as_ref().to_string(),
            participants: 1,
        })
        .collect();
    r
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
        rates: Rates::default(),
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

    /// A report as a worker of the previous version sent it, when every
    /// figure was a field of `LoadReport` (the Redis registry and
    /// `POST /cluster/report` carry it).
    const EARLIER: &str = r#"{
        "id": "w1", "control": "http://10.0.0.1:9100", "media": "10.0.0.1:10000",
        "state": "active", "seq": 7,
        "rooms": [{"room": "r0", "participants": 2}],
        "participants": 2, "tracks_in": 2, "tracks_out": 2,
        "packets_in_per_s": 100.0, "packets_out_per_s": 100.0,
        "bits_in_per_s": 800000.0, "bits_out_per_s": 800000.0,
        "cpu_process": 0.1, "cpu_host": 0.2, "capacity_pps": 100000.0, "stress": 0.1
    }"#;

    #[test]
    fn the_wire_format_is_unchanged() {
        let earlier: serde_json::Value = serde_json::from_str(EARLIER).unwrap();
        let report: LoadReport = serde_json::from_value(earlier.clone()).unwrap();
        assert_eq!(report.rates.bits_out_per_s, 800000.0);
        assert_eq!(report.rates.cpu_host, 0.2);
        assert_eq!(serde_json::to_value(&report).unwrap(), earlier);
    }
}
