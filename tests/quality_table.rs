//! The quality table of `docs/quality.md`: what people see and hear under
//! each impairment of one participant's link, measured with real browsers.
//! A report, not a check, so it does not run with the other tests:
//!
//! ```sh
//! scripts/quality-table.sh
//! ```
//!
//! Three people; Ben's browser runs on a host of its own (a network
//! namespace) whose link is impaired in turn; Ana and Chloé are on this
//! host. For each impairment: it is set, the call is left 12 s to adapt,
//! then measured for 10 s (what Ben receives of the two others, what they
//! receive of Ben, Ben's connection indicator and notices); then it is
//! lifted, and the time until everyone receives everyone at full size
//! again is measured. The table replaces the one between the markers in
//! `docs/quality.md`.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::browser::Tab;
use common::netns::NetNs;
use common::{browsers_here_and_in, join, wait_full_mesh, Server};
use serde_json::Value;

/// The full size of Chromium's fake camera, as the client asks for it.
const FULL_WIDTH: u64 = 640;
const SETTLE: Duration = Duration::from_secs(12);
const WINDOW: Duration = Duration::from_secs(10);
/// Longest wait for full size after an impairment is lifted.
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);

const BEGIN: &str = "<!-- quality-table: made by scripts/quality-table.sh -->";
const END: &str = "<!-- /quality-table -->";

/// An impairment of Ben's link: how it is set and lifted.
struct Impairment {
    name: &'static str,
    set: fn(&NetNs),
    lift: fn(&NetNs),
}

const IMPAIRMENTS: &[Impairment] = &[
    Impairment {
        name: "none",
        set: |_| {},
        lift: |_| {},
    },
    Impairment {
        name: "downlink 1 Mbit/s",
        set: |ns| ns.cap_downlink("1mbit"),
        lift: |ns| ns.uncap_downlink(),
    },
    Impairment {
        name: "downlink 400 kbit/s",
        set: |ns| ns.cap_downlink("400kbit"),
        lift: |ns| ns.uncap_downlink(),
    },
    Impairment {
        name: "downlink 150 kbit/s",
        set: |ns| ns.cap_downlink("150kbit"),
        lift: |ns| ns.uncap_downlink(),
    },
    Impairment {
        name: "uplink 250 kbit/s",
        set: |ns| ns.cap_uplink("250kbit"),
        lift: |ns| ns.uncap_uplink(),
    },
    Impairment {
        name: "5 % loss each way",
        set: |ns| ns.lose_udp(5),
        lift: |ns| ns.stop_losing(),
    },
    Impairment {
        name: "15 % loss each way",
        set: |ns| ns.lose_udp(15),
        lift: |ns| ns.stop_losing(),
    },
];

/// What one browser received of some others over the window.
#[derive(Default)]
struct Seen {
    /// Frames per second, the mean over the others.
    fps: f64,
    freezes: f64,
    received: f64,
    lost: f64,
    /// The smallest width among the others at the end.
    width: u64,
}

impl Seen {
    fn cell(&self) -> String {
        let packets = self.received + self.lost;
        let loss = if packets > 0.0 {
            100.0 * self.lost / packets
        } else {
            0.0
        };
        let width = if self.width == 0 || self.fps < 1.0 {
            "—".to_string()
        } else {
            self.width.to_string()
        };
        format!("{width} | {:.1} | {} | {loss:.1} %", self.fps, self.freezes)
    }
}

async fn stats(tab: &Tab<'_>) -> Value {
    tab.eval("window.parloir.stats()").await
}

fn grew(before: &Value, after: &Value, from: u64, key: &str) -> f64 {
    let get = |v: &Value| v[from.to_string()][key].as_f64().unwrap_or(0.0);
    get(after) - get(before)
}

fn width(stats: &Value, from: u64) -> u64 {
    stats[from.to_string()]["frameWidth"].as_u64().unwrap_or(0)
}

fn seen(before: &Value, after: &Value, from: &[u64]) -> Seen {
    let mut s = Seen {
        width: u64::MAX,
        ..Seen::default()
    };
    for id in from {
        s.fps += grew(before, after, *id, "framesDecoded") / WINDOW.as_secs_f64();
        s.freezes += grew(before, after, *id, "freezeCount");
        s.received += grew(before, after, *id, "videoPacketsReceived");
        s.lost += grew(before, after, *id, "videoPacketsLost");
        s.width = s.width.min(width(after, *id));
    }
    s.fps /= from.len() as f64;
    s
}

/// Whether every tab decodes every other at full size (a width alone is
/// the last frame's, even when none decodes any more).
async fn all_full(tabs: &[(Tab<'_>, u64)]) -> bool {
    let before = stats_of_all(tabs).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = stats_of_all(tabs).await;
    tabs.iter().enumerate().all(|(i, (_, me))| {
        tabs.iter().filter(|(_, o)| o != me).all(|(_, other)| {
            width(&after[i], *other) >= FULL_WIDTH
                && grew(&before[i], &after[i], *other, "framesDecoded") > 0.0
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a report for docs/quality.md: scripts/quality-table.sh"]
async fn quality_table() {
    let ns = NetNs::create();
    let server = Server::start_for(&ns);
    let screen = "--window-size=1600,1000".to_string();
    let (here, there, remote_url) = browsers_here_and_in(&ns, &server, &[screen]).await;
    let room = "quality-table";
    let tabs = [
        join(&here, &server.http, room, "Ana").await,
        join(&here, &server.http, room, "Chloe").await,
        join(&there, &remote_url, room, "Ben").await,
    ];
    let (ana, chloe, ben) = (tabs[0].1, tabs[1].1, tabs[2].1);
    wait_full_mesh("all three in the call", &tabs, Duration::from_secs(30)).await;
    let ben_tab = &tabs[2].0;

    let mut rows = String::new();
    for imp in IMPAIRMENTS {
        // Each impairment starts from a call at full size.
        let start = Instant::now();
        while !all_full(&tabs).await && start.elapsed() < RECOVERY_LIMIT {}
        (imp.set)(&ns);
        tokio::time::sleep(SETTLE).await;
        let before: Vec<Value> = stats_of_all(&tabs).await;
        tokio::time::sleep(WINDOW).await;
        let after: Vec<Value> = stats_of_all(&tabs).await;
        let state = ben_tab.eval("window.parloir.state()").await;
        let ben_sees = seen(&before[2], &after[2], &[ana, chloe]);
        let mut of_ben = seen(&before[0], &after[0], &[ben]);
        let chloe_of_ben = seen(&before[1], &after[1], &[ben]);
        of_ben.fps = (of_ben.fps + chloe_of_ben.fps) / 2.0;
        of_ben.freezes += chloe_of_ben.freezes;
        of_ben.received += chloe_of_ben.received;
        of_ben.lost += chloe_of_ben.lost;
        of_ben.width = of_ben.width.min(chloe_of_ben.width);
        let indicator = state["link"].as_str().unwrap_or("—").to_string();
        let mut notices = Vec::new();
        if state["weakDownlink"] == true {
            notices.push("too weak for video");
        }
        if state["weakUplink"] == true {
            notices.push("weak uplink");
        }
        (imp.lift)(&ns);
        let lifted = Instant::now();
        let mut recovered = None;
        while lifted.elapsed() < RECOVERY_LIMIT {
            if all_full(&tabs).await {
                recovered = Some(lifted.elapsed());
                break;
            }
        }
        let recovery = match recovered {
            Some(d) if imp.name == "none" => format!("({:.1} s)", d.as_secs_f64()),
            Some(d) => format!("{:.1} s", d.as_secs_f64()),
            None => format!("> {} s", RECOVERY_LIMIT.as_secs()),
        };
        let notices = if notices.is_empty() {
            "—".to_string()
        } else {
            notices.join(", ")
        };
        let row = format!(
            "| {} | {} | {} | {indicator}; {notices} | {recovery} |\n",
            imp.name,
            ben_sees.cell(),
            of_ben.cell()
        );
        eprint!("{row}");
        rows.push_str(&row);
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| Ben's link | Ben receives: width | fps | freezes | loss | \
         the others receive Ben: width | fps | freezes | loss | \
         Ben's indicator; notice | full size again after lifting |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|---|---|");
    table.push_str(&rows);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/quality.md");
    let doc = std::fs::read_to_string(path).expect("docs/quality.md");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/quality.md has no {BEGIN} … {END} markers");
    };
    let updated = format!("{}{BEGIN}\n{table}{}", &doc[..b], &doc[e..]);
    std::fs::write(path, updated).expect("write docs/quality.md");
    eprintln!("\n{table}\nwritten to docs/quality.md");
}

/// Everyone's stats, one tab after the other (within a few milliseconds).
async fn stats_of_all(tabs: &[(Tab<'_>, u64)]) -> Vec<Value> {
    let mut all = Vec::new();
    for (tab, _) in tabs {
        all.push(stats(tab).await);
    }
    all
}
