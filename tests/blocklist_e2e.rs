//! A blocked network gets nothing: no page, no signalling, no media over
//! UDP or over ICE-TCP; the
//! operator lifts the block by editing the configuration file and sending
//! SIGHUP, and the network gets in, while a call in progress never
//! notices. The blocked client is 127.0.0.3; the call's browsers are on
//! 127.0.0.1.

mod common;

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use common::browser::Browser;
use common::{
    call_of_two, loadtest_bin, still_decoding, tcp_from, wait_for, wait_full_mesh, ws_from, Server,
};
use serde_json::Value;
use tokio::io::AsyncReadExt;

const BLOCKED: &str = "127.0.0.3";

/// Whether a page loads for a client at `source`.
async fn page_from(server: &Server, source: &str) -> bool {
    parloir::net::install_crypto_provider();
    let client = reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().ok())
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    client
        .get(format!("{}/", server.http))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Whether a signalling socket opens for a client at `source`.
async fn signalling_from(server: &Server, source: &str) -> bool {
    ws_from(server, source).await.is_ok()
}

/// Whether an ICE-TCP connection to the media port from `source` is
/// kept: one from a blocked network is closed at accept, before a byte is
/// read; another waits for its first frame (up to the handshake deadline).
async fn ice_tcp_from(server: &Server, source: &str) -> bool {
    let media = format!("127.0.0.1:{}", server.media_port).parse().unwrap();
    let Ok(mut tcp) = tcp_from(source, media).await else {
        return false;
    };
    let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut [0u8; 16])).await;
    read.is_err()
}

/// Packets two load-generator participants whose media comes from
/// `source` received from each other in a short call (their signalling
/// comes from 127.0.0.1).
async fn media_from(server: &Server, source: &str, room: &str) -> u64 {
    let out = tokio::task::spawn_blocking({
        let (base, source, room) = (server.http.clone(), source.to_string(), room.to_string());
        move || {
            Command::new(loadtest_bin())
                .args([
                    "run", "--target", &base, "--preset", "meeting", "--rooms", "1",
                ])
                .args(["--participants", "2", "--duration", "3", "--warmup", "1"])
                .args(["--client-ip", &source, "--room", &room, "--json"])
                .output()
                .expect("parloir-loadtest")
        }
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "parloir-loadtest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    summary["packets_received"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_network_gets_nothing_until_a_sighup_lifts_it() {
    let dir = std::env::temp_dir().join(format!("parloir-block-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(&config, format!("block = [\"{BLOCKED}/32\"]\n")).unwrap();
    let server = Server::start_args(&["--config", config.to_str().unwrap()]);

    let browser = Browser::launch().await;
    let call = call_of_two(&browser, &server.http, "famille").await;
    let tabs = [&call[0].0, &call[1].0];

    // Blocked: no page, no signalling, no media.
    assert!(
        page_from(&server, "127.0.0.1").await,
        "the page loads for others"
    );
    assert!(
        !page_from(&server, BLOCKED).await,
        "no page for the blocked network"
    );
    assert!(!signalling_from(&server, BLOCKED).await, "no signalling");
    assert!(
        signalling_from(&server, "127.0.0.2").await,
        "signalling for others"
    );
    let received = media_from(&server, BLOCKED, "bloque-1").await;
    assert_eq!(received, 0, "no media from the blocked network");
    assert!(!ice_tcp_from(&server, BLOCKED).await, "no ICE-TCP");
    assert!(
        ice_tcp_from(&server, "127.0.0.2").await,
        "ICE-TCP for others"
    );
    assert!(
        media_from(&server, "127.0.0.2", "libre-1").await > 100,
        "media for others"
    );

    // The operator lifts the block: the file, then SIGHUP.
    std::fs::write(&config, "block = []\n").unwrap();
    server.signal("-HUP");
    wait_for(
        "the page for the network let in",
        Duration::from_secs(10),
        || async { page_from(&server, BLOCKED).await.then_some(()) },
    )
    .await;
    assert!(
        signalling_from(&server, BLOCKED).await,
        "signalling after the reload"
    );
    let received = media_from(&server, BLOCKED, "bloque-2").await;
    assert!(received > 100, "media after the reload: {received} packets");
    assert!(
        ice_tcp_from(&server, BLOCKED).await,
        "ICE-TCP after the reload"
    );

    // And blocked again the same way.
    std::fs::write(&config, format!("block = [\"{BLOCKED}/32\"]\n")).unwrap();
    server.signal("-HUP");
    wait_for(
        "the page refused again",
        Duration::from_secs(10),
        || async { (!page_from(&server, BLOCKED).await).then_some(()) },
    )
    .await;

    // The call went on through all of it.
    still_decoding(&tabs, Duration::from_secs(15)).await;
    wait_full_mesh("still a full call", &call, Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
