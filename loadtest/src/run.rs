//! One load run: participants joined at a ramp, a warm-up, a measurement
//! window, and a summary of what subscribers received and what the target
//! process spent.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::loss::{TrackId, IN_FLIGHT_US};
use crate::participant::{Counters, Participant};
use crate::stats::{percentile, RxSummary};

#[derive(Debug, Clone)]
pub enum Target {
    /// A Parloir signal server (or `serve`), by its HTTP URL.
    Parloir(String),
    /// The bare UDP relay.
    Relay(SocketAddr),
    /// A Janus server's HTTP API (`http://HOST:8088`), videoroom plugin.
    Janus(String, Arc<crate::janus_client::Feeds>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub rooms: u32,
    /// Participants per room.
    pub participants: u32,
    /// Publishers per room (the first ones).
    pub publishers: u32,
    pub audio_only: bool,
    pub fps: u32,
    pub video_bitrate: u32,
    /// Video pacing rate over the bitrate, as a browser's pacer (2.5 in
    /// libwebrtc); 0 sends each frame in one burst.
    #[serde(default)]
    pub pacing: f64,
    /// Participants joined per second.
    pub ramp_per_s: f64,
    pub warmup: Duration,
    pub duration: Duration,
    /// The room's name (`NAME-i` when there are several); by default a
    /// random one per run.
    #[serde(default)]
    pub room: Option<String>,
    /// Publishers speak in turns of this length (see [`Participant`]).
    #[serde(default)]
    pub speaker_turn: Option<Duration>,
    /// Participants offer ICE-TCP candidates only.
    #[serde(default)]
    pub tcp: bool,
}

impl Scenario {
    /// 1 → N: one publisher, N−1 subscribers, in one room.
    pub fn fanout(n: u32) -> Self {
        Scenario {
            name: format!("fanout-1x{}", n.saturating_sub(1)),
            rooms: 1,
            participants: n,
            publishers: 1,
            audio_only: false,
            fps: 30,
            video_bitrate: 1_300_000,
            pacing: 2.5,
            ramp_per_s: 50.0,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            room: None,
            speaker_turn: None,
            tcp: false,
        }
    }

    /// N×N meetings: everyone publishes and receives everyone.
    pub fn meeting(rooms: u32, size: u32) -> Self {
        Scenario {
            name: format!("meeting-{rooms}x{size}"),
            rooms,
            participants: size,
            publishers: size,
            ..Scenario::fanout(size)
        }
    }

    /// Whether participant `index` publishes (the first of each room do).
    fn publishes(&self, index: u32) -> bool {
        index % self.participants < self.publishers
    }

    /// The tracks participant `index` should receive: every other
    /// publisher's of its room.
    pub fn tracks_to(&self, index: u32) -> Vec<TrackId> {
        let room = index / self.participants;
        let kinds: &[u8] = if self.audio_only { &[0] } else { &[0, 1] };
        (room * self.participants..(room + 1) * self.participants)
            .filter(|p| *p != index && self.publishes(*p))
            .flat_map(|p| kinds.iter().map(move |k| (p, *k)))
            .collect()
    }

    /// Audio only, five speakers per room.
    pub fn audio(rooms: u32) -> Self {
        Scenario {
            name: format!("audio-{rooms}x5"),
            rooms,
            participants: 5,
            publishers: 5,
            audio_only: true,
            ..Scenario::fanout(5)
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub target: String,
    pub scenario: String,
    pub participants: u32,
    pub joined: u64,
    pub failed: u32,
    /// Subscriber-side tracks: (subscriber, published track) pairs a
    /// subscriber was owed packets of.
    pub streams_out: usize,
    /// Of those, the ones from which nothing arrived (unknown in runs
    /// measured before it was counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams_silent: Option<usize>,
    pub window_s: f64,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Packets owed to subscribers that never reached them, in % of those
    /// owed: see [`crate::loss`].
    pub loss_pct: f64,
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    pub jitter_ms: f64,
    pub target_cpu_s: f64,
    /// Target CPU over the window, in cores.
    pub target_load: f64,
    pub cpu_us_per_packet: f64,
    /// Peak resident memory of the target during the run ([`peak_rss_kib`]).
    pub target_rss_kib: u64,
    pub srtp_profile: String,
    /// The load generator's own CPU over the window, in cores: near 1 it,
    /// not the target, is the limit (it runs on one core).
    #[serde(default)]
    pub generator_load: f64,
    /// CPU µs per packet of every run of this point (the benchmark fills
    /// it in on the median run): the spread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs_cpu_us_per_packet: Vec<f64>,
    /// Parloir's datagrams handed between its media shards, per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoffs_per_s: Option<f64>,
}

/// CPU seconds of a process (user + system).
pub fn cpu_seconds(pid: u32) -> f64 {
    parloir::cluster::load::cpu_seconds_of(&pid.to_string())
}

/// The most resident memory a process held (its high-water mark), KiB.
/// Not its resident memory at the end: Parloir gives memory back after a
/// burst (heap trimming), so the difference of two end readings could be
/// negative; a fresh process per run makes the peak that run's own.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub async fn run(
    target: Target,
    sc: &Scenario,
    target_pid: Option<u32>,
    client_ip: IpAddr,
    progress: bool,
) -> Summary {
    let epoch = Instant::now();
    let total = sc.rooms * sc.participants;
    let ramp = Duration::from_secs_f64(total as f64 / sc.ramp_per_s.max(0.1));
    let measure_from = epoch + ramp + sc.warmup;
    let until = measure_from + sc.duration;
    let measure_from_us = (measure_from - epoch).as_micros() as u64;
    let counters = Arc::new(Counters::default());
    let tag = rand::random::<u32>();
    let mut tasks = Vec::new();
    for i in 0..total {
        let p = Participant {
            index: i,
            room: match (&sc.room, sc.rooms) {
                (Some(name), 1) => name.clone(),
                (Some(name), _) => format!("{name}-{}", i / sc.participants),
                (None, _) => format!("load-{tag:08x}-{}", i / sc.participants),
            },
            publish: sc.publishes(i),
            room_publishers: sc.publishers.min(sc.participants),
            audio_only: sc.audio_only,
            fps: sc.fps,
            video_bitrate: sc.video_bitrate,
            pacing: sc.pacing,
            client_ip,
            epoch,
            until,
            measure_from_us,
            position: i % sc.participants,
            speaker_turn: sc.speaker_turn,
            tcp: sc.tcp,
        };
        let start = epoch + Duration::from_secs_f64(i as f64 / sc.ramp_per_s.max(0.1));
        let counters = counters.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            match target {
                Target::Parloir(url) => crate::parloir_client::run(p, url, counters).await,
                Target::Relay(addr) => crate::relay::run(p, addr, counters).await,
                Target::Janus(url, feeds) => {
                    crate::janus_client::run(p, url, feeds, counters).await
                }
            }
        }));
    }

    // Progress, and the target's figures at the window's edges.
    let mut cpu_start = 0.0;
    let mut own_start = 0.0;
    let mut recv_start = 0;
    let mut sent_start = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut in_window = false;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if !in_window && now >= measure_from {
            in_window = true;
            cpu_start = target_pid.map(cpu_seconds).unwrap_or(0.0);
            own_start = parloir::cluster::load::cpu_seconds_of("self");
            recv_start = counters.received_total();
            sent_start = counters.sent_total();
        }
        if progress {
            eprint!(
                "\r{:>5.1}s  joined {:>4}/{}  sent {:>8}  received {:>9}  {}",
                epoch.elapsed().as_secs_f64(),
                counters.joined_total(),
                total,
                counters.sent_total(),
                counters.received_total(),
                if in_window { "measuring" } else { "warming up" },
            );
            let _ = std::io::stderr().flush();
        }
        if now >= until {
            break;
        }
    }
    let cpu_end = target_pid.map(cpu_seconds).unwrap_or(0.0);
    let own = parloir::cluster::load::cpu_seconds_of("self") - own_start;
    let rss = target_pid.map(peak_rss_kib).unwrap_or(0);
    let handoffs = match &target {
        Target::Parloir(url) => handoffs_per_s(url).await,
        _ => None,
    };
    let received = counters.received_total() - recv_start;
    let sent = counters.sent_total() - sent_start;
    if progress {
        eprintln!();
    }

    let mut failed = 0;
    let mut delays = Vec::new();
    let mut rx = RxSummary::default();
    let mut jitters = Vec::new();
    let mut profile = None;
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await);
    }
    // Every publisher has stopped: the log is complete.
    let sent_log = counters.take_log();
    let cutoff_us = ((until - epoch).as_micros() as u64).saturating_sub(IN_FLIGHT_US);
    for (i, t) in (0..).zip(results) {
        match t {
            Ok(Ok(mut r)) => {
                let from_us = r
                    .ready_us
                    .map_or(measure_from_us, |t| t.max(measure_from_us));
                let s =
                    r.rx.summary(&sc.tracks_to(i), &sent_log, from_us, cutoff_us);
                rx.tracks += s.tracks;
                rx.silent += s.silent;
                rx.expected += s.expected;
                rx.received += s.received;
                if s.tracks > s.silent {
                    jitters.push(s.jitter_us);
                }
                delays.append(&mut r.rx.delays_us);
                profile = profile.or(r.srtp_profile);
            }
            // A participant that failed takes its figures with it: `failed`
            // says so, and the benchmark never counts such a load carried.
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("participant failed: {e:#}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("participant panicked: {e}");
            }
        }
    }
    let window = sc.duration.as_secs_f64();
    let cpu = cpu_end - cpu_start;
    Summary {
        target: match &target {
            Target::Parloir(_) => "parloir".into(),
            Target::Relay(_) => "udp_relay".into(),
            Target::Janus(..) => "janus".into(),
        },
        scenario: sc.name.clone(),
        participants: total,
        joined: counters.joined_total(),
        failed,
        streams_out: rx.tracks,
        streams_silent: Some(rx.silent),
        window_s: window,
        packets_sent: sent,
        packets_received: received,
        loss_pct: if rx.expected > 0 {
            100.0 * rx.expected.saturating_sub(rx.received) as f64 / rx.expected as f64
        } else {
            100.0
        },
        delay_p50_ms: percentile(&mut delays, 0.5) / 1000.0,
        delay_p99_ms: percentile(&mut delays, 0.99) / 1000.0,
        jitter_ms: if jitters.is_empty() {
            0.0
        } else {
            jitters.iter().sum::<f64>() / jitters.len() as f64 / 1000.0
        },
        target_cpu_s: cpu,
        target_load: cpu / window,
        cpu_us_per_packet: if received > 0 {
            cpu * 1e6 / received as f64
        } else {
            0.0
        },
        target_rss_kib: rss,
        srtp_profile: profile.unwrap_or_else(|| "unknown".into()),
        generator_load: own / window,
        runs_cpu_us_per_packet: Vec::new(),
        handoffs_per_s: handoffs,
    }
}

/// Datagrams a Parloir's media shards handed to each other per second, as
/// its `/metrics` says at the end of the window (its last load report).
async fn handoffs_per_s(base: &str) -> Option<f64> {
    let text = parloir::net::http_client(None)
        .ok()?
        .get(format!("{}/metrics", base.trim_end_matches('/')))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("parloir_worker_handoffs_per_second"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// "min–max (n runs)" of a sample, or "—" for a single run.
fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 {
        "—".into()
    } else {
        format!("{min:.2}–{max:.2} ({} runs)", v.len())
    }
}

/// The summary as a small table.
pub fn table(s: &[Summary]) -> String {
    let mut out = String::from(
        "| target | scenario | streams | received/s | loss % | delay p50 ms | delay p99 ms | jitter ms | CPU cores | CPU µs/pkt | runs: min–max | RSS MiB | SRTP | generator cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for x in s {
        out += &format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {} | {:.2} |\n",
            x.target,
            x.scenario,
            x.streams_out,
            x.packets_received as f64 / x.window_s.max(0.001),
            x.loss_pct,
            x.delay_p50_ms,
            x.delay_p99_ms,
            x.jitter_ms,
            x.target_load,
            x.cpu_us_per_packet,
            spread(&x.runs_cpu_us_per_packet),
            x.target_rss_kib as f64 / 1024.0,
            x.srtp_profile,
            x.generator_load
        );
    }
    out
}
