//! A worker's load reporting: every half second, sample the media thread's
//! figures and the CPU, build a [`LoadReport`], and hand it to the cluster
//! (Redis, a signal server, or the in-process registry).

use std::sync::Arc;
use std::time::Duration;

use super::load::{Rates, Sample};
use super::registry::{Moment, Registry};
use super::report::{stress, worker_cpu, LoadReport, NodeState, ShardLoad, StressSmoother};
use crate::worker::WorkerStats;

pub const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Static facts about the node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub control: String,
    pub media: String,
    pub capacity_pps: f64,
}

/// Where reports go.
pub enum Sink {
    Registry(Arc<dyn Registry>),
    Signal {
        url: String,
        secret: String,
        client: reqwest::Client,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the signal server refused the secret (HTTP 401): check --secret")]
    Refused,
    #[error("{0}")]
    Failed(String),
}

impl Sink {
    pub async fn send(&self, report: &LoadReport) -> Result<(), ReportError> {
        match self {
            Sink::Registry(r) => r
                .put_report(report, Moment::now())
                .await
                .map_err(|e| ReportError::Failed(e.to_string())),
            Sink::Signal {
                url,
                secret,
                client,
            } => {
                let res = client
                    .post(format!("{url}/cluster/report"))
                    .bearer_auth(secret)
                    .timeout(Duration::from_secs(2))
                    .json(report)
                    .send()
                    .await
                    .map_err(|e| ReportError::Failed(e.to_string()))?;
                match res.status().as_u16() {
                    200..=299 => Ok(()),
                    401 | 403 => Err(ReportError::Refused),
                    s => Err(ReportError::Failed(format!("HTTP {s}"))),
                }
            }
        }
    }
}

/// Builds reports from the worker's figures.
pub struct Reporter {
    info: NodeInfo,
    stats: Arc<WorkerStats>,
    seq: u64,
    last: Option<Sample>,
    /// Each shard's thread CPU seconds at the last report.
    last_shards: Vec<f64>,
    smoother: StressSmoother,
}

impl Reporter {
    pub fn new(info: NodeInfo, stats: Arc<WorkerStats>) -> Self {
        Reporter {
            info,
            stats,
            seq: 0,
            last: None,
            last_shards: Vec::new(),
            smoother: StressSmoother::default(),
        }
    }

    pub fn report(&mut self) -> LoadReport {
        let figures = self.stats.snapshot();
        let sample = Sample::take(figures.counters);
        let rates = self
            .last
            .map(|prev| Rates::between(&prev, &sample))
            .unwrap_or_default();
        let dt = self.last.map_or(REPORT_EVERY, |prev| {
            sample.at.saturating_duration_since(prev.at)
        });
        let had_sample = self.last.is_some();
        self.last = Some(sample);
        let shards = self.shards(dt, had_sample);
        let shard_cpu: Vec<f64> = shards.iter().map(|s| s.cpu).collect();
        let cpu = worker_cpu(rates.cpu_process, &shard_cpu);
        let capacity = self.info.capacity_pps;
        let smoothed = self
            .smoother
            .update(cpu, dt, rates.packets_per_s(), capacity);
        self.seq += 1;
        LoadReport {
            id: self.info.id.clone(),
            control: self.info.control.clone(),
            media: self.info.media.clone(),
            state: if self.stats.is_draining() {
                NodeState::Draining
            } else {
                NodeState::Active
            },
            seq: self.seq,
            participants: figures.peers,
            rooms: figures.rooms,
            tracks_in: figures.tracks_in,
            tracks_out: figures.tracks_out,
            rates,
            capacity_pps: self.info.capacity_pps,
            stress: stress(cpu, rates.packets_per_s(), capacity),
            stress_smoothed: Some(smoothed),
            shards,
        }
    }

    /// Each shard's rooms, participants and thread CPU over the last `dt`
    /// (none from the first report: no earlier reading).
    fn shards(&mut self, dt: Duration, had_sample: bool) -> Vec<ShardLoad> {
        let seconds = self.stats.shard_cpu_seconds();
        let dt = dt.as_secs_f64();
        let shards = self
            .stats
            .shards()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let snapshot = s.snapshot();
                let cpu = match self.last_shards.get(i) {
                    Some(before) if had_sample && dt > 0.0 => ((seconds[i] - before) / dt).max(0.0),
                    _ => 0.0,
                };
                ShardLoad {
                    rooms: snapshot.rooms.len(),
                    participants: snapshot.peers,
                    cpu,
                }
            })
            .collect();
        self.last_shards = seconds;
        shards
    }

    /// Reports forever (until the sink refuses the secret), showing each
    /// report to `exported` first (the process's `/metrics`).
    pub async fn run(mut self, sink: Sink, exported: impl Fn(&LoadReport)) -> ReportError {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        let mut failing = false;
        loop {
            tick.tick().await;
            let report = self.report();
            exported(&report);
            match sink.send(&report).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("load reports get through again");
                        failing = false;
                    }
                }
                Err(ReportError::Refused) => return ReportError::Refused,
                Err(e) => {
                    if !failing {
                        tracing::warn!("load report failed: {e}");
                        failing = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::stats::{Counters, RoomLoad, Snapshot};

    #[test]
    fn a_report_carries_the_published_figures() {
        let stats = Arc::new(WorkerStats::default());
        let info = NodeInfo {
            id: "w1".into(),
            control: "http://127.0.0.1:1".into(),
            media: "127.0.0.1:2".into(),
            capacity_pps: 1000.0,
        };
        let mut reporter = Reporter::new(info, stats.clone());
        stats.publish(Snapshot {
            counters: Counters {
                packets_in: 10,
                ..Counters::default()
            },
            rooms: vec![RoomLoad {
                room: "r".into(),
                participants: 3,
                door: None,
            }],
            peers: 3,
            tracks_in: 2,
            tracks_out: 4,
        });
        let first = reporter.report();
        assert_eq!((first.seq, first.participants), (1, 3));
        assert_eq!((first.tracks_in, first.tracks_out), (2, 4));
        assert_eq!(first.rooms.len(), 1);
        assert_eq!(first.rates.packets_in_per_s, 0.0, "no rate from one sample");
        std::thread::sleep(Duration::from_millis(20));
        let second = reporter.report();
        assert_eq!(second.seq, 2);
        assert_eq!(second.rates.packets_in_per_s, 0.0, "nothing counted since");
        // 100 packets more, at least 20 ms later: a rate, at most 5,000/s.
        stats.publish(Snapshot {
            counters: Counters {
                packets_in: 110,
                ..Counters::default()
            },
            rooms: Vec::new(),
            peers: 0,
            tracks_in: 0,
            tracks_out: 0,
        });
        std::thread::sleep(Duration::from_millis(20));
        let third = reporter.report();
        let rate = third.rates.packets_in_per_s;
        assert!(rate > 0.0 && rate <= 5_000.0, "{rate} packets/s");
        assert_eq!(third.rooms.len(), 0, "the latest snapshot's rooms");
    }
}
