//! The door of a room: who may come in, and who decides.
//!
//! A room's first participant is its moderator, and so is anyone whose
//! room token says `role: moderator`. A moderator may lock the room with a
//! password and turn the lobby on: then a newcomer must give the password,
//! and waits ("knocks") until a moderator lets it in or refuses it. When
//! the last moderator leaves, the participant there the longest becomes
//! one, so that a lobby never waits for nobody.
//!
//! Someone who was in and lost its media (a phone moving from Wi-Fi to
//! 4G) joins again within [`RETURN_WINDOW`] without knocking: its join
//! shows the resume token it had, once. Only an involuntary departure
//! opens that way back: not leaving, not being removed. A moderator who
//! comes back so takes its role back from whoever stood in.
//!
//! The door outlives the loss of its worker: the cluster keeps what the
//! moderators set ([`DoorSettings`]), and a room made anew on another
//! worker starts behind the same password and lobby. Nobody moderates such
//! a room by being first back: those the signal server saw in the room
//! come back through without password or lobby (a moderator as one), and
//! anyone else passes the door as before; the first of them in moderates.
//!
//! It also outlives the signal server (a restart of `parloir serve`, which
//! keeps doors on disk): with the settings go the keys of who was in (a
//! digest of each one's resume token, and whether it moderated). A page
//! that comes back shows its token and enters as what it was; while a
//! moderator is still awaited, whoever enters first only stands in.
//!
//! A room has an owner once created: the browser that made it keeps a key
//! (`signal::owner`), and a join that shows it moderates. Into a room
//! whose owner is someone else, being first moderates nothing
//! ([`JoinRequest::claimed`]): a stranger who knows the name, in first,
//! cannot lock the owner out, and the owner comes in past any lock.
//!
//! Plain data with time passed in: the room calls it, the tests drive it
//! without sockets or sleeps.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{JoinRequest, PeerEvent, Vouched, WorkerError};
use crate::ids::ParticipantId;
use crate::rate::TokenBucket;
use crate::secret;

/// People waiting in one room's lobby at most: more is a flood.
pub const MAX_KNOCKS: usize = 20;
/// People waiting in one room's lobby from one network at most: one
/// address cannot fill the lobby for everyone else.
pub const MAX_KNOCKS_PER_NETWORK: usize = 5;
/// Knocks one network may make at one room's door: a burst, then one
/// every [`KNOCK_EVERY`]. Each puts a banner on the moderators' screens:
/// one address, knocking and leaving, put 39 there in 20 s.
pub const KNOCK_BURST: u32 = 5;
pub const KNOCK_EVERY: Duration = Duration::from_secs(12);
/// Networks whose knocks a door counts at most.
const KNOCK_NETWORKS: usize = 256;
/// How long someone whose media was lost may come back without knocking.
pub const RETURN_WINDOW: Duration = Duration::from_secs(120);
/// Departed participants remembered for their return at most.
const REMEMBERED: usize = 256;

/// How a join may go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// In at once, a moderator or not.
    Enter { moderator: bool },
    /// Waits in the lobby.
    Knock,
}

/// Why someone went out of the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// By itself.
    Left,
    /// A moderator removed it.
    Removed,
    /// Its media or signalling was lost: it may come back.
    Lost,
}

#[derive(Debug)]
struct Member {
    id: ParticipantId,
    /// Its resume token: what it shows to come back after a loss.
    token: String,
    /// The token's digest, as kept by the cluster (made once: the door's
    /// settings are read ten times a second).
    key: String,
    moderator: bool,
    /// Moderates only until the moderator it stands in for comes back.
    stand_in: bool,
}

#[derive(Debug)]
struct Returning {
    token: String,
    key: String,
    moderator: bool,
    until: Instant,
}

/// What a room's moderators set, and who may come back: kept by the
/// cluster while the room lives, so that a room made anew elsewhere keeps
/// its door shut and its moderators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorSettings {
    /// The password as the signal servers keep it: a keyed digest
    /// (`privacy::password_digest`), never as typed.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub lobby: bool,
    /// Who was in or may come back, and as what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returning: Vec<ReturnKey>,
}

/// One participant's way back into a room made anew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnKey {
    /// A digest of its resume token ([`return_key`]): whoever reads the
    /// kept doors cannot resume anyone's call with it.
    pub key: String,
    pub moderator: bool,
}

/// The digest a resume token is kept as: 128 bits of SHA-256, enough for
/// tokens that are themselves 128 random bits.
pub fn return_key(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl DoorSettings {
    /// Nothing set and nobody to let back: an open, empty room needs
    /// nothing kept.
    pub fn is_open(&self) -> bool {
        self.password.is_none() && !self.lobby && self.returning.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Door {
    password: Option<String>,
    lobby: bool,
    /// Made anew from [`DoorSettings`]: being first in is no way in, and
    /// those vouched for come back until then.
    restored: Option<Instant>,
    /// Who is in, in the order they came.
    members: Vec<Member>,
    /// Who waits, first come first: their joins, as sent.
    knocks: VecDeque<JoinRequest>,
    /// Who lost its media and may come back, oldest first.
    returning: VecDeque<Returning>,
    /// Of a room made anew: who was in, until they come back or the
    /// restore is over.
    kept: Vec<ReturnKey>,
    /// The knocks left to each network that knocked lately.
    knock_rate: HashMap<String, TokenBucket>,
    /// Someone owns the room (a join said so): only its owner's key and
    /// those moderators make moderate it, never being in first or longest.
    owned: bool,
}

impl Door {
    /// The door of a room made anew after its worker was lost.
    pub fn restored(settings: DoorSettings, now: Instant) -> Door {
        let mut kept = settings.returning;
        kept.truncate(REMEMBERED);
        Door {
            password: settings.password,
            lobby: settings.lobby,
            restored: Some(now + RETURN_WINDOW),
            kept,
            ..Door::default()
        }
    }

    /// A door made anew whose people had their time to come back: a room
    /// still empty then is given up (nobody is there to let anyone in).
    pub fn restore_over(&self, now: Instant) -> bool {
        self.restored.is_some_and(|until| until <= now)
    }

    /// What the moderators set, and the keys of who is in or may come
    /// back (a stand-in comes back as a member: its role was lent).
    pub fn settings(&self) -> DoorSettings {
        let members = self.members.iter().map(|m| ReturnKey {
            key: m.key.clone(),
            moderator: m.moderator && !m.stand_in,
        });
        let lost = self.returning.iter().map(|r| ReturnKey {
            key: r.key.clone(),
            moderator: r.moderator,
        });
        let mut returning: Vec<ReturnKey> = members.chain(lost).collect();
        returning.extend(self.kept.iter().cloned());
        returning.truncate(REMEMBERED);
        DoorSettings {
            password: self.password.clone(),
            lobby: self.lobby,
            returning,
        }
    }

    /// The kept key `token` matches, while the restore lasts.
    fn kept_key(&self, token: &str, now: Instant) -> Option<&ReturnKey> {
        if self.restored.is_none_or(|until| now >= until) {
            return None;
        }
        let key = return_key(token);
        self.kept
            .iter()
            .find(|k| secret::equal(k.key.as_bytes(), key.as_bytes()))
    }

    /// A moderator may still come back: whoever moderates meanwhile stands
    /// in.
    fn moderator_awaited(&self) -> bool {
        self.returning.iter().any(|r| r.moderator) || self.kept.iter().any(|k| k.moderator)
    }

    /// How `req` may enter the room now.
    pub fn check(&self, req: &JoinRequest, now: Instant) -> Result<Entry, WorkerError> {
        if let Some(back) = req.rejoin.as_deref().and_then(|t| self.returning(t, now)) {
            return Ok(Entry::Enter {
                moderator: back.moderator || req.moderator,
            });
        }
        // Was in when the room's worker or signal server was lost.
        if let Some(back) = req.rejoin.as_deref().and_then(|t| self.kept_key(t, now)) {
            return Ok(Entry::Enter {
                moderator: back.moderator
                    || req.moderator
                    || (self.members.is_empty() && !self.moderator_awaited()),
            });
        }
        if req.moderator || (self.members.is_empty() && self.restored.is_none() && !req.claimed) {
            return Ok(Entry::Enter { moderator: true });
        }
        // The signal server saw it in this room before its worker was lost,
        // and it comes back in time.
        if let Some(vouched) = req
            .vouched
            .filter(|_| self.restored.is_some_and(|u| now < u))
        {
            return Ok(Entry::Enter {
                moderator: vouched == Vouched::Moderator
                    || (self.members.is_empty() && !self.moderator_awaited()),
            });
        }
        if let Some(password) = &self.password {
            match &req.password {
                None => return Err(WorkerError::PasswordRequired),
                Some(p) if !secret::equal(p.as_bytes(), password.as_bytes()) => {
                    return Err(WorkerError::PasswordWrong)
                }
                Some(_) => {}
            }
        }
        if self.lobby {
            let mine = self.waiting_from(req.network.as_deref());
            // A full lobby still takes a network with fewer waiting than
            // the one with the most: its newest knock makes way
            // ([`Door::knock`]), so a few addresses cannot fill it.
            let full = self.knocks.len() >= MAX_KNOCKS && self.largest_share() <= mine + 1;
            if mine >= MAX_KNOCKS_PER_NETWORK || full {
                return Err(WorkerError::LobbyFull);
            }
            if let Some(rate) = req.network.as_ref().and_then(|n| self.knock_rate.get(n)) {
                if !rate.clone().has(now) {
                    return Err(WorkerError::KnockingTooOften);
                }
            }
            return Ok(Entry::Knock);
        }
        // A room made anew, or one with an owner, is empty here: whoever
        // passes the door of the first moderates it, and nobody that of
        // the second but its owner.
        Ok(Entry::Enter {
            moderator: self.members.is_empty() && !self.moderator_awaited() && !req.claimed,
        })
    }

    fn returning(&self, token: &str, now: Instant) -> Option<&Returning> {
        self.returning
            .iter()
            .find(|r| now < r.until && secret::equal(r.token.as_bytes(), token.as_bytes()))
    }

    /// `id` came in, with `token` (its resume token), by `rejoin` (the
    /// token it showed) if it came back, a moderator at least if
    /// `moderator`. Returns who stood in as moderator and no longer does
    /// (the moderator they stood in for is back).
    pub fn entered(
        &mut self,
        (id, token, rejoin): (ParticipantId, &str, Option<&str>),
        mut moderator: bool,
        now: Instant,
    ) -> Vec<ParticipantId> {
        self.settle(now);
        let mut demoted = Vec::new();
        if let Some(shown) = rejoin {
            // A way back is used once, and gives back the role it kept
            // (whether the door said so at the knock or now).
            let at = self
                .returning
                .iter()
                .position(|r| secret::equal(r.token.as_bytes(), shown.as_bytes()));
            let key = return_key(shown);
            let kept = || {
                self.kept
                    .iter()
                    .position(|k| secret::equal(k.key.as_bytes(), key.as_bytes()))
            };
            let back = match at {
                Some(i) => self.returning.remove(i).map(|r| r.moderator),
                None => kept().map(|i| self.kept.remove(i).moderator),
            };
            if back == Some(true) {
                moderator = true;
            }
        }
        // A moderator arrives (back, or by its key or token): whoever
        // stood in gives the role back.
        if moderator {
            for m in self.members.iter_mut().filter(|m| m.stand_in) {
                m.moderator = false;
                m.stand_in = false;
                demoted.push(m.id);
            }
        }
        // A room made anew whose moderator may still come back: whoever is
        // in first moderates meanwhile, as a stand-in (never in an owned
        // room: its owner comes back past any door).
        let stand_in = !moderator
            && !self.owned
            && self.restored.is_some()
            && !self.members.iter().any(|m| m.moderator)
            && self.moderator_awaited();
        self.members.push(Member {
            id,
            token: token.to_string(),
            key: return_key(token),
            moderator: moderator || stand_in,
            stand_in,
        });
        demoted
    }

    /// `id` went out. Returns who became moderator, if the last one left.
    pub fn left(&mut self, id: ParticipantId, why: Leaving, now: Instant) -> Option<ParticipantId> {
        let at = self.members.iter().position(|m| m.id == id)?;
        let gone = self.members.remove(at);
        if why == Leaving::Lost {
            // A stand-in keeps no role to come back to: it was lent.
            self.returning.push_back(Returning {
                token: gone.token,
                key: gone.key,
                moderator: gone.moderator && !gone.stand_in,
                until: now + RETURN_WINDOW,
            });
            while self.returning.len() > REMEMBERED {
                self.returning.pop_front();
            }
        }
        self.settle(now);
        // In an owned room nobody moderates by staying longest: two tabs
        // of a stranger, one closed, would make the other the moderator.
        // Whoever knocks waits for the owner, or a moderator it made.
        if self.owned || self.members.iter().any(|m| m.moderator) {
            return None;
        }
        // A moderator who may come back is stood in for, not replaced.
        let awaited = self.moderator_awaited();
        let first = self.members.first_mut()?;
        first.moderator = true;
        first.stand_in = awaited;
        Some(first.id)
    }

    /// Forgets the ways back that expired; a stand-in whose moderator can
    /// no longer come back is a moderator of its own.
    fn settle(&mut self, now: Instant) {
        self.returning.retain(|r| now < r.until);
        if self.restore_over(now) {
            self.kept.clear();
        }
        if !self.moderator_awaited() {
            for m in &mut self.members {
                m.stand_in = false;
            }
        }
    }

    /// The room has an owner: nobody moderates it by being there first or
    /// longest, or by standing in.
    pub fn mark_owned(&mut self) {
        self.owned = true;
    }

    pub fn is_stand_in(&self, id: ParticipantId) -> bool {
        self.members.iter().any(|m| m.id == id && m.stand_in)
    }

    /// A moderator made `id` one too: for good, not as a stand-in.
    /// False if `id` is not in.
    pub fn promote(&mut self, id: ParticipantId) -> bool {
        let Some(m) = self.members.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        m.moderator = true;
        m.stand_in = false;
        true
    }

    pub fn is_moderator(&self, id: ParticipantId) -> bool {
        self.members.iter().any(|m| m.id == id && m.moderator)
    }

    pub fn moderators(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.members.iter().filter(|m| m.moderator).map(|m| m.id)
    }

    /// People waiting from `network` (nobody shares an unknown one).
    fn waiting_from(&self, network: Option<&str>) -> usize {
        network.map_or(0, |n| {
            self.knocks
                .iter()
                .filter(|k| k.network.as_deref() == Some(n))
                .count()
        })
    }

    /// The most people waiting from one network.
    fn largest_share(&self) -> usize {
        let share = |k: &JoinRequest| self.waiting_from(k.network.as_deref()).max(1);
        self.knocks.iter().map(share).max().unwrap_or(0)
    }

    /// `req` waits, its network charged a knock. In a full lobby, the
    /// newest knock of the network with the most waiting makes way: it
    /// is returned, to be told.
    pub fn knock(&mut self, req: JoinRequest, now: Instant) -> Option<JoinRequest> {
        if let Some(network) = &req.network {
            if self.knock_rate.len() >= KNOCK_NETWORKS {
                let knocks = &self.knocks;
                self.knock_rate
                    .retain(|n, _| knocks.iter().any(|k| k.network.as_ref() == Some(n)));
            }
            self.knock_rate
                .entry(network.clone())
                .or_insert_with(|| TokenBucket::new(KNOCK_BURST, KNOCK_EVERY, now))
                .take(now);
        }
        let mut made_way = None;
        if self.knocks.len() >= MAX_KNOCKS {
            let largest = self.largest_share();
            let at = self
                .knocks
                .iter()
                .rposition(|k| self.waiting_from(k.network.as_deref()).max(1) == largest);
            made_way = at.and_then(|i| self.knocks.remove(i));
        }
        self.knocks.push_back(req);
        made_way
    }

    /// The join of `id`, taken out of the lobby.
    pub fn take_knock(&mut self, id: ParticipantId) -> Option<JoinRequest> {
        let at = self.knocks.iter().position(|k| k.info.id == id)?;
        self.knocks.remove(at)
    }

    /// Who waits, first come first.
    pub fn waiting(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.knocks.iter().map(|k| k.info.id)
    }

    /// Everyone waiting, taken out of the lobby: nobody is left to let
    /// them in.
    pub fn take_all_knocks(&mut self) -> Vec<JoinRequest> {
        self.knocks.drain(..).collect()
    }

    /// What a moderator is told of the people waiting.
    pub fn knocks(&self) -> impl Iterator<Item = PeerEvent> + '_ {
        self.knocks.iter().map(|k| PeerEvent::Knocking {
            id: k.info.id,
            name: k.info.name.clone(),
        })
    }

    /// A moderator's change: a password (`None` unlocks).
    pub fn set_password(&mut self, password: Option<String>) {
        self.password = password;
    }

    /// A moderator's change: the lobby on or off.
    pub fn set_lobby(&mut self, on: bool) {
        self.lobby = on;
    }

    /// The room's settings as `id` is told them.
    pub fn settings_for(&self, id: ParticipantId) -> PeerEvent {
        PeerEvent::RoomSettings {
            moderator: self.is_moderator(id),
            locked: self.password.is_some(),
            lobby: self.lobby,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ParticipantInfo, ParticipantState};

    fn req(id: ParticipantId) -> JoinRequest {
        JoinRequest {
            room: "r".into(),
            info: ParticipantInfo {
                id,
                name: format!("p{id}"),
                state: ParticipantState::joining(true, true),
            },
            token: format!("token-{id}"),
            max_participants: 10,
            last_n: 10,
            session: id,
            password: None,
            moderator: false,
            rejoin: None,
            network: None,
            door: None,
            vouched: None,
            claimed: false,
        }
    }

    /// `id`'s join from `network`.
    fn from(id: ParticipantId, network: &str) -> JoinRequest {
        JoinRequest {
            network: Some(network.into()),
            ..req(id)
        }
    }

    fn back(id: ParticipantId, was: ParticipantId) -> JoinRequest {
        JoinRequest {
            rejoin: Some(format!("token-{was}")),
            ..req(id)
        }
    }

    fn came(r: &JoinRequest) -> (ParticipantId, &str, Option<&str>) {
        (r.info.id, &r.token, r.rejoin.as_deref())
    }

    fn enter(door: &mut Door, r: &JoinRequest, now: Instant) -> Result<Entry, WorkerError> {
        let entry = door.check(r, now)?;
        if let Entry::Enter { moderator } = entry {
            door.entered(came(r), moderator, now);
        }
        Ok(entry)
    }

    /// A door with 1 (its moderator) to `n` in.
    fn door_of(n: ParticipantId, now: Instant) -> Door {
        let mut door = Door::default();
        for id in 1..=n {
            enter(&mut door, &req(id), now).unwrap();
        }
        door
    }

    /// A door with 1 (moderator) and 2 in, locked, its lobby on.
    fn closed_door(now: Instant) -> Door {
        let mut door = door_of(2, now);
        door.set_lobby(true);
        door.set_password(Some("secret".into()));
        door
    }

    /// `id`'s join, vouched for by its signal server as `as_what`.
    fn vouched(id: ParticipantId, as_what: Vouched) -> JoinRequest {
        JoinRequest {
            vouched: Some(as_what),
            ..req(id)
        }
    }

    fn locked(lobby: bool) -> DoorSettings {
        DoorSettings {
            password: Some("digest".into()),
            lobby,
            ..Default::default()
        }
    }

    #[test]
    fn only_its_owner_moderates_a_room_that_has_one() {
        let now = Instant::now();
        let mut door = Door::default();
        // Eve knows the name and is first in: she moderates nothing, nor
        // does whoever comes next. (The endpoint marks the door owned as
        // a join says so.)
        door.mark_owned();
        let stranger = |id| JoinRequest {
            claimed: true,
            ..req(id)
        };
        assert_eq!(
            enter(&mut door, &stranger(5), now),
            Ok(Entry::Enter { moderator: false })
        );
        assert_eq!(
            enter(&mut door, &stranger(2), now),
            Ok(Entry::Enter { moderator: false })
        );
        assert_eq!(door.moderators().count(), 0);
        // Nor by staying longest: Eve's other tab closed, nobody moderates.
        let third = stranger(6);
        enter(&mut door, &third, now).unwrap();
        assert_eq!(door.left(5, Leaving::Left, now), None);
        assert_eq!(door.moderators().count(), 0);
        // The owner's key makes its join a moderator's: in past a lock
        // (one a stand-in set while the owner was away), a moderator.
        door.set_password(Some("set-by-eve".into()));
        let owner = JoinRequest {
            moderator: true,
            ..req(1)
        };
        assert_eq!(
            enter(&mut door, &owner, now),
            Ok(Entry::Enter { moderator: true })
        );
        assert!(door.is_moderator(1) && !door.is_moderator(5));
        // A room without an owner is as before: first in moderates.
        let mut open = Door::default();
        assert_eq!(
            enter(&mut open, &req(5), now),
            Ok(Entry::Enter { moderator: true })
        );
    }

    /// A restored room that has an owner lends nobody the role while its
    /// moderator is awaited; the owner's key takes it back from a
    /// stand-in of a room without one.
    #[test]
    fn nobody_stands_in_for_the_owner() {
        let now = Instant::now();
        let awaited = DoorSettings {
            returning: vec![ReturnKey {
                key: return_key("token-1"),
                moderator: true,
            }],
            ..Default::default()
        };
        let mut owned = Door::restored(awaited.clone(), now);
        owned.mark_owned();
        let eve = JoinRequest {
            claimed: true,
            ..req(5)
        };
        assert_eq!(
            enter(&mut owned, &eve, now),
            Ok(Entry::Enter { moderator: false })
        );
        assert_eq!(owned.moderators().count(), 0, "no stand-in");

        let mut unowned = Door::restored(awaited, now);
        assert_eq!(
            enter(&mut unowned, &req(5), now),
            Ok(Entry::Enter { moderator: false })
        );
        assert!(unowned.is_stand_in(5));
        let owner = JoinRequest {
            moderator: true,
            ..req(7)
        };
        enter(&mut unowned, &owner, now).unwrap();
        assert!(!unowned.is_moderator(5) && unowned.is_moderator(7));
    }

    #[test]
    fn a_room_made_anew_keeps_its_door_shut() {
        let now = Instant::now();
        let door = Door::restored(locked(false), now);
        assert_eq!(door.settings(), locked(false));
        // Being first back is no way in.
        assert_eq!(door.check(&req(1), now), Err(WorkerError::PasswordRequired));
        let mut wrong = req(1);
        wrong.password = Some("guess".into());
        assert_eq!(door.check(&wrong, now), Err(WorkerError::PasswordWrong));
        // Whoever passes it first moderates; the next does not.
        let mut door = door;
        let mut right = req(1);
        right.password = Some("digest".into());
        assert_eq!(
            enter(&mut door, &right, now),
            Ok(Entry::Enter { moderator: true })
        );
        right.info.id = 2;
        assert_eq!(
            enter(&mut door, &right, now),
            Ok(Entry::Enter { moderator: false })
        );
    }

    #[test]
    fn those_who_were_in_come_back_through_a_door_made_anew() {
        let now = Instant::now();
        let mut door = Door::restored(locked(true), now);
        // The first back moderates, if nobody who moderated is back yet.
        let ben = vouched(2, Vouched::Member);
        assert_eq!(
            enter(&mut door, &ben, now),
            Ok(Entry::Enter { moderator: true })
        );
        // Its moderator comes back one; someone else, not.
        let ana = vouched(1, Vouched::Moderator);
        assert_eq!(
            enter(&mut door, &ana, now),
            Ok(Entry::Enter { moderator: true })
        );
        let dan = vouched(4, Vouched::Member);
        assert_eq!(door.check(&dan, now), Ok(Entry::Enter { moderator: false }));
        // Another knocks, with the password, as before the loss.
        let mut cleo = req(3);
        cleo.password = Some("digest".into());
        assert_eq!(door.check(&cleo, now), Ok(Entry::Knock));
        assert_eq!(door.check(&req(3), now), Err(WorkerError::PasswordRequired));
        // A vouch is a way back, not a pass: too late, it is the password.
        let late = now + RETURN_WINDOW;
        assert_eq!(door.check(&dan, late), Err(WorkerError::PasswordRequired));
        assert!(door.restore_over(late) && !door.restore_over(now));
    }

    #[test]
    fn a_vouch_opens_only_a_door_made_anew() {
        let now = Instant::now();
        let mut door = Door::default();
        enter(&mut door, &req(1), now).unwrap();
        door.set_password(Some("digest".into()));
        door.set_lobby(true);
        let eve = vouched(5, Vouched::Moderator);
        assert_eq!(door.check(&eve, now), Err(WorkerError::PasswordRequired));
        assert!(!door.restore_over(now + RETURN_WINDOW * 10));
    }

    #[test]
    fn a_lobby_made_anew_waits_for_those_who_were_in() {
        let now = Instant::now();
        let mut door = Door::restored(
            DoorSettings {
                password: None,
                lobby: true,
                ..Default::default()
            },
            now,
        );
        // Nobody is in to let a newcomer in: it waits.
        assert_eq!(door.check(&req(3), now), Ok(Entry::Knock));
        door.knock(req(3), now);
        let ana = vouched(1, Vouched::Member);
        assert_eq!(
            enter(&mut door, &ana, now),
            Ok(Entry::Enter { moderator: true })
        );
        assert_eq!(door.waiting().collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn the_first_in_moderates_and_an_open_room_lets_everyone_in() {
        let now = Instant::now();
        let mut door = Door::default();
        assert_eq!(
            enter(&mut door, &req(1), now),
            Ok(Entry::Enter { moderator: true })
        );
        assert_eq!(
            enter(&mut door, &req(2), now),
            Ok(Entry::Enter { moderator: false })
        );
        assert!(door.is_moderator(1) && !door.is_moderator(2));
    }

    #[test]
    fn a_locked_room_wants_the_right_password() {
        let now = Instant::now();
        let mut door = door_of(1, now);
        door.set_password(Some("tulipe rouge".into()));
        assert_eq!(door.check(&req(2), now), Err(WorkerError::PasswordRequired));
        let mut wrong = req(2);
        wrong.password = Some("tulipe".into());
        assert_eq!(door.check(&wrong, now), Err(WorkerError::PasswordWrong));
        let mut right = req(2);
        right.password = Some("tulipe rouge".into());
        assert_eq!(
            door.check(&right, now),
            Ok(Entry::Enter { moderator: false })
        );
        // A token's moderator needs no password.
        let mut moderator = req(3);
        moderator.moderator = true;
        assert_eq!(
            door.check(&moderator, now),
            Ok(Entry::Enter { moderator: true })
        );
        door.set_password(None);
        assert_eq!(
            door.check(&req(4), now),
            Ok(Entry::Enter { moderator: false })
        );
    }

    #[test]
    fn the_lobby_holds_newcomers_until_taken_out() {
        let now = Instant::now();
        let mut door = door_of(1, now);
        door.set_lobby(true);
        for id in 2..2 + MAX_KNOCKS as u64 {
            assert_eq!(door.check(&req(id), now), Ok(Entry::Knock));
            door.knock(req(id), now);
        }
        assert_eq!(door.check(&req(99), now), Err(WorkerError::LobbyFull));
        assert_eq!(door.knocks().count(), MAX_KNOCKS);
        assert_eq!(door.take_knock(3).map(|r| r.info.id), Some(3));
        assert_eq!(door.take_knock(3), None);
        assert_eq!(door.take_all_knocks().len(), MAX_KNOCKS - 1);
    }

    #[test]
    fn one_network_cannot_fill_the_lobby() {
        let now = Instant::now();
        let mut door = door_of(1, now);
        door.set_lobby(true);
        for id in 0..MAX_KNOCKS_PER_NETWORK as u64 {
            assert_eq!(door.check(&from(10 + id, "a"), now), Ok(Entry::Knock));
            door.knock(from(10 + id, "a"), now);
        }
        assert_eq!(door.check(&from(20, "a"), now), Err(WorkerError::LobbyFull));
        assert_eq!(door.check(&from(21, "b"), now), Ok(Entry::Knock));
    }

    /// Four addresses with five knocks each used to fill the lobby, and
    /// the family was told `lobby-full`.
    #[test]
    fn a_full_lobby_makes_way_for_a_network_with_fewer_waiting() {
        let now = Instant::now();
        let mut door = door_of(1, now);
        door.set_lobby(true);
        let mut id = 10;
        for network in ["a", "b", "c", "d"] {
            for _ in 0..MAX_KNOCKS_PER_NETWORK {
                assert_eq!(door.check(&from(id, network), now), Ok(Entry::Knock));
                assert_eq!(door.knock(from(id, network), now), None);
                id += 1;
            }
        }
        assert_eq!(door.knocks().count(), MAX_KNOCKS);
        // The family, from a fifth network: in, and the newest knock of a
        // network with the most waiting makes way.
        assert_eq!(door.check(&from(100, "family"), now), Ok(Entry::Knock));
        let made_way = door.knock(from(100, "family"), now).expect("one made way");
        assert_eq!(made_way.info.id, 29, "d's newest");
        assert_eq!(door.knocks().count(), MAX_KNOCKS);
        assert!(door.waiting().any(|w| w == 100));
        // A second of the family's: in too, against c's newest. Once every
        // network has four waiting, a network with four is full.
        assert_eq!(
            door.knock(from(101, "family"), now).map(|r| r.info.id),
            Some(24)
        );
        door.knock(from(102, "family"), now);
        door.knock(from(103, "family"), now);
        assert_eq!(
            door.check(&from(104, "family"), now),
            Err(WorkerError::LobbyFull)
        );
    }

    #[test]
    fn one_network_knocks_a_few_times_then_once_in_a_while() {
        let now = Instant::now();
        let mut door = door_of(1, now);
        door.set_lobby(true);
        let from_a = |id| from(id, "a");
        // Knocking and leaving at once, over and over: each knock is a
        // banner on the moderator's screen.
        for id in 10..10 + u64::from(KNOCK_BURST) {
            assert_eq!(door.check(&from_a(id), now), Ok(Entry::Knock));
            door.knock(from_a(id), now);
            door.take_knock(id);
        }
        assert_eq!(
            door.check(&from_a(30), now),
            Err(WorkerError::KnockingTooOften)
        );
        assert_eq!(
            door.check(&from(31, "b"), now),
            Ok(Entry::Knock),
            "another network"
        );
        let later = now + KNOCK_EVERY;
        assert_eq!(door.check(&from_a(32), later), Ok(Entry::Knock));
        door.knock(from_a(32), later);
        door.take_knock(32);
        assert_eq!(
            door.check(&from_a(33), later),
            Err(WorkerError::KnockingTooOften)
        );
    }

    #[test]
    fn who_lost_its_media_comes_back_once_within_the_window() {
        let now = Instant::now();
        let mut door = closed_door(now);
        door.left(2, Leaving::Lost, now);
        assert_eq!(
            door.check(&back(12, 2), now),
            Ok(Entry::Enter { moderator: false })
        );
        door.entered(came(&back(12, 2)), false, now);
        // Used once: the same token does not let a second one in.
        assert_eq!(
            door.check(&back(22, 2), now),
            Err(WorkerError::PasswordRequired)
        );
        // Nor a token of someone still in the call.
        assert_eq!(
            door.check(&back(23, 12), now),
            Err(WorkerError::PasswordRequired)
        );
        // Past the window, the way back is closed.
        door.left(12, Leaving::Lost, now);
        let late = now + RETURN_WINDOW;
        assert_eq!(
            door.check(&back(32, 12), late),
            Err(WorkerError::PasswordRequired)
        );
    }

    #[test]
    fn who_left_or_was_removed_has_no_way_back() {
        let now = Instant::now();
        let mut door = door_of(3, now);
        door.set_lobby(true);
        door.set_password(Some("secret".into()));
        // 2 lost its media and came back as 12; then 12 is removed.
        door.left(2, Leaving::Lost, now);
        enter(&mut door, &back(12, 2), now).unwrap();
        door.left(12, Leaving::Removed, now);
        for token_of in [2, 12] {
            assert_eq!(
                door.check(&back(40, token_of), now),
                Err(WorkerError::PasswordRequired)
            );
        }
        door.left(3, Leaving::Left, now);
        assert_eq!(
            door.check(&back(43, 3), now),
            Err(WorkerError::PasswordRequired)
        );
    }

    #[test]
    fn a_moderator_back_from_a_loss_takes_its_role_back() {
        let now = Instant::now();
        let mut door = closed_door(now);
        // The moderator's media is lost: 2 stands in, so the lobby is
        // answered meanwhile.
        assert_eq!(door.left(1, Leaving::Lost, now), Some(2));
        assert!(door.is_moderator(2));
        assert_eq!(
            door.check(&back(11, 1), now),
            Ok(Entry::Enter { moderator: true })
        );
        assert_eq!(door.entered(came(&back(11, 1)), true, now), vec![2]);
        assert!(door.is_moderator(11) && !door.is_moderator(2));
    }

    #[test]
    fn a_stand_in_lost_in_turn_comes_back_without_the_role() {
        let now = Instant::now();
        let mut door = door_of(3, now);
        // A shared outage: the moderator 1, then its stand-in 2.
        assert_eq!(door.left(1, Leaving::Lost, now), Some(2));
        assert_eq!(door.left(2, Leaving::Lost, now), Some(3));
        assert_eq!(
            door.check(&back(12, 2), now),
            Ok(Entry::Enter { moderator: false })
        );
        assert!(door.entered(came(&back(12, 2)), false, now).is_empty());
        assert!(door.is_moderator(3) && !door.is_moderator(12));
        // The moderator comes back: the role is its alone again.
        assert_eq!(door.entered(came(&back(11, 1)), true, now), vec![3]);
        assert_eq!(door.moderators().collect::<Vec<_>>(), vec![11]);
    }

    #[test]
    fn a_moderator_let_in_from_the_lobby_by_its_old_token_moderates() {
        let now = Instant::now();
        let mut door = closed_door(now);
        // Its page knocked before its old place was given up; by the time
        // it is let in, the way back is open and its role kept.
        assert_eq!(door.left(1, Leaving::Lost, now), Some(2));
        assert_eq!(door.entered(came(&back(11, 1)), false, now), vec![2]);
        assert!(door.is_moderator(11));
        assert_eq!(door.moderators().count(), 1);
    }

    #[test]
    fn a_stand_in_whose_moderator_never_returns_keeps_the_role() {
        let now = Instant::now();
        let mut door = closed_door(now);
        door.left(1, Leaving::Lost, now);
        let later = now + RETURN_WINDOW;
        // Someone else, a moderator by its token, comes and goes: the
        // stand-in is not demoted by it.
        let token_moderator = JoinRequest {
            moderator: true,
            ..req(5)
        };
        enter(&mut door, &token_moderator, later).unwrap();
        door.left(5, Leaving::Lost, later);
        assert!(door.entered(came(&back(15, 5)), true, later).is_empty());
        assert!(door.is_moderator(2));
    }

    #[test]
    fn when_the_last_moderator_leaves_the_longest_there_moderates() {
        let now = Instant::now();
        let mut door = door_of(3, now);
        assert_eq!(door.left(2, Leaving::Left, now), None);
        assert_eq!(door.left(1, Leaving::Left, now), Some(3));
        assert!(door.is_moderator(3));
        assert_eq!(door.moderators().collect::<Vec<_>>(), vec![3]);
        assert_eq!(door.left(3, Leaving::Left, now), None);
        // An empty room lets the next one in as its moderator.
        door.set_password(Some("x".into()));
        assert_eq!(
            door.check(&req(4), now),
            Ok(Entry::Enter { moderator: true })
        );
    }

    /// The door of a room shut by 1 (moderator) with 2 in, as a restarted
    /// signal server reads it back.
    fn kept_door(now: Instant) -> Door {
        let settings = closed_door(now).settings();
        assert_eq!(settings.returning.len(), 2);
        assert!(
            !settings.returning.iter().any(|k| k.key.contains("token")),
            "tokens are kept as digests"
        );
        Door::restored(settings, now)
    }

    #[test]
    fn who_was_in_comes_back_through_a_door_kept_across_a_restart() {
        let now = Instant::now();
        let mut door = kept_door(now);
        // A stranger without the password is refused; with it, knocks.
        assert_eq!(door.check(&req(5), now), Err(WorkerError::PasswordRequired));
        // The member back first: in without password or lobby, standing in
        // for the moderator who is still awaited.
        assert_eq!(
            enter(&mut door, &back(12, 2), now),
            Ok(Entry::Enter { moderator: false })
        );
        assert!(door.is_moderator(12), "stands in");
        // The moderator is back: moderates, and the stand-in no longer.
        assert_eq!(
            door.check(&back(11, 1), now),
            Ok(Entry::Enter { moderator: true })
        );
        let demoted = door.entered(came(&back(11, 1)), true, now);
        assert_eq!(demoted, vec![12]);
        assert!(door.is_moderator(11) && !door.is_moderator(12));
        // A key is used once.
        assert_eq!(
            door.check(&back(13, 1), now),
            Err(WorkerError::PasswordRequired)
        );
    }

    #[test]
    fn kept_keys_open_nothing_after_the_return_window() {
        let now = Instant::now();
        let mut door = kept_door(now);
        let later = now + RETURN_WINDOW;
        assert_eq!(
            door.check(&back(11, 1), later),
            Err(WorkerError::PasswordRequired)
        );
        let mut right = req(5);
        right.password = Some("secret".into());
        assert_eq!(door.check(&right, later), Ok(Entry::Knock));
        door.settle(later);
        assert!(door.settings().returning.is_empty(), "nothing left to keep");
    }
}
