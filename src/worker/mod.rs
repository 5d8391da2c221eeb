//! The media plane: an SFU worker.
//!
//! A worker owns one UDP socket shared by every peer it serves and one media
//! thread that runs all its rooms (`media_loop`). The control plane talks to
//! it only through [`WorkerHandle`]: commands in, [`PeerEvent`]s out. That
//! boundary is what lets the same worker run in-process (`parloir serve`) or
//! on another host later.

mod demux;
mod media_clock;
mod media_loop;
mod peer;
mod rewrite;
mod room;
#[cfg(test)]
mod room_tests;
pub mod router;
pub mod stats;
mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::ids::ParticipantId;
pub use media_loop::{spawn, MediaConfig};
pub use stats::Shared as WorkerStats;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("no such participant on this worker")]
    UnknownParticipant,
    #[error("participant already joined")]
    AlreadyJoined,
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("the media worker is not running")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

/// What a worker tells the signalling side about one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A server offer: tracks were added or removed. The answer must echo `id`.
    Offer { id: u32, sdp: String },
    /// The media connection is gone; the participant was removed from the
    /// media plane and must join again.
    Closed { reason: String },
}

pub(crate) enum Command {
    Join {
        room: String,
        participant: ParticipantId,
        events: mpsc::Sender<PeerEvent>,
        reply: oneshot::Sender<Result<(), WorkerError>>,
    },
    Offer {
        participant: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<String, WorkerError>>,
    },
    Answer {
        participant: ParticipantId,
        id: u32,
        sdp: String,
        reply: oneshot::Sender<Result<(), WorkerError>>,
    },
    Candidate {
        participant: ParticipantId,
        candidate: String,
        reply: oneshot::Sender<Result<(), WorkerError>>,
    },
    Leave {
        participant: ParticipantId,
    },
}

/// The control plane's handle on a worker. Cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<Command>,
    pub stats: Arc<WorkerStats>,
    /// The address peers send media to (the ICE candidate).
    pub media_addr: SocketAddr,
}

impl WorkerHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, WorkerError>>) -> Command,
    ) -> Result<T, WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| WorkerError::Unavailable)?;
        rx.await.map_err(|_| WorkerError::Unavailable)?
    }

    /// Creates the participant's connection in `room`. Server offers and
    /// connection loss arrive on `events`.
    pub async fn join(
        &self,
        room: &str,
        participant: ParticipantId,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<(), WorkerError> {
        let room = room.to_string();
        self.call(|reply| Command::Join {
            room,
            participant,
            events,
            reply,
        })
        .await
    }

    /// The participant's offer; returns the answer SDP.
    pub async fn offer(
        &self,
        participant: ParticipantId,
        sdp: String,
    ) -> Result<String, WorkerError> {
        self.call(|reply| Command::Offer {
            participant,
            sdp,
            reply,
        })
        .await
    }

    /// The participant's answer to server offer `id`.
    pub async fn answer(
        &self,
        participant: ParticipantId,
        id: u32,
        sdp: String,
    ) -> Result<(), WorkerError> {
        self.call(|reply| Command::Answer {
            participant,
            id,
            sdp,
            reply,
        })
        .await
    }

    pub async fn candidate(
        &self,
        participant: ParticipantId,
        candidate: String,
    ) -> Result<(), WorkerError> {
        self.call(|reply| Command::Candidate {
            participant,
            candidate,
            reply,
        })
        .await
    }

    /// Removes the participant. Never waits: leaving happens on teardown
    /// paths (a dropped WebSocket) that must not block.
    pub fn leave(&self, participant: ParticipantId) {
        if self.tx.try_send(Command::Leave { participant }).is_err() {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(Command::Leave { participant }).await;
            });
        }
    }
}
