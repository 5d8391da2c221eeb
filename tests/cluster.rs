//! Several workers on several addresses, two signal servers sharing a real
//! Redis, real Chromium participants: placement by load, a room reached
//! through both signal servers, failover after `kill -9` (the room made anew
//! still locked by its moderator's password), drain, a worker with a wrong
//! secret, and a real Prometheus scraping every node.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::browser::{Browser, Tab};
use common::redis_server::Redis;
use common::{
    frames_decoded, join, signalling_join, until, wait_for, wait_full_mesh_rejoined, Proc, Ws,
};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "cluster-test-secret";
/// Small, so that a 3-person call shows up clearly in the stress figure.
const CAPACITY_PPS: &str = "3000";

fn signal(redis: &str) -> Proc {
    Proc::parloir(&[
        "signal",
        "--http",
        "127.0.0.1:0",
        "--secret",
        SECRET,
        "--redis",
        redis,
        // The test's one client stands for the many people who start
        // these rooms: placement is tested here, not the limits.
        "--no-address-limits",
    ])
}

/// A worker on its own loopback address, as on its own host.
fn worker(signal: &str, redis: &str, ip: &str, id: &str) -> Proc {
    let extra = [
        "--redis",
        redis,
        "--capacity-pps",
        CAPACITY_PPS,
        "--drain-timeout",
        "120",
    ];
    Proc::worker(signal, SECRET, ip, id, &extra)
}

async fn api(signal: &str, path: &str) -> Value {
    common::api_get(signal, SECRET, path).await
}

/// room → node, from `GET /api/rooms`.
async fn rooms(signal: &str) -> BTreeMap<String, String> {
    api(signal, "/api/rooms")
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["room"].as_str().unwrap_or_default().to_string(),
                r["node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn node_ids(signal: &str) -> BTreeSet<String> {
    api(signal, "/api/nodes")
        .await
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect()
}

/// A participant that only signals (no media): enough to create a room.
async fn ws_join(signal: &str, room: &str) -> Ws {
    let join = serde_json::json!({"type": "join", "v": 1, "room": room, "name": "bot"});
    let (ws, answer) = signalling_join(signal, &join).await;
    assert_eq!(answer["type"], "welcome", "join {room}: {answer}");
    ws
}

async fn ws_leave(mut ws: Ws) {
    let _ = ws.send(Message::Text(r#"{"type":"leave"}"#.into())).await;
    let _ = ws.close(None).await;
}

/// Creates rooms one after another, alternating signal servers; waits
/// until all are in the workers' reports; returns room → node.
async fn create_rooms(
    signals: &[&str],
    names: &[String],
    keep: &mut Vec<Ws>,
) -> BTreeMap<String, String> {
    for (i, name) in names.iter().enumerate() {
        keep.push(ws_join(signals[i % signals.len()], name).await);
    }
    wait_for(
        "new rooms in the workers' reports",
        Duration::from_secs(10),
        || async {
            let all = rooms(signals[0]).await;
            let mine: BTreeMap<String, String> = names
                .iter()
                .filter_map(|n| all.get(n).map(|node| (n.clone(), node.clone())))
                .collect();
            (mine.len() == names.len()).then_some(mine)
        },
    )
    .await
}

fn per_node(placed: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for node in placed.values() {
        *m.entry(node.clone()).or_default() += 1;
    }
    m
}

async fn stress(signal: &str) -> BTreeMap<String, f64> {
    api(signal, "/api/nodes")
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["stress"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn prometheus_sees_every_node(targets: &[String], workers: &[&str]) {
    let dir = std::env::temp_dir().join(format!("parloir-prom-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = targets
        .iter()
        .map(|t| format!("'{}'", t.trim_start_matches("http://")))
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: parloir\n    static_configs:\n      - targets: [{list}]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (scripts/test.sh installs it)");
    let url = format!("http://127.0.0.1:{port}/api/v1/query?query=parloir_worker_stress");
    let seen = wait_for(
        "prometheus to scrape every worker",
        Duration::from_secs(45),
        || async {
            let v: Value = parloir::net::http_client(None)
                .expect("an HTTP client")
                .get(&url)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let nodes: BTreeSet<String> = v["data"]["result"]
                .as_array()?
                .iter()
                .filter_map(|r| r["metric"]["node"].as_str().map(str::to_string))
                .collect();
            workers.iter().all(|w| nodes.contains(*w)).then_some(nodes)
        },
    )
    .await;
    println!("prometheus: parloir_worker_stress for {seen:?}");
    let _ = prom.kill();
    let _ = prom.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parloir"))
        .args(args)
        .output()
        .expect("run parloir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_places_spreads_survives_and_drains() {
    let redis = Redis::start();
    let s1 = signal(&redis.url);
    let s2 = signal(&redis.url);
    let (u1, u2) = (s1.url(), s2.url());
    let mut workers: BTreeMap<String, Proc> = BTreeMap::new();
    for (i, id) in ["w1", "w2", "w3"].iter().enumerate() {
        // Workers may be given either signal server.
        let via = if i == 2 { &u2 } else { &u1 };
        workers.insert(
            id.to_string(),
            worker(via, &redis.url, &format!("127.0.0.{}", i + 2), id),
        );
    }
    let expect: BTreeSet<String> = workers.keys().cloned().collect();
    for u in [&u1, &u2] {
        wait_for(
            "both signal servers see three workers",
            Duration::from_secs(15),
            || async { (node_ids(u).await == expect).then_some(()) },
        )
        .await;
    }

    // A worker with a wrong secret is refused, and says so.
    let mut bad = Command::new(env!("CARGO_BIN_EXE_parloir"))
        .args([
            "worker",
            "--signal",
            &u1,
            "--secret",
            "a-wrong-but-long-secret",
            "--media",
            "127.0.0.9:0",
        ])
        .args(["--http", "127.0.0.9:0", "--id", "intruder"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = bad.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < end,
            "a worker with a wrong secret must stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut bad.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("wrong secret"), "says why: {err}");
    assert_eq!(
        node_ids(&u1).await,
        expect,
        "the intruder is not in the pool"
    );

    // Six rooms created one after another are spread.
    let mut bots = Vec::new();
    let names: Vec<String> = (0..6).map(|i| format!("spread-{i}")).collect();
    let placed = create_rooms(&[&u1, &u2], &names, &mut bots).await;
    let counts = per_node(&placed);
    println!("6 rooms: {counts:?}");
    assert!(
        counts.values().all(|c| *c <= 3),
        "no worker gets more than 3: {counts:?}"
    );
    assert_eq!(counts.len(), 3, "every worker got rooms: {counts:?}");

    // A real call, its participants reaching it through both signal servers.
    let browser = Browser::launch().await;
    let (ana, _) = join(&browser, &u1, "busy-call", "Ana").await;
    let (ben, _) = join(&browser, &u2, "busy-call", "Ben").await;
    let (chloe, _) = join(&browser, &u1, "busy-call", "Chloe").await;
    let tabs: Vec<&Tab<'_>> = vec![&ana, &ben, &chloe];
    wait_full_mesh_rejoined(
        "three people through two signal servers",
        &tabs,
        Duration::from_secs(15),
    )
    .await;
    let busy = rooms(&u1).await["busy-call"].clone();

    // The busy worker gets fewer new rooms than the others.
    wait_for(
        "the call to show in the stress figure",
        Duration::from_secs(10),
        || async {
            let s = stress(&u1).await;
            let busy_s = s[&busy];
            s.iter()
                .filter(|(id, _)| **id != busy)
                .all(|(_, v)| busy_s > v + 0.1)
                .then_some(())
        },
    )
    .await;
    let names: Vec<String> = (0..4).map(|i| format!("after-busy-{i}")).collect();
    let placed = create_rooms(&[&u1, &u2], &names, &mut bots).await;
    let counts = per_node(&placed);
    println!("4 rooms with {busy} busy: {counts:?}");
    let on_busy = counts.get(&busy).copied().unwrap_or(0);
    for (id, _) in workers.iter().filter(|(id, _)| **id != busy) {
        assert!(
            on_busy < counts.get(id).copied().unwrap_or(0),
            "busy {busy} got {on_busy}, {id} got fewer: {counts:?}"
        );
    }

    // A real Prometheus scrapes every node.
    let mut targets = vec![u1.clone(), u2.clone()];
    for id in workers.keys() {
        let n = api(&u1, "/api/nodes").await;
        let addr = n
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id.as_str())
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string();
        targets.push(addr);
    }
    prometheus_sees_every_node(&targets, &["w1", "w2", "w3"]).await;

    // Ana, first in, moderates: she locks the room with a password, which
    // Ben and Chloe never typed.
    until(
        &ana,
        "Ana moderates",
        "window.parloir.state().moderator",
        Duration::from_secs(10),
    )
    .await;
    common::lock_room(&ana, "tulipe rouge").await;
    until(
        &ana,
        "the room locked",
        "window.parloir.state().locked",
        Duration::from_secs(10),
    )
    .await;
    // Its worker's next report has it kept by the cluster (within a second).
    wait_for("the lock kept", Duration::from_secs(5), || async {
        let all = api(&u1, "/api/rooms").await;
        let listed = all.as_array()?.iter().find(|r| r["room"] == "busy-call")?;
        (listed["locked"] == true).then_some(())
    })
    .await;

    // A stranger with a session of her own in another room takes it up
    // again naming the locked room instead: refused, with the words a
    // resume into a room that exists nowhere gets, so that she learns
    // nothing about where rooms live, and her session is not recorded in
    // the locked room to be vouched for there after the failover below.
    let eve = serde_json::json!({"type": "join", "v": 1, "room": "eve-room", "name": "Eve"});
    let (ws, welcome) = signalling_join(&u2, &eve).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    drop(ws);
    let resume = |room: &str| {
        serde_json::json!({"type": "resume", "v": 1, "room": room,
            "participant": welcome["you"], "token": welcome["token"]})
    };
    let (_eve_ws, answer) = signalling_join(&u1, &resume("busy-call")).await;
    assert_eq!(answer["code"], "resume-failed", "{answer}");
    let (_ws, nowhere) = signalling_join(&u1, &resume("no-such-room")).await;
    assert_eq!(answer, nowhere, "a refused resume says where rooms live");

    // kill -9 of the worker carrying the call: everyone is back, on another
    // worker, without a page reload, and the room made anew there is still
    // locked.
    let mut old_ids = BTreeSet::new();
    for t in &tabs {
        t.eval("window.__sameDocument = true").await;
        old_ids.insert(common::you(t).await.expect("joined"));
    }
    let killed = Instant::now();
    workers.get(&busy).unwrap().signal("-KILL");
    // Everyone rejoined (new participant ids, new media connections)...
    wait_for(
        "everyone to rejoin after kill -9",
        Duration::from_secs(15),
        || async {
            for t in &tabs {
                let id = common::you(t).await?;
                if old_ids.contains(&id) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    // ...and decodes the others again.
    let left = Duration::from_secs(15).saturating_sub(killed.elapsed());
    wait_full_mesh_rejoined("the call back after kill -9", &tabs, left).await;
    println!(
        "failover: video decoding again {:.1} s after kill -9",
        killed.elapsed().as_secs_f64()
    );
    for t in &tabs {
        assert_eq!(
            t.eval("window.__sameDocument === true").await,
            true,
            "no reload"
        );
    }
    // Those who were in came back without the password; a stranger is
    // asked for it, and a wrong one does not open the room made anew.
    let stranger = serde_json::json!({"type": "join", "v": 1, "room": "busy-call", "name": "Eve"});
    let (_ws, answer) = signalling_join(&u2, &stranger).await;
    assert_eq!(answer["code"], "password-required", "{answer}");
    let mut guess = stranger.clone();
    guess["password"] = "tulipe".into();
    let (_ws, answer) = signalling_join(&u1, &guess).await;
    assert_eq!(answer["code"], "password-wrong", "{answer}");
    until(
        &ana,
        "Ana told the room is still locked, and she still moderates it",
        "window.parloir.state().locked && window.parloir.state().moderator",
        Duration::from_secs(5),
    )
    .await;
    workers.remove(&busy);
    let now_on = wait_for(
        "the call reported by a live worker",
        Duration::from_secs(10),
        || async {
            rooms(&u1)
                .await
                .get("busy-call")
                .filter(|n| **n != busy)
                .cloned()
        },
    )
    .await;

    // The signal server Ben came through restarts: his media keeps flowing,
    // his page reconnects its signalling and resumes the same session.
    // (The signalling-only participants leave first: a participant whose
    // signal server dies stays on its worker for the resume grace period.)
    for ws in bots.drain(..) {
        ws_leave(ws).await;
    }
    let ben_id = common::you(&ben).await.unwrap();
    let ben_frames = frames_decoded(&ben).await.values().sum::<u64>();
    let port = u2.rsplit(':').next().unwrap().to_string();
    drop(s2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = frames_decoded(&ben).await.values().sum::<u64>();
    assert!(
        during > ben_frames + 20,
        "media flows while the signal server is down"
    );
    // Nothing alarming on his screen meanwhile: the call goes on.
    let st = ben.eval("window.parloir.state()").await;
    assert_eq!(st["signalling"], false, "the page saw its socket go: {st}");
    assert_eq!(st["status"], Value::Null, "{st}");
    let interrupted = ben
        .eval("document.getElementById('grid').classList.contains('interrupted')")
        .await;
    assert_eq!(interrupted, false, "{st}");
    let s2 = Proc::parloir(&[
        "signal",
        "--http",
        &format!("127.0.0.1:{port}"),
        "--secret",
        SECRET,
        "--redis",
        &redis.url,
    ]);
    assert_eq!(s2.url(), u2);
    wait_for(
        "Ben's page to resume its session",
        Duration::from_secs(15),
        || async {
            let st = ben.eval("window.parloir.state()").await;
            (st["signalling"] == true && st["resumes"].as_u64() >= Some(1)).then_some(())
        },
    )
    .await;
    assert_eq!(
        common::you(&ben).await,
        Some(ben_id),
        "same session, not a new join"
    );
    wait_full_mesh_rejoined(
        "the call after the signal restart",
        &tabs,
        Duration::from_secs(5),
    )
    .await;

    // Drain the worker carrying the call (with the command-line tool).
    let out = cli(&["drain", &now_on, "--signal", &u2, "--secret", SECRET]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["nodes", "--json", "--signal", &u1, "--secret", SECRET]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("nodes --json");
    let drained = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == now_on.as_str())
        .expect("drained node listed")
        .clone();
    assert_eq!(drained["state"], "draining");
    for key in ["id", "address", "state", "stress", "rooms", "participants"] {
        assert!(drained.get(key).is_some(), "nodes --json has {key}");
    }
    let table = cli(&["nodes", "--signal", &u1, "--secret", SECRET]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("draining"));
    // Redirection with no partner configured is refused, and says why.
    let out = cli(&[
        "admission",
        "--redirect",
        "on",
        "--signal",
        &u1,
        "--secret",
        SECRET,
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("no partner"),
        "{said}"
    );
    let out = cli(&["admission", "--signal", &u1, "--secret", SECRET]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("redirect new rooms to partners: off"),
        "{said}"
    );
    // It receives no new room; the call on it goes on.
    let names: Vec<String> = (0..3).map(|i| format!("after-drain-{i}")).collect();
    let placed = create_rooms(&[&u1, &u2], &names, &mut bots).await;
    assert!(
        placed.values().all(|n| *n != now_on),
        "no room on a draining worker: {placed:?}"
    );
    let before: Vec<_> = {
        let mut v = Vec::new();
        for t in &tabs {
            v.push(frames_decoded(t).await.values().sum::<u64>());
        }
        v
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (t, b) in tabs.iter().zip(before) {
        assert!(
            frames_decoded(t).await.values().sum::<u64>() > b + 30,
            "the call goes on while draining"
        );
    }
    // When its calls end, it exits.
    for t in &tabs {
        t.eval("document.getElementById('leave').click()").await;
    }
    for ws in bots.drain(..) {
        ws_leave(ws).await;
    }
    let status = workers
        .get_mut(&now_on)
        .unwrap()
        .wait_exit(Duration::from_secs(20))
        .expect("the drained worker exits when its calls end");
    assert!(status.success());
    workers.remove(&now_on);
    drop(browser);

    // A worker started now takes a new room at once.
    let mut keep = Vec::new();
    for (n, ip) in ["w4", "w5", "w6"]
        .iter()
        .zip(["127.0.0.6", "127.0.0.7", "127.0.0.8"])
    {
        let start = Instant::now();
        workers.insert(n.to_string(), worker(&u1, &redis.url, ip, n));
        // New rooms, one after another, until one lands on it.
        let mut i = 0;
        let took = loop {
            i += 1;
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{n} never got a room"
            );
            let room = format!("fresh-{n}-{i}");
            keep.push(ws_join(&u1, &room).await);
            let placed = wait_for("room reported", Duration::from_secs(5), || async {
                rooms(&u1).await.get(&room).cloned()
            })
            .await;
            if placed == *n {
                break start.elapsed();
            }
        };
        println!(
            "worker start to first placed room: {:.2} s ({n})",
            took.as_secs_f64()
        );
    }

    // SIGTERM drains a worker too: it says so, and leaves once empty.
    workers["w4"].signal("-TERM");
    wait_for("w4 to report draining", Duration::from_secs(5), || async {
        let nodes = api(&u1, "/api/nodes").await;
        let w4 = nodes.as_array()?.iter().find(|n| n["id"] == "w4")?.clone();
        (w4["state"] == "draining").then_some(())
    })
    .await;
    for ws in keep.drain(..) {
        ws_leave(ws).await;
    }
    let status = workers
        .get_mut("w4")
        .unwrap()
        .wait_exit(Duration::from_secs(10))
        .expect("w4 exits once drained");
    assert!(status.success());
}
