//! A synthetic participant of a Janus videoroom (Janus 1.1, REST API with
//! long polling), with the same str0m connection and the same media as the
//! Parloir participant: so the two SFUs carry exactly the same load.
//!
//! Fan-out only: the first participant of a room publishes, the others
//! subscribe to its feed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use tokio::net::UdpSocket;

use crate::parloir_client::{media_loop, new_rtc};
use crate::run::{Counters, Participant, ParticipantResult};

/// Publisher feed ids, per room, so subscribers know what to subscribe to.
#[derive(Debug, Default)]
pub struct Feeds(Mutex<HashMap<String, u64>>);

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
        let http = reqwest::Client::new();
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
    let sock = UdpSocket::bind((p.client_ip, 0)).await?;
    let local = sock.local_addr()?;
    let s = Session::open(&base).await.context("janus session")?;
    let room = room_number(&p.room);
    let mut rtc = new_rtc(local)?;
    let (audio, video) = if p.publish {
        let _ = s
            .message(
                json!({"request":"create","room":room,"publishers":4,"bitrate":0,
                       "audiocodec":"opus","videocodec":"vp8"}),
                None,
            )
            .await;
        let mut change = rtc.sdp_api();
        let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = (!p.audio_only)
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
        feeds
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.room.clone(), id);
        (Some(a), v)
    } else {
        let end = Instant::now() + Duration::from_secs(20);
        let feed = loop {
            if let Some(f) = feeds
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p.room)
            {
                break *f;
            }
            if Instant::now() > end {
                bail!("no publisher in {}", p.room);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The feed exists for subscribers only once the publisher's
        // connection is up: retry until then.
        let ev = loop {
            s.message(
                json!({"request":"join","room":room,"ptype":"subscriber","streams":[{"feed":feed}]}),
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
        (None, None)
    };
    let keep = s.keep_alive();
    counters.joined();
    let result = media_loop(rtc, sock, local, &p, &counters, audio, video, None).await;
    keep.abort();
    let _ = Session::post(
        &s.http,
        &format!("{}/janus/{}", s.base, s.session),
        json!({"janus":"destroy"}),
    )
    .await;
    result
}
