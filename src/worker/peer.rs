//! Peer: one participant's bundled WebRTC connection (one `Rtc`), carrying
//! its published tracks in and everyone else's tracks out.
//!
//! It owns the negotiation bookkeeping of that connection: which server
//! offer is in flight and under which id, so a late answer to an offer that
//! was superseded is recognised and ignored instead of corrupting state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::crypto::dtls::DtlsCert;
use str0m::media::{Direction, Mid, Pt};
use str0m::net::{Protocol, TcpType};
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};

use super::allocator::Downlink;
use super::ice_sources::{IceSources, MAX_TRICKLED};
use super::link_quality::LinkWatch;
use super::repair_cache::RepairWindows;
use super::router::{Plan, TrackKey};
use super::shard::ShardId;
use super::{SessionId, WorkerError};
use crate::ids::{ParticipantId, ParticipantInfo};
use crate::rate::TokenBucket;

/// How long a connection may stay lost (no ICE consent) before the
/// participant is dropped from the media plane. Long enough for a phone to
/// move from Wi-Fi to mobile data and restart ICE.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(20);
/// How long a participant whose signalling is gone keeps its place, to
/// resume through another (or a restarted) signal server.
pub const DETACH_GRACE: Duration = Duration::from_secs(30);
/// How long a participant may stay in a room without its media ever
/// connecting: it holds a place and shows as a frozen tile meanwhile.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// In a full room, a participant that has not even offered this long
/// after joining gives its place to a newcomer: a browser offers at once,
/// while sockets that join and never connect would keep a family out for
/// the whole [`CONNECT_DEADLINE`], and again at every rejoin.
pub const SEAT_GRACE: Duration = Duration::from_secs(10);
/// The same for a participant that offered but whose media has not
/// connected: longer, for a browser working through TURN over TCP.
pub const SEAT_GRACE_OFFERED: Duration = Duration::from_secs(20);
/// Media sections an offer may carry: a browser's ICE-restart offer in a
/// full room has two per participant. Parsing costs the media thread about
/// 16 µs per section, so this bounds what one offer can take from
/// everyone else's forwarding.
pub const MAX_MEDIA_SECTIONS: usize = 64;
/// Offers a participant may make in a burst, and then one per this long:
/// a first offer and ICE restarts are all a client needs.
const OFFER_BURST: u32 = 4;
const OFFER_EVERY: Duration = Duration::from_secs(2);
/// A subscriber's downlink estimate before its first measurement: enough
/// for the smallest layers of a few videos, and a start for probing
/// upwards (browsers start their own estimate at 300 kbit/s).
pub const INITIAL_ESTIMATE: u64 = 500_000;

/// Why a participant leaves its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It said so.
    Left,
    /// ICE consent lost for longer than [`DISCONNECT_GRACE`], or the
    /// connection failed.
    MediaLost,
    /// Its media never connected within [`CONNECT_DEADLINE`].
    NeverConnected,
    /// Its signalling stayed away for longer than [`DETACH_GRACE`].
    SignallingLost,
    /// The worker drained and its deadline passed.
    Draining,
    /// A moderator removed it (told by [`super::PeerEvent::Removed`]).
    Removed,
    /// A moderator ended the call (told by [`super::PeerEvent::CallEnded`]).
    CallEnded,
}

impl Departure {
    /// What the participant is told, if it is still listening.
    pub fn message(self) -> Option<&'static str> {
        match self {
            Departure::Left | Departure::Removed | Departure::CallEnded => None,
            Departure::MediaLost => Some("media connection lost"),
            Departure::NeverConnected => Some("the media connection could not be established"),
            Departure::SignallingLost => Some("signalling lost for too long"),
            Departure::Draining => Some("this media server is shutting down"),
        }
    }
}

pub struct Peer {
    pub id: ParticipantId,
    pub info: ParticipantInfo,
    /// Shown by the participant to resume after losing its signalling.
    pub token: String,
    pub rtc: Rtc,
    /// Our ICE username fragment: STUN from a new address is matched on it.
    pub ufrag: String,
    /// The source addresses its ICE agent was given in this generation.
    pub sources: IceSources,
    /// The client's ICE credentials in its last offer: others are an ICE
    /// restart.
    remote_ice: Option<(String, String)>,
    /// The server offer in flight, with the id the client echoes back and
    /// its SDP (sent again if the participant resumes).
    pending: Option<(u32, SdpPendingOffer, String)>,
    next_offer_id: u32,
    offers: TokenBucket,
    /// Answers for the offer in flight that could not be read.
    answers: TokenBucket,
    /// The signalling session that speaks for this participant now.
    pub session: SessionId,
    /// str0m's next timeout for this connection.
    pub next_timeout: Instant,
    /// Media was written since the last drain: str0m releases it only on
    /// a timeout, which the drain then drives without asking first.
    pub wrote_media: bool,
    /// The latest instant given to its connection as a timeout (see
    /// `Room::drain_peer`: it may run a few microseconds ahead of now).
    pub clock: Instant,
    joined_at: Instant,
    /// Media connected at least once.
    pub connected: bool,
    /// It sent an offer: a page negotiating, not a bare socket.
    offered: bool,
    /// Set while ICE reports the connection as lost.
    pub disconnected_since: Option<Instant>,
    /// Set while the participant's signalling is gone.
    pub detached_since: Option<Instant>,
    /// Off: "audio only", no video is forwarded to it.
    pub receive_video: bool,
    /// The m-line on which it shares its screen, once it said so.
    pub screen: Option<Mid>,
    /// Its downlink's bandwidth estimate (send-side, from its transport
    /// feedback), bits per second.
    pub estimate: u64,
    pub downlink: Downlink,
    /// How long each stream it receives keeps packets for repairs.
    pub repair: RepairWindows,
    /// The desired rate last given to its estimator.
    pub bwe_desired: u64,
    /// Width in device pixels of the tile showing each other participant.
    pub tiles: HashMap<ParticipantId, u32>,
    /// How well its uplink and downlink carry the call.
    pub links: LinkWatch,
}

/// The addresses in this worker's ICE candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidates {
    pub udp: SocketAddr,
    /// ICE-TCP's (passive), unless it is off.
    pub tcp: Option<SocketAddr>,
}

impl Candidates {
    /// UDP and TCP on the same address.
    #[cfg(any(test, fuzzing))]
    pub fn on(addr: SocketAddr) -> Self {
        Candidates {
            udp: addr,
            tcp: Some(addr),
        }
    }

    /// The address a datagram that arrived over `proto` was sent to.
    pub fn local(&self, proto: Protocol) -> SocketAddr {
        match (proto, self.tcp) {
            (Protocol::Tcp, Some(tcp)) => tcp,
            _ => self.udp,
        }
    }
}

/// What a shard presents to every peer it serves.
#[derive(Clone)]
pub struct Local {
    /// The addresses in its ICE candidates.
    pub candidates: Candidates,
    /// The worker's DTLS certificate.
    pub cert: DtlsCert,
    /// Which shard of the worker it is: its ICE ufrags start with its tag
    /// (`shard.rs`).
    pub shard: ShardId,
}

impl Local {
    /// Shard 0 announcing `candidates`, with the tests' certificate.
    #[cfg(any(test, fuzzing))]
    pub fn test(candidates: Candidates) -> Self {
        Local {
            candidates,
            cert: test_cert().clone(),
            shard: 0,
        }
    }
}

/// A worker's DTLS certificate, made once at its start and shared by all
/// its connections (as mediasoup does per worker): browsers check the
/// fingerprint in each answer, which stays that of this one key. Costs a
/// key generation, so it is made off the media thread.
pub fn dtls_cert() -> Result<DtlsCert, WorkerError> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| WorkerError::Internal("cannot make a DTLS certificate".into()))
}

/// One certificate for every test of the process (key generation is the
/// slow part of a join).
#[cfg(any(test, fuzzing))]
pub fn test_cert() -> &'static DtlsCert {
    static CERT: std::sync::OnceLock<DtlsCert> = std::sync::OnceLock::new();
    CERT.get_or_init(|| dtls_cert().expect("a DTLS certificate"))
}

impl Peer {
    /// Whether it holds a place without media past its grace
    /// ([`SEAT_GRACE`], or [`SEAT_GRACE_OFFERED`]): since when, if so.
    pub fn idle_seat(&self, now: Instant) -> Option<Instant> {
        let grace = if self.offered {
            SEAT_GRACE_OFFERED
        } else {
            SEAT_GRACE
        };
        (!self.connected && now >= self.joined_at + grace).then_some(self.joined_at)
    }

    pub fn new(
        info: ParticipantInfo,
        token: String,
        session: SessionId,
        local: &Local,
        rng: &mut impl Rng,
        now: Instant,
    ) -> Result<Self, WorkerError> {
        let candidates = local.candidates;
        let creds = ice_creds(rng, local.shard);
        let ufrag = creds.ufrag.clone();
        let mut rtc = RtcConfig::new()
            // The worker's one certificate: str0m would otherwise make a
            // key pair here, for every join, on the media thread.
            .set_dtls_cert(local.cert.clone())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .clear_codecs()
            // Opus and VP8 are what every browser sends and decodes; with a
            // forwarding SFU all participants must share one codec.
            .enable_opus(true, false)
            .enable_vp8(true)
            // Send-side estimation of each subscriber's downlink, from the
            // transport-wide feedback its browser sends: the allocator
            // chooses simulcast layers from it.
            .enable_bwe(Some(Bitrate::bps(INITIAL_ESTIMATE)))
            // Per-stream reports, for the loss its browser reports.
            .set_stats_interval(Some(Duration::from_secs(1)))
            // Receiver reports for audio every second too (str0m's default
            // is 5 s): the loss each stats event carries is then that
            // second's, not the same report's again (`link_quality.rs`).
            .set_rtcp_report_interval_audio(Duration::from_secs(1))
            .build(now);
        let bad = |e| WorkerError::Internal(format!("bad media address: {e}"));
        rtc.add_local_candidate(Candidate::host(candidates.udp, "udp").map_err(bad)?);
        // ICE over TCP, for networks that drop UDP: passive (browsers
        // connect); its priority below UDP's, so ICE keeps UDP where it
        // works.
        if let Some(tcp) = candidates.tcp {
            let tcp = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(bad)?;
            rtc.add_local_candidate(tcp);
        }
        Ok(Peer {
            id: info.id,
            info,
            token,
            rtc,
            ufrag,
            sources: IceSources::default(),
            remote_ice: None,
            pending: None,
            next_offer_id: 1,
            offers: TokenBucket::new(OFFER_BURST, OFFER_EVERY, now),
            answers: TokenBucket::new(OFFER_BURST, OFFER_EVERY, now),
            session,
            next_timeout: now,
            clock: now,
            wrote_media: false,
            joined_at: now,
            connected: false,
            offered: false,
            disconnected_since: None,
            detached_since: None,
            receive_video: true,
            screen: None,
            estimate: INITIAL_ESTIMATE,
            downlink: Downlink::default(),
            repair: RepairWindows::default(),
            bwe_desired: 0,
            tiles: HashMap::new(),
            links: LinkWatch::default(),
        })
    }

    /// The earliest instant at which this participant may have to leave,
    /// whatever str0m's own timer says (an idle connection's is far away).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadlines().into_iter().filter_map(|(t, _)| t).min()
    }

    /// Why this participant must leave now, if it must.
    pub fn departure(&self, now: Instant) -> Option<Departure> {
        if !self.rtc.is_alive() {
            return Some(Departure::MediaLost);
        }
        self.deadlines()
            .into_iter()
            .find(|(t, _)| t.is_some_and(|t| t <= now))
            .map(|(_, why)| why)
    }

    /// Each running grace period: when it ends, and what its end means.
    fn deadlines(&self) -> [(Option<Instant>, Departure); 3] {
        [
            (
                self.disconnected_since.map(|t| t + DISCONNECT_GRACE),
                Departure::MediaLost,
            ),
            (
                self.detached_since.map(|t| t + DETACH_GRACE),
                Departure::SignallingLost,
            ),
            (
                (!self.connected).then_some(self.joined_at + CONNECT_DEADLINE),
                Departure::NeverConnected,
            ),
        ]
    }

    /// The participant's offer (its first, or an ICE restart). It wins over
    /// a server offer in flight, which is dropped: returns the answer and
    /// whether such an offer was dropped.
    pub fn accept_offer(&mut self, sdp: &str, now: Instant) -> Result<(String, bool), WorkerError> {
        bounded(sdp)?;
        if !self.offers.take(now) {
            return Err(WorkerError::TooManyOffers);
        }
        // Candidates listed in offers stay in the agent as trickled ones
        // do: counted with them, read before the parse. Whether the offer
        // restarts ICE is read as str0m reads it.
        let listed = listed_ice(sdp);
        let restart = listed.restarts(self.remote_ice.as_ref());
        if !self.sources.may_offer(&listed.candidates, restart) {
            return Err(WorkerError::InvalidSdp(format!(
                "more than {MAX_TRICKLED} candidates in one ICE generation"
            )));
        }
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
        let accepted = self.rtc.sdp_api().accept_offer(offer);
        // What str0m did is counted whether or not it then failed: it
        // restarts ICE and takes the candidates before its later steps.
        // An ICE restart changes our credentials too, and empties the
        // agent's remote candidates.
        let ufrag = self.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != self.ufrag {
            self.ufrag = ufrag;
            self.sources.restart();
        }
        if listed.credentials.is_some() {
            self.remote_ice = listed.credentials;
        }
        self.count_listed(&listed.candidates);
        let answer = accepted.map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
        let rolled_back = self.pending.take().is_some();
        self.offered = true;
        Ok((answer.to_sdp_string(), rolled_back))
    }

    /// Candidates an offer or answer gave the agent, counted.
    fn count_listed(&mut self, candidates: &[String]) {
        for c in candidates {
            if !self.sources.trickle(c) {
                // Checked before the parse: only a reading of the ICE
                // credentials that str0m did not share gets here.
                tracing::warn!(
                    peer = self.id,
                    "candidates over the bound reached the agent"
                );
                break;
            }
        }
    }

    /// Makes a server offer carrying `plan`. Returns the offer (its id and
    /// SDP) and the mids given to the added tracks, or `None` if str0m saw
    /// nothing to negotiate.
    pub fn offer(
        &mut self,
        plan: &Plan,
        is_screen: impl Fn(&TrackKey) -> bool,
    ) -> Option<(ServerOffer, Vec<(TrackKey, Mid)>)> {
        let mut change = self.rtc.sdp_api();
        let mut added = Vec::with_capacity(plan.add.len());
        for (key, kind) in &plan.add {
            // The stream id is the publisher: the client groups the tracks
            // of one participant into one tile by it. A shared screen is a
            // stream of its own, shown in a tile of its own.
            let stream_id = if is_screen(key) {
                format!("{}-screen", key.publisher)
            } else {
                key.publisher.to_string()
            };
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
        Some((ServerOffer { id, sdp }, added))
    }

    /// The participant's answer to server offer `id`. `Ok(false)` means the
    /// answer was for an offer that no longer stands and was ignored.
    pub fn accept_answer(&mut self, id: u32, sdp: &str, now: Instant) -> Result<bool, WorkerError> {
        // Bounded, then matched to the offer in flight, before the parse,
        // which is what costs (16 ms for a 258 KB answer): only the one
        // answer each server offer awaits is parsed, however many come.
        bounded(sdp)?;
        // What cannot be an SDP at all is said so, whatever it answers.
        if !sdp.starts_with("v=0") {
            return Err(WorkerError::InvalidSdp("it does not start with v=0".into()));
        }
        if self
            .pending
            .as_ref()
            .is_none_or(|(pending, ..)| *pending != id)
        {
            return Ok(false);
        }
        // Garbage for the right offer leaves it in flight: answering it so
        // again and again is bounded as offers are. Only a wasted parse is
        // charged: real answers come as fast as the server's offers.
        if !self.answers.has(now) {
            return Err(WorkerError::TooManyOffers);
        }
        // An answer's candidates reach the agent as an offer's do.
        let listed = listed_ice(sdp);
        if !self.sources.may_offer(&listed.candidates, false) {
            self.answers.take(now);
            return Err(WorkerError::InvalidSdp(format!(
                "more than {MAX_TRICKLED} candidates in one ICE generation"
            )));
        }
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| {
            self.answers.take(now);
            WorkerError::InvalidSdp(e.to_string())
        })?;
        let Some((_, pending, _)) = self.pending.take() else {
            return Ok(false);
        };
        let accepted = self.rtc.sdp_api().accept_answer(pending, answer);
        self.count_listed(&listed.candidates);
        accepted.map_err(|e| WorkerError::InvalidSdp(e.to_string()))?;
        Ok(true)
    }

    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), WorkerError> {
        let c = candidate.strip_prefix("a=").unwrap_or(candidate);
        let c = Candidate::from_sdp_string(c)
            .map_err(|e| WorkerError::InvalidCandidate(e.to_string()))?;
        // The agent keeps each until the next ICE restart.
        if !self.sources.trickle(&c.to_sdp_string()) {
            return Err(WorkerError::InvalidCandidate(format!(
                "more than {} candidates in one ICE generation",
                MAX_TRICKLED
            )));
        }
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
}

/// What an SDP gives a participant's ICE agent, read line by line before
/// the parse.
struct ListedIce {
    /// Its ICE username fragment and password, as str0m picks them: the
    /// session's when it has both, else those of the first media section
    /// that has both.
    credentials: Option<(String, String)>,
    /// Its candidates, each as str0m would write it back (a line that is
    /// no candidate is left to the parse).
    candidates: Vec<String>,
}

impl ListedIce {
    /// Whether the SDP restarts ICE after `current` credentials (a first
    /// offer starts nothing anew: what was trickled before it stays).
    fn restarts(&self, current: Option<&(String, String)>) -> bool {
        matches!((&self.credentials, current), (Some(new), Some(old)) if new != old)
    }
}

fn listed_ice(sdp: &str) -> ListedIce {
    let mut credentials = None;
    // The session's part, then each media section's.
    let (mut ufrag, mut pwd) = (None, None);
    let mut candidates = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            if credentials.is_none() {
                if let (Some(u), Some(p)) = (ufrag, pwd) {
                    credentials = Some((u, p));
                }
            }
            (ufrag, pwd) = (None, None);
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag.get_or_insert(u.to_string());
        } else if let Some(p) = line.strip_prefix("a=ice-pwd:") {
            pwd.get_or_insert(p.to_string());
        } else if let Some(c) = line.strip_prefix("a=candidate:") {
            if let Ok(c) = Candidate::from_sdp_string(&format!("candidate:{c}")) {
                let c = c.to_sdp_string();
                if !candidates.contains(&c) {
                    candidates.push(c);
                }
            }
        }
    }
    if credentials.is_none() {
        if let (Some(u), Some(p)) = (ufrag, pwd) {
            credentials = Some((u, p));
        }
    }
    ListedIce {
        credentials,
        candidates,
    }
}

/// Refuses an SDP with more than [`MAX_MEDIA_SECTIONS`], counted without
/// parsing it (the parse is the expensive part).
fn bounded(sdp: &str) -> Result<(), WorkerError> {
    let sections = sdp.match_indices("\nm=").count() + usize::from(sdp.starts_with("m="));
    if sections > MAX_MEDIA_SECTIONS {
        return Err(WorkerError::InvalidSdp(format!(
            "{sections} media sections; at most {MAX_MEDIA_SECTIONS} are accepted"
        )));
    }
    Ok(())
}

/// A server offer, with the id the client's answer must echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOffer {
    pub id: u32,
    pub sdp: String,
}

/// ICE credentials from the endpoint's random source, so a test can fix
/// them (RFC 8445: at least 24 bits of ufrag and 128 of password).
/// Random ICE credentials; the ufrag starts with the shard's tag, so that
/// a STUN request the kernel hands to another shard finds its owner.
fn ice_creds(rng: &mut impl Rng, shard: ShardId) -> IceCreds {
    let mut text = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(rng.sample(Alphanumeric)))
            .collect()
    };
    IceCreds {
        ufrag: format!("{}{}", super::shard::tag(shard), text(7)),
        pass: text(24),
    }
}
