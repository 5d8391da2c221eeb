//! The benchmark: the same fan-out loads against Parloir, against the bare
//! UDP relay (the machine's limit) and against Janus where it can be run,
//! each target pinned to core 1 and the load generator to core 0, every
//! point measured several times on a fresh target process.
//!
//! Here: the arguments, the two load shapes and the driver that climbs
//! them; where targets run in [`hosts`], how a point is measured and read
//! in [`measure`], what is written in [`report`].

pub(crate) mod hosts;
mod measure;
mod report;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::run::Summary;
use hosts::{free_port, free_tcp_port, janus_config, start_pinned, which, Host, Proc};
use measure::{measure, Starter, TargetResult};
use report::{render, write_results};

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
    /// Media shards Parloir runs, each on a core of its own: 1 on core 1
    /// (the generator's is 0), N on cores 1, 2, ... (wrapping round onto
    /// the generator's core on a machine with fewer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=62))]
    media_threads: u16,
    /// A competing load on the targets' core throughout: stress-ng busy
    /// this percentage of the time (an operator's host is rarely idle).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    compete: Option<u8>,
    /// Busy threads of that competing load, all on the targets' core: a
    /// host busy with many threads (browsers, builds) gives each runnable
    /// thread its share of a core, so one media thread gets a smaller
    /// share than many.
    #[arg(long, default_value_t = 1, requires = "compete", value_parser = clap::value_parser!(u8).range(1..=64))]
    compete_threads: u8,
    /// Measure nothing: start every target the benchmark would measure,
    /// with the arguments it would give, and fail if one does not start
    /// (CI runs this, so the benchmark cannot silently stop running).
    #[arg(long, conflicts_with = "render")]
    check: bool,
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
    let ncpu = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cores: Vec<String> = (1..=usize::from(a.media_threads))
        .map(|c| (c % ncpu).to_string())
        .collect();
    let host = Host::setup(&cores.join(","));
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
                "--media-threads".into(),
                a.media_threads.to_string(),
                // The benchmark looks for the forwarding limit, not the
                // packet rate an operator sized the node for (50,000/s by
                // default, which twelve 5-person meetings reach): that
                // budget is lifted. So is admission on CPU stress: with
                // estimation on, the DTLS handshakes of sixty joins in a
                // second lifted stress past 0.85 and refused the twelfth
                // meeting of the ramp while forwarding used half a core
                // (smoothing that stress is issue 13's).
                "--capacity-pps".into(),
                "10000000".into(),
                "--admission-threshold".into(),
                "1".into(),
                "--admission-hard".into(),
                "1".into(),
                // Every participant comes from one address here.
                "--no-address-limits".into(),
                // A fresh process per run, nothing kept from the last.
                "--state-dir".into(),
                "off".into(),
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
    if a.check {
        let mut targets: Vec<Starter> = vec![("parloir", &start_parloir)];
        match janus_reason {
            None => targets.push(("janus", &start_janus)),
            Some(reason) => eprintln!("    janus: not checked, {reason}"),
        }
        targets.push(("udp_relay", &start_relay));
        let failed: Vec<String> = targets
            .iter()
            .filter_map(|(name, start)| match start() {
                Ok(_) => {
                    eprintln!("    {name}: started");
                    None
                }
                Err(e) => Some(format!("{name}: {e:#}")),
            })
            .collect();
        let _ = std::fs::remove_dir_all(&janus_dir);
        if !failed.is_empty() {
            bail!("the benchmark cannot start {}", failed.join("; "));
        }
        return Ok(());
    }
    // Kept for the whole run, ended when dropped.
    let _competitor = match a.compete {
        Some(pct) => Some(compete(pct, a.compete_threads)?),
        None => None,
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
    // A run under other conditions keeps the plain run's files.
    let mut stem = if a.quick { "quick" } else { "latest" }.to_string();
    if a.media_threads > 1 {
        stem += &format!("-shards{}", a.media_threads);
    }
    if let Some(pct) = a.compete {
        stem += &format!("-compete{}x{pct}", a.compete_threads);
    }
    write_results(
        &a,
        &stem,
        &results,
        runs,
        secs,
        started.elapsed().as_secs_f64(),
    )
}

/// One shape's levels and its results for Parloir, Janus and the relay.
type ShapeResults = (Shape, Vec<u32>, [TargetResult; 3]);

/// stress-ng, stopped with SIGTERM when dropped (SIGKILL would leave its
/// workers running).
struct Competitor(std::process::Child);

impl Drop for Competitor {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// stress-ng on the targets' core (1): `threads` threads, each busy `pct` %
/// of the time.
fn compete(pct: u8, threads: u8) -> anyhow::Result<Competitor> {
    let child = Command::new("stress-ng")
        .arg("--cpu")
        .arg(threads.to_string())
        .args(["--taskset", "1", "--cpu-load"])
        .arg(pct.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start stress-ng (apt-get install stress-ng)")?;
    eprintln!("competing load: stress-ng on core 1, {threads} thread(s) {pct} % busy");
    Ok(Competitor(child))
}
