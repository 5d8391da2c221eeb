//! The load report a worker sends at least once a second, and the stress
//! figure placement compares.

use std::time::Duration;

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
    /// See [`stress`]: the figure of the last half second.
    pub stress: f64,
    /// See [`StressSmoother`]: what admission reads. Absent from the
    /// reports of earlier workers, which are read by their `stress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress_smoothed: Option<f64>,
    /// The worker's media shards, in order (absent from earlier workers'
    /// reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardLoad>,
}

/// One media shard of a worker, as its report lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardLoad {
    pub rooms: usize,
    pub participants: usize,
    /// CPU its thread used, in cores.
    pub cpu: f64,
}

/// The CPU part of a worker's stress, in cores of one: the process's CPU
/// over its shards' cores, or the least-loaded shard's if that is more (a
/// new room goes to that shard, and must fit on its one core). With one
/// shard, the process's CPU. To the hundredth of a core below: an idle
/// shard's few thousandths are noise, and two idle workers must tie
/// (placement then takes the first id).
pub fn worker_cpu(cpu_process: f64, shard_cpu: &[f64]) -> f64 {
    let n = shard_cpu.len().max(1) as f64;
    let least = shard_cpu.iter().copied().fold(f64::INFINITY, f64::min);
    let least = if least.is_finite() { least } else { 0.0 };
    let cpu = (cpu_process / n).max(least).max(0.0);
    (cpu * 100.0).floor() / 100.0
}

impl LoadReport {
    /// The stress admission and placement compare with thresholds.
    pub fn admission_stress(&self) -> f64 {
        self.stress_smoothed.unwrap_or(self.stress)
    }
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
        name: "parloir_worker_stress_smoothed",
        help: "Stress as admission reads it: CPU smoothed over seconds, packet rate as is",
        read: |r| r.admission_stress(),
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
        name: "parloir_worker_handoffs_per_second",
        help: "Datagrams handed from the media shard the kernel chose to their owner's, per second",
        read: |r| r.rates.handoffs_per_s,
    },
    Figure {
        name: "parloir_worker_media_shards",
        help: "Media shards (forwarding threads)",
        read: |r| r.shards.len().max(1) as f64,
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
/// - the CPU its media shards use, in cores of one ([`worker_cpu`]: each
///   shard forwards on one core), and
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

/// How fast the smoothed CPU follows the measured one: a step is followed
/// to 63 % after this long. A burst of joins costs a second or two of DTLS
/// handshakes; smoothed over 5 s, 80 joins in one second lift the figure by
/// a fifth of what they cost at their peak, while a lasting rise is
/// followed within ten seconds (and placement counts the rooms it placed
/// meanwhile, `placement::PENDING_FOR`).
pub const CPU_SMOOTHING: Duration = Duration::from_secs(5);

/// The stress admission reads: [`stress`] with its CPU part smoothed
/// (exponentially, over [`CPU_SMOOTHING`]). The packet-rate part is taken
/// as is: handshakes carry no media, so it does not jump in a burst of
/// joins, and when media does arrive it is the load to follow at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct StressSmoother {
    cpu: Option<f64>,
}

impl StressSmoother {
    /// Takes the CPU measured over the last `dt`; returns the smoothed
    /// stress.
    pub fn update(&mut self, cpu: f64, dt: Duration, packets_per_s: f64, capacity_pps: f64) -> f64 {
        let alpha = 1.0 - (-dt.as_secs_f64() / CPU_SMOOTHING.as_secs_f64()).exp();
        let cpu = cpu.max(0.0);
        let smoothed = match self.cpu {
            Some(prev) => prev + alpha * (cpu - prev),
            None => cpu,
        };
        self.cpu = Some(smoothed);
        stress(smoothed, packets_per_s, capacity_pps)
    }
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
            door: None,
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
                door: None,
            })
            .collect(),
        participants: rooms,
        tracks_in: 0,
        tracks_out: 0,
        rates: Rates::default(),
        capacity_pps: 1.0,
        stress,
        stress_smoothed: None,
        shards: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_cpu_is_what_its_least_loaded_shard_can_still_take() {
        // One shard: the process's CPU.
        assert_eq!(worker_cpu(0.5, &[0.45]), 0.5);
        // One hot shard of two: the other takes new rooms.
        assert_eq!(worker_cpu(0.9, &[0.85, 0.02]), 0.45);
        // Both loaded: the least loaded one.
        assert_eq!(worker_cpu(1.2, &[0.7, 0.66]), 0.66);
        // An idle worker reads zero, whatever its threads' noise.
        assert_eq!(worker_cpu(0.0, &[0.004, 0.007]), 0.0);
        assert_eq!(worker_cpu(0.0, &[]), 0.0);
    }

    #[test]
    fn stress_is_the_scarcer_resource() {
        assert_eq!(stress(0.2, 5_000.0, 10_000.0), 0.5);
        assert_eq!(stress(0.7, 5_000.0, 10_000.0), 0.7);
        assert_eq!(stress(3.0, 0.0, 10_000.0), 1.0);
        assert_eq!(stress(0.1, 1e9, 0.0), 0.1);
    }

    #[test]
    fn a_burst_of_handshakes_is_smoothed_and_a_lasting_load_is_followed() {
        let half = Duration::from_millis(500);
        let mut s = StressSmoother::default();
        assert_eq!(s.update(0.1, half, 0.0, 1000.0), 0.1);
        // A second at a full core (80 DTLS handshakes), then back.
        let mut peak: f64 = 0.0;
        for cpu in [1.0, 1.0, 0.1, 0.1, 0.1, 0.1] {
            peak = peak.max(s.update(cpu, half, 0.0, 1000.0));
        }
        assert!(peak < 0.3, "a one-second burst peaks at {peak}");
        // A lasting 0.9 is followed: above 0.8 within 12 s.
        let mut t = 0.0;
        let mut x = 0.0;
        while x < 0.8 {
            x = s.update(0.9, half, 0.0, 1000.0);
            t += 0.5;
        }
        assert!(t <= 12.0, "{t} s to follow");
        // Packets are not smoothed: media that arrives counts at once.
        assert_eq!(s.update(0.0, half, 950.0, 1000.0), 0.95);
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
