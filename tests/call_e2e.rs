//! End to end, through the real web client in headless Chromium: people in
//! a room see and hear each other, late joiners and leavers are handled, and
//! a second room at the same time is separate.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::browser::Browser;
use common::{join, others, seen_and_heard, tiles, wait_for, wait_full_mesh, Server};

/// Waits until `tab` shows participant `id` with this microphone and
/// camera state.
async fn wait_tile(tab: &common::browser::Tab<'_>, id: u64, audio: bool, video: bool, what: &str) {
    wait_for(what, Duration::from_secs(5), || async {
        let v = tab.eval("window.parloir.tiles()").await;
        let t = v
            .as_array()?
            .iter()
            .find(|t| t["id"].as_u64() == Some(id))?
            .clone();
        (t["audio"] == audio && t["video"] == video).then_some(())
    })
    .await;
}

/// Waits until every tab but the speaker's own shows `tabs[speaker]` as
/// the one speaking; prints how long that took.
async fn wait_speaker(tabs: &[(common::browser::Tab<'_>, u64)], speaker: usize, what: &str) {
    let id = tabs[speaker].1;
    let start = std::time::Instant::now();
    wait_for(what, Duration::from_secs(3), || async {
        for (tab, _) in tabs.iter().filter(|(_, other)| *other != id) {
            let v = tab.eval("window.parloir.tiles()").await;
            let shown = v
                .as_array()?
                .iter()
                .any(|t| t["id"].as_u64() == Some(id) && t["speaking"] == true);
            if !shown {
                return None;
            }
        }
        Some(())
    })
    .await;
    println!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_see_and_hear_each_other_as_people_come_and_go() {
    let server = Server::start();
    let browser = Browser::launch().await;
    let room_a = "famille-a-e2e";
    let room_b = "famille-b-e2e";

    // Three people in room A, two in room B, all at about the same time.
    let mut a = Vec::new();
    for name in ["Ana", "Ben", "Chloe"] {
        a.push(join(&browser, &server.http, room_a, name).await);
    }
    let mut b = Vec::new();
    for name in ["Dan", "Eve"] {
        b.push(join(&browser, &server.http, room_b, name).await);
    }
    wait_full_mesh(
        "room A: three people see and hear each other",
        &a,
        Duration::from_secs(15),
    )
    .await;
    wait_full_mesh(
        "room B: two people see and hear each other",
        &b,
        Duration::from_secs(15),
    )
    .await;

    // A fourth joins room A later: everyone then decodes three videos.
    a.push(join(&browser, &server.http, room_a, "Dora").await);
    wait_full_mesh(
        "room A: four people see and hear each other",
        &a,
        Duration::from_secs(15),
    )
    .await;

    if let Ok(dir) = std::env::var("PARLOIR_TEST_SCREENSHOTS") {
        println!("stats of Ana: {}", a[0].0.eval("parloir.stats()").await);
        a[0].0.screenshot(&format!("{dir}/four.png")).await;
    }

    // First CPU figure of the server during a 4-person call (plus the
    // 2-person room B), for the record; not asserted.
    let before = server.cpu_seconds();
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let used = server.cpu_seconds() - before;
    println!(
        "parloir CPU during a 4-person + 2-person call: {:.1}% of one core",
        100.0 * used / window.as_secs_f64()
    );

    // Ana mutes her microphone and stops her camera: the others see it.
    let (ana, ana_id) = (&a[0].0, a[0].1);
    ana.eval("document.getElementById('toggle-mic').click()")
        .await;
    ana.eval("document.getElementById('toggle-cam').click()")
        .await;
    for (tab, _) in &a[1..] {
        wait_tile(tab, ana_id, false, false, "Ana shown muted to the others").await;
    }
    ana.eval("document.getElementById('toggle-mic').click()")
        .await;
    for (tab, _) in &a[1..] {
        wait_tile(tab, ana_id, true, false, "Ana shown unmuted again").await;
    }

    // Only Chloe's microphone is on: everyone sees her tile as the one
    // speaking. Then only Dora's: the highlight follows.
    let mic = |i: usize| a[i].0.eval("document.getElementById('toggle-mic').click()");
    for i in [0, 1, 3] {
        mic(i).await;
    }
    wait_speaker(&a, 2, "Chloe, the only one talking, is shown speaking").await;
    mic(2).await;
    mic(3).await;
    wait_speaker(&a, 3, "Dora, who starts talking, is shown speaking").await;
    if let Ok(dir) = std::env::var("PARLOIR_TEST_SCREENSHOTS") {
        a[0].0.screenshot(&format!("{dir}/speaker.png")).await;
    }
    for i in [0, 1, 2] {
        mic(i).await;
    }

    // Ben leaves: the others' grids drop his tile, and the call goes on.
    let (ben, ben_id) = a.remove(1);
    ben.eval("document.getElementById('leave').click()").await;
    let remaining: Vec<u64> = a.iter().map(|(_, id)| *id).collect();
    wait_for(
        "Ben's tile to disappear for the others",
        Duration::from_secs(10),
        || async {
            for (tab, me) in &a {
                if tiles(tab).await != others(&remaining, *me) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for (tab, _) in &a {
        assert!(!tiles(tab).await.contains(&ben_id));
    }
    wait_full_mesh("room A after Ben left", &a, Duration::from_secs(10)).await;

    // Room B never saw anyone from room A.
    let a_ids: BTreeSet<u64> = remaining.iter().copied().chain([ben_id]).collect();
    for (tab, _) in &b {
        assert!(
            tiles(tab).await.is_disjoint(&a_ids),
            "room B shows someone from room A"
        );
        assert!(
            seen_and_heard(tab).await.is_disjoint(&a_ids),
            "room B receives room A's media"
        );
    }
    wait_full_mesh("room B still fine", &b, Duration::from_secs(5)).await;
}
