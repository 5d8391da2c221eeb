//! A str0m connection as the benchmark's WebRTC participants use it: made
//! like a browser's, and its media loop (call-shaped RTP out, what
//! arrives measured) shared by every WebRTC target's client.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::Mid;
use str0m::net::{Receive, TcpType};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::dtls;
use crate::link::Link;
use crate::media::{Pacer, Stamp, VideoShape, AUDIO_INTERVAL, AUDIO_SIZE};
use crate::participant::{Counters, Participant, ParticipantResult};

/// Due timeouts driven in one drain before waiting (as the worker's
/// `Room::drain_peer` does: str0m's pacer releases its queue in one or two).
const MAX_DUE_TIMEOUTS: u32 = 4;

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
pub fn new_tcp_rtc(ip: std::net::IpAddr) -> anyhow::Result<(Rtc, SocketAddr)> {
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

/// An offer the server makes during a call; its answer echoes `id`.
pub struct ServerOffer {
    pub id: serde_json::Value,
    pub sdp: String,
}

/// Where a call's server offers come from, and its answers go: the
/// target's signalling.
pub trait ServerOffers {
    /// The next offer; an error once the signalling is gone.
    fn next_offer(&mut self) -> impl Future<Output = anyhow::Result<ServerOffer>>;
    fn answer(
        &mut self,
        id: serde_json::Value,
        sdp: String,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

/// A target that makes no offers during a call.
pub struct NoOffers;

impl ServerOffers for NoOffers {
    async fn next_offer(&mut self) -> anyhow::Result<ServerOffer> {
        std::future::pending().await
    }
    async fn answer(&mut self, _: serde_json::Value, _: String) -> anyhow::Result<()> {
        Ok(())
    }
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
/// shares. `offers`, when given, brings the server's offers during the
/// call (Parloir renegotiates when someone joins or leaves).
#[allow(clippy::too_many_arguments)]
pub async fn media_loop(
    mut rtc: Rtc,
    mut link: Link,
    local: SocketAddr,
    p: &Participant,
    counters: &Counters,
    audio: Option<Mid>,
    video: Option<Mid>,
    mut offers: Option<&mut impl ServerOffers>,
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
            offer = async {
                match offers.as_mut() {
                    Some(o) => o.next_offer().await,
                    None => std::future::pending().await,
                }
            } => {
                // A call outlives its signalling (the protocol keeps it 30 s):
                // media goes on, and what stops arriving is counted as lost
                // instead of the participant's figures being dropped.
                let Ok(offer) = offer else {
                    offers = None;
                    continue;
                };
                let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&offer.sdp)?)?;
                if let Some(o) = offers.as_mut() {
                    o.answer(offer.id, answer.to_sdp_string()).await?;
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
