//! Peer: one participant's bundled WebRTC connection (one `Rtc`), carrying
//! its published tracks in and everyone else's tracks out.
//!
//! It owns the negotiation bookkeeping of that connection: which server
//! offer is in flight and under which id, so a late answer to an offer that
//! was superseded is recognised and ignored instead of corrupting state.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Mid, Pt};
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};
use tokio::sync::mpsc;

use super::router::{Plan, TrackKey};
use super::{PeerEvent, WorkerError};
use crate::ids::{ParticipantId, ParticipantInfo};

pub struct Peer {
    pub id: ParticipantId,
    pub info: ParticipantInfo,
    /// Shown by the participant to resume after losing its signalling.
    pub token: String,
    pub rtc: Rtc,
    /// Our ICE username fragment: STUN from a new address is matched on it.
    pub ufrag: String,
    /// The server offer in flight, with the id the client echoes back and
    /// its SDP (sent again if the participant resumes).
    pending: Option<(u32, SdpPendingOffer, String)>,
    next_offer_id: u32,
    events: mpsc::Sender<PeerEvent>,
    pub next_timeout: Instant,
    /// Media was written since the last drain: str0m releases it only on
    /// a timeout, which the drain then drives without asking first.
    pub wrote_media: bool,
    /// Set while ICE reports the connection as lost.
    pub disconnected_since: Option<Instant>,
    /// Set while the participant's signalling is gone.
    pub detached_since: Option<Instant>,
}

impl Peer {
    pub fn new(
        info: ParticipantInfo,
        token: String,
        candidate: SocketAddr,
        events: mpsc::Sender<PeerEvent>,
        now: Instant,
    ) -> Result<Self, WorkerError> {
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .clear_codecs()
            // Opus and VP8 are what every browser sends and decodes; with a
            // forwarding SFU all participants must share one codec.
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        let cand = Candidate::host(candidate, "udp")
            .map_err(|e| WorkerError::Internal(format!("bad media address {candidate}: {e}")))?;
        rtc.add_local_candidate(cand);
        Ok(Peer {
            id: info.id,
            info,
            token,
            rtc,
            ufrag,
            pending: None,
            next_offer_id: 1,
            events,
            next_timeout: now,
            wrote_media: false,
            disconnected_since: None,
            detached_since: None,
        })
    }

    /// The participant's offer (its first, or an ICE restart). It wins over
    /// a server offer in flight, which is dropped: returns the answer and
    /// whether such an offer was dropped.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<(String, bool), WorkerError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
        let rolled_back = self.pending.take().is_some();
        // An ICE restart changes our credentials too.
        self.ufrag = self.rtc.direct_api().local_ice_credentials().ufrag;
        Ok((answer.to_sdp_string(), rolled_back))
    }

    /// Makes a server offer carrying `plan`. Returns the mids given to the
    /// added tracks, or `None` if str0m saw nothing to negotiate.
    pub fn offer(&mut self, plan: &Plan) -> Option<Vec<(TrackKey, Mid)>> {
        let mut change = self.rtc.sdp_api();
        let mut added = Vec::with_capacity(plan.add.len());
        for (key, kind) in &plan.add {
            // The stream id is the publisher: the client groups the tracks
            // of one participant into one tile by it.
            let stream_id = key.publisher.to_string();
            let track_id = format!("{}-{}", key.publisher, key.mid);
            let mid = change.add_media(
                *kind,
                Direction::SendOnly,
                Some(stream_id),
                Some(track_id),
                None,
            );
            added.push((*key, mid));
        }
        for mid in &plan.stop {
            change.stop_media(*mid);
        }
        let (offer, pending) = change.apply()?;
        let id = self.next_offer_id;
        self.next_offer_id = self.next_offer_id.wrapping_add(1);
        let sdp = offer.to_sdp_string();
        self.pending = Some((id, pending, sdp.clone()));
        self.notify(PeerEvent::Offer { id, sdp });
        Some(added)
    }

    /// The participant's answer to server offer `id`. `Ok(false)` means the
    /// answer was for an offer that no longer stands and was ignored.
    pub fn accept_answer(&mut self, id: u32, sdp: &str) -> Result<bool, WorkerError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
        match self.pending.take() {
            Some((pending_id, pending, _)) if pending_id == id => {
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
                Ok(true)
            }
            other => {
                self.pending = other;
                Ok(false)
            }
        }
    }

    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), WorkerError> {
        let c = candidate.strip_prefix("a=").unwrap_or(candidate);
        let c = Candidate::from_sdp_string(c)
            .map_err(|e| WorkerError::InvalidCandidate(e.to_string()))?;
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Outgoing payload type for each of `publisher`'s payload types, by
    /// codec parameters (two browsers may number the same codec apart).
    pub fn pt_map_from(&self, publisher: &Rtc) -> Vec<(Pt, Pt)> {
        let mine = self.rtc.codec_config();
        publisher
            .codec_config()
            .params()
            .iter()
            .filter_map(|p| mine.match_params(*p).map(|o| (p.pt(), o.pt())))
            .collect()
    }

    /// The server offer waiting for an answer, if any.
    pub fn pending_offer(&self) -> Option<(u32, String)> {
        self.pending.as_ref().map(|(id, _, sdp)| (*id, sdp.clone()))
    }

    /// A new signalling connection takes over this participant's events.
    pub fn set_events(&mut self, events: mpsc::Sender<PeerEvent>) {
        self.events = events;
    }

    /// Tells the signalling side. A full queue means that side is gone or
    /// stuck; the media loop never waits for it.
    pub fn notify(&self, event: PeerEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            // The session ended; its leave command is on its way.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(e) => tracing::warn!(peer = self.id, "signalling queue refused an event: {e}"),
        }
    }
}
