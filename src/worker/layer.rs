//! One layer of a published track: a simulcast encoding (by its `rid`), or
//! the whole track when it is sent in one size.
//!
//! Simulcast layers are listed smallest first, in the order of the
//! publisher's `a=simulcast` line (the client sends them so). Their sizes
//! are read from their keyframes and their rates measured as they arrive:
//! the allocator needs both, and neither is in the SDP.

use std::time::{Duration, Instant};

use str0m::media::Rid;

use super::bitrate::RateMeter;
use super::media_clock::MediaClock;
use super::throttle::Throttle;

/// How often one layer may be asked for a keyframe.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Rate assumed for layer `index` until it has been measured (or while it
/// is paused): roughly what browsers send for a quarter, a half and the
/// full size of a camera.
fn nominal_rate(index: usize) -> u64 {
    100_000 * 3u64.pow(index.min(4) as u32)
}

#[derive(Debug)]
pub struct Layer {
    pub rid: Option<Rid>,
    /// Wall clock of the packets, for the subscribers' sender reports.
    pub clock: MediaClock,
    pub keyframe: Throttle,
    pub meter: RateMeter,
    /// Width of its last keyframe, in pixels (0 until one arrived).
    pub width: u32,
    /// The publisher was told to stop sending it: nobody receives it.
    pub paused: bool,
    /// Since when no subscriber has wanted it (it is paused after a while).
    pub unwanted_since: Option<Instant>,
}

impl Layer {
    pub fn new(rid: Option<Rid>, clock_rate: u32) -> Self {
        Layer {
            rid,
            clock: MediaClock::new(clock_rate),
            keyframe: Throttle::new(KEYFRAME_INTERVAL),
            meter: RateMeter::default(),
            width: 0,
            paused: false,
            unwanted_since: None,
        }
    }

    /// What forwarding it costs a subscriber, bits per second.
    pub fn rate(&self, index: usize) -> u64 {
        self.meter.rate().unwrap_or_else(|| nominal_rate(index))
    }

    /// Whether a subscriber can be switched to it: it arrives, or it is
    /// paused by us and resumes when asked. A layer the publisher's browser
    /// stopped by itself (its uplink is weak) is not available.
    pub fn available(&self, now: Instant) -> bool {
        self.paused || self.meter.is_flowing(now)
    }
}
