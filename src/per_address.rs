//! Counting by client address, as every limit per address does: an IPv4
//! address as is, an IPv6 address by its /64 (what one customer gets), so
//! that one network is one address however many it has.
//!
//! An IPv6 site (a /48, what one organisation gets) holds 65,536 such
//! networks: one attacker with a /48 would be 65,536 addresses to every
//! limit, and reach every global one. So each limit also bounds a site,
//! at [`PER_SITE`] times an address's share: a hospital whose wards are
//! /64s of one /48 still gets several wards' worth, and one site can
//! never reach a global limit sized for it. IPv4 addresses are scarce
//! enough that none is grouped: a /24 may be 256 households.

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

/// A site's share of every limit, in addresses' shares.
pub const PER_SITE: usize = 4;

/// The IPv6 site (/48) an address belongs to; none for IPv4.
pub fn site(ip: IpAddr) -> Option<Ipv6Addr> {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
        IpAddr::V4(_) => None,
    }
}

/// How many of something each address (as [`key`] counts it) holds at
/// once, each counted until its [`Hold`] is dropped: signalling sockets
/// open, connections opening. Each IPv6 site is bounded too
/// ([`PER_SITE`]).
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    addresses: HashMap<IpAddr, usize>,
    sites: HashMap<Ipv6Addr, usize>,
}

impl Held {
    /// What `ip`'s address holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.lock().addresses.get(&key(ip)).copied().unwrap_or(0)
    }

    /// One more for `ip`'s address, unless it holds `max` already or its
    /// site holds [`PER_SITE`] times that.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<Hold> {
        let (k, site) = (key(ip), site(ip));
        let mut held = self.lock();
        let site_full = site.is_some_and(|s| {
            held.sites.get(&s).copied().unwrap_or(0) >= max.saturating_mul(PER_SITE)
        });
        let n = held.addresses.entry(k).or_default();
        if *n >= max || site_full {
            if *n == 0 {
                held.addresses.remove(&k);
            }
            return None;
        }
        *n += 1;
        if let Some(s) = site {
            *held.sites.entry(s).or_default() += 1;
        }
        Some(Hold {
            key: k,
            site,
            held: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes one off `map[key]`, forgetting it at zero.
fn give_back<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// One thing counted for its address until dropped.
#[derive(Debug)]
pub struct Hold {
    key: IpAddr,
    site: Option<Ipv6Addr>,
    held: Held,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = self.held.lock();
        give_back(&mut held.addresses, &self.key);
        if let Some(s) = self.site {
            give_back(&mut held.sites, &s);
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

    #[test]
    fn a_site_holds_a_few_addresses_shares() {
        let held = Held::default();
        // Networks 0..PER_SITE of one /48 each take their whole share.
        let mut holds = Vec::new();
        for net in 0..PER_SITE as u16 {
            let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 7, net, 0, 0, 0, 1));
            holds.extend((0..3).filter_map(|_| held.take(a, 3)));
        }
        assert_eq!(holds.len(), 3 * PER_SITE);
        // A fresh /64 of the same site gets nothing: 65,536 of them
        // would otherwise be 65,536 shares.
        let next = ip("2001:db8:7:ff::1");
        assert!(held.take(next, 3).is_none());
        assert_eq!(held.count(next), 0, "a refusal is not remembered");
        // Another site, and IPv4, are not concerned.
        assert!(held.take(ip("2001:db8:8::1"), 3).is_some());
        assert!(held.take(ip("192.0.2.1"), 3).is_some());
        // Given back, the site's share is free again, and nothing stays
        // counted once nothing is held.
        drop(holds);
        let back = held.take(next, 3);
        assert!(back.is_some());
        drop(back);
        let counts = held.lock();
        assert!(counts.sites.is_empty() && counts.addresses.is_empty());
    }
}
