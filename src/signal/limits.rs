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
//! mind: they stop floods, not wards.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::per_address::{key, Held, Hold};

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

type PerAddress<C> =
    RateLimiter<IpAddr, HashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

fn quota(per_minute: u32, burst: u32) -> Quota {
    let n = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n(per_minute)).allow_burst(n(burst))
}

/// The limits of one signal server, by address.
pub struct AddressLimits<C: Clock = DefaultClock> {
    handshakes: PerAddress<C>,
    joins: PerAddress<C>,
    new_rooms: PerAddress<C>,
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
            handshakes: RateLimiter::hashmap_with_clock(
                quota(HANDSHAKES_PER_MINUTE, HANDSHAKES_BURST),
                clock.clone(),
            ),
            joins: RateLimiter::hashmap_with_clock(
                quota(JOINS_PER_MINUTE, JOINS_BURST),
                clock.clone(),
            ),
            new_rooms: RateLimiter::hashmap_with_clock(
                quota(NEW_ROOMS_PER_MINUTE, NEW_ROOMS_BURST),
                clock,
            ),
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
        if self.handshakes.check_key(&k).is_err() {
            return Err(Limited::Handshakes);
        }
        self.open.take(k, MAX_OPEN).ok_or(Limited::Open)
    }

    pub fn join(&self, ip: IpAddr) -> Result<(), Limited> {
        self.joins.check_key(&key(ip)).map_err(|_| Limited::Joins)
    }

    pub fn new_room(&self, ip: IpAddr) -> Result<(), Limited> {
        self.new_rooms
            .check_key(&key(ip))
            .map_err(|_| Limited::NewRooms)
    }

    /// Forgets addresses whose limits are back to full, so that the
    /// tables do not grow with every address ever seen.
    pub fn forget_idle(&self) {
        self.handshakes.retain_recent();
        self.joins.retain_recent();
        self.new_rooms.retain_recent();
    }

    /// Addresses remembered (for tests and metrics).
    pub fn remembered(&self) -> usize {
        self.handshakes.len() + self.joins.len() + self.new_rooms.len()
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
