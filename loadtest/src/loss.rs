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

/// In a run where people join all along (a surge), how long a subscriber
/// may wait for a track's first packet once both it and the track's
/// publisher are connected: its renegotiation, then a keyframe. A track
/// that has not come by then is owed from then on.
pub const SETUP_GRACE_US: u64 = 3_000_000;

/// Where a subscriber's debt of a track starts when it joined mid-run: the
/// send time of the earliest packet it received, or, if none came within
/// [`SETUP_GRACE_US`] of both ends being connected (`ready_us`, the
/// track's first packet), that moment. A stream that never starts is thus
/// all lost, not left out.
pub fn owed_from(sent_us: &[u64], first_received: Option<u32>, ready_us: u64) -> u64 {
    let deadline = sent_us
        .first()
        .map_or(u64::MAX, |t| (*t).max(ready_us))
        .saturating_add(SETUP_GRACE_US);
    first_received
        .and_then(|s| sent_us.get(s as usize))
        .map_or(deadline, |t| (*t).min(deadline))
}

/// One second of a run, by when its packets were sent: packets owed to
/// subscribers, how many arrived, and how late each of those was.
#[derive(Debug, Default, Clone)]
pub struct Second {
    pub expected: u64,
    pub received: u64,
    pub delays_us: Vec<u32>,
}

/// Adds what a subscriber was owed of a track from `from_us` to
/// `cutoff_us` to the seconds its packets were sent in (the second `n`
/// is `seconds[n]`, grown as needed). `received`: (sequence, delay in µs)
/// of what arrived, by sequence, each once. Returns the packets owed and
/// how many of them arrived.
pub fn add_by_second(
    sent_us: &[u64],
    received: &[(u32, u32)],
    from_us: u64,
    cutoff_us: u64,
    seconds: &mut Vec<Second>,
) -> (u64, u64) {
    let start = sent_us.partition_point(|t| *t < from_us);
    let end = sent_us.partition_point(|t| *t <= cutoff_us);
    if start >= end {
        return (0, 0);
    }
    let second = |t: u64| (t / 1_000_000) as usize;
    let last = second(sent_us[end - 1]);
    if seconds.len() <= last {
        seconds.resize(last + 1, Second::default());
    }
    for t in &sent_us[start..end] {
        seconds[second(*t)].expected += 1;
    }
    let mut got = 0;
    for (seq, delay) in received {
        if let Some(t) = sent_us[start..end].get((*seq as usize).wrapping_sub(start)) {
            let s = &mut seconds[second(*t)];
            s.received += 1;
            s.delays_us.push(*delay);
            got += 1;
        }
    }
    ((end - start) as u64, got)
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
    #[test]
    fn a_late_subscriber_is_owed_from_its_first_packet() {
        // Connected at 300 ms, first packet of sequence 40 (sent at 400 ms).
        assert_eq!(owed_from(&sent(), Some(40), 300_000), 400_000);
        // A publisher that starts after the subscriber: from its start.
        let late: Vec<u64> = (0..100).map(|n| 2_000_000 + n * 10_000).collect();
        assert_eq!(owed_from(&late, Some(3), 0), 2_030_000);
    }

    #[test]
    fn a_track_that_never_comes_is_owed_after_the_grace() {
        assert_eq!(owed_from(&sent(), None, 300_000), 300_000 + SETUP_GRACE_US);
        // Its first packet came later than the grace: owed from the grace.
        let long: Vec<u64> = (0..1000).map(|n| n * 10_000).collect();
        assert_eq!(owed_from(&long, Some(900), 0), SETUP_GRACE_US);
        // A track never sent is owed nothing.
        assert_eq!(owed_from(&[], None, 0), u64::MAX);
    }

    #[test]
    fn seconds_count_by_send_time() {
        // 3 s of packets every 10 ms; received all of the first second,
        // none of the second, every other one of the third.
        let sent: Vec<u64> = (0..300).map(|n| n * 10_000).collect();
        let received: Vec<(u32, u32)> = (0..100)
            .chain((200..300).step_by(2))
            .map(|s| (s, 5_000))
            .collect();
        let mut seconds = Vec::new();
        let total = add_by_second(&sent, &received, 0, 3_000_000, &mut seconds);
        assert_eq!(total, (300, 150));
        let counts: Vec<(u64, u64)> = seconds.iter().map(|s| (s.expected, s.received)).collect();
        assert_eq!(counts, [(100, 100), (100, 0), (100, 50)]);
        assert_eq!(seconds[2].delays_us.len(), 50);
        // Owed from 1.5 s: the first second is not counted again.
        let mut later = Vec::new();
        add_by_second(&sent, &received, 1_500_000, 3_000_000, &mut later);
        let counts: Vec<(u64, u64)> = later.iter().map(|s| (s.expected, s.received)).collect();
        assert_eq!(counts, [(0, 0), (50, 0), (100, 50)]);
    }
}
