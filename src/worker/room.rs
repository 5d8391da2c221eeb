//! Room: the router of one call plus the connections of its participants.
//!
//! Everything a room does happens on the media thread that owns it, so the
//! forwarding path takes no lock. The room never touches a socket or a
//! channel: datagrams to send and events for the signalling side go into
//! [`Outputs`], which the endpoint hands on, and time comes in as an
//! argument. The room owns its invariants: its peers and router are only
//! changed through its methods, and a participant leaves by one path,
//! [`Room::remove`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use str0m::bwe::{Bitrate, BweKind};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::Transmit;
use str0m::rtp::{RtpWrite, Vp8Descriptor};
use str0m::{Event, IceConnectionState, Input, Output};

use super::allocator::{self, LayerOption, Video};
use super::door::{Door, Leaving};
use super::layer_switch::{Incoming, LayerSwitch};
use super::link_quality::{CameraArrival, LinkQuality};
use super::peer::{Departure, Peer};
use super::repair_cache;
use super::rewrite::Rewriter;
use super::router::{Router, Subscription, TrackKey};
use super::speaker::Speakers;
use super::stats::Counters;
use super::vp8;
use super::{PeerEvent, Resumed, SessionId, WorkerError};
use crate::ids::{ParticipantId, ParticipantInfo, ParticipantState};
use crate::secret;

/// How often the layers are chosen again: rates and estimates move.
const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);
/// How often links are judged: str0m's stats come once a second.
const QUALITY_INTERVAL: Duration = Duration::from_secs(1);
/// A simulcast layer nobody has wanted for this long is paused at its
/// publisher (not at once: a subscriber's estimate that dips for a moment
/// would make the publisher stop and restart its encoder).
const PAUSE_AFTER: Duration = Duration::from_secs(5);
/// Rate assumed for a microphone until it is measured (Opus voice with
/// its headers).
const AUDIO_RATE_GUESS: u64 = 50_000;

/// Due timeouts driven in one drain of a peer before it waits for the
/// event loop. With estimation on, str0m's pacer releases one packet per
/// timeout, even for unpaced streams, so a keyframe to one subscriber
/// (tens of packets, several publishers' at once) needs that many.
const MAX_DUE_TIMEOUTS: u32 = 256;
/// After releasing a packet, str0m's pacer asks for a timeout 1 µs after
/// the last one to release the next. Such a timeout is driven at once, at
/// the instant asked (so a burst of n packets advances str0m's clock by
/// n µs): waiting for it took a turn of the event loop per packet (a 6×5
/// meeting: 9.1 → 12.7 µs of CPU per forwarded packet).
const IMMEDIATE: Duration = Duration::from_micros(10);

/// What rooms produce: datagrams to send, events for participants'
/// signalling, and the counts behind the load figures.
#[derive(Debug, Default)]
pub struct Outputs {
    pub transmits: Vec<Transmit>,
    pub events: VecDeque<(ParticipantId, PeerEvent)>,
    pub counters: Counters,
}

pub struct Room {
    name: String,
    router: Router,
    peers: HashMap<ParticipantId, Peer>,
    /// Peers with output to drain; reused to avoid an allocation per packet.
    dirty: Vec<ParticipantId>,
    /// Some membership or track changed: look for renegotiations.
    renegotiate: bool,
    speakers: Speakers,
    /// How many others' videos a participant receives at most.
    last_n: usize,
    /// Whose video each participant was last told it receives.
    told_forwarded: HashMap<ParticipantId, Vec<ParticipantId>>,
    /// Publishers whose video someone shows (last-N and "audio only"
    /// decided, whatever arrives): what their uplink is judged by.
    watched: std::collections::HashSet<ParticipantId>,
    /// When the layers are chosen again.
    next_allocation: Instant,
    /// When the links are judged again.
    next_quality: Instant,
    /// Who may come in: password, lobby, moderators.
    door: Door,
}

impl Room {
    pub fn new(name: String, last_n: usize, now: Instant) -> Self {
        Room {
            name,
            router: Router::default(),
            peers: HashMap::new(),
            dirty: Vec::new(),
            renegotiate: false,
            speakers: Speakers::default(),
            last_n,
            told_forwarded: HashMap::new(),
            watched: Default::default(),
            next_allocation: now,
            next_quality: now + QUALITY_INTERVAL,
            door: Door::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn door(&self) -> &Door {
        &self.door
    }

    pub fn door_mut(&mut self) -> &mut Door {
        &mut self.door
    }

    /// Tells `id` the room's settings, and a moderator who waits.
    pub fn tell_settings(&self, id: ParticipantId, out: &mut Outputs) {
        out.events.push_back((id, self.door.settings_for(id)));
        if self.door.is_moderator(id) {
            out.events
                .extend(self.door.knocks().map(|knock| (id, knock)));
        }
    }

    /// Tells everyone the room's settings (a moderator changed them).
    pub fn tell_everyone_settings(&self, out: &mut Outputs) {
        for id in self.peers.keys() {
            out.events.push_back((*id, self.door.settings_for(*id)));
        }
    }

    /// Who is in the room.
    pub fn ids(&self) -> Vec<ParticipantId> {
        self.peers.keys().copied().collect()
    }

    /// Tells every moderator `event` (someone knocks, or no longer does).
    pub fn tell_moderators(&self, event: PeerEvent, out: &mut Outputs) {
        for id in self.door.moderators() {
            out.events.push_back((id, event.clone()));
        }
    }

    /// The participant that has held a place without media the longest,
    /// past `peer::SEAT_GRACE`, if any.
    pub fn idle_seat(&self, now: Instant) -> Option<ParticipantId> {
        self.peers
            .values()
            .filter_map(|p| Some((p.idle_seat(now)?, p.id)))
            .min()
            .map(|(_, id)| id)
    }

    /// Adds a participant (a moderator or not, back with the token it
    /// showed or not) and tells the others; returns who was there.
    pub fn add(
        &mut self,
        peer: Peer,
        (moderator, rejoin): (bool, Option<&str>),
        now: Instant,
        out: &mut Outputs,
    ) -> Vec<ParticipantInfo> {
        let came = (peer.id, peer.token.as_str(), rejoin);
        for demoted in self.door.entered(came, moderator, now) {
            self.tell_settings(demoted, out);
        }
        let others = self.others(peer.id);
        let joined = PeerEvent::ParticipantJoined {
            participant: peer.info.clone(),
        };
        self.broadcast(peer.id, joined, out);
        if let Some(id) = self.speakers.dominant() {
            out.events.push_back((peer.id, PeerEvent::Speaker { id }));
        }
        self.router.join(peer.id);
        self.speakers.join(peer.id);
        let id = peer.id;
        self.peers.insert(id, peer);
        out.events.push_back((
            id,
            PeerEvent::Quality {
                links: self.link_qualities(),
            },
        ));
        self.tell_settings(id, out);
        others
    }

    /// Everyone waiting is told nobody is there to let them in.
    pub fn refuse_knocks(&mut self, out: &mut Outputs) {
        for knock in self.door.take_all_knocks() {
            let reason = "nobody is left in the call to let you in".into();
            out.events
                .push_back((knock.info.id, PeerEvent::Refused { reason }));
        }
    }

    /// The one way out of a room: the participant is told why (unless it
    /// left by itself), the others see it leave, and its tracks stop.
    pub fn remove(&mut self, id: ParticipantId, why: Departure, now: Instant, out: &mut Outputs) {
        if self.peers.remove(&id).is_none() {
            return;
        }
        let leaving = match why {
            Departure::Left => Leaving::Left,
            // No way back without the door: as removed.
            Departure::Removed | Departure::CallEnded => Leaving::Removed,
            _ => Leaving::Lost,
        };
        if let Some(promoted) = self.door.left(id, leaving, now) {
            self.tell_settings(promoted, out);
        }
        if self.peers.is_empty() {
            self.refuse_knocks(out);
        }
        if why == Departure::Removed {
            out.events.push_back((id, PeerEvent::Removed));
        } else if why == Departure::CallEnded {
            out.events.push_back((id, PeerEvent::CallEnded));
        } else if let Some(reason) = why.message() {
            out.events.push_back((
                id,
                PeerEvent::Closed {
                    reason: reason.into(),
                },
            ));
        }
        self.router.leave(id);
        self.speakers.forget(id);
        self.told_forwarded.remove(&id);
        self.dirty.retain(|d| *d != id);
        self.renegotiate = true;
        self.broadcast(id, PeerEvent::ParticipantLeft { id }, out);
        self.allocate(now, out);
        tracing::info!(peer = id, room = %crate::privacy::room(&self.name), ?why, "participant removed");
        self.drain(now, out);
    }

    pub fn others(&self, id: ParticipantId) -> Vec<ParticipantInfo> {
        let mut v: Vec<ParticipantInfo> = self
            .peers
            .values()
            .filter(|p| p.id != id)
            .map(|p| p.info.clone())
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }

    pub fn set_state(&mut self, id: ParticipantId, state: ParticipantState, out: &mut Outputs) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.info.state == state {
            return;
        }
        peer.info.state = state;
        self.broadcast(id, PeerEvent::State { id, state }, out);
    }

    /// A chat message goes to everyone, its sender too: the echo tells the
    /// sender it was delivered, and everyone sees the same order. The
    /// sender's name travels with it, so that it stays attributed after
    /// the sender left.
    pub fn chat(&mut self, from: ParticipantId, text: String, out: &mut Outputs) {
        let Some(peer) = self.peers.get(&from) else {
            return;
        };
        let event = PeerEvent::Chat {
            from,
            name: peer.info.name.clone(),
            text,
        };
        for p in self.peers.values() {
            out.events.push_back((p.id, event.clone()));
        }
    }

    /// "Audio only" (`on` false) or not, for one participant's downlink.
    pub fn receive_video(&mut self, id: ParticipantId, on: bool, now: Instant, out: &mut Outputs) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.receive_video = on;
            tracing::info!(peer = id, video = on, "video to this participant switched");
            self.allocate(now, out);
        }
    }

    /// The widths (device pixels) at which the participant's client shows
    /// the others' videos: no layer larger than a tile needs is sent.
    pub fn set_tiles(
        &mut self,
        id: ParticipantId,
        tiles: &[(ParticipantId, u32)],
        now: Instant,
        out: &mut Outputs,
    ) {
        if let Some(peer) = self.peers.get_mut(&id) {
            tracing::debug!(peer = id, ?tiles, "tile sizes");
            peer.tiles = tiles.iter().copied().collect();
            self.allocate(now, out);
        }
    }

    /// Tells every participant but `from`.
    fn broadcast(&self, from: ParticipantId, event: PeerEvent, out: &mut Outputs) {
        for p in self.peers.values().filter(|p| p.id != from) {
            out.events.push_back((p.id, event.clone()));
        }
    }

    fn peer(&mut self, id: ParticipantId) -> Result<&mut Peer, WorkerError> {
        self.peers
            .get_mut(&id)
            .ok_or(WorkerError::UnknownParticipant)
    }

    /// The participant's ICE username fragment (it changes on ICE restart).
    pub fn ufrag(&self, id: ParticipantId) -> Option<&str> {
        self.peers.get(&id).map(|p| p.ufrag.as_str())
    }

    /// Whether the participant's connection may be given this STUN request
    /// from a new source address: its connection authenticates it (the
    /// participant's own credentials), and its ICE generation has not yet
    /// brought [`MAX_ICE_SOURCES`](super::ice_sources::MAX_ICE_SOURCES)
    /// addresses.
    pub fn takes_source(&mut self, id: ParticipantId, source: SocketAddr, input: &Input) -> bool {
        self.peers
            .get_mut(&id)
            .is_some_and(|p| p.rtc.accepts(input) && p.sources.take(source))
    }

    /// As [`Room::takes_source`], for an address the participant already
    /// has: its connection checks the request as it reads it, so it is
    /// only counted here (one HMAC per request, not two).
    pub fn counts_source(&mut self, id: ParticipantId, source: SocketAddr) -> bool {
        self.peers
            .get_mut(&id)
            .is_some_and(|p| p.sources.take(source))
    }

    /// The participant's own offer (its first, or an ICE restart); returns
    /// the answer. A server offer in flight is dropped and made again.
    pub fn accept_offer(
        &mut self,
        id: ParticipantId,
        sdp: &str,
        screen: Option<&str>,
        now: Instant,
    ) -> Result<String, WorkerError> {
        let peer = self.peer(id)?;
        // Known before the m-line is seen as published (`MediaAdded`).
        if let Some(mid) = screen {
            peer.screen = Some(Mid::from(mid));
        }
        let (answer, rolled_back) = peer.accept_offer(sdp, now)?;
        if rolled_back {
            self.router.rolled_back(id);
        }
        self.router.set_ready(id);
        self.renegotiate = true;
        self.mark_dirty(id);
        Ok(answer)
    }

    /// The participant's answer to server offer `offer`: new outlets open.
    /// An answer to an offer that no longer stands is ignored.
    pub fn accept_answer(
        &mut self,
        id: ParticipantId,
        offer: u32,
        sdp: &str,
        now: Instant,
        rng: &mut impl Rng,
        out: &mut Outputs,
    ) -> Result<(), WorkerError> {
        if !self.peer(id)?.accept_answer(offer, sdp, now)? {
            return Ok(());
        }
        let peers = &self.peers;
        let opened = self.router.answered(id, |track, published, mid| {
            let pt_map = match (peers.get(&id), peers.get(&track.publisher)) {
                (Some(sub), Some(publ)) => sub.pt_map_from(&publ.rtc),
                _ => Vec::new(),
            };
            // A track in one layer starts at once; the allocation below
            // picks a simulcast track's layer.
            let start = (!published.is_simulcast()).then_some(0);
            Subscription {
                subscriber: id,
                mid,
                ssrc: None,
                pt_map,
                switch: LayerSwitch::new(Rewriter::new(rng.gen(), rng.gen()), start),
            }
        });
        // Last-N and the allocation stop or pick what each one shows.
        self.allocate(now, out);
        for track in &opened {
            let Some(mid) = self.router.subscription(track, id).map(|s| s.mid) else {
                continue;
            };
            // What is forwarded leaves at once: the allocator chose how
            // much that is. With estimation on, str0m would hold every
            // stream to 1.1 × its estimate, which is low until proven, and
            // a queue there is delay (and loss when it overflows) added to
            // every copy. Probes and padding stay paced.
            if let Some(peer) = self.peers.get_mut(&id) {
                let window = peer.repair.window(mid);
                if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(mid, None) {
                    tx.set_unpaced(true);
                    tx.set_rtx_cache(
                        repair_cache::MAX_PACKETS,
                        window,
                        Some(repair_cache::RATIO_CAP),
                    );
                }
            }
        }
        // The new subscriber needs a picture at once, of what it is shown.
        for track in opened {
            if let Some(layer) = self
                .router
                .subscription(&track, id)
                .and_then(|s| s.switch.current())
            {
                self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
            }
        }
        self.renegotiate = true;
        self.mark_dirty(id);
        Ok(())
    }

    pub fn add_candidate(&mut self, id: ParticipantId, candidate: &str) -> Result<(), WorkerError> {
        self.peer(id)?.add_remote_candidate(candidate)?;
        self.mark_dirty(id);
        Ok(())
    }

    /// A new signalling session takes the participant over, if it shows
    /// the participant's token.
    pub fn resume(
        &mut self,
        id: ParticipantId,
        token: &str,
        session: SessionId,
    ) -> Result<Resumed, WorkerError> {
        let peer = self.peers.get_mut(&id).ok_or(WorkerError::ResumeRefused)?;
        if !secret::equal(peer.token.as_bytes(), token.as_bytes()) {
            return Err(WorkerError::ResumeRefused);
        }
        peer.session = session;
        peer.detached_since = None;
        let offer = peer.pending_offer();
        Ok(Resumed {
            room: self.name.clone(),
            others: self.others(id),
            offer,
        })
    }

    /// The participant's signalling session ended. Ignored unless that
    /// session is the one speaking for it now.
    pub fn detach(&mut self, id: ParticipantId, session: SessionId, now: Instant) -> bool {
        match self.peers.get_mut(&id) {
            Some(peer) if peer.session == session => {
                peer.detached_since = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Published and forwarded tracks, for the load report.
    pub fn track_counts(&self) -> (usize, usize) {
        (self.router.track_count(), self.router.subscription_count())
    }

    fn mark_dirty(&mut self, id: ParticipantId) {
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    /// Feeds one datagram to a peer and drains that peer only: what it
    /// forwards waits in the subscribers' connections until [`Room::drain`],
    /// so a burst of packets costs each subscriber one poll, not one each.
    pub fn receive(&mut self, id: ParticipantId, input: Input, now: Instant, out: &mut Outputs) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            // Malformed or unexpected packets from the network are dropped;
            // str0m keeps the connection usable.
            tracing::debug!(peer = id, "input rejected: {e}");
        }
        self.dirty.retain(|d| *d != id);
        self.drain_peer(id, now, out);
    }

    /// Polls every dirty peer until it only has a timeout to report, and
    /// sends the server offers that became possible.
    pub fn drain(&mut self, now: Instant, out: &mut Outputs) {
        self.drain_until(now, out, usize::MAX);
    }

    /// As [`Room::drain`], but stops once `out` holds `limit` datagrams so
    /// the caller can send them before encrypting the rest: in a large
    /// fan-out the first subscribers need not wait for the last one's
    /// copy. Returns whether peers are left to drain.
    pub fn drain_until(&mut self, now: Instant, out: &mut Outputs, limit: usize) -> bool {
        loop {
            while let Some(id) = self.dirty.pop() {
                self.drain_peer(id, now, out);
                if out.transmits.len() >= limit {
                    return !self.dirty.is_empty() || self.renegotiate;
                }
            }
            if !self.renegotiate {
                return false;
            }
            self.renegotiate = false;
            self.offer_changes(out);
        }
    }

    fn drain_peer(&mut self, id: ParticipantId, now: Instant, out: &mut Outputs) {
        // str0m's pacer releases newly written packets only after a
        // timeout: when the one it asks for is already due, it is driven
        // here, so a burst leaves in this drain rather than a turn of the
        // event loop later. Bounded, in case a timeout stays due.
        let mut due_timeouts = 0;
        // Never behind what str0m was last given: it ignores a timeout
        // earlier than its clock, which the steps below may have advanced.
        let mut clock = self.peers.get(&id).map_or(now, |p| now.max(p.clock));
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive() {
                peer.wrote_media = false;
                peer.next_timeout = now;
                return;
            }
            if std::mem::take(&mut peer.wrote_media) {
                // Media written since the last drain: its timeout is due,
                // driven without the poll that would only report it.
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(clock)) {
                    tracing::debug!(peer = id, "timeout rejected: {e}");
                }
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t))
                    if t <= clock + IMMEDIATE && due_timeouts < MAX_DUE_TIMEOUTS =>
                {
                    due_timeouts += 1;
                    clock = clock.max(t);
                    peer.clock = clock;
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(clock)) {
                        tracing::debug!(peer = id, "timeout rejected: {e}");
                    }
                }
                Ok(Output::Timeout(t)) => {
                    peer.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.transmits.push(t),
                Ok(Output::Event(e)) => self.on_event(id, e, now, out),
                Err(e) => {
                    tracing::warn!(peer = id, "connection failed: {e}");
                    peer.rtc.disconnect();
                }
            }
        }
    }

    fn on_event(&mut self, id: ParticipantId, event: Event, now: Instant, out: &mut Outputs) {
        match event {
            Event::RtpPacket(pkt) => self.forward(id, pkt, now, out),
            Event::KeyframeRequest(req) => {
                let Some(track) = self.router.source_of(id, req.mid) else {
                    return;
                };
                let layer = self
                    .router
                    .subscription(&track, id)
                    .and_then(|s| s.switch.current());
                if let Some(layer) = layer {
                    self.request_keyframe(track, layer, req.kind, now);
                }
            }
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                let rids: Vec<Rid> = m
                    .simulcast
                    .map(|s| s.recv.iter().map(|l| l.rid).collect())
                    .unwrap_or_default();
                let screen = self.peers.get(&id).is_some_and(|p| p.screen == Some(m.mid));
                tracing::debug!(peer = id, mid = %m.mid, kind = ?m.kind, ?rids, screen, "track published");
                self.router.publish(id, m.mid, m.kind, &rids, screen);
                self.renegotiate = true;
            }
            Event::MediaEgressStats(stats) => {
                if let (Some(rtt), Some(peer)) = (stats.rtt, self.peers.get_mut(&id)) {
                    if let Some(window) = peer.repair.on_rtt(stats.mid, rtt) {
                        tracing::debug!(peer = id, mid = %stats.mid, ?rtt, ?window, "repair window");
                        if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(stats.mid, None) {
                            tx.set_rtx_cache(
                                repair_cache::MAX_PACKETS,
                                window,
                                Some(repair_cache::RATIO_CAP),
                            );
                        }
                    }
                }
                if let (Some(loss), Some(peer)) = (stats.loss, self.peers.get_mut(&id)) {
                    if loss >= allocator::CONGESTED_LOSS {
                        tracing::debug!(peer = id, mid = %stats.mid, loss, "subscriber reports loss");
                    }
                    peer.downlink.on_loss(loss, now);
                    peer.links.on_egress_loss(loss);
                }
            }
            Event::MediaIngressStats(stats) => {
                if let (Some(loss), Some(peer)) = (stats.loss, self.peers.get_mut(&id)) {
                    peer.links.on_ingress_loss(loss);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc {
                estimate,
                can_probe,
            }) => {
                tracing::trace!(peer = id, %estimate, can_probe, "downlink estimate");
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.estimate = estimate.as_u64();
                }
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(peer = id, ?state, "ice");
                if let Some(peer) = self.peers.get_mut(&id) {
                    match state {
                        // An ICE restart passes through Checking, and stays
                        // there if the new network lets nothing through: the
                        // grace runs until the connection is back.
                        IceConnectionState::Disconnected | IceConnectionState::Checking
                            if peer.connected =>
                        {
                            peer.disconnected_since.get_or_insert(now);
                        }
                        IceConnectionState::Connected | IceConnectionState::Completed => {
                            peer.disconnected_since = None;
                        }
                        _ => {}
                    }
                }
            }
            Event::Connected => {
                tracing::info!(peer = id, "media connected");
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connected = true;
                }
            }
            Event::Closed => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.rtc.disconnect();
                }
            }
            _ => {}
        }
    }

    /// Copies one published packet to every subscriber of its track (of
    /// its layer). The payload is shared (an `Arc`), only the header is
    /// rewritten, and the VP8 picture ids where a switch moved them.
    fn forward(
        &mut self,
        publisher: ParticipantId,
        pkt: str0m::rtp::RtpPacket,
        now: Instant,
        out: &mut Outputs,
    ) {
        out.counters.packets_in += 1;
        out.counters.bytes_in += pkt.payload.len() as u64;
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some((mid, rid)) = peer
            .rtc
            .direct_api()
            .stream_rx(&pkt.header.ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let key = TrackKey { publisher, mid };
        let Some(track) = self.router.track_mut(&key) else {
            return;
        };
        let Some(index) = track.layer_of(rid) else {
            return;
        };
        let video = track.kind == MediaKind::Video;
        // Read once here, not once per copy.
        let desc = if video {
            Vp8Descriptor::parse(&pkt.payload).ok()
        } else {
            None
        };
        let keyframe = desc.is_some_and(|d| d.starts_keyframe(&pkt.payload));
        let layer = &mut track.layers[index];
        if keyframe {
            if let Some(width) = vp8::keyframe_width(&pkt.payload) {
                layer.width = width;
            }
        }
        layer.meter.on_packet(pkt.payload.len(), now);
        let wallclock = layer.clock.wallclock(pkt.header.timestamp, pkt.timestamp);
        let incoming = Incoming {
            layer: index,
            keyframe: keyframe || !video,
            seq: *pkt.seq_no,
            timestamp: pkt.header.timestamp,
            vp8: desc.as_ref(),
        };
        // Layers some subscriber waits to switch to (bit per layer).
        let mut waiting = 0u32;
        for sub in track.subscriptions.iter_mut() {
            let forward = sub.switch.forward(&incoming, now);
            if let Some(w) = sub.switch.waiting() {
                waiting |= 1 << w.min(31);
            }
            let Some(forward) = forward else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(&sub.subscriber) else {
                continue;
            };
            let Some(pt) = sub.map_pt(pkt.header.payload_type) else {
                continue;
            };
            let mut api = peer.rtc.direct_api();
            if sub.ssrc.is_none() {
                sub.ssrc = api.stream_tx_by_mid(sub.mid, None).map(|tx| tx.ssrc());
            }
            let Some(tx) = sub.ssrc.and_then(|ssrc| api.stream_tx(&ssrc)) else {
                // Gone in a renegotiation: looked for by its m-line again.
                sub.ssrc = None;
                continue;
            };
            let mut write = RtpWrite::new(
                pt,
                forward.rtp.seq.into(),
                forward.rtp.timestamp,
                wallclock,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .ext_vals(pkt.header.ext_vals.clone())
            .nackable(video);
            if let Some(patch) = forward.vp8 {
                write = write.vp8_patch(patch);
            }
            tx.write_rtp(write);
            out.counters.packets_out += 1;
            out.counters.bytes_out += pkt.payload.len() as u64;
            // A peer queued for another reason may be queued twice: the
            // second drain finds nothing, which costs less than a search
            // of the queue per copy.
            if !peer.wrote_media {
                peer.wrote_media = true;
                self.dirty.push(sub.subscriber);
            }
        }
        // A switch happens on a keyframe: ask again (throttled) until one
        // comes.
        while waiting != 0 {
            let layer = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            self.request_keyframe(key, layer, KeyframeRequestKind::Pli, now);
        }
        if let (false, Some(dbov)) = (video, pkt.header.ext_vals.audio_level) {
            self.speakers.on_level(publisher, dbov, now);
            if let Some(id) = self.speakers.poll(now) {
                for p in self.peers.keys() {
                    out.events.push_back((*p, PeerEvent::Speaker { id }));
                }
                self.allocate(now, out);
            }
        }
    }

    /// Chooses what each subscriber receives: the video of the `last_n`
    /// most recent speakers (then the first to come) other than itself,
    /// none for one that asked for audio only, and of each simulcast video
    /// the layer its bandwidth estimate and its tile call for. Tells each
    /// whose video it gets when that changes, and pauses at the publishers
    /// the layers nobody receives. Audio always flows.
    fn allocate(&mut self, now: Instant, out: &mut Outputs) {
        self.next_allocation = now + ALLOCATION_INTERVAL;
        let recent = self.speakers.recent();
        // (track, subscriber, layer it should receive)
        let mut decisions: Vec<(TrackKey, ParticipantId, Option<usize>)> = Vec::new();
        self.watched.clear();
        for p in self.peers.values_mut() {
            let n = if p.receive_video { self.last_n } else { 0 };
            let shown: Vec<ParticipantId> = recent
                .iter()
                .copied()
                .filter(|o| *o != p.id)
                .take(n)
                .collect();
            self.watched.extend(shown.iter().copied());
            // Audio and shared screens: sent whatever the estimate.
            let mut fixed = 0;
            let mut simulcast: Vec<(usize, TrackKey, Video)> = Vec::new();
            for (key, track) in self.router.tracks() {
                let Some(sub) = track.subscriptions.iter().find(|s| s.subscriber == p.id) else {
                    continue;
                };
                if track.kind == MediaKind::Audio {
                    fixed += track.layers[0].meter.rate().unwrap_or(AUDIO_RATE_GUESS);
                    continue;
                }
                if track.screen {
                    // Beside last-N: a shared screen is what everyone came
                    // to look at, whoever spoke last. Its one layer is
                    // not ours to choose; the cameras share what it leaves.
                    if p.receive_video {
                        fixed += track.layers[0].meter.rate().unwrap_or(0);
                    }
                    decisions.push((*key, p.id, p.receive_video.then_some(0)));
                    continue;
                }
                match shown.iter().position(|o| *o == key.publisher) {
                    None => decisions.push((*key, p.id, None)),
                    Some(_) if !track.is_simulcast() => decisions.push((*key, p.id, Some(0))),
                    Some(rank) => simulcast.push((
                        rank,
                        *key,
                        Video {
                            layers: track
                                .layers
                                .iter()
                                .enumerate()
                                .map(|(i, l)| LayerOption {
                                    rate: l.rate(i),
                                    width: l.width,
                                    available: l.available(now),
                                })
                                .collect(),
                            tile_width: p.tiles.get(&key.publisher).copied(),
                            current: sub.switch.target(),
                        },
                    )),
                }
            }
            simulcast.sort_by_key(|(rank, _, _)| *rank);
            let (keys, videos): (Vec<TrackKey>, Vec<Video>) =
                simulcast.into_iter().map(|(_, k, v)| (k, v)).unzip();
            let budget = p.estimate.saturating_sub(fixed);
            let chosen = p.downlink.choose(budget, &videos, now);
            let wanted = allocator::allocate(u64::MAX, &videos);
            p.links.on_allocation(chosen != wanted);
            // The estimator probes towards what the tiles could use. No
            // padding target: a subscriber's link carries media, not
            // filler (with "audio only" on a weak link, filler would take
            // what the voice needs).
            let desired = fixed + allocator::total(&videos, &wanted);
            if p.bwe_desired != desired {
                p.bwe_desired = desired;
                p.rtc
                    .bwe()
                    .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
            }
            for (key, layer) in keys.into_iter().zip(chosen) {
                decisions.push((key, p.id, layer));
            }
        }
        let mut forwarded: HashMap<ParticipantId, Vec<ParticipantId>> =
            self.peers.keys().map(|id| (*id, Vec::new())).collect();
        let mut keyframes = Vec::new();
        for (key, subscriber, layer) in decisions {
            let Some(track) = self.router.track_mut(&key) else {
                continue;
            };
            let Some(sub) = track
                .subscriptions
                .iter_mut()
                .find(|s| s.subscriber == subscriber)
            else {
                continue;
            };
            let was = sub.switch.target();
            if sub.switch.set_target(layer) {
                keyframes.push((key, layer.unwrap_or(0)));
            }
            if let Some(l) = layer {
                if was != layer {
                    tracing::debug!(
                        subscriber,
                        publisher = key.publisher,
                        layer = l,
                        "layer chosen"
                    );
                }
                // `forwarded` is about cameras (last-N): a screen is apart.
                if let Some(v) = forwarded.get_mut(&subscriber).filter(|_| !track.screen) {
                    v.push(key.publisher);
                }
            } else if was.is_some() {
                // What it lost before, the subscriber would keep asking
                // for, and the repairs would spend the link it wants to
                // spare: the stream's cache goes.
                if let Some(peer) = self.peers.get_mut(&subscriber) {
                    let window = peer.repair.window(sub.mid);
                    if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(sub.mid, None) {
                        tx.set_rtx_cache(
                            repair_cache::MAX_PACKETS,
                            window,
                            Some(repair_cache::RATIO_CAP),
                        );
                    }
                }
            }
        }
        for (id, mut video) in forwarded {
            video.sort_unstable();
            video.dedup();
            if self.told_forwarded.get(&id) != Some(&video) {
                self.told_forwarded.insert(id, video.clone());
                out.events.push_back((id, PeerEvent::Forwarded { video }));
            }
        }
        for (key, layer) in keyframes {
            self.request_keyframe(key, layer, KeyframeRequestKind::Pli, now);
        }
        self.pause_unwanted_layers(now, out);
    }

    /// Samples every participant's links; when a level shown changes,
    /// everyone in the room is told.
    fn judge_links(&mut self, now: Instant, out: &mut Outputs) {
        self.next_quality = now + QUALITY_INTERVAL;
        let mut camera: HashMap<ParticipantId, CameraArrival> = HashMap::new();
        for (key, track) in self.router.tracks() {
            // A screen has still pictures and pauses: its silence says
            // nothing of the uplink.
            if track.kind != MediaKind::Video || track.screen {
                continue;
            }
            let on = self
                .peers
                .get(&key.publisher)
                .is_some_and(|p| p.info.state.video);
            let asked: Vec<bool> = track.layers.iter().map(|l| !l.paused).collect();
            let arriving: Vec<bool> = track
                .layers
                .iter()
                .map(|l| l.meter.is_flowing(now))
                .collect();
            // Whether someone shows it, not whether a layer is chosen: a
            // camera of which nothing arrives has no layer to choose.
            // A camera that never sent yet is starting, not stopped.
            let started = track.layers.iter().any(|l| l.meter.rate().is_some());
            let state = if !on || !started || !self.watched.contains(&key.publisher) {
                // Off, starting, or watched by nobody: nothing to judge it by.
                CameraArrival::Whole
            } else if !arriving.contains(&true) {
                CameraArrival::Stopped
            } else if asked.iter().zip(&arriving).any(|(a, r)| *a && !*r) {
                CameraArrival::Reduced
            } else {
                CameraArrival::Whole
            };
            let e = camera.entry(key.publisher).or_default();
            *e = (*e).max(state);
        }
        let mut changed = false;
        for p in self.peers.values_mut() {
            changed |= p
                .links
                .sample(camera.get(&p.id).copied().unwrap_or_default());
        }
        if changed {
            let links = self.link_qualities();
            tracing::debug!(?links, "link quality");
            for id in self.peers.keys() {
                out.events.push_back((
                    *id,
                    PeerEvent::Quality {
                        links: links.clone(),
                    },
                ));
            }
        }
    }

    fn link_qualities(&self) -> Vec<LinkQuality> {
        let mut links: Vec<LinkQuality> =
            self.peers.values().map(|p| p.links.quality(p.id)).collect();
        links.sort_unstable_by_key(|l| l.id);
        links
    }

    /// Tells publishers to stop sending the simulcast layers no subscriber
    /// has wanted for [`PAUSE_AFTER`], and to resume one as soon as it is
    /// wanted again. The smallest layer always flows: a newcomer starts on
    /// it without waiting for an encoder to wake.
    fn pause_unwanted_layers(&mut self, now: Instant, out: &mut Outputs) {
        for (key, track) in self.router.tracks_mut() {
            if !track.is_simulcast() {
                continue;
            }
            let wanted = track
                .subscriptions
                .iter()
                .filter_map(|s| s.switch.target().max(s.switch.current()))
                .max()
                .unwrap_or(0);
            let mut changed = false;
            for (i, layer) in track.layers.iter_mut().enumerate().skip(1) {
                if i <= wanted {
                    layer.unwanted_since = None;
                    changed |= std::mem::replace(&mut layer.paused, false);
                } else {
                    let since = *layer.unwanted_since.get_or_insert(now);
                    if !layer.paused && now.saturating_duration_since(since) >= PAUSE_AFTER {
                        layer.paused = true;
                        changed = true;
                    }
                }
            }
            if changed {
                let active: Vec<String> = track
                    .layers
                    .iter()
                    .filter(|l| !l.paused)
                    .filter_map(|l| l.rid.map(|r| r.to_string()))
                    .collect();
                tracing::debug!(publisher = key.publisher, mid = %key.mid, ?active, "layers sent");
                out.events.push_back((
                    key.publisher,
                    PeerEvent::Layers {
                        mid: key.mid.to_string(),
                        active,
                    },
                ));
            }
        }
    }

    /// Asks a publisher for a keyframe of one layer, at most once per
    /// throttle interval.
    fn request_keyframe(
        &mut self,
        track: TrackKey,
        layer: usize,
        kind: KeyframeRequestKind,
        now: Instant,
    ) {
        let Some(t) = self.router.track_mut(&track) else {
            return;
        };
        if t.kind != MediaKind::Video {
            return;
        }
        let Some(l) = t.layers.get_mut(layer) else {
            return;
        };
        // Asked again at every packet while a subscriber waits: the
        // throttle answers most of them before any lookup.
        if !l.keyframe.is_ready(now) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&track.publisher) else {
            return;
        };
        let mut api = peer.rtc.direct_api();
        // No stream yet (no packet arrived): its first packets will carry
        // a keyframe anyway, and the throttle is not spent for nothing.
        let Some(rx) = api.stream_rx_by_mid(track.mid, l.rid) else {
            tracing::debug!(
                publisher = track.publisher,
                "keyframe request before any media"
            );
            return;
        };
        l.keyframe.allow(now);
        tracing::debug!(publisher = track.publisher, mid = %track.mid, layer, ?kind, "keyframe requested");
        rx.request_keyframe(kind);
        self.mark_dirty(track.publisher);
    }

    fn offer_changes(&mut self, out: &mut Outputs) {
        let ids: Vec<ParticipantId> = self.router.members().collect();
        for id in ids {
            let Some(plan) = self.router.plan(id) else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            let router = &self.router;
            let is_screen = |key: &TrackKey| router.track(key).is_some_and(|t| t.screen);
            if let Some((offer, added)) = peer.offer(&plan, is_screen) {
                self.router.offered(id, &added);
                out.events.push_back((
                    id,
                    PeerEvent::Offer {
                        id: offer.id,
                        sdp: offer.sdp,
                    },
                ));
                self.mark_dirty(id);
            }
        }
    }

    /// Drives time: due str0m timers, and the participants whose grace
    /// ran out leave. Returns who left.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outputs) -> Vec<ParticipantId> {
        let due: Vec<ParticipantId> = self
            .peers
            .values()
            .filter(|p| p.next_timeout <= now)
            .map(|p| p.id)
            .collect();
        for id in due {
            self.receive(id, Input::Timeout(now), now, out);
        }
        if now >= self.next_allocation {
            self.allocate(now, out);
        }
        if now >= self.next_quality {
            self.judge_links(now, out);
        }
        self.drain(now, out);
        let departing: Vec<(ParticipantId, Departure)> = self
            .peers
            .values()
            .filter_map(|p| p.departure(now).map(|why| (p.id, why)))
            .collect();
        for (id, why) in &departing {
            self.remove(*id, *why, now, out);
        }
        departing.into_iter().map(|(id, _)| id).collect()
    }

    /// When a str0m connection of this room needs [`Room::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let str0m = self.peers.values().map(|p| p.next_timeout).min()?;
        Some(str0m.min(self.next_allocation).min(self.next_quality))
    }

    /// When the first grace period of this room ends (see
    /// [`Peer::deadline`]); [`Room::handle_timeout`] then removes whoever
    /// is past theirs.
    pub fn grace_deadline(&self) -> Option<Instant> {
        self.peers.values().filter_map(Peer::deadline).min()
    }
}
