//! Measuring: a load run against a fresh target process, the runs of
//! each point and their median, when a target carried a load, and the
//! figures read from a target's points (where it is read, its maximum,
//! its cost per packet against another's on the same load).

use std::process::Command;

use anyhow::bail;

use super::hosts::Proc;
use super::Shape;
use crate::run::Summary;

/// Per-target figures of one shape, as the issue asks for them. In JSON
/// the level fields are named by the shape's unit
/// (`max_subscribers_under_1pct_loss`, `max_rooms_under_1pct_loss`).
#[derive(Debug, Clone, Default)]
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
    pub(super) fn unavailable(reason: &str) -> Self {
        TargetResult {
            reason: Some(reason.into()),
            ..TargetResult::default()
        }
    }
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
pub(super) type Starter<'a> = (&'a str, &'a dyn Fn() -> anyhow::Result<(Proc, Vec<String>)>);

/// Measures every target at each level in turn, their runs interleaved
/// (run 1 of each, then run 2 of each, ...): this machine's speed drifts by
/// a quarter within half an hour, and targets measured one after the
/// other would carry that drift into their ratios. A target stops climbing
/// past its first load it cannot carry (or that saturates the generator);
/// one that fails to run is reported unavailable, the others go on.
pub(super) fn measure(
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
                let handoffs = s
                    .handoffs_per_s
                    .map(|h| format!(" handoffs {h:.0}/s"))
                    .unwrap_or_default();
                eprintln!(
                    "{name:>9} {n:>3} {} run {}: loss {:.2}% CPU {:.2} cores {:.2} µs/pkt p99 {:.2} ms{handoffs}",
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
pub(super) fn carried(p: &Summary) -> bool {
    p.loss_pct < 1.0 && p.failed == 0
}

/// Load generator CPU (cores) above which its own delays would be measured.
const GENERATOR_LIMIT: f64 = 0.9;

pub(super) fn summarize(shape: Shape, points: Vec<Summary>) -> TargetResult {
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

/// Target load (cores) above which a target is saturated: it batches, its
/// cost per packet falls while its queues grow. The issue measures CPU
/// per packet between 20 and 70 % of a core.
pub(super) const SATURATED: f64 = 0.7;

/// CPU per packet of `a` over `b` on the same load: the largest level both
/// carried under 1 % loss with neither saturated, else the largest level
/// both carried.
pub(super) fn same_load_ratio(
    shape: Shape,
    a: &TargetResult,
    b: &TargetResult,
) -> Option<(u32, f64)> {
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
