//! Who made each room: the digest of its creator's claim (`worker/door.rs`),
//! kept for weeks after the room ended, so that the room is still its
//! creator's the next time, whoever comes in first. A door lives as long
//! as its room; an owner outlives it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a room stays its creator's after it was last seen.
pub const CLAIM_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);
/// Rooms whose owner is kept at most: an address makes a few rooms a
/// minute at most (`signal/limits.rs`), so this is weeks of a flood.
pub const MAX_OWNERS: usize = 100_000;
/// Owners kept on disk change at most this often per room: its time is
/// written rounded to the hour.
const UNTIL_STEP_MS: u64 = 3_600_000;

/// An owner as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOwner {
    pub owner: String,
    /// Until when, in ms since the Unix epoch (to the hour).
    pub until_ms: u64,
}

#[derive(Debug, Default)]
pub struct Owners {
    by_room: HashMap<String, (String, Instant)>,
}

impl Owners {
    /// `room`'s owner was seen at `now`: kept [`CLAIM_KEPT`] more.
    pub fn seen(&mut self, room: &str, owner: &str, now: Instant) {
        if self.by_room.len() >= MAX_OWNERS && !self.by_room.contains_key(room) {
            self.by_room.retain(|_, (_, until)| now < *until);
            if self.by_room.len() >= MAX_OWNERS {
                // The one kept the least longer makes way.
                let soonest = self
                    .by_room
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(room, _)| room.clone());
                if let Some(room) = soonest {
                    self.by_room.remove(&room);
                }
            }
        }
        self.by_room
            .insert(room.to_string(), (owner.to_string(), now + CLAIM_KEPT));
    }

    pub fn get(&self, room: &str, now: Instant) -> Option<&str> {
        let (owner, until) = self.by_room.get(room)?;
        (now < *until).then_some(owner.as_str())
    }

    /// As kept on disk, `now` being `unix_ms`.
    pub fn export(&self, now: Instant, unix_ms: u64) -> BTreeMap<String, KeptOwner> {
        self.by_room
            .iter()
            .filter(|(_, (_, until))| now < *until)
            .map(|(room, (owner, until))| {
                let left = until.saturating_duration_since(now).as_millis() as u64;
                let until_ms = (unix_ms + left) / UNTIL_STEP_MS * UNTIL_STEP_MS;
                let kept = KeptOwner {
                    owner: owner.clone(),
                    until_ms,
                };
                (room.clone(), kept)
            })
            .collect()
    }

    /// Read back from disk, `now` being `unix_ms`.
    pub fn import(kept: BTreeMap<String, KeptOwner>, now: Instant, unix_ms: u64) -> Owners {
        let by_room = kept
            .into_iter()
            .filter(|(_, k)| k.until_ms > unix_ms)
            .take(MAX_OWNERS)
            .map(|(room, k)| {
                let until = now + Duration::from_millis(k.until_ms - unix_ms);
                (room, (k.owner, until))
            })
            .collect();
        Owners { by_room }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_outlives_its_room_for_a_while() {
        let now = Instant::now();
        let mut owners = Owners::default();
        owners.seen("chambre-217", "k1", now);
        assert_eq!(owners.get("chambre-217", now + CLAIM_KEPT / 2), Some("k1"));
        assert_eq!(owners.get("chambre-217", now + CLAIM_KEPT), None);
        assert_eq!(owners.get("salon", now), None);
    }

    #[test]
    fn owners_come_back_from_disk() {
        let now = Instant::now();
        let unix_ms = 1_800_000_000_000;
        let mut owners = Owners::default();
        owners.seen("a", "k1", now);
        let kept = owners.export(now, unix_ms);
        // The time kept changes by the hour, not at every look.
        assert_eq!(
            kept,
            owners.export(now + Duration::from_secs(60), unix_ms + 60_000)
        );
        let back = Owners::import(kept, now, unix_ms);
        assert_eq!(back.get("a", now + CLAIM_KEPT / 2), Some("k1"));
        assert_eq!(back.get("a", now + CLAIM_KEPT), None);
    }

    #[test]
    fn a_flood_of_rooms_keeps_the_bound() {
        let now = Instant::now();
        let mut owners = Owners::default();
        for i in 0..MAX_OWNERS + 10 {
            owners.seen(&format!("r{i}"), "k", now + Duration::from_millis(i as u64));
        }
        assert_eq!(owners.by_room.len(), MAX_OWNERS);
        assert_eq!(owners.get("r0", now), None, "the oldest made way");
        assert!(owners.get(&format!("r{}", MAX_OWNERS + 9), now).is_some());
    }
}
