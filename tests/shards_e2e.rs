//! Media shards end to end, in headless Chromium: `serve --media-threads
//! 2`, with the kernel made to give every media datagram to shard 0's
//! socket (`--media-steer-to 0`, a reuseport BPF program). Two meetings
//! sit on the two shards, as `/api/nodes` shows, and both decode: the
//! second meeting's media all reaches its shard handed over from the
//! first, as a datagram the kernel hands to the wrong shard would.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{api_get, call_of_two, still_decoding, wait_for, Server};

const SECRET: &str = "shards-test-secret";

/// (participants of each shard, datagrams handed over per second) of the
/// one node, from `GET /api/nodes`.
async fn shards(base: &str) -> Option<(Vec<u64>, f64)> {
    let nodes = api_get(base, SECRET, "/api/nodes").await;
    let node = nodes.as_array()?.first()?.clone();
    let participants = node["shards"]
        .as_array()?
        .iter()
        .map(|s| s["participants"].as_u64())
        .collect::<Option<Vec<u64>>>()?;
    Some((participants, node["handoffs_per_s"].as_f64()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_meetings_on_two_shards_decode_with_every_datagram_handed_over() {
    let server = Server::start_args(&[
        "--media-threads",
        "2",
        "--media-steer-to",
        "0",
        "--secret",
        SECRET,
    ]);
    let browser = Browser::launch().await;
    let a = call_of_two(&browser, &server.http, "shards-a-e2e").await;
    let b = call_of_two(&browser, &server.http, "shards-b-e2e").await;

    // One meeting per shard, and shard 1's traffic handed over to it.
    let (participants, handoffs) = wait_for(
        "each meeting on its own shard, its media handed over",
        Duration::from_secs(10),
        || async {
            let (participants, handoffs) = shards(&server.http).await?;
            (participants == [2, 2] && handoffs > 0.0).then_some((participants, handoffs))
        },
    )
    .await;
    println!(
        "participants per shard {participants:?}, {handoffs:.0} datagrams handed over per second"
    );

    // Both calls go on: every tab decodes more frames of the other.
    still_decoding(&[&a[0].0, &a[1].0], Duration::from_secs(10)).await;
    still_decoding(&[&b[0].0, &b[1].0], Duration::from_secs(10)).await;
}
