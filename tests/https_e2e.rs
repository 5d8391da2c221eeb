//! HTTPS and WSS built in: `parloir serve --tls-cert --tls-key` serves the
//! page and the signalling over TLS, and a call works through them in
//! headless Chromium. The certificate is then replaced on disk during the
//! call: new connections get the new one within seconds, and the call goes
//! on. Silent connections from one address cannot hold every TLS handshake
//! slot meanwhile.

mod common;

use std::process::Command;
use std::time::Duration;

use common::browser::Browser;
use common::certificate::make_certificate;
use common::{join, tcp_from, wait_at_most_open, wait_for, wait_full_mesh, Server};
use parloir::roles::http_port::OPENING_DEADLINE;

/// The fingerprint of the certificate a new TLS connection to `addr` gets.
fn fingerprint_served(addr: &str) -> String {
    let script = format!(
        "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null \
         | openssl x509 -noout -fingerprint -sha256"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_https_survives_a_renewed_certificate() {
    let dir = std::env::temp_dir().join(format!("parloir-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let first = make_certificate(&cert, &key, "first");
    let server = Server::start_args(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(server.http.starts_with("https://"), "{}", server.http);
    let addr = server.http.trim_start_matches("https://").to_string();
    assert_eq!(fingerprint_served(&addr), first);

    // On every address (`--http 0.0.0.0:...`, as deployed), the URL said
    // is the name the certificate is for: a browser refuses it under the
    // loopback address or the announced one.
    let wildcard = common::Proc::parloir(&[
        "serve",
        "--http",
        "0.0.0.0:0",
        "--media",
        &format!("127.0.0.1:{}", common::free_udp_port()),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--state-dir",
        "off",
    ]);
    let said = wildcard.url();
    assert!(said.starts_with("https://localhost:"), "{said}");
    drop(wildcard);

    // A self-signed certificate: the browser is told to accept it.
    let browser = Browser::launch_in(None, &["--ignore-certificate-errors".to_string()]).await;
    let room = "https-e2e";
    let tabs = [
        join(&browser, &server.http, room, "Ana").await,
        join(&browser, &server.http, room, "Ben").await,
    ];
    wait_full_mesh(
        "Ana and Ben over HTTPS and WSS",
        &tabs,
        Duration::from_secs(30),
    )
    .await;

    // 1,100 silent connections from one address (not a byte, so no TLS
    // handshake ever finishes): past its share of connections opening, the
    // server closes them at once, and a TLS handshake from elsewhere gets
    // through. The share was the whole server's: 1,024 silent connections
    // locked everyone out.
    parloir::net::raise_open_files_limit();
    let mut silent = Vec::new();
    for _ in 0..1_100 {
        if let Ok(s) = tcp_from("127.0.0.2", server.http_addr()).await {
            silent.push(s.into_std().unwrap());
        }
    }
    assert!(silent.len() > 1_024, "{} connected", silent.len());
    // Well within the opening deadline, while those it keeps are held.
    let held = wait_at_most_open(
        "the server to close what one address opens past its share",
        &mut silent,
        64,
        OPENING_DEADLINE / 2,
    )
    .await;
    assert!(held > 0, "still held, not yet closed at the deadline");
    assert_eq!(
        fingerprint_served(&addr),
        first,
        "a TLS handshake from elsewhere while {held} silent connections are held"
    );
    println!("1,100 silent connections from one address: {held} held, TLS from elsewhere served");
    drop(silent);

    // Renewed: written in place, as certbot's deploy step or a copy does,
    // and caught half done: the new key beside a certificate not yet
    // written, both files with the time stamps they will keep.
    let (new_cert, new_key) = (dir.join("new-cert.pem"), dir.join("new-key.pem"));
    let second = make_certificate(&new_cert, &new_key, "second");
    let stamp = std::time::SystemTime::now() - Duration::from_secs(60);
    let set_stamp = |path: &std::path::Path| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(stamp))
            .unwrap();
    };
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nhalf writ").unwrap();
    set_stamp(&key);
    set_stamp(&cert);
    // Nothing to poll: the server looks every 2 s and keeps the old
    // certificate; two looks and a half.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fingerprint_served(&addr), first, "the old one is kept");
    // The copy finishes; its time stamp does not change again.
    std::fs::copy(&new_cert, &cert).unwrap();
    set_stamp(&cert);
    wait_for(
        "new connections to get the renewed certificate",
        Duration::from_secs(15),
        || async { (fingerprint_served(&addr) == second).then_some(()) },
    )
    .await;

    // The call goes on: both still decode each other, and their
    // WebSockets (TLS, unlike the media) were not cut.
    common::still_decoding(&[&tabs[0].0, &tabs[1].0], Duration::from_secs(5)).await;
    for (tab, _) in &tabs {
        let state = tab.eval("window.parloir.state()").await;
        assert_eq!(state["signalling"], true, "{state}");
        assert_eq!(state["resumes"], 0, "the WebSocket was never lost: {state}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
