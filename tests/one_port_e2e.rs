//! One port for everything: a participant on a network that lets nothing
//! out but TCP to port 443 (a host of its own, a network namespace) loads
//! the page over HTTPS from that port, signals over WSS on it and calls
//! over ICE-TCP on that same port, while a participant on an open network
//! keeps UDP. `parloir serve --http 0.0.0.0:443 --media-tcp 0.0.0.0:443`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::certificate::make_certificate;
use common::netns::NetNs;
use common::{free_udp_port, join, wait_full_mesh, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_open_only_to_tcp_443_calls_through_it() {
    // The server's address must look public, as a real one is: browsers
    // refuse ICE-TCP to port 443 of a private address.
    let ns = NetNs::create_public();
    let dir = std::env::temp_dir().join(format!("parloir-443-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    make_certificate(&cert, &key, "parloir-443");
    let media = format!("{}:{}", ns.host_ip, free_udp_port());
    let args = [
        "serve",
        "--http",
        "0.0.0.0:443",
        "--media-tcp",
        "0.0.0.0:443",
        "--media",
        &media,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let mut server = Proc::parloir(&args);
    // On every address, the URL said names the certificate's host.
    assert_eq!(server.url(), "https://localhost");
    let here_url = "https://127.0.0.1:443".to_string();
    ns.only_tcp_port_out(443);

    // A self-signed certificate: the browsers are told to accept it.
    let flags = ["--ignore-certificate-errors".to_string()];
    let here = Browser::launch_in(None, &flags).await;
    let there = Browser::launch_in(Some(&ns), &flags).await;
    let there_url = format!("https://{}:443", ns.host_ip);
    let room = "port-443-e2e";
    let tabs = [
        join(&here, &here_url, room, "Ana").await,
        join(&there, &there_url, room, "Ben").await,
    ];
    wait_full_mesh(
        "Ana and Ben see and hear each other, Ben through TCP 443 alone",
        &tabs,
        Duration::from_secs(40),
    )
    .await;

    let ben = &tabs[1].0;
    assert_eq!(ben.eval("location.protocol").await, "https:");
    let path = ben.eval("window.parloir.path()").await;
    let ana_path = tabs[0].0.eval("window.parloir.path()").await;
    eprintln!("Ben's media goes by {path}, Ana's by {ana_path}");
    assert_eq!(path["protocol"], "tcp", "Ben's media over TCP");
    assert_eq!(path["port"], 443, "on the port of the page");
    assert_eq!(
        ana_path["protocol"], "udp",
        "Ana, on an open network, keeps UDP"
    );

    // Bad input on the shared port, during the call: garbage, a TLS
    // handshake that stops after its first record, and 500 connections
    // that say nothing. The page, the signalling and the call go on; each
    // is closed after the opening deadline.
    let target = format!("{}:443", ns.host_ip);
    let connect = || TcpStream::connect(&target).expect("connect to port 443");
    let mut garbage = connect();
    garbage
        .write_all(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3, 9, 9, 9])
        .unwrap();
    let mut tls = connect();
    tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .unwrap();
    let start = Instant::now();
    let mut open: Vec<TcpStream> = (0..500).map(|_| connect()).collect();
    open.push(garbage);
    open.push(tls);
    let health = ben.eval("fetch('/healthz').then(r => r.status)").await;
    assert_eq!(health, 200, "a new HTTPS request on the port meanwhile");
    common::still_decoding(&[&tabs[0].0, &tabs[1].0], Duration::from_secs(5)).await;
    common::wait_all_closed("silent connections closed", open, Duration::from_secs(20)).await;
    eprintln!(
        "502 connections that never finished opening closed {:.1} s after they opened",
        start.elapsed().as_secs_f64()
    );
    common::still_decoding(&[&tabs[0].0, &tabs[1].0], Duration::from_secs(5)).await;

    // The server restarts (an upgrade, a crash): Ben, who has only TCP
    // 443, comes back by himself, page not reloaded, media over TCP again.
    let _ = server.child.kill();
    let _ = server.child.wait();
    tokio::time::sleep(Duration::from_secs(5)).await;
    server = Proc::parloir(&args);
    let back = Instant::now();
    let refs = [&tabs[0].0, &tabs[1].0];
    // The new server knows nobody: both join it again, under new ids.
    common::wait_joined_again("both joined again", &tabs, Duration::from_secs(15)).await;
    common::wait_full_mesh_rejoined(
        "both back after the restart",
        &refs,
        Duration::from_secs(15),
    )
    .await;
    common::still_decoding(&refs, Duration::from_secs(10)).await;
    let path = ben.eval("window.parloir.path()").await;
    assert_eq!(path["protocol"], "tcp", "{path}");
    eprintln!(
        "server restarted: Ben (TCP 443 only) decodes again {:.1} s after it is back",
        back.elapsed().as_secs_f64()
    );
    drop(server);
}
