//! TURN end to end: a real coturn, started here with a shared secret
//! (`use-auth-secret`), and Parloir handing each client its own credential
//! from that secret. One participant's browser is forced to relay
//! (`?relay=1`: `iceTransportPolicy: 'relay'`), as on a network that lets
//! nothing else through; the call must work through the relay, and only
//! through it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{free_udp_port, join, wait_for, wait_full_mesh, you, Server};
use serde_json::Value;

const SECRET: &str = "turn-e2e-shared-secret";

/// coturn on loopback, killed on drop.
struct Coturn {
    child: Child,
    port: u16,
}

impl Coturn {
    fn start() -> Coturn {
        let port = free_udp_port();
        let relay_min = free_udp_port();
        let mut child = Command::new("turnserver")
            .args([
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--log-file",
                "stdout",
            ])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            // A small range of relay ports near a free one.
            .args(["--min-port", &relay_min.to_string()])
            .args(["--max-port", &(relay_min.saturating_add(20)).to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", SECRET])
            .args(["--realm", "parloir.test"])
            // Parloir's media is on loopback here; a real deployment
            // relays to public addresses and keeps this off.
            .arg("--allow-loopback-peers")
            .args(["--pidfile", &format!("/tmp/parloir-turn-{port}.pid")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver (apt-get install coturn)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Total General servers") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("coturn did not start");
        Coturn { child, port }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The selected candidate pair's local end, as `window.parloir.path()`
/// reads it: `{type, protocol}`.
async fn path(tab: &Tab<'_>) -> Value {
    tab.eval("window.parloir.path()").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_forced_to_relay_calls_through_turn() {
    let turn = Coturn::start();
    let uri = format!("turn:127.0.0.1:{}?transport=udp", turn.port);
    let server = Server::start_args(&["--turn-uri", &uri, "--turn-secret", SECRET]);
    let browser = Browser::launch().await;
    let room = "relais-e2e";
    let ana = join(&browser, &server.http, room, "Ana").await;
    let ben_tab = browser
        .open(&format!("{}/r/{room}?name=Ben&join=1&relay=1", server.http))
        .await;
    let ben_id = wait_for("Ben to join", Duration::from_secs(20), || you(&ben_tab)).await;
    let tabs = [ana, (ben_tab, ben_id)];
    wait_full_mesh(
        "Ana and Ben see and hear each other",
        &tabs,
        Duration::from_secs(30),
    )
    .await;

    let ben = path(&tabs[1].0).await;
    let ana = path(&tabs[0].0).await;
    eprintln!("Ben's media goes by {ben}, Ana's by {ana}");
    assert_eq!(ben["type"], "relay", "Ben relays through coturn");
    assert_ne!(ana["type"], "relay", "Ana, not forced, goes direct");
}
