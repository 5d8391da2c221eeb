//! What subscribers measure: loss, forwarding delay and jitter per track.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::loss::{track_loss, SentTracks, TrackId};
use crate::media::Stamp;

/// One subscriber's view of every track it receives.
#[derive(Debug, Default)]
pub struct Receiver {
    /// (sequence, delay in µs) of what arrived per track, as it came
    /// (loss is counted from them against what was sent, see
    /// [`crate::loss`]).
    arrivals: HashMap<TrackId, Vec<(u32, u32)>>,
    /// Forwarding delays in µs (sampled: every packet up to a cap).
    pub delays_us: Vec<u32>,
    /// RFC 3550 interarrival jitter, summed over tracks at the end.
    jitter_us: HashMap<TrackId, (i64, f64)>,
}

const MAX_DELAY_SAMPLES: usize = 200_000;

impl Receiver {
    pub fn on_packet(&mut self, s: &Stamp, now_us: u64) {
        let delay = now_us.saturating_sub(s.sent_us).min(u32::MAX as u64) as u32;
        self.arrivals
            .entry((s.publisher, s.track))
            .or_default()
            .push((s.seq, delay));
        if self.delays_us.len() < MAX_DELAY_SAMPLES {
            self.delays_us.push(delay);
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

    /// What this subscriber got of the tracks it should receive
    /// (`expect`), against what their publishers sent: owed from `from_us`
    /// to `cutoff_us` as [`track_loss`] says. A track it was owed packets
    /// of and got none from is silent.
    pub fn summary(
        &self,
        expect: &[TrackId],
        sent: &SentTracks,
        from_us: u64,
        cutoff_us: u64,
    ) -> RxSummary {
        let mut s = RxSummary::default();
        for track in expect {
            let seqs: Vec<u32> = self.arrivals(*track).iter().map(|a| a.0).collect();
            let times = sent.get(track).map_or(&[][..], Vec::as_slice);
            let (expected, received) = track_loss(times, &seqs, from_us, cutoff_us);
            if expected == 0 {
                continue;
            }
            s.tracks += 1;
            s.expected += expected;
            s.received += received;
            s.silent += usize::from(received == 0);
        }
        let jitter = if self.jitter_us.is_empty() {
            0.0
        } else {
            self.jitter_us.values().map(|j| j.1).sum::<f64>() / self.jitter_us.len() as f64
        };
        RxSummary {
            jitter_us: jitter,
            ..s
        }
    }
}

impl Receiver {
    /// What arrived of `track`: (sequence, delay in µs), by sequence, each
    /// packet once (a retransmission arrives twice; the user got the
    /// packet once, when it first came).
    pub fn arrivals(&self, track: TrackId) -> Vec<(u32, u32)> {
        let mut a = self.arrivals.get(&track).cloned().unwrap_or_default();
        a.sort_by_key(|a| a.0);
        a.dedup_by_key(|a| a.0);
        a
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RxSummary {
    /// Tracks it was owed packets of.
    pub tracks: usize,
    /// Of those, tracks it received nothing from.
    pub silent: usize,
    /// Packets owed, and how many of them arrived.
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

    fn stamp(track: u8, seq: u32, sent_us: u64) -> Stamp {
        Stamp {
            publisher: 1,
            track,
            seq,
            sent_us,
        }
    }

    /// Publisher 1 sent 100 packets on each of its two tracks, one every
    /// 10 ms; the run ended at 1 s.
    fn sent() -> SentTracks {
        let times: Vec<u64> = (0..100).map(|n| n * 10_000).collect();
        [((1, 0), times.clone()), ((1, 1), times)].into()
    }

    const END_US: u64 = 1_000_000;

    fn summary(r: &Receiver) -> RxSummary {
        r.summary(&[(1, 0), (1, 1)], &sent(), 0, END_US - 10_000)
    }

    #[test]
    fn loss_counts_the_gaps() {
        let mut r = Receiver::default();
        for track in [0, 1] {
            for seq in (0..100).filter(|s| s % 10 != 3) {
                r.on_packet(&stamp(track, seq, u64::from(seq) * 10_000), 0);
            }
        }
        let s = summary(&r);
        assert_eq!(
            (s.tracks, s.silent, s.expected, s.received),
            (2, 0, 200, 180)
        );
    }

    #[test]
    fn a_clean_run_loses_nothing() {
        let mut r = Receiver::default();
        for track in [0, 1] {
            for seq in 0..100 {
                r.on_packet(&stamp(track, seq, 0), 0);
            }
        }
        // A retransmitted packet is not received twice.
        r.on_packet(&stamp(1, 42, 0), 0);
        let s = summary(&r);
        assert_eq!((s.expected, s.received), (200, 200));
    }

    #[test]
    fn a_stream_that_stops_halfway_loses_half() {
        let mut r = Receiver::default();
        for track in [0, 1] {
            for seq in 0..50 {
                r.on_packet(&stamp(track, seq, 0), 0);
            }
        }
        let s = summary(&r);
        assert_eq!((s.expected, s.received, s.silent), (200, 100, 0));
    }

    #[test]
    fn a_track_that_never_came_is_all_lost() {
        let mut r = Receiver::default();
        for seq in 0..100 {
            r.on_packet(&stamp(0, seq, 0), 0);
        }
        let s = summary(&r);
        assert_eq!(
            (s.tracks, s.silent, s.expected, s.received),
            (2, 1, 200, 100)
        );
        // Nothing at all: everything lost.
        let s = summary(&Receiver::default());
        assert_eq!((s.silent, s.expected, s.received), (2, 200, 0));
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.5), 51.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
    }
}
