//! A worker's load reporting: every half second, sample the media thread's
//! figures and the CPU, build a [`LoadReport`], and hand it to the cluster
//! (Redis, a signal server, or the in-process registry).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{self, Sample};
use super::registry::Registry;
use super::report::{stress, LoadReport, NodeState};
use crate::metrics::Metrics;
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
    Registry(Arc<Registry>),
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
                .put_report(report)
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
    last: Option<(Sample, Instant)>,
}

impl Reporter {
    pub fn new(info: NodeInfo, stats: Arc<WorkerStats>) -> Self {
        Reporter {
            info,
            stats,
            seq: 0,
            last: None,
        }
    }

    pub fn report(&mut self) -> LoadReport {
        let now = Instant::now();
        let s = &self.stats;
        let (host_busy, host_total) = load::host_cpu_seconds();
        let sample = Sample {
            packets_in: s.packets_in.load(Ordering::Relaxed),
            packets_out: s.packets_out.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            cpu_process: load::process_cpu_seconds(),
            host_busy,
            host_total,
        };
        let rates = match &self.last {
            Some((prev, at)) => load::rates(prev, *at, &sample, now),
            None => load::Rates::default(),
        };
        self.last = Some((sample, now));
        self.seq += 1;
        let rooms = s.rooms.lock().unwrap_or_else(|p| p.into_inner()).clone();
        LoadReport {
            id: self.info.id.clone(),
            control: self.info.control.clone(),
            media: self.info.media.clone(),
            state: if s.draining.load(Ordering::Relaxed) {
                NodeState::Draining
            } else {
                NodeState::Active
            },
            seq: self.seq,
            participants: s.peers.load(Ordering::Relaxed) as usize,
            rooms,
            tracks_in: s.tracks_in.load(Ordering::Relaxed) as usize,
            tracks_out: s.tracks_out.load(Ordering::Relaxed) as usize,
            packets_in_per_s: rates.packets_in_per_s,
            packets_out_per_s: rates.packets_out_per_s,
            bits_in_per_s: rates.bits_in_per_s,
            bits_out_per_s: rates.bits_out_per_s,
            cpu_process: rates.cpu_process,
            cpu_host: rates.cpu_host,
            capacity_pps: self.info.capacity_pps,
            stress: stress(
                rates.cpu_process,
                rates.packets_in_per_s + rates.packets_out_per_s,
                self.info.capacity_pps,
            ),
        }
    }

    /// Reports forever (until the sink refuses the secret).
    pub async fn run(mut self, sink: Sink, metrics: Arc<Metrics>) -> ReportError {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        let mut failing = false;
        loop {
            tick.tick().await;
            let report = self.report();
            metrics.set_worker(&report);
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
