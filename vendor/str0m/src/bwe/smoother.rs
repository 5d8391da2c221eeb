use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp_::Bitrate;

/// Time window for averaging estimate changes.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(3);

type TimeBitrate = (Instant, Bitrate);

const TOLERANCE: f64 = 0.05;

/// Smooths BWE estimates by averaging over a time window.
pub struct EstimateSmoother {
    estimates: VecDeque<TimeBitrate>,
    /// Sum of the bitrates in `estimates`, kept as they come and go: the
    /// average is then read without walking the window.
    total: f64,
    maybe_emit: bool,
    emitted: Option<Bitrate>,
}

impl EstimateSmoother {
    pub fn new() -> Self {
        Self {
            estimates: VecDeque::new(),
            total: 0.0,
            maybe_emit: false,
            emitted: None,
        }
    }

    /// Record a new estimate and update the smoothed average.
    pub fn record(&mut self, now: Instant, estimate: Bitrate) {
        // Did value change from previous?
        let do_update = self.estimates.back().map(|b| b.1) != Some(estimate);

        if do_update {
            self.maybe_emit = true;
            self.estimates.push_back((now, estimate));
            self.total += estimate.as_f64();
        }

        // Remove entries older than the window.
        while let Some((time, _)) = self.estimates.front() {
            if now.duration_since(*time) > ESTIMATE_WINDOW {
                // Keep last entry
                if self.estimates.len() == 1 {
                    break;
                }

                self.maybe_emit = true;
                if let Some((_, gone)) = self.estimates.pop_front() {
                    self.total -= gone.as_f64();
                }
                if let (1, Some((_, only))) = (self.estimates.len(), self.estimates.front()) {
                    // Start again from the exact value, so that rounding
                    // in the running sum never accumulates.
                    self.total = only.as_f64();
                }
            } else {
                break;
            }
        }
    }

    /// Poll for an estimate to emit. Returns Some only when there's a new value to emit.
    pub fn poll(&mut self) -> Option<Bitrate> {
        if !self.maybe_emit {
            return None;
        }

        if self.estimates.is_empty() {
            return None;
        }

        let avg = self.total / self.estimates.len() as f64;
        let rate: Bitrate = avg.into();

        // This forces emitting if we have the first ever value, or a last
        // where the rest of the window is gone (estimates stop coming).
        let force = self.estimates.len() == 1 && self.emitted != Some(rate);

        // Emit if we deviate enough from previously emitted.
        let deviate = if let Some(emitted) = self.emitted {
            !in_tolerance(emitted, rate)
        } else {
            true
        };

        self.maybe_emit = false;

        // Are we not to emit?
        if !force && !deviate {
            return None;
        }

        self.emitted = Some(rate);
        Some(rate)
    }
}

fn in_tolerance(b1: Bitrate, b2: Bitrate) -> bool {
    let min = b1 * (1.0 - TOLERANCE);
    let max = b1 * (1.0 + TOLERANCE);
    b2 > min && b2 < max
}

#[cfg(test)]
mod test {
    use super::*;

    fn average(s: &EstimateSmoother) -> f64 {
        let sum: f64 = s.estimates.iter().map(|b| b.1.as_f64()).sum();
        sum / s.estimates.len() as f64
    }

    #[test]
    fn running_sum_matches_the_window() {
        let mut s = EstimateSmoother::new();
        let start = Instant::now();
        for i in 0..10_000u64 {
            let now = start + Duration::from_millis(i * 7);
            let estimate = Bitrate::bps(300_000 + (i * 7919) % 2_000_000);
            s.record(now, estimate);
            let expected = average(&s);
            let running = s.total / s.estimates.len() as f64;
            assert!((running - expected).abs() <= expected * 1e-9);
            s.poll();
        }
    }

    #[test]
    fn a_lone_estimate_is_emitted_exactly() {
        let mut s = EstimateSmoother::new();
        let start = Instant::now();
        s.record(start, Bitrate::bps(1_000_000));
        s.record(start + Duration::from_secs(1), Bitrate::bps(2_000_000));
        s.poll();
        // Both older than the window: only the last is kept.
        s.record(start + Duration::from_secs(5), Bitrate::bps(2_000_000));
        assert_eq!(s.estimates.len(), 1);
        assert_eq!(s.poll(), Some(Bitrate::bps(2_000_000)));
    }
}
