//! Which signalling session speaks for each participant, and what goes
//! with it (its event channel, or nothing). The media thread, the control
//! channel's worker side and its signal side each keep such a map; they
//! share these rules so that a session another one replaced (a resume
//! through a new WebSocket) can no longer take the participant back or
//! drop it: only the current session's detach counts.

use std::collections::HashMap;

use super::SessionId;
use crate::ids::ParticipantId;

#[derive(Debug)]
pub struct Sessions<T> {
    current: HashMap<ParticipantId, (SessionId, T)>,
}

impl<T> Default for Sessions<T> {
    fn default() -> Self {
        Sessions {
            current: HashMap::new(),
        }
    }
}

impl<T> Sessions<T> {
    /// `session` speaks for `participant` from now on; returns the one it
    /// replaces, to put back if the worker refuses.
    pub fn attach(
        &mut self,
        participant: ParticipantId,
        session: SessionId,
        value: T,
    ) -> Option<(SessionId, T)> {
        self.current.insert(participant, (session, value))
    }

    /// Undoes an [`Sessions::attach`] the worker refused.
    pub fn restore(&mut self, participant: ParticipantId, previous: Option<(SessionId, T)>) {
        match previous {
            Some(p) => {
                self.current.insert(participant, p);
            }
            None => {
                self.current.remove(&participant);
            }
        }
    }

    /// `session` went away: forgotten only if it is still the current one.
    pub fn detach(&mut self, participant: ParticipantId, session: SessionId) -> Option<T> {
        match self.current.get(&participant) {
            Some((current, _)) if *current == session => {
                self.current.remove(&participant).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// What a [`Command::releases`](super::Command::releases) says: the
    /// participant left (any session), or one session detached.
    pub fn release(&mut self, participant: ParticipantId, session: Option<SessionId>) -> Option<T> {
        match session {
            None => self.remove(participant),
            Some(s) => self.detach(participant, s),
        }
    }

    /// The participant is gone, whoever spoke for it.
    pub fn remove(&mut self, participant: ParticipantId) -> Option<T> {
        self.current.remove(&participant).map(|(_, v)| v)
    }

    pub fn get(&self, participant: ParticipantId) -> Option<&T> {
        self.current.get(&participant).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, participant: ParticipantId) -> Option<&mut T> {
        self.current.get_mut(&participant).map(|(_, v)| v)
    }

    /// Every participant with its current session.
    pub fn drain(&mut self) -> impl Iterator<Item = (ParticipantId, SessionId, T)> + '_ {
        self.current.drain().map(|(p, (s, v))| (p, s, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_session_detaches() {
        let mut s = Sessions::default();
        s.attach(7, 1, "wifi");
        let replaced = s.attach(7, 2, "4g");
        assert_eq!(replaced, Some((1, "wifi")));
        assert_eq!(
            s.detach(7, 1),
            None,
            "the old socket closing changes nothing"
        );
        assert_eq!(s.get(7), Some(&"4g"));
        assert_eq!(s.detach(7, 2), Some("4g"));
        assert_eq!(s.get(7), None);
    }

    #[test]
    fn a_refused_attach_is_undone() {
        let mut s = Sessions::default();
        s.attach(7, 1, "mine");
        let previous = s.attach(7, 9, "intruder");
        s.restore(7, previous);
        assert_eq!(s.get(7), Some(&"mine"));
        let none = s.attach(8, 3, "new");
        s.restore(8, none);
        assert_eq!(s.get(8), None);
    }
}
