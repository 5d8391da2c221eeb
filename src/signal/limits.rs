//! Limits per client address: one address (or one IPv6 /64, what one
//! customer gets) cannot hold the signalling's sockets, flood joins, or
//! make the cluster look full by starting rooms.
//!
//! Before these, 2,000 idle WebSockets from one address were all taken,
//! and about 35 new rooms a second from one address made every new room
//! `overloaded` (each placement counts on its worker for a few seconds).
//! Now, per address:
//! - at most [`MAX_OPEN`] signalling sockets open at once;
//! - handshakes, joins and new rooms each at a rate (GCRA, `governor`),
//!   with a burst for what people do (a family opening a link together, a
//!   page that reconnects);
//! - new rooms in a burst of [`NEW_ROOMS_BURST`]: the rooms one address
//!   can have pending on the workers are bounded.
//!
//! Limits hold many people behind one address (a hospital's NAT) in
//! mind: they stop floods, not wards. Each also bounds an IPv6 site (a
//! /48) at [`PER_SITE`] times an address's share (`per_address.rs`).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::per_address::{key, site, Held, Hold, PER_SITE};

/// A signalling socket counted open for its address.
pub type OpenSocket = Hold;

/// Signalling sockets one address may hold open.
pub const MAX_OPEN: usize = 64;
/// A signalling socket is pinged this often, and closed once it answered
/// nothing (no frame, no pong) for [`IDLE`]: silent sockets do not pile
/// up. Browsers answer pings by themselves, and the page pings too.
pub const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(20);
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// WebSocket handshakes per address: a burst, then one a second.
const HANDSHAKES_BURST: u32 = 60;
const HANDSHAKES_PER_MINUTE: u32 = 60;
/// Joins per address: a burst, then one every two seconds.
const JOINS_BURST: u32 = 30;
const JOINS_PER_MINUTE: u32 = 30;
/// New rooms per address: a burst, then one every five seconds.
pub const NEW_ROOMS_BURST: u32 = 5;
const NEW_ROOMS_PER_MINUTE: u32 = 12;
/// Rooms one address may come to own (`signal::owner`): a burst, then one
/// every half hour, about 70 a day. New rooms alone would let one address
/// fill `serve`'s table of owners in a day, and so end owners for a month.
pub const CLAIMS_BURST: u32 = 20;
const CLAIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// What an address went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    #[error("too many connections from this network; close some tabs or wait a minute")]
    Open,
    #[error("too many connections from this network in a short time; wait a minute")]
    Handshakes,
    #[error("too many joins from this network in a short time; wait a minute")]
    Joins,
    #[error("too many new calls from this network in a short time; wait a minute")]
    NewRooms,
}

type Keyed<K, C> = RateLimiter<K, HashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One rate, per address and, [`PER_SITE`] times larger, per IPv6 site.
struct Rate<C: Clock> {
    addresses: Keyed<IpAddr, C>,
    sites: Keyed<Ipv6Addr, C>,
}

impl<C: Clock + Clone> Rate<C> {
    fn new(per_minute: u32, burst: u32, clock: &C) -> Self {
        let period = std::time::Duration::from_secs(60) / per_minute.max(1);
        Rate::every(period, burst, clock)
    }

    /// One more every `period`, after a `burst`.
    fn every(period: std::time::Duration, burst: u32, clock: &C) -> Self {
        let n = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = |period, burst| {
            Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(n(burst))
        };
        let sites = quota(
            period / PER_SITE as u32,
            burst.saturating_mul(PER_SITE as u32),
        );
        Rate {
            addresses: RateLimiter::hashmap_with_clock(quota(period, burst), clock.clone()),
            sites: RateLimiter::hashmap_with_clock(sites, clock.clone()),
        }
    }

    /// Whether `ip` may go on; counted against its address first, so an
    /// address already over its own rate takes nothing of its site's.
    fn check(&self, ip: IpAddr) -> bool {
        self.addresses.check_key(&key(ip)).is_ok()
            && site(ip).is_none_or(|s| self.sites.check_key(&s).is_ok())
    }

    fn forget_idle(&self) {
        self.addresses.retain_recent();
        self.sites.retain_recent();
    }

    fn remembered(&self) -> usize {
        self.addresses.len() + self.sites.len()
    }
}

/// The limits of one signal server, by address.
pub struct AddressLimits<C: Clock = DefaultClock> {
    handshakes: Rate<C>,
    joins: Rate<C>,
    new_rooms: Rate<C>,
    claims: Rate<C>,
    open: Held,
}

impl Default for AddressLimits<DefaultClock> {
    fn default() -> Self {
        AddressLimits::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> AddressLimits<C> {
    pub fn with_clock(clock: C) -> Self {
        AddressLimits {
            handshakes: Rate::new(HANDSHAKES_PER_MINUTE, HANDSHAKES_BURST, &clock),
            joins: Rate::new(JOINS_PER_MINUTE, JOINS_BURST, &clock),
            new_rooms: Rate::new(NEW_ROOMS_PER_MINUTE, NEW_ROOMS_BURST, &clock),
            claims: Rate::every(CLAIM_EVERY, CLAIMS_BURST, &clock),
            open: Held::default(),
        }
    }

    /// A signalling socket from `ip`: the guard that counts it open until
    /// dropped, or why not.
    pub fn open(&self, ip: IpAddr) -> Result<OpenSocket, Limited> {
        let k = key(ip);
        if self.open.count(k) >= MAX_OPEN {
            return Err(Limited::Open);
        }
        if !self.handshakes.check(k) {
            return Err(Limited::Handshakes);
        }
        self.open.take(k, MAX_OPEN).ok_or(Limited::Open)
    }

    pub fn join(&self, ip: IpAddr) -> Result<(), Limited> {
        self.joins.check(ip).then_some(()).ok_or(Limited::Joins)
    }

    pub fn new_room(&self, ip: IpAddr) -> Result<(), Limited> {
        self.new_rooms
            .check(ip)
            .then_some(())
            .ok_or(Limited::NewRooms)
    }

    /// Whether `ip` may come to own one more room.
    pub fn claim(&self, ip: IpAddr) -> bool {
        self.claims.check(ip)
    }

    /// Forgets addresses whose limits are back to full, so that the
    /// tables do not grow with every address ever seen.
    pub fn forget_idle(&self) {
        self.handshakes.forget_idle();
        self.joins.forget_idle();
        self.new_rooms.forget_idle();
        self.claims.forget_idle();
    }

    /// Addresses and sites remembered (for tests and metrics).
    pub fn remembered(&self) -> usize {
        self.handshakes.remembered()
            + self.joins.remembered()
            + self.new_rooms.remembered()
            + self.claims.remembered()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn open_sockets_are_bounded_and_given_back() {
        let clock = FakeRelativeClock::default();
        let limits = AddressLimits::with_clock(clock.clone());
        let a = ip("192.0.2.1");
        // Opened slowly enough for the handshake rate: the count binds.
        let held: Vec<OpenSocket> = (0..MAX_OPEN)
            .map(|_| {
                clock.advance(Duration::from_secs(1));
                limits.open(a).unwrap()
            })
            .collect();
        clock.advance(Duration::from_secs(60));
        assert_eq!(limits.open(a).unwrap_err(), Limited::Open);
        // Another address is not concerned.
        assert!(limits.open(ip("192.0.2.2")).is_ok());
        drop(held);
        assert!(limits.open(a).is_ok());
    }

    #[test]
    fn handshakes_burst_then_one_a_second() {
        let clock = FakeRelativeClock::default();
        let limits = AddressLimits::with_clock(clock.clone());
        let a = ip("192.0.2.1");
        for _ in 0..HANDSHAKES_BURST {
            drop(limits.open(a).unwrap());
        }
        assert_eq!(limits.open(a).unwrap_err(), Limited::Handshakes);
        clock.advance(Duration::from_secs(1));
        assert!(limits.open(a).is_ok());
        assert_eq!(limits.open(a).unwrap_err(), Limited::Handshakes);
    }

    #[test]
    fn new_rooms_from_one_address_are_few_joins_many() {
        let clock = FakeRelativeClock::default();
        let limits = AddressLimits::with_clock(clock.clone());
        let a = ip("192.0.2.1");
        for _ in 0..NEW_ROOMS_BURST {
            assert!(limits.new_room(a).is_ok());
        }
        assert_eq!(limits.new_room(a), Err(Limited::NewRooms));
        assert!(limits.new_room(ip("192.0.2.2")).is_ok());
        clock.advance(Duration::from_secs(5));
        assert!(limits.new_room(a).is_ok());
        for _ in 0..JOINS_BURST {
            assert!(limits.join(a).is_ok());
        }
        assert_eq!(limits.join(a), Err(Limited::Joins));
    }

    #[test]
    fn a_site_makes_a_few_addresses_new_rooms_not_one_per_network() {
        let clock = FakeRelativeClock::default();
        let limits = AddressLimits::with_clock(clock.clone());
        // One /64 after another of a /48, each with its own burst: the
        // site's bound stops them after PER_SITE networks' worth.
        let made = (0..64u16)
            .flat_map(|net| {
                let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, net, 0, 0, 0, 1));
                (0..NEW_ROOMS_BURST).map(move |_| a)
            })
            .filter(|a| limits.new_room(*a).is_ok())
            .count();
        assert_eq!(made, NEW_ROOMS_BURST as usize * PER_SITE);
        // Another site, and an IPv4 address, are not concerned.
        assert!(limits.new_room(ip("2001:db8:a::1")).is_ok());
        assert!(limits.new_room(ip("192.0.2.1")).is_ok());
        // The site's rate comes back as time passes, four networks' worth.
        clock.advance(Duration::from_secs(5));
        let again = (0..8u16)
            .map(|net| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, 0x100 + net, 0, 0, 0, 1)))
            .filter(|a| limits.new_room(*a).is_ok())
            .count();
        assert_eq!(again, PER_SITE);
    }

    #[test]
    fn one_address_comes_to_own_few_rooms() {
        let clock = FakeRelativeClock::default();
        let limits = AddressLimits::with_clock(clock.clone());
        let a = ip("192.0.2.1");
        let owned = (0..100).filter(|_| limits.claim(a)).count();
        assert_eq!(owned, CLAIMS_BURST as usize);
        clock.advance(CLAIM_EVERY);
        assert!(limits.claim(a));
        assert!(!limits.claim(a));
        assert!(limits.claim(ip("192.0.2.2")), "another address");
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limits = AddressLimits::with_clock(clock.clone());
        for i in 0..100u8 {
            let _ = limits.join(IpAddr::from([10, 0, 0, i]));
        }
        assert!(limits.remembered() >= 100);
        clock.advance(Duration::from_secs(3600));
        limits.forget_idle();
        assert_eq!(limits.remembered(), 0);
    }
}
