//! Idle and slow sockets from one address (127.0.0.2), all at once, while
//! a call goes on in Chromium:
//!
//! - silent TCP connections (not a byte): closed at the opening deadline;
//! - slow-loris requests (a header line that never ends, a byte at a
//!   time): closed at the header deadline;
//! - HTTP connections kept alive and silent after one request: closed at
//!   the header deadline;
//! - WebSockets that never read (no pong, no frame): closed once idle.
//!
//! Meanwhile a signalling socket from another address (127.0.0.3) that
//! answers pings but says nothing stays open, the call keeps decoding, and
//! the server's memory comes back to its level. Past 512 connections open
//! from one address, its new ones are closed at once. Figures with
//! `cargo test --release --test slow_sockets_e2e -- --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{call_of_two, memory_back_to, still_decoding, tcp_from, ws_from, Server};
use futures_util::StreamExt;
use parloir::limits::{IDLE, PING_EVERY};
use parloir::roles::http_port::{HEADER_DEADLINE, OPENING_DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ATTACKER: &str = "127.0.0.2";
const EACH: usize = 50;
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(5);

/// Connections of one kind, and when the server closed each.
struct Kind {
    name: &'static str,
    open: Vec<std::net::TcpStream>,
    closed_after: Vec<Duration>,
    /// Each poll sends one more byte of a header that never ends.
    trickle: bool,
}

impl Kind {
    fn new(name: &'static str, open: Vec<tokio::net::TcpStream>, trickle: bool) -> Self {
        let open = open.into_iter().map(|s| s.into_std().unwrap()).collect();
        Kind {
            name,
            open,
            closed_after: Vec::new(),
            trickle,
        }
    }

    fn poll(&mut self, since: Instant) {
        let trickle = self.trickle;
        let after = &mut self.closed_after;
        self.open.retain_mut(|s| {
            if trickle {
                let _ = std::io::Write::write(s, b"a");
            }
            if common::closed_by_server(s) {
                after.push(since.elapsed());
                false
            } else {
                true
            }
        });
    }

    fn latest(&self) -> Duration {
        self.closed_after.iter().copied().max().unwrap_or_default()
    }

    fn earliest(&self) -> Duration {
        self.closed_after.iter().copied().min().unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_sockets_are_closed_and_harm_nobody() {
    let server = Server::start();
    let base = server.http.clone();
    let browser = Browser::launch().await;
    let call = call_of_two(&browser, &base, "salle-des-familles").await;
    let rss_before = server.rss_kib();

    // Someone quiet but alive: answers pings (tungstenite does while read).
    let mut quiet = ws_from(&server, "127.0.0.3").await.expect("a socket");
    let quiet_task = tokio::spawn(async move { while let Some(Ok(_)) = quiet.next().await {} });

    let attacker = || async {
        tcp_from(ATTACKER, server.http_addr())
            .await
            .expect("connect")
    };
    let start = Instant::now();
    let (mut silent, mut slow, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..EACH {
        silent.push(attacker().await);
        let mut s = attacker().await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: parloir\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
        let mut k = attacker().await;
        k.write_all(b"GET /healthz HTTP/1.1\r\nHost: parloir\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        k.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "a kept-alive request answered");
        kept.push(k);
    }
    let mut mute = Vec::new();
    for _ in 0..EACH {
        let ws = ws_from(&server, ATTACKER).await.expect("a WebSocket");
        mute.push(ws.into_inner());
    }
    let opened = start.elapsed();
    let rss_flooded = server.rss_kib();
    let mut kinds = [
        Kind::new("silent TCP", silent, false),
        Kind::new("slow-loris headers", slow, true),
        Kind::new("kept alive, silent", kept, false),
        Kind::new("WebSocket never read", mute, false),
    ];

    let deadline = IDLE + PING_EVERY + SLACK * 2;
    while kinds.iter().any(|k| !k.open.is_empty()) {
        assert!(
            start.elapsed() < deadline,
            "still open after {deadline:?}: {:?}",
            kinds
                .iter()
                .map(|k| (k.name, k.open.len()))
                .collect::<Vec<_>>()
        );
        for k in &mut kinds {
            k.poll(start);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rss_after = memory_back_to(&server, rss_before, "the slow sockets").await;

    println!(
        "{} connections of each kind from {ATTACKER}, opened in {:.1} s:",
        EACH,
        opened.as_secs_f64()
    );
    for k in &kinds {
        println!(
            "  {:<22} all closed by the server within {:.1} s",
            k.name,
            k.latest().as_secs_f64()
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "server memory (anonymous, resident): {:.1} MiB before, {:.1} MiB with them open, {:.1} MiB after",
        mib(rss_before),
        mib(rss_flooded),
        mib(rss_after)
    );

    // Each kind at its own deadline: not before (every one was opened
    // after `start`), not much later.
    let deadlines = [OPENING_DEADLINE, HEADER_DEADLINE, HEADER_DEADLINE, IDLE];
    for (k, deadline) in kinds.iter().zip(deadlines) {
        let late = if deadline == IDLE { PING_EVERY } else { SLACK };
        assert!(
            k.earliest() >= deadline && k.latest() <= deadline + late,
            "{}: closed between {:?} and {:?}, deadline {deadline:?}",
            k.name,
            k.earliest(),
            k.latest()
        );
    }

    // The quiet socket from elsewhere is still there, the call goes on.
    assert!(!quiet_task.is_finished(), "a live socket was closed");
    quiet_task.abort();
    let tabs: Vec<_> = call.iter().map(|(t, _)| t).collect();
    still_decoding(&tabs, Duration::from_secs(10)).await;

    // Past its share of open connections (512), what one address opens is
    // closed at once, well before any deadline, and pages from elsewhere
    // load: 19,985 kept alive from one address used to fill every
    // descriptor of the process.
    let mut many = Vec::new();
    for _ in 0..600 {
        many.push(attacker().await.into_std().unwrap());
    }
    let held = common::wait_at_most_open(
        "the server to close what one address opens past its share",
        &mut many,
        512,
        HEADER_DEADLINE / 2,
    )
    .await;
    assert!(held > 0, "still held, not yet closed at the deadline");
    assert_eq!(
        common::http_status(&base, "/").await,
        200,
        "a page from elsewhere"
    );
    println!("600 connections from {ATTACKER}: {held} held, a page from elsewhere served");
    drop(many);
    still_decoding(&tabs, Duration::from_secs(10)).await;
}
