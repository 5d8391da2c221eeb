//! Which layer of one published video one subscriber receives, and the
//! switch from one layer to another (or to none, and back).
//!
//! A subscriber only ever starts on a keyframe of the layer it moves to,
//! or it has nothing to decode the next frames against. Until that
//! keyframe comes, it keeps the layer it had. At the switch the outgoing
//! numbering continues where it stopped: sequence numbers without a gap
//! (a gap would be NACKed), the timestamp advanced by the time that passed
//! since the last packet (never back in time), and VP8 picture ids one
//! after the last. So the receiver sees one stream whose picture changes
//! size, which every decoder handles.

use std::time::Instant;

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

use super::rewrite::{Rewriter, Rewritten};
use super::vp8::PictureIds;

/// RTP ticks per second of video.
const VIDEO_CLOCK: u64 = 90_000;

#[derive(Debug, Clone)]
pub struct LayerSwitch {
    /// The layer forwarded now, if any.
    current: Option<usize>,
    /// The layer wanted: differs from `current` while waiting for its
    /// keyframe.
    target: Option<usize>,
    last_forwarded: Option<Instant>,
    rewriter: Rewriter,
    pictures: PictureIds,
}

/// One published packet, as the switch sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub layer: usize,
    /// It starts a keyframe (for audio: always, any packet may start).
    pub keyframe: bool,
    pub seq: u64,
    pub timestamp: u32,
    /// VP8's payload descriptor, whose picture ids are kept continuous.
    pub vp8: Option<&'a Vp8Descriptor>,
}

/// What to write for one forwarded packet.
#[derive(Debug, Clone, Copy)]
pub struct Forward {
    pub rtp: Rewritten,
    pub vp8: Option<Vp8Patch>,
}

impl LayerSwitch {
    /// A new outgoing stream on layer `target`. It starts at once, before
    /// a keyframe: the receiver has seen nothing yet, its decoder waits for
    /// the keyframe asked for it, and a stream that is not VP8 at all (the
    /// load generator's) is forwarded too.
    pub fn new(rewriter: Rewriter, target: Option<usize>) -> Self {
        LayerSwitch {
            current: target,
            target,
            last_forwarded: None,
            rewriter,
            pictures: PictureIds::default(),
        }
    }

    pub fn current(&self) -> Option<usize> {
        self.current
    }

    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// The layer waiting for a keyframe, if a switch is under way.
    pub fn waiting(&self) -> Option<usize> {
        self.target.filter(|t| self.current != Some(*t))
    }

    /// Aims at layer `target` (`None`: forward nothing, at once). Returns
    /// whether that needs a keyframe of the new layer.
    pub fn set_target(&mut self, target: Option<usize>) -> bool {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
        self.waiting().is_some()
    }

    /// Whether a packet is forwarded, and how it is written.
    pub fn forward(&mut self, pkt: &Incoming, now: Instant) -> Option<Forward> {
        if pkt.keyframe && self.waiting() == Some(pkt.layer) {
            let ticks = self.last_forwarded.map_or(0, |t| {
                now.saturating_duration_since(t).as_micros() as u64 * VIDEO_CLOCK / 1_000_000
            });
            // At least one tick: the new picture must not share the last
            // one's timestamp, or it is taken for a part of that frame.
            self.rewriter.switch_source(ticks.max(1) as u32);
            self.pictures.switch_source();
            self.current = Some(pkt.layer);
        }
        if self.current != Some(pkt.layer) {
            return None;
        }
        let rtp = self.rewriter.rewrite(pkt.seq, pkt.timestamp)?;
        self.last_forwarded = Some(now);
        let vp8 = pkt.vp8.and_then(|d| self.pictures.patch(d, rtp.seq));
        Some(Forward { rtp, vp8 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A VP8 packet of a browser's layer: picture id, and whether it
    /// starts a keyframe.
    fn vp8(pid: u16, key: bool) -> Vec<u8> {
        let header = if key { 0x9c } else { 0x9d };
        vec![
            0x90,
            0xe0,
            0x80 | (pid >> 8) as u8,
            pid as u8,
            3,
            0x20,
            header,
        ]
    }

    /// Offers a VP8 packet of `layer` (picture id `pid`) at `ms`.
    fn send(
        s: &mut LayerSwitch,
        layer: usize,
        key: bool,
        seq: u64,
        timestamp: u32,
        pid: u16,
        at: Instant,
    ) -> Option<Forward> {
        let payload = vp8(pid, key);
        let desc = Vp8Descriptor::parse(&payload).unwrap();
        let pkt = Incoming {
            layer,
            keyframe: key,
            seq,
            timestamp,
            vp8: Some(&desc),
        };
        s.forward(&pkt, at)
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_and_numbering_continues() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = LayerSwitch::new(Rewriter::new(100, 1000), None);
        assert!(s.set_target(Some(1)));
        // Layer 0 is not what it aims at; layer 1's delta frames cannot start it.
        assert!(send(&mut s, 0, true, 10, 500, 7, at(0)).is_none());
        assert!(send(&mut s, 1, false, 5000, 900_000, 40, at(0)).is_none());
        let first = send(&mut s, 1, true, 5001, 903_000, 41, at(10)).unwrap();
        assert_eq!((first.rtp.seq, first.rtp.timestamp), (100, 1000));
        let last = send(&mut s, 1, false, 5002, 906_000, 42, at(40)).unwrap();

        // Down to layer 0: layer 1 keeps flowing until layer 0's keyframe.
        assert!(s.set_target(Some(0)), "a keyframe is needed");
        assert!(send(&mut s, 0, false, 70, 100, 900, at(50)).is_none());
        let more = send(&mut s, 1, false, 5003, 909_000, 43, at(70)).unwrap();
        assert_eq!(more.rtp.seq, last.rtp.seq + 1);
        let key = send(&mut s, 0, true, 71, 3100, 901, at(100)).unwrap();
        assert_eq!(
            key.rtp.seq,
            more.rtp.seq + 1,
            "no gap the receiver would NACK"
        );
        assert_eq!(
            key.rtp.timestamp,
            more.rtp.timestamp + 2700,
            "30 ms later at 90 kHz"
        );
        assert!(key.vp8.is_some(), "the picture id is rewritten: 901 → 44");
        assert_eq!(s.current(), Some(0));
        assert!(send(&mut s, 1, false, 5004, 912_000, 44, at(110)).is_none());

        // Nothing, then back after 2 s: the timestamp moves by the pause.
        s.set_target(None);
        assert!(send(&mut s, 0, true, 72, 6100, 902, at(120)).is_none());
        assert!(s.set_target(Some(0)));
        let back = send(&mut s, 0, true, 140, 180_000, 960, at(2100)).unwrap();
        assert_eq!(back.rtp.seq, key.rtp.seq + 1);
        assert_eq!(back.rtp.timestamp, key.rtp.timestamp + 180_000);
        assert!(!s.set_target(Some(0)), "already there");
    }

    #[test]
    fn audio_and_single_layer_video_start_at_once() {
        let t0 = Instant::now();
        let mut s = LayerSwitch::new(Rewriter::new(1, 0), Some(0));
        let pkt = |seq, timestamp| Incoming {
            layer: 0,
            keyframe: false,
            seq,
            timestamp,
            vp8: None,
        };
        let a = s.forward(&pkt(10, 960), t0).unwrap();
        assert!(a.vp8.is_none());
        assert_eq!(
            s.forward(&pkt(11, 1920), t0).unwrap().rtp.seq,
            a.rtp.seq + 1
        );
    }
}
