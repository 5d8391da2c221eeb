//! One participant's signalling session, as a state machine.
//!
//! Client frames and the worker's events go in, with the time; frames to
//! send and commands for the worker come out of [`Session::poll_output`].
//! What needs the network (placing a room, finding where one runs, a
//! worker's reply) is asked for as an output and answered as an input, so
//! every decision (who enters, resumes, knocks, moderates, what a refusal
//! says, when a flood is cut) runs in a unit test without a socket or a
//! clock (`session_tests.rs`). `socket.rs` only moves bytes. The shape is
//! the worker's `Endpoint`, and str0m's.
//!
//! Anything wrong in a message is answered with an error frame; only a
//! flood or silence closes the socket. When the socket ends without
//! `leave`, the participant is only detached: its media goes on, and it
//! may `resume` through this or another signal server.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use rand::rngs::StdRng;

use super::limits::{AddressLimits, IDLE};
use super::owner::{self, Ownership};
use super::protocol::{
    self, ClientMessage, ErrorCode, ParticipantInfo, ParticipantState, ServerMessage, MAX_TILES,
};
use super::refusal::{grant_error, place_error, token_error, worker_error};
use super::room_token::{Pass, TokenError};
use super::turn::IceServer;
use super::{clean, room_name, PlaceError, SignalConfig};
use crate::ids::{self, ParticipantId};
use crate::metrics::Metrics;
use crate::privacy;
use crate::rate::TokenBucket;
use crate::worker::{
    Command, DoorSettings, JoinRequest, ModeratorAction, PeerEvent, Reply, SessionId, Vouched,
    WorkerError, RETURN_WINDOW,
};

/// Largest text frame we read; an SDP answer for a large room is ~100 KB.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Sustained messages per second, and burst.
const RATE: u32 = 30;
const BURST: u32 = 120;
/// Refused messages (rate-limited or in error) a socket may send beyond
/// one a second before it is closed: a client that paces itself just
/// above the rate, so that one message in a few goes through, is cut as
/// surely as one that never stops. A person's page gets few refused.
const MAX_REFUSED: u32 = 200;
const REFUSED_FORGIVEN_EVERY: Duration = Duration::from_secs(1);

/// The time, as the session reads it: monotonic for its own timers, Unix
/// seconds for what others signed (tokens, grants, TURN credentials).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix: u64,
}

/// What the session is told.
#[derive(Debug)]
pub enum Input<'t> {
    /// A text frame from the client.
    Text(&'t str),
    /// A binary frame: not part of the protocol.
    Binary,
    /// The keep-alive timer (`limits::PING_EVERY`).
    Tick,
    /// An event of the participant's worker; `worker_gone` when the
    /// worker behind it stopped (a `Closed` sent as it went).
    Event { event: PeerEvent, worker_gone: bool },
    /// The answer to [`Output::Place`].
    Placed(Result<Placed, PlaceError>),
    /// The answer to [`Output::Locate`]: the node the room runs on.
    Located(Option<String>),
    /// The answer to [`Output::Claim`]: whether the key's digest owns the
    /// room now.
    Claimed(bool),
    /// The worker's reply to a [`Output::Worker`] command that wants one.
    Reply(Result<Reply, WorkerError>),
    /// The socket is gone (closed, failed, or cut after [`Output::Close`]).
    Ended,
}

/// Where a room was placed, its door as the cluster kept it, and the
/// digest of its owner's key (`signal::owner`).
#[derive(Debug)]
pub struct Placed {
    pub node: String,
    pub door: Option<DoorSettings>,
    pub owner: Option<String>,
}

/// What the session asks for.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// A frame for the client.
    Send(ServerMessage),
    /// A WebSocket ping, to find a silent client out.
    Ping,
    /// Close the socket: a flood, or a client that answers nothing.
    Close,
    /// Place `room` (or find it running) and answer with
    /// [`Input::Placed`] before anything else.
    Place { room: String, priority: bool },
    /// Find the node `room` runs on, placing nothing, and answer with
    /// [`Input::Located`] before anything else.
    Locate { room: String },
    /// Make the key whose digest is `digest` `room`'s owner (or keep it so
    /// longer), and answer with [`Input::Claimed`] before anything else.
    Claim { room: String, digest: String },
    /// A command for the worker last placed or located. One that
    /// [`Command::wants_reply`] is answered with [`Input::Reply`] before
    /// anything else; one that [`Command::attaches`] sends the
    /// participant's events to this session from then on.
    Worker(Command),
    /// The worker `node` was lost: placement stops choosing it until it
    /// reports again.
    NodeLost(String),
}

/// What the session needs from the server it runs in: settings, the
/// limits per address (shared by every session; `C` is a fake clock in
/// tests) and the counters.
pub struct Env<'a, C: Clock = DefaultClock> {
    pub config: &'a SignalConfig,
    pub limits: Option<&'a AddressLimits<C>>,
    pub metrics: &'a Metrics,
}

struct Joined {
    room: String,
    id: ParticipantId,
    node: String,
    /// As the worker last said (`room-settings`).
    moderator: bool,
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

/// A join checked and waiting for its room's placement.
struct Draft {
    room: String,
    name: String,
    audio: bool,
    video: bool,
    moderator: bool,
    /// A locked room's password, as the cluster compares it.
    password: Option<String>,
    rejoin: Option<String>,
    vouched: Option<Vouched>,
    /// The room owner's key it showed.
    owner: Option<String>,
}

/// A resume waiting for its room's node, then for the worker.
struct ResumeDraft {
    room: String,
    participant: ParticipantId,
    token: String,
}

/// The one answer the session waits for.
enum Waiting {
    Nothing,
    Placement(Draft),
    Join {
        joined: Joined,
        token: String,
        ownership: Ownership,
    },
    Location(ResumeDraft),
    /// The room's owner claimed: a key made for its creator (given once
    /// kept), or the owner's own claim made again.
    Claim(Option<String>),
    Resume {
        draft: ResumeDraft,
        node: String,
    },
    /// An offer's answer, sent on to the client.
    Answer,
    /// A command whose only news is a refusal.
    Done,
}

/// One signalling session.
pub struct Session<'a, C: Clock = DefaultClock> {
    env: Env<'a, C>,
    /// The client's address, for the limits per address.
    client: IpAddr,
    /// Names this session to the worker, so that the detach it sends when
    /// it ends is ignored once another session resumed the participant.
    id: SessionId,
    /// Participant ids and resume tokens.
    rng: StdRng,
    joined: Option<Joined>,
    /// Waiting in a room's lobby: in once a moderator lets it in.
    knocking: Option<(Joined, String)>,
    lost: Option<Lost>,
    waiting: Waiting,
    bucket: TokenBucket,
    /// What refused messages may still come before the socket is closed.
    refusals: TokenBucket,
    /// When the client last sent anything.
    heard: Instant,
    out: VecDeque<Output>,
}

impl<'a, C: Clock + Clone> Session<'a, C> {
    /// A session for `client`, named `id`, drawing participant ids and
    /// resume tokens from `rng` (seeded from the system's entropy, a full
    /// 256 bits, except in tests).
    pub fn new(env: Env<'a, C>, client: IpAddr, id: SessionId, rng: StdRng, now: Instant) -> Self {
        Session {
            env,
            client,
            id,
            rng,
            joined: None,
            knocking: None,
            lost: None,
            waiting: Waiting::Nothing,
            bucket: TokenBucket::new(BURST, Duration::from_secs(1) / RATE, now),
            refusals: TokenBucket::new(MAX_REFUSED, REFUSED_FORGIVEN_EVERY, now),
            heard: now,
            out: VecDeque::new(),
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn handle_input(&mut self, input: Input, now: Now) {
        match input {
            Input::Text(text) => {
                self.heard = now.at;
                self.on_text(text, now);
            }
            Input::Binary => {
                self.heard = now.at;
                self.send(ServerMessage::error(
                    ErrorCode::BadMessage,
                    "binary frames are not part of the protocol",
                ));
            }
            Input::Tick => {
                if now.at.saturating_duration_since(self.heard) > IDLE {
                    tracing::debug!("signalling silent; closed");
                    self.out.push_back(Output::Close);
                } else {
                    self.out.push_back(Output::Ping);
                }
            }
            Input::Event { event, worker_gone } => self.on_event(event, worker_gone, now),
            Input::Placed(placed) => self.on_placed(placed),
            Input::Located(node) => self.on_located(node),
            Input::Claimed(owns) => self.on_claimed(owns),
            Input::Reply(reply) => self.on_reply(reply, now),
            Input::Ended => self.detach(),
        }
    }

    /// The client showed it is there without a message (a pong).
    pub fn heard(&mut self, now: Now) {
        self.heard = now.at;
    }

    fn send(&mut self, msg: ServerMessage) {
        self.out.push_back(Output::Send(msg));
    }

    fn ask(&mut self, cmd: Command, waiting: Waiting) {
        if cmd.wants_reply() {
            self.waiting = waiting;
        }
        self.out.push_back(Output::Worker(cmd));
    }

    fn on_text(&mut self, text: &str, now: Now) {
        let answer = self.answer_text(text, now);
        let Some(refusal) = answer else {
            return;
        };
        if self.refusals.take(now.at) {
            self.send(refusal);
        } else {
            tracing::warn!("signalling flood of refused messages; closing");
            self.out.push_back(Output::Close);
        }
    }

    /// Does what the message says; its refusal, if it is refused.
    fn answer_text(&mut self, text: &str, now: Now) -> Option<ServerMessage> {
        if !self.bucket.take(now.at) {
            return Some(ServerMessage::error(
                ErrorCode::RateLimited,
                "too many messages; slow down",
            ));
        }
        if !matches!(self.waiting, Waiting::Nothing) {
            // The socket loop answers every request before reading on.
            return Some(ServerMessage::error(
                ErrorCode::BadMessage,
                "one request at a time",
            ));
        }
        if text.len() > MAX_MESSAGE {
            return Some(ServerMessage::error(
                ErrorCode::TooLarge,
                format!(
                    "message of {} bytes; the limit is {MAX_MESSAGE}",
                    text.len()
                ),
            ));
        }
        protocol::parse(text)
            .and_then(|msg| self.on_message(msg, now))
            .err()
    }

    fn on_message(&mut self, msg: ClientMessage, now: Now) -> Result<(), ServerMessage> {
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
                owner,
            } => {
                let entry = Entry {
                    grant,
                    jwt,
                    password,
                    rejoin,
                    owner,
                };
                self.join(v, room, name, (audio, video), entry, now)
            }
            ClientMessage::Resume {
                v,
                room,
                participant,
                token,
            } => self.resume(v, room, participant, token),
            ClientMessage::Offer { sdp, screen } => {
                let participant = self.current()?;
                let cmd = Command::Offer {
                    participant,
                    sdp,
                    screen,
                };
                self.ask(cmd, Waiting::Answer);
                Ok(())
            }
            ClientMessage::Answer { id: offer, sdp } => {
                let participant = self.current()?;
                let cmd = Command::Answer {
                    participant,
                    offer,
                    sdp,
                };
                self.ask(cmd, Waiting::Done);
                Ok(())
            }
            ClientMessage::Candidate { candidate } => {
                let participant = self.current()?;
                // `null` or "" mark the end of candidates: nothing to do for
                // an ICE-lite server.
                if let Some(candidate) = candidate.filter(|c| !c.is_empty()) {
                    let cmd = Command::Candidate {
                        participant,
                        candidate,
                    };
                    self.ask(cmd, Waiting::Done);
                }
                Ok(())
            }
            ClientMessage::State {
                audio,
                video,
                screen,
                hand,
            } => {
                let participant = self.current()?;
                let state = ParticipantState {
                    audio,
                    video,
                    screen,
                    hand,
                };
                self.ask(Command::State { participant, state }, Waiting::Nothing);
                Ok(())
            }
            ClientMessage::Chat { text } => {
                let text = clean::chat(&text).ok_or_else(|| {
                    ServerMessage::error(
                        ErrorCode::BadMessage,
                        format!(
                            "a chat message has 1 to {} characters",
                            protocol::MAX_CHAT_CHARS
                        ),
                    )
                })?;
                let participant = self.current()?;
                self.ask(Command::Chat { participant, text }, Waiting::Nothing);
                Ok(())
            }
            ClientMessage::ReceiveVideo { on } => {
                let participant = self.current()?;
                self.ask(Command::ReceiveVideo { participant, on }, Waiting::Nothing);
                Ok(())
            }
            ClientMessage::VideoSizes { tiles } => {
                if tiles.len() > MAX_TILES {
                    return Err(ServerMessage::error(
                        ErrorCode::BadMessage,
                        format!("at most {MAX_TILES} tiles"),
                    ));
                }
                let participant = self.current()?;
                self.ask(Command::VideoSizes { participant, tiles }, Waiting::Nothing);
                Ok(())
            }
            ClientMessage::SetPassword { password } => {
                let password = password.as_deref().map(clean::password).transpose()?;
                let room = self.joined.as_ref().map_or("", |j| j.room.as_str());
                let password = password.map(|p| self.password_digest(room, &p));
                self.moderate(|participant| Command::SetPassword {
                    participant,
                    password,
                })
            }
            ClientMessage::SetLobby { on } => {
                self.moderate(|participant| Command::SetLobby { participant, on })
            }
            ClientMessage::Admit { id } => self.answer_knock(id, true),
            ClientMessage::Refuse { id } => self.answer_knock(id, false),
            ClientMessage::Remove { id } => self.moderate(|participant| Command::Remove {
                participant,
                target: id,
            }),
            ClientMessage::Mute { id } => self.moderate_with(ModeratorAction::Mute { target: id }),
            ClientMessage::MuteAll => self.moderate_with(ModeratorAction::MuteAll),
            ClientMessage::MakeModerator { id } => {
                self.moderate_with(ModeratorAction::MakeModerator { target: id })
            }
            ClientMessage::EndCall => self.moderate_with(ModeratorAction::EndCall),
            ClientMessage::Leave => {
                self.lost = None;
                if let Some((k, _)) = self.knocking.take() {
                    self.leave(&k);
                }
                if let Some(j) = self.joined.take() {
                    self.leave(&j);
                    tracing::info!(peer = j.id, room = %privacy::room(&j.room), "participant left");
                }
                Ok(())
            }
            ClientMessage::Ping => {
                self.send(ServerMessage::Pong);
                Ok(())
            }
        }
    }

    /// Out of the room (or its lobby) on the worker, and no more of its
    /// events to this session.
    fn leave(&mut self, j: &Joined) {
        self.ask(Command::Leave { participant: j.id }, Waiting::Nothing);
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

    fn join(
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
            owner,
        }: Entry,
        now: Now,
    ) -> Result<(), ServerMessage> {
        self.may_enter(v)?;
        if let Some(Err(e)) = self.env.limits.map(|l| l.join(self.client)) {
            self.env.metrics.limited.inc();
            return Err(ServerMessage::error(ErrorCode::RateLimited, e.to_string()));
        }
        room_name::validate(&room)
            .map_err(|e| ServerMessage::error(ErrorCode::InvalidRoom, e.to_string()))?;
        let pass = self.check_room_token(jwt.as_deref(), &room, now.unix)?;
        let moderator = pass.as_ref().is_some_and(|p| p.moderator);
        let vouched = self
            .lost
            .as_ref()
            .filter(|l| l.room == room && now.at.saturating_duration_since(l.at) < RETURN_WINDOW)
            .map(|l| match l.moderator {
                true => Vouched::Moderator,
                false => Vouched::Member,
            });
        let password = password.as_deref().map(clean::password).transpose()?;
        let password = password.map(|p| self.password_digest(&room, &p));
        let rejoin = rejoin.filter(|t| ids::is_resume_token(t));
        let owner = owner.filter(|k| owner::is_key(k));
        // A token's name is the name: nobody enters under another on it.
        let name = match pass.and_then(|p| p.name) {
            Some(n) => clean::name(&n).ok_or_else(|| {
                ServerMessage::error(ErrorCode::TokenInvalid, "the invitation's name is empty")
            })?,
            None => clean::name(&name).ok_or_else(|| {
                ServerMessage::error(ErrorCode::InvalidName, "a display name is needed")
            })?,
        };
        let priority = match grant {
            Some(g) => {
                self.check_grant(&g, &room, now.unix)?;
                true
            }
            None => false,
        };
        self.out.push_back(Output::Place {
            room: room.clone(),
            priority,
        });
        self.waiting = Waiting::Placement(Draft {
            room,
            name,
            audio,
            video,
            moderator,
            password,
            rejoin,
            vouched,
            owner,
        });
        Ok(())
    }

    fn on_placed(&mut self, placed: Result<Placed, PlaceError>) {
        let Waiting::Placement(draft) = std::mem::replace(&mut self.waiting, Waiting::Nothing)
        else {
            return;
        };
        let Placed { node, door, owner } = match placed {
            Ok(p) => p,
            Err(e) => {
                let refusal = place_error(e, &self.env.config.partners, &draft.room);
                self.send(refusal);
                return;
            }
        };
        let ownership = Ownership::of(draft.owner.as_deref(), owner.as_deref());
        let moderator = draft.moderator || matches!(ownership, Ownership::Owner(_));
        let config = self.env.config;
        let id = ids::new_participant_id(&mut self.rng);
        let token = ids::new_resume_token(&mut self.rng);
        let req = JoinRequest {
            room: draft.room.clone(),
            info: ParticipantInfo {
                id,
                name: draft.name,
                state: ParticipantState::joining(draft.audio, draft.video),
            },
            token: token.clone(),
            max_participants: config.max_participants,
            last_n: config.last_n,
            session: self.id,
            password: draft.password,
            moderator,
            rejoin: draft.rejoin,
            network: Some(privacy::network_id(
                crate::per_address::key(self.client),
                config.secret.as_deref(),
            )),
            door,
            vouched: draft.vouched,
            claimed: ownership == Ownership::Stranger,
        };
        let joined = Joined {
            room: draft.room,
            id,
            node,
            moderator,
        };
        let waiting = Waiting::Join {
            joined,
            token,
            ownership,
        };
        self.ask(Command::Join { req }, waiting);
    }

    fn resume(
        &mut self,
        v: u32,
        room: String,
        participant: ParticipantId,
        token: String,
    ) -> Result<(), ServerMessage> {
        self.may_enter(v)?;
        room_name::validate(&room).map_err(|_| resume_failed())?;
        self.out.push_back(Output::Locate { room: room.clone() });
        self.waiting = Waiting::Location(ResumeDraft {
            room,
            participant,
            token,
        });
        Ok(())
    }

    fn on_located(&mut self, node: Option<String>) {
        let Waiting::Location(draft) = std::mem::replace(&mut self.waiting, Waiting::Nothing)
        else {
            return;
        };
        let Some(node) = node else {
            self.send(resume_failed());
            return;
        };
        let cmd = Command::Resume {
            participant: draft.participant,
            token: draft.token.clone(),
            session: self.id,
            room: Some(draft.room.clone()),
        };
        self.ask(cmd, Waiting::Resume { draft, node });
    }

    fn on_reply(&mut self, reply: Result<Reply, WorkerError>, now: Now) {
        match (
            std::mem::replace(&mut self.waiting, Waiting::Nothing),
            reply,
        ) {
            (Waiting::Join { joined, token, .. }, Ok(Reply::Knocking)) => {
                self.lost = None;
                tracing::info!(peer = joined.id, room = %privacy::room(&joined.room), "waiting in the lobby");
                self.knocking = Some((joined, token));
                self.send(ServerMessage::Lobby);
            }
            (
                Waiting::Join {
                    joined,
                    token,
                    ownership,
                },
                Ok(Reply::Joined { others, founder }),
            ) => {
                self.lost = None;
                let room = joined.room.clone();
                self.welcome(joined, others, token, now);
                self.claim(room, ownership, founder);
            }
            (Waiting::Resume { draft, .. }, Ok(Reply::Resumed { resumed }))
                if resumed.room != draft.room =>
            {
                // Its token is right but its room is not the one named (a
                // worker older than the check of `room`): a session must
                // not claim a room it is not in (after a failover, the
                // room it is vouched into). Given back.
                self.ask(
                    Command::Detach {
                        participant: draft.participant,
                        session: self.id,
                    },
                    Waiting::Nothing,
                );
                self.send(resume_failed());
            }
            (Waiting::Resume { draft, node }, Ok(Reply::Resumed { resumed })) => {
                let participant = draft.participant;
                tracing::info!(peer = participant, room = %privacy::room(&resumed.room), node, "participant resumed");
                self.joined = Some(Joined {
                    room: draft.room,
                    id: participant,
                    node,
                    moderator: false,
                });
                let ice_servers = self.ice_servers(participant, now);
                self.send(ServerMessage::Welcome {
                    v: protocol::VERSION,
                    you: participant,
                    room: resumed.room,
                    participants: resumed.others,
                    token: draft.token,
                    resumed: true,
                    ice_servers,
                });
                if let Some((id, sdp)) = resumed.offer {
                    self.send(ServerMessage::Offer { id, sdp });
                }
            }
            (Waiting::Resume { .. }, _) => self.send(resume_failed()),
            (Waiting::Answer, Ok(Reply::Answer { sdp })) => {
                self.send(ServerMessage::Answer { sdp })
            }
            (Waiting::Done, Ok(_)) => {}
            (
                Waiting::Nothing | Waiting::Placement(_) | Waiting::Location(_) | Waiting::Claim(_),
                _,
            ) => {
                tracing::warn!("a worker reply nobody waited for");
            }
            (_, Err(e)) => self.send(worker_error(e)),
            (_, Ok(_)) => self.send(worker_error(WorkerError::Internal(
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
        now: Now,
    ) {
        let id = joined.id;
        tracing::info!(peer = id, room = %privacy::room(&joined.room), node = joined.node, "participant joined");
        let room = joined.room.clone();
        self.joined = Some(joined);
        let ice_servers = self.ice_servers(id, now);
        self.send(ServerMessage::Welcome {
            v: protocol::VERSION,
            you: id,
            room,
            participants,
            token,
            resumed: false,
            ice_servers,
        });
    }

    /// After a welcome into `room`: its owner's claim is made again (its
    /// month starts again), and whoever founded it (first in and its
    /// moderator, as the worker says; nobody owning it) is made its owner.
    fn claim(&mut self, room: String, ownership: Ownership, founder: bool) {
        let (key, waiting) = match ownership {
            Ownership::Owner(key) => (key, None),
            // One address comes to own few rooms: past its share, its new
            // rooms have no owner (first in moderates, as before owners).
            Ownership::Unowned
                if founder && self.env.limits.is_none_or(|l| l.claim(self.client)) =>
            {
                let key = owner::new_key(&mut self.rng);
                (key.clone(), Some(key))
            }
            Ownership::Unowned | Ownership::Stranger => return,
        };
        self.out.push_back(Output::Claim {
            room,
            digest: owner::digest(&key),
        });
        self.waiting = Waiting::Claim(waiting);
    }

    fn on_claimed(&mut self, owns: bool) {
        let Waiting::Claim(made) = std::mem::replace(&mut self.waiting, Waiting::Nothing) else {
            return;
        };
        // Someone else's claim landed first (two servers, one room): the
        // key made is no owner's, and is not given.
        if let (Some(key), true) = (made, owns) {
            self.send(ServerMessage::RoomOwner { key });
        }
    }

    /// A moderator lets `knocker` in, or not.
    fn answer_knock(&mut self, knocker: ParticipantId, admit: bool) -> Result<(), ServerMessage> {
        self.moderate(|participant| Command::Admit {
            participant,
            knocker,
            admit,
        })
    }

    /// A moderator's command about its room.
    fn moderate(
        &mut self,
        cmd: impl FnOnce(ParticipantId) -> Command,
    ) -> Result<(), ServerMessage> {
        let participant = self.current()?;
        self.ask(cmd(participant), Waiting::Done);
        Ok(())
    }

    fn moderate_with(&mut self, action: ModeratorAction) -> Result<(), ServerMessage> {
        self.moderate(|participant| Command::Moderate {
            participant,
            action,
        })
    }

    /// A password as the cluster compares it (`privacy::password_digest`).
    fn password_digest(&self, room: &str, password: &str) -> String {
        let config = &self.env.config;
        let key = config.secret.as_deref().or(config.door_key.as_deref());
        privacy::password_digest(room, password, key)
    }

    /// What the join's room token (if any) lets in: refused when the
    /// token is not valid for `room` now, or when rooms are closed and
    /// there is none. A token sent to a server that checks none is not
    /// read: its rooms are open.
    fn check_room_token(
        &self,
        jwt: Option<&str>,
        room: &str,
        unix: u64,
    ) -> Result<Option<Pass>, ServerMessage> {
        let config = self.env.config;
        match (jwt, &config.room_tokens) {
            (Some(t), Some(key)) => key.check(t, room, unix).map(Some),
            _ if config.closed_rooms => Err(TokenError::Required),
            _ => Ok(None),
        }
        .map_err(token_error)
    }

    /// A priority grant for `room`, valid now.
    fn check_grant(&self, grant: &str, room: &str, unix: u64) -> Result<(), ServerMessage> {
        let Some(key) = &self.env.config.grants else {
            return Err(ServerMessage::error(
                ErrorCode::GrantInvalid,
                "this server gives no priority: it has no secret to check links with",
            ));
        };
        key.check(grant, room, unix)
            .map(|_| ())
            .map_err(grant_error)
    }

    /// TURN credentials for `participant`, when TURN is configured.
    fn ice_servers(&self, participant: ParticipantId, now: Now) -> Vec<IceServer> {
        self.env
            .config
            .turn
            .iter()
            .map(|t| t.credentials(now.unix, &participant.to_string()))
            .collect()
    }

    fn on_event(&mut self, ev: PeerEvent, worker_gone: bool, now: Now) {
        let msg = match ev {
            PeerEvent::Offer { id, sdp } => ServerMessage::Offer { id, sdp },
            PeerEvent::ParticipantJoined { participant } => {
                ServerMessage::ParticipantJoined { participant }
            }
            PeerEvent::ParticipantLeft { id } => ServerMessage::ParticipantLeft { id },
            PeerEvent::State { id, state } => ServerMessage::State { id, state },
            PeerEvent::Chat { from, name, text } => ServerMessage::Chat { from, name, text },
            PeerEvent::Speaker { id } => ServerMessage::Speaker { id },
            PeerEvent::Forwarded { video } => ServerMessage::Forwarded { video },
            PeerEvent::Layers { mid, active } => ServerMessage::Layers { mid, active },
            PeerEvent::Quality { links } => ServerMessage::Quality { links },
            PeerEvent::Closed { reason } => {
                // Someone waiting in a lobby whose worker was lost is not
                // let in: joining again at once, it could be first into
                // the room made anew, and so its moderator.
                if self.knocking.take().is_some() {
                    ServerMessage::error(
                        ErrorCode::LobbyRefused,
                        "the call's server was lost while you waited; ask to join again",
                    )
                } else {
                    // The worker dropped the connection, or was lost: the
                    // client joins again and is placed anew.
                    if let Some(j) = self.joined.take() {
                        if worker_gone {
                            self.out.push_back(Output::NodeLost(j.node));
                            self.lost = Some(Lost {
                                room: j.room,
                                moderator: j.moderator,
                                at: now.at,
                            });
                        }
                    }
                    ServerMessage::error(ErrorCode::MediaLost, reason)
                }
            }
            PeerEvent::Knocking { id, name } => ServerMessage::Knocking { id, name },
            PeerEvent::KnockEnded { id } => ServerMessage::KnockEnded { id },
            PeerEvent::RoomSettings {
                moderator,
                locked,
                lobby,
            } => {
                if let Some(j) = &mut self.joined {
                    j.moderator = moderator;
                }
                ServerMessage::RoomSettings {
                    moderator,
                    locked,
                    lobby,
                }
            }
            PeerEvent::Admitted { others } => {
                if let Some((joined, token)) = self.knocking.take() {
                    self.welcome(joined, others, token, now);
                }
                return;
            }
            PeerEvent::Refused { reason } => {
                // Its events no longer come here.
                if let Some((k, _)) = self.knocking.take() {
                    self.leave(&k);
                }
                ServerMessage::error(ErrorCode::LobbyRefused, reason)
            }
            PeerEvent::Removed | PeerEvent::CallEnded => {
                if let Some(j) = self.joined.take() {
                    self.leave(&j);
                }
                match ev {
                    PeerEvent::Removed => ServerMessage::error(
                        ErrorCode::Removed,
                        "a moderator removed you from the call",
                    ),
                    _ => ServerMessage::error(
                        ErrorCode::CallEnded,
                        "a moderator ended the call for everyone",
                    ),
                }
            }
            PeerEvent::Muted => ServerMessage::Muted,
        };
        self.send(msg);
    }

    fn current(&self) -> Result<ParticipantId, ServerMessage> {
        self.joined
            .as_ref()
            .map(|j| j.id)
            .ok_or_else(|| ServerMessage::error(ErrorCode::NotJoined, "send join first"))
    }

    /// The socket ended without `leave`: a participant's media waits for
    /// a resume; someone waiting in a lobby leaves it.
    fn detach(&mut self) {
        if let Some((k, _)) = self.knocking.take() {
            self.leave(&k);
        }
        if let Some(j) = self.joined.take() {
            self.ask(
                Command::Detach {
                    participant: j.id,
                    session: self.id,
                },
                Waiting::Nothing,
            );
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
    owner: Option<String>,
}

/// A resume refused, for whatever reason: the client joins again, and
/// learns nothing about who is where.
fn resume_failed() -> ServerMessage {
    ServerMessage::error(
        ErrorCode::ResumeFailed,
        "this session cannot be resumed; join again",
    )
}
