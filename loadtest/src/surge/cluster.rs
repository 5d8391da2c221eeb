//! The surge's cluster on this machine: a throwaway Redis, a signal
//! server with partners, and workers, each a real process on loopback,
//! ended when dropped; and the operators' API calls the surge makes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::bench::hosts::{free_tcp_port, which, Proc};

/// The settings the surge gives its cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    pub parloir: PathBuf,
    pub secret: String,
    pub soft: f64,
    pub hard: f64,
    pub capacity_pps: f64,
    /// Where each process's log goes (`NAME.log`).
    pub logs: PathBuf,
}

/// Starts `program ARGS` with its log in `logs/NAME.log` and waits for
/// its first line on standard output (Parloir prints its URL there once
/// it listens).
fn start(
    program: &Path,
    args: &[String],
    logs: &Path,
    name: &str,
) -> anyhow::Result<(Proc, String)> {
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let mut child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    Ok((Proc(child), line))
}

/// A Redis server on a free loopback port, without persistence.
pub fn redis(logs: &Path) -> anyhow::Result<(Proc, String)> {
    let program = which("redis-server")
        .context("redis-server is not installed (apt-get install -y redis-server)")?;
    let port = free_tcp_port();
    let log = std::fs::File::create(logs.join("redis.log"))?;
    let child = Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(log)
        .spawn()
        .context("start redis-server")?;
    let p = Proc(child);
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            bail!("redis-server did not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((p, format!("redis://127.0.0.1:{port}")))
}

/// The two partners refused rooms are shown: one French-speaking, one
/// English-speaking (addresses of the reserved `.example` domain).
pub const PARTNERS: [&str; 2] = [
    "Visio Solidaire=https://visio-solidaire.example/{room};fr",
    "Open Call=https://open-call.example/r/{room};en",
];

/// The signal server on a free port: its URL.
pub fn signal(s: &Settings, redis: &str) -> anyhow::Result<(Proc, String)> {
    let port = free_tcp_port();
    let mut args: Vec<String> = [
        "signal",
        "--http",
        &format!("127.0.0.1:{port}"),
        "--secret",
        &s.secret,
        "--redis",
        redis,
        "--admission-threshold",
        &s.soft.to_string(),
        "--admission-hard",
        &s.hard.to_string(),
        // Every participant of the surge comes from this machine's one
        // address; a surge is many people, not one address's flood.
        "--no-address-limits",
    ]
    .map(String::from)
    .to_vec();
    for p in PARTNERS {
        args.extend(["--partner".to_string(), p.to_string()]);
    }
    let (p, line) = start(&s.parloir, &args, &s.logs, "signal")?;
    if !line.contains("http://") {
        bail!(
            "the signal server did not start: {line:?} (see {})",
            s.logs.display()
        );
    }
    Ok((p, format!("http://127.0.0.1:{port}")))
}

/// A worker named `id`, joining the signal server at `signal`.
pub fn worker(s: &Settings, signal: &str, id: &str) -> anyhow::Result<Proc> {
    let args: Vec<String> = [
        "worker",
        "--signal",
        signal,
        "--secret",
        &s.secret,
        "--media",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--id",
        id,
        "--capacity-pps",
        &s.capacity_pps.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let (p, line) = start(&s.parloir, &args, &s.logs, id)?;
    if !line.contains("http://") {
        bail!(
            "worker {id} did not start: {line:?} (see {})",
            s.logs.display()
        );
    }
    Ok(p)
}

/// The operators' API of one signal server.
#[derive(Clone)]
pub struct Api {
    base: String,
    secret: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, secret: &str) -> anyhow::Result<Api> {
        Ok(Api {
            base: base.to_string(),
            secret: secret.to_string(),
            http: parloir::net::http_client(None)?,
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let r = req
            .bearer_auth(&self.secret)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// A priority room's grant, as a hospital's operator would make it.
    pub async fn priority_grant(&self, room: &str) -> anyhow::Result<String> {
        let req = self
            .http
            .post(format!("{}/api/priority-rooms", self.base))
            .json(&json!({"room": room, "hours": 2}));
        let v = self.call(req).await?;
        v["grant"]
            .as_str()
            .map(String::from)
            .context("no grant in the answer")
    }

    /// Turns "redirect new rooms to the partners" on or off.
    pub async fn redirect(&self, on: bool) -> anyhow::Result<()> {
        let req = self
            .http
            .put(format!("{}/api/admission", self.base))
            .json(&json!({ "redirect": on }));
        self.call(req).await.map(|_| ())
    }
}
