//! A synthetic participant that joins a Parloir room through the real
//! signalling protocol, with a real str0m WebRTC connection (ICE, DTLS,
//! SRTP), publishing call-shaped RTP and measuring what it receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Receive, TcpType};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

use crate::dtls;
use crate::link::{tcp_candidate, Link};
use crate::media::{Pacer, Stamp, VideoShape, AUDIO_INTERVAL, AUDIO_SIZE};
use crate::run::{Counters, Participant, ParticipantResult};

/// Due timeouts driven in one drain before waiting (as the worker's
/// `Room::drain_peer` does: str0m's pacer releases its queue in one or two).
const MAX_DUE_TIMEOUTS: u32 = 4;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client connection like a browser's for this benchmark: RTP mode (no
/// codecs), Opus and VP8, one host candidate on the participant's socket.
pub fn new_rtc(local: SocketAddr) -> anyhow::Result<Rtc> {
    let mut rtc = rtc_config().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    Ok(rtc)
}

fn rtc_config() -> RtcConfig {
    RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
}

/// The same, offering ICE-TCP only: one active candidate, whose port is 9
/// as a browser's (the connection is made before the port is known).
fn new_tcp_rtc(ip: std::net::IpAddr) -> anyhow::Result<(Rtc, SocketAddr)> {
    let local = SocketAddr::new(ip, 9);
    let mut rtc = rtc_config().build(Instant::now());
    let candidate = Candidate::builder()
        .tcp()
        .host(local)
        .tcptype(TcpType::Active)
        .build()?;
    rtc.add_local_candidate(candidate);
    Ok((rtc, local))
}

pub async fn send(ws: &mut Ws, v: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

pub async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("signalling closed"),
        }
    }
}

/// Opens Parloir's signalling at `base` (`http://HOST:PORT`) and joins
/// `room` as `name`: the socket, once welcomed.
pub async fn join(base: &str, room: &str, name: &str) -> anyhow::Result<Ws> {
    match join_with(base, room, name, None).await? {
        Ok(ws) => Ok(ws),
        Err(m) => bail!("join refused: {m}"),
    }
}

/// The same with a priority `grant`: the socket once welcomed, or the
/// `error` message that refused the join (a surge's figures count them).
pub async fn join_with(
    base: &str,
    room: &str,
    name: &str,
    grant: Option<&str>,
) -> anyhow::Result<Result<Ws, Value>> {
    let url = base.replacen("http://", "ws://", 1) + "/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("signalling")?;
    let mut join = json!({"type":"join","v":1,"room":room,"name":name,"audio":true,"video":true});
    if let Some(g) = grant {
        join["grant"] = json!(g);
    }
    send(&mut ws, join).await?;
    loop {
        let m = next_json(&mut ws).await?;
        match m["type"].as_str() {
            Some("welcome") => return Ok(Ok(ws)),
            Some("error") => return Ok(Err(m)),
            _ => {}
        }
    }
}

/// Sends `sdp` as the client's own offer and waits for the server's reply:
/// the answer's SDP, or the `error` message that refused it. Other
/// messages meanwhile are skipped.
pub async fn offer(ws: &mut Ws, sdp: &str) -> anyhow::Result<Result<String, Value>> {
    send(ws, json!({"type":"offer","sdp":sdp})).await?;
    loop {
        let m = next_json(ws).await?;
        match m["type"].as_str() {
            Some("answer") => return Ok(Ok(m["sdp"].as_str().unwrap_or_default().to_string())),
            Some("error") => return Ok(Err(m)),
            _ => {}
        }
    }
}

pub async fn run(
    p: Participant,
    base: String,
    counters: Arc<Counters>,
) -> anyhow::Result<ParticipantResult> {
    let ws = join(&base, &p.room, &format!("load-{}", p.index)).await?;
    call(ws, &p, &counters).await
}

/// A joined participant's call: its offer, its media connection, and the
/// media until `p.until`.
pub async fn call(
    mut ws: Ws,
    p: &Participant,
    counters: &Counters,
) -> anyhow::Result<ParticipantResult> {
    let (mut rtc, local, udp) = if p.tcp {
        let (rtc, local) = new_tcp_rtc(p.client_ip)?;
        (rtc, local, None)
    } else {
        let sock = UdpSocket::bind((p.client_ip, 0)).await?;
        let local = sock.local_addr()?;
        (new_rtc(local)?, local, Some(sock))
    };
    let mut change = rtc.sdp_api();
    let (audio, video) = if p.publish {
        let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = (!p.audio_only)
            .then(|| change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        (Some(a), v)
    } else {
        // Nothing to publish: one receive-only m-line, never forwarded.
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        (None, None)
    };
    let (sdp, pending) = change.apply().ok_or_else(|| anyhow!("nothing to offer"))?;
    let answer = match offer(&mut ws, &sdp.to_sdp_string()).await? {
        Ok(answer) => answer,
        Err(m) => bail!("offer refused: {m}"),
    };
    let link = match udp {
        Some(sock) => Link::Udp(sock),
        None => {
            let server = tcp_candidate(&answer).ok_or_else(|| anyhow!("no TCP candidate"))?;
            let stream = TcpStream::connect(server).await.context("ICE-TCP")?;
            stream.set_nodelay(true)?;
            Link::Tcp {
                stream,
                server,
                inbuf: Vec::new(),
            }
        }
    };
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    counters.joined();
    let result = media_loop(rtc, link, local, p, counters, audio, video, Some(&mut ws)).await?;
    let _ = send(&mut ws, json!({"type":"leave"})).await;
    let _ = ws.close(None).await;
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
fn write(
    rtc: &mut Rtc,
    mid: Mid,
    pt: str0m::media::Pt,
    seq: u64,
    ts: u32,
    now: Instant,
    payload: Vec<u8>,
    nackable: bool,
    marker: bool,
    audio_level: Option<i8>,
) {
    let mut api = rtc.direct_api();
    if let Some(tx) = api.stream_tx_by_mid(mid, None) {
        let mut w = RtpWrite::new(pt, SeqNo::from(seq), ts, now, payload)
            .marker(marker)
            .nackable(nackable);
        if let Some(dbov) = audio_level {
            w = w.ext_vals(ExtensionValues {
                audio_level: Some(dbov),
                voice_activity: Some(dbov > -127),
                ..ExtensionValues::default()
            });
        }
        tx.write_rtp(w);
    }
}

/// Sends and receives media until `p.until`: the part every WebRTC target
/// shares. `ws`, when given, is Parloir's signalling (server offers).
#[allow(clippy::too_many_arguments)]
pub async fn media_loop(
    mut rtc: Rtc,
    mut link: Link,
    local: SocketAddr,
    p: &Participant,
    counters: &Counters,
    audio: Option<Mid>,
    video: Option<Mid>,
    mut ws: Option<&mut Ws>,
) -> anyhow::Result<ParticipantResult> {
    let vp8 = rtc
        .codec_config()
        .find(|c| c.spec().codec == Codec::Vp8)
        .map(|c| c.pt());
    let opus = rtc
        .codec_config()
        .find(|c| c.spec().codec == Codec::Opus)
        .map(|c| c.pt());
    let mut video_shape = VideoShape::new(p.fps, p.video_bitrate, Duration::from_secs(2));
    let mut pacer = Pacer::new(p.video_bitrate, p.pacing);
    let mut next_audio = Instant::now();
    let mut next_video = Instant::now();
    let (mut aseq, mut vseq, mut vframe) = (0u32, 0u32, 0u32);
    let (mut rtp_aseq, mut rtp_vseq) = (1u64, 1u64);
    let mut connected = false;
    let mut speaking = false;
    let mut result = ParticipantResult::default();
    let mut buf = vec![0u8; 2048];

    loop {
        // Drain str0m until it only has a future timeout for us. A due one
        // (its pacer releases written packets on a timeout) is driven here:
        // a timer would round it up to the next millisecond.
        let mut due = 0;
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) if due < MAX_DUE_TIMEOUTS && t <= Instant::now() => {
                    due += 1;
                    rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    if result.srtp_profile.is_none() {
                        // Our own ServerHello, when we are the DTLS server.
                        result.srtp_profile = dtls::srtp_profile(&t.contents).map(str::to_string);
                    }
                    let _ = link.send(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => {
                    connected = true;
                    result.ready_us = Some(p.epoch.elapsed().as_micros() as u64);
                }
                Output::Event(Event::RtpPacket(pkt)) => {
                    if let Some(s) = Stamp::parse(&pkt.payload) {
                        let now_us = p.epoch.elapsed().as_micros() as u64;
                        if now_us >= p.measure_from_us {
                            result.rx.on_packet(&s, now_us);
                            counters.received();
                        }
                    }
                }
                Output::Event(Event::KeyframeRequest(_)) => video_shape.ask_keyframe(),
                Output::Event(_) => {}
            }
        };
        let now = Instant::now();
        if now >= p.until {
            break;
        }
        let mut wake = timeout.min(p.until);
        if connected && p.publish {
            wake = wake.min(next_audio);
            if video.is_some() {
                wake = wake.min(next_video);
                if let Some(due) = pacer.next_due() {
                    wake = wake.min(due);
                }
            }
        }
        tokio::select! {
            r = link.recv(&mut buf) => {
                let (n, source): (usize, SocketAddr) = r?;
                if result.srtp_profile.is_none() {
                    result.srtp_profile = dtls::srtp_profile(&buf[..n]).map(str::to_string);
                }
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: link.proto(), source, destination: local, contents,
                    });
                    let _ = rtc.handle_input(input);
                }
            }
            m = async {
                match ws.as_mut() {
                    Some(w) => next_json(w).await,
                    None => std::future::pending().await,
                }
            } => {
                // A call outlives its signalling (the protocol keeps it 30 s):
                // media goes on, and what stops arriving is counted as lost
                // instead of the participant's figures being dropped.
                let Ok(m) = m else {
                    ws = None;
                    continue;
                };
                if m["type"] == "offer" {
                    let offer = SdpOffer::from_sdp_string(m["sdp"].as_str().unwrap_or_default())?;
                    let answer = rtc.sdp_api().accept_offer(offer)?;
                    if let Some(w) = ws.as_mut() {
                        send(w, json!({"type":"answer","id":m["id"],"sdp":answer.to_sdp_string()})).await?;
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                rtc.handle_input(Input::Timeout(now))?;
                if connected && p.publish {
                    let now_us = p.epoch.elapsed().as_micros() as u64;
                    if now >= next_audio {
                        if let (Some(mid), Some(pt)) = (audio, opus) {
                            let s = Stamp { publisher: p.index, track: 0, seq: aseq, sent_us: now_us };
                            aseq += 1;
                            let level = p.speaker_turn.map(|_| {
                                let loud = p.speaking(now);
                                if loud && !speaking {
                                    // The test that made the turns reads when.
                                    eprintln!("speaking load-{}", p.index);
                                }
                                speaking = loud;
                                if loud { -20 } else { -127 }
                            });
                            write(&mut rtc, mid, pt, rtp_aseq, aseq.wrapping_mul(960), now, s.payload(AUDIO_SIZE), false, true, level);
                            rtp_aseq += 1;
                            counters.sent(&s);
                        }
                        next_audio += AUDIO_INTERVAL;
                    }
                    if now >= next_video {
                        let (sizes, key) = video_shape.next_frame();
                        pacer.push_frame(&sizes, vframe, key, now);
                        vframe += 1;
                        next_video += video_shape.interval();
                    }
                    if let (Some(mid), Some(pt)) = (video, vp8) {
                        while let Some(x) = pacer.pop_due(now) {
                            let s = Stamp { publisher: p.index, track: 1, seq: vseq, sent_us: now_us };
                            vseq += 1;
                            let payload = s.video_payload(x.size, x.first, x.key);
                            write(&mut rtc, mid, pt, rtp_vseq, x.frame.wrapping_mul(3000), now, payload, true, x.marker, None);
                            rtp_vseq += 1;
                            counters.sent(&s);
                        }
                    }
                }
            }
        }
    }
    Ok(result)
}
