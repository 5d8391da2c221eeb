//! Floods from one address, on loopback, while a call goes on: the limits
//! per client address hold, another address still joins and starts rooms,
//! the call keeps decoding, and the server's memory returns to its level
//! once a flood is over.
//!
//! The attacker's sockets come from 127.0.0.2, the other address's from
//! 127.0.0.3, the browsers' from 127.0.0.1 (all loopback).

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{
    call_of_two, join_answer, memory_back_to, still_decoding, wait_for, wait_full_mesh, ws_from,
    Server,
};
use futures_util::{SinkExt, StreamExt};
use parloir::limits;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn join_msg(room: &str) -> Value {
    json!({"type": "join", "v": 1, "room": room, "name": "x", "audio": false, "video": false})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_from_one_address_leave_the_others_their_calls() {
    let server = Server::start();
    let browser = Browser::launch().await;
    let call = call_of_two(&browser, &server.http, "famille").await;
    let tabs = [&call[0].0, &call[1].0];
    let rss_before = server.rss_kib();

    // 2,000 WebSockets from one address, all at once, held open.
    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(0..2000)
        .map(|_| ws_from(&server, "127.0.0.2"))
        .buffer_unordered(200)
        .collect()
        .await;
    let took = started.elapsed();
    let (mut held, mut refused, mut other) = (Vec::new(), 0, 0);
    for r in results {
        match r {
            Ok(ws) => held.push(ws),
            Err(429) => refused += 1,
            Err(_) => other += 1,
        }
    }
    eprintln!(
        "2,000 sockets from one address in {:.2} s: {} open, {refused} refused (429), {other} failed otherwise",
        took.as_secs_f64(),
        held.len()
    );
    assert!(held.len() <= limits::MAX_OPEN, "{} open", held.len());
    assert!(refused >= 1900, "{refused} refused");
    let rss_flooded = server.rss_kib();

    // Another address still gets in, and starts a room.
    let mut other_ws = ws_from(&server, "127.0.0.3")
        .await
        .expect("another address");
    let welcome = join_answer(&mut other_ws, &join_msg("chez-quelqu-un")).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // 500 joins within a second from the attacker's sockets, each to a new
    // room: a few burst through, the rest are refused.
    let started = Instant::now();
    let mut answers = Vec::new();
    let per_socket = 500 / held.len().max(1) + 1;
    let floods = held.iter_mut().enumerate().map(|(i, ws)| async move {
        let mut out = Vec::new();
        for k in 0..per_socket {
            let a = join_answer(ws, &join_msg(&format!("squat-{i}-{k}"))).await;
            if a["type"] == "welcome" {
                let _ = ws.send(Message::Text(r#"{"type":"leave"}"#.into())).await;
            }
            out.push(a);
        }
        out
    });
    for out in futures_util::future::join_all(floods).await {
        answers.extend(out);
    }
    let took = started.elapsed();
    let welcomed = answers.iter().filter(|a| a["type"] == "welcome").count();
    let limited = answers
        .iter()
        .filter(|a| a["code"] == "rate-limited")
        .count();
    eprintln!(
        "{} joins to new rooms from one address in {:.2} s: {welcomed} let in, {limited} rate-limited",
        answers.len(),
        took.as_secs_f64()
    );
    assert!(answers.len() >= 500);
    assert!(
        welcomed <= limits::NEW_ROOMS_BURST as usize + 1,
        "{welcomed} new rooms"
    );
    assert!(limited >= answers.len() - welcomed - 5, "{limited} limited");

    // The other address is not concerned: it starts another room.
    let mut second = ws_from(&server, "127.0.0.3")
        .await
        .expect("another address");
    let welcome = join_answer(&mut second, &join_msg("chez-quelqu-un-d-autre")).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // A room squatted by twelve sockets that join and never connect
    // media: full at first, a place for a newcomer once the squatters
    // have held theirs past the grace.
    let mut squatters = Vec::new();
    for _ in 0..12 {
        let mut ws = ws_from(&server, "127.0.0.5").await.expect("a squatter");
        let a = join_answer(&mut ws, &join_msg("squatted")).await;
        assert_eq!(a["type"], "welcome", "{a}");
        squatters.push(ws);
    }
    let squatted = Instant::now();
    let refused_full = std::sync::atomic::AtomicUsize::new(0);
    let (full, at) = (&refused_full, &server);
    wait_for(
        "a place in the squatted room",
        Duration::from_secs(25),
        || async move {
            let mut ws = ws_from(at, "127.0.0.3").await.ok()?;
            let a = join_answer(&mut ws, &join_msg("squatted")).await;
            if a["type"] == "welcome" {
                return Some(());
            }
            assert_eq!(a["code"], "room-full", "{a}");
            full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        },
    )
    .await;
    let refused_full = refused_full.into_inner();
    eprintln!(
        "a room squatted by 12 sockets without media: full {refused_full} times, a place for a newcomer after {:.1} s",
        squatted.elapsed().as_secs_f64()
    );
    assert!(refused_full >= 1, "the room was full at first");

    still_decoding(&tabs, Duration::from_secs(15)).await;

    // The flood ends: every socket but the call's closes, and the server
    // gives the memory back (it trims its heap once a burst is over).
    // Twice: a second flood, from another address, leaves nothing behind
    // either.
    drop((held, squatters, other_ws, second));
    let rss_after = memory_back_to(&server, rss_before, "the first flood").await;
    let again: Vec<_> = futures_util::stream::iter(0..2000)
        .map(|_| ws_from(&server, "127.0.0.4"))
        .buffer_unordered(200)
        .collect()
        .await;
    let held_again = again.iter().filter(|r| r.is_ok()).count();
    let rss_flooded_again = server.rss_kib();
    drop(again);
    let rss_second = memory_back_to(&server, rss_before, "the second flood").await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "server memory (anonymous, resident): {:.1} MiB before, {:.1} MiB flooded, {:.1} MiB after; {:.1} MiB flooded again ({held_again} open), {:.1} MiB after",
        mib(rss_before),
        mib(rss_flooded),
        mib(rss_after),
        mib(rss_flooded_again),
        mib(rss_second)
    );
    assert!(held_again <= limits::MAX_OPEN);
    assert!(
        rss_flooded <= rss_before + 32 * 1024,
        "a flood costs little"
    );
    // The attacker's address gets its sockets back once its own close.
    wait_for(
        "the attacker's sockets given back",
        Duration::from_secs(5),
        || async { ws_from(&server, "127.0.0.2").await.ok() },
    )
    .await;
    wait_full_mesh("still a full call", &call, Duration::from_secs(5)).await;
}
