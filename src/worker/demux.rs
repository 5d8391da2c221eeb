//! Demultiplexing: which peer a datagram on the shared UDP port is for.
//!
//! Media from a known source address maps straight to a peer (one hash
//! lookup per packet). A STUN request is always routed by the ICE ufrag in
//! its USERNAME, even from a known address, and the peer's `Rtc` checks its
//! MESSAGE-INTEGRITY before the address is (re)learned: nobody can claim
//! another peer's address, and an address a NAT hands to someone else
//! follows its new owner as soon as that one authenticates. Addresses that
//! fell silent are forgotten, so an old address of a peer that moved (Wi-Fi
//! to 4G) does not keep catching what is now someone else's traffic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::ice::StunMessage;

use super::shard::FlowChange;

/// An address that carried nothing for this long is forgotten. Browsers
/// send a consent check at least every few seconds (RFC 7675), so a live
/// path is never this quiet; ICE declares it lost well before.
pub const ADDR_IDLE: Duration = Duration::from_secs(30);

/// An address its owner was heard from within this long is not handed to
/// another peer on that peer's word alone: a binding request authenticated
/// with one participant's credentials but sent from another's address
/// (a spoofed source) would otherwise take that address, and its media,
/// from a live call. Browsers send media or a consent check from a live
/// path far more often; a NAT gives a port to someone else only once its
/// old user has left it.
pub const ADDR_TAKEOVER: Duration = Duration::from_secs(10);

/// Maps addresses and ufrags to `R`, whatever routes to a peer (the worker
/// uses room and participant, so one lookup finds both).
#[derive(Debug)]
pub struct Demux<R> {
    by_addr: HashMap<SocketAddr, (R, Instant)>,
    by_ufrag: HashMap<String, R>,
    /// What was learned and forgotten since [`Demux::take_changes`]: the
    /// other shards of the worker must know who owns what (`shard.rs`).
    changes: Vec<FlowChange>,
}

impl<R> Default for Demux<R> {
    fn default() -> Self {
        Demux {
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            changes: Vec::new(),
        }
    }
}

/// Whether a datagram is STUN (RFC 7983: first byte 0 to 3).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| *b < 4)
}

impl<R: Copy + PartialEq> Demux<R> {
    /// The peer behind a known address, noting that it is alive.
    pub fn by_addr(&mut self, addr: &SocketAddr, now: Instant) -> Option<R> {
        let (route, seen) = self.by_addr.get_mut(addr)?;
        *seen = now;
        Some(*route)
    }

    /// Who owns `addr`, and when it was last heard from there, without
    /// counting this as hearing from it.
    pub fn owner(&self, addr: &SocketAddr) -> Option<(R, Instant)> {
        self.by_addr.get(addr).copied()
    }

    /// The peer a STUN datagram names in its USERNAME (`ours:theirs`).
    pub fn by_stun(&self, datagram: &[u8]) -> Option<R> {
        let msg = StunMessage::parse(datagram).ok()?;
        let (local, _remote) = msg.split_username()?;
        self.by_ufrag.get(local).copied()
    }

    /// `addr` is now `route`'s (taken from whoever had it before).
    pub fn learn_addr(&mut self, addr: SocketAddr, route: R, now: Instant) {
        self.by_addr.insert(addr, (route, now));
        self.changes.push(FlowChange::Addr(addr));
    }

    pub fn set_ufrag(&mut self, route: R, ufrag: &str) {
        if self.by_ufrag.get(ufrag) == Some(&route) {
            return;
        }
        let changes = &mut self.changes;
        self.by_ufrag.retain(|u, r| {
            let keep = *r != route;
            if !keep {
                changes.push(FlowChange::UfragGone(u.clone()));
            }
            keep
        });
        self.by_ufrag.insert(ufrag.to_string(), route);
        self.changes.push(FlowChange::Ufrag(ufrag.to_string()));
    }

    pub fn forget(&mut self, route: R) {
        let changes = &mut self.changes;
        self.by_addr.retain(|a, (r, _)| {
            let keep = *r != route;
            if !keep {
                changes.push(FlowChange::AddrGone(*a));
            }
            keep
        });
        self.by_ufrag.retain(|u, r| {
            let keep = *r != route;
            if !keep {
                changes.push(FlowChange::UfragGone(u.clone()));
            }
            keep
        });
    }

    /// Forgets the addresses silent since `now - ADDR_IDLE`.
    pub fn expire(&mut self, now: Instant) {
        let changes = &mut self.changes;
        self.by_addr.retain(|a, (_, seen)| {
            let keep = now.saturating_duration_since(*seen) < ADDR_IDLE;
            if !keep {
                changes.push(FlowChange::AddrGone(*a));
            }
            keep
        });
    }

    /// What was learned and forgotten since the last call, in order.
    pub fn take_changes(&mut self) -> std::vec::Drain<'_, FlowChange> {
        self.changes.drain(..)
    }

    /// The addresses known for `route`.
    #[cfg(test)]
    pub fn addrs_of(&self, route: R) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self
            .by_addr
            .iter()
            .filter(|(_, (r, _))| *r == route)
            .map(|(a, _)| *a)
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::TransId;

    #[test]
    fn garbage_matches_nobody() {
        let mut d = Demux::<u64>::default();
        d.set_ufrag(7, "abcd");
        assert_eq!(d.by_stun(&[]), None);
        assert_eq!(d.by_stun(&[0u8; 20]), None);
        assert_eq!(d.by_stun(&[0xff; 300]), None);
    }

    #[test]
    fn forget_removes_addresses_and_ufrag() {
        let now = Instant::now();
        let mut d = Demux::<u64>::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        d.learn_addr(a, 7, now);
        d.set_ufrag(7, "abcd");
        assert_eq!(d.by_addr(&a, now), Some(7));
        d.forget(7);
        assert_eq!(d.by_addr(&a, now), None);
        assert!(d.by_ufrag.is_empty());
    }

    #[test]
    fn what_is_learned_and_forgotten_is_told_in_order() {
        let now = Instant::now();
        let mut d = Demux::<u64>::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        d.set_ufrag(7, "abcd");
        d.learn_addr(a, 7, now);
        // An ICE restart: a new ufrag for the same peer.
        d.set_ufrag(7, "efgh");
        d.forget(7);
        let told: Vec<FlowChange> = d.take_changes().collect();
        assert_eq!(
            told,
            [
                FlowChange::Ufrag("abcd".into()),
                FlowChange::Addr(a),
                FlowChange::UfragGone("abcd".into()),
                FlowChange::Ufrag("efgh".into()),
                FlowChange::AddrGone(a),
                FlowChange::UfragGone("efgh".into()),
            ]
        );
        assert_eq!(d.take_changes().count(), 0);
        d.learn_addr(a, 8, now);
        d.take_changes().for_each(drop);
        d.expire(now + ADDR_IDLE);
        assert_eq!(
            d.take_changes().collect::<Vec<_>>(),
            [FlowChange::AddrGone(a)]
        );
    }

    #[test]
    fn silent_addresses_are_forgotten_and_live_ones_kept() {
        let t0 = Instant::now();
        let mut d = Demux::<u64>::default();
        let old: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let new: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        d.learn_addr(old, 7, t0);
        d.learn_addr(new, 7, t0 + Duration::from_secs(10));
        // Traffic keeps the new one alive.
        d.by_addr(&new, t0 + Duration::from_secs(35));
        d.expire(t0 + ADDR_IDLE + Duration::from_secs(10));
        assert_eq!(d.addrs_of(7), vec![new]);
    }

    #[test]
    fn stun_username_finds_the_peer() {
        let mut d = Demux::<u64>::default();
        d.set_ufrag(7, "abcd");
        d.set_ufrag(8, "efgh");
        let msg = StunMessage::binding_request("efgh:xyz", TransId::new(), true, 0, 1, false);
        let mut buf = vec![0u8; 1500];
        // The demultiplexer only reads USERNAME; the peer checks the HMAC.
        let n = msg
            .to_bytes(Some(b"pass"), &mut buf, |_, _| [0; 20])
            .unwrap();
        assert!(is_stun(&buf[..n]));
        assert_eq!(d.by_stun(&buf[..n]), Some(8));
    }
}
