//! SVG line plots for the results the benchmark and the surge write: one
//! or more panels stacked, each with its axes, ticks, marked moments and a
//! legend to its right. Plain strings: a plot of a few hundred points
//! needs no plotting crate.

use std::fmt::Write as _;

/// Line colours, in order (a colour-blind-safe palette).
pub const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];
/// The plot's width, and a panel's height.
pub const WIDTH: f64 = 760.0;
pub const PANEL: f64 = 170.0;
/// Room left of the axes (tick labels) and right of them (the legend).
const LEFT: f64 = 60.0;
const RIGHT: f64 = 170.0;

/// One line of a panel.
pub struct Line {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// One panel: its lines over `0..=x_max` with labels at `x_ticks`, the y
/// axis from 0 to `y_max` with `y_ticks` intervals, and moments marked by
/// dashed vertical lines.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_max: f64,
    pub x_ticks: Vec<f64>,
    pub y_max: f64,
    pub y_ticks: u32,
    pub lines: &'a [Line],
    pub marks: &'a [(f64, &'a str)],
}

/// Panels stacked in one SVG document, with `x_label` under the last.
pub fn document(panels: &[Panel], x_label: &str) -> String {
    let height = panels.len() as f64 * PANEL + 24.0;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n"
    );
    for (i, p) in panels.iter().enumerate() {
        s += &panel(i as f64 * PANEL, p);
    }
    let _ = writeln!(
        s,
        "<text x='{}' y='{}' text-anchor='middle'>{x_label}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        height - 6.0
    );
    s + "</svg>\n"
}

fn panel(top: f64, p: &Panel) -> String {
    let (x0, x1) = (LEFT, WIDTH - RIGHT);
    let (y0, y1) = (top + PANEL - 24.0, top + 22.0);
    let x = |t: f64| x0 + (x1 - x0) * t / p.x_max.max(1.0);
    let y = |v: f64| y0 - (y0 - y1) * (v / p.y_max).clamp(0.0, 1.05);
    let mut s = format!(
        "<text x='{x0}' y='{}' font-weight='bold'>{}</text>\n\
         <line x1='{x0}' y1='{y0}' x2='{x1}' y2='{y0}' stroke='black'/>\n\
         <line x1='{x0}' y1='{y0}' x2='{x0}' y2='{y1}' stroke='black'/>\n",
        top + 14.0,
        p.title
    );
    let ticks = p.y_ticks.max(1);
    for k in 0..=ticks {
        let v = p.y_max * f64::from(k) / f64::from(ticks);
        let _ = writeln!(
            s,
            "<text x='{}' y='{}' text-anchor='end'>{}</text>",
            x0 - 4.0,
            y(v) + 4.0,
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else if p.y_max < 10.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.1}")
            }
        );
    }
    for t in &p.x_ticks {
        let _ = writeln!(
            s,
            "<text x='{}' y='{}' text-anchor='middle'>{t:.0}</text>",
            x(*t),
            y0 + 14.0
        );
    }
    for (at, what) in p.marks {
        let _ = writeln!(
            s,
            "<line x1='{0}' y1='{y0}' x2='{0}' y2='{y1}' stroke='#888' stroke-dasharray='2 3'/>\
             <text x='{1}' y='{2}' fill='#555' font-size='10'>{what}</text>",
            x(*at),
            x(*at) + 3.0,
            y1 + 10.0
        );
    }
    for (i, l) in p.lines.iter().enumerate() {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill='none' stroke='{}' stroke-width='{}'{} points='{}'/>\
             <text x='{}' y='{}' fill='{}'>{}</text>",
            l.color,
            if l.dashed { 1 } else { 2 },
            if l.dashed {
                " stroke-dasharray='5 4'"
            } else {
                ""
            },
            pts.join(" "),
            x1 + 10.0,
            y1 + 14.0 * i as f64 + 6.0,
            l.color,
            l.name
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_every_line_and_label() {
        let lines = [Line {
            name: "parloir".into(),
            color: COLORS[0],
            dashed: false,
            points: vec![(10.0, 1.0), (20.0, 2.0)],
        }];
        let svg = document(
            &[Panel {
                title: "CPU",
                x_max: 20.0,
                x_ticks: vec![10.0, 20.0],
                y_max: 2.2,
                y_ticks: 4,
                lines: &lines,
                marks: &[(15.0, "w3 starts")],
            }],
            "subscribers",
        );
        for part in ["<svg", "parloir", "w3 starts", "subscribers", "polyline"] {
            assert!(svg.contains(part), "{part} in the plot");
        }
        assert!(svg.ends_with("</svg>\n"));
    }
}
