//! Token bucket: a client may burst (joining sends a dozen candidates at
//! once; an ICE restart follows a first offer) but not flood. Used for
//! signalling messages and for offers reaching a media thread.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Holds `capacity` tokens, and gains one every `refill_every`.
    pub fn new(capacity: u32, refill_every: Duration, now: Instant) -> Self {
        TokenBucket {
            capacity: capacity as f64,
            per_second: 1.0 / refill_every.as_secs_f64().max(1e-9),
            tokens: capacity as f64,
            last: now,
        }
    }

    /// Whether a token is there, taking none: for what is charged only
    /// when it turns out wasted.
    pub fn has(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.tokens >= 1.0
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.has(now) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, Duration::from_millis(100), t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(120)));
        // Refill is capped at the capacity.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }
}
