//! Last-N end to end, in headless Chromium: in a room larger than N, each
//! browser decodes at most N others' videos and hears everyone, and someone
//! who starts speaking has their video shown to the others at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::browser::{Browser, Tab};
use common::{join, wait_for, Server};
use serde_json::Value;

const LAST_N: usize = 2;

/// Per participant: (video frames decoded, audio packets received).
async fn received(tab: &Tab<'_>) -> BTreeMap<u64, (u64, u64)> {
    let v = tab.eval("window.parloir.stats()").await;
    let mut out = BTreeMap::new();
    for (id, s) in v.as_object().into_iter().flatten() {
        if let Ok(id) = id.parse() {
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            out.insert(id, (n("framesDecoded"), n("audioPacketsReceived")));
        }
    }
    out
}

/// Who `tab` decodes video from, and hears, over the next `window`.
async fn decoding_and_hearing(tab: &Tab<'_>, window: Duration) -> (BTreeSet<u64>, BTreeSet<u64>) {
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

fn tiles(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_browser_decodes_the_latest_speakers_and_hears_everyone() {
    let server = Server::start_args(&["--last-n", &LAST_N.to_string()]);
    let browser = Browser::launch().await;
    let room = "dernier-n-e2e";
    let mut tabs = Vec::new();
    for name in ["Ana", "Ben", "Chloe", "Dora"] {
        tabs.push(join(&browser, &server.http, room, name).await);
    }
    let ids: BTreeSet<u64> = tabs.iter().map(|(_, id)| *id).collect();

    // Everyone's microphone is on: each hears the three others, and sees
    // N of them (once the first speaker is chosen: the video it replaces
    // may still decode a few frames in flight).
    for (tab, me) in &tabs {
        let others: BTreeSet<u64> = ids.iter().copied().filter(|i| i != me).collect();
        wait_for(
            "hearing everyone, seeing N",
            Duration::from_secs(20),
            || async {
                let (video, audio) = decoding_and_hearing(tab, Duration::from_secs(2)).await;
                (audio == others && !video.is_empty() && video.len() <= LAST_N).then_some(())
            },
        )
        .await;
    }

    // Someone Ana does not see starts speaking (alone): Ana sees them.
    let ana = &tabs[0].0;
    let hidden = tiles(&ana.eval("window.parloir.tiles()").await)
        .iter()
        .find(|t| t["forwarded"] == false)
        .and_then(|t| t["id"].as_u64())
        .expect("someone Ana does not see");
    for (tab, id) in &tabs {
        if *id != hidden {
            tab.eval("document.getElementById('toggle-mic').click()")
                .await;
        }
    }
    let start = Instant::now();
    wait_for(
        "the new speaker's video decoded by Ana",
        Duration::from_secs(4),
        || async {
            let (video, _) = decoding_and_hearing(ana, Duration::from_millis(300)).await;
            video.contains(&hidden).then_some(())
        },
    )
    .await;
    println!(
        "a participant who starts speaking is seen by the others after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    // The video it replaced stops within a moment (frames in flight).
    let video = wait_for(
        "Ana back to at most N videos",
        Duration::from_secs(3),
        || async {
            let (video, _) = decoding_and_hearing(ana, Duration::from_millis(500)).await;
            (video.len() <= LAST_N).then_some(video)
        },
    )
    .await;
    assert!(video.contains(&hidden), "{video:?}");
    // What Ana sees says the same: video on the tiles of those decoded,
    // names on the others'.
    let on_screen: BTreeSet<u64> = tiles(&ana.eval("window.parloir.tiles()").await)
        .iter()
        .filter(|t| t["forwarded"] == true)
        .filter_map(|t| t["id"].as_u64())
        .collect();
    assert_eq!(on_screen, video);
}
