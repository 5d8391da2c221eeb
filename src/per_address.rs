//! Counting by client address, as every limit per address does: an IPv4
//! address as is, an IPv6 address by its /64 (what one customer gets), so
//! that one network is one address however many it has.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// An address as limits count it: IPv4 as is, IPv6 by its /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// How many of something each address (as [`key`] counts it) holds at
/// once, each counted until its [`Hold`] is dropped: signalling sockets
/// open, connections opening.
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Held {
    /// What `ip`'s address holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&key(ip)).copied().unwrap_or(0)
    }

    /// One more for `ip`'s address, unless it holds `max` already.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<Hold> {
        let k = key(ip);
        let mut held = self.lock();
        let n = held.entry(k).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Hold {
            key: k,
            held: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One thing counted for its address until dropped.
#[derive(Debug)]
pub struct Hold {
    key: IpAddr,
    held: Held,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = self.held.lock();
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_network_is_one_address() {
        assert_eq!(
            key(ip("2001:db8:1:2:aaaa::1")),
            key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(key(ip("2001:db8:1:2::1")), key(ip("2001:db8:1:3::1")));
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(key(ip("192.0.2.7")), key(ip("192.0.2.8")));
    }

    #[test]
    fn holds_are_bounded_per_address_and_given_back() {
        let held = Held::default();
        let a = ip("2001:db8:1:2::1");
        let holds: Vec<Hold> = (0..3).filter_map(|_| held.take(a, 3)).collect();
        assert_eq!(holds.len(), 3);
        assert!(
            held.take(ip("2001:db8:1:2::9"), 3).is_none(),
            "the same /64"
        );
        assert!(held.take(ip("192.0.2.1"), 3).is_some(), "another address");
        drop(holds);
        assert_eq!(held.count(a), 0);
        assert!(held.take(a, 3).is_some());
    }
}
