//! What a benchmark run leaves: its results as JSON (and read back from
//! it, to render an earlier run again), a Markdown table and an SVG plot.

use anyhow::Context;
use serde_json::json;

use super::measure::{same_load_ratio, summarize, TargetResult, SATURATED};
use super::{BenchArgs, Shape, ShapeResults, MEETING_SIZE};
use crate::plot::{self, Line, Panel};
use crate::run::Summary;

impl TargetResult {
    /// A result as [`TargetResult::to_json`] wrote it, summarized again
    /// from its points.
    pub(super) fn from_json(shape: Shape, v: &serde_json::Value) -> anyhow::Result<Self> {
        if v["available"] != json!(true) {
            let reason = v["reason"].as_str().unwrap_or("unavailable");
            return Ok(TargetResult::unavailable(reason));
        }
        let points: Vec<Summary> = serde_json::from_value(v["points"].clone())?;
        Ok(summarize(shape, points))
    }

    pub(super) fn to_json(&self, shape: Shape) -> serde_json::Value {
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

/// Summarizes an earlier run's points again and rewrites its outputs.
pub(super) fn render(a: &BenchArgs, path: &std::path::Path) -> anyhow::Result<()> {
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
pub(super) fn write_results(
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
    result["parloir_media_threads"] = json!(a.media_threads);
    result["competing_load_pct"] = json!(a.compete);
    result["competing_threads"] = json!(a.compete.map(|_| a.compete_threads));
    result["seconds_per_run"] = json!(secs);
    result["elapsed_s"] = json!(elapsed_s);

    std::fs::create_dir_all(&a.out)?;
    let mut md = String::new();
    if a.media_threads > 1 {
        md += &format!(
            "Parloir with {} media shards, the targets on as many cores (from core 1, wrapping onto the generator's).\n\n",
            a.media_threads
        );
    }
    if let Some(pct) = a.compete {
        md += &format!(
            "With a competing load on the targets' core: stress-ng, {} thread(s) each busy {pct} % of the time.\n\n",
            a.compete_threads
        );
    }
    md += &markdown(results, runs, secs);
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
fn svg(series: &[(&str, &TargetResult, &'static str)], levels: &[u32]) -> String {
    let lines: Vec<Line> = series
        .iter()
        .map(|(name, t, color)| Line {
            name: name.to_string(),
            color,
            dashed: false,
            points: t
                .points
                .iter()
                .map(|p| (f64::from(Shape::Fanout.level(p)), p.cpu_us_per_packet))
                .collect(),
        })
        .collect();
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    plot::document(
        &[Panel {
            title: "Target CPU µs per forwarded packet",
            x_max: f64::from(*levels.iter().max().unwrap_or(&1)),
            x_ticks: levels.iter().map(|n| f64::from(*n)).collect(),
            y_max,
            y_ticks: 4,
            lines: &lines,
            marks: &[],
        }],
        "subscribers (fan-out 1→N)",
    )
}
