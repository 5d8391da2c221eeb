//! Which layer of each video a subscriber receives: its downlink's budget
//! shared among the videos it is shown.
//!
//! Plain data in, choices out; the room gathers the facts (the subscriber's
//! bandwidth estimate, each video's layers with their measured rates and
//! widths, the size of the tile the client shows it in) and applies the
//! choices, so every rule here is tested without a network or a clock of
//! its own.
//!
//! The rule, close to LiveKit's stream allocator: every video shown gets
//! its smallest layer, whatever the budget (which videos are shown is
//! last-N's choice, and a link too weak even for that is for the client to
//! turn to "audio only", which it proposes); then the videos are raised
//! one layer at a time, in turns, in order of importance (recent speakers
//! first), while the budget lasts and the layer is not larger than the
//! tile needs.
//!
//! The budget is the subscriber's send-side bandwidth estimate (str0m's,
//! from the transport-wide feedback of its browser), read together with
//! the loss its browser reports. The estimate alone is not enough: a
//! subscriber receives less than it could (that is the point), and an
//! estimator that sees little traffic proves little capacity; on a busy
//! machine its delay signal is noisy too. Loss is the one unambiguous sign
//! of a link that cannot carry what it gets. So:
//!
//! - with loss reported, the budget is the estimate, and no more than what
//!   gets through (what is sent less what is lost, with a margin): down
//!   at once, and further at each decision while the loss goes on;
//! - without loss, what the subscriber receives is kept whatever the
//!   estimate says, and after a quiet while it may go up one layer even
//!   beyond the estimate. If that brings loss, it comes down again and
//!   waits twice as long before the next try (15 s, then 30, up to 2 min).
//!   A rise that the estimate itself carries needs no wait.
//!
//! Against flapping: down only on loss, up only with headroom, one layer
//! at a time, and not for a growing while after having gone down.

use std::time::{Duration, Instant};

/// Going down: what is received must fit within this share of the budget.
const TOLERATED: u64 = 95;
/// Going up: the new total must fit within this share of the budget.
const COMFORTABLE: u64 = 80;
/// Loss reported by the subscriber's browser from which its link counts
/// as congested (a fraction: 2 %; NACK repairs below that unseen).
pub const CONGESTED_LOSS: f32 = 0.02;
/// No going up beyond the estimate for this long after congestion, doubled
/// each time a try brought congestion back, up to the maximum.
const FIRST_HOLD: Duration = Duration::from_secs(15);
const MAX_HOLD: Duration = Duration::from_secs(120);
/// A congestion this long after the last one starts the backoff afresh.
const CALM: Duration = Duration::from_secs(120);
/// A layer this much narrower than the tile (in device pixels) still
/// looks sharp enough in it.
const WIDTH_SLACK_PERCENT: u32 = 75;

/// One layer a video offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOption {
    /// Bits per second on the wire.
    pub rate: u64,
    /// Pixels; 0 if not known yet.
    pub width: u32,
    /// Arriving, or resumable on request.
    pub available: bool,
}

/// One video shown to the subscriber, most important first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Smallest first.
    pub layers: Vec<LayerOption>,
    /// Width of its tile in device pixels, if the client said.
    pub tile_width: Option<u32>,
    /// The layer it receives or is switching to now.
    pub current: Option<usize>,
}

impl Video {
    /// The largest layer worth sending to its tile.
    fn cap(&self) -> usize {
        let top = self.layers.len().saturating_sub(1);
        let Some(tile) = self.tile_width else {
            return top;
        };
        // In u64: the width comes from the client, any u32.
        let enough = u64::from(tile) * u64::from(WIDTH_SLACK_PERCENT) / 100;
        self.layers
            .iter()
            .position(|l| l.width == 0 || u64::from(l.width) >= enough)
            .unwrap_or(top)
    }

    /// The next available layer above `from`, up to `cap`.
    fn next_up(&self, from: usize, cap: usize) -> Option<usize> {
        (from + 1..=cap).find(|i| self.layers[*i].available)
    }

    fn lowest(&self) -> Option<usize> {
        self.layers.iter().position(|l| l.available)
    }
}

/// The layers `budget` (bits per second) pays for.
pub fn allocate(budget: u64, videos: &[Video]) -> Vec<Option<usize>> {
    let mut chosen = vec![None; videos.len()];
    let mut used = 0u64;
    for (i, v) in videos.iter().enumerate() {
        if let Some(l) = v.lowest() {
            chosen[i] = Some(l);
            used += v.layers[l].rate;
        }
    }
    loop {
        let mut raised = false;
        for (i, v) in videos.iter().enumerate() {
            let Some(c) = chosen[i] else { continue };
            let Some(up) = v.next_up(c, v.cap()) else {
                continue;
            };
            let extra = v.layers[up].rate.saturating_sub(v.layers[c].rate);
            if used + extra <= budget {
                chosen[i] = Some(up);
                used += extra;
                raised = true;
            }
        }
        if !raised {
            return chosen;
        }
    }
}

/// The total rate of a choice.
pub fn total(videos: &[Video], chosen: &[Option<usize>]) -> u64 {
    videos
        .iter()
        .zip(chosen)
        .filter_map(|(v, c)| c.map(|c| v.layers[c].rate))
        .sum()
}

/// One subscriber's allocation over time.
#[derive(Debug, Clone, Default)]
pub struct Downlink {
    /// When its browser last reported congestion, and the worst loss of
    /// that report.
    congested_at: Option<Instant>,
    /// The worst loss of the last report, until a decision used it: each
    /// report lowers the budget once, not at every decision it lasts.
    fresh_loss: Option<f32>,
    /// How long after that no layer goes up beyond the estimate.
    hold: Duration,
}

impl Downlink {
    /// The subscriber's browser reported `loss` (a fraction) on a stream.
    pub fn on_loss(&mut self, loss: f32, now: Instant) {
        if loss < CONGESTED_LOSS {
            return;
        }
        let calm = self
            .congested_at
            .is_none_or(|t| now.saturating_duration_since(t) > CALM);
        // A congestion after the hold ended (a try that failed) doubles it;
        // reports within one episode do not.
        let in_episode = self
            .congested_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.hold);
        if calm {
            self.hold = FIRST_HOLD;
        } else if !in_episode {
            self.hold = (self.hold * 2).min(MAX_HOLD);
        }
        let same_report = self
            .congested_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(100));
        let worst = if same_report {
            self.fresh_loss.unwrap_or(0.0)
        } else {
            0.0
        };
        self.fresh_loss = Some(worst.max(loss));
        self.congested_at = Some(now);
    }

    fn congested(&self, now: Instant) -> bool {
        // Reports come about once a second: one without loss ends it.
        self.congested_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(1500))
    }

    fn may_try_up(&self, now: Instant) -> bool {
        self.congested_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.hold)
    }

    /// The layer each video should move to, given the estimate.
    pub fn choose(&mut self, estimate: u64, videos: &[Video], now: Instant) -> Vec<Option<usize>> {
        let current: Vec<Option<usize>> = videos
            .iter()
            .map(|v| {
                v.current
                    .filter(|c| v.layers.get(*c).is_some_and(|l| l.available))
            })
            .collect();
        let mut budget = estimate;
        let sent = total(videos, &current);
        if let Some(loss) = self.fresh_loss.take() {
            let through = sent as f64 * f64::from(1.0 - loss) * 0.9;
            budget = budget.min(through as u64);
        } else if self.congested(now) {
            // The report was acted on: hold what it left until the next.
            budget = sent * 100 / TOLERATED;
        } else {
            // Keep what is received: budget for it at the tolerated share.
            budget = budget.max(total(videos, &current) * 100 / TOLERATED);
            if self.may_try_up(now) {
                // And one layer more, at the comfortable share.
                let mut step = current.clone();
                if let Some((i, up)) = videos
                    .iter()
                    .zip(&current)
                    .enumerate()
                    .find_map(|(i, (v, c))| c.and_then(|c| v.next_up(c, v.cap())).map(|u| (i, u)))
                {
                    step[i] = Some(up);
                }
                budget = budget.max(total(videos, &step) * 100 / COMFORTABLE);
            }
        }
        let tolerated = allocate(budget * TOLERATED / 100, videos);
        let comfortable = allocate(budget * COMFORTABLE / 100, videos);
        let hold = !self.may_try_up(now);
        // What the estimate carries by itself needs no wait.
        let proven = allocate(estimate * COMFORTABLE / 100, videos);
        videos
            .iter()
            .enumerate()
            .map(|(i, v)| match current[i] {
                // New, or its layer stopped: wherever the budget says.
                None => comfortable[i].or(tolerated[i]),
                Some(c) if tolerated[i] < Some(c) => tolerated[i],
                Some(c) if comfortable[i] > Some(c) && (!hold || proven[i] > Some(c)) => {
                    v.next_up(c, comfortable[i].unwrap_or(c))
                }
                Some(c) => Some(c),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera in three layers: 320, 640, 1280 pixels wide.
    fn camera(current: Option<usize>) -> Video {
        Video {
            layers: vec![
                LayerOption {
                    rate: 150_000,
                    width: 320,
                    available: true,
                },
                LayerOption {
                    rate: 500_000,
                    width: 640,
                    available: true,
                },
                LayerOption {
                    rate: 1_500_000,
                    width: 1280,
                    available: true,
                },
            ],
            tile_width: None,
            current,
        }
    }

    #[test]
    fn the_budget_goes_to_the_smallest_layers_first_then_up_in_turns() {
        let two = [camera(None), camera(None)];
        assert_eq!(allocate(4_000_000, &two), vec![Some(2), Some(2)]);
        assert_eq!(allocate(1_000_000, &two), vec![Some(1), Some(1)]);
        assert_eq!(
            allocate(700_000, &two),
            vec![Some(1), Some(0)],
            "the first is raised first"
        );
        assert_eq!(allocate(350_000, &two), vec![Some(0), Some(0)]);
        assert_eq!(
            allocate(200_000, &two),
            vec![Some(0), Some(0)],
            "the smallest always"
        );
        assert_eq!(allocate(10_000, &two), vec![Some(0), Some(0)]);
    }

    #[test]
    fn a_small_tile_gets_a_small_layer_whatever_the_budget() {
        let mut v = camera(None);
        v.tile_width = Some(400);
        assert_eq!(
            allocate(10_000_000, &[v.clone()]),
            vec![Some(0)],
            "320 fills 400 well enough"
        );
        v.tile_width = Some(600);
        assert_eq!(allocate(10_000_000, &[v.clone()]), vec![Some(1)]);
        v.tile_width = Some(4000);
        assert_eq!(allocate(10_000_000, &[v.clone()]), vec![Some(2)]);
        // A width no screen has, as a client may send: the top, no overflow.
        v.tile_width = Some(u32::MAX);
        assert_eq!(allocate(10_000_000, &[v]), vec![Some(2)]);
    }

    #[test]
    fn a_layer_that_stopped_arriving_is_jumped_over() {
        let mut v = camera(None);
        v.layers[1].available = false;
        assert_eq!(allocate(1_000_000, &[v.clone()]), vec![Some(0)]);
        assert_eq!(allocate(3_000_000, &[v.clone()]), vec![Some(2)]);
        v.layers[0].available = false;
        assert_eq!(allocate(100_000, &[v]), vec![Some(2)], "the only one left");
    }

    #[test]
    fn down_on_loss_up_with_headroom_one_layer_at_a_time_and_backing_off() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = Downlink::default();
        // A low estimate without loss proves nothing: the top layer stays.
        assert_eq!(d.choose(400_000, &[camera(Some(2))], at(0)), vec![Some(2)]);
        // Loss reported: the estimate rules, straight down.
        d.on_loss(0.2, at(100));
        assert_eq!(
            d.choose(400_000, &[camera(Some(2))], at(200)),
            vec![Some(0)]
        );
        // The loss stops and the estimate is still low: no try for 15 s.
        assert_eq!(
            d.choose(400_000, &[camera(Some(0))], at(3_000)),
            vec![Some(0)]
        );
        // Then one step up beyond the estimate.
        assert_eq!(
            d.choose(400_000, &[camera(Some(0))], at(15_200)),
            vec![Some(1)]
        );
        // It brings loss back: down, and the next try waits 30 s.
        d.on_loss(0.1, at(16_000));
        assert_eq!(
            d.choose(400_000, &[camera(Some(1))], at(16_100)),
            vec![Some(0)]
        );
        assert_eq!(
            d.choose(400_000, &[camera(Some(0))], at(40_000)),
            vec![Some(0)]
        );
        assert_eq!(
            d.choose(400_000, &[camera(Some(0))], at(46_100)),
            vec![Some(1)]
        );
        // With loss, no more than what gets through: a high estimate that
        // has not caught up yet does not keep the top layer.
        let mut d = Downlink::default();
        d.on_loss(0.5, at(0));
        assert_eq!(
            d.choose(5_000_000, &[camera(Some(2))], at(100)),
            vec![Some(1)]
        );
        // But during a hold, a rise the estimate carries by itself is taken.
        assert_eq!(
            d.choose(5_000_000, &[camera(Some(1))], at(2_000)),
            vec![Some(2)]
        );
        // A high estimate raises one layer per decision.
        let mut d = Downlink::default();
        assert_eq!(
            d.choose(5_000_000, &[camera(Some(0))], at(0)),
            vec![Some(1)]
        );
        assert_eq!(
            d.choose(5_000_000, &[camera(Some(1))], at(500)),
            vec![Some(2)]
        );
        // Small loss (repaired by NACK) is not congestion.
        d.on_loss(0.01, at(600));
        assert_eq!(
            d.choose(400_000, &[camera(Some(2))], at(700)),
            vec![Some(2)]
        );
    }

    #[test]
    fn a_new_video_starts_where_the_budget_is_comfortable() {
        let mut d = Downlink::default();
        let now = Instant::now();
        assert_eq!(d.choose(1_000_000, &[camera(None)], now), vec![Some(1)]);
        d.on_loss(0.1, now);
        assert_eq!(d.choose(100_000, &[camera(None)], now), vec![Some(0)]);
        assert_eq!(total(&[camera(None)], &[Some(1)]), 500_000);
    }
}
