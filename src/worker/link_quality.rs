//! How well each participant's own links carry the call, as the worker
//! sees them: the participant is told when its uplink or downlink is weak,
//! and the others see it on its tile.
//!
//! - **Uplink** (what the participant sends): the loss the worker's
//!   receiver reports measure, and whether its camera's layers arrive. A
//!   browser whose uplink estimate falls stops its larger simulcast layers
//!   by itself; a layer nobody paused that stops arriving says so.
//! - **Downlink** (what it receives): the loss its browser reports, and
//!   what the allocator could give it: videos kept below the size of their
//!   tile for want of bandwidth is fair. The estimate alone never makes it
//!   poor: str0m's estimate stays low on links that carry the smallest
//!   layers well (a 400 kbit/s link, 20 frames/s at 320 pixels, nothing
//!   lost, was called too weak for video when it did); loss is what says a
//!   link cannot carry what it gets.
//!
//! Levels move with hysteresis, sampled once a second: worse after
//! [`WORSE_AFTER`] samples in a row, better after [`BETTER_AFTER`], so a
//! burst of loss or a keyframe does not make an indicator blink.

use serde::{Deserialize, Serialize};

use crate::ids::ParticipantId;

/// Loss from which a link is fair, then poor (fractions of packets). Below
/// 2 % NACK repairs nearly everything unseen; above 10 % pictures freeze
/// and voices break up despite it.
const FAIR_LOSS: f32 = 0.02;
const POOR_LOSS: f32 = 0.10;
/// Samples in a row before a level changes.
pub const WORSE_AFTER: u32 = 3;
pub const BETTER_AFTER: u32 = 5;

/// A link's quality, from best to worst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    #[default]
    Good,
    Fair,
    Poor,
}

/// What one participant's links look like, as told to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkQuality {
    pub id: ParticipantId,
    pub uplink: Level,
    pub downlink: Level,
}

/// What a link's media looked like at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkSample {
    /// The worst loss reported since the last sample.
    pub loss: f32,
    /// Video sent smaller than it would be on a better link.
    pub limited: bool,
    /// Video cannot be carried at all.
    pub starved: bool,
}

impl LinkSample {
    pub fn level(&self) -> Level {
        if self.loss >= POOR_LOSS || self.starved {
            Level::Poor
        } else if self.loss >= FAIR_LOSS || self.limited {
            Level::Fair
        } else {
            Level::Good
        }
    }
}

/// A level that follows samples with hysteresis.
#[derive(Debug, Clone, Default)]
pub struct LevelMeter {
    shown: Level,
    /// The level samples moved to, and for how many samples in a row.
    moving: Option<(Level, u32)>,
}

impl LevelMeter {
    pub fn level(&self) -> Level {
        self.shown
    }

    /// Takes one sample's level; returns whether the shown level changed.
    pub fn sample(&mut self, raw: Level) -> bool {
        if raw == self.shown {
            self.moving = None;
            return false;
        }
        let worse = raw > self.shown;
        // A streak goes on while samples stay on the same side; it moves
        // to the least change it saw (three samples poor, fair, poor after
        // good make fair).
        let (to, n) = match self.moving {
            Some((to, n)) if (to > self.shown) == worse => {
                let to = if worse { to.min(raw) } else { to.max(raw) };
                (to, n + 1)
            }
            _ => (raw, 1),
        };
        if n >= if worse { WORSE_AFTER } else { BETTER_AFTER } {
            self.shown = to;
            self.moving = None;
            true
        } else {
            self.moving = Some((to, n));
            false
        }
    }
}

/// One participant's links: what is gathered between samples, and the
/// levels shown.
#[derive(Debug, Clone, Default)]
pub struct LinkWatch {
    ingress_loss: f32,
    egress_loss: f32,
    /// The allocator's last decision held videos below their tiles.
    downlink_limited: bool,
    uplink: LevelMeter,
    downlink: LevelMeter,
}

impl LinkWatch {
    /// Loss on a stream the participant publishes (our receiver reports).
    pub fn on_ingress_loss(&mut self, loss: f32) {
        self.ingress_loss = self.ingress_loss.max(loss);
    }

    /// Loss its browser reports on a stream it receives.
    pub fn on_egress_loss(&mut self, loss: f32) {
        self.egress_loss = self.egress_loss.max(loss);
    }

    /// What the allocator gave it: less than its tiles want (`limited`).
    pub fn on_allocation(&mut self, limited: bool) {
        self.downlink_limited = limited;
    }

    /// Takes a sample, with the state of its camera's layers as they
    /// arrive; returns whether a level shown changed.
    pub fn sample(&mut self, camera: CameraArrival) -> bool {
        let up = LinkSample {
            loss: std::mem::take(&mut self.ingress_loss),
            limited: camera == CameraArrival::Reduced,
            starved: camera == CameraArrival::Stopped,
        };
        let down = LinkSample {
            loss: std::mem::take(&mut self.egress_loss),
            limited: self.downlink_limited,
            starved: false,
        };
        let a = self.uplink.sample(up.level());
        let b = self.downlink.sample(down.level());
        a || b
    }

    pub fn quality(&self, id: ParticipantId) -> LinkQuality {
        LinkQuality {
            id,
            uplink: self.uplink.level(),
            downlink: self.downlink.level(),
        }
    }
}

/// How a participant's camera arrives at the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum CameraArrival {
    /// Every layer it was asked for, or no camera to judge by.
    #[default]
    Whole,
    /// A larger layer it was asked for does not arrive: its browser cut it.
    Reduced,
    /// On, and nothing arrives.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &mut LevelMeter, levels: &[Level]) -> Vec<Level> {
        levels
            .iter()
            .map(|l| {
                m.sample(*l);
                m.level()
            })
            .collect()
    }

    use Level::{Fair, Good, Poor};

    #[test]
    fn a_short_burst_changes_nothing() {
        let mut m = LevelMeter::default();
        let shown = run(&mut m, &[Poor, Poor, Good, Poor, Good, Good]);
        assert!(shown.iter().all(|l| *l == Good), "{shown:?}");
    }

    #[test]
    fn worse_after_three_samples_better_after_five() {
        let mut m = LevelMeter::default();
        let shown = run(&mut m, &[Poor, Poor, Poor]);
        assert_eq!(shown, [Good, Good, Poor]);
        let shown = run(&mut m, &[Good; 5]);
        assert_eq!(shown, [Poor, Poor, Poor, Poor, Good]);
    }

    #[test]
    fn a_mixed_streak_moves_to_the_least_change() {
        let mut m = LevelMeter::default();
        let shown = run(&mut m, &[Poor, Fair, Poor]);
        assert_eq!(shown.last(), Some(&Fair));
    }

    #[test]
    fn a_good_sample_within_a_streak_starts_it_again() {
        let mut m = LevelMeter::default();
        run(&mut m, &[Poor, Poor, Poor]);
        let shown = run(&mut m, &[Good, Good, Good, Good, Poor, Good, Good]);
        assert!(shown.iter().all(|l| *l == Poor), "{shown:?}");
    }

    #[test]
    fn samples_read_loss_and_what_video_could_be_carried() {
        let s = |loss, limited, starved| {
            LinkSample {
                loss,
                limited,
                starved,
            }
            .level()
        };
        assert_eq!(s(0.0, false, false), Good);
        assert_eq!(s(0.019, false, false), Good);
        assert_eq!(s(0.02, false, false), Fair);
        assert_eq!(s(0.0, true, false), Fair);
        assert_eq!(s(0.10, false, false), Poor);
        assert_eq!(s(0.0, true, true), Poor);
    }

    #[test]
    fn a_watch_reports_each_link_and_forgets_loss_once_sampled() {
        let mut w = LinkWatch::default();
        for _ in 0..WORSE_AFTER {
            w.on_ingress_loss(0.15);
            w.on_allocation(true);
            w.sample(CameraArrival::Whole);
        }
        let q = w.quality(7);
        assert_eq!((q.uplink, q.downlink), (Poor, Fair));
        // The loss stopped: five clean samples bring the uplink back.
        w.on_allocation(false);
        let changed: Vec<bool> = (0..BETTER_AFTER)
            .map(|_| w.sample(CameraArrival::Whole))
            .collect();
        assert_eq!(changed.iter().filter(|c| **c).count(), 1, "{changed:?}");
        assert_eq!(w.quality(7).uplink, Good);
        // A camera its browser stopped is a poor uplink without any loss.
        for _ in 0..WORSE_AFTER {
            w.sample(CameraArrival::Stopped);
        }
        assert_eq!(w.quality(7).uplink, Poor);
    }
}
