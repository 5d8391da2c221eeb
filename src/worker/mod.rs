//! The media plane: an SFU worker.
//!
//! A worker owns one UDP socket shared by every peer it serves and one media
//! thread (`media_loop`) around an [`endpoint`] that runs all its rooms.
//! The control plane talks to it only through [`WorkerHandle`]: [`Command`]s
//! in, [`Reply`]s and [`PeerEvent`]s out. The same handle drives an
//! in-process worker (`parloir serve`) or a worker on another host
//! (`cluster::control` carries the same commands over a WebSocket).

mod allocator;
pub mod batch_send;
mod bitrate;
mod cores;
mod demux;
mod door;
pub(crate) mod endpoint;
#[cfg(test)]
mod endpoint_tests;
mod ice_sources;
pub(crate) mod ice_tcp;
mod layer;
mod layer_switch;
mod link_quality;
mod media_clock;
mod media_loop;
mod outbox;
pub(crate) mod peer;
mod repair_cache;
pub(crate) mod rewrite;
mod room;
#[cfg(test)]
mod room_tests;
mod router;
pub(crate) mod sessions;
pub(crate) mod shard;
mod shard_map;
mod shard_set;
#[cfg(test)]
mod shard_tests;
mod speaker;
pub(crate) mod stats;
mod steering;
mod tcp_handoff;
#[cfg(test)]
mod test_client;
mod throttle;
pub(crate) mod vp8;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::ids::{ParticipantId, ParticipantInfo, ParticipantState};
pub use cores::allowed as allowed_cores;
pub use door::{return_key, DoorSettings, ReturnKey, RETURN_WINDOW};
/// ICE-TCP connections one address may hold on a shard (tests read it).
pub use ice_tcp::max_per_address as ice_tcp_max_per_address;
pub use ice_tcp::{
    max_per_address as max_tcp_per_address, HandedConnection, MediaTcp, MAX_FRAME as MAX_TCP_FRAME,
};
pub use link_quality::{Level, LinkQuality};
pub use media_loop::{spawn, MediaConfig};
pub use shard::MAX_SHARDS;
pub use stats::WorkerStats;

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
    #[error("too many offers or answers; wait a moment before the next one")]
    TooManyOffers,
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("this call is locked with a password")]
    PasswordRequired,
    #[error("wrong password")]
    PasswordWrong,
    #[error("too many people are waiting to be let in")]
    LobbyFull,
    #[error("you asked to be let in too often; wait a little before asking again")]
    KnockingTooOften,
    #[error("only a moderator of the call may do this")]
    NotModerator,
    #[error("nobody with this id is waiting or in this call")]
    NoSuchPerson,
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
    /// `id` is now the one speaking in the participant's room.
    Speaker { id: ParticipantId },
    /// The participant now receives video from these others only (last-N,
    /// or its bandwidth).
    Forwarded { video: Vec<ParticipantId> },
    /// The participant should send only these simulcast layers (by rid) of
    /// its track `mid`: nobody receives the others.
    Layers { mid: String, active: Vec<String> },
    /// How well each participant's links carry the call (sent to everyone
    /// in the room when a level changes, and to a newcomer).
    Quality { links: Vec<LinkQuality> },
    /// Someone's state (microphone, camera, screen, hand) changed.
    State {
        id: ParticipantId,
        state: ParticipantState,
    },
    /// A chat message in the room (to its sender too).
    Chat {
        from: ParticipantId,
        name: String,
        text: String,
    },
    /// The media connection is gone; the participant was removed from the
    /// media plane and must join again (possibly on another worker).
    Closed { reason: String },
    /// To a moderator: `id` waits in the lobby under `name`.
    Knocking { id: ParticipantId, name: String },
    /// To a moderator: `id` no longer waits (let in, refused, or gone).
    KnockEnded { id: ParticipantId },
    /// The room's settings, and whether the participant moderates.
    RoomSettings {
        moderator: bool,
        locked: bool,
        lobby: bool,
    },
    /// To a participant that knocked: it was let in; `others` are there.
    Admitted { others: Vec<ParticipantInfo> },
    /// To a participant that knocked: it was not let in.
    Refused { reason: String },
    /// A moderator removed the participant from the call.
    Removed,
    /// A moderator asks the participant to mute: its page turns its
    /// microphone off, and only the participant turns it on again.
    Muted,
    /// A moderator ended the call for everyone.
    CallEnded,
}

/// What a moderator does to others in its room, besides letting them in
/// and removing them. Each is refused to anyone else (`not-moderator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum ModeratorAction {
    /// Asks `target` to mute (never unmutes anyone).
    Mute { target: ParticipantId },
    /// Asks everyone else in the room to mute.
    MuteAll,
    /// Makes `target` a moderator too.
    MakeModerator { target: ParticipantId },
    /// Ends the call for everyone in it, the moderator included, and
    /// turns away whoever waits in the lobby.
    EndCall,
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
    /// Videos a participant receives at most: the most recent speakers'.
    pub last_n: usize,
    /// The signalling session speaking for the participant.
    pub session: SessionId,
    /// The password the participant gave, for a locked room.
    #[serde(default)]
    pub password: Option<String>,
    /// Its room token makes it a moderator.
    #[serde(default)]
    pub moderator: bool,
    /// Its resume token from before its media was lost: who was let in
    /// comes back without knocking again.
    #[serde(default)]
    pub rejoin: Option<String>,
    /// An opaque id of the client's network (`privacy::network_id`): how
    /// many of one room's lobby come from one network is bounded.
    #[serde(default)]
    pub network: Option<String>,
    /// The room's door as the cluster kept it: the room is made behind it
    /// if it is new here and did not end here (its worker was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<DoorSettings>,
    /// The signal server saw the participant in this room on a worker that
    /// was lost: it comes back through the door made anew without password
    /// or lobby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vouched: Option<Vouched>,
    /// The room has an owner (whoever created it, by the key its browser
    /// keeps) and this is not it: being first into it moderates nothing,
    /// so a stranger who knows the name cannot lock the owner out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub claimed: bool,
}

/// What the signal server saw a participant be in a room whose worker was
/// lost. Honoured only by a door made anew, within
/// [`door::RETURN_WINDOW`] of its making.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vouched {
    Member,
    Moderator,
}

/// One signalling connection's claim on a participant. A participant that
/// resumed through a new connection must not be detached when its old one
/// finally closes (a phone that moved from Wi-Fi to 4G): a detach names the
/// session it comes from and is ignored unless that session is current.
pub type SessionId = u64;

/// One tile of a client's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileSize {
    pub id: ParticipantId,
    pub width: u32,
}

/// What the control plane asks of a worker: one vocabulary, used in process
/// and, as JSON, on the control channel between hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Command {
    /// Replied with [`Reply::Joined`].
    Join {
        req: JoinRequest,
    },
    /// The participant's offer; replied with [`Reply::Answer`]. `screen`
    /// names the m-line of a screen share it carries.
    Offer {
        participant: ParticipantId,
        sdp: String,
        #[serde(default)]
        screen: Option<String>,
    },
    /// The participant's answer to server offer `offer`.
    Answer {
        participant: ParticipantId,
        offer: u32,
        sdp: String,
    },
    Candidate {
        participant: ParticipantId,
        candidate: String,
    },
    State {
        participant: ParticipantId,
        state: ParticipantState,
    },
    /// A chat message from the participant to its room.
    Chat {
        participant: ParticipantId,
        text: String,
    },
    /// Whether the participant receives the others' video ("audio only"
    /// on a very weak link when `false`).
    ReceiveVideo {
        participant: ParticipantId,
        on: bool,
    },
    /// The width, in device pixels, of the tile in which the participant's
    /// client shows each other participant's video.
    VideoSizes {
        participant: ParticipantId,
        tiles: Vec<TileSize>,
    },
    Leave {
        participant: ParticipantId,
    },
    /// The participant's signalling went away: keep its media for a grace
    /// period, during which it may resume.
    Detach {
        participant: ParticipantId,
        session: SessionId,
    },
    /// Replied with [`Reply::Resumed`].
    Resume {
        participant: ParticipantId,
        token: String,
        session: SessionId,
        /// The room the session says it had: refused, before the session
        /// takes the participant over, unless it is the participant's.
        /// (Absent from an older signal server: not checked.)
        #[serde(default)]
        room: Option<String>,
    },
    /// Take no new room; after `deadline_secs`, move everyone still here.
    Drain {
        deadline_secs: u64,
    },
    /// A moderator locks its room with a password, or unlocks it (`None`).
    SetPassword {
        participant: ParticipantId,
        password: Option<String>,
    },
    /// A moderator turns its room's lobby on or off (off lets in whoever
    /// waits).
    SetLobby {
        participant: ParticipantId,
        on: bool,
    },
    /// A moderator lets `knocker` in, or refuses it.
    Admit {
        participant: ParticipantId,
        knocker: ParticipantId,
        admit: bool,
    },
    /// A moderator removes `target` from the call.
    Remove {
        participant: ParticipantId,
        target: ParticipantId,
    },
    /// A moderator mutes, hands the role on, or ends the call.
    Moderate {
        participant: ParticipantId,
        action: ModeratorAction,
    },
}

impl Command {
    /// The participant the command is about (the moderator, for what a
    /// moderator does); none for a drain.
    pub fn participant(&self) -> Option<ParticipantId> {
        match self {
            Command::Join { req } => Some(req.info.id),
            Command::Offer { participant, .. }
            | Command::Answer { participant, .. }
            | Command::Candidate { participant, .. }
            | Command::State { participant, .. }
            | Command::Chat { participant, .. }
            | Command::ReceiveVideo { participant, .. }
            | Command::VideoSizes { participant, .. }
            | Command::Leave { participant }
            | Command::Detach { participant, .. }
            | Command::Resume { participant, .. }
            | Command::SetPassword { participant, .. }
            | Command::SetLobby { participant, .. }
            | Command::Admit { participant, .. }
            | Command::Remove { participant, .. }
            | Command::Moderate { participant, .. } => Some(*participant),
            Command::Drain { .. } => None,
        }
    }

    /// The participant whose events start flowing to the sender of this
    /// command if it succeeds, and the session that then speaks for it.
    pub fn attaches(&self) -> Option<(ParticipantId, SessionId)> {
        match self {
            Command::Join { req } => Some((req.info.id, req.session)),
            Command::Resume {
                participant,
                session,
                ..
            } => Some((*participant, *session)),
            _ => None,
        }
    }

    /// The participant whose events stop flowing to the sender: after a
    /// leave whatever session sent it, after a detach only if that session
    /// is still the current one.
    pub fn releases(&self) -> Option<(ParticipantId, Option<SessionId>)> {
        match self {
            Command::Leave { participant } => Some((*participant, None)),
            Command::Detach {
                participant,
                session,
            } => Some((*participant, Some(*session))),
            _ => None,
        }
    }

    /// Whether the sender waits for a [`Reply`].
    pub fn wants_reply(&self) -> bool {
        matches!(
            self,
            Command::Join { .. }
                | Command::Offer { .. }
                | Command::Answer { .. }
                | Command::Candidate { .. }
                | Command::Resume { .. }
                | Command::SetPassword { .. }
                | Command::SetLobby { .. }
                | Command::Admit { .. }
                | Command::Remove { .. }
                | Command::Moderate { .. }
        )
    }
}

/// A worker's answer to a command that wants one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    Joined {
        others: Vec<ParticipantInfo>,
        /// It founded the room: first in, and its moderator by the door's
        /// own rule (not by standing in, nor as a stranger passing a
        /// restored door's password): who may come to own it.
        #[serde(default)]
        founder: bool,
    },
    /// The room's lobby is on: the participant waits to be let in
    /// ([`PeerEvent::Admitted`] or [`PeerEvent::Refused`]).
    Knocking,
    Answer {
        sdp: String,
    },
    Done,
    Resumed {
        resumed: Resumed,
    },
}

pub(crate) type ReplySender = oneshot::Sender<Result<Reply, WorkerError>>;

/// A command on its way to a worker, with where its reply and the
/// participant's events go. The channels stay on this host; only the
/// command crosses the control channel.
pub(crate) struct Envelope {
    pub cmd: Command,
    pub events: Option<mpsc::Sender<PeerEvent>>,
    pub reply: Option<ReplySender>,
}

/// The control plane's handle on a worker. Cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    to: To,
    /// The address peers send media to (the ICE candidate).
    pub media_addr: SocketAddr,
}

/// Where a handle's commands go.
#[derive(Clone)]
enum To {
    /// One channel: a worker on another host (the control channel picks
    /// the shard there).
    Channel(mpsc::Sender<Envelope>),
    /// The shards of a worker in this process.
    Shards(Arc<shard_set::ShardSet>),
}

impl WorkerHandle {
    pub(crate) fn new(tx: mpsc::Sender<Envelope>, media_addr: SocketAddr) -> Self {
        WorkerHandle {
            to: To::Channel(tx),
            media_addr,
        }
    }

    pub(crate) fn sharded(shards: Arc<shard_set::ShardSet>, media_addr: SocketAddr) -> Self {
        WorkerHandle {
            to: To::Shards(shards),
            media_addr,
        }
    }

    /// The worker behind this handle stopped (a thread ended, or the
    /// connection to a remote worker was lost).
    pub fn is_closed(&self) -> bool {
        match &self.to {
            To::Channel(tx) => tx.is_closed(),
            To::Shards(shards) => shards.is_closed(),
        }
    }

    /// Sends a command that wants a reply, and waits for it. `events`
    /// receives the participant's events from then on (join, resume).
    pub async fn request(
        &self,
        cmd: Command,
        events: Option<mpsc::Sender<PeerEvent>>,
    ) -> Result<Reply, WorkerError> {
        match &self.to {
            To::Channel(tx) => ask(tx, cmd, events).await,
            To::Shards(shards) => shards.request(cmd, events).await,
        }
    }

    /// Sends without waiting; used on teardown paths that must not block.
    pub fn post(&self, cmd: Command) {
        match &self.to {
            To::Channel(tx) => post_to(tx, cmd),
            To::Shards(shards) => shards.post(cmd),
        }
    }
}

/// Sends a command on `tx` and waits for its reply.
async fn ask(
    tx: &mpsc::Sender<Envelope>,
    cmd: Command,
    events: Option<mpsc::Sender<PeerEvent>>,
) -> Result<Reply, WorkerError> {
    let (reply, rx) = oneshot::channel();
    let envelope = Envelope {
        cmd,
        events,
        reply: Some(reply),
    };
    tx.send(envelope)
        .await
        .map_err(|_| WorkerError::Unavailable)?;
    rx.await.map_err(|_| WorkerError::Unavailable)?
}

/// Sends a command on `tx` without waiting for room in its queue.
fn post_to(tx: &mpsc::Sender<Envelope>, cmd: Command) {
    let envelope = Envelope {
        cmd,
        events: None,
        reply: None,
    };
    if let Err(mpsc::error::TrySendError::Full(envelope)) = tx.try_send(envelope) {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(envelope).await;
        });
    }
}
