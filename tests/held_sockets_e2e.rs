//! Sockets held open in numbers, beside a measured meeting on a real
//! server on loopback:
//!
//! - 480 signalling sockets from 8 addresses, each holding the first
//!   fragment of a message whose last never comes: a socket used to
//!   assemble up to 1 MiB (480 sockets held 1.02 GB); now a message is
//!   cut at its budget (320 KiB), and a socket holds about twice what it
//!   sent (the frame read whole, then its payload copied);
//! - 20,000 HTTP connections kept alive from one address: they used to
//!   fill the 20,000 open files, and pages from elsewhere timed out; now
//!   an address keeps 512.
//!
//! The meeting stays whole, and a page from another address loads while
//! they are held. Figures with `--nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{closed_by_server, measured_meeting, meeting_whole, tcp_from, ws_from, Server};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// The first fragment each socket sends: just under its budget.
const FRAGMENT: usize = 300 << 10;
/// Signalling sockets per address: the handshakes' burst.
const SOCKETS: usize = 60;
const KEPT_ALIVE: usize = 20_000;

/// A page from `source`: its status line.
async fn page_from(server: &Server, source: &str) -> String {
    let mut s = tcp_from(source, server.http_addr()).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: parloir\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
        .await
        .expect("the page within 5 s")
        .expect("the page");
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_sockets_cost_their_budget_and_nobody_their_call() {
    parloir::net::raise_open_files_limit();
    let server = Server::start();
    let meeting = measured_meeting(&server.http, &[]);
    let rss_before = server.rss_kib();

    // Unfinished messages from 8 addresses.
    let mut unfinished = Vec::new();
    for a in 2..10 {
        let ip = format!("127.0.0.{a}");
        for _ in 0..SOCKETS {
            let mut ws = ws_from(&server, &ip).await.expect("a signalling socket");
            let first = Frame::message("x".repeat(FRAGMENT), OpCode::Data(Data::Text), false);
            ws.send(Message::Frame(first))
                .await
                .expect("the fragment sent");
            unfinished.push(ws);
        }
    }
    // Read once the server has had them (loopback, a moment).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_unfinished = server.rss_kib();
    let per_socket = rss_unfinished.saturating_sub(rss_before) / unfinished.len() as u64;
    println!(
        "{} sockets with {} KiB of an unfinished message each: the server's anonymous \
         memory {} -> {} MiB, {per_socket} KiB per socket",
        unfinished.len(),
        FRAGMENT >> 10,
        rss_before / 1024,
        rss_unfinished / 1024
    );

    // Kept-alive HTTP connections from one more address.
    let start = Instant::now();
    let mut kept = Vec::new();
    for i in 0..KEPT_ALIVE {
        let Ok(mut s) = tcp_from("127.0.0.10", server.http_addr()).await else {
            continue;
        };
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: parloir\r\n\r\n")
            .await
            .is_ok()
        {
            kept.push(s.into_std().unwrap());
        }
        // Those the server closed are let go of, as an attacker would,
        // so that this process's own open files last.
        if i % 500 == 499 {
            kept.retain_mut(|s| !closed_by_server(s));
        }
    }
    let opened = start.elapsed();
    let page = page_from(&server, "127.0.0.11").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    kept.retain_mut(|s| !closed_by_server(s));
    println!(
        "{KEPT_ALIVE} kept-alive connections from one address in {:.1} s: {} kept by the \
         server; a page from elsewhere meanwhile: {page}",
        opened.as_secs_f64(),
        kept.len()
    );

    let summary = tokio::task::spawn_blocking(move || meeting_whole(meeting))
        .await
        .unwrap();
    println!("the meeting: {summary}");
    assert_eq!(page, "HTTP/1.1 200", "a page from another address");
    assert!(
        kept.len() <= 512,
        "{} kept-alive connections kept",
        kept.len()
    );
    // What a socket holds is about twice its fragment and its read
    // buffer: the WebSocket layer reads a frame whole before it copies
    // its payload into the message being assembled (it used to be up to
    // 1 MiB of message, and 2 MiB a socket in all).
    assert!(
        per_socket <= (FRAGMENT as u64 >> 10) * 3,
        "{per_socket} KiB per socket with an unfinished message"
    );
    drop(unfinished);
}
