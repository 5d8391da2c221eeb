//! A change of network in the middle of a call: Ben's device (a host of
//! its own, a network namespace) loses its address and gets another, as a
//! phone moving from Wi-Fi to 4G does. His call must come back by itself,
//! without a reload: media and signalling on the new address.

mod common;

use std::time::{Duration, Instant};

use common::netns::NetNs;
use common::{browsers_here_and_in, join, wait_for, wait_full_mesh, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_follows_its_participant_to_a_new_address() {
    let ns = NetNs::create();
    let server = Server::start_for(&ns);
    let (here, there, remote_url) = browsers_here_and_in(&ns, &server, &[]).await;
    let room = "network-move-e2e";
    let tabs = [
        join(&here, &server.http, room, "Ana").await,
        join(&there, &remote_url, room, "Ben").await,
    ];
    wait_full_mesh("Ana and Ben in a call", &tabs, Duration::from_secs(30)).await;

    for round in 1..=2 {
        let moved = Instant::now();
        ns.move_to_new_address();
        // The old address is gone: nothing arrives until the call follows.
        wait_for("the call to notice", Duration::from_secs(15), || async {
            let state = tabs[1].0.eval("window.parloir.state()").await;
            (state["media"] != "connected").then_some(())
        })
        .await;
        common::still_decoding(&[&tabs[0].0, &tabs[1].0], Duration::from_secs(20)).await;
        let state = tabs[1].0.eval("window.parloir.state()").await;
        eprintln!(
            "move {round} to {}: both decode again {:.1} s after it; Ben's state {state}",
            ns.ns_ip(),
            moved.elapsed().as_secs_f64()
        );
        assert_eq!(state["signalling"], true, "{state}");
    }
}
