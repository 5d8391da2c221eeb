//! ICE over TCP end to end: one participant's browser runs on a host of its
//! own (a network namespace) whose link drops every UDP datagram, as many
//! hospital networks do. It must still join, see and be seen, over the
//! worker's passive TCP candidate (RFC 6544, RFC 4571 framing).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::browser::Tab;
use common::netns::NetNs;
use common::{browsers_here_and_in, frames_decoded, join, wait_full_mesh, Server};
use serde_json::Value;

async fn path(tab: &Tab<'_>) -> Value {
    tab.eval("window.parloir.path()").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_without_udp_calls_over_tcp() {
    let ns = NetNs::create();
    let mut server = Server::start_for(&ns);
    let (here, there, remote_url) = browsers_here_and_in(&ns, &server, &[]).await;
    // Every UDP datagram to and from Ben's host is lost, from the start.
    ns.lose_udp(100);
    let room = "sans-udp-e2e";
    let tabs = [
        join(&here, &server.http, room, "Ana").await,
        join(&there, &remote_url, room, "Ben").await,
    ];
    wait_full_mesh(
        "Ana and Ben see and hear each other without UDP",
        &tabs,
        Duration::from_secs(40),
    )
    .await;
    let ben = path(&tabs[1].0).await;
    let ana = path(&tabs[0].0).await;
    eprintln!("Ben's media goes by {ben}, Ana's by {ana}");
    assert_eq!(ben["protocol"], "tcp", "Ben, without UDP, over TCP");
    assert_eq!(ana["protocol"], "udp", "Ana keeps UDP");

    // Bad input on the TCP port, during the call: garbage, a frame of
    // 65,535 bytes announced with nothing behind it, a TLS handshake that
    // stops after its first record, and 1,000 connections that say nothing.
    let port = server.media_port;
    let target = format!("{}:{port}", ns.host_ip);
    let connect = || std::net::TcpStream::connect(&target).expect("connect to the media port");
    let mut garbage = connect();
    garbage
        .write_all(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3, 9, 9, 9])
        .unwrap();
    let mut huge = connect();
    huge.write_all(&[0xff, 0xff]).unwrap();
    let mut tls = connect();
    tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .unwrap();
    let mut idle: Vec<std::net::TcpStream> = (0..1000).map(|_| connect()).collect();
    // All from one address: past its share, closed at once; Ben's address
    // keeps its own (5,050 from one address used to take every slot).
    let held = common::wait_at_most_open(
        "what one address opens past its share closed",
        &mut idle,
        parloir::worker::max_tcp_per_address(),
        Duration::from_secs(3),
    )
    .await;
    eprintln!("1,000 silent connections from one address: {held} held");
    // The oversized frame is refused at once.
    common::wait_for(
        "the 65,535-byte frame closed",
        Duration::from_secs(3),
        || {
            let c = common::closed_by_server(&mut huge);
            async move { c.then_some(()) }
        },
    )
    .await;
    // The call goes on meanwhile: both still decode each other.
    common::still_decoding(&[&tabs[0].0, &tabs[1].0], Duration::from_secs(5)).await;
    // Those that never made an ICE handshake are closed after its deadline.
    let start = Instant::now();
    let mut open: Vec<std::net::TcpStream> = idle;
    open.push(garbage);
    open.push(tls);
    common::wait_all_closed("silent connections closed", open, Duration::from_secs(15)).await;
    eprintln!(
        "1,002 connections without a handshake closed {:.1} s after they opened",
        start.elapsed().as_secs_f64()
    );
    assert!(server.alive());

    // The network lets UDP through again: Ben's call moves to it by
    // itself. Then UDP stops in the middle of the call, as when a phone
    // joins a network that drops it: the call comes back over TCP.
    ns.stop_losing();
    let start = Instant::now();
    common::wait_for(
        "Ben's media back on UDP",
        Duration::from_secs(30),
        || async { (path(&tabs[1].0).await["protocol"] == "udp").then_some(()) },
    )
    .await;
    eprintln!(
        "UDP allowed again: on UDP after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    ns.lose_udp(100);
    let start = Instant::now();
    let ana = tabs[0].1;
    let decoded = || async {
        frames_decoded(&tabs[1].0)
            .await
            .get(&ana)
            .copied()
            .unwrap_or(0)
    };
    // Ben goes on decoding over TCP; the longest stretch without a new
    // frame is what he saw frozen.
    let (mut last, mut last_at, mut frozen) = (decoded().await, Instant::now(), Duration::ZERO);
    let mut tcp_from = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = decoded().await;
        if now > last {
            frozen = frozen.max(last_at.elapsed());
            (last, last_at) = (now, Instant::now());
        }
        if tcp_from.is_none() && path(&tabs[1].0).await["protocol"] == "tcp" {
            tcp_from = Some(now);
        }
        if tcp_from.is_some_and(|f| now > f + 30) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the call did not come back over TCP"
        );
    }
    eprintln!(
        "UDP dropped mid-call: on TCP and decoding after {:.1} s, longest freeze {:.1} s",
        start.elapsed().as_secs_f64(),
        frozen.max(last_at.elapsed()).as_secs_f64()
    );

    // TCP to the media port is blocked too: nothing is left. Someone who
    // joins now from that network is told so plainly, not left waiting.
    ns.block_tcp_port(port);
    let (dora, _) = join(&there, &remote_url, room, "Dora").await;
    let start = Instant::now();
    let status = common::wait_for("the no-path message", Duration::from_secs(40), || async {
        let state = dora.eval("window.parloir.state()").await;
        let status = state["status"].as_str().unwrap_or_default().to_string();
        status
            .contains("cannot connect from this network")
            .then_some(status)
    })
    .await;
    eprintln!(
        "no path: said after {:.1} s: {status}",
        start.elapsed().as_secs_f64()
    );
}
