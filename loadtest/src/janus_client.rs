//! A synthetic participant of a Janus videoroom (Janus 1.1, REST API with
//! long polling), with the same str0m connection and the same media as the
//! Parloir participant: so the two SFUs carry exactly the same load.
//!
//! Janus's model is one connection per direction: a publisher handle for
//! what a participant sends, and one multistream subscriber handle for
//! every other publisher's feed in its room. In a fan-out the publisher
//! has only the first, subscribers only the second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use tokio::net::UdpSocket;

use crate::link::Link;
use crate::participant::{Counters, Participant, ParticipantResult};
use crate::webrtc_client::{media_loop, new_rtc, NoOffers};

/// Publisher feed ids per room (with the publishing participant's index),
/// so subscribers know what to subscribe to.
#[derive(Debug, Default)]
pub struct Feeds(Mutex<HashMap<String, Vec<(u32, u64)>>>);

impl Feeds {
    fn add(&self, room: &str, index: u32, feed: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(room.to_string())
            .or_default()
            .push((index, feed));
    }

    /// The feeds of `room` other than `index`'s, once there are `want`.
    fn others(&self, room: &str, index: u32, want: usize) -> Option<Vec<u64>> {
        let feeds = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let others: Vec<u64> = feeds
            .get(room)?
            .iter()
            .filter(|(i, _)| *i != index)
            .map(|(_, f)| *f)
            .collect();
        (others.len() >= want).then_some(others)
    }
}

struct Session {
    http: reqwest::Client,
    base: String,
    session: u64,
    handle: u64,
}

fn tx() -> String {
    format!("{:x}", rand::random::<u64>())
}

impl Session {
    async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(tx());
        let v: Value = http.post(url).json(&body).send().await?.json().await?;
        if v["janus"] == "error" {
            bail!("janus: {v}");
        }
        Ok(v)
    }

    async fn open(base: &str) -> anyhow::Result<Session> {
        let http = parloir::net::http_client(None)?;
        let v = Self::post(&http, &format!("{base}/janus"), json!({"janus":"create"})).await?;
        let session = v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no session: {v}"))?;
        let v = Self::post(
            &http,
            &format!("{base}/janus/{session}"),
            json!({"janus":"attach","plugin":"janus.plugin.videoroom"}),
        )
        .await?;
        let handle = v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no handle: {v}"))?;
        Ok(Session {
            http,
            base: base.to_string(),
            session,
            handle,
        })
    }

    async fn message(&self, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut m = json!({"janus":"message","body":body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        Self::post(
            &self.http,
            &format!("{}/janus/{}/{}", self.base, self.session, self.handle),
            m,
        )
        .await
    }

    /// Waits for the plugin event that carries a JSEP.
    async fn jsep_event(&self) -> anyhow::Result<Value> {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            let url = format!("{}/janus/{}?maxev=1", self.base, self.session);
            let v: Value = self.http.get(url).send().await?.json().await?;
            if v["jsep"].is_object() {
                return Ok(v);
            }
            if v["plugindata"]["data"]["error"].is_string() {
                bail!("janus: {v}");
            }
        }
        bail!("no answer from janus")
    }

    /// Long-polls forever: keeps the session alive.
    fn keep_alive(&self) -> tokio::task::JoinHandle<()> {
        let (http, url) = (
            self.http.clone(),
            format!("{}/janus/{}?maxev=10", self.base, self.session),
        );
        tokio::spawn(async move {
            while let Ok(r) = http.get(&url).send().await {
                let _ = r.bytes().await;
            }
        })
    }
}

fn room_number(room: &str) -> u64 {
    u64::from(
        room.bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            & 0x7fff_ffff,
    )
}

pub async fn run(
    p: Participant,
    base: String,
    feeds: Arc<Feeds>,
    counters: Arc<Counters>,
) -> anyhow::Result<ParticipantResult> {
    let room = room_number(&p.room);
    let publisher = if p.publish {
        Some(publish(&p, &base, room, &feeds).await?)
    } else {
        None
    };
    let others = p.room_publishers.saturating_sub(u32::from(p.publish)) as usize;
    if others == 0 {
        counters.joined();
    }
    // Each half runs its own media loop: the publisher's sends, the
    // subscriber's receives and measures. The publisher's must run while
    // the subscription is made: Janus offers a feed to subscribers only
    // once its publisher's connection is up.
    let pub_half = async {
        match publisher {
            Some(h) => Some(h.run(&p, &counters).await),
            None => None,
        }
    };
    let sub_p = Participant {
        publish: false,
        ..p.clone()
    };
    let sub_half = async {
        if others == 0 {
            return None;
        }
        let h = match subscribe(&sub_p, &base, room, &feeds, others).await {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        counters.joined();
        Some(h.run(&sub_p, &counters).await)
    };
    let (pub_r, sub_r) = tokio::join!(pub_half, sub_half);
    let pub_r = pub_r.transpose()?;
    let mut result = sub_r.transpose()?.unwrap_or_default();
    if result.srtp_profile.is_none() {
        result.srtp_profile = pub_r.and_then(|r| r.srtp_profile);
    }
    Ok(result)
}

/// One Janus handle with its own connection, ready to exchange media.
struct Half {
    session: Session,
    rtc: str0m::Rtc,
    sock: UdpSocket,
    local: std::net::SocketAddr,
    audio: Option<str0m::media::Mid>,
    video: Option<str0m::media::Mid>,
}

impl Half {
    async fn run(self, p: &Participant, counters: &Counters) -> anyhow::Result<ParticipantResult> {
        let keep = self.session.keep_alive();
        let result = media_loop(
            self.rtc,
            Link::Udp(self.sock),
            self.local,
            p,
            counters,
            self.audio,
            self.video,
            None::<&mut NoOffers>,
        )
        .await;
        keep.abort();
        let s = &self.session;
        let _ = Session::post(
            &s.http,
            &format!("{}/janus/{}", s.base, s.session),
            json!({"janus":"destroy"}),
        )
        .await;
        result
    }
}

async fn publish(p: &Participant, base: &str, room: u64, feeds: &Feeds) -> anyhow::Result<Half> {
    let sock = UdpSocket::bind((p.client_ip, 0)).await?;
    let local = sock.local_addr()?;
    let s = Session::open(base).await.context("janus session")?;
    let mut rtc = new_rtc(local)?;
    // Created by whichever publisher comes first; the others get "exists".
    let _ = s
        .message(
            json!({"request":"create","room":room,"publishers":100,"bitrate":0,
                   "audiocodec":"opus","videocodec":"vp8"}),
            None,
        )
        .await;
    let mut change = rtc.sdp_api();
    let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video = (!p.audio_only)
        .then(|| change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
    let (offer, pending) = change.apply().ok_or_else(|| anyhow!("nothing to offer"))?;
    s.message(
        json!({"request":"joinandconfigure","room":room,"ptype":"publisher","display":"load"}),
        Some(json!({"type":"offer","sdp":offer.to_sdp_string()})),
    )
    .await?;
    let ev = s.jsep_event().await?;
    let answer = SdpAnswer::from_sdp_string(ev["jsep"]["sdp"].as_str().unwrap_or_default())?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    let id = ev["plugindata"]["data"]["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("no feed id: {ev}"))?;
    feeds.add(&p.room, p.index, id);
    Ok(Half {
        session: s,
        rtc,
        sock,
        local,
        audio: Some(audio),
        video,
    })
}

/// One multistream subscription to the `want` other publishers of the room.
async fn subscribe(
    p: &Participant,
    base: &str,
    room: u64,
    feeds: &Feeds,
    want: usize,
) -> anyhow::Result<Half> {
    let sock = UdpSocket::bind((p.client_ip, 0)).await?;
    let local = sock.local_addr()?;
    let s = Session::open(base).await.context("janus session")?;
    let mut rtc = new_rtc(local)?;
    let end = Instant::now() + Duration::from_secs(20);
    let others = loop {
        if let Some(f) = feeds.others(&p.room, p.index, want) {
            break f;
        }
        if Instant::now() > end {
            bail!("not every publisher of {} came", p.room);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let streams: Vec<Value> = others.iter().map(|f| json!({"feed": f})).collect();
    // A feed exists for subscribers only once its publisher's connection
    // is up: retry until then.
    let ev = loop {
        s.message(
            json!({"request":"join","room":room,"ptype":"subscriber","streams":streams}),
            None,
        )
        .await?;
        match s.jsep_event().await {
            Ok(ev) => break ev,
            Err(e) if e.to_string().contains("No such feed") && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let offer = SdpOffer::from_sdp_string(ev["jsep"]["sdp"].as_str().unwrap_or_default())?;
    let answer = rtc.sdp_api().accept_offer(offer)?;
    s.message(
        json!({"request":"start","room":room}),
        Some(json!({"type":"answer","sdp":answer.to_sdp_string()})),
    )
    .await?;
    Ok(Half {
        session: s,
        rtc,
        sock,
        local,
        audio: None,
        video: None,
    })
}
