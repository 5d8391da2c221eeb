//! Demultiplexing: which peer a datagram on the shared UDP port is for.
//!
//! Known source addresses map straight to a peer (one hash lookup per
//! packet). A datagram from a new address is only accepted if it is a STUN
//! binding request whose USERNAME starts with one of our ICE ufrags; the
//! peer's `Rtc` then checks its MESSAGE-INTEGRITY before the address is
//! learned, so nobody can claim another peer's address.

use std::collections::HashMap;
use std::net::SocketAddr;

use str0m::ice::StunMessage;

/// Maps addresses and ufrags to `R`, whatever routes to a peer (the worker
/// uses room and participant, so one lookup finds both).
#[derive(Debug)]
pub struct Demux<R> {
    by_addr: HashMap<SocketAddr, R>,
    by_ufrag: HashMap<String, R>,
}

impl<R> Default for Demux<R> {
    fn default() -> Self {
        Demux {
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
        }
    }
}

impl<R: Copy + PartialEq> Demux<R> {
    pub fn by_addr(&self, addr: &SocketAddr) -> Option<R> {
        self.by_addr.get(addr).copied()
    }

    /// The peer a STUN datagram names in its USERNAME (`ours:theirs`).
    pub fn by_stun(&self, datagram: &[u8]) -> Option<R> {
        let msg = StunMessage::parse(datagram).ok()?;
        let (local, _remote) = msg.split_username()?;
        self.by_ufrag.get(local).copied()
    }

    pub fn learn_addr(&mut self, addr: SocketAddr, route: R) {
        self.by_addr.insert(addr, route);
    }

    pub fn set_ufrag(&mut self, route: R, ufrag: &str) {
        if self.by_ufrag.get(ufrag) == Some(&route) {
            return;
        }
        self.by_ufrag.retain(|_, r| *r != route);
        self.by_ufrag.insert(ufrag.to_string(), route);
    }

    pub fn forget(&mut self, route: R) {
        self.by_addr.retain(|_, r| *r != route);
        self.by_ufrag.retain(|_, r| *r != route);
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
        let mut d = Demux::<u64>::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        d.learn_addr(a, 7);
        d.set_ufrag(7, "abcd");
        assert_eq!(d.by_addr(&a), Some(7));
        d.forget(7);
        assert_eq!(d.by_addr(&a), None);
        assert!(d.by_ufrag.is_empty());
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
        assert_eq!(d.by_stun(&buf[..n]), Some(8));
    }
}
