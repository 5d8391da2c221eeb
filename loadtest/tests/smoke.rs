//! Smoke test of the load generator against a real `parloir serve`: a few
//! seconds of a 4-person meeting on loopback must arrive complete.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_small_meeting_arrives_without_loss() {
    let me = std::path::PathBuf::from(env!("CARGO_BIN_EXE_parloir-loadtest"));
    let parloir = me.with_file_name("parloir");
    assert!(
        parloir.exists(),
        "build the workspace first (cargo test --workspace)"
    );
    let media = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(&parloir)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--media",
            &format!("127.0.0.1:{media}"),
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches(['/', '.'])
        .to_string();
    let out = Command::new(&me)
        .args([
            "run",
            "--target",
            &url,
            "--preset",
            "meeting",
            "--participants",
            "4",
        ])
        .args(["--duration", "3", "--warmup", "1", "--json"])
        .args(["--target-pid", &server.id().to_string()])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{s}");
    assert_eq!(s["failed"], 0);
    // 4 publishers × (audio + video) × 3 other subscribers.
    assert_eq!(s["streams_out"], 24);
    assert!(s["packets_received"].as_u64().unwrap() > 3_000, "{s}");
    assert_eq!(
        s["loss_pct"].as_f64(),
        Some(0.0),
        "no loss on loopback at low load: {s}"
    );
    assert_eq!(s["srtp_profile"], "SRTP_AEAD_AES_256_GCM");
}

/// The benchmark starts every target it measures with the arguments it
/// gives them: a server option it passes and the server no longer
/// accepts would otherwise only show as empty figures.
#[test]
fn the_benchmark_starts_every_target() {
    let me = std::path::PathBuf::from(env!("CARGO_BIN_EXE_parloir-loadtest"));
    let out = Command::new(&me)
        .args(["bench", "--check"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    println!("{log}");
    assert!(out.status.success(), "{log}");
    assert!(log.contains("parloir: started"), "{log}");
    assert!(log.contains("udp_relay: started"), "{log}");
}
