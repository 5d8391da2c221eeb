//! One participant's signalling session: the WebSocket task.
//!
//! It places the participant's room on a worker, relays client messages to
//! that worker and the worker's events back. Anything wrong in a message is
//! answered with an error frame; only a flood closes the socket. When the
//! socket ends without `leave`, the participant is only detached: its media
//! goes on, and it may `resume` through this or another signal server.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::grant::GrantError;
use super::limits::{OpenSocket, IDLE, PING_EVERY};
use super::partner::Partner;
use super::protocol::{
    self, ClientMessage, ErrorCode, ParticipantInfo, ParticipantState, ServerMessage,
    MAX_CHAT_CHARS, MAX_PASSWORD_CHARS, MAX_TILES,
};
use super::room_token::{Pass, TokenError};
use super::turn::IceServer;
use super::{room_name, AppState, PlaceError};
use crate::cluster::admission::Refusal;
use crate::cluster::registry::Moment;
use crate::ids::{new_participant_id, new_resume_token, ParticipantId};
use crate::privacy;
use crate::rate::TokenBucket;
use crate::worker::stats::unix_secs;
use crate::worker::{
    Command, JoinRequest, PeerEvent, Reply, SessionId, Vouched, WorkerError, WorkerHandle,
    RETURN_WINDOW,
};

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
    node: String,
    worker: WorkerHandle,
    /// As the worker last said (`room-settings`).
    moderator: bool,
}

impl Joined {
    /// Out of the room (or its lobby) on the worker, and no more of its
    /// events to this socket.
    fn leave(&self) {
        self.worker.post(Command::Leave {
            participant: self.id,
        });
    }
}

/// A call whose worker was lost: the session vouches, once and for
/// [`RETURN_WINDOW`], that its participant was in the room, so that it
/// comes back through the door made anew on another worker without
/// password or lobby (a moderator as one).
struct Lost {
    room: String,
    moderator: bool,
    at: Instant,
}

/// Waiting in a room's lobby: in once a moderator lets it in.
struct Knocking {
    joined: Joined,
    /// For the welcome that follows.
    token: String,
}

/// One signalling socket, from `client`, counted open by `_open` until it
/// ends.
pub async fn run(socket: WebSocket, state: AppState, client: IpAddr, _open: Option<OpenSocket>) {
    let (mut sink, mut stream) = socket.split();
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerEvent>(256);
    state.0.metrics.signal_sessions.inc();
    let mut session = Session {
        state: state.clone(),
        client,
        id: rand::random(),
        joined: None,
        knocking: None,
        lost: None,
        peer_tx,
    };
    let mut bucket = TokenBucket::new(BURST, Duration::from_secs(1) / RATE, Instant::now());
    let mut refused = 0u32;
    let mut ping = tokio::time::interval_at((Instant::now() + PING_EVERY).into(), PING_EVERY);
    let mut heard = Instant::now();

    loop {
        let out: Vec<ServerMessage> = tokio::select! {
            _ = ping.tick() => {
                if heard.elapsed() > IDLE {
                    tracing::debug!("signalling silent; closed");
                    break;
                }
                let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
                continue;
            }
            frame = stream.next() => { heard = Instant::now(); match frame {
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
            }},
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
    session.detach();
    state.0.metrics.signal_sessions.dec();
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
    /// The client's address, for the limits per address.
    client: IpAddr,
    /// Names this WebSocket to the worker, so that the detach it sends when
    /// it closes is ignored once another session resumed the participant.
    id: SessionId,
    joined: Option<Joined>,
    knocking: Option<Knocking>,
    lost: Option<Lost>,
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
                grant,
                jwt,
                password,
                rejoin,
            } => {
                let entry = Entry {
                    grant,
                    jwt,
                    password,
                    rejoin,
                };
                self.join(v, room, name, (audio, video), entry).await
            }
            ClientMessage::Resume {
                v,
                room,
                participant,
                token,
            } => self.resume(v, room, participant, token).await,
            ClientMessage::Offer { sdp, screen } => {
                let (id, w) = self.current()?;
                let sdp = w.offer(id, sdp, screen).await.map_err(worker_error)?;
                Ok(vec![ServerMessage::Answer { sdp }])
            }
            ClientMessage::Answer { id: offer, sdp } => {
                let (id, w) = self.current()?;
                let cmd = Command::Answer {
                    participant: id,
                    offer,
                    sdp,
                };
                w.request(cmd, None).await.map_err(worker_error)?;
                Ok(vec![])
            }
            ClientMessage::Candidate { candidate } => {
                let (id, w) = self.current()?;
                // `null` or "" mark the end of candidates: nothing to do for
                // an ICE-lite server.
                if let Some(c) = candidate.filter(|c| !c.is_empty()) {
                    let cmd = Command::Candidate {
                        participant: id,
                        candidate: c,
                    };
                    w.request(cmd, None).await.map_err(worker_error)?;
                }
                Ok(vec![])
            }
            ClientMessage::State {
                audio,
                video,
                screen,
                hand,
            } => {
                let (id, w) = self.current()?;
                let state = ParticipantState {
                    audio,
                    video,
                    screen,
                    hand,
                };
                w.post(Command::State {
                    participant: id,
                    state,
                });
                Ok(vec![])
            }
            ClientMessage::Chat { text } => {
                let text = clean_chat(&text).ok_or_else(|| {
                    ServerMessage::error(
                        ErrorCode::BadMessage,
                        format!("a chat message has 1 to {MAX_CHAT_CHARS} characters"),
                    )
                })?;
                let (id, w) = self.current()?;
                w.post(Command::Chat {
                    participant: id,
                    text,
                });
                Ok(vec![])
            }
            ClientMessage::ReceiveVideo { on } => {
                let (id, w) = self.current()?;
                w.post(Command::ReceiveVideo {
                    participant: id,
                    on,
                });
                Ok(vec![])
            }
            ClientMessage::VideoSizes { tiles } => {
                if tiles.len() > MAX_TILES {
                    return Err(ServerMessage::error(
                        ErrorCode::BadMessage,
                        format!("at most {MAX_TILES} tiles"),
                    ));
                }
                let (id, w) = self.current()?;
                w.post(Command::VideoSizes {
                    participant: id,
                    tiles,
                });
                Ok(vec![])
            }
            ClientMessage::SetPassword { password } => {
                let password = password.as_deref().map(check_password).transpose()?;
                let room = self.joined.as_ref().map_or("", |j| j.room.as_str());
                let password = password.map(|p| self.password_digest(room, &p));
                self.moderate(|participant| Command::SetPassword {
                    participant,
                    password,
                })
                .await
            }
            ClientMessage::SetLobby { on } => {
                self.moderate(|participant| Command::SetLobby { participant, on })
                    .await
            }
            ClientMessage::Admit { id } => self.answer_knock(id, true).await,
            ClientMessage::Refuse { id } => self.answer_knock(id, false).await,
            ClientMessage::Remove { id } => {
                self.moderate(|participant| Command::Remove {
                    participant,
                    target: id,
                })
                .await
            }
            ClientMessage::Leave => {
                self.lost = None;
                if let Some(k) = self.knocking.take() {
                    k.joined.leave();
                }
                if let Some(j) = self.joined.take() {
                    j.leave();
                    tracing::info!(peer = j.id, room = %privacy::room(&j.room), "participant left");
                }
                Ok(vec![])
            }
            ClientMessage::Ping => Ok(vec![ServerMessage::Pong]),
        }
    }

    /// A `join` or `resume` is possible: right protocol, not in a call yet.
    fn may_enter(&self, v: u32) -> Result<(), ServerMessage> {
        if v != protocol::VERSION {
            return Err(ServerMessage::error(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol version {}", protocol::VERSION),
            ));
        }
        if self.joined.is_some() || self.knocking.is_some() {
            return Err(ServerMessage::error(
                ErrorCode::AlreadyJoined,
                "already in a call or waiting to enter one; leave first",
            ));
        }
        Ok(())
    }

    async fn join(
        &mut self,
        v: u32,
        room: String,
        name: String,
        (audio, video): (bool, bool),
        Entry {
            grant,
            jwt,
            password,
            rejoin,
        }: Entry,
    ) -> Result<Vec<ServerMessage>, ServerMessage> {
        self.may_enter(v)?;
        let limits = &self.state.0.limits;
        let client = self.client;
        if let Some(Err(e)) = limits.as_ref().map(|l| l.join(client)) {
            self.state.0.metrics.limited.inc();
            return Err(ServerMessage::error(ErrorCode::RateLimited, e.to_string()));
        }
        room_name::validate(&room)
            .map_err(|e| ServerMessage::error(ErrorCode::InvalidRoom, e.to_string()))?;
        let pass = self.check_room_token(jwt.as_deref(), &room)?;
        let moderator = pass.as_ref().is_some_and(|p| p.moderator);
        let vouched = self
            .lost
            .as_ref()
            .filter(|l| l.room == room && l.at.elapsed() < RETURN_WINDOW)
            .map(|l| match l.moderator {
                true => Vouched::Moderator,
                false => Vouched::Member,
            });
        let password = password.as_deref().map(check_password).transpose()?;
        let password = password.map(|p| self.password_digest(&room, &p));
        let rejoin = rejoin.filter(|t| crate::ids::is_resume_token(t));
        // A token's name is the name: nobody enters under another on it.
        let name = match pass.and_then(|p| p.name) {
            Some(n) => clean_name(&n).ok_or_else(|| {
                ServerMessage::error(ErrorCode::TokenInvalid, "the invitation's name is empty")
            })?,
            None => clean_name(&name).ok_or_else(|| {
                ServerMessage::error(ErrorCode::InvalidName, "a display name is needed")
            })?,
        };
        let priority = match grant {
            Some(g) => {
                self.check_grant(&g, &room)?;
                true
            }
            None => false,
        };

        let control = &self.state.0;
        let (node, worker) = control
            .place(&room, priority, &|| {
                limits.as_ref().map_or(Ok(()), |l| l.new_room(client))
            })
            .await
            .map_err(|e| place_error(e, &control.config.partners, &room))?;
        // The door the room's moderators shut it with, for a room made anew
        // on this worker because its own was lost (the worker knows the
        // rooms that ended on it). Unread, the room would open: said.
        let door = control
            .registry
            .door(&room, Moment::now())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("a room's door could not be read: {e}");
                None
            });
        let id = new_participant_id();
        let token = new_resume_token();
        let req = JoinRequest {
            room: room.clone(),
            info: ParticipantInfo {
                id,
                name,
                state: ParticipantState::joining(audio, video),
            },
            token: token.clone(),
            max_participants: control.config.max_participants,
            last_n: control.config.last_n,
            session: self.id,
            password,
            moderator,
            rejoin,
            network: Some(privacy::network_id(
                super::limits::key(client),
                control.config.secret.as_deref(),
            )),
            door,
            vouched,
        };
        let reply = worker
            .join(req, self.peer_tx.clone())
            .await
            .map_err(worker_error)?;
        let joined = Joined {
            room,
            id,
            node,
            worker,
            moderator,
        };
        self.lost = None;
        match reply {
            Reply::Knocking => {
                tracing::info!(peer = id, room = %privacy::room(&joined.room), "waiting in the lobby");
                self.knocking = Some(Knocking { joined, token });
                Ok(vec![ServerMessage::Lobby])
            }
            Reply::Joined { others } => Ok(vec![self.welcome(joined, others, token)]),
            _ => Err(worker_error(WorkerError::Internal(
                "unexpected reply".into(),
            ))),
        }
    }

    /// In the call: told who is there, and how to resume.
    fn welcome(
        &mut self,
        joined: Joined,
        participants: Vec<ParticipantInfo>,
        token: String,
    ) -> ServerMessage {
        let id = joined.id;
        tracing::info!(peer = id, room = %privacy::room(&joined.room), node = joined.node, "participant joined");
        let room = joined.room.clone();
        self.joined = Some(joined);
        ServerMessage::Welcome {
            v: protocol::VERSION,
            you: id,
            room,
            participants,
            token,
            resumed: false,
            ice_servers: self.ice_servers(id),
        }
    }

    /// A moderator lets `knocker` in, or not.
    async fn answer_knock(
        &self,
        knocker: ParticipantId,
        admit: bool,
    ) -> Result<Vec<ServerMessage>, ServerMessage> {
        self.moderate(|participant| Command::Admit {
            participant,
            knocker,
            admit,
        })
        .await
    }

    /// A moderator's command about its room.
    async fn moderate(
        &self,
        cmd: impl FnOnce(ParticipantId) -> Command,
    ) -> Result<Vec<ServerMessage>, ServerMessage> {
        let (id, w) = self.current()?;
        w.request(cmd(id), None).await.map_err(worker_error)?;
        Ok(vec![])
    }

    /// A password as the cluster compares it (`privacy::password_digest`).
    fn password_digest(&self, room: &str, password: &str) -> String {
        privacy::password_digest(room, password, self.state.0.config.secret.as_deref())
    }

    async fn resume(
        &mut self,
        v: u32,
        room: String,
        participant: ParticipantId,
        token: String,
    ) -> Result<Vec<ServerMessage>, ServerMessage> {
        self.may_enter(v)?;
        let refused = || {
            ServerMessage::error(
                ErrorCode::ResumeFailed,
                "this session cannot be resumed; join again",
            )
        };
        room_name::validate(&room).map_err(|_| refused())?;
        let (node, worker) = self.state.0.locate(&room).await.ok_or_else(refused)?;
        let resumed = worker
            .resume(participant, token.clone(), self.id, self.peer_tx.clone())
            .await
            .map_err(|_| refused())?;
        tracing::info!(peer = participant, room = %privacy::room(&room), node, "participant resumed");
        self.joined = Some(Joined {
            room: room.clone(),
            id: participant,
            node,
            worker,
            moderator: false,
        });
        let mut out = vec![ServerMessage::Welcome {
            v: protocol::VERSION,
            you: participant,
            room: resumed.room,
            participants: resumed.others,
            token,
            resumed: true,
            ice_servers: self.ice_servers(participant),
        }];
        if let Some((id, sdp)) = resumed.offer {
            out.push(ServerMessage::Offer { id, sdp });
        }
        Ok(out)
    }

    /// What the join's room token (if any) lets in: refused when the
    /// token is not valid for `room` now, or when rooms are closed and
    /// there is none. A token sent to a server that checks none is not
    /// read: its rooms are open.
    fn check_room_token(
        &self,
        jwt: Option<&str>,
        room: &str,
    ) -> Result<Option<Pass>, ServerMessage> {
        let config = &self.state.0.config;
        let checked = match (jwt, &config.room_tokens) {
            (Some(t), Some(key)) => key.check(t, room, unix_secs()).map(Some),
            _ if config.closed_rooms => Err(TokenError::Required),
            _ => Ok(None),
        };
        checked.map_err(|e| {
            let code = match e {
                TokenError::Required => ErrorCode::TokenRequired,
                TokenError::Expired => ErrorCode::TokenExpired,
                TokenError::OtherRoom | TokenError::Invalid => ErrorCode::TokenInvalid,
            };
            ServerMessage::error(code, e.to_string())
        })
    }

    /// A priority grant for `room`, valid now.
    fn check_grant(&self, grant: &str, room: &str) -> Result<(), ServerMessage> {
        let Some(key) = &self.state.0.config.grants else {
            return Err(ServerMessage::error(
                ErrorCode::GrantInvalid,
                "this server gives no priority: it has no secret to check links with",
            ));
        };
        key.check(grant, room, unix_secs())
            .map(|_| ())
            .map_err(|e| {
                let code = match e {
                    GrantError::Expired => ErrorCode::GrantExpired,
                    GrantError::OtherRoom | GrantError::Invalid => ErrorCode::GrantInvalid,
                };
                ServerMessage::error(code, e.to_string())
            })
    }

    /// TURN credentials for `participant`, when TURN is configured.
    fn ice_servers(&self, participant: ParticipantId) -> Vec<IceServer> {
        let now = unix_secs();
        self.state
            .0
            .config
            .turn
            .iter()
            .map(|t| t.credentials(now, &participant.to_string()))
            .collect()
    }

    fn on_peer_event(&mut self, ev: PeerEvent) -> Vec<ServerMessage> {
        match ev {
            PeerEvent::Offer { id, sdp } => vec![ServerMessage::Offer { id, sdp }],
            PeerEvent::ParticipantJoined { participant } => {
                vec![ServerMessage::ParticipantJoined { participant }]
            }
            PeerEvent::ParticipantLeft { id } => vec![ServerMessage::ParticipantLeft { id }],
            PeerEvent::State { id, state } => vec![ServerMessage::State { id, state }],
            PeerEvent::Chat { from, name, text } => vec![ServerMessage::Chat { from, name, text }],
            PeerEvent::Speaker { id } => vec![ServerMessage::Speaker { id }],
            PeerEvent::Forwarded { video } => vec![ServerMessage::Forwarded { video }],
            PeerEvent::Layers { mid, active } => vec![ServerMessage::Layers { mid, active }],
            PeerEvent::Quality { links } => vec![ServerMessage::Quality { links }],
            PeerEvent::Closed { reason } => {
                // Someone waiting in a lobby whose worker was lost is not
                // let in: joining again at once, it could be first into
                // the room made anew, and so its moderator.
                if self.knocking.take().is_some() {
                    return vec![ServerMessage::error(
                        ErrorCode::LobbyRefused,
                        "the call's server was lost while you waited; ask to join again",
                    )];
                }
                // The worker dropped the connection, or was lost: the client
                // joins again and is placed anew.
                if let Some(j) = self.joined.take() {
                    if j.worker.is_closed() {
                        self.state.0.pool.report_closed(&j.node);
                        self.lost = Some(Lost {
                            room: j.room,
                            moderator: j.moderator,
                            at: Instant::now(),
                        });
                    }
                }
                vec![ServerMessage::error(ErrorCode::MediaLost, reason)]
            }
            PeerEvent::Knocking { id, name } => vec![ServerMessage::Knocking { id, name }],
            PeerEvent::KnockEnded { id } => vec![ServerMessage::KnockEnded { id }],
            PeerEvent::RoomSettings {
                moderator,
                locked,
                lobby,
            } => {
                if let Some(j) = &mut self.joined {
                    j.moderator = moderator;
                }
                vec![ServerMessage::RoomSettings {
                    moderator,
                    locked,
                    lobby,
                }]
            }
            PeerEvent::Admitted { others } => match self.knocking.take() {
                Some(k) => vec![self.welcome(k.joined, others, k.token)],
                None => vec![],
            },
            PeerEvent::Refused { reason } => {
                // Its events no longer come here.
                if let Some(k) = self.knocking.take() {
                    k.joined.leave();
                }
                vec![ServerMessage::error(ErrorCode::LobbyRefused, reason)]
            }
            PeerEvent::Removed => {
                if let Some(j) = self.joined.take() {
                    j.leave();
                }
                vec![ServerMessage::error(
                    ErrorCode::Removed,
                    "a moderator removed you from the call",
                )]
            }
        }
    }

    fn current(&self) -> Result<(ParticipantId, &WorkerHandle), ServerMessage> {
        self.joined
            .as_ref()
            .map(|j| (j.id, &j.worker))
            .ok_or_else(|| ServerMessage::error(ErrorCode::NotJoined, "send join first"))
    }

    /// The socket ended without `leave`: a participant's media waits for
    /// a resume; someone waiting in a lobby leaves it.
    fn detach(&mut self) {
        if let Some(k) = self.knocking.take() {
            k.joined.leave();
        }
        if let Some(j) = self.joined.take() {
            j.worker.post(Command::Detach {
                participant: j.id,
                session: self.id,
            });
            tracing::info!(
                peer = j.id,
                room = %privacy::room(&j.room),
                "signalling lost; media kept for resume"
            );
        }
    }
}

/// What a join carries besides the room and the person: links' grant and
/// token, a locked room's password, the token of a session lost.
struct Entry {
    grant: Option<String>,
    jwt: Option<String>,
    password: Option<String>,
    rejoin: Option<String>,
}

/// A room password as given: 1 to [`MAX_PASSWORD_CHARS`] characters,
/// compared as typed (spaces included).
fn check_password(password: &str) -> Result<String, ServerMessage> {
    let len = password.chars().count();
    if (1..=MAX_PASSWORD_CHARS).contains(&len) {
        Ok(password.to_string())
    } else {
        Err(ServerMessage::error(
            ErrorCode::BadMessage,
            format!("a password has 1 to {MAX_PASSWORD_CHARS} characters"),
        ))
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

/// A chat message as the room receives it: line breaks kept, other control
/// characters (terminal escapes, bells) removed. Too long is refused
/// rather than cut: the sender's words arrive whole or not at all.
fn clean_chat(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect();
    let cleaned = cleaned.trim();
    let len = cleaned.chars().count();
    (1..=MAX_CHAT_CHARS)
        .contains(&len)
        .then(|| cleaned.to_string())
}

/// A worker's refusal, said to the client without what only the server
/// should see: a parser's text (an SDP error once showed a heap address)
/// and internal errors go to the log, the client gets a fixed sentence.
fn worker_error(e: WorkerError) -> ServerMessage {
    let (code, message) = match &e {
        WorkerError::InvalidSdp(_) => (ErrorCode::InvalidSdp, "the SDP could not be read".into()),
        WorkerError::InvalidCandidate(_) => (
            ErrorCode::InvalidCandidate,
            "the ICE candidate could not be read".into(),
        ),
        WorkerError::Internal(_) => (
            ErrorCode::Unavailable,
            "the media server could not do this; please try again".into(),
        ),
        WorkerError::TooManyOffers => (ErrorCode::RateLimited, e.to_string()),
        WorkerError::UnknownParticipant => (ErrorCode::MediaLost, e.to_string()),
        WorkerError::AlreadyJoined => (ErrorCode::AlreadyJoined, e.to_string()),
        WorkerError::RoomFull(_) => (ErrorCode::RoomFull, e.to_string()),
        WorkerError::ResumeRefused => (ErrorCode::ResumeFailed, e.to_string()),
        WorkerError::Draining | WorkerError::Unavailable => (ErrorCode::Unavailable, e.to_string()),
        WorkerError::PasswordRequired => (ErrorCode::PasswordRequired, e.to_string()),
        WorkerError::PasswordWrong => (ErrorCode::PasswordWrong, e.to_string()),
        WorkerError::LobbyFull => (ErrorCode::LobbyFull, e.to_string()),
        WorkerError::NotModerator => (ErrorCode::NotModerator, e.to_string()),
        WorkerError::NoSuchPerson => (ErrorCode::NoSuchPerson, e.to_string()),
    };
    match &e {
        // A fault of the server's, not the client's: operators must see it.
        WorkerError::Internal(_) => tracing::warn!(error = %e, "worker failed a request"),
        _ => tracing::debug!(error = %e, "refused by the worker"),
    }
    ServerMessage::error(code, message)
}

/// A refused join, said for people: a new room is offered the partners
/// (each with its link for this room).
fn place_error(e: PlaceError, partners: &[Partner], room: &str) -> ServerMessage {
    let with_partners = |code, message: &str| ServerMessage::Error {
        code,
        message: message.into(),
        partners: partners.iter().map(|p| p.for_room(room)).collect(),
    };
    match e {
        PlaceError::Refused(Refusal::Busy) => with_partners(
            ErrorCode::Overloaded,
            "all media servers are busy; new calls are refused for now, please try again in a few minutes",
        ),
        PlaceError::Refused(Refusal::Redirected) => with_partners(
            ErrorCode::Redirected,
            "this service is not starting new calls for now; please use a partner service",
        ),
        PlaceError::Refused(Refusal::Full) => ServerMessage::error(
            ErrorCode::ServerFull,
            "this call's media server is full; you can join as soon as it has room",
        ),
        PlaceError::Limited(l) => ServerMessage::error(ErrorCode::RateLimited, l.to_string()),
        other => {
            tracing::warn!("placement failed: {other}");
            ServerMessage::error(ErrorCode::Unavailable, "no media server is available right now")
        }
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

    #[test]
    fn chat_keeps_lines_and_refuses_empty_or_too_long() {
        assert_eq!(
            clean_chat(" Bonjour\nça va ?\u{1b}[2J "),
            Some("Bonjour\nça va ?[2J".into())
        );
        assert_eq!(clean_chat(" \n\t"), None);
        assert!(clean_chat(&"é".repeat(MAX_CHAT_CHARS)).is_some());
        assert_eq!(clean_chat(&"é".repeat(MAX_CHAT_CHARS + 1)), None);
    }
}
