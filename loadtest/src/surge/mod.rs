//! `parloir-loadtest surge`: a surge on a real cluster on this machine.
//!
//! Redis, a signal server with two partners and two workers of a small
//! `--capacity-pps` start; rooms of synthetic participants (real WebRTC,
//! everyone publishing voice and video) then try to start at an even pace
//! until eight times what the two workers carry have tried, one in twenty
//! of them priority rooms (grants from the operators' API); a third worker
//! starts halfway, and the operator turns "redirect new rooms" on near
//! the end. Every answer to a join is kept, the operators' API is read
//! four times a second, and every packet sent to a participant of a
//! running call is accounted for; the figures are written per second.
//!
//! The script in [`plan`], the figures and checks in [`timeline`], the
//! processes in [`cluster`], what is written in [`report`].

mod cluster;
mod plan;
mod report;
mod timeline;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::loss::{add_by_second, owed_from, Second, IN_FLIGHT_US};
use crate::parloir_client::{call, join_with};
use crate::participant::{Counters, Participant, ParticipantResult};
use cluster::{Api, Settings};
use plan::{Plan, PlannedRoom, Shape, MEMBER_GAP};
use timeline::{JoinRecord, NodeSample};

#[derive(clap::Args)]
pub struct SurgeArgs {
    /// Seconds over which rooms try to start.
    #[arg(long, default_value_t = 60.0)]
    ramp: f64,
    /// Seconds the calls go on after the ramp.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Rooms that try to start, in multiples of what two workers carry
    /// below the soft threshold.
    #[arg(long, default_value_t = 8.0)]
    demand: f64,
    /// Each worker's packet-rate capacity: small, so that a few dozen
    /// calls fill a worker on one machine.
    #[arg(long, default_value_t = 6000.0)]
    capacity_pps: f64,
    /// Soft admission threshold: the gap up to the hard one is the room
    /// kept for priority rooms (a quarter of each worker here).
    #[arg(long, default_value_t = 0.7)]
    soft: f64,
    #[arg(long, default_value_t = 0.95)]
    hard: f64,
    /// People per room.
    #[arg(long, default_value_t = 3)]
    room_size: u32,
    /// Video of each participant: frames per second and bit rate.
    #[arg(long, default_value_t = 15)]
    fps: u32,
    #[arg(long, default_value_t = 120_000)]
    video_bitrate: u32,
    /// One room in this many is a priority room (0: none).
    #[arg(long, default_value_t = 20)]
    priority_every: u32,
    /// Seconds into the surge when the operator turns "redirect new rooms"
    /// on [default: five sixths of the ramp].
    #[arg(long, conflicts_with = "no_redirect")]
    redirect_at: Option<f64>,
    /// The operator never turns redirection on.
    #[arg(long)]
    no_redirect: bool,
    /// Where `NAME.{md,svg,json}` are written.
    #[arg(long, default_value = "loadtest/results")]
    out: PathBuf,
    #[arg(long, default_value = "surge")]
    name: String,
    /// The `parloir` binary [default: next to this one].
    #[arg(long)]
    parloir: Option<PathBuf>,
}

const SECRET: &str = "surge-operators-secret";
/// How often the operators' API is read for the workers' stress.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

impl SurgeArgs {
    fn shape(&self) -> Shape {
        let ramp = Duration::from_secs_f64(self.ramp);
        Shape {
            room_size: self.room_size.max(2),
            fps: self.fps.max(1),
            video_bitrate: self.video_bitrate,
            capacity_pps: self.capacity_pps,
            soft: self.soft,
            demand: self.demand,
            priority_every: self.priority_every,
            ramp,
            hold: Duration::from_secs_f64(self.hold),
            redirect_at: match (self.no_redirect, self.redirect_at) {
                (true, _) => None,
                (false, Some(s)) => Some(Duration::from_secs_f64(s)),
                (false, None) => Some(ramp.mul_f64(5.0 / 6.0)),
            },
        }
    }
}

pub fn main(a: SurgeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(surge(a))
}

/// What the surge shares with its rooms' tasks.
struct Ctx {
    base: String,
    epoch: Instant,
    until: Instant,
    shape: Shape,
    counters: Counters,
    joins: Mutex<Vec<JoinRecord>>,
}

impl Ctx {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// A participant who was let in, and what its call received.
struct Member {
    index: u32,
    room: u32,
    welcomed_us: u64,
    call: anyhow::Result<ParticipantResult>,
}

async fn surge(a: SurgeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let parloir = match &a.parloir {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("parloir"),
    };
    anyhow::ensure!(
        parloir.exists(),
        "no parloir binary at {} (cargo build --release, or --parloir PATH)",
        parloir.display()
    );
    let logs = std::env::temp_dir().join(format!("parloir-surge-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let settings = Settings {
        parloir,
        secret: SECRET.into(),
        soft: a.soft,
        hard: a.hard,
        capacity_pps: a.capacity_pps,
        logs: logs.clone(),
    };
    let shape = a.shape();
    let plan = Plan::new(
        &shape,
        &format!("{:06x}", rand::random::<u32>() & 0xff_ffff),
    );
    eprintln!(
        "surge: a room of {} is {:.0} packets/s, two workers carry {} rooms below {}; {} rooms ({} priority) over {} s; logs in {}",
        shape.room_size,
        plan.room_pps,
        plan.carried_by_two,
        a.soft,
        plan.rooms.len(),
        plan.priority_rooms(),
        a.ramp,
        logs.display()
    );

    let (_redis, redis) = cluster::redis(&logs)?;
    let (_signal, base) = cluster::signal(&settings, &redis)?;
    let _w1 = cluster::worker(&settings, &base, "w1")?;
    let _w2 = cluster::worker(&settings, &base, "w2")?;
    let api = Api::new(&base, SECRET)?;
    wait_for_workers(&api, 2).await?;
    let mut grants = HashMap::new();
    for r in plan.rooms.iter().filter(|r| r.priority) {
        grants.insert(r.index, api.priority_grant(&r.name).await?);
    }

    let epoch = Instant::now();
    let ctx = Arc::new(Ctx {
        base: base.clone(),
        epoch,
        until: epoch + plan.end,
        shape: shape.clone(),
        counters: Counters::default(),
        joins: Mutex::new(Vec::new()),
    });
    let rooms: Vec<_> = plan
        .rooms
        .iter()
        .map(|r| tokio::spawn(room(r.clone(), grants.remove(&r.index), ctx.clone())))
        .collect();

    // The operator's side: the API read, the third worker, the switch.
    let mut samples: Vec<NodeSample> = Vec::new();
    let mut headroom: Vec<(u64, u64)> = Vec::new();
    let mut room_node: HashMap<String, String> = HashMap::new();
    let mut w3 = None;
    let mut w3_started_us = None;
    let mut redirect_on_us = None;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut n = 0u64;
    while Instant::now() < ctx.until {
        tick.tick().await;
        n += 1;
        let now = epoch.elapsed();
        if w3.is_none() && now >= plan.third_worker_at {
            w3_started_us = Some(ctx.now_us());
            let (s, b) = (settings.clone(), base.clone());
            w3 = Some(tokio::task::spawn_blocking(move || cluster::worker(&s, &b, "w3")).await??);
        }
        if let Some(at) = shape
            .redirect_at
            .filter(|at| redirect_on_us.is_none() && now >= *at)
        {
            api.redirect(true).await.context("turn redirection on")?;
            redirect_on_us = Some(ctx.now_us().max(at.as_micros() as u64));
        }
        sample_nodes(&api, ctx.now_us(), &mut samples).await;
        if n.is_multiple_of(4) {
            if let Ok(v) = api.get("/api/admission").await {
                if let Some(h) = v["headroom"].as_u64() {
                    headroom.push((ctx.now_us(), h));
                }
            }
            read_rooms(&api, &mut room_node).await;
            progress(&ctx, &samples);
        }
    }
    eprintln!();
    let mut members = Vec::new();
    for r in rooms {
        members.extend(r.await?);
    }
    read_rooms(&api, &mut room_node).await;
    drop(w3);

    let joins = std::mem::take(&mut *ctx.joins.lock().unwrap_or_else(|e| e.into_inner()));
    let by_name: HashMap<&str, u32> = plan
        .rooms
        .iter()
        .map(|r| (r.name.as_str(), r.index))
        .collect();
    let room_node: HashMap<u32, String> = room_node
        .into_iter()
        .filter_map(|(name, node)| Some((*by_name.get(name.as_str())?, node)))
        .collect();
    let media = account(&ctx, &members, &plan);
    let recorded = report::Recorded {
        plan,
        shape,
        hard: a.hard,
        joins,
        samples,
        headroom,
        room_node,
        media,
        failed: members
            .iter()
            .filter_map(|m| m.call.as_ref().err().map(|e| format!("{e:#}")))
            .collect(),
        third_worker_started_us: w3_started_us,
        redirect_on_us,
        took_s: started.elapsed().as_secs_f64(),
    };
    let out = report::write(&recorded, &a.out, &a.name)?;
    print!("{}", out.summary);
    eprintln!("written: {}", out.paths.join(", "));
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

/// Until `/api/nodes` lists `n` workers.
async fn wait_for_workers(api: &Api, n: usize) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = api.get("/api/nodes").await.ok();
        if listed
            .as_ref()
            .and_then(|v| v.as_array())
            .is_some_and(|v| v.len() >= n)
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < end, "the workers did not report");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sample_nodes(api: &Api, t_us: u64, out: &mut Vec<NodeSample>) {
    let Ok(v) = api.get("/api/nodes").await else {
        return;
    };
    for n in v.as_array().into_iter().flatten() {
        out.push(NodeSample {
            t_us,
            id: n["id"].as_str().unwrap_or_default().to_string(),
            stress: n["stress_smoothed"]
                .as_f64()
                .or(n["stress"].as_f64())
                .unwrap_or(0.0),
        });
    }
}

/// Which worker each room is on (rooms never move in a surge).
async fn read_rooms(api: &Api, into: &mut HashMap<String, String>) {
    let Ok(v) = api.get("/api/rooms").await else {
        return;
    };
    for r in v.as_array().into_iter().flatten() {
        if let (Some(room), Some(node)) = (r["room"].as_str(), r["node"].as_str()) {
            into.entry(room.to_string())
                .or_insert_with(|| node.to_string());
        }
    }
}

fn progress(ctx: &Ctx, samples: &[NodeSample]) {
    let joins = ctx.joins.lock().unwrap_or_else(|e| e.into_inner());
    let started = joins
        .iter()
        .filter(|j| j.member == 0 && j.refused.is_none())
        .count();
    let refused = joins
        .iter()
        .filter(|j| j.member == 0 && j.refused.is_some())
        .count();
    let last = samples.last().map_or(0, |s| s.t_us);
    let stress: Vec<String> = samples
        .iter()
        .filter(|s| s.t_us == last)
        .map(|s| format!("{} {:.2}", s.id, s.stress))
        .collect();
    eprint!(
        "\r{:>5.1}s  rooms let in {started:>3}, turned away {refused:>3}  stress {}   ",
        ctx.epoch.elapsed().as_secs_f64(),
        stress.join(", ")
    );
}

/// One room: its first participant asks (with the room's grant if it is
/// a priority room); if let in, the others follow [`MEMBER_GAP`] apart.
/// Every answer is recorded; the participants let in make their calls.
async fn room(r: PlannedRoom, grant: Option<String>, ctx: Arc<Ctx>) -> Vec<Member> {
    let start = ctx.epoch + r.start;
    let mut calls = Vec::new();
    for m in 0..ctx.shape.room_size {
        tokio::time::sleep_until((start + MEMBER_GAP * m).into()).await;
        let index = r.index * ctx.shape.room_size + m;
        let sent_us = ctx.now_us();
        let answer = join_with(
            &ctx.base,
            &r.name,
            &format!("surge-{index}"),
            grant.as_deref(),
        )
        .await;
        let answered_us = ctx.now_us();
        let (refused, partners) = match &answer {
            Ok(Ok(_)) => (None, 0),
            Ok(Err(m)) => (
                Some(m["code"].as_str().unwrap_or("error").to_string()),
                m["partners"].as_array().map_or(0, Vec::len),
            ),
            Err(_) => (Some("unreachable".to_string()), 0),
        };
        ctx.joins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(JoinRecord {
                room: r.index,
                member: m,
                priority: r.priority,
                sent_us,
                answered_us,
                refused,
                partners,
            });
        if let Ok(Ok(ws)) = answer {
            let p = participant(&ctx, &r, index, m);
            let ctx = ctx.clone();
            calls.push((
                index,
                answered_us,
                tokio::spawn(async move { call(ws, &p, &ctx.counters).await }),
            ));
        } else if m == 0 {
            // A room refused is not started. A member refused (the hard
            // threshold) does not retry: the figures count the join.
            break;
        }
    }
    let mut out = Vec::new();
    for (index, welcomed_us, task) in calls {
        out.push(Member {
            index,
            room: r.index,
            welcomed_us,
            call: task
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("panicked: {e}"))),
        });
    }
    out
}

fn participant(ctx: &Ctx, r: &PlannedRoom, index: u32, position: u32) -> Participant {
    Participant {
        index,
        room: r.name.clone(),
        publish: true,
        room_publishers: ctx.shape.room_size,
        audio_only: false,
        fps: ctx.shape.fps,
        video_bitrate: ctx.shape.video_bitrate,
        pacing: 2.5,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        epoch: ctx.epoch,
        until: ctx.until,
        measure_from_us: 0,
        position,
        speaker_turn: None,
        tcp: false,
    }
}

/// Every packet owed to a participant of a running call, by the second it
/// was sent in: each participant let in is owed every other one's voice
/// and video from the moment their stream came (or should have: see
/// [`owed_from`]) to the end. A call that failed is owed all the same.
fn account(ctx: &Ctx, members: &[Member], plan: &Plan) -> Accounted {
    let log = ctx.counters.take_log();
    let cutoff_us = (plan.end.as_micros() as u64).saturating_sub(IN_FLIGHT_US);
    let mut out = Accounted::default();
    for sub in members {
        let rx = sub.call.as_ref().ok();
        let ready_us = rx.and_then(|r| r.ready_us).unwrap_or(sub.welcomed_us);
        for publisher in members
            .iter()
            .filter(|p| p.room == sub.room && p.index != sub.index)
        {
            for kind in [0u8, 1] {
                let track = (publisher.index, kind);
                let Some(sent) = log.get(&track) else {
                    continue;
                };
                let arrivals = rx.map(|r| r.rx.arrivals(track)).unwrap_or_default();
                let from = owed_from(sent, arrivals.first().map(|a| a.0), ready_us);
                let (owed, got) = add_by_second(sent, &arrivals, from, cutoff_us, &mut out.seconds);
                if owed > 0 {
                    out.streams += 1;
                    out.silent += usize::from(got == 0);
                }
            }
        }
    }
    out
}

/// Packets owed per second, and the streams they belong to.
#[derive(Debug, Default)]
pub struct Accounted {
    pub seconds: Vec<Second>,
    /// (participant, track) pairs owed packets, and those of them that
    /// received none.
    pub streams: usize,
    pub silent: usize,
}
