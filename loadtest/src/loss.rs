//! Loss as a user sees it: every packet sent to a subscriber that never
//! reached it, a stream that stops or never starts included.
//!
//! Gaps between the packets a subscriber received say nothing of the ones
//! after its last, nor of a track it got nothing from: a meeting whose
//! worker died mid-run looked lossless that way. So publishers log when
//! they sent each packet, and a subscriber's expected count comes from
//! that log, not from what it happened to receive.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::media::Stamp;

/// A published track: (publisher's index, 0 audio / 1 video), as in a
/// [`Stamp`].
pub type TrackId = (u32, u8);

/// Packets sent in the last this many µs of a run are not expected: they
/// may still be in flight when subscribers stop listening. A packet later
/// than this is useless to a call anyway (a browser's jitter buffer holds
/// a few hundred ms at most), so one sent earlier and not there by the end
/// is lost.
pub const IN_FLIGHT_US: u64 = 300_000;

/// When each publisher sent each packet: a track's n-th entry is the send
/// time (µs since the generator's epoch) of its packet of sequence n.
/// Shared by every participant, so what a publisher sent is known even if
/// its task fails.
#[derive(Debug, Default)]
pub struct SendLog(Mutex<HashMap<TrackId, Vec<u64>>>);

impl SendLog {
    /// A packet sent. Publishers number each track's packets from 0.
    pub fn record(&self, s: &Stamp) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let times = log.entry((s.publisher, s.track)).or_default();
        debug_assert_eq!(times.len(), s.seq as usize, "sequences from 0, in order");
        times.push(s.sent_us);
    }

    /// The log so far.
    pub fn take(&self) -> SentTracks {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Send times of every track's packets, by sequence.
pub type SentTracks = HashMap<TrackId, Vec<u64>>;

/// Packets of one track a subscriber should have received, and how many of
/// those it did.
///
/// The rule: a subscriber is owed every packet sent from `from_us` (the
/// later of the measurement's start and the moment its connection was set
/// up: it cannot be charged for packets sent before it could receive them)
/// up to `cutoff_us` (the end of the run minus [`IN_FLIGHT_US`]). If it
/// received a packet sent before `from_us` (in flight when the measurement
/// began), it is owed from that one on. `sent_us` is the track's send log;
/// `received` the distinct sequences that arrived, in order.
pub fn track_loss(sent_us: &[u64], received: &[u32], from_us: u64, cutoff_us: u64) -> (u64, u64) {
    let first_sent = sent_us.partition_point(|t| *t < from_us);
    let start = received
        .first()
        .map_or(first_sent, |s| first_sent.min(*s as usize));
    let end = sent_us.partition_point(|t| *t <= cutoff_us);
    let expected = end.saturating_sub(start);
    let got = received
        .iter()
        .filter(|s| (start..end).contains(&(**s as usize)))
        .count();
    (expected as u64, got as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A track sent every 10 ms for a second: sequence n at n × 10 ms.
    fn sent() -> Vec<u64> {
        (0..100).map(|n| n * 10_000).collect()
    }

    #[test]
    fn a_stream_that_stops_halfway_loses_half() {
        let received: Vec<u32> = (0..50).collect();
        assert_eq!(track_loss(&sent(), &received, 0, 990_000), (100, 50));
    }

    #[test]
    fn late_subscribers_are_owed_only_what_followed() {
        // Set up at 500 ms and nothing received: the 50 packets from then.
        assert_eq!(track_loss(&sent(), &[], 500_000, 990_000), (50, 0));
        // Its first packet was sent a little before it was counted from.
        let received: Vec<u32> = (48..100).collect();
        assert_eq!(track_loss(&sent(), &received, 500_000, 990_000), (52, 52));
    }

    #[test]
    fn packets_still_in_flight_are_not_owed() {
        // The last 10 were sent after the cutoff: neither owed nor counted.
        let received: Vec<u32> = (0..95).collect();
        assert_eq!(track_loss(&sent(), &received, 0, 895_000), (90, 90));
    }

    #[test]
    fn the_log_keeps_each_tracks_send_times() {
        let log = SendLog::default();
        for seq in 0..3 {
            for track in [0, 1] {
                let sent_us = u64::from(seq) * 20;
                log.record(&Stamp {
                    publisher: 4,
                    track,
                    seq,
                    sent_us,
                });
            }
        }
        let t = log.take();
        assert_eq!(t[&(4, 0)], [0, 20, 40]);
        assert_eq!(t[&(4, 1)], [0, 20, 40]);
    }
}
