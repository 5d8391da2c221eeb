//! Room: the router of one call plus the connections of its participants.
//!
//! Everything a room does happens on the media thread that owns it, so the
//! forwarding path takes no lock. The room never touches a socket: datagrams
//! to send go into an outbox that the I/O loop flushes, and time comes in as
//! an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::net::Transmit;
use str0m::rtp::RtpWrite;
use str0m::{Event, IceConnectionState, Input, Output};

use super::peer::Peer;
use super::rewrite::Rewriter;
use super::router::{Router, Subscription, TrackKey};
use super::stats::Counters;
use super::PeerEvent;
use crate::ids::{ParticipantId, ParticipantInfo};

/// How long a connection may stay lost (no ICE consent) before the
/// participant is dropped from the media plane. Long enough for a phone to
/// move from Wi-Fi to mobile data and restart ICE.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(20);
/// How long a participant whose signalling is gone keeps its place, to
/// resume through another (or a restarted) signal server.
pub const DETACH_GRACE: Duration = Duration::from_secs(30);
/// Due timeouts driven in one drain of a peer before it waits for the
/// event loop (a pacer releases its queue in one or two).
const MAX_DUE_TIMEOUTS: u32 = 4;

#[derive(Default)]
pub struct Room {
    pub router: Router,
    pub peers: HashMap<ParticipantId, Peer>,
    /// Peers with output to drain; reused to avoid an allocation per packet.
    dirty: Vec<ParticipantId>,
    /// Some membership or track changed: look for renegotiations.
    renegotiate: bool,
}

impl Room {
    /// Adds a participant and tells the others; returns who was there.
    pub fn add_peer(&mut self, peer: Peer) -> Vec<ParticipantInfo> {
        let others = self.others(peer.id);
        self.broadcast(
            peer.id,
            PeerEvent::ParticipantJoined {
                participant: peer.info.clone(),
            },
        );
        self.router.join(peer.id);
        self.peers.insert(peer.id, peer);
        others
    }

    /// Removes a participant and tells the others.
    pub fn remove_peer(&mut self, id: ParticipantId) -> Option<Peer> {
        let peer = self.peers.remove(&id)?;
        self.router.leave(id);
        self.renegotiate = true;
        self.broadcast(id, PeerEvent::ParticipantLeft { id });
        Some(peer)
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

    pub fn set_mute(&mut self, id: ParticipantId, audio: bool, video: bool) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.info.audio = audio;
        peer.info.video = video;
        self.broadcast(id, PeerEvent::Mute { id, audio, video });
    }

    /// Tells every participant but `from`.
    fn broadcast(&self, from: ParticipantId, event: PeerEvent) {
        for p in self.peers.values().filter(|p| p.id != from) {
            p.notify(event.clone());
        }
    }

    /// Published and forwarded tracks, for the load report.
    pub fn track_counts(&self) -> (usize, usize) {
        (self.router.track_count(), self.router.subscription_count())
    }

    pub fn mark_dirty(&mut self, id: ParticipantId) {
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    /// Feeds one input to a peer and drains everything it causes.
    pub fn handle_input(
        &mut self,
        id: ParticipantId,
        input: Input,
        now: Instant,
        out: &mut Vec<Transmit>,
        counters: &mut Counters,
    ) {
        self.receive(id, input, now, out, counters);
        self.drain(now, out, counters);
    }

    /// Feeds one datagram to a peer and drains that peer only: what it
    /// forwards waits in the subscribers' connections until [`Room::drain`],
    /// so a burst of packets costs each subscriber one poll, not one each.
    pub fn receive(
        &mut self,
        id: ParticipantId,
        input: Input,
        now: Instant,
        out: &mut Vec<Transmit>,
        counters: &mut Counters,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            // Malformed or unexpected packets from the network are dropped;
            // str0m keeps the connection usable.
            tracing::debug!(peer = id, "input rejected: {e}");
        }
        self.dirty.retain(|d| *d != id);
        self.drain_peer(id, now, out, counters);
    }

    /// Polls every dirty peer until it only has a timeout to report, and
    /// sends the server offers that became possible.
    pub fn drain(&mut self, now: Instant, out: &mut Vec<Transmit>, counters: &mut Counters) {
        self.drain_until(now, out, counters, usize::MAX);
    }

    /// As [`Room::drain`], but stops once `out` holds `limit` datagrams so
    /// the caller can send them before encrypting the rest: in a large
    /// fan-out the first subscribers need not wait for the last one's
    /// copy. Returns whether peers are left to drain.
    pub fn drain_until(
        &mut self,
        now: Instant,
        out: &mut Vec<Transmit>,
        counters: &mut Counters,
        limit: usize,
    ) -> bool {
        loop {
            while let Some(id) = self.dirty.pop() {
                self.drain_peer(id, now, out, counters);
                if out.len() >= limit {
                    return !self.dirty.is_empty() || self.renegotiate;
                }
            }
            if !self.renegotiate {
                return false;
            }
            self.renegotiate = false;
            self.offer_changes();
        }
    }

    fn drain_peer(
        &mut self,
        id: ParticipantId,
        now: Instant,
        out: &mut Vec<Transmit>,
        counters: &mut Counters,
    ) {
        // str0m's pacer releases newly written packets only after a
        // timeout: when the one it asks for is already due, it is driven
        // here, so a burst leaves in this drain rather than a turn of the
        // event loop later. Bounded, in case a timeout stays due.
        let mut due_timeouts = 0;
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
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = id, "timeout rejected: {e}");
                }
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) if t <= now && due_timeouts < MAX_DUE_TIMEOUTS => {
                    due_timeouts += 1;
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(peer = id, "timeout rejected: {e}");
                    }
                }
                Ok(Output::Timeout(t)) => {
                    peer.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.push(t),
                Ok(Output::Event(e)) => self.on_event(id, e, now, counters),
                Err(e) => {
                    tracing::warn!(peer = id, "connection failed: {e}");
                    peer.rtc.disconnect();
                }
            }
        }
    }

    fn on_event(&mut self, id: ParticipantId, event: Event, now: Instant, c: &mut Counters) {
        match event {
            Event::RtpPacket(pkt) => self.forward(id, pkt, c),
            Event::KeyframeRequest(req) => {
                if let Some(track) = self.router.source_of(id, req.mid) {
                    self.request_keyframe(track, req.kind, now);
                }
            }
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                tracing::debug!(peer = id, mid = %m.mid, kind = ?m.kind, "track published");
                self.router.publish(id, m.mid, m.kind);
                self.renegotiate = true;
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(peer = id, ?state, "ice");
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.disconnected_since = match state {
                        IceConnectionState::Disconnected => Some(now),
                        _ => None,
                    };
                }
            }
            Event::Connected => tracing::info!(peer = id, "media connected"),
            Event::Closed => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.rtc.disconnect();
                }
            }
            _ => {}
        }
    }

    /// Copies one published packet to every subscriber of its track. The
    /// payload is shared (an `Arc`), only the header is rewritten.
    fn forward(&mut self, publisher: ParticipantId, pkt: str0m::rtp::RtpPacket, c: &mut Counters) {
        c.packets_in += 1;
        c.bytes_in += pkt.payload.len() as u64;
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(mid) = peer
            .rtc
            .direct_api()
            .stream_rx(&pkt.header.ssrc)
            .map(|s| s.mid())
        else {
            return;
        };
        let key = TrackKey { publisher, mid };
        let Some(track) = self.router.track_mut(&key) else {
            return;
        };
        let nackable = track.kind == MediaKind::Video;
        let wallclock = track.clock.wallclock(pkt.header.timestamp, pkt.timestamp);
        for sub in track.subscriptions.iter_mut() {
            let Some(peer) = self.peers.get_mut(&sub.subscriber) else {
                continue;
            };
            let Some(pt) = sub.map_pt(pkt.header.payload_type) else {
                continue;
            };
            let Some(rw) = sub.rewriter.rewrite(*pkt.seq_no, pkt.header.timestamp) else {
                continue;
            };
            let mut api = peer.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(sub.mid, None) else {
                continue;
            };
            let write = RtpWrite::new(
                pt,
                rw.seq.into(),
                rw.timestamp,
                wallclock,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .ext_vals(pkt.header.ext_vals.clone())
            .nackable(nackable);
            tx.write_rtp(write);
            c.packets_out += 1;
            c.bytes_out += pkt.payload.len() as u64;
            // A peer queued for another reason may be queued twice: the
            // second drain finds nothing, which costs less than a search
            // of the queue per copy.
            if !peer.wrote_media {
                peer.wrote_media = true;
                self.dirty.push(sub.subscriber);
            }
        }
    }

    /// Asks a publisher for a keyframe, at most once per throttle interval.
    pub fn request_keyframe(&mut self, track: TrackKey, kind: KeyframeRequestKind, now: Instant) {
        let Some(t) = self.router.track_mut(&track) else {
            return;
        };
        if t.kind != MediaKind::Video {
            return;
        }
        let Some(peer) = self.peers.get_mut(&track.publisher) else {
            return;
        };
        let mut api = peer.rtc.direct_api();
        // No stream yet (no packet arrived): its first packets will carry
        // a keyframe anyway, and the throttle is not spent for nothing.
        let Some(rx) = api.stream_rx_by_mid(track.mid, None) else {
            tracing::debug!(
                publisher = track.publisher,
                "keyframe request before any media"
            );
            return;
        };
        if !t.keyframe.allow(now) {
            tracing::trace!(publisher = track.publisher, "keyframe request throttled");
            return;
        }
        tracing::debug!(publisher = track.publisher, mid = %track.mid, ?kind, "keyframe requested");
        rx.request_keyframe(kind);
        self.mark_dirty(track.publisher);
    }

    /// The participant's own offer was answered.
    pub fn offer_answered(&mut self, id: ParticipantId, rolled_back: bool) {
        if rolled_back {
            self.router.rolled_back(id);
        }
        self.router.set_ready(id);
        self.renegotiate = true;
        self.mark_dirty(id);
    }

    /// The participant accepted a server offer: new outlets open.
    pub fn server_offer_answered(&mut self, id: ParticipantId, now: Instant) {
        let peers = &self.peers;
        let mut rng = rand::thread_rng();
        let opened = self.router.answered(id, |track, mid| {
            let pt_map = match (peers.get(&id), peers.get(&track.publisher)) {
                (Some(sub), Some(publ)) => sub.pt_map_from(&publ.rtc),
                _ => Vec::new(),
            };
            Subscription {
                subscriber: id,
                mid,
                rewriter: Rewriter::new(rng.gen(), rng.gen()),
                pt_map,
            }
        });
        // The new subscriber needs a picture at once.
        for track in opened {
            self.request_keyframe(track, KeyframeRequestKind::Pli, now);
        }
        self.renegotiate = true;
        self.mark_dirty(id);
    }

    fn offer_changes(&mut self) {
        let ids: Vec<ParticipantId> = self.router.members().collect();
        for id in ids {
            let Some(plan) = self.router.plan(id) else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if let Some(added) = peer.offer(&plan) {
                self.router.offered(id, &added);
                self.mark_dirty(id);
            }
        }
    }

    /// Drives time and drops connections that died; returns the ids dropped.
    pub fn handle_timeouts(
        &mut self,
        now: Instant,
        out: &mut Vec<Transmit>,
        counters: &mut Counters,
    ) -> Vec<ParticipantId> {
        let due: Vec<ParticipantId> = self
            .peers
            .values()
            .filter(|p| p.next_timeout <= now)
            .map(|p| p.id)
            .collect();
        for id in due {
            self.handle_input(id, Input::Timeout(now), now, out, counters);
        }
        let dead: Vec<ParticipantId> = self
            .peers
            .values()
            .filter(|p| {
                !p.rtc.is_alive()
                    || p.disconnected_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= DISCONNECT_GRACE)
                    || p.detached_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= DETACH_GRACE)
            })
            .map(|p| p.id)
            .collect();
        for id in &dead {
            if let Some(peer) = self.remove_peer(*id) {
                peer.notify(PeerEvent::Closed {
                    reason: "media connection lost".into(),
                });
            }
        }
        if !dead.is_empty() {
            self.drain(now, out, counters);
        }
        dead
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.peers.values().map(|p| p.next_timeout).min()
    }
}
