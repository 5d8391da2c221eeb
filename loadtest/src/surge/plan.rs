//! The surge's script, decided before it starts: which rooms try to start
//! when, which of them are priority rooms, when the third worker comes
//! and when the operator turns redirection on. Plain data from the
//! arguments, so it is tested without a cluster.

use std::time::Duration;

use crate::media::{VideoShape, AUDIO_INTERVAL};

/// What a surge is made of.
#[derive(Debug, Clone)]
pub struct Shape {
    /// People per room, everyone publishing voice and video.
    pub room_size: u32,
    pub fps: u32,
    pub video_bitrate: u32,
    /// Each worker's `--capacity-pps`.
    pub capacity_pps: f64,
    /// Admission's soft threshold.
    pub soft: f64,
    /// Rooms trying to start over the ramp, in multiples of what two
    /// workers carry below the soft threshold.
    pub demand: f64,
    /// One room in this many is a priority room.
    pub priority_every: u32,
    pub ramp: Duration,
    /// After the ramp, before the calls end.
    pub hold: Duration,
    /// When the operator turns "redirect new rooms" on, if ever.
    pub redirect_at: Option<Duration>,
}

/// One room of the surge.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRoom {
    pub index: u32,
    pub name: String,
    /// When its first participant joins (the others follow it, see
    /// [`MEMBER_GAP`]).
    pub start: Duration,
    pub priority: bool,
}

/// Between one participant of a room and the next: people of one call
/// arrive within a second or two.
pub const MEMBER_GAP: Duration = Duration::from_millis(400);

#[derive(Debug, Clone)]
pub struct Plan {
    pub rooms: Vec<PlannedRoom>,
    /// Packets per second a room adds to its worker (in + out).
    pub room_pps: f64,
    /// Rooms two workers carry below the soft threshold.
    pub carried_by_two: u32,
    pub third_worker_at: Duration,
    /// When every call ends.
    pub end: Duration,
}

/// Packets per second one publisher sends: voice every 20 ms, and video
/// as the generator shapes it (keyframes included).
pub fn publisher_pps(fps: u32, video_bitrate: u32) -> f64 {
    let mut video = VideoShape::new(fps, video_bitrate, Duration::from_secs(2));
    let frames = fps * 10;
    let packets: usize = (0..frames).map(|_| video.next_frame().0.len()).sum();
    1.0 / AUDIO_INTERVAL.as_secs_f64() + packets as f64 / 10.0
}

impl Plan {
    pub fn new(s: &Shape, tag: &str) -> Plan {
        let n = f64::from(s.room_size);
        // Each publisher's packets come in once and go out to the n − 1
        // others.
        let room_pps = n * n * publisher_pps(s.fps, s.video_bitrate);
        let carried_by_two = ((2.0 * s.soft * s.capacity_pps / room_pps).floor() as u32).max(1);
        let total = (s.demand * f64::from(carried_by_two)).ceil() as u32;
        let every = s.priority_every.max(1);
        let rooms = (0..total)
            .map(|i| {
                let priority = s.priority_every > 0 && i % every == every / 2;
                PlannedRoom {
                    index: i,
                    name: format!("surge-{tag}-{}{i}", if priority { "priority-" } else { "" }),
                    start: s.ramp.mul_f64(f64::from(i) / f64::from(total)),
                    priority,
                }
            })
            .collect();
        Plan {
            rooms,
            room_pps,
            carried_by_two,
            third_worker_at: s.ramp / 2,
            end: s.ramp + s.hold,
        }
    }

    pub fn priority_rooms(&self) -> usize {
        self.rooms.iter().filter(|r| r.priority).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            room_size: 3,
            fps: 15,
            video_bitrate: 120_000,
            capacity_pps: 6000.0,
            soft: 0.7,
            demand: 8.0,
            priority_every: 20,
            ramp: Duration::from_secs(60),
            hold: Duration::from_secs(10),
            redirect_at: Some(Duration::from_secs(50)),
        }
    }

    #[test]
    fn a_publisher_sends_voice_and_its_video_packets() {
        // 15 fps of 1 kB: delta frames fit a packet each, and a keyframe
        // every 2 s (8 delta frames' worth) takes 6: 29 + 6 packets per 30
        // frames.
        let pps = publisher_pps(15, 120_000);
        assert!((pps - (50.0 + 35.0 / 2.0)).abs() < 0.01, "{pps}");
    }

    #[test]
    fn demand_is_a_multiple_of_what_two_workers_carry() {
        let p = Plan::new(&shape(), "t");
        // A room of 3: 9 × 67.5 packets/s; two workers at 0.7 of 6,000.
        assert_eq!(p.carried_by_two, 13);
        assert_eq!(p.rooms.len(), 104);
        // Evenly over the ramp, the last one before its end.
        assert_eq!(p.rooms[0].start, Duration::ZERO);
        assert!(p.rooms[103].start < Duration::from_secs(60));
        assert!(p.rooms.windows(2).all(|w| w[0].start < w[1].start));
        assert_eq!(p.third_worker_at, Duration::from_secs(30));
        assert_eq!(p.end, Duration::from_secs(70));
    }

    #[test]
    fn one_room_in_twenty_is_a_priority_room_spread_over_the_ramp() {
        let p = Plan::new(&shape(), "t");
        let prio: Vec<u32> = p
            .rooms
            .iter()
            .filter(|r| r.priority)
            .map(|r| r.index)
            .collect();
        assert_eq!(prio, [10, 30, 50, 70, 90]);
        assert!(p.rooms[10].name.contains("priority"));
        let names: std::collections::HashSet<_> = p.rooms.iter().map(|r| &r.name).collect();
        assert_eq!(names.len(), p.rooms.len(), "names are unique");
        let none = Plan::new(
            &Shape {
                priority_every: 0,
                ..shape()
            },
            "t",
        );
        assert_eq!(none.priority_rooms(), 0);
    }
}
