//! What subscribers measure: loss, forwarding delay and jitter per track.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::media::Stamp;

#[derive(Debug, Default)]
struct TrackRx {
    first: u32,
    highest: u32,
    received: u64,
}

/// One subscriber's view of every track it receives.
#[derive(Debug, Default)]
pub struct Receiver {
    tracks: HashMap<(u32, u8), TrackRx>,
    /// Forwarding delays in µs (sampled: every packet up to a cap).
    pub delays_us: Vec<u32>,
    /// RFC 3550 interarrival jitter, summed over tracks at the end.
    jitter_us: HashMap<(u32, u8), (i64, f64)>,
}

const MAX_DELAY_SAMPLES: usize = 200_000;

impl Receiver {
    pub fn on_packet(&mut self, s: &Stamp, now_us: u64) {
        let t = self
            .tracks
            .entry((s.publisher, s.track))
            .or_insert(TrackRx {
                first: s.seq,
                highest: s.seq,
                received: 0,
            });
        t.received += 1;
        if s.seq > t.highest {
            t.highest = s.seq;
        }
        if s.seq < t.first {
            t.first = s.seq;
        }
        let delay = now_us.saturating_sub(s.sent_us);
        if self.delays_us.len() < MAX_DELAY_SAMPLES {
            self.delays_us.push(delay.min(u32::MAX as u64) as u32);
        }
        let transit = now_us as i64 - s.sent_us as i64;
        let j = self
            .jitter_us
            .entry((s.publisher, s.track))
            .or_insert((transit, 0.0));
        let d = (transit - j.0).abs() as f64;
        j.1 += (d - j.1) / 16.0;
        j.0 = transit;
    }

    pub fn summary(&self) -> RxSummary {
        let mut expected = 0;
        let mut received = 0;
        for t in self.tracks.values() {
            expected += u64::from(t.highest - t.first) + 1;
            received += t.received;
        }
        let jitter = if self.jitter_us.is_empty() {
            0.0
        } else {
            self.jitter_us.values().map(|j| j.1).sum::<f64>() / self.jitter_us.len() as f64
        };
        RxSummary {
            tracks: self.tracks.len(),
            expected,
            received,
            jitter_us: jitter,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RxSummary {
    pub tracks: usize,
    pub expected: u64,
    pub received: u64,
    pub jitter_us: f64,
}

/// Percentile of a sample (sorts it).
pub fn percentile(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u32, sent_us: u64) -> Stamp {
        Stamp {
            publisher: 1,
            track: 1,
            seq,
            sent_us,
        }
    }

    #[test]
    fn loss_counts_the_gaps() {
        let mut r = Receiver::default();
        for seq in [10, 11, 13, 14] {
            r.on_packet(&stamp(seq, 0), 500);
        }
        let s = r.summary();
        assert_eq!((s.expected, s.received), (5, 4));
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.5), 51.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
    }
}
