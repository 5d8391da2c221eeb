//! The source addresses a participant's ICE agent has been given.
//!
//! str0m's ICE agent makes each new source address of an authenticated
//! binding request a peer-reflexive candidate with a pair that it checks,
//! and keeps both until the next ICE restart. A participant sending valid
//! requests with its own credentials from a new port each time grew its
//! agent without end: 2,000 ports stalled the media thread for everyone on
//! it (the victim meeting lost 36 %, p99 6.5 s, +40 MB). The endpoint asks
//! here before a new address reaches the agent, so an agent holds at most
//! [`MAX_ICE_SOURCES`] addresses per ICE generation.
//!
//! A real client needs far fewer: one per local candidate of its browser
//! (a host address per interface and family, a server-reflexive one) and
//! one per NAT rebinding. A client that rebinds more often than that in
//! one generation stops being heard from new addresses, its connection is
//! lost, and it restarts ICE, as it does after a network move: the count
//! starts again with the new credentials.
//!
//! Candidates a client trickles are kept by the agent until the next ICE
//! restart too, each paired with the server's: they are bounded apart
//! ([`MAX_TRICKLED`] per generation), and more generous, since a browser
//! on a laptop with several interfaces trickles a host candidate per
//! interface, family and transport before any server-reflexive or relayed
//! one, and an ICE-lite server needs none of them to answer its checks.

use std::net::SocketAddr;

/// Source addresses one ICE generation may bring to the agent.
pub const MAX_ICE_SOURCES: usize = 16;

/// Candidates one ICE generation may trickle to the agent.
pub const MAX_TRICKLED: usize = 64;

/// The addresses taken in the current ICE generation.
#[derive(Debug, Default)]
pub struct IceSources {
    taken: Vec<SocketAddr>,
    /// The candidates the client trickled or listed in its offers and
    /// answers, as str0m writes them.
    trickled: Vec<String>,
}

impl IceSources {
    /// Whether the agent may be given `addr`: one it already has, or a new
    /// one while the generation has room (it is counted then).
    pub fn take(&mut self, addr: SocketAddr) -> bool {
        if self.taken.contains(&addr) {
            return true;
        }
        if self.taken.len() >= MAX_ICE_SOURCES {
            return false;
        }
        self.taken.push(addr);
        true
    }

    /// Whether the agent may be given `candidate` (as str0m writes it):
    /// one it already has (a renegotiation lists the same again), or a
    /// new one while the generation has room (it is counted then). str0m
    /// keeps a candidate apart from another at the same address when its
    /// kind, base or related address differs: those count apart here too.
    pub fn trickle(&mut self, candidate: &str) -> bool {
        if self.trickled.iter().any(|c| c == candidate) {
            return true;
        }
        if self.trickled.len() >= MAX_TRICKLED {
            return false;
        }
        self.trickled.push(candidate.to_string());
        true
    }

    /// Whether an offer listing these (distinct) candidates fits, in this
    /// generation or, for an ICE restart, in a new one.
    pub fn may_offer(&self, candidates: &[String], restart: bool) -> bool {
        if restart {
            return candidates.len() <= MAX_TRICKLED;
        }
        let new = candidates
            .iter()
            .filter(|c| !self.trickled.contains(c))
            .count();
        self.trickled.len() + new <= MAX_TRICKLED
    }

    /// An ICE restart: the agent forgot every remote candidate.
    pub fn restart(&mut self) {
        self.taken.clear();
        self.trickled.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.taken.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(p: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], p))
    }

    fn cand(p: u16) -> String {
        format!("candidate:1 1 udp 2130706431 192.0.2.7 {p} typ host")
    }

    #[test]
    fn new_addresses_stop_at_the_bound_known_ones_stay() {
        let mut s = IceSources::default();
        for p in 0..MAX_ICE_SOURCES as u16 {
            assert!(s.take(port(p)));
        }
        assert!(!s.take(port(9999)), "one more new address");
        assert!(s.take(port(3)), "a known one is still heard");
        assert_eq!(s.len(), MAX_ICE_SOURCES);
    }

    #[test]
    fn an_ice_restart_starts_the_count_again() {
        let mut s = IceSources::default();
        for p in 0..100 {
            s.take(port(p));
            s.trickle(&cand(p));
        }
        assert!(!s.trickle(&cand(4000)));
        s.restart();
        assert!(s.take(port(5000)));
        assert_eq!(s.len(), 1);
        assert!(s.trickle(&cand(4000)));
    }

    #[test]
    fn trickled_candidates_stop_at_their_own_bound() {
        let mut s = IceSources::default();
        for p in 0..MAX_TRICKLED as u16 {
            assert!(s.trickle(&cand(p)));
        }
        assert!(!s.trickle(&cand(9999)), "one more candidate");
        assert!(s.trickle(&cand(3)), "one it has costs nothing");
        assert!(s.take(port(9999)), "sources are counted apart");
    }

    #[test]
    fn offers_fit_in_the_generation_or_in_a_new_one() {
        let mut s = IceSources::default();
        let ports = |r: std::ops::Range<u16>| r.map(cand).collect::<Vec<_>>();
        for p in 0..60 {
            s.trickle(&cand(p));
        }
        assert!(s.may_offer(&ports(50..64), false), "4 new, 64 in all");
        assert!(!s.may_offer(&ports(50..65), false), "5 new, 65 in all");
        assert!(s.may_offer(&ports(100..164), true), "a restart starts anew");
        assert!(!s.may_offer(&ports(100..165), true));
    }
}
