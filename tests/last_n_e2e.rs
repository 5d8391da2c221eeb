//! Last-N end to end: a room larger than N, made of two headless Chromium
//! browsers and five load-generator participants (real WebRTC connections
//! that publish VP8-shaped video and voice with its audio level, no
//! codecs: two cores carry that, not seven browsers). Each browser receives
//! at most N others' videos and hears everyone; the load generator's
//! participants speak in turns, and each one who starts speaking has its
//! video forwarded to the browsers within 2 s.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::browser::{Browser, Tab};
use common::{join, wait_for, Server};

const LAST_N: usize = 3;
const LOAD_PARTICIPANTS: u32 = 5;
/// Each load participant speaks this long, in turns.
const TURN_S: f64 = 3.0;
/// The longest a new speaker may wait for its video to reach the others.
const SHOWN_WITHIN: Duration = Duration::from_secs(2);

/// Per participant: (video packets received, audio packets received).
async fn received(tab: &Tab<'_>) -> BTreeMap<u64, (u64, u64)> {
    let v = tab.eval("window.parloir.stats()").await;
    let mut out = BTreeMap::new();
    for (id, s) in v.as_object().into_iter().flatten() {
        if let Ok(id) = id.parse() {
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            out.insert(id, (n("videoPacketsReceived"), n("audioPacketsReceived")));
        }
    }
    out
}

/// Whose video packets and whose audio packets `tab` receives over the
/// next `window`.
async fn receiving(tab: &Tab<'_>, window: Duration) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let before = received(tab).await;
    tokio::time::sleep(window).await;
    let after = received(tab).await;
    let grew = |pick: fn(&(u64, u64)) -> u64| -> BTreeSet<u64> {
        after
            .iter()
            .filter(|(id, now)| pick(now) > before.get(id).map_or(0, pick))
            .map(|(id, _)| *id)
            .collect()
    };
    (grew(|r| r.0), grew(|r| r.1))
}

/// Participant ids by name, as a tab's tiles show them.
async fn ids_by_name(tab: &Tab<'_>) -> BTreeMap<String, u64> {
    let tiles = tab.eval("window.parloir.tiles()").await;
    tiles
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["name"].as_str()?.to_string(), t["id"].as_u64()?)))
        .collect()
}

/// Whose video a tab's tiles say is forwarded to it.
async fn forwarded(tab: &Tab<'_>) -> BTreeSet<u64> {
    let tiles = tab.eval("window.parloir.tiles()").await;
    tiles
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["forwarded"] == true)
        .filter_map(|t| t["id"].as_u64())
        .collect()
}

/// The load generator, killed on drop; its `speaking load-K` lines (on
/// its standard error, with its progress) come out of `turns` with the
/// instant each was read.
struct LoadGenerator {
    child: Child,
    turns: mpsc::Receiver<(String, Instant)>,
}

impl LoadGenerator {
    fn start(target: &str, room: &str) -> LoadGenerator {
        let mut child = Command::new(common::loadtest_bin())
            .args([
                "run", "--target", target, "--room", room, "--preset", "meeting",
            ])
            .args([
                "--rooms",
                "1",
                "--participants",
                &LOAD_PARTICIPANTS.to_string(),
            ])
            .args(["--speaker-turn", &TURN_S.to_string(), "--ramp", "10"])
            .args(["--warmup", "3", "--duration", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parloir-loadtest");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, turns) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Progress lines end in a carriage return, not a newline:
                // the announcement may follow one on the same line.
                if let Some(at) = line.find("speaking load-") {
                    let name = line[at + "speaking ".len()..].trim();
                    let _ = tx.send((name.to_string(), Instant::now()));
                }
            }
        });
        LoadGenerator { child, turns }
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_browser_receives_the_latest_speakers_and_hears_everyone() {
    let server = Server::start_args(&["--last-n", &LAST_N.to_string()]);
    let browser = Browser::launch().await;
    let room = "dernier-n-e2e";
    let tabs = [
        join(&browser, &server.http, room, "Ana").await,
        join(&browser, &server.http, room, "Ben").await,
    ];
    // The browsers listen: the load generator's participants speak.
    for (tab, _) in &tabs {
        tab.eval("document.getElementById('toggle-mic').click()")
            .await;
    }
    let load = LoadGenerator::start(&server.http, room);
    let everyone = 2 + LOAD_PARTICIPANTS as usize;

    // Each browser hears the six others and receives the video of N.
    for (tab, me) in &tabs {
        let (video, audio) = wait_for(
            "hearing everyone, receiving N videos",
            Duration::from_secs(30),
            || async {
                let (video, audio) = receiving(tab, Duration::from_secs(2)).await;
                (audio.len() == everyone - 1 && !audio.contains(me) && video.len() == LAST_N)
                    .then_some((video, audio))
            },
        )
        .await;
        eprintln!(
            "participant {me}: hears {} others, receives the video of {video:?}",
            audio.len()
        );
    }

    // Turns: each new speaker's video reaches Ana within 2 s; she never
    // receives more than N videos once it has.
    let ana = &tabs[0].0;
    let names = ids_by_name(ana).await;
    let mut measured = Vec::new();
    while measured.len() < 4 {
        let (name, at) = load
            .turns
            .recv_timeout(Duration::from_secs(10))
            .expect("a speaking turn");
        let Some(&id) = names.get(&name) else {
            panic!("{name} is not among Ana's tiles: {names:?}");
        };
        if at.elapsed() > Duration::from_millis(500) {
            continue; // a turn announced while we measured the last one
        }
        if forwarded(ana).await.contains(&id) {
            continue; // one of the N latest speakers already: nothing to show
        }
        let start = received(ana).await.get(&id).map_or(0, |r| r.0);
        let shown = wait_for(
            &format!("{name}'s video at Ana"),
            Duration::from_secs(6),
            || async {
                let now = received(ana).await.get(&id).map_or(0, |r| r.0);
                (now > start + 5).then(|| at.elapsed())
            },
        )
        .await;
        let (video, _) = receiving(ana, Duration::from_millis(800)).await;
        eprintln!(
            "{name} speaks: video at Ana after {:.2} s; Ana receives {} videos",
            shown.as_secs_f64(),
            video.len()
        );
        measured.push(shown);
        assert!(shown <= SHOWN_WITHIN, "{name} shown after {shown:?}");
        assert!(video.contains(&id), "{video:?}");
        assert!(video.len() <= LAST_N, "{video:?}");
    }
    // What Ana sees says the same: video on the tiles of the speakers
    // forwarded, names on the others'.
    let on_screen = forwarded(ana).await;
    assert!(on_screen.len() <= LAST_N, "{on_screen:?}");
}
