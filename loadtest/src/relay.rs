//! The machine's limit for a load: a bare UDP relay that forwards the same
//! packets to the same subscribers with no crypto, no RTP logic, no
//! congestion control. Whatever an SFU costs above this is its own work.
//! It hands the kernel its copies in one `sendmmsg`, with Parloir's own
//! sender: the cheapest way this machine sends them.
//!
//! Datagrams: `[1, room(4), role(1)]` joins, `[2, payload...]` is media,
//! forwarded to every other member of the sender's room (as an SFU sends
//! everyone the others' tracks).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use parloir::worker::batch_send::BatchSender;

use crate::media::{Pacer, Stamp, VideoShape, AUDIO_INTERVAL, AUDIO_SIZE};
use crate::participant::{Counters, Participant, ParticipantResult};

/// Runs the relay forever on `addr`.
pub fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    println!("relay listening on {}", sock.local_addr()?);
    let mut rooms: HashMap<u32, Vec<SocketAddr>> = HashMap::new();
    let mut room_of: HashMap<SocketAddr, u32> = HashMap::new();
    let mut buf = [0u8; 2048];
    let mut sender = BatchSender::default();
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        match buf.first() {
            Some(1) if n >= 6 => {
                let room = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                if room_of.insert(from, room).is_none() {
                    rooms.entry(room).or_default().push(from);
                }
                let _ = sock.send_to(&[1], from);
            }
            Some(2) => {
                if let Some(subs) = room_of.get(&from).and_then(|r| rooms.get(r)) {
                    let copies: Vec<(SocketAddr, &[u8])> = subs
                        .iter()
                        .filter(|s| **s != from)
                        .map(|s| (*s, &buf[..n]))
                        .collect();
                    sender.send_all(&sock, &copies);
                }
            }
            _ => {}
        }
    }
}

pub async fn run(
    p: Participant,
    relay: SocketAddr,
    counters: Arc<Counters>,
) -> anyhow::Result<ParticipantResult> {
    let sock = tokio::net::UdpSocket::bind((p.client_ip, 0)).await?;
    let room: u32 = p
        .room
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let mut join = vec![1u8];
    join.extend(room.to_be_bytes());
    join.push(u8::from(!p.publish));
    let mut buf = [0u8; 2048];
    // Join until acknowledged (UDP).
    loop {
        sock.send_to(&join, relay).await?;
        if let Ok(Ok(_)) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            sock.recv_from(&mut buf),
        )
        .await
        {
            break;
        }
    }
    counters.joined();
    let mut result = ParticipantResult {
        srtp_profile: Some("none".into()),
        ready_us: Some(p.epoch.elapsed().as_micros() as u64),
        ..ParticipantResult::default()
    };
    let mut video = VideoShape::new(p.fps, p.video_bitrate, std::time::Duration::from_secs(2));
    let mut pacer = Pacer::new(p.video_bitrate, p.pacing);
    let mut frame = 0;
    let mut next_audio = Instant::now();
    let mut next_video = Instant::now();
    let (mut aseq, mut vseq) = (0u32, 0u32);
    loop {
        let now = Instant::now();
        if now >= p.until {
            break;
        }
        let mut wake = p.until;
        if p.publish {
            wake = wake.min(next_audio);
            if !p.audio_only {
                wake = wake.min(next_video);
                if let Some(due) = pacer.next_due() {
                    wake = wake.min(due);
                }
            }
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, _) = r?;
                if n > 1 && buf[0] == 2 {
                    if let Some(s) = Stamp::parse(&buf[1..n]) {
                        let now_us = p.epoch.elapsed().as_micros() as u64;
                        if now_us >= p.measure_from_us {
                            result.rx.on_packet(&s, now_us);
                            counters.received();
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let now_us = p.epoch.elapsed().as_micros() as u64;
                if p.publish && now >= next_audio {
                    let s = Stamp { publisher: p.index, track: 0, seq: aseq, sent_us: now_us };
                    let mut d = vec![2u8];
                    d.extend(s.payload(AUDIO_SIZE));
                    aseq += 1;
                    sock.send_to(&d, relay).await?;
                    counters.sent(&s);
                    next_audio += AUDIO_INTERVAL;
                }
                if p.publish && !p.audio_only && now >= next_video {
                    let (sizes, key) = video.next_frame();
                    pacer.push_frame(&sizes, frame, key, now);
                    frame += 1;
                    next_video += video.interval();
                }
                while let Some(x) = pacer.pop_due(now) {
                    let s = Stamp { publisher: p.index, track: 1, seq: vseq, sent_us: now_us };
                    let mut d = vec![2u8];
                    d.extend(s.video_payload(x.size, x.first, x.key));
                    vseq += 1;
                    sock.send_to(&d, relay).await?;
                    counters.sent(&s);
                }
            }
        }
    }
    Ok(result)
}
