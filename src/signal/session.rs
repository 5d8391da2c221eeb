//! One participant's signalling session: the WebSocket task.
//!
//! It turns client messages into worker commands and room updates, and
//! worker events and room updates into server messages. Anything wrong in
//! a message is answered with an error frame; only a flood closes the
//! socket. Whatever way the socket ends, the participant leaves.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::protocol::{self, ClientMessage, ErrorCode, ParticipantInfo, ServerMessage};
use super::rate::TokenBucket;
use super::rooms::JoinError;
use super::{room_name, AppState};
use crate::ids::{new_participant_id, ParticipantId};
use crate::worker::{PeerEvent, WorkerError};

/// Largest text frame we read; an SDP answer for a large room is ~100 KB.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Display names are cut to this many characters.
const MAX_NAME_CHARS: usize = 40;
/// Sustained messages per second, and burst.
const RATE: u32 = 30;
const BURST: u32 = 120;
/// Refused messages in a row before the socket is closed.
const MAX_REFUSED: u32 = 200;
/// A send that takes longer means the client is gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

struct Joined {
    room: String,
    id: ParticipantId,
}

pub async fn run(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let (room_tx, mut room_rx) = mpsc::channel::<ServerMessage>(256);
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerEvent>(64);
    let mut session = Session {
        state,
        joined: None,
        room_tx,
        peer_tx,
    };
    let mut bucket = TokenBucket::new(BURST, RATE, Instant::now());
    let mut refused = 0u32;

    loop {
        let out: Vec<ServerMessage> = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if !bucket.take(Instant::now()) {
                        refused += 1;
                        if refused > MAX_REFUSED {
                            tracing::warn!("signalling flood; closing");
                            break;
                        }
                        vec![ServerMessage::error(ErrorCode::RateLimited, "too many messages; slow down")]
                    } else {
                        refused = 0;
                        session.on_text(&text).await
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    vec![ServerMessage::error(ErrorCode::BadMessage, "binary frames are not part of the protocol")]
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue, // ping/pong are answered by axum
                Some(Err(e)) => {
                    // Includes frames over the size limit.
                    tracing::info!("websocket error: {e}");
                    break;
                }
            },
            Some(msg) = room_rx.recv() => vec![msg],
            Some(ev) = peer_rx.recv() => session.on_peer_event(ev),
        };
        let mut failed = false;
        for msg in out {
            if send(&mut sink, &msg).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
    }
    session.leave();
}

async fn send(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    msg: &ServerMessage,
) -> Result<(), ()> {
    let text = match serde_json::to_string(msg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("serialize: {e}");
            return Ok(());
        }
    };
    match tokio::time::timeout(
        SEND_TIMEOUT,
        sink.send(Message::Text(Utf8Bytes::from(text))),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

struct Session {
    state: AppState,
    joined: Option<Joined>,
    room_tx: mpsc::Sender<ServerMessage>,
    peer_tx: mpsc::Sender<PeerEvent>,
}

impl Session {
    async fn on_text(&mut self, text: &str) -> Vec<ServerMessage> {
        if text.len() > MAX_MESSAGE {
            return vec![ServerMessage::error(
                ErrorCode::TooLarge,
                format!(
                    "message of {} bytes; the limit is {MAX_MESSAGE}",
                    text.len()
                ),
            )];
        }
        let msg = match protocol::parse(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("bad client message: {e:?}");
                return vec![e];
            }
        };
        match self.on_message(msg).await {
            Ok(out) => out,
            Err(e) => vec![e],
        }
    }

    async fn on_message(
        &mut self,
        msg: ClientMessage,
    ) -> Result<Vec<ServerMessage>, ServerMessage> {
        match msg {
            ClientMessage::Join {
                v,
                room,
                name,
                audio,
                video,
            } => self.join(v, room, name, audio, video).await,
            ClientMessage::Offer { sdp } => {
                let id = self.id()?;
                let sdp = self
                    .state
                    .worker
                    .offer(id, sdp)
                    .await
                    .map_err(worker_error)?;
                Ok(vec![ServerMessage::Answer { sdp }])
            }
            ClientMessage::Answer { id: offer, sdp } => {
                let id = self.id()?;
                self.state
                    .worker
                    .answer(id, offer, sdp)
                    .await
                    .map_err(worker_error)?;
                Ok(vec![])
            }
            ClientMessage::Candidate { candidate } => {
                let id = self.id()?;
                // `null` or "" mark the end of candidates: nothing to do for
                // an ICE-lite server.
                if let Some(c) = candidate.filter(|c| !c.is_empty()) {
                    self.state
                        .worker
                        .candidate(id, c)
                        .await
                        .map_err(worker_error)?;
                }
                Ok(vec![])
            }
            ClientMessage::Mute { audio, video } => {
                let id = self.id()?;
                if let Some(j) = &self.joined {
                    self.state.rooms.set_mute(&j.room, id, audio, video);
                }
                Ok(vec![])
            }
            ClientMessage::Leave => {
                self.leave();
                Ok(vec![])
            }
            ClientMessage::Ping => Ok(vec![ServerMessage::Pong]),
        }
    }

    async fn join(
        &mut self,
        v: u32,
        room: String,
        name: String,
        audio: bool,
        video: bool,
    ) -> Result<Vec<ServerMessage>, ServerMessage> {
        if v != protocol::VERSION {
            return Err(ServerMessage::error(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol version {}", protocol::VERSION),
            ));
        }
        if self.joined.is_some() {
            return Err(ServerMessage::error(
                ErrorCode::AlreadyJoined,
                "already in a call; leave first",
            ));
        }
        room_name::validate(&room)
            .map_err(|e| ServerMessage::error(ErrorCode::InvalidRoom, e.to_string()))?;
        let name = clean_name(&name).ok_or_else(|| {
            ServerMessage::error(ErrorCode::InvalidName, "a display name is needed")
        })?;
        self.state.rooms.check_capacity(&room).map_err(join_error)?;

        let id = new_participant_id();
        self.state
            .worker
            .join(&room, id, self.peer_tx.clone())
            .await
            .map_err(worker_error)?;
        let info = ParticipantInfo {
            id,
            name,
            audio,
            video,
        };
        let participants = match self.state.rooms.join(&room, info, self.room_tx.clone()) {
            Ok(p) => p,
            Err(e) => {
                self.state.worker.leave(id);
                return Err(join_error(e));
            }
        };
        tracing::info!(peer = id, room, "participant joined");
        self.joined = Some(Joined {
            room: room.clone(),
            id,
        });
        Ok(vec![ServerMessage::Welcome {
            v: protocol::VERSION,
            you: id,
            room,
            participants,
        }])
    }

    fn on_peer_event(&mut self, ev: PeerEvent) -> Vec<ServerMessage> {
        match ev {
            PeerEvent::Offer { id, sdp } => vec![ServerMessage::Offer { id, sdp }],
            PeerEvent::Closed { reason } => {
                // The worker already dropped the connection; leave the room
                // too, and let the client join again.
                if let Some(j) = self.joined.take() {
                    self.state.rooms.leave(&j.room, j.id);
                }
                vec![ServerMessage::error(ErrorCode::MediaLost, reason)]
            }
        }
    }

    fn id(&self) -> Result<ParticipantId, ServerMessage> {
        self.joined
            .as_ref()
            .map(|j| j.id)
            .ok_or_else(|| ServerMessage::error(ErrorCode::NotJoined, "send join first"))
    }

    fn leave(&mut self) {
        if let Some(j) = self.joined.take() {
            self.state.worker.leave(j.id);
            self.state.rooms.leave(&j.room, j.id);
            tracing::info!(peer = j.id, room = j.room, "participant left");
        }
    }
}

/// Trims, drops control characters, and cuts the display name.
fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn worker_error(e: WorkerError) -> ServerMessage {
    let code = match e {
        WorkerError::InvalidSdp(_) => ErrorCode::InvalidSdp,
        WorkerError::InvalidCandidate(_) => ErrorCode::InvalidCandidate,
        WorkerError::UnknownParticipant => ErrorCode::MediaLost,
        WorkerError::AlreadyJoined => ErrorCode::AlreadyJoined,
        WorkerError::Unavailable | WorkerError::Internal(_) => ErrorCode::Unavailable,
    };
    ServerMessage::error(code, e.to_string())
}

fn join_error(e: JoinError) -> ServerMessage {
    match e {
        JoinError::Full(_) => ServerMessage::error(ErrorCode::RoomFull, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  Mamie\n "), Some("Mamie".into()));
        assert_eq!(clean_name("\u{7}\u{1b}"), None);
        assert_eq!(clean_name(&"é".repeat(100)).unwrap().chars().count(), 40);
    }
}
