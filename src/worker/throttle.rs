//! Keyframe request throttling.
//!
//! Every new subscriber, every lost packet and every PLI from a receiver asks
//! the publisher for a keyframe. Keyframes are 5–10× the size of a delta
//! frame, so forwarding every request would flood the publisher's uplink on a
//! poor network. One request per interval per published track is enough:
//! the keyframe it produces serves every subscriber.

use std::time::{Duration, Instant};

/// Lets through at most one event per `interval`.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
        }
    }

    /// True if the event may pass at `now`; records it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        let ready = self.is_ready(now);
        if ready {
            self.last = Some(now);
        }
        ready
    }

    /// Whether an event would pass at `now`, without recording one.
    pub fn is_ready(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_millis(500));
        assert!(t.allow(t0));
        assert!(!t.allow(t0 + Duration::from_millis(100)));
        assert!(!t.allow(t0 + Duration::from_millis(499)));
        assert!(t.allow(t0 + Duration::from_millis(500)));
        assert!(!t.allow(t0 + Duration::from_millis(700)));
    }
}
