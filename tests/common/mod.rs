//! Shared parts of the end-to-end tests: a real `parloir` process, a real
//! headless Chromium driven over the DevTools protocol, and polling.
#![allow(dead_code)]

pub mod browser;
pub mod certificate;
pub mod netns;
pub mod redis_server;
pub mod screens;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::{Browser, Tab};

/// A `parloir serve` process on free loopback ports, killed on drop.
pub struct Server {
    proc_: Proc,
    pub http: String,
    pub media_port: u16,
    /// What it was started with, the HTTP port made fixed: to start it
    /// again on the same addresses.
    args: Vec<String>,
}

impl Server {
    pub fn start() -> Server {
        // PARLOIR_TEST_MEDIA_IP=0.0.0.0 runs the tests with the default
        // wildcard bind and the announced host address.
        let media_ip =
            std::env::var("PARLOIR_TEST_MEDIA_IP").unwrap_or_else(|_| "127.0.0.1".into());
        Server::start_with("127.0.0.1", &media_ip, &[])
    }

    /// A server on loopback with more flags.
    pub fn start_args(extra: &[&str]) -> Server {
        Server::start_with("127.0.0.1", "127.0.0.1", extra)
    }

    /// A server that browsers in `ns` reach too: media on this side of its
    /// veth, HTTP on every local address (`http` stays the loopback URL).
    pub fn start_for(ns: &netns::NetNs) -> Server {
        Server::start_with("0.0.0.0", &ns.host_ip, &[])
    }

    fn start_with(http_ip: &str, media_ip: &str, extra: &[&str]) -> Server {
        let media_port = free_udp_port();
        let media = format!("{media_ip}:{media_port}");
        let http = format!("{http_ip}:0");
        // Doors kept in a folder of its own, the same after a restart.
        let state = std::env::temp_dir().join(format!(
            "parloir-test-state-{}-{media_port}",
            std::process::id()
        ));
        let state = state.to_string_lossy().into_owned();
        let mut args = vec!["serve", "--http", &http, "--media", &media];
        args.extend_from_slice(&["--state-dir", &state]);
        args.extend_from_slice(extra);
        let proc_ = Proc::parloir(&args);
        let url = proc_.url();
        let port = url.rsplit(':').next().expect("a port in the URL");
        let http = format!("{http_ip}:{port}");
        args[2] = &http;
        Server {
            http: url,
            args: args.iter().map(|a| a.to_string()).collect(),
            proc_,
            media_port,
        }
    }

    /// The address of its HTTP port.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let addr = self.http.trim_start_matches("http://");
        let addr = addr.trim_start_matches("https://");
        addr.parse().expect("the server's address")
    }

    /// Stops the process at once (as a crash or a power cut would).
    pub fn stop(&mut self) {
        let _ = self.proc_.child.kill();
        let _ = self.proc_.child.wait();
    }

    /// Starts it again on the same addresses.
    pub fn start_again(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.proc_ = Proc::parloir(&args);
    }

    /// Still running (not crashed).
    pub fn alive(&mut self) -> bool {
        matches!(self.proc_.child.try_wait(), Ok(None))
    }

    pub fn ws_url(&self) -> String {
        self.http.replacen("http://", "ws://", 1) + "/ws"
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        parloir::cluster::load::cpu_seconds_of(&self.proc_.pid().to_string())
    }

    /// Sends the process a signal (`-HUP`, `-TERM`, ...).
    pub fn signal(&self, sig: &str) {
        self.proc_.signal(sig);
    }

    /// Memory of its own the process holds resident, KiB: anonymous pages
    /// (heap, stacks). The binary's code pages, read from the file as new
    /// paths run, are shared, clean and given back by the system when it
    /// needs them: they are not what a flood costs.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.proc_.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// How near its level before a flood a server's memory must come back:
/// what a flood may leave is its limiters' entries and the allocator's
/// bookkeeping, not its connections.
pub const MEMORY_LEVEL_KIB: u64 = 4 * 1024;

/// Waits for the server's resident memory to come back within
/// [`MEMORY_LEVEL_KIB`] of `level`; what it then is.
pub async fn memory_back_to(server: &Server, level: u64, after: &str) -> u64 {
    let started = Instant::now();
    let what = format!("memory back to its level after {after}");
    let rss = wait_for(&what, Duration::from_secs(20), || async {
        let rss = server.rss_kib();
        if rss <= level + MEMORY_LEVEL_KIB {
            return Some(rss);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        None
    })
    .await;
    eprintln!(
        "memory back within {} MiB of its level {:.1} s after {after}",
        MEMORY_LEVEL_KIB / 1024,
        started.elapsed().as_secs_f64()
    );
    rss
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Participant id of the tab, once it has joined.
pub async fn you(tab: &Tab<'_>) -> Option<u64> {
    tab.eval("window.parloir ? window.parloir.state().you : null")
        .await
        .as_u64()
}

/// Participants whose video this tab decodes and whose audio it receives.
pub async fn seen_and_heard(tab: &Tab<'_>) -> BTreeSet<u64> {
    let stats = tab
        .eval("window.parloir ? window.parloir.stats() : {}")
        .await;
    let Some(map) = stats.as_object() else {
        return BTreeSet::new();
    };
    map.iter()
        .filter(|(_, s)| {
            s["framesDecoded"].as_u64() > Some(0) && s["audioPacketsReceived"].as_u64() > Some(0)
        })
        .filter_map(|(id, _)| id.parse().ok())
        .collect()
}

/// Participants shown as tiles in this tab's grid.
pub async fn tiles(tab: &Tab<'_>) -> BTreeSet<u64> {
    let v = tab
        .eval("window.parloir ? window.parloir.tiles() : []")
        .await;
    v.as_array()
        .map(|a| a.iter().filter_map(|t| t["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// A browser on this host and one in `ns` (its page, served over plain
/// HTTP from beyond its loopback, is allowed the camera), both launched
/// with `extra` flags; and `server`'s URL as the one in `ns` reaches it.
pub async fn browsers_here_and_in(
    ns: &netns::NetNs,
    server: &Server,
    extra: &[String],
) -> (Browser, Browser, String) {
    let here = Browser::launch_in(None, extra).await;
    let remote_url = server.http.replacen("127.0.0.1", &ns.host_ip, 1);
    let mut flags = vec![format!(
        "--unsafely-treat-insecure-origin-as-secure={remote_url}"
    )];
    flags.extend_from_slice(extra);
    let there = Browser::launch_in(Some(ns), &flags).await;
    (here, there, remote_url)
}

pub async fn join<'a>(browser: &'a Browser, base: &str, room: &str, name: &str) -> (Tab<'a>, u64) {
    let tab = browser
        .open(&format!("{base}/r/{room}?name={name}&join=1"))
        .await;
    let id = wait_for(
        &format!("{name} to join {room}"),
        Duration::from_secs(20),
        || you(&tab),
    )
    .await;
    (tab, id)
}

/// Ana and Ben in `room`, seeing and hearing each other: the call that
/// must go on while a test does something else to the server.
pub async fn call_of_two<'a>(browser: &'a Browser, base: &str, room: &str) -> Vec<(Tab<'a>, u64)> {
    let call = vec![
        join(browser, base, room, "Ana").await,
        join(browser, base, room, "Ben").await,
    ];
    wait_full_mesh("Ana and Ben in a call", &call, Duration::from_secs(20)).await;
    call
}

pub fn others(all: &[u64], me: u64) -> BTreeSet<u64> {
    all.iter().copied().filter(|i| *i != me).collect()
}

/// Waits until every tab decodes video and receives audio from exactly
/// the others of its room (nobody missing, nobody from elsewhere).
pub async fn wait_full_mesh(what: &str, tabs: &[(Tab<'_>, u64)], timeout: Duration) {
    let ids: Vec<u64> = tabs.iter().map(|(_, id)| *id).collect();
    wait_for(what, timeout, || async {
        for (tab, me) in tabs {
            if seen_and_heard(tab).await != others(&ids, *me) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Status code of a GET on `base` + `path` (0 if unreachable).
pub async fn http_status(base: &str, path: &str) -> u16 {
    match parloir::net::http_client(None)
        .expect("an HTTP client")
        .get(format!("{base}{path}"))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Like [`wait_full_mesh`], for tabs that may rejoin under new ids (after
/// a failover): ids are read again at every poll.
pub async fn wait_full_mesh_rejoined(what: &str, tabs: &[&Tab<'_>], timeout: Duration) {
    wait_for(what, timeout, || async {
        let mut ids = Vec::new();
        for tab in tabs {
            ids.push(you(tab).await?);
        }
        for (tab, me) in tabs.iter().zip(&ids) {
            if seen_and_heard(tab).await != others(&ids, *me) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Waits until every tab has joined again under an id other than its
/// old one (`old`, tab by tab): a new session on a new media connection,
/// so that what the tabs show next is not what they had before.
pub async fn wait_joined_again(what: &str, tabs: &[(Tab<'_>, u64)], timeout: Duration) {
    wait_for(what, timeout, || async {
        for (tab, old) in tabs {
            if you(tab).await.is_none_or(|id| id == *old) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Video frames this tab decoded so far, per participant.
pub async fn frames_decoded(tab: &Tab<'_>) -> std::collections::BTreeMap<u64, u64> {
    let stats = tab
        .eval("window.parloir ? window.parloir.stats() : {}")
        .await;
    stats
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(id, s)| Some((id.parse().ok()?, s["framesDecoded"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Any child process of the tests, killed on drop.
pub struct Proc {
    pub child: Child,
    /// First line it printed on stdout.
    pub first_line: String,
}

impl Proc {
    /// Starts `parloir ARGS` and waits for its first stdout line.
    pub fn parloir(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parloir"))
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("PARLOIR_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // Nothing of a test kept in this machine's own state folder
            // (`Server` gives one of its own).
            .env("PARLOIR_STATE_DIR", "off")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start parloir");
        let stdout = child.stdout.take().expect("stdout");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("read stdout");
        Proc { child, first_line }
    }

    /// A worker on its own loopback address `ip` (as on its own host),
    /// joining the signal server at `signal` with `secret`, with `extra`
    /// flags.
    pub fn worker(signal: &str, secret: &str, ip: &str, id: &str, extra: &[&str]) -> Proc {
        let addr = format!("{ip}:0");
        let mut args = vec![
            "worker", "--signal", signal, "--secret", secret, "--media", &addr, "--http", &addr,
            "--id", id,
        ];
        args.extend_from_slice(extra);
        Proc::parloir(&args)
    }

    /// The first `http://` or `https://` URL the process printed.
    pub fn url(&self) -> String {
        self.first_line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {:?}", self.first_line))
            .trim_end_matches(['/', '.', ','])
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status();
    }

    /// Waits up to `timeout` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server has closed every one of `open`.
pub async fn wait_all_closed(what: &str, mut open: Vec<std::net::TcpStream>, timeout: Duration) {
    wait_for(what, timeout, || {
        open.retain_mut(|s| !closed_by_server(s));
        let done = open.is_empty();
        async move { done.then_some(()) }
    })
    .await;
}

/// Waits until the server keeps at most `most` of `open` (those it closed
/// are taken out of `open`); how many it keeps. Read without blocking, so
/// a thousand connections are looked at in a moment.
pub async fn wait_at_most_open(
    what: &str,
    open: &mut Vec<std::net::TcpStream>,
    most: usize,
    timeout: Duration,
) -> usize {
    for s in open.iter() {
        s.set_nonblocking(true).unwrap();
    }
    wait_for(what, timeout, || {
        open.retain_mut(|s| !closed_by_server(s));
        let left = open.len();
        async move { (left <= most).then_some(left) }
    })
    .await
}

/// Whether the server closed `s` (end of stream, or reset); a read that
/// times out means it is still open.
pub fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    match std::io::Read::read(s, &mut [0u8; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Makes the browser refuse the tab's next negotiation once (as an offer
/// it cannot apply), and starts one (an ICE restart): the client falls
/// back to a clean join, under a new id.
pub async fn refuse_next_negotiation(tab: &Tab<'_>) {
    tab.eval(
        "(() => { const p = RTCPeerConnection.prototype; const real = p.setLocalDescription; \
         p.setLocalDescription = function () { p.setLocalDescription = real; \
         return Promise.reject(new Error('refused for the test')); }; \
         return window.parloir.restartIce().then(() => 'ok', (e) => String(e)); })()",
    )
    .await;
}

/// A moderator locks the room with `password` through the people panel,
/// as a person would.
pub async fn lock_room(tab: &Tab<'_>, password: &str) {
    tab.eval(&format!(
        "document.querySelector('#open-people').click();
         document.querySelector('#lock-password').value = {};
         document.querySelector('#lock-form').requestSubmit(); true",
        serde_json::json!(password)
    ))
    .await;
}

/// Waits until `expr` (JavaScript) is true in the tab.
pub async fn until(tab: &Tab<'_>, what: &str, expr: &str, timeout: Duration) {
    wait_for(what, timeout, || async {
        (tab.eval(expr).await == true).then_some(())
    })
    .await;
}

/// Waits until every tab decodes more frames of every other one (by the
/// ids they have now): the call goes on, or is back.
pub async fn still_decoding(tabs: &[&Tab<'_>], timeout: Duration) {
    let mut ids = Vec::new();
    for tab in tabs {
        ids.push(you(tab).await.expect("in the call"));
    }
    let mut before = Vec::new();
    for tab in tabs {
        before.push(frames_decoded(tab).await);
    }
    wait_for("frames still decoded", timeout, || async {
        for ((tab, me), before) in tabs.iter().zip(&ids).zip(&before) {
            let now = frames_decoded(tab).await;
            for other in others(&ids, *me) {
                let was = before.get(&other).copied().unwrap_or(0);
                if now.get(&other).copied().unwrap_or(0) <= was + 10 {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
}

/// The load generator built beside `parloir` (`cargo build --workspace`).
pub fn loadtest_bin() -> std::path::PathBuf {
    let bin =
        std::path::Path::new(env!("CARGO_BIN_EXE_parloir")).with_file_name("parloir-loadtest");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release --workspace",
        bin.display()
    );
    bin
}

/// `parloir-loadtest` with `attacker` (a flood) beside a measured
/// 4-person meeting on the server at `http`: the attacker's report, once
/// the meeting is checked whole ([`meeting_whole`]).
pub fn attack_beside_a_meeting(http: &str, attacker: &[&str]) -> String {
    let attacker = Command::new(loadtest_bin())
        .args(attacker)
        .args(["--target", http])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the attacker");
    let meeting = measured_meeting(http, &[]);
    let attacker = attacker.wait_with_output().expect("the attacker ends");
    let report = String::from_utf8_lossy(&attacker.stdout).into_owned();
    eprintln!("{report}{}", String::from_utf8_lossy(&attacker.stderr));
    assert!(attacker.status.success());
    meeting_whole(meeting);
    report
}

/// A 4-person meeting of the load generator on the server at `http`
/// (with `extra` arguments, `--tcp` say), 3 s of warm-up and 15 s
/// measured, started.
pub fn measured_meeting(http: &str, extra: &[&str]) -> Child {
    Command::new(loadtest_bin())
        .args(["run", "--target", http, "--preset", "meeting"])
        .args(["--rooms", "1", "--participants", "4"])
        .args(["--warmup", "3", "--duration", "15", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the meeting")
}

/// Waits for a [`measured_meeting`] and checks it whole: all joined,
/// under 1 % lost, p99 under 50 ms; its figures printed.
pub fn meeting_whole(meeting: Child) -> serde_json::Value {
    let victim = meeting.wait_with_output().expect("the meeting ends");
    let summary: serde_json::Value = serde_json::from_slice(&victim.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&victim.stdout),
            String::from_utf8_lossy(&victim.stderr)
        )
    });
    eprintln!(
        "the meeting beside it: loss {} %, delay p50 {} ms, p99 {} ms",
        summary["loss_pct"], summary["delay_p50_ms"], summary["delay_p99_ms"]
    );
    assert_eq!(summary["joined"], 4, "{summary}");
    assert!(summary["loss_pct"].as_f64().unwrap() < 1.0, "{summary}");
    assert!(
        summary["delay_p99_ms"].as_f64().unwrap() < 50.0,
        "{summary}"
    );
    summary
}

/// A figure of a tool's report: the number right after `label`.
pub fn figure(report: &str, label: &str) -> u64 {
    let at = report
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {report:?}"));
    report[at + label.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure after {label:?} in {report:?}"))
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A participant that only signals (no media): sends `join` (a JSON
/// object) to the signal server at `base`; the socket and the server's
/// answer, `welcome` or `error`.
pub async fn signalling_join(base: &str, join: &serde_json::Value) -> (Ws, serde_json::Value) {
    let url = base.replacen("http://", "ws://", 1) + "/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let answer = join_answer(&mut ws, join).await;
    (ws, answer)
}

/// Sends `join` on a signalling socket and returns the server's answer,
/// `welcome` or `error` (other messages skipped).
pub async fn join_answer<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    join: &serde_json::Value,
) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Text(join.to_string().into()))
        .await
        .expect("send join");
    next_of(ws, &["welcome", "error"]).await
}

/// The next signalling message of one of `types`, others skipped.
pub async fn next_of<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    types: &[&str],
) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).expect("JSON");
            if types.contains(&v["type"].as_str().unwrap_or_default()) {
                return v;
            }
        }
    }
}

/// A TCP connection to `to` from the local address `source` (a client on
/// another loopback address).
pub async fn tcp_from(
    source: &str,
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(format!("{source}:0").parse().expect("an address"))?;
    sock.connect(to).await
}

/// A signalling socket to `server` from the local address `source` (a
/// client on another loopback address): the socket, or the HTTP status
/// that refused it (0 when the connection itself failed).
pub async fn ws_from(
    server: &Server,
    source: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, u16> {
    let stream = tcp_from(source, server.http_addr())
        .await
        .map_err(|_| 0u16)?;
    let opened = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(server.ws_url(), stream),
    )
    .await;
    match opened {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
        _ => Err(0),
    }
}

/// The text of `base`'s `/metrics`.
pub async fn metrics_text(base: &str) -> String {
    parloir::net::http_client(None)
        .expect("an HTTP client")
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// `GET base + path` of the operators' API with `secret`, as JSON.
pub async fn api_get(base: &str, secret: &str, path: &str) -> serde_json::Value {
    parloir::net::http_client(None)
        .expect("an HTTP client")
        .get(format!("{base}{path}"))
        .bearer_auth(secret)
        .send()
        .await
        .expect("api reachable")
        .json()
        .await
        .expect("api json")
}
