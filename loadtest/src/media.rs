//! Synthetic media shaped like a real call, without codecs.
//!
//! Every payload starts with a stamp (who sent it, which track, its own
//! sequence number, when) so a subscriber measures loss, delay and jitter
//! whatever the SFU did to the RTP header.

use std::time::Duration;

pub const MAGIC: [u8; 4] = *b"PLT1";
pub const STAMP_LEN: usize = 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u32,
    /// 0 audio, 1 video.
    pub track: u8,
    pub seq: u32,
    /// Microseconds since the load generator's epoch.
    pub sent_us: u64,
}

impl Stamp {
    /// A payload of `size` bytes (at least the stamp) carrying this stamp.
    pub fn payload(&self, size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size.max(STAMP_LEN)];
        p[0..4].copy_from_slice(&MAGIC);
        p[4..8].copy_from_slice(&self.publisher.to_be_bytes());
        p[8] = self.track;
        p[9..13].copy_from_slice(&self.seq.to_be_bytes());
        p[13..21].copy_from_slice(&self.sent_us.to_be_bytes());
        p
    }

    pub fn parse(p: &[u8]) -> Option<Stamp> {
        if p.len() < STAMP_LEN || p[0..4] != MAGIC {
            return None;
        }
        Some(Stamp {
            publisher: u32::from_be_bytes(p[4..8].try_into().ok()?),
            track: p[8],
            seq: u32::from_be_bytes(p[9..13].try_into().ok()?),
            sent_us: u64::from_be_bytes(p[13..21].try_into().ok()?),
        })
    }
}

/// Largest RTP payload we send, like a browser's VP8 packetizer.
pub const MAX_PACKET: usize = 1100;

/// A video track: `fps` frames per second at `bitrate`, a keyframe (8× a
/// delta frame) every `keyframe_every`. Returns the packet sizes of each
/// frame when it is due.
#[derive(Debug, Clone)]
pub struct VideoShape {
    pub fps: u32,
    pub bitrate: u32,
    pub keyframe_every: Duration,
    frame: u64,
}

impl VideoShape {
    pub fn new(fps: u32, bitrate: u32, keyframe_every: Duration) -> Self {
        VideoShape {
            fps,
            bitrate,
            keyframe_every,
            frame: 0,
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }

    /// Packet sizes of the next frame.
    pub fn next_frame(&mut self) -> Vec<usize> {
        let per_key = (self.keyframe_every.as_secs_f64() * self.fps as f64).max(1.0) as u64;
        let is_key = self.frame.is_multiple_of(per_key);
        self.frame += 1;
        // Delta frames share the budget left by one 8× keyframe per period.
        let budget = self.bitrate as f64 / 8.0 / self.fps as f64;
        let delta = budget * per_key as f64 / (per_key as f64 + 7.0);
        let bytes = if is_key { delta * 8.0 } else { delta } as usize;
        let n = bytes.div_ceil(MAX_PACKET).max(1);
        let mut sizes = vec![MAX_PACKET; n];
        sizes[n - 1] = bytes - MAX_PACKET * (n - 1);
        sizes.iter_mut().for_each(|s| *s = (*s).max(STAMP_LEN));
        sizes
    }
}

/// Opus: one packet every 20 ms.
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
pub const AUDIO_SIZE: usize = 120;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let s = Stamp {
            publisher: 7,
            track: 1,
            seq: 99,
            sent_us: 123_456_789,
        };
        let p = s.payload(1100);
        assert_eq!(p.len(), 1100);
        assert_eq!(Stamp::parse(&p), Some(s));
        assert_eq!(Stamp::parse(&p[..10]), None);
    }

    #[test]
    fn video_shape_matches_the_bitrate_and_packet_size() {
        let mut v = VideoShape::new(30, 1_300_000, Duration::from_secs(2));
        let mut bytes = 0;
        let mut packets = 0;
        for _ in 0..60 {
            let f = v.next_frame();
            assert!(f.iter().all(|s| *s <= MAX_PACKET));
            bytes += f.iter().sum::<usize>();
            packets += f.len();
        }
        let bps = bytes as f64 * 8.0 / 2.0;
        assert!((1_200_000.0..1_400_000.0).contains(&bps), "{bps}");
        assert!(packets > 250, "{packets} packets in 2 s");
    }
}
