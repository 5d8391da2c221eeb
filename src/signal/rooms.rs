//! The control plane's view of rooms: who is in which call, under which
//! name, with which mute state, and how to reach their signalling session.
//!
//! A plain mutex suffices: it is taken per signalling message, never per
//! media packet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::protocol::{ParticipantInfo, ServerMessage};
use crate::ids::ParticipantId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("this call is full ({0} participants)")]
    Full(usize),
}

struct Member {
    info: ParticipantInfo,
    tx: mpsc::Sender<ServerMessage>,
}

pub struct Rooms {
    max_participants: usize,
    rooms: Mutex<HashMap<String, BTreeMap<ParticipantId, Member>>>,
}

impl Rooms {
    pub fn new(max_participants: usize) -> Self {
        Rooms {
            max_participants,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<ParticipantId, Member>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is a single insert/remove), so poisoning is ignored.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that `room` has a free place (before media is set up).
    pub fn check_capacity(&self, room: &str) -> Result<(), JoinError> {
        let rooms = self.lock();
        match rooms.get(room) {
            Some(m) if m.len() >= self.max_participants => {
                Err(JoinError::Full(self.max_participants))
            }
            _ => Ok(()),
        }
    }

    /// Adds a participant; tells the others; returns who was already there.
    pub fn join(
        &self,
        room: &str,
        info: ParticipantInfo,
        tx: mpsc::Sender<ServerMessage>,
    ) -> Result<Vec<ParticipantInfo>, JoinError> {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_string()).or_default();
        if members.len() >= self.max_participants {
            return Err(JoinError::Full(self.max_participants));
        }
        let others: Vec<ParticipantInfo> = members.values().map(|m| m.info.clone()).collect();
        broadcast(
            members,
            ServerMessage::ParticipantJoined {
                participant: info.clone(),
            },
        );
        members.insert(info.id, Member { info, tx });
        Ok(others)
    }

    pub fn leave(&self, room: &str, id: ParticipantId) {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        if members.remove(&id).is_none() {
            return;
        }
        if members.is_empty() {
            rooms.remove(room);
        } else {
            broadcast(members, ServerMessage::ParticipantLeft { id });
        }
    }

    pub fn set_mute(&self, room: &str, id: ParticipantId, audio: bool, video: bool) {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        if let Some(m) = members.get_mut(&id) {
            m.info.audio = audio;
            m.info.video = video;
        }
        broadcast(members, ServerMessage::Mute { id, audio, video });
    }

    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    pub fn participant_count(&self) -> usize {
        self.lock().values().map(|m| m.len()).sum()
    }
}

/// Sends to every member. Never waits: a session that cannot keep up loses
/// the message (and will be closed by its own write timeout), the others
/// are not held back.
fn broadcast(members: &BTreeMap<ParticipantId, Member>, msg: ServerMessage) {
    for m in members.values() {
        if let Err(e) = m.tx.try_send(msg.clone()) {
            tracing::warn!(
                peer = m.info.id,
                "signalling queue full, message dropped: {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: ParticipantId) -> ParticipantInfo {
        ParticipantInfo {
            id,
            name: format!("p{id}"),
            audio: true,
            video: true,
        }
    }

    #[test]
    fn others_are_told_of_joins_mutes_and_leaves() {
        let rooms = Rooms::new(4);
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, _rx2) = mpsc::channel(8);
        assert!(rooms.join("r", info(1), tx1).unwrap().is_empty());
        assert_eq!(rooms.join("r", info(2), tx2).unwrap(), vec![info(1)]);
        assert_eq!(
            rx1.try_recv().unwrap(),
            ServerMessage::ParticipantJoined {
                participant: info(2)
            }
        );
        rooms.set_mute("r", 2, false, true);
        assert_eq!(
            rx1.try_recv().unwrap(),
            ServerMessage::Mute {
                id: 2,
                audio: false,
                video: true
            }
        );
        rooms.leave("r", 2);
        assert_eq!(
            rx1.try_recv().unwrap(),
            ServerMessage::ParticipantLeft { id: 2 }
        );
        rooms.leave("r", 1);
        assert_eq!(rooms.room_count(), 0);
    }

    #[test]
    fn a_full_room_refuses() {
        let rooms = Rooms::new(1);
        let (tx, _rx) = mpsc::channel(8);
        rooms.join("r", info(1), tx.clone()).unwrap();
        assert_eq!(rooms.check_capacity("r"), Err(JoinError::Full(1)));
        assert_eq!(rooms.join("r", info(2), tx), Err(JoinError::Full(1)));
        assert_eq!(rooms.check_capacity("other"), Ok(()));
    }

    #[test]
    fn rooms_do_not_hear_each_other() {
        let rooms = Rooms::new(4);
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, _rx2) = mpsc::channel(8);
        rooms.join("a", info(1), tx1).unwrap();
        rooms.join("b", info(2), tx2).unwrap();
        assert!(rx1.try_recv().is_err());
    }
}
