//! How long each forwarded stream keeps its packets for repairs (str0m's
//! RTX cache), sized by the subscriber's round trip.
//!
//! A NACK is worth answering only while the repair can still be played: a
//! browser asks again every round trip or so and gives up on a packet its
//! jitter buffer has passed, so a few round trips of packets are all that
//! is ever resent. str0m keeps 3 s by default; every forwarded stream
//! holds its own copy of what it sent, so the cache is most of a stream's
//! memory. Each stream starts with [`INITIAL`] and follows four times its
//! receiver's measured round trip (from its receiver reports, the first
//! within a second or so), from [`FLOOR`] up to [`CEILING`]. Changing the
//! window empties the stream's cache (str0m makes a new one), so it grows
//! at once when the link needs more and shrinks only when it needs half
//! as much.

use std::collections::HashMap;
use std::time::Duration;

use str0m::media::Mid;

/// The least a stream keeps: a dozen round trips of a nearby link.
pub const FLOOR: Duration = Duration::from_millis(250);
/// A stream's window before its round trip is known: one repair on a
/// link of up to a 400 ms round trip (the first keyframes may need it).
pub const INITIAL: Duration = Duration::from_millis(500);
/// The most it keeps: three repairs of a 300 ms round trip.
pub const CEILING: Duration = Duration::from_secs(1);
/// Round trips covered.
const ROUND_TRIPS: u32 = 4;
/// Windows are multiples of this, so that a round trip that wavers does
/// not empty the cache each time.
const STEP: Duration = Duration::from_millis(125);

/// At most this many packets whatever the window (a screen share's burst).
pub const MAX_PACKETS: usize = 1024;
/// The share of retransmissions past which queued ones are dropped.
pub const RATIO_CAP: f32 = 0.15;

/// The window for a round trip: four of them, in steps, within bounds.
pub fn window_for(rtt: Duration) -> Duration {
    let wanted = rtt.saturating_mul(ROUND_TRIPS);
    let steps = wanted.as_nanos().div_ceil(STEP.as_nanos()) as u32;
    STEP.saturating_mul(steps).clamp(FLOOR, CEILING)
}

/// The window of each of one subscriber's forwarded streams, by m-line.
#[derive(Debug, Default)]
pub struct RepairWindows {
    by_mid: HashMap<Mid, Duration>,
}

impl RepairWindows {
    /// The window a stream uses now.
    pub fn window(&self, mid: Mid) -> Duration {
        self.by_mid.get(&mid).copied().unwrap_or(INITIAL)
    }

    /// A receiver report measured `rtt` on stream `mid`: the new window if
    /// it should change.
    pub fn on_rtt(&mut self, mid: Mid, rtt: Duration) -> Option<Duration> {
        let now = self.window(mid);
        let wanted = window_for(rtt);
        let change = wanted > now || wanted.saturating_mul(2) <= now;
        change.then(|| {
            self.by_mid.insert(mid, wanted);
            wanted
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_window_is_four_round_trips_within_bounds() {
        assert_eq!(window_for(MS(0)), FLOOR);
        assert_eq!(window_for(MS(20)), FLOOR);
        assert_eq!(window_for(MS(100)), MS(500));
        // 4 × 110 = 440, up to the next step.
        assert_eq!(window_for(MS(110)), MS(500));
        assert_eq!(window_for(MS(300)), CEILING);
        assert_eq!(window_for(Duration::from_secs(30)), CEILING);
    }

    #[test]
    fn a_window_grows_at_once_and_shrinks_only_by_half() {
        let mid = Mid::from("1");
        let mut w = RepairWindows::default();
        assert_eq!(w.window(mid), INITIAL);
        // A nearby link needs half as much: shrunk to the floor.
        assert_eq!(w.on_rtt(mid, MS(10)), Some(FLOOR));
        assert_eq!(w.on_rtt(mid, MS(20)), None);
        // A queue builds up on the link: more round trips' worth at once.
        assert_eq!(w.on_rtt(mid, MS(200)), Some(MS(875)));
        assert_eq!(w.window(mid), MS(875));
        // A little better: kept, the cache stays whole.
        assert_eq!(w.on_rtt(mid, MS(150)), None);
        // Half as much needed: shrunk.
        assert_eq!(w.on_rtt(mid, MS(30)), Some(FLOOR));
        // Other streams keep their own.
        assert_eq!(w.window(Mid::from("2")), INITIAL);
    }
}
