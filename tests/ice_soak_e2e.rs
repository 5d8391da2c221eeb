//! A soak, run by hand (ten minutes, too long for CI):
//!
//! ```sh
//! cargo test --release --test ice_soak_e2e -- --ignored --nocapture
//! ```
//!
//! A participant sends its own valid binding requests from 3 new source
//! ports a second (`parloir-loadtest flood-ports`) for 10 minutes, beside
//! a two-person Chromium call. Before each ICE agent was bounded, the
//! worker's CPU grew with every port (0.2 to 0.7 cores in 200 s, still
//! growing) and so did its memory; now it takes 16 addresses per ICE
//! generation and drops the rest before str0m. The server's CPU and
//! anonymous memory are sampled every 10 s; after the first minute both
//! must stay flat: the mean of the last third of the minutes within 10 %
//! of the first third's (memory: or 2 MiB, the allocator's trimming
//! step). The call must still decode at the end. `PARLOIR_SOAK_SECS`
//! shortens the attack.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{frames_decoded, join, loadtest_bin, wait_for, wait_full_mesh, Server};

/// One sample: the server's CPU over the last period (cores), its
/// anonymous resident memory (KiB).
struct Sample {
    cores: f64,
    rss_kib: u64,
}

const PERIOD: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 10-minute soak, run by hand"]
async fn new_source_ports_for_ten_minutes_leave_cpu_and_memory_flat() {
    let secs: u64 = std::env::var("PARLOIR_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    assert!(secs >= 180, "at least 3 minutes: the first is not judged");
    let server = Server::start();
    let browser = Browser::launch().await;
    let tabs = vec![
        join(&browser, &server.http, "soak-e2e", "Ana").await,
        join(&browser, &server.http, "soak-e2e", "Ben").await,
    ];
    wait_full_mesh("the call up", &tabs, Duration::from_secs(20)).await;

    let mut attacker = Command::new(loadtest_bin())
        .args(["flood-ports", "--target", &server.http])
        .args(["--client-ip", "127.0.0.2", "--rate", "3"])
        .args(["--duration", &secs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start flood-ports");
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut cpu = server.cpu_seconds();
    let mut last = started;
    while attacker.try_wait().expect("flood-ports").is_none() {
        // A sampling period, not a wait for a condition.
        tokio::time::sleep(PERIOD).await;
        let (now, used) = (Instant::now(), server.cpu_seconds());
        samples.push(Sample {
            cores: (used - cpu) / now.duration_since(last).as_secs_f64(),
            rss_kib: server.rss_kib(),
        });
        (cpu, last) = (used, now);
    }
    let report = attacker.wait_with_output().expect("flood-ports ends");
    let report = String::from_utf8_lossy(&report.stdout);
    println!("{report}");
    assert!(report.contains("own call connected: true"), "{report}");

    // The call still decodes both ways.
    let before: Vec<_> =
        futures_util::future::join_all(tabs.iter().map(|(t, _)| frames_decoded(t))).await;
    wait_for(
        "the call still decoding",
        Duration::from_secs(5),
        || async {
            for ((tab, me), was) in tabs.iter().zip(&before) {
                let now = frames_decoded(tab).await;
                let other = tabs.iter().map(|(_, id)| *id).find(|id| id != me)?;
                let had = was.get(&other).copied().unwrap_or(0);
                if now.get(&other).copied().unwrap_or(0) <= had + 10 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // Per minute: mean CPU, last memory reading.
    let minutes: Vec<(f64, u64)> = samples
        .chunks(6)
        .map(|c| {
            let cores = c.iter().map(|s| s.cores).sum::<f64>() / c.len() as f64;
            (cores, c[c.len() - 1].rss_kib)
        })
        .collect();
    println!("minute | server CPU (cores) | anonymous memory (MiB)");
    for (m, (cores, rss)) in minutes.iter().enumerate() {
        println!(
            "{:>6} | {cores:>18.3} | {:>22.1}",
            m + 1,
            *rss as f64 / 1024.0
        );
    }
    // Flat after the first minute: the last third of the judged minutes
    // against the first third, so that a trend shows and a single busy
    // minute of the call (its bitrate ramping) does not.
    let judged = &minutes[1..];
    let third = (judged.len() / 3).max(1);
    let mean = |of: &[(f64, u64)]| {
        let n = of.len() as f64;
        let cores = of.iter().map(|m| m.0).sum::<f64>() / n;
        let rss = of.iter().map(|m| m.1 as f64).sum::<f64>() / n;
        (cores, rss)
    };
    let (cpu_early, rss_early) = mean(&judged[..third]);
    let (cpu_late, rss_late) = mean(&judged[judged.len() - third..]);
    println!(
        "CPU {cpu_early:.3} -> {cpu_late:.3} cores; memory {:.1} -> {:.1} MiB",
        rss_early / 1024.0,
        rss_late / 1024.0
    );
    assert!(
        cpu_late <= cpu_early * 1.1,
        "CPU grew: {cpu_early:.3} -> {cpu_late:.3} cores"
    );
    assert!(
        rss_late <= (rss_early * 1.1).max(rss_early + 2048.0),
        "memory grew: {rss_early:.0} -> {rss_late:.0} KiB"
    );
}
