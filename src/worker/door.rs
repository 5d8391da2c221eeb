//! The door of a room: who may come in, and who decides.
//!
//! A room's first participant is its moderator, and so is anyone whose
//! room token says `role: moderator`. A moderator may lock the room with a
//! password and turn the lobby on: then a newcomer must give the password,
//! and waits ("knocks") until a moderator lets it in or refuses it. When
//! the last moderator leaves, the participant there the longest becomes
//! one, so that a lobby never waits for nobody.
//!
//! The door also remembers who was let in (by resume token), so that a
//! participant whose media was lost joins again without knocking a second
//! time (a phone moving from Wi-Fi to 4G, a worker failing over keeps the
//! room's settings only if it is the same worker). Plain data: the room
//! calls it, the tests drive it without sockets.

use std::collections::VecDeque;

use super::{JoinRequest, PeerEvent, WorkerError};
use crate::ids::ParticipantId;
use crate::secret;

/// People waiting in one room's lobby at most: more is a flood.
pub const MAX_KNOCKS: usize = 20;
/// Departed participants remembered, to let back in without knocking.
const REMEMBERED: usize = 256;

/// How a join may go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// In at once, a moderator or not.
    Enter { moderator: bool },
    /// Waits in the lobby.
    Knock,
}

#[derive(Debug, Default)]
pub struct Door {
    password: Option<String>,
    lobby: bool,
    /// Who is in, in the order they came, and whether each moderates.
    members: Vec<(ParticipantId, bool)>,
    /// Who waits, first come first: their joins, as sent.
    knocks: VecDeque<JoinRequest>,
    /// Resume tokens of everyone let in, with their role; the oldest are
    /// forgotten past [`REMEMBERED`].
    admitted: VecDeque<(String, bool)>,
}

impl Door {
    /// How `req` may enter the room now.
    pub fn check(&self, req: &JoinRequest) -> Result<Entry, WorkerError> {
        if let Some(moderator) = req.rejoin.as_deref().and_then(|t| self.admitted_as(t)) {
            return Ok(Entry::Enter { moderator });
        }
        if self.members.is_empty() || req.moderator {
            return Ok(Entry::Enter { moderator: true });
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
            if self.knocks.len() >= MAX_KNOCKS {
                return Err(WorkerError::LobbyFull);
            }
            return Ok(Entry::Knock);
        }
        Ok(Entry::Enter { moderator: false })
    }

    fn admitted_as(&self, token: &str) -> Option<bool> {
        self.admitted
            .iter()
            .find(|(t, _)| secret::equal(t.as_bytes(), token.as_bytes()))
            .map(|(_, m)| *m)
    }

    /// `id` came in (with `token`, its resume token).
    pub fn entered(&mut self, id: ParticipantId, token: &str, moderator: bool) {
        self.members.push((id, moderator));
        self.admitted.retain(|(t, _)| t != token);
        self.admitted.push_back((token.to_string(), moderator));
        while self.admitted.len() > REMEMBERED {
            self.admitted.pop_front();
        }
    }

    /// `id` went out. A participant removed by a moderator is forgotten:
    /// it does not come back in without the password and the lobby.
    /// Returns who became moderator, if the last one left.
    pub fn left(&mut self, id: ParticipantId, token: &str, removed: bool) -> Option<ParticipantId> {
        self.members.retain(|(m, _)| *m != id);
        if removed {
            self.admitted.retain(|(t, _)| t != token);
        }
        if self.members.iter().any(|(_, m)| *m) {
            return None;
        }
        let first = self.members.first_mut()?;
        first.1 = true;
        Some(first.0)
    }

    pub fn is_moderator(&self, id: ParticipantId) -> bool {
        self.members
            .iter()
            .any(|(m, moderator)| *m == id && *moderator)
    }

    pub fn moderators(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.members.iter().filter(|(_, m)| *m).map(|(id, _)| *id)
    }

    pub fn knock(&mut self, req: JoinRequest) {
        self.knocks.push_back(req);
    }

    /// The join of `id`, taken out of the lobby.
    pub fn take_knock(&mut self, id: ParticipantId) -> Option<JoinRequest> {
        let at = self.knocks.iter().position(|k| k.info.id == id)?;
        self.knocks.remove(at)
    }

    /// Everyone waiting, taken out of the lobby (the lobby was turned off,
    /// or nobody is left to let them in).
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
        }
    }

    fn enter(door: &mut Door, r: &JoinRequest) -> Result<Entry, WorkerError> {
        let entry = door.check(r)?;
        if let Entry::Enter { moderator } = entry {
            door.entered(r.info.id, &r.token, moderator);
        }
        Ok(entry)
    }

    #[test]
    fn the_first_in_moderates_and_an_open_room_lets_everyone_in() {
        let mut door = Door::default();
        assert_eq!(
            enter(&mut door, &req(1)),
            Ok(Entry::Enter { moderator: true })
        );
        assert_eq!(
            enter(&mut door, &req(2)),
            Ok(Entry::Enter { moderator: false })
        );
        assert!(door.is_moderator(1) && !door.is_moderator(2));
    }

    #[test]
    fn a_locked_room_wants_the_right_password() {
        let mut door = Door::default();
        enter(&mut door, &req(1)).unwrap();
        door.set_password(Some("tulipe rouge".into()));
        assert_eq!(door.check(&req(2)), Err(WorkerError::PasswordRequired));
        let mut wrong = req(2);
        wrong.password = Some("tulipe".into());
        assert_eq!(door.check(&wrong), Err(WorkerError::PasswordWrong));
        let mut right = req(2);
        right.password = Some("tulipe rouge".into());
        assert_eq!(door.check(&right), Ok(Entry::Enter { moderator: false }));
        // A token's moderator needs no password.
        let mut moderator = req(3);
        moderator.moderator = true;
        assert_eq!(door.check(&moderator), Ok(Entry::Enter { moderator: true }));
        door.set_password(None);
        assert_eq!(door.check(&req(4)), Ok(Entry::Enter { moderator: false }));
    }

    #[test]
    fn the_lobby_holds_newcomers_until_taken_out() {
        let mut door = Door::default();
        enter(&mut door, &req(1)).unwrap();
        door.set_lobby(true);
        for id in 2..2 + MAX_KNOCKS as u64 {
            assert_eq!(door.check(&req(id)), Ok(Entry::Knock));
            door.knock(req(id));
        }
        assert_eq!(door.check(&req(99)), Err(WorkerError::LobbyFull));
        assert_eq!(door.knocks().count(), MAX_KNOCKS);
        assert_eq!(door.take_knock(3).map(|r| r.info.id), Some(3));
        assert_eq!(door.take_knock(3), None);
        assert_eq!(door.take_all_knocks().len(), MAX_KNOCKS - 1);
    }

    #[test]
    fn who_was_let_in_comes_back_without_knocking_unless_removed() {
        let mut door = Door::default();
        enter(&mut door, &req(1)).unwrap();
        enter(&mut door, &req(2)).unwrap();
        door.set_lobby(true);
        door.set_password(Some("secret".into()));
        // Media lost: 2 joins again, under a new id, showing its old token.
        door.left(2, "token-2", false);
        let mut again = req(12);
        again.rejoin = Some("token-2".into());
        assert_eq!(door.check(&again), Ok(Entry::Enter { moderator: false }));
        door.entered(12, "token-12", false);
        // Removed: its token no longer opens the door.
        door.left(12, "token-12", true);
        let mut after = req(22);
        after.rejoin = Some("token-12".into());
        assert_eq!(door.check(&after), Err(WorkerError::PasswordRequired));
        // Someone else's made-up token opens nothing.
        after.rejoin = Some("token-9".into());
        assert_eq!(door.check(&after), Err(WorkerError::PasswordRequired));
        // The moderator's rejoin keeps its role.
        door.left(1, "token-1", false);
        let mut host = req(11);
        host.rejoin = Some("token-1".into());
        assert_eq!(door.check(&host), Ok(Entry::Enter { moderator: true }));
    }

    #[test]
    fn when_the_last_moderator_leaves_the_longest_there_moderates() {
        let mut door = Door::default();
        for id in 1..=3 {
            enter(&mut door, &req(id)).unwrap();
        }
        assert_eq!(door.left(2, "token-2", false), None);
        assert_eq!(door.left(1, "token-1", false), Some(3));
        assert!(door.is_moderator(3));
        assert_eq!(door.moderators().collect::<Vec<_>>(), vec![3]);
        assert_eq!(door.left(3, "token-3", false), None);
        // An empty room lets the next one in as its moderator.
        door.set_password(Some("x".into()));
        assert_eq!(door.check(&req(4)), Ok(Entry::Enter { moderator: true }));
    }
}
