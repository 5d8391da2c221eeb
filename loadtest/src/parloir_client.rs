//! A synthetic participant that joins a Parloir room through the real
//! signalling protocol, with a real str0m WebRTC connection (ICE, DTLS,
//! SRTP), publishing call-shaped RTP and measuring what it receives.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

use crate::link::{tcp_candidate, Link};
use crate::participant::{Counters, Participant, ParticipantResult};
use crate::webrtc_client::{media_loop, new_rtc, new_tcp_rtc, ServerOffer, ServerOffers};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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

/// Parloir renegotiates over its signalling: `offer` in, `answer` back.
impl ServerOffers for Ws {
    async fn next_offer(&mut self) -> anyhow::Result<ServerOffer> {
        loop {
            let m = next_json(self).await?;
            if m["type"] == "offer" {
                let sdp = m["sdp"].as_str().unwrap_or_default().to_string();
                return Ok(ServerOffer {
                    id: m["id"].clone(),
                    sdp,
                });
            }
        }
    }

    async fn answer(&mut self, id: Value, sdp: String) -> anyhow::Result<()> {
        send(self, json!({"type": "answer", "id": id, "sdp": sdp})).await
    }
}
