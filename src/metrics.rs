//! Prometheus figures of a process, at `/metrics`, every name prefixed
//! `parloir_` and labelled with the node id.

use prometheus::{Encoder, Gauge, IntCounter, Opts, Registry, TextEncoder};

use crate::cluster::report::{LoadReport, NodeState};

/// Reads one figure of a report.
type Field = fn(&LoadReport) -> f64;

pub struct Metrics {
    registry: Registry,
    worker: Vec<(Gauge, Field)>,
    pub signal_nodes: Gauge,
    pub signal_sessions: Gauge,
    pub rooms_placed: IntCounter,
    pub rooms_refused: IntCounter,
}

const WORKER_GAUGES: &[(&str, &str, Field)] = &[
    (
        "parloir_worker_stress",
        "Load in 0..1: max of CPU and packet rate over capacity",
        |r| r.stress,
    ),
    ("parloir_worker_rooms", "Rooms on this worker", |r| {
        r.rooms.len() as f64
    }),
    (
        "parloir_worker_participants",
        "Participants on this worker",
        |r| r.participants as f64,
    ),
    (
        "parloir_worker_tracks_in",
        "Published tracks received",
        |r| r.tracks_in as f64,
    ),
    ("parloir_worker_tracks_out", "Track copies forwarded", |r| {
        r.tracks_out as f64
    }),
    (
        "parloir_worker_packets_in_per_second",
        "RTP packets received per second",
        |r| r.packets_in_per_s,
    ),
    (
        "parloir_worker_packets_out_per_second",
        "RTP packets forwarded per second",
        |r| r.packets_out_per_s,
    ),
    (
        "parloir_worker_bits_in_per_second",
        "RTP payload bits received per second",
        |r| r.bits_in_per_s,
    ),
    (
        "parloir_worker_bits_out_per_second",
        "RTP payload bits forwarded per second",
        |r| r.bits_out_per_s,
    ),
    (
        "parloir_worker_cpu_process_cores",
        "CPU used by the worker process, in cores",
        |r| r.cpu_process,
    ),
    (
        "parloir_worker_cpu_host_ratio",
        "CPU used on the host, 0..1",
        |r| r.cpu_host,
    ),
    (
        "parloir_worker_capacity_pps",
        "Configured packet-rate capacity",
        |r| r.capacity_pps,
    ),
    (
        "parloir_worker_draining",
        "1 while the worker drains",
        |r| f64::from(u8::from(r.state == NodeState::Draining)),
    ),
];

/// Which figures a process exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    Signal,
    /// `parloir serve`: both.
    Both,
}

impl Metrics {
    pub fn new(node: &str, role: Role) -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("node", node);
        // Figures of a role the process does not have are created but not
        // registered: never exported as misleading zeros.
        let gauge = |name: &str, help: &str, export: bool| {
            let g = Gauge::with_opts(opts(name, help))
                .unwrap_or_else(|_| unreachable!("valid metric {name}"));
            if export {
                let _ = registry.register(Box::new(g.clone()));
            }
            g
        };
        let signal = role != Role::Worker;
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(opts(name, help))
                .unwrap_or_else(|_| unreachable!("valid metric {name}"));
            if signal {
                let _ = registry.register(Box::new(c.clone()));
            }
            c
        };
        let worker = WORKER_GAUGES
            .iter()
            .map(|(name, help, f)| (gauge(name, help, role != Role::Signal), *f))
            .collect();
        Metrics {
            worker,
            signal_nodes: gauge(
                "parloir_signal_nodes",
                "Live workers seen by this signal server",
                signal,
            ),
            signal_sessions: gauge(
                "parloir_signal_sessions",
                "Open signalling sessions",
                signal,
            ),
            rooms_placed: counter(
                "parloir_signal_rooms_placed_total",
                "Rooms placed on a worker",
            ),
            rooms_refused: counter(
                "parloir_signal_rooms_refused_total",
                "New rooms refused for lack of capacity",
            ),
            registry,
        }
    }

    pub fn set_worker(&self, r: &LoadReport) {
        for (g, f) in &self.worker {
            g.set(f(r));
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_node_label() {
        let m = Metrics::new("w1", Role::Both);
        m.rooms_placed.inc();
        let text = m.render();
        assert!(text.contains("parloir_signal_rooms_placed_total{node=\"w1\"} 1"));
        assert!(text.contains("parloir_worker_stress{node=\"w1\"} 0"));
    }

    #[test]
    fn each_role_exports_its_own() {
        let w = Metrics::new("w", Role::Worker).render();
        assert!(w.contains("parloir_worker_stress") && !w.contains("parloir_signal"));
        let s = Metrics::new("s", Role::Signal).render();
        assert!(s.contains("parloir_signal_nodes") && !s.contains("parloir_worker"));
    }
}
