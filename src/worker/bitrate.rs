//! How fast one stream arrives, in bits per second on the wire.
//!
//! The allocator compares these rates with a subscriber's bandwidth
//! estimate, which counts whole datagrams: so each packet counts its
//! payload plus the headers around it. Rates are measured over one-second
//! windows and smoothed, so a keyframe (5–10× a delta frame) does not make
//! a layer look unaffordable for a second.

use std::time::{Duration, Instant};

/// RTP header with its extensions, SRTP tag, UDP and IPv4 headers.
pub const PACKET_OVERHEAD: u64 = 60;
const WINDOW: Duration = Duration::from_secs(1);
/// A stream silent this long is not arriving (its encoder stopped it).
const SILENCE: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Smoothed rate of the finished windows, bits per second.
    rate: Option<u64>,
    last_packet: Option<Instant>,
}

impl RateMeter {
    pub fn on_packet(&mut self, payload: usize, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            let bits = self.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            self.rate = Some(match self.rate {
                // A long gap is a restart, not a slow second.
                Some(r) if elapsed < 2 * WINDOW => (r + bits) / 2,
                _ => bits,
            });
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
        self.window_bytes += payload as u64 + PACKET_OVERHEAD;
        self.last_packet = Some(now);
    }

    /// The last measured rate, even of a stream that stopped since.
    pub fn rate(&self) -> Option<u64> {
        self.rate
    }

    /// Whether packets are arriving.
    pub fn is_flowing(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < SILENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_headers_and_smooths_a_keyframe() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 100 packets of 1,190 bytes a second: 1,250 bytes each on the wire.
        for i in 0..=100 {
            m.on_packet(1190, t0 + Duration::from_millis(i * 10));
        }
        assert_eq!(m.rate(), Some(1_000_000));
        // A second with a keyframe, three times the bytes.
        for i in 1..=100 {
            m.on_packet(3 * 1250 - 60, t0 + Duration::from_millis(1000 + i * 10));
        }
        m.on_packet(1190, t0 + Duration::from_millis(2010));
        assert!(m.rate().unwrap() < 2_100_000, "{:?}", m.rate());
        assert!(m.is_flowing(t0 + Duration::from_millis(3000)));
        assert!(!m.is_flowing(t0 + Duration::from_millis(3600)));
        assert!(m.rate().is_some(), "a stopped stream keeps its last rate");
    }
}
