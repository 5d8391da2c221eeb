//! Whether one subscriber receives one video track now: the gate last-N
//! closes and opens (later, simulcast will switch layers the same way).
//!
//! A gate opens only on a keyframe, so the receiver never gets frames it
//! cannot decode; and when it opens, the outgoing numbering continues where
//! it stopped, with the timestamp advanced by the time the gate was shut,
//! so the receiver sees neither a gap of lost packets nor a jump back in
//! time.

use std::time::Instant;

use super::rewrite::Rewriter;

/// RTP ticks per second of video.
const VIDEO_CLOCK: u64 = 90_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gate {
    #[default]
    Open,
    Closed {
        since: Instant,
    },
    /// Asked to open: waiting for a keyframe (one was requested).
    Opening {
        since: Instant,
    },
}

impl Gate {
    /// Returns whether it was open (or opening) until now.
    pub fn close(&mut self, now: Instant) -> bool {
        match *self {
            Gate::Open => {
                *self = Gate::Closed { since: now };
                true
            }
            Gate::Opening { since } => {
                *self = Gate::Closed { since };
                true
            }
            Gate::Closed { .. } => false,
        }
    }

    /// Returns whether a keyframe must be asked for.
    pub fn open(&mut self) -> bool {
        match *self {
            Gate::Closed { since } => {
                *self = Gate::Opening { since };
                true
            }
            Gate::Opening { .. } => true,
            Gate::Open => false,
        }
    }

    /// Whether a packet passes; `keyframe` if it starts one.
    pub fn pass(&mut self, keyframe: bool, now: Instant, rewriter: &mut Rewriter) -> bool {
        match *self {
            Gate::Open => true,
            Gate::Closed { .. } => false,
            Gate::Opening { since } if keyframe => {
                let shut = now.saturating_duration_since(since);
                let ticks = (shut.as_micros() as u64 * VIDEO_CLOCK / 1_000_000) as u32;
                rewriter.switch_source(ticks);
                *self = Gate::Open;
                true
            }
            Gate::Opening { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_gate_reopens_on_a_keyframe_with_numbering_continued() {
        let t0 = Instant::now();
        let mut rw = Rewriter::new(100, 1000);
        let mut gate = Gate::default();
        let send = |gate: &mut Gate, rw: &mut Rewriter, seq: u64, ts: u32, key: bool, at| {
            gate.pass(key, t0 + Duration::from_millis(at), rw)
                .then(|| rw.rewrite(seq, ts).expect("mapped"))
        };
        let last = send(&mut gate, &mut rw, 5000, 900_000, false, 0).unwrap();
        gate.close(t0 + Duration::from_millis(10));
        assert_eq!(send(&mut gate, &mut rw, 5001, 903_000, false, 20), None);
        assert!(gate.open(), "a keyframe is asked for");
        // Deltas wait; the keyframe, 2 s after the gate shut, goes through.
        assert_eq!(send(&mut gate, &mut rw, 5060, 1_080_000, false, 2000), None);
        let key = send(&mut gate, &mut rw, 5061, 1_083_000, true, 2010).unwrap();
        assert_eq!(key.seq, last.seq + 1, "no gap the receiver would NACK");
        assert_eq!(
            key.timestamp,
            last.timestamp + 180_000,
            "2 s later at 90 kHz"
        );
        let next = send(&mut gate, &mut rw, 5062, 1_086_000, false, 2040).unwrap();
        assert_eq!(
            (next.seq, next.timestamp),
            (key.seq + 1, key.timestamp + 3000)
        );
        assert!(!gate.open(), "already open");
    }
}
