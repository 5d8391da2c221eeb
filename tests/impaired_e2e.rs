//! End to end on poor networks: one participant's browser runs on a host of
//! its own (a network namespace) whose link the test impairs, the other on
//! this host. What is asserted is what the people see and hear: video that
//! keeps playing, repaired when packets are lost; and on a downlink too weak
//! for video, a conversation that goes on in "audio only".

mod common;

use std::time::Duration;

use common::browser::Tab;
use common::netns::NetNs;
use common::{browsers_here_and_in, join, wait_for, wait_full_mesh, Server};
use serde_json::Value;

/// What `tab` receives from participant `from` (or, for `"self"`, what it
/// sends), as `window.parloir.stats()` reads it from `getStats()`.
async fn stats(tab: &Tab<'_>, from: &str) -> Value {
    tab.eval("window.parloir.stats()").await[from].clone()
}

/// What `tab` hears and sees of `from` over 10 s: audio packets received
/// and lost, video packets received.
async fn listen(tab: &Tab<'_>, from: &str, what: &str) -> (f64, f64, f64) {
    let window = Duration::from_secs(10);
    let before = stats(tab, from).await;
    tokio::time::sleep(window).await;
    let after = stats(tab, from).await;
    let received = grew(&before, &after, "audioPacketsReceived");
    let lost = grew(&before, &after, "audioPacketsLost");
    let fps = grew(&before, &after, "framesDecoded") / window.as_secs_f64();
    let video = grew(&before, &after, "videoPacketsReceived");
    eprintln!(
        "Ben capped at 150 kbit/s, {what}: Ana's voice {received} packets received, \
         {lost} lost; her video {fps:.1} frames/s ({video} packets)"
    );
    (received, lost, fps)
}

fn grew(before: &Value, after: &Value, key: &str) -> f64 {
    after[key].as_f64().unwrap_or(0.0) - before[key].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_is_repaired_and_a_capped_link_keeps_its_audio() {
    let ns = NetNs::create();
    let server = Server::start_for(&ns);
    let (here, there, remote_url) = browsers_here_and_in(&ns, &server, &[]).await;
    let room = "perte-e2e";
    let tabs = [
        join(&here, &server.http, room, "Ana").await,
        join(&there, &remote_url, room, "Ben").await,
    ];
    let (ana, ben) = (tabs[0].1, tabs[1].1);
    wait_full_mesh(
        "both see and hear each other before the loss",
        &tabs,
        Duration::from_secs(20),
    )
    .await;

    // 5 % of Ben's datagrams are lost, both ways, for a measured window.
    ns.lose_udp(5);
    let window = Duration::from_secs(20);
    let (ana, ben) = (ana.to_string(), ben.to_string());
    let ben_before = stats(&tabs[1].0, &ana).await;
    let ana_before = stats(&tabs[0].0, &ben).await;
    let ben_sent_before = stats(&tabs[1].0, "self").await;
    // A measurement window: what happens over it is the result.
    tokio::time::sleep(window).await;
    let ben_after = stats(&tabs[1].0, &ana).await;
    let ana_after = stats(&tabs[0].0, &ben).await;
    let ben_sent_after = stats(&tabs[1].0, "self").await;
    ns.stop_losing();
    let weak = tabs[1]
        .0
        .eval("!document.getElementById('weak-downlink').hidden")
        .await;
    assert_eq!(weak, false, "5 % loss, repaired, is not called weak");

    let secs = window.as_secs_f64();
    for (who, before, after) in [
        ("Ben (lossy link) watching Ana", &ben_before, &ben_after),
        ("Ana watching Ben (lossy link)", &ana_before, &ana_after),
    ] {
        let fps = grew(before, after, "framesDecoded") / secs;
        let freezes = grew(before, after, "freezeCount");
        let frozen = grew(before, after, "freezesSeconds");
        let lost = grew(before, after, "videoPacketsLost");
        let received = grew(before, after, "videoPacketsReceived");
        let nacks = grew(before, after, "nackCount");
        let repaired = grew(before, after, "retransmitted");
        eprintln!(
            "{who}, 5 % loss for {secs} s: {fps:.1} frames/s, {freezes} freezes \
             ({frozen:.2} s frozen), {received} packets received, {lost} missing on \
             first arrival, {nacks} NACKs sent, {repaired} repaired by retransmission"
        );
        assert!(fps >= 10.0, "{who}: video keeps playing ({fps:.1} fps)");
        assert!(freezes <= 4.0, "{who}: {freezes} freezes in {secs} s");
    }
    // What Ben's downlink lost, he asked for, and the worker sent again
    // from its cache.
    assert!(grew(&ben_before, &ben_after, "nackCount") > 0.0);
    assert!(grew(&ben_before, &ben_after, "retransmitted") > 0.0);
    // What his uplink lost, the worker asked him for, and he sent again.
    let asked = grew(&ben_sent_before, &ben_sent_after, "nackCount");
    let resent = grew(&ben_sent_before, &ben_sent_after, "retransmitted");
    eprintln!("Ben's camera: {asked} NACKs from the worker, {resent} packets sent again");
    assert!(
        asked > 0.0 && resent > 0.0,
        "the worker repairs the lossy uplink"
    );

    // Ben's downlink falls to 150 kbit/s: even the smaller size of Ana's
    // camera does not fit, and it drowns her voice. Ben switches to "audio
    // only": the conversation goes on.
    ns.cap_downlink("150kbit");
    // The downlink has not been weak until now: nothing was proposed.
    let ben = &tabs[1].0;
    let proposed = "!document.getElementById('weak-downlink').hidden";
    listen(ben, &ana, "with video").await;
    // Ben's page proposes audio only by itself; he accepts.
    wait_for(
        "audio only proposed to Ben",
        Duration::from_secs(20),
        || async { (ben.eval(proposed).await == true).then_some(()) },
    )
    .await;
    if let Ok(dir) = std::env::var("PARLOIR_TEST_SCREENSHOTS") {
        ben.screenshot(&format!("{dir}/weak-downlink.png")).await;
    }
    ben.eval("document.getElementById('switch-audio-only').click()")
        .await;
    assert_eq!(ben.eval(proposed).await, false, "the proposal goes");
    // What was queued before the switch drains (the cap queues 300 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (received, lost, fps) = listen(ben, &ana, "audio only").await;
    // Opus sends 50 packets a second.
    assert!(received >= 450.0, "Ana's voice reaches Ben: {received}");
    assert!(lost <= 0.02 * received, "and is not cut: {lost} lost");
    // No video is forwarded. Packets still come on the video stream: the
    // padding str0m's estimator keeps at 50 kbit/s (`docs/quality.md`),
    // which may resend old packets from the repair cache, so a stray old
    // frame can complete: at most a few in 10 s, against 20 a second.
    assert!(fps < 1.0, "no video while audio only: {fps:.1} frames/s");
}
