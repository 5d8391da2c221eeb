//! Per-subscriber RTP sequence number and timestamp rewriting.
//!
//! Every outgoing stream of a subscriber has its own SSRC (str0m owns that),
//! but the sequence numbers and timestamps come from us. We cannot reuse the
//! publisher's: a subscriber who joins an hour into a call would start at a
//! rollover counter (ROC) other than 0, which SRTP cannot signal in-band, and a
//! source switch (publisher reconnect, later simulcast layers) must not make
//! the receiver see a jump. So each outlet keeps an offset, rebased whenever
//! its source changes.

/// Rewrites one source's (extended) sequence numbers and RTP timestamps into
/// one outgoing stream's numbering space.
#[derive(Debug, Clone)]
pub struct Rewriter {
    /// Offset applied to the input sequence: `out = in + seq_offset`.
    seq_offset: Option<i64>,
    /// Offset applied to the input timestamp (wrapping u32 arithmetic).
    ts_offset: u32,
    /// Highest output sequence number written so far.
    last_out_seq: Option<u64>,
    /// Timestamp of the packet with `last_out_seq`.
    last_out_ts: u32,
    /// First output sequence number; small so the SRTP ROC starts at 0.
    first_seq: u64,
    /// First output timestamp.
    first_ts: u32,
    /// How far the timestamp moves at the next source switch.
    ts_advance: u32,
}

/// What to write for one forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq: u64,
    pub timestamp: u32,
}

impl Rewriter {
    /// `first_seq` should be random below 2^15 (RFC 3550 §5.1 wants a random
    /// start; staying low keeps the ROC at 0 for the first wrap).
    ///
    /// `first_ts` is kept below 2^20 (12 s at 90 kHz): str0m sends a sender
    /// report with RTP time 0 before the first packet is written, and a
    /// receiver unwraps RTP times relative to it. A stream starting more
    /// than 2^31 away from 0 reads as going backwards, and Chrome drops its
    /// sender reports ("Newer RTCP SR report with older RTP timestamp")
    /// until it gives up and resets, losing audio/video sync meanwhile.
    pub fn new(first_seq: u16, first_ts: u32) -> Self {
        Rewriter {
            seq_offset: None,
            ts_offset: 0,
            last_out_seq: None,
            last_out_ts: 0,
            first_seq: u64::from(first_seq & 0x7fff),
            first_ts: first_ts & 0x000f_ffff,
            ts_advance: 3000,
        }
    }

    /// The source of this outlet changes, or it resumes after a pause: the
    /// next packet continues the output numbering, its timestamp
    /// `ts_advance` after the last one written (the time that passed).
    pub fn switch_source(&mut self, ts_advance: u32) {
        self.seq_offset = None;
        self.ts_advance = ts_advance;
    }

    /// Maps one input packet. Returns `None` for a packet from before the
    /// point where this outlet started (it would map below the first
    /// output sequence number and read as a huge backwards jump).
    pub fn rewrite(&mut self, in_seq: u64, in_ts: u32) -> Option<Rewritten> {
        let offset = match self.seq_offset {
            Some(o) => o,
            None => {
                // First packet of this outlet, or first after a source switch.
                let out_seq = self.last_out_seq.map_or(self.first_seq, |s| s + 1);
                let o = out_seq as i64 - in_seq as i64;
                self.seq_offset = Some(o);
                // Keep the timestamp continuous with what the receiver saw
                // last (a frame later, or the length of a pause).
                let out_ts = if self.last_out_seq.is_some() {
                    self.last_out_ts.wrapping_add(self.ts_advance)
                } else {
                    self.first_ts
                };
                self.ts_offset = out_ts.wrapping_sub(in_ts);
                o
            }
        };
        let out = in_seq as i64 + offset;
        if out < self.first_seq as i64 {
            return None;
        }
        let seq = out as u64;
        let timestamp = in_ts.wrapping_add(self.ts_offset);
        if self.last_out_seq.is_none_or(|last| seq > last) {
            self.last_out_seq = Some(seq);
            self.last_out_ts = timestamp;
        }
        Some(Rewritten { seq, timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_packet_maps_to_first_seq_and_keeps_gaps() {
        let mut r = Rewriter::new(1000, 5000);
        // A publisher far into its call: extended seq past several ROCs,
        // timestamp far from 0.
        let a = r.rewrite(5 * 65536 + 10, 3_000_000_000).unwrap();
        assert_eq!(
            a,
            Rewritten {
                seq: 1000,
                timestamp: 5000
            }
        );
        // A lost packet stays a gap, so the subscriber can NACK it.
        let b = r.rewrite(5 * 65536 + 12, 3_000_003_000).unwrap();
        assert_eq!(b.seq, 1002);
        assert_eq!(b.timestamp, 8000);
    }

    #[test]
    fn reordered_packets_keep_their_place() {
        let mut r = Rewriter::new(10, 0);
        r.rewrite(100, 0).unwrap();
        r.rewrite(102, 0).unwrap();
        assert_eq!(r.rewrite(101, 0).unwrap().seq, 11);
    }

    #[test]
    fn packets_older_than_the_start_are_dropped() {
        let mut r = Rewriter::new(0, 0);
        r.rewrite(500, 0).unwrap();
        assert_eq!(r.rewrite(499, 0), None);
    }

    #[test]
    fn first_seq_and_timestamp_stay_near_zero() {
        let mut r = Rewriter::new(0xffff, u32::MAX);
        let a = r.rewrite(1, 77).unwrap();
        assert_eq!(a.seq, 0x7fff);
        assert_eq!(a.timestamp, 0x000f_ffff);
    }

    #[test]
    fn timestamps_wrap() {
        let mut r = Rewriter::new(0, 0);
        r.rewrite(1, u32::MAX - 10).unwrap();
        assert_eq!(r.rewrite(2, 20).unwrap().timestamp, 31);
    }
}
