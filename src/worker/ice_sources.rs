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

use std::net::SocketAddr;

/// Source addresses one ICE generation may bring to the agent.
pub const MAX_ICE_SOURCES: usize = 16;

/// The addresses taken in the current ICE generation.
#[derive(Debug, Default)]
pub struct IceSources {
    taken: Vec<SocketAddr>,
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

    /// An ICE restart: the agent forgot every remote candidate.
    pub fn restart(&mut self) {
        self.taken.clear();
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
        }
        s.restart();
        assert!(s.take(port(5000)));
        assert_eq!(s.len(), 1);
    }
}
