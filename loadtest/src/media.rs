//! Synthetic media shaped like a real call, without codecs.
//!
//! Every payload carries a stamp (who sent it, which track, its own
//! sequence number, when) so a subscriber measures loss, delay and jitter
//! whatever the SFU did to the RTP header. Video payloads start with a VP8
//! payload descriptor, and a frame's first packet with a VP8 frame header,
//! so an SFU that switches streams on keyframes finds them; the stamp
//! follows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const MAGIC: [u8; 4] = *b"PLT1";
pub const STAMP_LEN: usize = 21;
/// The most [`Stamp::video_payload`] writes before the stamp.
const VP8_HEADERS: usize = 11;

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

    /// A video payload of `size` bytes: VP8 descriptor, frame header on a
    /// frame's `first` packet (a keyframe's with its size), then the stamp.
    pub fn video_payload(&self, size: usize, first: bool, key: bool) -> Vec<u8> {
        // Descriptor: no extensions, S set on a frame's first packet,
        // partition 0 (RFC 7741).
        let mut p = vec![if first { 0x10 } else { 0x00 }];
        if first && key {
            // Frame tag (P = 0: keyframe, shown), start code, 640×480.
            p.extend([0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        } else if first {
            p.extend([0x11, 0, 0]);
        }
        p.extend(self.payload(size.saturating_sub(p.len())));
        p
    }

    /// The stamp of a payload: at its start, or behind the VP8 headers
    /// [`Stamp::video_payload`] writes.
    pub fn parse(p: &[u8]) -> Option<Stamp> {
        let at = (0..=VP8_HEADERS.min(p.len())).find(|i| p[*i..].starts_with(&MAGIC))?;
        let p = &p[at..];
        if p.len() < STAMP_LEN {
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
    /// A keyframe was asked for (a receiver's PLI or FIR).
    asked: bool,
}

impl VideoShape {
    pub fn new(fps: u32, bitrate: u32, keyframe_every: Duration) -> Self {
        VideoShape {
            fps,
            bitrate,
            keyframe_every,
            frame: 0,
            asked: false,
        }
    }

    /// Makes the next frame a keyframe, as a browser does when asked.
    pub fn ask_keyframe(&mut self) {
        self.asked = true;
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }

    /// Packet sizes of the next frame, and whether it is a keyframe.
    pub fn next_frame(&mut self) -> (Vec<usize>, bool) {
        let per_key = (self.keyframe_every.as_secs_f64() * self.fps as f64).max(1.0) as u64;
        let asked = std::mem::take(&mut self.asked);
        let is_key = self.frame.is_multiple_of(per_key) || asked;
        self.frame += 1;
        // Delta frames share the budget left by one 8× keyframe per period.
        let budget = self.bitrate as f64 / 8.0 / self.fps as f64;
        let delta = budget * per_key as f64 / (per_key as f64 + 7.0);
        let bytes = if is_key { delta * 8.0 } else { delta } as usize;
        let n = bytes.div_ceil(MAX_PACKET).max(1);
        let mut sizes = vec![MAX_PACKET; n];
        sizes[n - 1] = bytes - MAX_PACKET * (n - 1);
        sizes
            .iter_mut()
            .for_each(|s| *s = (*s).max(STAMP_LEN + VP8_HEADERS));
        (sizes, is_key)
    }
}

/// A browser's pacer for one video track: libwebrtc sends a frame's
/// packets at `factor` × the target bitrate (2.5 by default) rather than all
/// at once, so a keyframe reaches the SFU over tens of milliseconds. A
/// factor of 0 sends every frame in one burst.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Bytes per second; infinite when not pacing.
    rate: f64,
    queue: VecDeque<Paced>,
    next: Option<Instant>,
}

/// One video packet waiting in the pacer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paced {
    pub size: usize,
    /// First packet of its frame.
    pub first: bool,
    /// Last packet of its frame (the RTP marker).
    pub marker: bool,
    /// Its frame is a keyframe.
    pub key: bool,
    /// The frame's number (its RTP timestamp is derived from it).
    pub frame: u32,
}

impl Pacer {
    pub fn new(bitrate: u32, factor: f64) -> Self {
        let rate = if factor > 0.0 {
            bitrate as f64 / 8.0 * factor
        } else {
            f64::INFINITY
        };
        Pacer {
            rate,
            queue: VecDeque::new(),
            next: None,
        }
    }

    /// Queues a frame's packets.
    pub fn push_frame(&mut self, sizes: &[usize], frame: u32, key: bool, now: Instant) {
        let n = sizes.len();
        self.queue
            .extend(sizes.iter().enumerate().map(|(i, size)| Paced {
                size: *size,
                first: i == 0,
                marker: i + 1 == n,
                key,
                frame,
            }));
        if self.next.is_none() {
            self.next = Some(now);
        }
    }

    /// When the next packet is due, if one waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.next.filter(|_| !self.queue.is_empty())
    }

    /// The next packet if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Paced> {
        let due = self.next?;
        if due > now {
            return None;
        }
        let p = self.queue.pop_front()?;
        if self.queue.is_empty() {
            self.next = None;
        } else if self.rate.is_finite() {
            // From the due time, not from `now`: a late wake-up catches up
            // instead of slowing the track down.
            self.next = Some(due + Duration::from_secs_f64(p.size as f64 / self.rate));
        }
        Some(p)
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
    fn a_video_payload_is_vp8_to_an_sfu_and_keeps_its_stamp() {
        let s = Stamp {
            publisher: 3,
            track: 1,
            seq: 5,
            sent_us: 42,
        };
        let key = s.video_payload(1100, true, true);
        assert_eq!(key.len(), 1100);
        assert_eq!(Stamp::parse(&key), Some(s));
        // S bit, then a keyframe's tag (P = 0) and start code.
        assert_eq!(key[0], 0x10);
        assert_eq!(key[1] & 0x01, 0);
        assert_eq!(&key[4..7], &[0x9d, 0x01, 0x2a]);
        let delta = s.video_payload(300, true, false);
        assert_eq!(delta[1] & 0x01, 1, "a delta frame");
        assert_eq!(Stamp::parse(&delta), Some(s));
        let middle = s.video_payload(1100, false, false);
        assert_eq!(middle[0], 0x00);
        assert_eq!(Stamp::parse(&middle), Some(s));
    }

    #[test]
    fn the_pacer_spreads_a_keyframe_at_its_rate() {
        let t0 = Instant::now();
        // 1.3 Mbit/s × 2.5 = 406,250 bytes/s: 1,100 bytes every 2.7 ms.
        let mut p = Pacer::new(1_300_000, 2.5);
        p.push_frame(&[1100; 10], 7, false, t0);
        let first = p.pop_due(t0).unwrap();
        assert_eq!((first.size, first.marker, first.frame), (1100, false, 7));
        assert_eq!(p.pop_due(t0), None, "the second packet waits");
        let gap = p.next_due().unwrap() - t0;
        assert!((2600..2800).contains(&gap.as_micros()), "{gap:?}");
        // Woken late, it catches up: everything due by then comes out.
        let late = t0 + Duration::from_millis(30);
        let mut n = 1;
        let mut last = first;
        while let Some(x) = p.pop_due(late) {
            n += 1;
            last = x;
        }
        assert_eq!(n, 10);
        assert!(last.marker);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn without_pacing_a_frame_leaves_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1_300_000, 0.0);
        p.push_frame(&[1100, 1100, 400], 1, false, t0);
        assert_eq!(std::iter::from_fn(|| p.pop_due(t0)).count(), 3);
    }

    #[test]
    fn video_shape_matches_the_bitrate_and_packet_size() {
        let mut v = VideoShape::new(30, 1_300_000, Duration::from_secs(2));
        let mut bytes = 0;
        let mut packets = 0;
        for _ in 0..60 {
            let (f, _) = v.next_frame();
            assert!(f.iter().all(|s| *s <= MAX_PACKET));
            bytes += f.iter().sum::<usize>();
            packets += f.len();
        }
        let bps = bytes as f64 * 8.0 / 2.0;
        assert!((1_200_000.0..1_400_000.0).contains(&bps), "{bps}");
        assert!(packets > 250, "{packets} packets in 2 s");
    }
}
