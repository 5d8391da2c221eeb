//! Malformed signalling and random UDP datagrams thrown at a running server
//! while a call goes on: each bad message gets a clear error, and the call
//! does not notice. The datagrams come from a stranger's address, so they
//! end at the demultiplexer (a flood a stranger can send); garbage from a
//! participant's own address, which reaches its str0m connection, is
//! thrown by `endpoint_tests.rs` and by the `datagrams` fuzz target.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{frames_decoded, http_status, join, wait_for, wait_full_mesh, Server};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server) -> Ws {
    tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket")
        .0
}

/// Sends one frame and returns the code of the error frame it earns.
async fn error_code(ws: &mut Ws, frame: Message) -> String {
    error_of(ws, frame).await["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Sends one frame and returns the error frame it earns.
async fn error_of(ws: &mut Ws, frame: Message) -> Value {
    ws.send(frame).await.expect("send");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer within 5 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("server sends JSON");
            if v["type"] == "error" {
                assert!(
                    v["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "a human sentence: {v}"
                );
                return v;
            }
        }
    }
}

/// Whether the server closes `ws` within `timeout`.
async fn closed_within(ws: &mut Ws, timeout: Duration) -> bool {
    let closed = async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, closed).await.is_ok()
}

fn text(s: impl Into<String>) -> Message {
    Message::Text(s.into().into())
}

async fn malformed_signalling(server: &Server) {
    let mut ws = connect(server).await;
    assert_eq!(error_code(&mut ws, text("{nope")).await, "bad-json");
    assert_eq!(
        error_code(&mut ws, text(r#"{"type":"dance"}"#)).await,
        "bad-message"
    );
    assert_eq!(error_code(&mut ws, text("[1,2,3]")).await, "bad-message");
    assert_eq!(
        error_code(&mut ws, Message::Binary(vec![0u8; 64].into())).await,
        "bad-message"
    );
    assert_eq!(
        error_code(&mut ws, text(r#"{"type":"offer","sdp":"v=0"}"#)).await,
        "not-joined"
    );
    let join = |v: u32, room: &str, name: &str| {
        text(format!(
            r#"{{"type":"join","v":{v},"room":"{room}","name":"{name}"}}"#
        ))
    };
    assert_eq!(
        error_code(&mut ws, join(99, "ok-room", "M")).await,
        "unsupported-version"
    );
    assert_eq!(
        error_code(&mut ws, join(1, "../etc/passwd", "M")).await,
        "invalid-room"
    );
    assert_eq!(error_code(&mut ws, join(1, "x", "M")).await, "invalid-room");
    assert_eq!(
        error_code(&mut ws, join(1, "ok-room", "  ")).await,
        "invalid-name"
    );
    let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(300 * 1024));
    assert_eq!(error_code(&mut ws, text(big)).await, "too-large");

    // Joined (in a room of its own), then garbage negotiation.
    ws.send(join(1, "mallory-room", "Mallory")).await.unwrap();
    let e = error_of(
        &mut ws,
        text(r#"{"type":"offer","sdp":"v=0\r\nthis is not sdp"}"#),
    )
    .await;
    assert_eq!(e["code"], "invalid-sdp");
    // The parser's own words (once a heap address) stay in the server.
    assert_eq!(e["message"], "the SDP could not be read", "{e}");
    assert_eq!(
        error_code(&mut ws, text(r#"{"type":"answer","id":1,"sdp":"garbage"}"#)).await,
        "invalid-sdp"
    );
    assert_eq!(
        error_code(
            &mut ws,
            text(r#"{"type":"candidate","candidate":"candidate:x y z"}"#)
        )
        .await,
        "invalid-candidate"
    );
    assert_eq!(
        error_code(&mut ws, join(1, "other-room", "M")).await,
        "already-joined"
    );
    // Still usable after all that.
    ws.send(text(r#"{"type":"ping"}"#)).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Text(ref t) if t.contains("pong")) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(pong, Ok(true), "socket still answers after bad input");

    // Beyond the hard frame limit the socket is closed, nothing else.
    let mut ws = connect(server).await;
    let _ = ws.send(text("x".repeat(3 << 20))).await;
    let closed = closed_within(&mut ws, Duration::from_secs(5)).await;
    assert!(closed, "an oversized frame closes that socket");

    // The first fragment of a message whose last never comes is held only
    // up to the socket's budget (it was four times the message limit:
    // 480 such sockets held 1 GB); past it the socket is closed.
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let mut ws = connect(server).await;
    let first = Frame::message("x".repeat(400 << 10), OpCode::Data(Data::Text), false);
    let _ = ws.send(Message::Frame(first)).await;
    let closed = closed_within(&mut ws, Duration::from_secs(5)).await;
    assert!(closed, "400 KiB of an unfinished message closes it");

    // A flood is refused with rate-limited, then cut. First a flood that
    // stays under the cut (the burst of 120, then fewer than 200 refused
    // in a row), whose answers are all read: a socket cut with pings still
    // unread is reset, and what it had sent before is lost with it.
    let mut ws = connect(server).await;
    let mut limited = false;
    for _ in 0..250 {
        ws.send(text(r#"{"type":"ping"}"#)).await.expect("send");
    }
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        if let Message::Text(t) = msg {
            limited |= t.contains("rate-limited");
        }
    }
    assert!(limited, "a flood gets rate-limited errors");
    // Then one that goes on: the socket is cut.
    for _ in 0..400 {
        if ws.send(text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "a flood that goes on is cut");
}

/// Random and protocol-shaped garbage to the media port, bounded in count.
/// A WebSocket handshake to the signalling sent as a page of `origin`
/// would: the HTTP status of the answer (101 when upgraded).
async fn handshake_from(server: &Server, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.ws_url().into_client_request().expect("request");
    req.headers_mut()
        .insert("origin", origin.parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, r)) => r.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("handshake: {e}"),
    }
}

/// Pages of another site may not use the signalling (a visitor's open tab
/// of a hostile site would otherwise join rooms in their name); the page
/// runs only its own scripts and leaks no link in a Referer.
async fn other_sites(server: &Server) {
    assert_eq!(handshake_from(server, &server.http).await, 101);
    for other in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        assert_eq!(handshake_from(server, other).await, 403, "{other}");
    }
    let page = parloir::net::http_client(None)
        .expect("an HTTP client")
        .get(format!("{}/r/some-room", server.http))
        .send()
        .await
        .expect("the page");
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    for part in [
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'self'",
    ] {
        assert!(csp.contains(part), "{part} in {csp:?}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("referrer-policy"), "no-referrer");
}

async fn udp_garbage(server: &Server) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = format!("127.0.0.1:{}", server.media_port);
    let mut rng = rand::thread_rng();
    for i in 0..20_000u32 {
        let len = rng.gen_range(0..1400);
        let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        match i % 4 {
            // STUN-shaped: binding request type, magic cookie, right length.
            0 if d.len() >= 20 => {
                d[0] = 0;
                d[1] = 1;
                let l = (d.len() - 20) as u16 & !3;
                d.truncate(20 + l as usize);
                d[2..4].copy_from_slice(&l.to_be_bytes());
                d[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            }
            // RTP/RTCP-shaped (version 2).
            1 if !d.is_empty() => d[0] = 0x80 | (d[0] & 0x3f),
            // DTLS-shaped (content types 20..63).
            2 if !d.is_empty() => d[0] = 20 + d[0] % 44,
            _ => {}
        }
        let _ = sock.send_to(&d, &target).await;
        if i % 500 == 0 {
            // Keep it a flood, not a kernel buffer overflow test.
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_the_call_goes_on() {
    let mut server = Server::start();
    let browser = Browser::launch().await;
    let room = "bad-input-call";
    let call = vec![
        join(&browser, &server.http, room, "Ana").await,
        join(&browser, &server.http, room, "Ben").await,
    ];
    wait_full_mesh("the call is up", &call, Duration::from_secs(15)).await;
    let mut before = Vec::new();
    for (tab, _) in &call {
        before.push(frames_decoded(tab).await);
    }

    malformed_signalling(&server).await;
    other_sites(&server).await;
    udp_garbage(&server).await;

    // A stranger's load report is refused for its missing secret, before
    // its body is read (this server has no secret: the API is off).
    let refused = parloir::net::http_client(None)
        .expect("an HTTP client")
        .post(format!("{}/cluster/report", server.http))
        .body("{not a report")
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status().as_u16(), 403);

    assert!(server.alive(), "the server process survived");
    assert_eq!(http_status(&server.http, "/healthz").await, 200);
    assert_eq!(http_status(&server.http, "/readyz").await, 200);

    // The call went on: both keep decoding the other's video, well past
    // what they had before the attack.
    for ((tab, _), before) in call.iter().zip(before) {
        wait_for(
            "video keeps playing after the attack",
            Duration::from_secs(10),
            || async {
                let now = frames_decoded(tab).await;
                let progressed = before
                    .iter()
                    .all(|(id, f)| now.get(id).is_some_and(|n| *n >= f + 50));
                (progressed && !before.is_empty()).then_some(())
            },
        )
        .await;
    }
    wait_full_mesh("still a full call", &call, Duration::from_secs(5)).await;
}

/// A secret anyone could guess is refused before anything listens.
#[test]
fn a_short_secret_is_refused_at_start() {
    for role in [
        &["signal", "--http", "127.0.0.1:0"][..],
        &["serve", "--http", "127.0.0.1:0", "--media", "127.0.0.1:0"][..],
    ] {
        for secret in ["", "short"] {
            let mut p = std::process::Command::new(env!("CARGO_BIN_EXE_parloir"))
                .args(role)
                .args(["--secret", secret])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run parloir");
            let end = std::time::Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(s) = p.try_wait().expect("wait") {
                    break s;
                }
                if std::time::Instant::now() > end {
                    let _ = p.kill();
                    panic!("{role:?} started with the secret {secret:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let mut said = String::new();
            std::io::Read::read_to_string(&mut p.stderr.take().expect("stderr"), &mut said)
                .expect("stderr");
            assert!(!status.success(), "{role:?} with {secret:?}");
            assert!(said.contains("too short"), "{role:?}: {said}");
        }
    }
}
