//! Measuring a worker's load: packet and bit rates from the media thread's
//! counters, CPU from `/proc`.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::worker::stats::Counters;

/// The media thread's counters and the CPU clocks, read at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub counters: Counters,
    /// CPU seconds used by this process.
    pub cpu_process: f64,
    /// Busy and total CPU seconds of the host (all cores).
    pub host_busy: f64,
    pub host_total: f64,
}

impl Sample {
    /// `counters` now, with this process's and the host's CPU clocks.
    pub fn take(counters: Counters) -> Self {
        let (host_busy, host_total) = host_cpu_seconds();
        Sample {
            at: Instant::now(),
            counters,
            cpu_process: process_cpu_seconds(),
            host_busy,
            host_total,
        }
    }
}

/// Rates between two samples: what a load report carries, under these
/// names (the report and `GET /api/nodes` flatten it into their JSON).
/// Missing fields read as zero, so a newer reader takes an older sender's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rates {
    pub packets_in_per_s: f64,
    pub packets_out_per_s: f64,
    /// RTP payload bits.
    pub bits_in_per_s: f64,
    pub bits_out_per_s: f64,
    /// CPU used by the worker process, in cores.
    pub cpu_process: f64,
    /// Share of the host's CPU in use, 0..1.
    pub cpu_host: f64,
    /// Datagrams the kernel gave one media shard's socket and that shard
    /// handed to their owner (`worker::shard`). Left out while zero (one
    /// shard, or none handed): the report of a worker without shards reads
    /// as before.
    #[serde(skip_serializing_if = "is_zero")]
    pub handoffs_per_s: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Rates {
    /// From `a` to the later `b`; zero if no time passed.
    pub fn between(a: &Sample, b: &Sample) -> Rates {
        let dt = b.at.saturating_duration_since(a.at).as_secs_f64();
        if dt <= 0.0 {
            return Rates::default();
        }
        let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        let (ca, cb) = (&a.counters, &b.counters);
        let host_total = b.host_total - a.host_total;
        Rates {
            packets_in_per_s: per_s(ca.packets_in, cb.packets_in),
            packets_out_per_s: per_s(ca.packets_out, cb.packets_out),
            bits_in_per_s: 8.0 * per_s(ca.bytes_in, cb.bytes_in),
            bits_out_per_s: 8.0 * per_s(ca.bytes_out, cb.bytes_out),
            cpu_process: ((b.cpu_process - a.cpu_process) / dt).max(0.0),
            cpu_host: if host_total > 0.0 {
                ((b.host_busy - a.host_busy) / host_total).clamp(0.0, 1.0)
            } else {
                0.0
            },
            handoffs_per_s: per_s(ca.handoffs_in, cb.handoffs_in),
        }
    }

    /// Packets per second, in plus out.
    pub fn packets_per_s(&self) -> f64 {
        self.packets_in_per_s + self.packets_out_per_s
    }
}

/// CPU seconds of this process (user + system), from `/proc/self/stat`.
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// CPU seconds (user + system) of process `pid` (a number, or "self").
pub fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; fields resume after ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// (busy, total) CPU seconds of the host, from the first line of `/proc/stat`.
pub fn host_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return (0.0, 0.0);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    // idle and iowait are the 4th and 5th values.
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    ((total - idle) / clock_ticks(), total / clock_ticks())
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux architecture we run on.
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_over_two_seconds() {
        let t = Instant::now();
        let a = Sample {
            at: t,
            counters: Counters {
                packets_in: 100,
                bytes_in: 1000,
                ..Counters::default()
            },
            cpu_process: 1.0,
            host_busy: 10.0,
            host_total: 100.0,
        };
        let b = Sample {
            at: t + Duration::from_secs(2),
            counters: Counters {
                packets_in: 300,
                packets_out: 600,
                bytes_in: 3000,
                ..Counters::default()
            },
            cpu_process: 1.5,
            host_busy: 13.0,
            host_total: 104.0,
        };
        let r = Rates::between(&a, &b);
        assert_eq!(r.packets_in_per_s, 100.0);
        assert_eq!(r.packets_out_per_s, 300.0);
        assert_eq!(r.bits_in_per_s, 8000.0);
        assert_eq!(r.cpu_process, 0.25);
        assert_eq!(r.cpu_host, 0.75);
    }

    #[test]
    fn proc_is_readable_here() {
        let (busy, total) = host_cpu_seconds();
        assert!(total > 0.0 && busy <= total);
        assert!(process_cpu_seconds() >= 0.0);
    }
}
