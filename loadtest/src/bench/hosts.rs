//! Where the benchmark's targets run: a network namespace behind a veth
//! pair (or loopback), each process pinned to its core, on free ports, and
//! ended when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// A target process, killed when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Where targets run: a network namespace of the benchmark's own (a
/// separate "host" behind a veth pair, the same path for every target), or
/// plain loopback when namespaces cannot be made (not root).
pub(super) struct Host {
    /// Command prefix that runs a program there, pinned to its cores.
    pub(super) prefix: Vec<String>,
    /// Address targets bind to.
    pub(super) target_ip: String,
    /// Address the load generator binds to.
    pub(super) client_ip: String,
    pub(super) netns: bool,
}

const NETNS: &str = "parloir-bench";
const VETH: &str = "plb0";
const VETH_NS: &str = "plb1";

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Host {
    /// A host whose targets run on `cores` (a `taskset` list: "1",
    /// "1,0").
    pub(super) fn setup(cores: &str) -> Host {
        Host::teardown();
        let ok = sh(&["ip", "netns", "add", NETNS])
            && sh(&[
                "ip", "link", "add", VETH, "type", "veth", "peer", "name", VETH_NS,
            ])
            && sh(&["ip", "link", "set", VETH_NS, "netns", NETNS])
            && sh(&["ip", "addr", "add", "10.231.7.1/24", "dev", VETH])
            && sh(&["ip", "link", "set", VETH, "up"])
            && sh(&[
                "ip",
                "netns",
                "exec",
                NETNS,
                "ip",
                "addr",
                "add",
                "10.231.7.2/24",
                "dev",
                VETH_NS,
            ])
            && sh(&[
                "ip", "netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up",
            ])
            && sh(&[
                "ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up",
            ]);
        if ok {
            Host {
                prefix: ["ip", "netns", "exec", NETNS, "taskset", "-c", cores]
                    .map(String::from)
                    .to_vec(),
                target_ip: "10.231.7.2".into(),
                client_ip: "10.231.7.1".into(),
                netns: true,
            }
        } else {
            Host::teardown();
            eprintln!("no network namespace (not root?): targets on loopback, Janus not measured");
            Host {
                prefix: ["taskset", "-c", cores].map(String::from).to_vec(),
                target_ip: "127.0.0.1".into(),
                client_ip: "127.0.0.1".into(),
                netns: false,
            }
        }
    }

    fn teardown() {
        // Processes survive `ip netns del`: end them first.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", NETNS]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                sh(&["kill", "-9", pid]);
            }
        }
        sh(&["ip", "link", "del", VETH]);
        sh(&["ip", "netns", "del", NETNS]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.netns {
            Host::teardown();
        }
    }
}

/// Starts a target on `host`; returns it with its first stdout line.
pub(super) fn start_pinned(
    host: &Host,
    program: &str,
    args: &[String],
) -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(&host.prefix[0])
        .args(&host.prefix[1..])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {program} (is taskset installed?)"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    Ok((Proc(child), line))
}

/// Janus 1.1 with a configuration of its own: HTTP API and media on the
/// namespace's address only, the plugins it does not need left out.
pub(super) fn janus_config(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir("/etc/janus").context("janus is not installed")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let keep = name == "janus.jcfg"
            || name == "janus.transport.http.jcfg"
            || name == "janus.plugin.videoroom.jcfg";
        if keep {
            std::fs::copy(entry.path(), dir.join(&name))?;
        }
    }
    let main = dir.join("janus.jcfg");
    let text = std::fs::read_to_string(&main)?.replace(
        "#ice_enforce_list = \"eth0\"",
        &format!("ice_enforce_list = \"{VETH_NS}\""),
    );
    std::fs::write(&main, text)?;
    Ok(())
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.exists())
}
