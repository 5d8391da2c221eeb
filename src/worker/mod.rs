//! The media plane: an SFU worker.
//!
//! A worker owns one UDP socket shared by every peer it serves and one media
//! thread that runs all its rooms (`media_loop`). The control plane talks to
//! it only through [`WorkerHandle`]: commands in, [`PeerEvent`]s out. The
//! same handle drives an in-process worker (`parloir serve`) or a worker on
//! another host (`cluster::remote` carries the commands over a WebSocket).

pub mod batch_send;
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

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::ids::{ParticipantId, ParticipantInfo};
pub use media_loop::{spawn, MediaConfig};
pub use stats::Shared as WorkerStats;

#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum WorkerError {
    #[error("no such participant on this worker")]
    UnknownParticipant,
    #[error("participant already joined")]
    AlreadyJoined,
    #[error("this call is full ({0} participants)")]
    RoomFull(usize),
    #[error("this media server is draining and takes no new rooms")]
    Draining,
    #[error("the session cannot be resumed")]
    ResumeRefused,
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("the media worker is not reachable")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

/// What a worker tells the signalling side about one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PeerEvent {
    /// A server offer: tracks were added or removed. The answer must echo `id`.
    Offer { id: u32, sdp: String },
    /// Someone entered the participant's room.
    ParticipantJoined { participant: ParticipantInfo },
    /// Someone left the participant's room.
    ParticipantLeft { id: ParticipantId },
    /// Someone's microphone/camera state changed.
    Mute {
        id: ParticipantId,
        audio: bool,
        video: bool,
    },
    /// The media connection is gone; the participant was removed from the
    /// media plane and must join again (possibly on another worker).
    Closed { reason: String },
}

/// What a participant needs to pick its session up again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub room: String,
    pub others: Vec<ParticipantInfo>,
    /// A server offer still waiting for its answer, sent again.
    pub offer: Option<(u32, String)>,
}

/// Parameters of a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub room: String,
    pub info: ParticipantInfo,
    /// Secret the participant shows to resume (see `ids::new_resume_token`).
    pub token: String,
    pub max_participants: usize,
}

pub(crate) enum Command {
    Join {
        req: JoinRequest,
        events: mpsc::Sender<PeerEvent>,
        reply: oneshot::Sender<Result<Vec<ParticipantInfo>, WorkerError>>,
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
    Mute {
        participant: ParticipantId,
        audio: bool,
        video: bool,
    },
    Leave {
        participant: ParticipantId,
    },
    /// The participant's signalling went away: keep its media for a grace
    /// period, during which it may resume.
    Detach {
        participant: ParticipantId,
    },
    Resume {
        participant: ParticipantId,
        token: String,
        events: mpsc::Sender<PeerEvent>,
        reply: oneshot::Sender<Result<Resumed, WorkerError>>,
    },
    /// Take no new room; after `deadline_secs`, move everyone still here.
    Drain {
        deadline_secs: u64,
    },
}

/// The control plane's handle on a worker. Cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<Command>,
    /// The address peers send media to (the ICE candidate).
    pub media_addr: SocketAddr,
}

impl WorkerHandle {
    pub(crate) fn new(tx: mpsc::Sender<Command>, media_addr: SocketAddr) -> Self {
        WorkerHandle { tx, media_addr }
    }

    /// The worker behind this handle stopped (its thread ended, or the
    /// connection to a remote worker was lost).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

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

    /// Sends without waiting; used on teardown paths that must not block.
    fn post(&self, cmd: Command) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(cmd) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }

    /// Creates the participant's connection in a room; returns the others
    /// already there. Server offers and room events arrive on `events`.
    pub async fn join(
        &self,
        req: JoinRequest,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<Vec<ParticipantInfo>, WorkerError> {
        self.call(|reply| Command::Join { req, events, reply })
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

    pub async fn resume(
        &self,
        participant: ParticipantId,
        token: String,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<Resumed, WorkerError> {
        self.call(|reply| Command::Resume {
            participant,
            token,
            events,
            reply,
        })
        .await
    }

    pub fn mute(&self, participant: ParticipantId, audio: bool, video: bool) {
        self.post(Command::Mute {
            participant,
            audio,
            video,
        });
    }

    pub fn leave(&self, participant: ParticipantId) {
        self.post(Command::Leave { participant });
    }

    pub fn detach(&self, participant: ParticipantId) {
        self.post(Command::Detach { participant });
    }

    pub fn drain(&self, deadline_secs: u64) {
        self.post(Command::Drain { deadline_secs });
    }
}
