//! What a surge leaves: `NAME.json` (every second, every join), `NAME.md`
//! (the checks, the totals, the seconds) and `NAME.svg` (the seconds
//! plotted), and the summary printed at the end.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use super::plan::{Plan, Shape};
use super::timeline::{
    first_room_on, seconds, stress_at_admission, JoinRecord, NodeSample, SecondFigures,
};
use super::Accounted;
use crate::plot::{self, Line, Panel, COLORS};
use crate::stats::percentile;

/// Everything a surge recorded.
pub struct Recorded {
    pub plan: Plan,
    pub shape: Shape,
    /// The hard threshold (the soft one is the shape's).
    pub hard: f64,
    pub joins: Vec<JoinRecord>,
    pub samples: Vec<NodeSample>,
    /// (µs, the headroom gauge).
    pub headroom: Vec<(u64, u64)>,
    pub room_node: HashMap<u32, String>,
    pub media: Accounted,
    /// Calls that ended in an error, with it.
    pub failed: Vec<String>,
    pub third_worker_started_us: Option<u64>,
    pub redirect_on_us: Option<u64>,
    pub took_s: f64,
}

pub struct Written {
    pub summary: String,
    pub paths: Vec<String>,
}

/// The four things a surge must show, as measured.
struct Checks {
    /// Worst second of the running calls' loss: (%, second).
    worst_loss: Option<(f64, u32)>,
    priority_rooms: usize,
    priority_admitted: usize,
    /// Seconds from the third worker's start to its first room.
    third_worker_first_room_s: Option<f64>,
    ordinary_admitted: usize,
    /// Ordinary rooms let in while their worker showed at least the soft
    /// threshold, and the highest stress any ordinary room was let in at.
    over_soft: usize,
    /// Ordinary rooms whose worker and reports were known: all of them,
    /// or the check proves nothing.
    judged: usize,
    highest_stress_at_admission: Option<f64>,
}

impl Checks {
    fn rows(&self) -> Vec<[String; 4]> {
        let pass = |ok: bool| if ok { "pass" } else { "FAIL" }.to_string();
        let (loss, loss_ok) = match self.worst_loss {
            Some((pct, t)) => (format!("{pct:.3} % (second {t})"), pct < 1.0),
            None => ("nothing was owed".into(), false),
        };
        let w3 = self.third_worker_first_room_s;
        vec![
            [
                "running calls' loss, worst second".into(),
                "< 1 %".into(),
                loss,
                pass(loss_ok),
            ],
            [
                "priority rooms let in".into(),
                "100 %".into(),
                format!("{} of {}", self.priority_admitted, self.priority_rooms),
                pass(self.priority_admitted == self.priority_rooms),
            ],
            [
                "third worker's first room, after its start".into(),
                "≤ 2 s".into(),
                w3.map_or("none".into(), |s| format!("{s:.2} s")),
                pass(w3.is_some_and(|s| s <= 2.0)),
            ],
            [
                "ordinary rooms let in onto a worker above soft".into(),
                "0".into(),
                format!(
                    "{} of {} ({} judged; highest stress at a room let in: {})",
                    self.over_soft,
                    self.ordinary_admitted,
                    self.judged,
                    self.highest_stress_at_admission
                        .map_or("—".into(), |s| format!("{s:.3}"))
                ),
                pass(self.over_soft == 0 && self.judged == self.ordinary_admitted),
            ],
        ]
    }
}

fn checks(r: &Recorded, secs: &[SecondFigures]) -> Checks {
    let first = |j: &&JoinRecord| j.member == 0;
    let priority_admitted = r
        .joins
        .iter()
        .filter(first)
        .filter(|j| j.priority && j.refused.is_none())
        .count();
    let seen = stress_at_admission(&r.joins, &r.room_node, &r.samples);
    Checks {
        worst_loss: secs
            .iter()
            .filter_map(|s| Some((s.loss_pct?, s.t)))
            .max_by(|a, b| a.0.total_cmp(&b.0)),
        priority_rooms: r.plan.priority_rooms(),
        priority_admitted,
        third_worker_first_room_s: r
            .third_worker_started_us
            .and_then(|t| first_room_on("w3", t, &r.joins, &r.room_node))
            .map(|us| us as f64 / 1e6),
        ordinary_admitted: r
            .joins
            .iter()
            .filter(first)
            .filter(|j| !j.priority && j.refused.is_none())
            .count(),
        over_soft: seen.iter().filter(|s| s.stress >= r.shape.soft).count(),
        judged: seen.len(),
        highest_stress_at_admission: seen.iter().map(|s| s.stress).reduce(f64::max),
    }
}

/// Totals over the whole surge, as (what, figure) rows.
fn totals(r: &Recorded, secs: &[SecondFigures]) -> Vec<(String, String)> {
    let sum = |f: fn(&SecondFigures) -> u32| secs.iter().map(f).sum::<u32>();
    let owed: u64 = secs.iter().map(|s| s.owed).sum();
    let received: u64 = secs.iter().map(|s| s.received).sum();
    let mut delays: Vec<u32> = r
        .media
        .seconds
        .iter()
        .flat_map(|s| s.delays_us.iter().copied())
        .collect();
    let admitted_joins = r.joins.iter().filter(|j| j.refused.is_none()).count();
    let turned_away: Vec<&JoinRecord> = r
        .joins
        .iter()
        .filter(|j| {
            j.member == 0 && matches!(j.refused.as_deref(), Some("overloaded" | "redirected"))
        })
        .collect();
    let offered = turned_away
        .iter()
        .filter(|j| j.partners == super::cluster::PARTNERS.len())
        .count();
    vec![
        (
            "rooms that tried to start".into(),
            r.plan.rooms.len().to_string(),
        ),
        (
            "ordinary rooms let in".into(),
            sum(|s| s.rooms_admitted).to_string(),
        ),
        (
            "priority rooms let in".into(),
            sum(|s| s.priority_admitted).to_string(),
        ),
        (
            "rooms refused (`overloaded`, partners shown)".into(),
            sum(|s| s.rooms_refused).to_string(),
        ),
        (
            "rooms redirected to partners (operator's switch)".into(),
            sum(|s| s.rooms_redirected).to_string(),
        ),
        (
            "rooms turned away that were offered both partners".into(),
            format!("{offered} of {}", turned_away.len()),
        ),
        (
            "joins to running rooms refused".into(),
            sum(|s| s.joins_refused).to_string(),
        ),
        ("participants let in".into(), admitted_joins.to_string()),
        (
            "calls that failed after being let in".into(),
            r.failed.len().to_string(),
        ),
        (
            "streams owed to participants (silent)".into(),
            format!("{} ({})", r.media.streams, r.media.silent),
        ),
        (
            "packets owed, received, loss".into(),
            format!(
                "{owed}, {received}, {:.3} %",
                if owed > 0 {
                    100.0 * owed.saturating_sub(received) as f64 / owed as f64
                } else {
                    100.0
                }
            ),
        ),
        (
            "delay p50 / p99 (ms)".into(),
            format!(
                "{:.2} / {:.2}",
                percentile(&mut delays, 0.5) / 1000.0,
                percentile(&mut delays, 0.99) / 1000.0
            ),
        ),
    ]
}

fn workers(r: &Recorded) -> Vec<String> {
    let ids: BTreeSet<&str> = r.samples.iter().map(|s| s.id.as_str()).collect();
    ids.into_iter().map(String::from).collect()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}"))
}

pub fn write(r: &Recorded, dir: &Path, name: &str) -> anyhow::Result<Written> {
    let end_s = r.plan.end.as_secs() as u32;
    let secs = seconds(
        end_s,
        &r.joins,
        &r.samples,
        &r.headroom,
        r.media.seconds.clone(),
    );
    let checks = checks(r, &secs);
    let totals = totals(r, &secs);
    let workers = workers(r);
    let command = std::iter::once("target/release/parloir-loadtest".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let s = &r.shape;
    let setup = format!(
        "Redis, a signal server (soft threshold {}, hard {}, two partners) and two workers of `--capacity-pps {}`, all on this machine's loopback. \
         Rooms of {} people, each publishing voice (50 packets/s) and video ({} fps, {} kbit/s): {:.0} packets/s per room at its worker, so two workers carry {} rooms below the soft threshold. \
         {} rooms ({}× that) try to start, evenly over {} s, one in {} a priority room with a grant from the operators' API ({} in all); the calls go on {} s after. \
         A third worker starts at {:.1} s{}. Refused rooms and refused joins do not retry.",
        r.shape.soft,
        r.hard,
        r.shape.capacity_pps,
        s.room_size,
        s.fps,
        s.video_bitrate / 1000,
        r.plan.room_pps,
        r.plan.carried_by_two,
        r.plan.rooms.len(),
        s.demand,
        s.ramp.as_secs_f64(),
        s.priority_every,
        r.plan.priority_rooms(),
        s.hold.as_secs_f64(),
        r.third_worker_started_us.map_or(f64::NAN, |t| t as f64 / 1e6),
        r.redirect_on_us.map_or(String::new(), |t| format!(
            "; the operator turns \"redirect new rooms\" on at {:.1} s",
            t as f64 / 1e6
        )),
    );

    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "| check | required | measured | |\n|---|---|---|---|"
    );
    for row in checks.rows() {
        let _ = writeln!(summary, "| {} |", row.join(" | "));
    }
    let _ = writeln!(summary, "\n| total | |\n|---|---|");
    for (k, v) in &totals {
        let _ = writeln!(summary, "| {k} | {v} |");
    }

    let mut md = format!(
        "# Surge\n\n{setup}\n\nMade by `{command}` in {:.0} s.\n\n![the surge, second by second]({name}.svg)\n\n{summary}",
        r.took_s
    );
    md += "\nA running call's loss counts every packet sent to a participant let in, from its stream's first packet (or 3 s after both ends connected, if none came) to the end: a stream that stops is lost, not left out. \
           \"Above soft\" judges each ordinary room on every report of its worker the operators' API showed from just before its join to just after its answer: a room counts only if all of them were at or above the threshold.\n";
    if !r.failed.is_empty() {
        md += "\nCalls that failed:\n\n";
        for f in &r.failed {
            let _ = writeln!(md, "- {f}");
        }
    }
    md += "\n## Second by second\n\n| s | let in | priority | refused | redirected | joins refused | running | ";
    for w in &workers {
        let _ = write!(md, "{w} stress | ");
    }
    md += "headroom | loss % | delay p50 ms | delay p99 ms |\n|";
    md += &"---|".repeat(11 + workers.len());
    md += "\n";
    for x in &secs {
        let _ = write!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | ",
            x.t,
            x.rooms_admitted,
            x.priority_admitted,
            x.rooms_refused,
            x.rooms_redirected,
            x.joins_refused,
            x.running_calls
        );
        for w in &workers {
            let _ = write!(md, "{} | ", opt(x.stress.get(w).copied(), 2));
        }
        let _ = writeln!(
            md,
            "{} | {} | {} | {} |",
            x.headroom.map_or("—".into(), |h| h.to_string()),
            opt(x.loss_pct, 3),
            opt(x.delay_p50_ms, 2),
            opt(x.delay_p99_ms, 2)
        );
    }

    let rows = checks.rows();
    let json = json!({
        "command": command,
        "setup": setup,
        "settings": {
            "soft": r.shape.soft, "hard": r.hard, "capacity_pps": r.shape.capacity_pps,
            "room_size": s.room_size, "fps": s.fps, "video_bitrate": s.video_bitrate,
            "room_pps": r.plan.room_pps, "carried_by_two": r.plan.carried_by_two,
            "rooms": r.plan.rooms.len(), "priority_rooms": r.plan.priority_rooms(),
            "ramp_s": s.ramp.as_secs_f64(), "hold_s": s.hold.as_secs_f64(),
        },
        "events": {
            "third_worker_started_s": r.third_worker_started_us.map(|t| t as f64 / 1e6),
            "redirect_on_s": r.redirect_on_us.map(|t| t as f64 / 1e6),
        },
        "checks": rows.iter().map(|c| json!({
            "check": c[0], "required": c[1], "measured": c[2], "result": c[3],
        })).collect::<Vec<_>>(),
        "worst_second_loss_pct": checks.worst_loss.map(|l| l.0),
        "third_worker_first_room_s": checks.third_worker_first_room_s,
        "priority_admitted": checks.priority_admitted,
        "ordinary_over_soft": checks.over_soft,
        "highest_stress_at_admission": checks.highest_stress_at_admission,
        "totals": totals.iter().map(|(k, v)| json!({"what": k, "figure": v})).collect::<Vec<_>>(),
        "failed": r.failed,
        "seconds": secs,
        "joins": r.joins,
        "room_node": r.room_node,
    });

    std::fs::create_dir_all(dir)?;
    let stem = dir.join(name);
    let paths = [
        (stem.with_extension("md"), md),
        (stem.with_extension("svg"), svg(r, &secs, &workers)),
        (
            stem.with_extension("json"),
            serde_json::to_string_pretty(&json)? + "\n",
        ),
    ];
    for (p, text) in &paths {
        std::fs::write(p, text)?;
    }
    Ok(Written {
        summary,
        paths: paths.iter().map(|p| p.0.display().to_string()).collect(),
    })
}

fn svg(r: &Recorded, secs: &[SecondFigures], workers: &[String]) -> String {
    let end = secs.len() as f64;
    let at = |t: u32| f64::from(t) + 1.0;
    let mut events = Vec::new();
    if let Some(t) = r.third_worker_started_us {
        events.push((t as f64 / 1e6, "w3 starts"));
    }
    if let Some(t) = r.redirect_on_us {
        events.push((t as f64 / 1e6, "redirect on"));
    }
    let cumulative = |name: &str, color, f: fn(&SecondFigures) -> u32| {
        let mut sum = 0;
        Line {
            name: name.into(),
            color,
            dashed: false,
            points: secs
                .iter()
                .map(|s| {
                    sum += f(s);
                    (at(s.t), f64::from(sum))
                })
                .collect(),
        }
    };
    let rooms = vec![
        cumulative("let in", COLORS[2], |s| s.rooms_admitted),
        cumulative("priority let in", COLORS[0], |s| s.priority_admitted),
        cumulative("refused", "#d62728", |s| s.rooms_refused),
        cumulative("redirected", COLORS[1], |s| s.rooms_redirected),
        Line {
            name: "headroom gauge".into(),
            color: "#7f7f7f",
            dashed: true,
            points: secs
                .iter()
                .filter_map(|s| Some((at(s.t), s.headroom? as f64)))
                .collect(),
        },
    ];
    let rooms_max = rooms
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let flat = |name: &str, v: f64| Line {
        name: name.into(),
        color: "#7f7f7f",
        dashed: true,
        points: vec![(0.0, v), (end, v)],
    };
    let mut stress: Vec<Line> = workers
        .iter()
        .zip(COLORS)
        .map(|(w, color)| Line {
            name: format!("{w} stress"),
            color,
            dashed: false,
            points: r
                .samples
                .iter()
                .filter(|s| &s.id == w)
                .map(|s| (s.t_us as f64 / 1e6, s.stress))
                .collect(),
        })
        .collect();
    stress.push(flat(&format!("soft {}", r.shape.soft), r.shape.soft));
    stress.push(flat(&format!("hard {}", r.hard), r.hard));
    let loss = vec![
        Line {
            name: "loss %".into(),
            color: "#d62728",
            dashed: false,
            points: secs
                .iter()
                .filter_map(|s| Some((at(s.t), s.loss_pct?)))
                .collect(),
        },
        flat("1 %", 1.0),
    ];
    let loss_max = loss[0].points.iter().map(|p| p.1).fold(2.0, f64::max);
    let delay = vec![
        Line {
            name: "delay p50".into(),
            color: COLORS[0],
            dashed: false,
            points: secs
                .iter()
                .filter_map(|s| Some((at(s.t), s.delay_p50_ms?)))
                .collect(),
        },
        Line {
            name: "delay p99".into(),
            color: COLORS[3],
            dashed: false,
            points: secs
                .iter()
                .filter_map(|s| Some((at(s.t), s.delay_p99_ms?)))
                .collect(),
        },
    ];
    let delay_max = delay[1].points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    plot::document(
        &[
            over_time(
                "Rooms (cumulative) and headroom",
                end,
                rooms_max * 1.1,
                &rooms,
                &events,
            ),
            over_time(
                "Workers' stress (as admission reads it)",
                end,
                1.0,
                &stress,
                &events,
            ),
            over_time(
                "Running calls: loss per second (%)",
                end,
                loss_max,
                &loss,
                &events,
            ),
            over_time(
                "Running calls: delay per second (ms)",
                end,
                delay_max,
                &delay,
                &events,
            ),
        ],
        "seconds into the surge",
    )
}

/// A panel over the surge's seconds, labelled every ten, with its events.
fn over_time<'a>(
    title: &'a str,
    end: f64,
    y_max: f64,
    lines: &'a [Line],
    events: &'a [(f64, &'a str)],
) -> Panel<'a> {
    Panel {
        title,
        x_max: end,
        x_ticks: (0..=end as u32).step_by(10).map(f64::from).collect(),
        y_max,
        y_ticks: 2,
        lines,
        marks: events,
    }
}
