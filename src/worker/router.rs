//! Router: one room on one worker, as plain data.
//!
//! It knows which published track goes to which subscriber and in which
//! state each subscriber's outgoing m-line is. It decides what the next
//! renegotiation of a subscriber must contain, and it is the forwarding
//! table of the hot path. No sockets, no `Rtc`, no clock: the worker feeds it
//! facts (joined, published, offer made, answer accepted) and applies its
//! plans, so every rule here is tested without a network.
//!
//! Negotiation rule (collision-safe by construction): a subscriber has at
//! most one server offer in flight, and none before its own first offer was
//! answered. Changes that arrive meanwhile wait in the outlet states below.

use std::collections::BTreeMap;

use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::Ssrc;

use super::layer::Layer;
use super::layer_switch::LayerSwitch;
use crate::ids::ParticipantId;

/// Simulcast layers kept of a track: browsers send at most three. More
/// `rid`s in an offer are ignored (their packets are dropped), so an offer
/// cannot make every later decision loop over thousands of layers.
pub const MAX_LAYERS: usize = 4;

/// One published track: the publisher and the m-line it arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey {
    pub publisher: ParticipantId,
    pub mid: Mid,
}

/// A published track and the subscribers it is forwarded to.
#[derive(Debug)]
pub struct Track {
    pub kind: MediaKind,
    /// One, or its simulcast layers, smallest first.
    pub layers: Vec<Layer>,
    /// A shared screen: forwarded to everyone who receives video, beside
    /// last-N (it is what everyone looks at).
    pub screen: bool,
    pub subscriptions: Vec<Subscription>,
}

impl Track {
    /// The layer a packet with this `rid` belongs to.
    pub fn layer_of(&self, rid: Option<Rid>) -> Option<usize> {
        match rid {
            None if self.layers.len() == 1 => Some(0),
            rid => self.layers.iter().position(|l| l.rid == rid),
        }
    }

    /// Whether it is sent in several sizes.
    pub fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }
}

/// One open outgoing copy of a track.
#[derive(Debug)]
pub struct Subscription {
    pub subscriber: ParticipantId,
    /// The m-line in the subscriber's connection.
    pub mid: Mid,
    /// Publisher payload type → subscriber payload type.
    pub pt_map: Vec<(Pt, Pt)>,
    /// Which layer the subscriber receives, and its numbering.
    pub switch: LayerSwitch,
    /// The SSRC of the stream in the subscriber's connection, once found
    /// by its m-line: str0m finds a stream by SSRC in a map, by m-line
    /// only by walking all of the connection's streams.
    pub ssrc: Option<Ssrc>,
}

impl Subscription {
    pub fn map_pt(&self, pt: Pt) -> Option<Pt> {
        self.pt_map.iter().find(|(i, _)| *i == pt).map(|(_, o)| *o)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutletState {
    /// Should be added in the next offer.
    Wanted,
    /// Added in the offer in flight.
    Offered(Mid),
    /// Negotiated; media flows.
    Open(Mid),
    /// Its track is gone; stop it in the next offer.
    Unwanted(Mid),
    /// Stopped in the offer in flight.
    StopOffered(Mid),
}

#[derive(Debug)]
struct Outlet {
    track: TrackKey,
    kind: MediaKind,
    state: OutletState,
}

#[derive(Debug, Default)]
struct Member {
    /// The participant's own first offer was answered.
    ready: bool,
    /// A server offer waits for its answer.
    in_flight: bool,
    outlets: Vec<Outlet>,
}

/// What the next offer to a subscriber must change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<(TrackKey, MediaKind)>,
    pub stop: Vec<Mid>,
}

#[derive(Debug, Default)]
pub struct Router {
    members: BTreeMap<ParticipantId, Member>,
    tracks: BTreeMap<TrackKey, Track>,
}

impl Router {
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Open outgoing copies of tracks, over all subscribers.
    pub fn subscription_count(&self) -> usize {
        self.tracks.values().map(|t| t.subscriptions.len()).sum()
    }

    /// A participant enters: it will receive every track already published.
    pub fn join(&mut self, p: ParticipantId) {
        let outlets = self
            .tracks
            .iter()
            .filter(|(k, _)| k.publisher != p)
            .map(|(k, t)| Outlet {
                track: *k,
                kind: t.kind,
                state: OutletState::Wanted,
            })
            .collect();
        self.members.insert(
            p,
            Member {
                outlets,
                ..Member::default()
            },
        );
    }

    /// A participant leaves: its tracks go, and so do its subscriptions.
    pub fn leave(&mut self, p: ParticipantId) {
        if self.members.remove(&p).is_none() {
            return;
        }
        self.tracks.retain(|k, _| k.publisher != p);
        for track in self.tracks.values_mut() {
            track.subscriptions.retain(|s| s.subscriber != p);
        }
        for member in self.members.values_mut() {
            member.outlets.retain_mut(|o| {
                if o.track.publisher != p {
                    return true;
                }
                match o.state {
                    OutletState::Wanted => false,
                    OutletState::Open(m) => {
                        o.state = OutletState::Unwanted(m);
                        true
                    }
                    // Settled when the answer comes (see `answered`).
                    OutletState::Offered(_)
                    | OutletState::Unwanted(_)
                    | OutletState::StopOffered(_) => true,
                }
            });
        }
    }

    /// A participant publishes a track, in one layer (`rids` empty) or in
    /// these simulcast layers, smallest first: every other member wants it.
    pub fn publish(
        &mut self,
        p: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        rids: &[Rid],
        screen: bool,
    ) {
        if !self.members.contains_key(&p) {
            return;
        }
        let key = TrackKey { publisher: p, mid };
        if self.tracks.contains_key(&key) {
            return;
        }
        let clock_rate = match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        };
        let layers = if rids.is_empty() {
            vec![Layer::new(None, clock_rate)]
        } else {
            rids.iter()
                .take(MAX_LAYERS)
                .map(|r| Layer::new(Some(*r), clock_rate))
                .collect()
        };
        self.tracks.insert(
            key,
            Track {
                kind,
                layers,
                screen,
                subscriptions: Vec::new(),
            },
        );
        for (id, member) in self.members.iter_mut() {
            if *id != p {
                member.outlets.push(Outlet {
                    track: key,
                    kind,
                    state: OutletState::Wanted,
                });
            }
        }
    }

    /// The participant's own offer was answered: server offers may follow.
    pub fn set_ready(&mut self, p: ParticipantId) {
        if let Some(m) = self.members.get_mut(&p) {
            m.ready = true;
        }
    }

    /// The changes the next server offer to `p` must carry, if one may be
    /// made now.
    pub fn plan(&self, p: ParticipantId) -> Option<Plan> {
        let m = self.members.get(&p)?;
        if !m.ready || m.in_flight {
            return None;
        }
        let mut plan = Plan::default();
        for o in &m.outlets {
            match o.state {
                OutletState::Wanted => plan.add.push((o.track, o.kind)),
                OutletState::Unwanted(mid) => plan.stop.push(mid),
                _ => {}
            }
        }
        (!plan.add.is_empty() || !plan.stop.is_empty()).then_some(plan)
    }

    /// The offer for `plan` was sent; `added` gives the mid of each added track.
    pub fn offered(&mut self, p: ParticipantId, added: &[(TrackKey, Mid)]) {
        let Some(m) = self.members.get_mut(&p) else {
            return;
        };
        m.in_flight = true;
        for o in &mut m.outlets {
            match o.state {
                OutletState::Wanted => {
                    if let Some((_, mid)) = added.iter().find(|(k, _)| *k == o.track) {
                        o.state = OutletState::Offered(*mid);
                    }
                }
                OutletState::Unwanted(mid) => o.state = OutletState::StopOffered(mid),
                _ => {}
            }
        }
    }

    /// The answer to the offer in flight was accepted. Added outlets whose
    /// track still exists open; `make` builds their forwarding state. Returns
    /// the tracks that gained a subscriber (they need a keyframe).
    pub fn answered(
        &mut self,
        p: ParticipantId,
        mut make: impl FnMut(TrackKey, &Track, Mid) -> Subscription,
    ) -> Vec<TrackKey> {
        let Some(m) = self.members.get_mut(&p) else {
            return Vec::new();
        };
        m.in_flight = false;
        let mut opened = Vec::new();
        m.outlets.retain_mut(|o| match o.state {
            OutletState::Offered(mid) => {
                if let Some(track) = self.tracks.get_mut(&o.track) {
                    o.state = OutletState::Open(mid);
                    let sub = make(o.track, track, mid);
                    track.subscriptions.push(sub);
                    opened.push(o.track);
                } else {
                    // The publisher left while the offer was in flight.
                    o.state = OutletState::Unwanted(mid);
                }
                true
            }
            OutletState::StopOffered(_) => false,
            _ => true,
        });
        opened
    }

    /// The offer in flight was dropped (the participant made an offer of its
    /// own, which wins): its changes go back to waiting.
    pub fn rolled_back(&mut self, p: ParticipantId) {
        let Some(m) = self.members.get_mut(&p) else {
            return;
        };
        m.in_flight = false;
        for o in &mut m.outlets {
            match o.state {
                OutletState::Offered(_) => o.state = OutletState::Wanted,
                OutletState::StopOffered(mid) => o.state = OutletState::Unwanted(mid),
                _ => {}
            }
        }
    }

    /// Every published track.
    pub fn tracks(&self) -> impl Iterator<Item = (&TrackKey, &Track)> {
        self.tracks.iter()
    }

    pub fn tracks_mut(&mut self) -> impl Iterator<Item = (&TrackKey, &mut Track)> {
        self.tracks.iter_mut()
    }

    /// The copy of `track` that `subscriber` receives.
    pub fn subscription(
        &self,
        track: &TrackKey,
        subscriber: ParticipantId,
    ) -> Option<&Subscription> {
        self.tracks
            .get(track)?
            .subscriptions
            .iter()
            .find(|s| s.subscriber == subscriber)
    }

    /// Hot path: the track a packet arrived on.
    pub fn track(&self, key: &TrackKey) -> Option<&Track> {
        self.tracks.get(key)
    }

    pub fn track_mut(&mut self, key: &TrackKey) -> Option<&mut Track> {
        self.tracks.get_mut(key)
    }

    /// The track a subscriber receives on its m-line `mid` (for keyframe
    /// requests, which come back on the subscriber's side).
    pub fn source_of(&self, subscriber: ParticipantId, mid: Mid) -> Option<TrackKey> {
        let m = self.members.get(&subscriber)?;
        m.outlets
            .iter()
            .find(|o| o.state == OutletState::Open(mid))
            .map(|o| o.track)
    }

    /// Subscribers of `key`, in no particular order.
    #[cfg(test)]
    pub fn subscribers(&self, key: &TrackKey) -> Vec<ParticipantId> {
        self.tracks
            .get(key)
            .map(|t| t.subscriptions.iter().map(|s| s.subscriber).collect())
            .unwrap_or_default()
    }

    pub fn members(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.members.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::rewrite::Rewriter;

    fn mid(s: &str) -> Mid {
        Mid::from(s)
    }

    fn sub(subscriber: ParticipantId) -> impl FnMut(TrackKey, &Track, Mid) -> Subscription {
        move |_, _, mid| Subscription {
            subscriber,
            mid,
            ssrc: None,
            pt_map: vec![],
            switch: LayerSwitch::new(Rewriter::new(1, 0), Some(0)),
        }
    }

    /// Runs one complete server renegotiation of `p`, naming added mids
    /// "o<n>" in order.
    fn negotiate(r: &mut Router, p: ParticipantId) -> Plan {
        let plan = r.plan(p).expect("a plan");
        let added: Vec<_> = plan
            .add
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, mid(&format!("o{}{}", k.publisher, i))))
            .collect();
        r.offered(p, &added);
        r.answered(p, sub(p));
        plan
    }

    fn two_publishing() -> Router {
        let mut r = Router::default();
        for p in [1, 2] {
            r.join(p);
            r.publish(p, mid("a"), MediaKind::Audio, &[], false);
            r.publish(p, mid("v"), MediaKind::Video, &[], false);
            r.set_ready(p);
        }
        r
    }

    #[test]
    fn everyone_receives_every_track_but_their_own() {
        let mut r = two_publishing();
        let p1 = negotiate(&mut r, 1);
        assert_eq!(p1.add.len(), 2);
        assert!(p1.add.iter().all(|(k, _)| k.publisher == 2));
        negotiate(&mut r, 2);
        let v1 = TrackKey {
            publisher: 1,
            mid: mid("v"),
        };
        assert_eq!(r.subscribers(&v1), vec![2]);
        assert_eq!(r.plan(1), None, "nothing left to negotiate");
    }

    #[test]
    fn no_offer_before_the_participants_own_offer_is_answered() {
        let mut r = Router::default();
        r.join(1);
        r.join(2);
        r.publish(2, mid("v"), MediaKind::Video, &[], false);
        assert_eq!(r.plan(1), None);
        r.set_ready(1);
        assert!(r.plan(1).is_some());
    }

    #[test]
    fn one_offer_in_flight_at_a_time() {
        let mut r = two_publishing();
        let plan = r.plan(1).unwrap();
        r.offered(1, &[(plan.add[0].0, mid("x")), (plan.add[1].0, mid("y"))]);
        // A third participant publishes while the offer is in flight.
        r.join(3);
        r.publish(3, mid("v"), MediaKind::Video, &[], false);
        assert_eq!(r.plan(1), None, "must wait for the answer");
        r.answered(1, sub(1));
        let next = r.plan(1).unwrap();
        assert_eq!(next.add.len(), 1);
        assert_eq!(next.add[0].0.publisher, 3);
    }

    #[test]
    fn leaving_stops_the_others_outlets_and_nothing_is_forwarded_after() {
        let mut r = two_publishing();
        negotiate(&mut r, 1);
        negotiate(&mut r, 2);
        r.leave(2);
        let plan = r.plan(1).unwrap();
        assert!(plan.add.is_empty());
        assert_eq!(plan.stop.len(), 2);
        let v2 = TrackKey {
            publisher: 2,
            mid: mid("v"),
        };
        assert!(r.track_mut(&v2).is_none());
        // Participant 2 no longer receives participant 1's tracks either.
        let v1 = TrackKey {
            publisher: 1,
            mid: mid("v"),
        };
        assert!(r.subscribers(&v1).is_empty());
        negotiate(&mut r, 1);
        assert_eq!(r.plan(1), None, "stopped m-lines are forgotten");
    }

    #[test]
    fn publisher_leaving_during_an_offer_is_stopped_after_the_answer() {
        let mut r = two_publishing();
        let plan = r.plan(1).unwrap();
        let added: Vec<_> = plan
            .add
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, mid(&format!("m{i}"))))
            .collect();
        r.offered(1, &added);
        r.leave(2);
        assert!(r.answered(1, sub(1)).is_empty(), "nothing opened");
        let plan = r.plan(1).unwrap();
        assert_eq!(plan.stop, vec![mid("m0"), mid("m1")]);
    }

    #[test]
    fn an_offer_with_many_rids_keeps_only_a_few_layers() {
        let mut r = Router::default();
        r.join(1);
        let rids: Vec<Rid> = (0..1000)
            .map(|i| Rid::from(format!("r{i}").as_str()))
            .collect();
        r.publish(1, mid("v"), MediaKind::Video, &rids, false);
        let key = TrackKey {
            publisher: 1,
            mid: mid("v"),
        };
        let track = r.track_mut(&key).unwrap();
        assert_eq!(track.layers.len(), MAX_LAYERS);
        assert_eq!(track.layer_of(Some(rids[2])), Some(2));
        assert_eq!(
            track.layer_of(Some(rids[999])),
            None,
            "its packets are dropped"
        );
    }

    #[test]
    fn rollback_requeues_the_changes() {
        let mut r = two_publishing();
        let plan = r.plan(1).unwrap();
        r.offered(1, &[(plan.add[0].0, mid("x"))]);
        r.rolled_back(1);
        assert_eq!(r.plan(1).unwrap().add.len(), 2);
    }

    #[test]
    fn late_joiner_gets_existing_tracks_and_keyframe_sources() {
        let mut r = two_publishing();
        negotiate(&mut r, 1);
        negotiate(&mut r, 2);
        r.join(3);
        r.set_ready(3);
        let plan = r.plan(3).unwrap();
        assert_eq!(plan.add.len(), 4);
        let added: Vec<_> = plan
            .add
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, mid(&format!("n{i}"))))
            .collect();
        r.offered(3, &added);
        let opened = r.answered(3, sub(3));
        assert_eq!(opened.len(), 4);
        for (key, m) in added {
            assert_eq!(r.source_of(3, m), Some(key));
        }
    }
}
