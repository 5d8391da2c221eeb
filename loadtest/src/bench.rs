//! The benchmark: the same fan-out loads against Parloir, against the bare
//! UDP relay (the machine's limit) and against Janus where it can be run,
//! each target pinned to core 1 and the load generator to core 0, every
//! point measured several times on a fresh target process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
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
}

/// Per-target figures, as the issue asks for them.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// CPU per packet and delays are read at one point: the one whose
    /// target load is nearest half a core (within 20–70 % when any is).
    pub cpu_us_per_packet: Option<f64>,
    /// Load (subscribers) and target CPU at which the figures were taken.
    pub cpu_measured_at_subscribers: Option<u32>,
    pub cpu_measured_at_load: Option<f64>,
    pub max_subscribers_under_1pct_loss: Option<u32>,
    /// True when every load tried stayed under 1 % loss: the real maximum
    /// is higher than the largest load tried.
    pub max_subscribers_is_lower_bound: bool,
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
    pub rss_kib_per_stream: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
            cpu_measured_at_subscribers: None,
            cpu_measured_at_load: None,
            max_subscribers_under_1pct_loss: None,
            max_subscribers_is_lower_bound: false,
            delay_p50_ms: None,
            delay_p99_ms: None,
            rss_kib_per_stream: None,
            srtp_profile: None,
            points: Vec::new(),
        }
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
    subscribers: u32,
    pid: u32,
    secs: f64,
) -> anyhow::Result<Summary> {
    let out = Command::new("taskset")
        .args(["-c", "0", me, "run", "--preset", "fanout", "--json"])
        .args(target)
        .args(["--participants", &(subscribers + 1).to_string()])
        .args([
            "--duration",
            &secs.to_string(),
            "--warmup",
            "1.5",
            "--ramp",
            "100",
        ])
        .args(["--target-pid", &pid.to_string()])
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("load run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn median_by(mut v: Vec<Summary>, key: impl Fn(&Summary) -> f64) -> Summary {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v[v.len() / 2].clone()
}

fn measure(
    name: &str,
    me: &str,
    levels: &[u32],
    runs: usize,
    secs: f64,
    start: &dyn Fn() -> anyhow::Result<(Proc, Vec<String>)>,
) -> anyhow::Result<TargetResult> {
    let mut points = Vec::new();
    for &n in levels {
        let mut samples = Vec::new();
        for r in 0..runs {
            let (proc_, target) = start()?;
            let s = load(me, &target, n, proc_.0.id(), secs)?;
            eprintln!(
                "{name:>9} {n:>3} subscribers run {}: loss {:.2}% CPU {:.2} cores {:.2} µs/pkt p99 {:.2} ms",
                r + 1,
                s.loss_pct,
                s.target_load,
                s.cpu_us_per_packet,
                s.delay_p99_ms
            );
            samples.push(s);
            drop(proc_);
        }
        // Median run by CPU per packet; loss and delay from the same run.
        let all: Vec<f64> = samples.iter().map(|s| s.cpu_us_per_packet).collect();
        let mut point = median_by(samples, |s| s.cpu_us_per_packet);
        point.runs_cpu_us_per_packet = all;
        // Past the first load it cannot carry, or that saturates the load
        // generator, higher loads measure nothing more.
        let stop =
            point.loss_pct >= 1.0 || point.failed > 0 || point.generator_load > GENERATOR_LIMIT;
        points.push(point);
        if stop {
            break;
        }
    }
    Ok(summarize(points))
}

/// Load generator CPU (cores) above which its own delays would be measured.
const GENERATOR_LIMIT: f64 = 0.9;

fn subscribers(p: &Summary) -> u32 {
    p.participants.saturating_sub(1)
}

fn summarize(points: Vec<Summary>) -> TargetResult {
    let carried = |p: &Summary| p.loss_pct < 1.0 && p.failed == 0;
    // The point nearest half load among those carried (a target that never
    // gets there is read at its busiest point).
    let pick = (0..points.len())
        .filter(|i| carried(&points[*i]))
        .min_by(|a, b| {
            let d = |i: usize| (points[i].target_load - 0.5).abs();
            d(*a).total_cmp(&d(*b))
        });
    let max_ok = points.iter().filter(|p| carried(p)).map(subscribers).max();
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
        cpu_measured_at_subscribers: pick.map(|i| subscribers(&points[i])),
        cpu_measured_at_load: pick.map(|i| points[i].target_load),
        max_subscribers_under_1pct_loss: max_ok,
        max_subscribers_is_lower_bound: lower_bound,
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
    let started = Instant::now();
    let me_path = std::env::current_exe()?;
    let me = me_path.to_string_lossy().to_string();
    let parloir = a
        .parloir
        .clone()
        .unwrap_or_else(|| me_path.with_file_name("parloir"));
    let parloir = parloir.to_string_lossy().to_string();
    let (levels, runs, secs): (Vec<u32>, usize, f64) = if a.quick {
        (vec![10, 40], a.runs.unwrap_or(2), 3.0)
    } else {
        (
            vec![10, 20, 40, 80, 120, 160, 200],
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

    let parloir_r = measure("parloir", &me, &levels, runs, secs, &start_parloir)?;
    let janus_r = if !host.netns {
        TargetResult::unavailable(
            "needs a network namespace (run as root): Janus offers only interface addresses",
        )
    } else if which("janus").is_none() {
        TargetResult::unavailable("janus is not installed (apt-get install janus)")
    } else {
        match measure("janus", &me, &levels, runs, secs, &start_janus) {
            Ok(r) => r,
            Err(e) => TargetResult::unavailable(&format!("janus run failed: {e:#}")),
        }
    };
    let relay_r = measure("udp_relay", &me, &levels, runs, secs, &start_relay)?;
    let _ = std::fs::remove_dir_all(&janus_dir);
    drop(host);

    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let result = json!({
        "parloir": parloir_r,
        "janus": janus_r,
        "udp_relay": relay_r,
        "ratios": {
            "cpu_per_packet_parloir_over_janus": ratio(parloir_r.cpu_us_per_packet, janus_r.cpu_us_per_packet),
            "cpu_per_packet_parloir_over_relay": ratio(parloir_r.cpu_us_per_packet, relay_r.cpu_us_per_packet),
        },
        "load": "fan-out: 1 publisher (VP8-shaped video 1.3 Mbit/s paced at 2.5x, 30 fps, keyframe every 2 s, Opus-shaped audio 50 pps) to N subscribers; CPU per packet and delays at the point nearest half a core of target load",
        "subscribers": levels,
        "runs_per_point": runs,
        "seconds_per_run": secs,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all(&a.out)?;
    let md = markdown(&parloir_r, &relay_r, &janus_r, &levels, runs, secs);
    let stem = if a.quick { "quick" } else { "latest" };
    std::fs::write(a.out.join(format!("{stem}.md")), &md)?;
    std::fs::write(
        a.out.join(format!("{stem}.svg")),
        svg(
            &[
                ("parloir", &parloir_r, "#2f7de1"),
                ("janus", &janus_r, "#d9413a"),
                ("udp_relay", &relay_r, "#888888"),
            ],
            &levels,
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

fn markdown(
    p: &TargetResult,
    r: &TargetResult,
    j: &TargetResult,
    levels: &[u32],
    runs: usize,
    secs: f64,
) -> String {
    let mut s = format!(
        "Fan-out 1→N (video 1.3 Mbit/s paced at 2.5× like a browser's, 30 fps, keyframe every 2 s; Opus-shaped audio), \
         N = {levels:?} until a target loses ≥ 1 %; {runs} runs of {secs} s per point, median; \
         target pinned to core 1, load generator to core 0. CPU per packet and delays are read at the point nearest \
         half a core of target load.\n\n\
         | target | CPU µs/packet (at N, load) | max N with <1 % loss | delay p50 ms | delay p99 ms | RSS KiB/stream | SRTP |\n\
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
            "| {name} | {} (N={}, {} cores) | {} | {} | {} | {} | {} |\n",
            fmt(t.cpu_us_per_packet),
            t.cpu_measured_at_subscribers
                .map(|n| n.to_string())
                .unwrap_or_default(),
            fmt(t.cpu_measured_at_load),
            match (
                t.max_subscribers_under_1pct_loss,
                t.max_subscribers_is_lower_bound
            ) {
                (Some(n), true) => format!("≥ {n} (all tried)"),
                (Some(n), false) => n.to_string(),
                (None, _) => "none".into(),
            },
            fmt(t.delay_p50_ms),
            fmt(t.delay_p99_ms),
            fmt(t.rss_kib_per_stream),
            t.srtp_profile.clone().unwrap_or_default(),
        );
    }
    if let (Some(a), Some(b)) = (p.cpu_us_per_packet, j.cpu_us_per_packet) {
        s += &format!(
            "\nParloir/Janus CPU per packet: {:.2}× (Janus uses {:.1}× the CPU of Parloir)\n",
            a / b,
            b / a
        );
    }
    if let (Some(a), Some(b)) = (p.cpu_us_per_packet, r.cpu_us_per_packet) {
        s += &format!("Parloir/relay CPU per packet: {:.2}×\n", a / b);
    }
    s += "\nPer point (median run):\n\n";
    s += &crate::run::table(&[p.points.clone(), j.points.clone(), r.points.clone()].concat());
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
                    x(subscribers(p) as f64),
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
