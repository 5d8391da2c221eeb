//! Who is speaking in a room, from the audio-level header extension
//! (RFC 6464) of each participant's microphone packets: plain data, with
//! time passed in.
//!
//! Time is cut in 100 ms buckets; a bucket is *voiced* when a packet in it
//! was at least as loud as [`VOICED_DBOV`]. A participant is *speaking*
//! with at least [`SPEAKING_BUCKETS`] voiced buckets in the last second:
//! speech comes in syllables, so half the buckets of someone talking are
//! voiced, but a cough or a door (two or three buckets) is not a speaker.
//! The dominant speaker keeps the floor while it has at least
//! [`KEEP_BUCKETS`] voiced buckets (a pause for breath is not the end of a
//! sentence); it changes when the current one has stopped and someone else
//! speaks, or when someone speaks clearly more ([`TAKEOVER_MARGIN`] more
//! buckets): two people talking over each other do not make the highlight
//! flap. In silence the last speaker stays.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::ParticipantId;

const BUCKET: Duration = Duration::from_millis(100);
/// Buckets looked at: one second.
const WINDOW: u32 = 10;
/// −60 dBov: quiet speech, well above a muted microphone (−127).
pub const VOICED_DBOV: i8 = -60;
pub const SPEAKING_BUCKETS: u32 = 4;
pub const KEEP_BUCKETS: u32 = 2;
pub const TAKEOVER_MARGIN: u32 = 3;

#[derive(Debug, Default)]
struct Activity {
    /// Bit `i` set: the bucket `i` before `bucket` was voiced.
    voiced: u32,
    /// The bucket bit 0 stands for.
    bucket: u64,
}

impl Activity {
    /// Brings bit 0 to bucket `now`.
    fn advance(&mut self, now: u64) {
        let gap = now.saturating_sub(self.bucket);
        self.voiced = if gap >= 32 { 0 } else { self.voiced << gap };
        self.bucket = self.bucket.max(now);
    }

    fn voiced_buckets(&self) -> u32 {
        (self.voiced & ((1 << WINDOW) - 1)).count_ones()
    }
}

#[derive(Debug, Default)]
pub struct Speakers {
    epoch: Option<Instant>,
    activity: HashMap<ParticipantId, Activity>,
    dominant: Option<ParticipantId>,
    /// Everyone, the most recent speaker first, then in the order they
    /// came: the order in which last-N shows videos.
    recent: Vec<ParticipantId>,
    /// The bucket last evaluated: at most one decision per bucket.
    decided: Option<u64>,
}

impl Speakers {
    fn bucket(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        (now.saturating_duration_since(epoch).as_millis() / BUCKET.as_millis()) as u64
    }

    /// One packet of `participant`'s microphone, `dbov` loud (0 is the
    /// loudest, −127 silence).
    pub fn on_level(&mut self, participant: ParticipantId, dbov: i8, now: Instant) {
        let bucket = self.bucket(now);
        let a = self.activity.entry(participant).or_default();
        a.advance(bucket);
        if dbov >= VOICED_DBOV {
            a.voiced |= 1;
        }
    }

    /// Someone entered the room: last in the speaking order.
    pub fn join(&mut self, participant: ParticipantId) {
        if !self.recent.contains(&participant) {
            self.recent.push(participant);
        }
    }

    pub fn recent(&self) -> &[ParticipantId] {
        &self.recent
    }

    pub fn forget(&mut self, participant: ParticipantId) {
        self.recent.retain(|p| *p != participant);
        self.activity.remove(&participant);
        if self.dominant == Some(participant) {
            self.dominant = None;
        }
    }

    pub fn dominant(&self) -> Option<ParticipantId> {
        self.dominant
    }

    /// The new dominant speaker, if it changed since the last call.
    pub fn poll(&mut self, now: Instant) -> Option<ParticipantId> {
        let bucket = self.bucket(now);
        if self.decided == Some(bucket) {
            return None;
        }
        self.decided = Some(bucket);
        let mut voiced: Vec<(ParticipantId, u32)> = self
            .activity
            .iter_mut()
            .map(|(id, a)| {
                a.advance(bucket);
                (*id, a.voiced_buckets())
            })
            .collect();
        // Ties go to the lowest id, so the choice does not depend on the
        // map's order.
        voiced.sort_by_key(|(id, n)| (std::cmp::Reverse(*n), *id));
        let (loudest, most) = *voiced.first()?;
        if most < SPEAKING_BUCKETS || Some(loudest) == self.dominant {
            return None;
        }
        let current = self
            .dominant
            .and_then(|d| voiced.iter().find(|(id, _)| *id == d))
            .map_or(0, |(_, n)| *n);
        if current >= KEEP_BUCKETS && most < current + TAKEOVER_MARGIN {
            return None;
        }
        self.dominant = Some(loudest);
        self.recent.retain(|p| *p != loudest);
        self.recent.insert(0, loudest);
        self.dominant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A microphone's packets (every 20 ms) over `dur`: `talk` says when it
    /// is loud.
    struct Mic {
        id: ParticipantId,
        talk: fn(Duration) -> bool,
    }

    fn silent(_: Duration) -> bool {
        false
    }
    /// Syllables: 200 ms loud every 500 ms, as Chromium's fake microphone.
    fn syllables(t: Duration) -> bool {
        t.as_millis() % 500 < 200
    }

    /// Runs the mics for `dur` from `t0 + from`; returns every change of
    /// dominant speaker, with when.
    fn run(
        s: &mut Speakers,
        t0: Instant,
        from: Duration,
        dur: Duration,
        mics: &[Mic],
    ) -> Vec<(Duration, ParticipantId)> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < from + dur {
            for m in mics {
                let dbov = if (m.talk)(t) { -20 } else { -127 };
                s.on_level(m.id, dbov, t0 + t);
            }
            if let Some(id) = s.poll(t0 + t) {
                changes.push((t, id));
            }
            t += Duration::from_millis(20);
        }
        changes
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn someone_talking_becomes_the_speaker_within_a_second() {
        let (mut s, t0) = (Speakers::default(), Instant::now());
        let mics = [
            Mic {
                id: 1,
                talk: silent,
            },
            Mic {
                id: 2,
                talk: syllables,
            },
        ];
        let changes = run(&mut s, t0, S(0), S(3), &mics);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, 2);
        assert!(changes[0].0 <= Duration::from_secs(1), "{changes:?}");
    }

    #[test]
    fn a_cough_is_not_a_speaker_change() {
        let (mut s, t0) = (Speakers::default(), Instant::now());
        let talk = [
            Mic {
                id: 1,
                talk: syllables,
            },
            Mic {
                id: 2,
                talk: silent,
            },
        ];
        run(&mut s, t0, S(0), S(2), &talk);
        assert_eq!(s.dominant(), Some(1));
        // 1 pauses; 2 coughs (250 ms) in the silence, and again while 1
        // talks.
        fn cough(t: Duration) -> bool {
            (2000..2250).contains(&t.as_millis()) || (4000..4250).contains(&t.as_millis())
        }
        fn pause_then_talk(t: Duration) -> bool {
            t >= Duration::from_secs(3) && syllables(t)
        }
        let mics = [
            Mic {
                id: 1,
                talk: pause_then_talk,
            },
            Mic { id: 2, talk: cough },
        ];
        assert!(run(&mut s, t0, S(2), S(4), &mics).is_empty());
        assert_eq!(s.dominant(), Some(1));
    }

    #[test]
    fn the_speaker_changes_when_another_takes_over() {
        let (mut s, t0) = (Speakers::default(), Instant::now());
        fn first(t: Duration) -> bool {
            t < Duration::from_secs(3) && syllables(t)
        }
        fn then(t: Duration) -> bool {
            t >= Duration::from_secs(3) && syllables(t)
        }
        let mics = [Mic { id: 1, talk: first }, Mic { id: 2, talk: then }];
        let changes = run(&mut s, t0, S(0), S(6), &mics);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), [1, 2]);
        assert!(
            changes[1].0 - S(3) < Duration::from_millis(1500),
            "{changes:?}"
        );
    }

    #[test]
    fn two_people_talking_over_each_other_do_not_flap() {
        let (mut s, t0) = (Speakers::default(), Instant::now());
        fn offbeat(t: Duration) -> bool {
            syllables(t + Duration::from_millis(250))
        }
        let mics = [
            Mic {
                id: 1,
                talk: syllables,
            },
            Mic {
                id: 2,
                talk: offbeat,
            },
        ];
        let changes = run(&mut s, t0, S(0), S(10), &mics);
        assert_eq!(changes.len(), 1, "one choice, kept: {changes:?}");
    }

    #[test]
    fn a_speaker_who_leaves_is_replaced_by_the_next() {
        let (mut s, t0) = (Speakers::default(), Instant::now());
        let mics = [Mic {
            id: 1,
            talk: syllables,
        }];
        run(&mut s, t0, S(0), S(2), &mics);
        s.forget(1);
        assert_eq!(s.dominant(), None);
        let mics = [Mic {
            id: 2,
            talk: syllables,
        }];
        let changes = run(&mut s, t0, S(2), S(2), &mics);
        assert_eq!(changes.last().map(|c| c.1), Some(2));
    }

    #[test]
    fn the_speaking_order_puts_the_latest_speaker_first() {
        let (mut s, t0) = (Speakers::default(), Instant::now());
        for id in [1, 2, 3] {
            s.join(id);
        }
        assert_eq!(s.recent(), [1, 2, 3], "in the order they came");
        run(
            &mut s,
            t0,
            S(0),
            S(2),
            &[Mic {
                id: 3,
                talk: syllables,
            }],
        );
        assert_eq!(s.recent(), [3, 1, 2]);
        run(
            &mut s,
            t0,
            S(2),
            S(3),
            &[Mic {
                id: 2,
                talk: syllables,
            }],
        );
        assert_eq!(s.recent(), [2, 3, 1]);
        s.forget(3);
        assert_eq!(s.recent(), [2, 1]);
    }
}
