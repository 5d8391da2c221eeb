//! The benchmark: the same fan-out loads against Parloir, against the bare
//! UDP relay (the machine's limit) and against Janus where it can be run,
//! each target pinned to core 1 and the load generator to core 0, every
//! point measured several times on a fresh target process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use crate::run::Summary;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A short run (under 3 minutes): fewer loads and runs.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Runs per load point [default: 5, or 2 with --quick].
    #[arg(long)]
    runs: Option<usize>,
    /// Where the Markdown table and SVG plot go.
    #[arg(long, default_value = "loadtest/results")]
    out: PathBuf,
    /// The `parloir` binary [default: next to this one].
    #[arg(long)]
    parloir: Option<PathBuf>,
    /// Measure nothing: summarize the points of an earlier run's JSON
    /// again (after a change in how figures are read) and rewrite its
    /// table, plot and JSON.
    #[arg(long)]
    render: Option<PathBuf>,
}

/// The two load shapes the benchmark climbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 1→N, the level is N subscribers.
    Fanout,
    /// Meetings of [`MEETING_SIZE`], everyone publishing; the level is the
    /// number of rooms.
    Meeting,
}

const MEETING_SIZE: u32 = 5;

impl Shape {
    /// What a level counts, as JSON keys say it.
    fn unit(self) -> &'static str {
        match self {
            Shape::Fanout => "subscribers",
            Shape::Meeting => "rooms",
        }
    }

    fn run_args(self, level: u32) -> Vec<String> {
        let (preset, rooms, participants) = match self {
            Shape::Fanout => ("fanout", 1, level + 1),
            Shape::Meeting => ("meeting", level, MEETING_SIZE),
        };
        [
            "--preset",
            preset,
            "--rooms",
            &rooms.to_string(),
            "--participants",
            &participants.to_string(),
        ]
        .map(String::from)
        .to_vec()
    }

    fn level(self, p: &Summary) -> u32 {
        match self {
            Shape::Fanout => p.participants.saturating_sub(1),
            Shape::Meeting => p.participants / MEETING_SIZE,
        }
    }
}

/// Per-target figures of one shape, as the issue asks for them. In JSON
/// the level fields are named by the shape's unit
/// (`max_subscribers_under_1pct_loss`, `max_rooms_under_1pct_loss`).
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub available: bool,
    pub reason: Option<String>,
    /// CPU per packet and delays are read at one point: the one whose
    /// target load is nearest half a core.
    pub cpu_us_per_packet: Option<f64>,
    /// Level and target CPU at which the figures were taken.
    pub cpu_measured_at_level: Option<u32>,
    pub cpu_measured_at_load: Option<f64>,
    pub max_level_under_1pct_loss: Option<u32>,
    /// True unless the target was seen losing 1 % while the generator kept
    /// up: the real maximum is then above the largest level carried.
    pub max_level_is_lower_bound: bool,
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
    pub rss_kib_per_stream: Option<f64>,
    pub srtp_profile: Option<String>,
    /// Median summary at each load.
    pub points: Vec<Summary>,
}

impl TargetResult {
    fn unavailable(reason: &str) -> Self {
        TargetResult {
            available: false,
            reason: Some(reason.into()),
            cpu_us_per_packet: None,
            cpu_measured_at_level: None,
            cpu_measured_at_load: None,
            max_level_under_1pct_loss: None,
            max_level_is_lower_bound: false,
            delay_p50_ms: None,
            delay_p99_ms: None,
            rss_kib_per_stream: None,
            srtp_profile: None,
            points: Vec::new(),
        }
    }

    /// A result as [`TargetResult::to_json`] wrote it, summarized again
    /// from its points.
    fn from_json(shape: Shape, v: &serde_json::Value) -> anyhow::Result<Self> {
        if v["available"] != json!(true) {
            let reason = v["reason"].as_str().unwrap_or("unavailable");
            return Ok(TargetResult::unavailable(reason));
        }
        let points: Vec<Summary> = serde_json::from_value(v["points"].clone())?;
        Ok(summarize(shape, points))
    }

    fn to_json(&self, shape: Shape) -> serde_json::Value {
        let unit = shape.unit();
        let mut m = serde_json::Map::new();
        let mut put = |k: String, v: serde_json::Value| {
            m.insert(k, v);
        };
        put("available".into(), json!(self.available));
        if let Some(r) = &self.reason {
            put("reason".into(), json!(r));
        }
        put("cpu_us_per_packet".into(), json!(self.cpu_us_per_packet));
        put(
            format!("cpu_measured_at_{unit}"),
            json!(self.cpu_measured_at_level),
        );
        put(
            "cpu_measured_at_load".into(),
            json!(self.cpu_measured_at_load),
        );
        put(
            format!("max_{unit}_under_1pct_loss"),
            json!(self.max_level_under_1pct_loss),
        );
        put(
            format!("max_{unit}_is_lower_bound"),
            json!(self.max_level_is_lower_bound),
        );
        put("delay_p50_ms".into(), json!(self.delay_p50_ms));
        put("delay_p99_ms".into(), json!(self.delay_p99_ms));
        put("rss_kib_per_stream".into(), json!(self.rss_kib_per_stream));
        if let Some(p) = &self.srtp_profile {
            put("srtp_profile".into(), json!(p));
        }
        put("points".into(), json!(self.points));
        serde_json::Value::Object(m)
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Where targets run: a network namespace of the benchmark's own (a
/// separate "host" behind a veth pair, the same path for every target), or
/// plain loopback when namespaces cannot be made (not root).
struct Host {
    /// Command prefix that runs a program there, pinned to core 1.
    prefix: Vec<String>,
    /// Address targets bind to.
    target_ip: String,
    /// Address the load generator binds to.
    client_ip: String,
    netns: bool,
}

const NETNS: &str = "parloir-bench";
const VETH: &str = "plb0";
const VETH_NS: &str = "plb1";

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Host {
    fn setup() -> Host {
        Host::teardown();
        let ok = sh(&["ip", "netns", "add", NETNS])
            && sh(&[
                "ip", "link", "add", VETH, "type", "veth", "peer", "name", VETH_NS,
            ])
            && sh(&["ip", "link", "set", VETH_NS, "netns", NETNS])
            && sh(&["ip", "addr", "add", "10.231.7.1/24", "dev", VETH])
            && sh(&["ip", "link", "set", VETH, "up"])
            && sh(&[
                "ip",
                "netns",
                "exec",
                NETNS,
                "ip",
                "addr",
                "add",
                "10.231.7.2/24",
                "dev",
                VETH_NS,
            ])
            && sh(&[
                "ip", "netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up",
            ])
            && sh(&[
                "ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up",
            ]);
        if ok {
            Host {
                prefix: ["ip", "netns", "exec", NETNS, "taskset", "-c", "1"]
                    .map(String::from)
                    .to_vec(),
                target_ip: "10.231.7.2".into(),
                client_ip: "10.231.7.1".into(),
                netns: true,
            }
        } else {
            Host::teardown();
            eprintln!("no network namespace (not root?): targets on loopback, Janus not measured");
            Host {
                prefix: ["taskset", "-c", "1"].map(String::from).to_vec(),
                target_ip: "127.0.0.1".into(),
                client_ip: "127.0.0.1".into(),
                netns: false,
            }
        }
    }

    fn teardown() {
        // Processes survive `ip netns del`: end them first.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", NETNS]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                sh(&["kill", "-9", pid]);
            }
        }
        sh(&["ip", "link", "del", VETH]);
        sh(&["ip", "netns", "del", NETNS]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.netns {
            Host::teardown();
        }
    }
}

/// Starts a target on `host`; returns it with its first stdout line.
fn start_pinned(host: &Host, program: &str, args: &[String]) -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(&host.prefix[0])
        .args(&host.prefix[1..])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {program} (is taskset installed?)"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    Ok((Proc(child), line))
}

/// One load run as a child process pinned to core 0.
fn load(
    me: &str,
    target: &[String],
    shape: Shape,
    level: u32,
    pid: u32,
    secs: f64,
) -> anyhow::Result<Summary> {
    let out = Command::new("taskset")
        .args(["-c", "0", me, "run", "--json"])
        .args(target)
        .args(shape.run_args(level))
        .args([
            "--duration",
            &secs.to_string(),
            "--warmup",
            "1.5",
            "--ramp",
            "100",
        ])
        .args(["--target-pid", &pid.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("load run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let summary: Summary = serde_json::from_slice(&out.stdout)?;
    if summary.failed > 0 {
        // Why participants failed (refused, timed out) is worth seeing.
        let log = String::from_utf8_lossy(&out.stderr);
        for line in log.lines().filter(|l| l.contains("failed")).take(3) {
            eprintln!("    {line}");
        }
    }
    Ok(summary)
}

fn median_by(mut v: Vec<Summary>, key: impl Fn(&Summary) -> f64) -> Summary {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v[v.len() / 2].clone()
}

/// A target to measure: its name and how to start a fresh process of it
/// (returning the load generator's arguments to reach it).
type Starter<'a> = (&'a str, &'a dyn Fn() -> anyhow::Result<(Proc, Vec<String>)>);

/// Measures every target at each level in turn, their runs interleaved
/// (run 1 of each, then run 2 of each, ...): this machine's speed drifts by
/// a quarter within half an hour, and targets measured one after the
/// other would carry that drift into their ratios. A target stops climbing
/// past its first load it cannot carry (or that saturates the generator);
/// one that fails to run is reported unavailable, the others go on.
fn measure(
    targets: &[Starter],
    me: &str,
    shape: Shape,
    levels: &[u32],
    runs: usize,
    secs: f64,
) -> Vec<TargetResult> {
    let mut points: Vec<Vec<Summary>> = vec![Vec::new(); targets.len()];
    let mut failed: Vec<Option<String>> = vec![None; targets.len()];
    let mut climbing = vec![true; targets.len()];
    for &n in levels {
        let mut samples: Vec<Vec<Summary>> = vec![Vec::new(); targets.len()];
        for r in 0..runs {
            for (t, (name, start)) in targets.iter().enumerate() {
                if !climbing[t] {
                    continue;
                }
                let run = start()
                    .and_then(|(proc_, target)| load(me, &target, shape, n, proc_.0.id(), secs));
                let s = match run {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{name:>9} {n:>3} {} run {}: {e:#}", shape.unit(), r + 1);
                        failed[t] = Some(format!("{name} run failed: {e:#}"));
                        climbing[t] = false;
                        continue;
                    }
                };
                eprintln!(
                    "{name:>9} {n:>3} {} run {}: loss {:.2}% CPU {:.2} cores {:.2} µs/pkt p99 {:.2} ms",
                    shape.unit(),
                    r + 1,
                    s.loss_pct,
                    s.target_load,
                    s.cpu_us_per_packet,
                    s.delay_p99_ms
                );
                samples[t].push(s);
            }
        }
        for (t, samples) in samples.into_iter().enumerate() {
            if !climbing[t] || samples.is_empty() {
                continue;
            }
            // Median run by CPU per packet; loss and delay from the same run.
            let all: Vec<f64> = samples.iter().map(|s| s.cpu_us_per_packet).collect();
            let mut point = median_by(samples, |s| s.cpu_us_per_packet);
            point.runs_cpu_us_per_packet = all;
            climbing[t] = carried(&point) && point.generator_load <= GENERATOR_LIMIT;
            points[t].push(point);
        }
        if !climbing.iter().any(|c| *c) {
            break;
        }
    }
    points
        .into_iter()
        .zip(failed)
        .map(|(points, failed)| match failed {
            Some(reason) => TargetResult::unavailable(&reason),
            None => summarize(shape, points),
        })
        .collect()
}

/// Whether a target carried a load: under 1 % loss, every participant in.
fn carried(p: &Summary) -> bool {
    p.loss_pct < 1.0 && p.failed == 0
}

/// Load generator CPU (cores) above which its own delays would be measured.
const GENERATOR_LIMIT: f64 = 0.9;

fn summarize(shape: Shape, points: Vec<Summary>) -> TargetResult {
    // The point nearest half load among those carried (a target that never
    // gets there is read at its busiest point).
    let pick = (0..points.len())
        .filter(|i| carried(&points[*i]))
        .min_by(|a, b| {
            let d = |i: usize| (points[i].target_load - 0.5).abs();
            d(*a).total_cmp(&d(*b))
        });
    let max_ok = points
        .iter()
        .filter(|p| carried(p))
        .map(|p| shape.level(p))
        .max();
    // Unless a load was lost while the generator kept up, the target was
    // never seen at its limit.
    let lower_bound = !points
        .iter()
        .any(|p| !carried(p) && p.generator_load <= GENERATOR_LIMIT);
    let rss = match (
        points.first(),
        points.iter().rev().find(|p| p.loss_pct < 1.0),
    ) {
        (Some(a), Some(b)) if b.streams_out > a.streams_out => Some(
            (b.target_rss_kib as f64 - a.target_rss_kib as f64)
                / (b.streams_out - a.streams_out) as f64,
        ),
        _ => None,
    };
    TargetResult {
        available: true,
        reason: None,
        cpu_us_per_packet: pick.map(|i| points[i].cpu_us_per_packet),
        cpu_measured_at_level: pick.map(|i| shape.level(&points[i])),
        cpu_measured_at_load: pick.map(|i| points[i].target_load),
        max_level_under_1pct_loss: max_ok,
        max_level_is_lower_bound: lower_bound,
        delay_p50_ms: pick.map(|i| points[i].delay_p50_ms),
        delay_p99_ms: pick.map(|i| points[i].delay_p99_ms),
        rss_kib_per_stream: rss,
        srtp_profile: points.first().map(|p| p.srtp_profile.clone()),
        points,
    }
}

/// Janus 1.1 with a configuration of its own: HTTP API and media on the
/// namespace's address only, the plugins it does not need left out.
fn janus_config(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir("/etc/janus").context("janus is not installed")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let keep = name == "janus.jcfg"
            || name == "janus.transport.http.jcfg"
            || name == "janus.plugin.videoroom.jcfg";
        if keep {
            std::fs::copy(entry.path(), dir.join(&name))?;
        }
    }
    let main = dir.join("janus.jcfg");
    let text = std::fs::read_to_string(&main)?.replace(
        "#ice_enforce_list = \"eth0\"",
        &format!("ice_enforce_list = \"{VETH_NS}\""),
    );
    std::fs::write(&main, text)?;
    Ok(())
}

pub fn main(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.render {
        return render(&a, path);
    }
    let started = Instant::now();
    let me_path = std::env::current_exe()?;
    let me = me_path.to_string_lossy().to_string();
    let parloir = a
        .parloir
        .clone()
        .unwrap_or_else(|| me_path.with_file_name("parloir"));
    let parloir = parloir.to_string_lossy().to_string();
    let (fanout, meeting, runs, secs): (Vec<u32>, Vec<u32>, usize, f64) = if a.quick {
        (vec![10, 40], vec![2, 6], a.runs.unwrap_or(2), 3.0)
    } else {
        (
            vec![10, 20, 40, 80, 120, 160, 200],
            vec![2, 4, 8, 12, 16],
            a.runs.unwrap_or(5),
            6.0,
        )
    };
    let host = Host::setup();
    let ip = host.target_ip.clone();
    let client = vec!["--client-ip".to_string(), host.client_ip.clone()];

    let start_parloir = || -> anyhow::Result<(Proc, Vec<String>)> {
        let http = free_tcp_port();
        let media = free_port();
        let (p, line) = start_pinned(
            &host,
            &parloir,
            &[
                "serve".into(),
                "--http".into(),
                format!("{ip}:{http}"),
                "--media".into(),
                format!("{ip}:{media}"),
                "--max-participants".into(),
                "1000".into(),
                // The benchmark looks for the forwarding limit, not the
                // packet rate an operator sized the node for (50,000/s by
                // default, which twelve 5-person meetings reach): that
                // budget is lifted, admission on CPU stress stays.
                "--capacity-pps".into(),
                "10000000".into(),
            ],
        )?;
        if !line.contains("http://") {
            bail!("parloir did not start: {line}");
        }
        Ok((
            p,
            [
                vec!["--target".into(), format!("http://{ip}:{http}")],
                client.clone(),
            ]
            .concat(),
        ))
    };
    let start_relay = || -> anyhow::Result<(Proc, Vec<String>)> {
        let port = free_port();
        let (p, line) = start_pinned(
            &host,
            &me,
            &["relay".into(), "--listen".into(), format!("{ip}:{port}")],
        )?;
        if !line.contains("listening") {
            bail!("relay did not start: {line}");
        }
        Ok((
            p,
            [
                vec!["--relay".into(), format!("{ip}:{port}")],
                client.clone(),
            ]
            .concat(),
        ))
    };
    let janus_dir = std::env::temp_dir().join(format!("parloir-janus-{}", std::process::id()));
    let start_janus = || -> anyhow::Result<(Proc, Vec<String>)> {
        janus_config(&janus_dir)?;
        let child = Command::new(&host.prefix[0])
            .args(&host.prefix[1..])
            .args(["janus", "-F"])
            .arg(&janus_dir)
            .arg("-L")
            .arg(janus_dir.join("janus.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start janus")?;
        let p = Proc(child);
        let url = format!("http://{ip}:8088");
        let end = Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let ok = Command::new("curl")
                .args([
                    "-sf",
                    "-m",
                    "1",
                    "-d",
                    r#"{"janus":"info","transaction":"b"}"#,
                    &format!("{url}/janus"),
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if Instant::now() > end {
                bail!("janus did not answer on {url}");
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok((p, [vec!["--janus".into(), url], client.clone()].concat()))
    };

    // Every target climbs both shapes; Janus only where it can run.
    let janus_reason = if !host.netns {
        Some("needs a network namespace (run as root): Janus offers only interface addresses")
    } else if which("janus").is_none() {
        Some("janus is not installed (apt-get install janus)")
    } else {
        None
    };
    let mut results = Vec::new();
    for (shape, levels) in [(Shape::Fanout, &fanout), (Shape::Meeting, &meeting)] {
        let mut targets: Vec<Starter> = vec![("parloir", &start_parloir)];
        if janus_reason.is_none() {
            targets.push(("janus", &start_janus));
        }
        targets.push(("udp_relay", &start_relay));
        let mut measured = measure(&targets, &me, shape, levels, runs, secs).into_iter();
        let mut next = || measured.next().expect("one result per target");
        let parloir_r = next();
        let janus_r = match janus_reason {
            Some(reason) => TargetResult::unavailable(reason),
            None => next(),
        };
        let relay_r = next();
        results.push((shape, levels.to_vec(), [parloir_r, janus_r, relay_r]));
    }
    let _ = std::fs::remove_dir_all(&janus_dir);
    drop(host);
    let stem = if a.quick { "quick" } else { "latest" };
    write_results(
        &a,
        stem,
        &results,
        runs,
        secs,
        started.elapsed().as_secs_f64(),
    )
}

/// One shape's levels and its results for Parloir, Janus and the relay.
type ShapeResults = (Shape, Vec<u32>, [TargetResult; 3]);

/// Summarizes an earlier run's points again and rewrites its outputs.
fn render(a: &BenchArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path:?}"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let levels = |v: &serde_json::Value| -> anyhow::Result<Vec<u32>> {
        Ok(serde_json::from_value(v.clone())?)
    };
    let targets = |shape: Shape, v: &serde_json::Value| -> anyhow::Result<[TargetResult; 3]> {
        Ok([
            TargetResult::from_json(shape, &v["parloir"])?,
            TargetResult::from_json(shape, &v["janus"])?,
            TargetResult::from_json(shape, &v["udp_relay"])?,
        ])
    };
    let results = vec![
        (
            Shape::Fanout,
            levels(&v["subscribers"])?,
            targets(Shape::Fanout, &v)?,
        ),
        (
            Shape::Meeting,
            levels(&v["meeting"]["rooms"])?,
            targets(Shape::Meeting, &v["meeting"])?,
        ),
    ];
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "latest".into());
    write_results(
        a,
        &stem,
        &results,
        v["runs_per_point"].as_u64().unwrap_or(0) as usize,
        v["seconds_per_run"].as_f64().unwrap_or(0.0),
        v["elapsed_s"].as_f64().unwrap_or(0.0),
    )
}

/// Writes `{stem}.md`, `.svg` and `.json` to the output folder, and prints
/// the table (or the JSON with `--json`).
fn write_results(
    a: &BenchArgs,
    stem: &str,
    results: &[ShapeResults],
    runs: usize,
    secs: f64,
    elapsed_s: f64,
) -> anyhow::Result<()> {
    let (fanout, meeting) = (&results[0].1, &results[1].1);
    let shape_json = |[p, j, r]: &[TargetResult; 3], shape: Shape| {
        let at = format!("at_{}", shape.unit());
        let ratio = |other: &TargetResult| {
            same_load_ratio(shape, p, other).map(|(level, x)| json!({"ratio": x, &at: level}))
        };
        json!({
            "parloir": p.to_json(shape),
            "janus": j.to_json(shape),
            "udp_relay": r.to_json(shape),
            "ratios": {
                "cpu_per_packet_parloir_over_janus": ratio(j),
                "cpu_per_packet_parloir_over_relay": ratio(r),
            },
        })
    };
    // Fan-out at the top level (the figures issue 4 names), meetings beside.
    let mut result = shape_json(&results[0].2, Shape::Fanout);
    let mut meeting_json = shape_json(&results[1].2, Shape::Meeting);
    meeting_json["load"] = json!(format!(
        "meetings of {MEETING_SIZE}: everyone publishes (same media as the fan-out) and receives the others; levels are rooms"
    ));
    meeting_json["rooms"] = json!(meeting);
    result["meeting"] = meeting_json;
    result["load"] = json!("fan-out: 1 publisher (VP8-shaped video 1.3 Mbit/s paced at 2.5x, 30 fps, keyframe every 2 s, Opus-shaped audio 50 pps) to N subscribers; CPU per packet and delays at the point nearest half a core of target load");
    result["subscribers"] = json!(fanout);
    result["runs_per_point"] = json!(runs);
    result["seconds_per_run"] = json!(secs);
    result["elapsed_s"] = json!(elapsed_s);

    std::fs::create_dir_all(&a.out)?;
    let md = markdown(results, runs, secs);
    std::fs::write(a.out.join(format!("{stem}.md")), &md)?;
    let [p, j, r] = &results[0].2;
    std::fs::write(
        a.out.join(format!("{stem}.svg")),
        svg(
            &[
                ("parloir", p, "#2f7de1"),
                ("janus", j, "#d9413a"),
                ("udp_relay", r, "#888888"),
            ],
            fanout,
        ),
    )?;
    std::fs::write(
        a.out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&result)?,
    )?;
    if a.json {
        println!("{result}");
    } else {
        print!("{md}");
    }
    Ok(())
}

/// Target load (cores) above which a target is saturated: it batches, its
/// cost per packet falls while its queues grow. The issue measures CPU
/// per packet between 20 and 70 % of a core.
const SATURATED: f64 = 0.7;

/// CPU per packet of `a` over `b` on the same load: the largest level both
/// carried under 1 % loss with neither saturated, else the largest level
/// both carried.
fn same_load_ratio(shape: Shape, a: &TargetResult, b: &TargetResult) -> Option<(u32, f64)> {
    let carried_levels = |t: &TargetResult| -> Vec<(u32, f64, bool)> {
        t.points
            .iter()
            .filter(|p| carried(p))
            .map(|p| {
                let level = shape.level(p);
                (level, p.cpu_us_per_packet, p.target_load <= SATURATED)
            })
            .collect()
    };
    let theirs = carried_levels(b);
    let common: Vec<(u32, f64, bool)> = carried_levels(a)
        .into_iter()
        .filter_map(|(n, x, ok)| {
            let (_, y, their_ok) = theirs.iter().find(|(m, _, _)| *m == n)?;
            (*y > 0.0).then_some((n, x / y, ok && *their_ok))
        })
        .collect();
    let largest = |unsaturated: bool| {
        common
            .iter()
            .filter(|(_, _, ok)| *ok || !unsaturated)
            .max_by_key(|(n, _, _)| *n)
            .map(|(n, x, _)| (*n, *x))
    };
    largest(true).or_else(|| largest(false))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.exists())
}

fn fmt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into())
}

fn markdown(results: &[ShapeResults], runs: usize, secs: f64) -> String {
    let mut s = format!(
        "Video 1.3 Mbit/s paced at 2.5× like a browser's (30 fps, keyframe every 2 s) and Opus-shaped audio per \
         publisher; each load climbed until a target loses ≥ 1 %; {runs} runs of {secs} s per point, median, the targets' runs \
         interleaved (Parloir, Janus, relay, Parloir, ...); target pinned to core 1, load generator to core 0. CPU per packet and delays are read at the point \
         nearest half a core of target load; ratios on the same load, the largest level both targets carried with \
         neither above {:.0} % of its core.\n",
        SATURATED * 100.0
    );
    for (shape, levels, [p, j, r]) in results {
        let (title, n) = match shape {
            Shape::Fanout => (format!("Fan-out 1→N, N = {levels:?}"), "N"),
            Shape::Meeting => (
                format!("Meetings of {MEETING_SIZE} (everyone publishes), rooms = {levels:?}"),
                "rooms",
            ),
        };
        s += &format!(
            "\n### {title}\n\n\
             | target | CPU µs/packet (at {n}, load) | max {n} with <1 % loss | delay p50 ms | delay p99 ms | RSS KiB/stream | SRTP |\n\
             |---|---|---|---|---|---|---|\n"
        );
        for (name, t) in [("parloir", p), ("janus", j), ("udp_relay", r)] {
            if !t.available {
                s += &format!(
                    "| {name} | not measured: {} | | | | | |\n",
                    t.reason.clone().unwrap_or_default()
                );
                continue;
            }
            s += &format!(
                "| {name} | {} ({n}={}, {} cores) | {} | {} | {} | {} | {} |\n",
                fmt(t.cpu_us_per_packet),
                t.cpu_measured_at_level
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                fmt(t.cpu_measured_at_load),
                match (t.max_level_under_1pct_loss, t.max_level_is_lower_bound) {
                    (Some(n), true) => format!("≥ {n} (never lost 1 %)"),
                    (Some(n), false) => n.to_string(),
                    (None, _) => "none".into(),
                },
                fmt(t.delay_p50_ms),
                fmt(t.delay_p99_ms),
                fmt(t.rss_kib_per_stream),
                t.srtp_profile.clone().unwrap_or_default(),
            );
        }
        s += "\n";
        if let Some((at, x)) = same_load_ratio(*shape, p, j) {
            s += &format!(
                "Parloir/Janus CPU per packet on the same load ({n}={at}): {x:.2}× (Janus uses {:.1}× the CPU of Parloir)\n",
                1.0 / x
            );
        }
        if let Some((at, x)) = same_load_ratio(*shape, p, r) {
            s += &format!("Parloir/relay CPU per packet on the same load ({n}={at}): {x:.2}×\n");
        }
        s += "\nPer point (median run):\n\n";
        s += &crate::run::table(&[p.points.clone(), j.points.clone(), r.points.clone()].concat());
    }
    s
}

/// CPU µs per packet against subscribers, one line per target.
fn svg(series: &[(&str, &TargetResult, &str)], levels: &[u32]) -> String {
    let (w, h, m) = (640.0, 360.0, 50.0);
    let max_n = *levels.iter().max().unwrap_or(&1) as f64;
    let max_y = series
        .iter()
        .flat_map(|(_, t, _)| t.points.iter().map(|p| p.cpu_us_per_packet))
        .fold(1.0f64, f64::max)
        * 1.1;
    let x = |n: f64| m + (w - 2.0 * m) * n / max_n;
    let y = |v: f64| h - m - (h - 2.0 * m) * v / max_y;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <line x1='{m}' y1='{}' x2='{}' y2='{}' stroke='black'/>\n<line x1='{m}' y1='{m}' x2='{m}' y2='{}' stroke='black'/>\n\
         <text x='{}' y='{}' text-anchor='middle'>subscribers (fan-out 1→N)</text>\n\
         <text x='14' y='{}' transform='rotate(-90 14 {})' text-anchor='middle'>target CPU µs per forwarded packet</text>\n",
        h - m, w - m, h - m, h - m, w / 2.0, h - 12.0, h / 2.0, h / 2.0
    );
    for n in levels {
        s += &format!(
            "<text x='{}' y='{}' text-anchor='middle'>{n}</text>\n",
            x(*n as f64),
            h - m + 16.0
        );
    }
    for k in 0..=4 {
        let v = max_y * k as f64 / 4.0;
        s += &format!(
            "<text x='{}' y='{}' text-anchor='end'>{v:.1}</text>\n",
            m - 4.0,
            y(v) + 4.0
        );
    }
    for (i, (name, t, color)) in series.iter().enumerate() {
        let pts: Vec<String> = t
            .points
            .iter()
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    x(Shape::Fanout.level(p) as f64),
                    y(p.cpu_us_per_packet)
                )
            })
            .collect();
        s += &format!(
            "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>\n",
            pts.join(" ")
        );
        s += &format!(
            "<text x='{}' y='{}' fill='{color}'>{name}</text>\n",
            w - m - 80.0,
            m + 16.0 * i as f64
        );
    }
    s + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(participants: u32, loss_pct: f64, cpu: f64, load: f64) -> Summary {
        Summary {
            participants,
            loss_pct,
            cpu_us_per_packet: cpu,
            target_load: load,
            ..Summary::default()
        }
    }

    #[test]
    fn ratios_compare_the_same_load() {
        // Parloir carries 10, 40, 80 subscribers; Janus 10 and 40, not 80.
        let p = summarize(
            Shape::Fanout,
            vec![
                point(11, 0.0, 20.0, 0.1),
                point(41, 0.0, 15.0, 0.2),
                point(81, 0.0, 12.0, 0.45),
            ],
        );
        let j = summarize(
            Shape::Fanout,
            vec![
                point(11, 0.0, 40.0, 0.2),
                point(41, 0.0, 45.0, 0.5),
                point(81, 20.0, 50.0, 0.9),
            ],
        );
        assert_eq!(
            same_load_ratio(Shape::Fanout, &p, &j),
            Some((40, 15.0 / 45.0))
        );
        // Each is read nearest half load; Janus's maximum is a real one.
        assert_eq!(p.cpu_measured_at_level, Some(80));
        assert_eq!(j.cpu_measured_at_level, Some(40));
        assert_eq!(j.max_level_under_1pct_loss, Some(40));
        assert!(!j.max_level_is_lower_bound);
        assert!(p.max_level_is_lower_bound);
    }

    #[test]
    fn ratios_skip_a_saturated_level() {
        // Janus carries 16 rooms, but at 0.9 cores: its cost per packet
        // falls as it batches. The ratio is read at 8 rooms.
        let p = summarize(
            Shape::Meeting,
            vec![point(40, 0.0, 9.0, 0.3), point(80, 0.0, 9.0, 0.55)],
        );
        let j = summarize(
            Shape::Meeting,
            vec![point(40, 0.0, 21.0, 0.7), point(80, 0.0, 15.0, 0.9)],
        );
        assert_eq!(
            same_load_ratio(Shape::Meeting, &p, &j),
            Some((8, 9.0 / 21.0))
        );
        // With no unsaturated level in common, the largest one carried.
        let j = summarize(Shape::Meeting, vec![point(80, 0.0, 15.0, 0.9)]);
        assert_eq!(
            same_load_ratio(Shape::Meeting, &p, &j),
            Some((16, 9.0 / 15.0))
        );
    }

    #[test]
    fn meeting_levels_are_rooms() {
        let m = summarize(Shape::Meeting, vec![point(40, 0.0, 10.0, 0.5)]);
        assert_eq!(m.max_level_under_1pct_loss, Some(8));
        assert_eq!(
            Shape::Meeting.run_args(8),
            ["--preset", "meeting", "--rooms", "8", "--participants", "5"]
        );
        let json = m.to_json(Shape::Meeting);
        assert_eq!(json["max_rooms_under_1pct_loss"], 8);
    }
}
