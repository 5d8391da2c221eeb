//! Which shard of a worker a command goes to: the control side of the
//! shards (`shard.rs`), as plain data on a clock passed in.
//!
//! A room lives on one shard, with everyone in it and its lobby. A join
//! goes to its room's shard, or, for a room new here, to the least-loaded
//! shard: the one whose thread used the least CPU lately, and between
//! shards within [`CPU_STEP`] of each other, the one with fewer
//! participants (the CPU of a room that just started is not seen yet).
//! Every other command goes to its participant's shard; a drain to all.
//!
//! A room that ended is remembered on its shard for [`ROOM_REMEMBERED`],
//! as long as that shard remembers it ended (the door a cluster keeps for
//! a lost room must not be applied to a room that merely emptied): made
//! anew within that time, it goes back there.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::endpoint::ENDED_REMEMBERED;
use super::shard::ShardId;
use super::{Command, WorkerError};
use crate::ids::ParticipantId;

/// How long a room no shard lists any more keeps its shard.
pub const ROOM_REMEMBERED: Duration = ENDED_REMEMBERED;
/// Shards whose threads' CPU differ by less than this (cores) are as
/// loaded as each other.
pub const CPU_STEP: f64 = 0.05;

/// Where a command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    One(ShardId),
    All,
}

#[derive(Debug, Clone, Copy)]
struct Place {
    shard: ShardId,
    /// Last listed by its shard, or given a join.
    seen: Instant,
}

/// The rooms and participants of a worker's shards.
#[derive(Debug)]
pub struct ShardMap {
    shards: usize,
    rooms: HashMap<String, Place>,
    participants: HashMap<ParticipantId, String>,
}

impl ShardMap {
    pub fn new(shards: usize) -> Self {
        ShardMap {
            shards: shards.max(1),
            rooms: HashMap::new(),
            participants: HashMap::new(),
        }
    }

    /// Where `cmd` goes; `cpu` is each shard's recent CPU, in cores. An
    /// unknown participant is refused here as its shard would refuse it.
    pub fn target(
        &mut self,
        cmd: &Command,
        cpu: &[f64],
        now: Instant,
    ) -> Result<Target, WorkerError> {
        match cmd {
            Command::Drain { .. } => Ok(Target::All),
            Command::Join { req } => {
                let shard = self.place(&req.room, cpu, now);
                self.participants.insert(req.info.id, req.room.clone());
                Ok(Target::One(shard))
            }
            cmd => {
                let participant = cmd.participant().ok_or(WorkerError::UnknownParticipant)?;
                let unknown = match cmd {
                    Command::Resume { .. } => WorkerError::ResumeRefused,
                    _ => WorkerError::UnknownParticipant,
                };
                let shard = self.shard_of(participant).ok_or(unknown)?;
                if matches!(cmd, Command::Leave { .. }) {
                    self.participants.remove(&participant);
                }
                Ok(Target::One(shard))
            }
        }
    }

    /// A join its shard refused: its participant is not there.
    pub fn join_refused(&mut self, participant: ParticipantId) {
        self.participants.remove(&participant);
    }

    /// The shard of a participant that joined through this map.
    pub fn shard_of(&self, participant: ParticipantId) -> Option<ShardId> {
        let room = self.participants.get(&participant)?;
        self.rooms.get(room).map(|p| p.shard)
    }

    /// `shard` lists these rooms now.
    pub fn listed<'a>(
        &mut self,
        shard: ShardId,
        rooms: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) {
        for room in rooms {
            match self.rooms.get_mut(room) {
                Some(place) if place.shard == shard => place.seen = now,
                // Listed by a shard the map did not send it to (never so
                // while every join comes through here): the shard knows.
                _ => {
                    self.rooms
                        .insert(room.to_string(), Place { shard, seen: now });
                }
            }
        }
    }

    /// Forgets the rooms no shard listed for [`ROOM_REMEMBERED`], and the
    /// participants they had.
    pub fn expire(&mut self, now: Instant) {
        self.rooms
            .retain(|_, p| now.saturating_duration_since(p.seen) < ROOM_REMEMBERED);
        let rooms = &self.rooms;
        self.participants.retain(|_, room| rooms.contains_key(room));
    }

    /// Participants sent to each shard and not gone, in one pass.
    fn participants_per_shard(&self) -> Vec<usize> {
        let mut counts = vec![0; self.shards];
        for room in self.participants.values() {
            if let Some(place) = self.rooms.get(room) {
                counts[place.shard] += 1;
            }
        }
        counts
    }

    /// Participants sent to `shard` and not gone.
    #[cfg(test)]
    pub fn participants_on(&self, shard: ShardId) -> usize {
        self.participants_per_shard()[shard]
    }

    /// The shard of `room`, placed now if it has none.
    fn place(&mut self, room: &str, cpu: &[f64], now: Instant) -> ShardId {
        if let Some(place) = self.rooms.get_mut(room) {
            place.seen = now;
            return place.shard;
        }
        let participants = self.participants_per_shard();
        let shard = (0..self.shards)
            .min_by_key(|&s| {
                let busy = cpu.get(s).copied().unwrap_or(0.0).max(0.0);
                ((busy / CPU_STEP) as u64, participants[s], s)
            })
            .unwrap_or(0);
        self.rooms
            .insert(room.to_string(), Place { shard, seen: now });
        shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::endpoint_tests::join_request;

    fn join(room: &str, id: ParticipantId) -> Command {
        Command::Join {
            req: join_request(id, room, 1, 12),
        }
    }

    const IDLE: [f64; 2] = [0.0, 0.0];

    #[test]
    fn two_meetings_go_to_two_shards_and_their_people_follow() {
        let now = Instant::now();
        let mut map = ShardMap::new(2);
        assert_eq!(map.target(&join("a", 1), &IDLE, now), Ok(Target::One(0)));
        assert_eq!(map.target(&join("a", 2), &IDLE, now), Ok(Target::One(0)));
        // Both shards idle: the one with fewer participants.
        assert_eq!(map.target(&join("b", 3), &IDLE, now), Ok(Target::One(1)));
        assert_eq!(map.target(&join("a", 4), &IDLE, now), Ok(Target::One(0)));
        let offer = Command::Offer {
            participant: 3,
            sdp: String::new(),
            screen: None,
        };
        assert_eq!(map.target(&offer, &IDLE, now), Ok(Target::One(1)));
        assert_eq!((map.participants_on(0), map.participants_on(1)), (3, 1));
    }

    #[test]
    fn a_new_room_goes_to_the_least_busy_shard() {
        let now = Instant::now();
        let mut map = ShardMap::new(3);
        map.target(&join("a", 1), &[0.0; 3], now).unwrap();
        // Shard 1 is busy (a big call), shard 0 has one participant but
        // little CPU, shard 2 none: 2, then 0 before 1.
        let cpu = [0.02, 0.60, 0.0];
        assert_eq!(map.target(&join("b", 2), &cpu, now), Ok(Target::One(2)));
        assert_eq!(map.target(&join("c", 3), &cpu, now), Ok(Target::One(0)));
    }

    #[test]
    fn commands_follow_their_participant_and_a_drain_reaches_all() {
        let now = Instant::now();
        let mut map = ShardMap::new(2);
        let leave = |p| Command::Leave { participant: p };
        let resume = |p| Command::Resume {
            participant: p,
            token: "t".into(),
            session: 2,
            room: None,
        };
        assert_eq!(
            map.target(&leave(9), &IDLE, now),
            Err(WorkerError::UnknownParticipant)
        );
        assert_eq!(
            map.target(&resume(9), &IDLE, now),
            Err(WorkerError::ResumeRefused)
        );
        map.target(&join("a", 1), &IDLE, now).unwrap();
        map.target(&join("b", 2), &IDLE, now).unwrap();
        assert_eq!(map.target(&resume(2), &IDLE, now), Ok(Target::One(1)));
        let admit = Command::Admit {
            participant: 2,
            knocker: 7,
            admit: true,
        };
        assert_eq!(map.target(&admit, &IDLE, now), Ok(Target::One(1)));
        // A leave goes to the shard, and the participant is gone after.
        assert_eq!(map.target(&leave(2), &IDLE, now), Ok(Target::One(1)));
        assert_eq!(map.shard_of(2), None);
        let drain = Command::Drain { deadline_secs: 60 };
        assert_eq!(map.target(&drain, &IDLE, now), Ok(Target::All));
        // A refused join leaves nobody behind.
        map.target(&join("a", 3), &IDLE, now).unwrap();
        map.join_refused(3);
        assert_eq!(map.shard_of(3), None);
    }

    #[test]
    fn a_room_that_ended_goes_back_to_its_shard_for_a_while() {
        let t0 = Instant::now();
        let mut map = ShardMap::new(2);
        map.target(&join("a", 1), &IDLE, t0).unwrap();
        map.target(&join("b", 2), &IDLE, t0).unwrap();
        map.listed(1, ["b"], t0);
        // "b" ends on shard 1; shard 0 then carries nothing and would be
        // chosen for a new room, but "b" made anew goes back to shard 1,
        // which remembers that it ended.
        let later = t0 + ROOM_REMEMBERED - Duration::from_secs(1);
        map.listed(0, ["a"], later);
        map.expire(later);
        map.target(&Command::Leave { participant: 1 }, &IDLE, later)
            .unwrap();
        assert_eq!(map.target(&join("b", 3), &IDLE, later), Ok(Target::One(1)));
        // Long after, it is a room like any other.
        let much_later = later + ROOM_REMEMBERED;
        map.expire(much_later);
        assert_eq!(map.shard_of(3), None, "its participants are forgotten too");
        assert_eq!(
            map.target(&join("b", 4), &IDLE, much_later),
            Ok(Target::One(0))
        );
    }

    #[test]
    fn a_room_a_shard_lists_is_kept() {
        let t0 = Instant::now();
        let mut map = ShardMap::new(2);
        map.target(&join("b", 1), &IDLE, t0).unwrap();
        map.target(&join("a", 2), &IDLE, t0).unwrap();
        for s in 1..=10 {
            let now = t0 + ROOM_REMEMBERED * s;
            map.listed(1, ["a"], now);
            map.expire(now);
        }
        assert_eq!(map.shard_of(2), Some(1));
        assert_eq!(map.shard_of(1), None);
    }
}
