//! An attacker's load on the signalling: sockets that each join a room of
//! their own and send offers of thousands of m-lines, the next as soon as
//! the previous is answered or refused. Run beside `run`, it shows whether
//! one such client can freeze other calls.
//!
//! Bounded so it cannot be turned on someone else's server by mistake:
//! loopback targets only, a few sockets, a duration, a cap on offers; it
//! stops by itself.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::parloir_client::{join, offer, send, Ws};

#[derive(clap::Args)]
pub struct FloodArgs {
    /// Parloir URL on this machine (http://127.0.0.1:PORT).
    #[arg(long)]
    target: String,
    /// Signalling sockets, each in its own room.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    sockets: u32,
    /// M-lines per offer.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    mlines: u32,
    /// Seconds, at most 600.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Send answers instead of offers, this many a second per socket:
    /// answers of `--mlines` m-lines, filled up to the message limit, to
    /// offers the server never made, which it must drop unparsed.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    answers: Option<u32>,
}

/// Offers a socket sends at most, whatever the duration.
const MAX_OFFERS_PER_SOCKET: u64 = 100_000;

/// The server's message limit (docs/protocol.md, "Limits"): a larger offer
/// is refused unread, `too-large`.
const MESSAGE_LIMIT: usize = 256 * 1024;

/// After `rate-limited`, what the server takes to allow one more message
/// (30/s): sooner is only refused again, and 200 refusals in a row close
/// the socket.
const RATE_REFILL: Duration = Duration::from_millis(34);

/// A browser-like offer of `mlines` sendonly m-lines, audio and video in
/// turn, bundled, its transport given once at session level (as JSEP
/// allows) so that 2,000 fit in one signalling message. Each has new ICE
/// credentials: a client's later offers are ICE restarts (protocol.md).
/// `session` and `version` go on the `o=` line: a client keeps the one and
/// counts the other up with each offer.
pub fn offer_sdp(mlines: u32, session: u64, version: u64) -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| format!("{:02X}", rand::random::<u8>()))
            .collect::<Vec<_>>()
            .join(":")
    };
    let token = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect()
    };
    let mut s = String::with_capacity(mlines as usize * 130 + 1024);
    let mids: Vec<String> = (0..mlines).map(|m| m.to_string()).collect();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\no=- {session} {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         a=group:BUNDLE {}\r\na=msid-semantic: WMS flood\r\n\
         a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {}\r\na=setup:actpass\r\n",
        mids.join(" "),
        token(4),
        token(24),
        hex(32),
    );
    for m in 0..mlines {
        let (kind, pt, codec, track) = if m % 2 == 0 {
            ("audio", 111, "opus/48000/2", 'a')
        } else {
            ("video", 96, "VP8/90000", 'v')
        };
        let _ = write!(
            s,
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\na=mid:{m}\r\na=sendonly\r\na=rtcp-mux\r\n\
             a=rtpmap:{pt} {codec}\r\na=msid:flood {track}{m}\r\n"
        );
    }
    s
}

/// A well-formed answer of `mlines` m-lines, which the server would have
/// to parse to know it is not the one it waits for, filled up to the
/// message limit with attribute lines (the parse is what costs).
fn answer_sdp(mlines: u32) -> String {
    let mut sdp = offer_sdp(mlines, 1, 1).replace("a=sendonly", "a=recvonly");
    let pad = format!("a=x-pad:{}\r\n", "p".repeat(1000));
    // As JSON text each line end is escaped into four characters.
    let escaped = |s: &str| s.len() + 2 * s.matches("\r\n").count();
    let mut len = escaped(&sdp);
    while len + escaped(&pad) + 1024 < MESSAGE_LIMIT {
        sdp.push_str(&pad);
        len += escaped(&pad);
    }
    sdp
}

/// What the sockets saw.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    answered: u64,
    answer_time: Duration,
    /// Refusals by error code.
    refused: BTreeMap<String, u64>,
    /// Sent, and neither answered nor refused when the time was up or
    /// the socket closed.
    unanswered: u64,
    /// Sockets the server closed (each was opened again).
    closed: u64,
    failed: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.answer_time += o.answer_time;
        for (code, n) in o.refused {
            *self.refused.entry(code).or_default() += n;
        }
        self.unanswered += o.unanswered;
        self.closed += o.closed;
        self.failed.extend(o.failed);
    }
}

/// One attacker: in `room`, offers (or answers, `answers` a
/// second) until `until`. A socket the server closes is opened again, as
/// an attacker would.
async fn attack(
    base: &str,
    room: &str,
    mlines: u32,
    answers: Option<u32>,
    until: Instant,
) -> Tally {
    let mut t = Tally::default();
    // Below 2^62, as RFC 3264 asks of a session id.
    let session = rand::random::<u64>() >> 2;
    let mut version = 1;
    while Instant::now() < until && t.sent < MAX_OFFERS_PER_SOCKET {
        let mut ws = match join(base, room, "flood").await {
            Ok(ws) => ws,
            Err(e) => {
                t.failed.push(format!("{e:#}"));
                return t;
            }
        };
        let closed = match answers {
            Some(rate) => unasked_answers(&mut ws, mlines, rate, until, &mut t).await,
            None => offers(&mut ws, mlines, until, session, &mut version, &mut t).await,
        };
        if !closed {
            // Leaving frees the room now rather than after the grace a
            // lost socket is given.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = send(&mut ws, json!({"type":"leave"})).await;
                let _ = ws.close(None).await;
            })
            .await;
            break;
        }
        t.closed += 1;
    }
    t
}

/// Offers on one socket until `until`; true if the server closed it.
async fn offers(
    ws: &mut Ws,
    mlines: u32,
    until: Instant,
    session: u64,
    version: &mut u64,
    t: &mut Tally,
) -> bool {
    while Instant::now() < until && t.sent < MAX_OFFERS_PER_SOCKET {
        let sdp = offer_sdp(mlines, session, *version);
        *version += 1;
        let sent_at = Instant::now();
        t.sent += 1;
        match tokio::time::timeout_at(until.into(), offer(ws, &sdp)).await {
            Err(_) => t.unanswered += 1,
            Ok(Err(_)) => {
                t.unanswered += 1;
                return true;
            }
            Ok(Ok(Ok(_))) => {
                t.answered += 1;
                t.answer_time += sent_at.elapsed();
            }
            Ok(Ok(Err(m))) => {
                let code = m["code"].as_str().unwrap_or("unknown").to_string();
                if code == "rate-limited" {
                    tokio::time::sleep_until((Instant::now() + RATE_REFILL).min(until).into())
                        .await;
                }
                *t.refused.entry(code).or_default() += 1;
            }
        }
    }
    false
}

/// Answers to offers never made, `rate` a second on one socket until
/// `until`, reading what the server says meanwhile; true if it closed
/// the socket. An answer to nothing gets no reply: only refusals count.
async fn unasked_answers(
    ws: &mut Ws,
    mlines: u32,
    rate: u32,
    until: Instant,
    t: &mut Tally,
) -> bool {
    let sdp = answer_sdp(mlines);
    let every = Duration::from_secs(1) / rate;
    let mut next = Instant::now();
    while Instant::now() < until && t.sent < MAX_OFFERS_PER_SOCKET {
        let id: u32 = rand::random();
        if send(ws, json!({"type":"answer","id":id,"sdp":sdp}))
            .await
            .is_err()
        {
            return true;
        }
        t.sent += 1;
        next = (next + every).max(Instant::now());
        loop {
            let wait = next.min(until);
            match tokio::time::timeout_at(wait.into(), crate::parloir_client::next_json(ws)).await {
                Err(_) => break,
                Ok(Err(_)) => return true,
                Ok(Ok(m)) => {
                    if m["type"] == "error" {
                        let code = m["code"].as_str().unwrap_or("unknown").to_string();
                        *t.refused.entry(code).or_default() += 1;
                    }
                }
            }
        }
    }
    false
}

/// The target, if every address it names is this machine's.
pub(crate) fn loopback_target(target: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(target).context("--target")?;
    if url.scheme() != "http" {
        bail!("--target must be http://HOST:PORT");
    }
    let addrs = url
        .socket_addrs(|| Some(80))
        .with_context(|| format!("resolve {target}"))?;
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!("the floods attack loopback targets only, not {target}");
    }
    Ok(target.trim_end_matches('/').to_string())
}

fn report(a: &FloodArgs, message_bytes: usize, t: &Tally, elapsed: Duration) -> String {
    let what = if a.answers.is_some() {
        "answer"
    } else {
        "offer"
    };
    let mut s = format!(
        "flood-offers: {} sockets, {} m-lines per {what} ({message_bytes} bytes as a message), {:.1} s\n",
        a.sockets,
        a.mlines,
        elapsed.as_secs_f64()
    );
    let refused: u64 = t.refused.values().sum();
    let codes: Vec<String> = t.refused.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let _ = writeln!(
        s,
        "{what}s sent {}, answered {}, refused {refused}{}, unanswered {}",
        t.sent,
        t.answered,
        if codes.is_empty() {
            String::new()
        } else {
            format!(" ({})", codes.join(", "))
        },
        t.unanswered
    );
    let mean = if t.answered > 0 {
        format!(
            "{:.1} ms",
            t.answer_time.as_secs_f64() * 1e3 / t.answered as f64
        )
    } else {
        "—".into()
    };
    let _ = writeln!(
        s,
        "mean time per answer {mean}; sockets closed by the server {}",
        t.closed
    );
    for e in t.failed.iter().take(3) {
        let _ = writeln!(s, "socket failed: {e}");
    }
    s
}

pub fn main(a: FloodArgs) -> anyhow::Result<()> {
    let base = loopback_target(&a.target)?;
    if !(a.duration > 0.0 && a.duration <= 600.0) {
        bail!("--duration must be above 0 and at most 600 s");
    }
    let message = match a.answers {
        Some(_) => json!({"type":"answer","id":1,"sdp":answer_sdp(a.mlines)}),
        None => json!({"type":"offer","sdp":offer_sdp(a.mlines, 1, 1)}),
    };
    let message_bytes = message.to_string().len();
    if message_bytes > MESSAGE_LIMIT {
        eprintln!(
            "messages of {message_bytes} bytes are over the server's {MESSAGE_LIMIT}: they will be refused unread"
        );
    }
    // One thread: the attacker must not take the cores from the calls it
    // is measured beside by being busy itself.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.duration);
    let mlines = a.mlines;
    let answers = a.answers;
    // Offers each in a room of its own (an offer in a shared room would
    // renegotiate the others'); answers all in one, as one client's
    // tabs, within the new rooms an address may open.
    let shared = format!("flood-{:08x}", rand::random::<u32>());
    let tally = rt.block_on(async {
        let tasks: Vec<_> = (0..a.sockets)
            .map(|_| {
                let base = base.clone();
                let room = match answers {
                    Some(_) => shared.clone(),
                    None => format!("flood-{:08x}", rand::random::<u32>()),
                };
                tokio::spawn(async move { attack(&base, &room, mlines, answers, until).await })
            })
            .collect();
        let mut all = Tally::default();
        for task in tasks {
            match task.await {
                Ok(t) => all.add(t),
                Err(e) => all.failed.push(e.to_string()),
            }
        }
        all
    });
    print!("{}", report(&a, message_bytes, &tally, started.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_has_its_m_lines_and_fits_in_a_message() {
        let sdp = offer_sdp(2000, 1, 1);
        assert_eq!(sdp.matches("\r\nm=audio ").count(), 1000);
        assert_eq!(sdp.matches("\r\nm=video ").count(), 1000);
        let message = json!({"type":"offer","sdp":sdp}).to_string().len();
        assert!(
            (200_000..=MESSAGE_LIMIT).contains(&message),
            "{message} bytes"
        );
        str0m::change::SdpOffer::from_sdp_string(&sdp).expect("parses");
    }

    #[test]
    fn a_flood_answer_fills_a_message_and_parses() {
        let sdp = answer_sdp(64);
        let message = json!({"type":"answer","id":1,"sdp":sdp}).to_string().len();
        assert!(
            (MESSAGE_LIMIT - 4096..=MESSAGE_LIMIT).contains(&message),
            "{message} bytes"
        );
        str0m::change::SdpAnswer::from_sdp_string(&sdp).expect("parses");
    }

    #[test]
    fn a_webrtc_stack_accepts_the_offer() {
        let mut rtc = crate::webrtc_client::new_rtc("127.0.0.1:9".parse().unwrap()).unwrap();
        let offer = str0m::change::SdpOffer::from_sdp_string(&offer_sdp(4, 1, 1)).unwrap();
        let answer = rtc.sdp_api().accept_offer(offer).expect("accepted");
        assert_eq!(answer.to_sdp_string().matches("\r\nm=").count(), 4);
    }

    #[test]
    fn only_loopback_is_attacked() {
        assert!(loopback_target("http://127.0.0.1:8080/").is_ok());
        assert!(loopback_target("http://[::1]:8080").is_ok());
        assert!(loopback_target("http://10.0.0.1:8080").is_err());
        assert!(loopback_target("https://127.0.0.1:8080").is_err());
    }
}
