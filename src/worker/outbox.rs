//! Events on their way from a media shard to one participant's signalling.
//!
//! The shard never waits for a session: its channel is bounded, and a
//! session busy writing to a slow WebSocket can leave it full. An event it
//! cannot take waits here, in order, and is sent again at the shard's next
//! turn, so a slow page still gets every offer (a lost one would leave it
//! without a newcomer's video until it resumed). Only a session stuck for
//! [`MAX_WAITING`] events loses the newest (never the closing one); its
//! resume sends the pending offer again.

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::sessions::Sessions;
use super::{PeerEvent, SessionId};
use crate::ids::ParticipantId;

/// Events kept for a session whose channel is full.
pub const MAX_WAITING: usize = 1024;

#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::Sender<PeerEvent>,
    waiting: VecDeque<PeerEvent>,
    /// Events dropped past [`MAX_WAITING`].
    dropped: u64,
}

impl Outbox {
    pub fn new(tx: mpsc::Sender<PeerEvent>) -> Self {
        Outbox {
            tx,
            waiting: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Sends `event` after those waiting, or keeps it. Returns true when
    /// this is the first event dropped (the session is stuck past
    /// [`MAX_WAITING`]), for the caller to say so once.
    pub fn push(&mut self, event: PeerEvent) -> bool {
        if self.waiting.is_empty() {
            match self.tx.try_send(event) {
                // A closed session's leave or detach is on its way.
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(event)) => self.waiting.push_back(event),
            }
            return false;
        }
        if self.waiting.len() >= MAX_WAITING && !matches!(event, PeerEvent::Closed { .. }) {
            self.dropped += 1;
            return self.dropped == 1;
        }
        self.waiting.push_back(event);
        self.flush();
        false
    }

    /// Sends what waits, in order, while the channel takes it. Returns
    /// whether something still waits.
    pub fn flush(&mut self) -> bool {
        while let Some(event) = self.waiting.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => self.waiting.clear(),
                Err(TrySendError::Full(event)) => {
                    self.waiting.push_front(event);
                    return true;
                }
            }
        }
        false
    }

    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

/// Every participant's outbox on one shard, the current session's.
#[derive(Debug, Default)]
pub struct Outboxes {
    current: Sessions<Outbox>,
    /// Participants whose events wait for room in their channel.
    waiting: Vec<ParticipantId>,
    /// Sessions of participants gone whose last events still wait.
    closing: Vec<Outbox>,
}

impl Outboxes {
    /// `session` receives the participant's events on `tx` from now on.
    pub fn attach(
        &mut self,
        participant: ParticipantId,
        session: SessionId,
        tx: mpsc::Sender<PeerEvent>,
    ) {
        self.current.attach(participant, session, Outbox::new(tx));
    }

    /// What a [`Command::releases`](super::Command::releases) says.
    pub fn release(&mut self, participant: ParticipantId, session: Option<SessionId>) {
        // A detach from a session already replaced changes nothing: the
        // current session's waiting events still go.
        if self.current.release(participant, session).is_some() {
            self.waiting.retain(|p| *p != participant);
        }
    }

    /// Hands each participant's session its events: first those that
    /// waited for room in its channel, then `events`, in order.
    pub fn hand_on(&mut self, events: impl Iterator<Item = (ParticipantId, PeerEvent)>) {
        let Outboxes {
            current, waiting, ..
        } = self;
        waiting.retain(|p| current.get_mut(*p).is_some_and(Outbox::flush));
        self.closing.retain_mut(Outbox::flush);
        for (participant, event) in events {
            let closed = matches!(event, PeerEvent::Closed { .. });
            if let Some(outbox) = self.current.get_mut(participant) {
                if outbox.push(event) {
                    tracing::warn!(
                        peer = participant,
                        "signalling stuck: events are dropped until it resumes"
                    );
                }
                if outbox.is_waiting() && !self.waiting.contains(&participant) {
                    self.waiting.push(participant);
                }
            }
            if closed {
                // Its last events, the closing one among them, still go.
                if let Some(outbox) = self.current.remove(participant) {
                    if outbox.is_waiting() {
                        self.closing.push(outbox);
                    }
                }
                self.waiting.retain(|p| *p != participant);
            }
        }
    }

    /// Events waiting for `participant`'s session to take them.
    #[cfg(test)]
    pub fn waiting_for(&self, participant: ParticipantId) -> usize {
        self.current.get(participant).map_or(0, |o| o.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: u32) -> PeerEvent {
        PeerEvent::Offer {
            id,
            sdp: String::new(),
        }
    }

    fn offer_id(e: PeerEvent) -> u32 {
        match e {
            PeerEvent::Offer { id, .. } => id,
            other => panic!("not an offer: {other:?}"),
        }
    }

    #[test]
    fn a_full_channel_delays_events_but_loses_none() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut outbox = Outbox::new(tx);
        for id in 0..5 {
            assert!(!outbox.push(offer(id)), "nothing dropped");
        }
        assert!(outbox.is_waiting());
        // The session reads two; the shard's next turn sends two more.
        let mut got = vec![
            offer_id(rx.try_recv().unwrap()),
            offer_id(rx.try_recv().unwrap()),
        ];
        assert!(outbox.flush());
        while let Ok(e) = rx.try_recv() {
            got.push(offer_id(e));
        }
        assert!(!outbox.flush());
        got.push(offer_id(rx.try_recv().unwrap()));
        assert_eq!(got, vec![0, 1, 2, 3, 4], "every event, in order");
        assert!(!outbox.is_waiting());
    }

    #[test]
    fn a_stuck_session_loses_only_what_is_past_the_limit_but_hears_it_closed() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        let first_drops: Vec<u32> = (0..(MAX_WAITING + 10) as u32)
            .filter(|id| outbox.push(offer(*id)))
            .collect();
        // One in the channel, MAX_WAITING kept, the rest dropped and said
        // once, at the first.
        assert_eq!(first_drops, vec![MAX_WAITING as u32 + 1]);
        outbox.push(PeerEvent::Closed {
            reason: "gone".into(),
        });
        let mut got = Vec::new();
        while outbox.is_waiting() || !rx.is_empty() {
            while let Ok(e) = rx.try_recv() {
                got.push(e);
            }
            outbox.flush();
        }
        assert_eq!(got.len(), MAX_WAITING + 2);
        assert!(matches!(got.last(), Some(PeerEvent::Closed { .. })));
    }

    #[test]
    fn a_closed_session_keeps_nothing() {
        let (tx, rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        outbox.push(offer(0));
        outbox.push(offer(1));
        drop(rx);
        assert!(!outbox.flush());
        assert!(!outbox.push(offer(2)));
        assert!(!outbox.is_waiting());
    }

    #[test]
    fn a_late_detach_from_a_replaced_session_stops_nothing() {
        let mut boxes = Outboxes::default();
        let (old_tx, _old_rx) = mpsc::channel(1);
        boxes.attach(7, 1, old_tx);
        // Resumed through session 2 (Wi-Fi to 4G), whose channel is full.
        let (tx, mut rx) = mpsc::channel(1);
        boxes.attach(7, 2, tx);
        boxes.hand_on([(7, offer(0)), (7, offer(1))].into_iter());
        // The old socket times out at last.
        boxes.release(7, Some(1));
        assert_eq!(offer_id(rx.try_recv().unwrap()), 0);
        boxes.hand_on(std::iter::empty());
        assert_eq!(
            offer_id(rx.try_recv().unwrap()),
            1,
            "what waited for session 2 still goes"
        );
    }
}
