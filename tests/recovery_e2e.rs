//! Recovery that always works: a call survives its server being gone for
//! 40 s (stopped, then started again on the same addresses) with no reload,
//! and an ICE restart (what a phone moving from Wi-Fi to 4G does) with
//! three in the room leaves the restarted tab decoding again within
//! seconds. A negotiation the browser refuses falls back to a clean join.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{join, wait_for, wait_full_mesh, wait_full_mesh_rejoined, Proc, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_come_back_after_a_long_outage_and_an_ice_restart() {
    let mut server = Server::start();
    let browser = Browser::launch().await;
    let room = "recovery-e2e";
    let tabs = [
        join(&browser, &server.http, room, "Ana").await,
        join(&browser, &server.http, room, "Ben").await,
    ];
    wait_full_mesh("Ana and Ben in a call", &tabs, Duration::from_secs(30)).await;

    // The server is gone for 40 s: long enough for both media
    // connections to fail and for every attempt to reach it to fail too.
    server.stop();
    wait_for(
        "both to say the call is interrupted",
        Duration::from_secs(15),
        || async {
            for (tab, _) in &tabs {
                let state = tab.eval("window.parloir.state()").await;
                if !state["status"].as_str()?.contains("interrupted") {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let retry = tabs[0]
        .0
        .eval("!document.getElementById('retry-now').hidden")
        .await;
    assert_eq!(retry, true, "a button to retry now is offered");
    tokio::time::sleep(Duration::from_secs(40)).await;
    // Nothing arrives because the server is gone, not because the link is
    // weak: no page blames the person's connection or offers audio only,
    // and each says the server cannot be reached.
    for (tab, _) in &tabs {
        let state = tab.eval("window.parloir.state()").await;
        assert_eq!(
            (&state["weakDownlink"], &state["weakUplink"]),
            (&false.into(), &false.into()),
            "{state}"
        );
        let status = state["status"].as_str().unwrap_or_default();
        assert!(status.contains("cannot be reached"), "{state}");
    }
    server.start_again();
    let back = Instant::now();
    let refs: Vec<_> = tabs.iter().map(|(t, _)| t).collect();
    // The restarted server knows nobody: both join it again, under new
    // ids, and decode each other again.
    common::wait_joined_again("both joined again", &tabs, Duration::from_secs(10)).await;
    wait_full_mesh_rejoined(
        "both see and hear each other again",
        &refs,
        Duration::from_secs(10).saturating_sub(back.elapsed()),
    )
    .await;
    common::still_decoding(
        &refs,
        Duration::from_secs(10).saturating_sub(back.elapsed()),
    )
    .await;
    eprintln!(
        "after a 40 s outage: both decode again {:.1} s after the server is back",
        back.elapsed().as_secs_f64()
    );
    for (tab, _) in &tabs {
        let state = tab.eval("window.parloir.state()").await;
        assert_eq!(state["status"], serde_json::Value::Null, "{state}");
    }

    // Three in the room; Ana's connection restarts ICE (new credentials,
    // new checks), as on a change of network.
    let cleo = join(&browser, &server.http, room, "Cleo").await;
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for tab in refs.iter().copied().chain([&cleo.0]) {
            ids.push(common::you(tab).await.expect("joined"));
        }
        ids
    };
    let all = [&tabs[0].0, &tabs[1].0, &cleo.0];
    wait_full_mesh_rejoined("three in the call", &all, Duration::from_secs(30)).await;
    let ana = &tabs[0].0;
    let ufrag = "window.parloir.iceUfrag()";
    let before = ana.eval(ufrag).await;
    let restarted = ana
        .eval("window.parloir.restartIce().then(() => 'ok', (e) => String(e))")
        .await;
    assert_eq!(restarted, "ok");
    let start = Instant::now();
    let decoded = |id: u64| async move { common::frames_decoded(ana).await.get(&id).copied() };
    let (ben, cleo_id) = (ids[1], ids[2]);
    let (b0, c0) = (
        decoded(ben).await.unwrap_or(0),
        decoded(cleo_id).await.unwrap_or(0),
    );
    wait_for(
        "Ana decodes Ben and Cleo again after her ICE restart",
        Duration::from_secs(5),
        || async {
            let after = ana.eval(ufrag).await;
            let (b, c) = (decoded(ben).await?, decoded(cleo_id).await?);
            (after != before && b > b0 + 10 && c > c0 + 10).then_some(())
        },
    )
    .await;
    eprintln!(
        "ICE restart with three in the room: new credentials, decoding again {:.1} s later",
        start.elapsed().as_secs_f64()
    );
    let state = ana.eval("window.parloir.state()").await;
    assert_eq!(state["status"], serde_json::Value::Null, "{state}");
    assert_eq!(state["media"], "connected", "{state}");

    // A negotiation that fails (here the browser refuses Ana's next offer
    // once) falls back to a clean join: she is back in the call under a
    // new id, and the three decode each other again.
    let old_id = ids[0];
    common::refuse_next_negotiation(ana).await;
    let start = Instant::now();
    wait_for("Ana joined again", Duration::from_secs(10), || async {
        common::you(ana).await.filter(|id| *id != old_id)
    })
    .await;
    wait_full_mesh_rejoined("three in the call again", &all, Duration::from_secs(15)).await;
    common::still_decoding(&all, Duration::from_secs(10)).await;
    eprintln!(
        "a refused negotiation: Ana joined again and decodes {:.1} s later",
        start.elapsed().as_secs_f64()
    );
}

/// A call that never started because no server could take it (a signal
/// server with no worker yet) says it waits for a server, not that a call
/// was interrupted, and starts by itself once a worker comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_a_server_says_so_and_starts_when_one_comes() {
    const SECRET: &str = "recovery-test-secret";
    let signal = Proc::parloir(&["signal", "--http", "127.0.0.1:0", "--secret", SECRET]);
    let base = signal.url();
    let browser = Browser::launch().await;
    let tab = browser
        .open(&format!("{base}/r/waiting-e2e?name=Ana&join=1"))
        .await;
    let status = wait_for(
        "Ana's page to say it waits for a server",
        Duration::from_secs(15),
        || async {
            let state = tab.eval("window.parloir.state()").await;
            let status = state["status"].as_str()?.to_string();
            status.contains("Waiting for a server").then_some(status)
        },
    )
    .await;
    eprintln!("a call no server has taken yet: {status}");
    let interrupted = tab
        .eval("document.getElementById('grid').classList.contains('interrupted')")
        .await;
    assert_eq!(interrupted, false, "nothing was interrupted");

    let _worker = Proc::worker(&base, SECRET, "127.0.0.2", "w1", &[]);
    wait_for(
        "Ana's call to start on the worker that came",
        Duration::from_secs(30),
        || async {
            let state = tab.eval("window.parloir.state()").await;
            (state["media"] == "connected"
                && state["status"].as_str()?.contains("Waiting for others"))
            .then_some(())
        },
    )
    .await;
}
