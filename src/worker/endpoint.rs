//! The endpoint: everything a worker decides, as a plain state machine.
//!
//! Like str0m's `Rtc` or quinn-proto's `Endpoint`, it owns no socket, no
//! channel and no clock. The media loop feeds it datagrams
//! ([`Endpoint::handle_datagram`]), commands from the control plane
//! ([`Endpoint::handle_command`]) and time ([`Endpoint::handle_timeout`]),
//! and takes out what it produced: datagrams to send
//! ([`Endpoint::poll_transmit`]), events for the participants' signalling
//! ([`Endpoint::poll_event`]) and when to wake it next
//! ([`Endpoint::poll_timeout`]). Randomness comes from a generator given to
//! the constructor. So every decision above a room (demultiplexing, joins,
//! resumes, grace periods, drains) is tested with a fake clock and no
//! socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use str0m::net::{Protocol, Receive, Transmit};
use str0m::Input;

use super::demux::{is_stun, Demux, ADDR_TAKEOVER};
use super::door::{Door, Entry};
use super::peer::{Departure, Local, Peer};
use super::room::{Outputs, Room};
use super::shard::FlowChange;
use super::stats::{Counters, RoomLoad};
use super::{Command, JoinRequest, ModeratorAction, PeerEvent, Reply, WorkerError};
use crate::ids::{ParticipantId, ParticipantInfo};

/// How often grace periods are checked and addresses that fell silent
/// forgotten. Graces last seconds, so a quarter of a second late is
/// nothing, and checking every peer at every turn of a busy loop would cost
/// more than forwarding some packets.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);

/// How long a room that ended here is remembered: as long as the cluster
/// may keep its door, its placement's grace after the last report that
/// listed it (`cluster::registry::ROOM_GRACE`, 30 s), and a little more.
pub const ENDED_REMEMBERED: Duration = Duration::from_secs(35);
/// The furthest a drain deadline may lie: a larger one (an operator's
/// `u64::MAX`) means "never move anyone", not an overflow.
const MAX_DRAIN: Duration = Duration::from_secs(365 * 24 * 3600);

/// Room number on this worker (cheaper to hash than the room name).
type RoomKey = u64;

/// Where a peer lives: the key the demultiplexer stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    room: RoomKey,
    peer: ParticipantId,
}

/// The participant's route and room. A function of the two maps rather
/// than a method, so the caller keeps the endpoint's other fields.
fn room_of<'a>(
    routes: &HashMap<ParticipantId, Route>,
    rooms: &'a mut HashMap<RoomKey, Room>,
    participant: ParticipantId,
) -> Result<(Route, &'a mut Room), WorkerError> {
    let route = *routes
        .get(&participant)
        .ok_or(WorkerError::UnknownParticipant)?;
    let room = rooms
        .get_mut(&route.room)
        .ok_or(WorkerError::UnknownParticipant)?;
    Ok((route, room))
}

/// The route and room of `participant`, if it moderates that room.
fn moderated<'a>(
    routes: &HashMap<ParticipantId, Route>,
    rooms: &'a mut HashMap<RoomKey, Room>,
    participant: ParticipantId,
) -> Result<(Route, &'a mut Room), WorkerError> {
    let (route, room) = room_of(routes, rooms, participant)?;
    if !room.door().is_moderator(participant) {
        return Err(WorkerError::NotModerator);
    }
    Ok((route, room))
}

/// What became of a datagram given to [`Endpoint::handle_datagram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A peer took it.
    Delivered,
    /// No peer here has its address or its STUN ufrag: garbage, a
    /// stranger, a peer that left, or one of another shard's (counted as
    /// dropped by the caller unless handed over).
    Unknown,
    /// Its peer refused it (a STUN check that failed), or it was
    /// malformed: dropped, and counted.
    Refused,
}

/// The state of one media shard: its rooms and their participants.
pub struct Endpoint {
    /// Our ICE candidates (the destinations of the datagrams we receive),
    /// DTLS certificate and shard.
    local: Local,
    rooms: HashMap<RoomKey, Room>,
    room_keys: HashMap<String, RoomKey>,
    next_room_key: RoomKey,
    routes: HashMap<ParticipantId, Route>,
    /// Who waits in which room's lobby (not in `routes`: no connection
    /// until let in).
    knocking: HashMap<ParticipantId, RoomKey>,
    demux: Demux<Route>,
    out: Outputs,
    /// Datagrams at the front of `out.transmits` already handed out by
    /// the last [`Endpoint::poll_transmit`].
    handed_out: usize,
    /// Rooms with output waiting to be drained.
    busy: Vec<RoomKey>,
    /// Rooms that ended here, and when, for as long as the cluster may
    /// still hold their doors: one made anew here is a new room (everyone
    /// had left), not one whose worker was lost. A process started anew
    /// remembers none, and so restores the doors of the rooms it lost.
    ended: HashMap<String, Instant>,
    /// Set by a drain: no new rooms.
    draining: bool,
    /// When everyone still here is moved to another worker.
    drain_deadline: Option<Instant>,
    next_housekeeping: Instant,
    rng: StdRng,
}

impl Endpoint {
    /// An endpoint presenting `local` to its peers; `seed` feeds every
    /// random choice it makes (ICE credentials, sequence number offsets).
    pub fn new(local: Local, seed: u64, now: Instant) -> Self {
        Endpoint {
            local,
            rooms: HashMap::new(),
            room_keys: HashMap::new(),
            next_room_key: 1,
            routes: HashMap::new(),
            knocking: HashMap::new(),
            demux: Demux::default(),
            out: Outputs::default(),
            handed_out: 0,
            busy: Vec::new(),
            ended: HashMap::new(),
            draining: false,
            drain_deadline: None,
            next_housekeeping: now + HOUSEKEEPING_EVERY,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A datagram arrived on the media socket (or a frame on an ICE-TCP
    /// connection: `proto`).
    ///
    /// A STUN request names its peer by ufrag, from any address, and only
    /// once that peer authenticates it does the address become the peer's
    /// (taken from whoever had it: NATs reuse ports). Everything else must
    /// come from an address learned that way.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        data: &[u8],
    ) -> Delivery {
        let stun = is_stun(data);
        let route = if stun {
            self.demux.by_stun(data)
        } else {
            self.demux.by_addr(&source, now)
        };
        let Some(route) = route else {
            // A request for another shard's participant from an address one
            // of ours was heard from lately is not handed over: there it
            // would take the address in the worker's shared flow table.
            let heard_lately =
                |(_, heard): (_, Instant)| now.saturating_duration_since(heard) < ADDR_TAKEOVER;
            if stun && self.demux.owner(&source).is_some_and(heard_lately) {
                self.out.counters.datagrams_dropped += 1;
                return Delivery::Refused;
            }
            return Delivery::Unknown;
        };
        let Ok(contents) = data.try_into() else {
            self.out.counters.datagrams_dropped += 1;
            return Delivery::Refused;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination: self.local.candidates.local(proto),
                contents,
            },
        );
        let Some(room) = self.rooms.get_mut(&route.room) else {
            return Delivery::Unknown;
        };
        // From an address the peer already owns, its connection checks the
        // request itself; only a new address is checked here first, and
        // one that another peer was heard from lately stays that peer's.
        if stun {
            match self.demux.owner(&source) {
                // Its own address is counted too: after an ICE restart the
                // agent no longer has it, and an address kept alive across
                // restarts would otherwise reach each new agent uncounted.
                Some((owner, _)) if owner == route => {
                    if !room.counts_source(route.peer, source) {
                        self.out.counters.datagrams_dropped += 1;
                        return Delivery::Refused;
                    }
                    self.demux.by_addr(&source, now);
                }
                Some((_, heard)) if now.saturating_duration_since(heard) < ADDR_TAKEOVER => {
                    self.out.counters.datagrams_dropped += 1;
                    return Delivery::Refused;
                }
                _ => {
                    if !room.takes_source(route.peer, source, &input) {
                        self.out.counters.datagrams_dropped += 1;
                        return Delivery::Refused;
                    }
                    self.demux.learn_addr(source, route, now);
                }
            }
        }
        room.receive(route.peer, input, now, &mut self.out);
        self.mark_busy(route.room);
        Delivery::Delivered
    }

    /// A command from the control plane. The reply is returned at once;
    /// what the command causes leaves through the `poll_*` methods, after
    /// the caller has sent the reply (an answer reaches the client before
    /// the server offer it triggers).
    pub fn handle_command(&mut self, now: Instant, cmd: Command) -> Result<Reply, WorkerError> {
        match cmd {
            Command::Join { req } => self.join(req, now),
            Command::Offer {
                participant,
                sdp,
                screen,
            } => {
                let (route, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                let sdp = room.accept_offer(participant, &sdp, screen.as_deref(), now)?;
                // An ICE restart changes our credentials.
                if let Some(ufrag) = room.ufrag(participant) {
                    self.demux.set_ufrag(route, ufrag);
                }
                self.mark_busy(route.room);
                Ok(Reply::Answer { sdp })
            }
            Command::Answer {
                participant,
                offer,
                sdp,
            } => {
                let (route, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                room.accept_answer(participant, offer, &sdp, now, &mut self.rng, &mut self.out)?;
                self.mark_busy(route.room);
                Ok(Reply::Done)
            }
            Command::Candidate {
                participant,
                candidate,
            } => {
                let (route, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                room.add_candidate(participant, &candidate)?;
                self.mark_busy(route.room);
                Ok(Reply::Done)
            }
            Command::State { participant, state } => {
                let (_, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                room.set_state(participant, state, &mut self.out);
                Ok(Reply::Done)
            }
            Command::Chat { participant, text } => {
                let (_, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                room.chat(participant, text, &mut self.out);
                Ok(Reply::Done)
            }
            Command::ReceiveVideo { participant, on } => {
                let (route, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                room.receive_video(participant, on, now, &mut self.out);
                self.mark_busy(route.room);
                Ok(Reply::Done)
            }
            Command::VideoSizes { participant, tiles } => {
                let (route, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                let tiles: Vec<_> = tiles.iter().map(|t| (t.id, t.width)).collect();
                room.set_tiles(participant, &tiles, now, &mut self.out);
                self.mark_busy(route.room);
                Ok(Reply::Done)
            }
            Command::Leave { participant } => {
                self.take_knock(participant);
                self.remove(participant, Departure::Left, now);
                Ok(Reply::Done)
            }
            Command::Detach {
                participant,
                session,
            } => {
                // Someone waiting in a lobby that loses its signalling has
                // nobody to be let in for: it leaves the lobby.
                if self.take_knock(participant).is_some() {
                    return Ok(Reply::Done);
                }
                let (_, room) = room_of(&self.routes, &mut self.rooms, participant)?;
                if room.detach(participant, session, now) {
                    tracing::info!(
                        peer = participant,
                        "signalling detached; waiting for resume"
                    );
                } else {
                    tracing::debug!(peer = participant, "detach from a replaced session ignored");
                }
                Ok(Reply::Done)
            }
            Command::Resume {
                participant,
                token,
                session,
                room: named,
            } => {
                let (_, room) = room_of(&self.routes, &mut self.rooms, participant)
                    .map_err(|_| WorkerError::ResumeRefused)?;
                if named.is_some_and(|n| n != room.name()) {
                    return Err(WorkerError::ResumeRefused);
                }
                let resumed = room.resume(participant, &token, session)?;
                room.tell_settings(participant, &mut self.out);
                tracing::info!(peer = participant, "session resumed");
                Ok(Reply::Resumed { resumed })
            }
            Command::Drain { deadline_secs } => {
                self.draining = true;
                let after = Duration::from_secs(deadline_secs);
                if let Some(deadline) = now.checked_add(after).filter(|_| after <= MAX_DRAIN) {
                    if self.drain_deadline.is_none_or(|d| deadline < d) {
                        self.drain_deadline = Some(deadline);
                    }
                }
                tracing::info!(deadline_secs, "draining: no new rooms");
                Ok(Reply::Done)
            }
            Command::SetPassword {
                participant,
                password,
            } => {
                let (_, room) = moderated(&self.routes, &mut self.rooms, participant)?;
                room.door_mut().set_password(password);
                room.tell_everyone_settings(&mut self.out);
                Ok(Reply::Done)
            }
            Command::SetLobby { participant, on } => {
                let (_, room) = moderated(&self.routes, &mut self.rooms, participant)?;
                room.door_mut().set_lobby(on);
                room.tell_everyone_settings(&mut self.out);
                if !on {
                    // Whoever waits was waiting for this door to open.
                    let waiting: Vec<ParticipantId> = room.door().waiting().collect();
                    for id in waiting {
                        if let Some(req) = self.take_knock(id) {
                            self.let_in(req, now);
                        }
                    }
                }
                Ok(Reply::Done)
            }
            Command::Admit {
                participant,
                knocker,
                admit,
            } => {
                let (route, _) = moderated(&self.routes, &mut self.rooms, participant)?;
                if self.knocking.get(&knocker) != Some(&route.room) {
                    return Err(WorkerError::NoSuchPerson);
                }
                let req = self.take_knock(knocker).ok_or(WorkerError::NoSuchPerson)?;
                if admit {
                    self.let_in(req, now);
                } else {
                    tracing::info!(peer = knocker, by = participant, "not let in");
                    let reason = "a moderator did not let you in".into();
                    self.out
                        .events
                        .push_back((knocker, PeerEvent::Refused { reason }));
                }
                Ok(Reply::Done)
            }
            Command::Remove {
                participant,
                target,
            } => {
                let (route, _) = moderated(&self.routes, &mut self.rooms, participant)?;
                if self.routes.get(&target).map(|r| r.room) != Some(route.room) {
                    return Err(WorkerError::NoSuchPerson);
                }
                tracing::info!(peer = target, by = participant, "removed by a moderator");
                self.remove(target, Departure::Removed, now);
                Ok(Reply::Done)
            }
            Command::Moderate {
                participant,
                action,
            } => self.moderate(participant, action, now),
        }
    }

    /// What a moderator does to others in its room: checked here, where
    /// the door is.
    fn moderate(
        &mut self,
        participant: ParticipantId,
        action: ModeratorAction,
        now: Instant,
    ) -> Result<Reply, WorkerError> {
        let (route, room) = moderated(&self.routes, &mut self.rooms, participant)?;
        let in_room =
            |target: ParticipantId| self.routes.get(&target).map(|r| r.room) == Some(route.room);
        match action {
            ModeratorAction::Mute { target } => {
                if !in_room(target) {
                    return Err(WorkerError::NoSuchPerson);
                }
                self.out.events.push_back((target, PeerEvent::Muted));
            }
            ModeratorAction::MuteAll => {
                for id in room.ids().into_iter().filter(|id| *id != participant) {
                    self.out.events.push_back((id, PeerEvent::Muted));
                }
            }
            ModeratorAction::MakeModerator { target } => {
                // A role lent to a stand-in is not its to give, nor to
                // make its own for good.
                if room.door().is_stand_in(participant) {
                    return Err(WorkerError::NotModerator);
                }
                if target == participant || !in_room(target) || !room.door_mut().promote(target) {
                    return Err(WorkerError::NoSuchPerson);
                }
                tracing::info!(peer = target, by = participant, "made a moderator");
                room.tell_settings(target, &mut self.out);
            }
            ModeratorAction::EndCall => {
                tracing::info!(by = participant, "call ended by a moderator");
                let everyone = room.ids();
                let knocks: Vec<ParticipantId> = room.door().waiting().collect();
                for id in knocks {
                    if self.take_knock(id).is_some() {
                        let reason = "a moderator ended the call".into();
                        self.out
                            .events
                            .push_back((id, PeerEvent::Refused { reason }));
                    }
                }
                for id in everyone {
                    self.remove(id, Departure::CallEnded, now);
                }
            }
        }
        Ok(Reply::Done)
    }

    fn join(&mut self, mut req: JoinRequest, now: Instant) -> Result<Reply, WorkerError> {
        let participant = req.info.id;
        if self.routes.contains_key(&participant) || self.knocking.contains_key(&participant) {
            return Err(WorkerError::AlreadyJoined);
        }
        let existing = self.room_keys.get(&req.room).copied();
        // A draining worker still completes the calls it carries.
        if existing.is_none() && self.draining {
            return Err(WorkerError::Draining);
        }
        // A room new here is made behind the door the cluster kept for it,
        // if any and if it did not end here (its worker was lost);
        // otherwise open, its first in moderating.
        let kept = req.door.take();
        let new_door = match existing {
            Some(_) => None,
            None => Some(match kept {
                Some(kept) if !self.ended.contains_key(&req.room) => Door::restored(kept, now),
                _ => Door::default(),
            }),
        };
        let entry = match (existing.and_then(|k| self.rooms.get(&k)), &new_door) {
            (Some(room), _) => room.door().check(&req, now)?,
            (None, Some(door)) => door.check(&req, now)?,
            // A room's key without its room: never so.
            (None, None) => return Err(WorkerError::UnknownParticipant),
        };
        let moderator = match entry {
            Entry::Enter { moderator } => moderator,
            Entry::Knock => {
                let key = match (existing, new_door) {
                    (Some(key), _) => key,
                    (None, door) => {
                        self.open_room(&req.room, req.last_n, door.unwrap_or_default(), now)
                    }
                };
                let room = self
                    .rooms
                    .get_mut(&key)
                    .ok_or(WorkerError::UnknownParticipant)?;
                let knock = PeerEvent::Knocking {
                    id: participant,
                    name: req.info.name.clone(),
                };
                room.tell_moderators(knock, &mut self.out);
                let made_way = room.door_mut().knock(req, now);
                self.knocking.insert(participant, key);
                tracing::info!(peer = participant, "waiting in the lobby");
                if let Some(other) = made_way {
                    let id = other.info.id;
                    tracing::info!(peer = id, "made way in a full lobby");
                    self.knocking.remove(&id);
                    room.tell_moderators(PeerEvent::KnockEnded { id }, &mut self.out);
                    let reason =
                        "too many people from your network are waiting to be let in".into();
                    self.out
                        .events
                        .push_back((id, PeerEvent::Refused { reason }));
                }
                return Ok(Reply::Knocking);
            }
        };
        let others = self.enter(req, moderator, new_door, now)?;
        let founder = moderator && others.is_empty();
        Ok(Reply::Joined { others, founder })
    }

    /// Someone the door let in: its connection, in its room (made if new,
    /// behind `new_door`).
    fn enter(
        &mut self,
        req: JoinRequest,
        moderator: bool,
        new_door: Option<Door>,
        now: Instant,
    ) -> Result<Vec<ParticipantInfo>, WorkerError> {
        let participant = req.info.id;
        let rejoin = req.rejoin.clone();
        let owned = req.claimed;
        let existing = self.room_keys.get(&req.room).copied();
        // A place held without media gives way to the newcomer, once the
        // newcomer is sure to take it.
        let mut idle = None;
        if let Some(room) = existing.and_then(|k| self.rooms.get(&k)) {
            if room.len() >= req.max_participants {
                idle = Some(
                    room.idle_seat(now)
                        .ok_or(WorkerError::RoomFull(req.max_participants))?,
                );
            }
        }
        let (name, last_n) = (req.room, req.last_n);
        let peer = Peer::new(
            req.info,
            req.token,
            req.session,
            &self.local,
            &mut self.rng,
            now,
        )?;
        if let Some(idle) = idle {
            self.remove(idle, Departure::NeverConnected, now);
        }
        let key = existing
            .unwrap_or_else(|| self.open_room(&name, last_n, new_door.unwrap_or_default(), now));
        let route = Route {
            room: key,
            peer: participant,
        };
        self.demux.set_ufrag(route, &peer.ufrag);
        self.routes.insert(participant, route);
        let room = self
            .rooms
            .get_mut(&key)
            .ok_or(WorkerError::UnknownParticipant)?;
        if owned {
            room.door_mut().mark_owned();
        }
        let others = room.add(peer, (moderator, rejoin.as_deref()), now, &mut self.out);
        tracing::info!(peer = participant, room = %crate::privacy::room(room.name()), "joined");
        Ok(others)
    }

    /// Makes room `name`, behind `door`.
    fn open_room(&mut self, name: &str, last_n: usize, door: Door, now: Instant) -> RoomKey {
        let key = self.next_room_key;
        self.next_room_key += 1;
        self.room_keys.insert(name.to_string(), key);
        let mut room = Room::new(name.to_string(), last_n, now);
        *room.door_mut() = door;
        self.rooms.insert(key, room);
        key
    }

    /// The one way out of a lobby: takes `id` out of its room's, and tells
    /// the moderators. A room made anew that nobody entered goes with its
    /// last knock.
    fn take_knock(&mut self, id: ParticipantId) -> Option<JoinRequest> {
        let key = self.knocking.remove(&id)?;
        let room = self.rooms.get_mut(&key)?;
        let req = room.door_mut().take_knock(id);
        room.tell_moderators(PeerEvent::KnockEnded { id }, &mut self.out);
        if room.is_empty() && room.door().waiting().next().is_none() {
            // Nobody was ever in (a room that empties turns its knockers
            // away): it did not end, and its door still stands.
            self.drop_room(key, None);
        }
        req
    }

    /// Lets in someone taken out of a lobby: told [`PeerEvent::Admitted`]
    /// before anything its entry causes, or [`PeerEvent::Refused`] if the
    /// room filled meanwhile.
    fn let_in(&mut self, req: JoinRequest, now: Instant) {
        let id = req.info.id;
        let at = self.out.events.len();
        let told = match self.enter(req, false, None, now) {
            Ok(others) => PeerEvent::Admitted { others },
            Err(e) => PeerEvent::Refused {
                reason: e.to_string(),
            },
        };
        self.out.events.insert(at, (id, told));
    }

    /// Takes a participant out of its room, and the room away once empty.
    fn remove(&mut self, participant: ParticipantId, why: Departure, now: Instant) {
        let Some(route) = self.routes.get(&participant).copied() else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&route.room) {
            room.remove(participant, why, now, &mut self.out);
        }
        self.forget(route, now);
    }

    /// Drops the routing of a participant that is no longer in its room.
    fn forget(&mut self, route: Route, now: Instant) {
        self.demux.forget(route);
        self.routes.remove(&route.peer);
        if self.rooms.get(&route.room).is_some_and(Room::is_empty) {
            self.drop_room(route.room, Some(now));
        }
    }

    /// A room made anew after its worker was lost that nobody who was in
    /// came back to in time: whoever still knocks is told nobody is there
    /// to let it in, as when a call empties, and the room goes.
    fn give_up_empty_rooms_made_anew(&mut self, now: Instant) {
        let given_up: Vec<RoomKey> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.is_empty() && room.door().restore_over(now))
            .map(|(key, _)| *key)
            .collect();
        for key in given_up {
            if let Some(room) = self.rooms.get_mut(&key) {
                room.refuse_knocks(&mut self.out);
            }
            self.drop_room(key, Some(now));
        }
    }

    /// The room away, with its lobby (emptied with it, `Room::remove`);
    /// remembered as ended here at `ended`, if it did.
    fn drop_room(&mut self, key: RoomKey, ended: Option<Instant>) {
        if let Some(room) = self.rooms.remove(&key) {
            self.room_keys.remove(room.name());
            if let Some(at) = ended {
                self.ended.insert(room.name().to_string(), at);
            }
        }
        self.knocking.retain(|_, k| *k != key);
        self.busy.retain(|k| *k != key);
    }

    fn mark_busy(&mut self, key: RoomKey) {
        if !self.busy.contains(&key) {
            self.busy.push(key);
        }
    }

    /// Time passed: str0m's timers, grace periods, the drain deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        let housekeeping = self.next_housekeeping <= now;
        let mut gone = Vec::new();
        for (key, room) in self.rooms.iter_mut() {
            let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
            if due(room.poll_timeout()) || (housekeeping && due(room.grace_deadline())) {
                for id in room.handle_timeout(now, &mut self.out) {
                    gone.push(Route {
                        room: *key,
                        peer: id,
                    });
                }
            }
        }
        for route in gone {
            self.forget(route, now);
        }
        if housekeeping {
            self.give_up_empty_rooms_made_anew(now);
            self.ended
                .retain(|_, at| now.saturating_duration_since(*at) < ENDED_REMEMBERED);
        }
        if self.drain_deadline.is_some_and(|d| d <= now) {
            self.drain_deadline = None;
            let everyone: Vec<ParticipantId> = self.routes.keys().copied().collect();
            for id in everyone {
                self.remove(id, Departure::Draining, now);
            }
        }
        if housekeeping {
            self.demux.expire(now);
            self.next_housekeeping = now + HOUSEKEEPING_EVERY;
        }
    }

    /// When [`Endpoint::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Instant {
        self.rooms
            .values()
            .filter_map(Room::poll_timeout)
            .chain(self.drain_deadline)
            .fold(self.next_housekeeping, Instant::min)
    }

    /// The next datagrams to send: what earlier calls produced, then the
    /// output of busy rooms, drained until `batch` datagrams are ready (in
    /// a large fan-out, the first subscribers need not wait for the last
    /// one's copy to be encrypted). `None` when there is nothing to send.
    pub fn poll_transmit(&mut self, now: Instant, batch: usize) -> Option<&[Transmit]> {
        self.out.transmits.drain(..self.handed_out);
        self.handed_out = 0;
        while self.out.transmits.len() < batch {
            let Some(&key) = self.busy.last() else {
                break;
            };
            let more = self
                .rooms
                .get_mut(&key)
                .is_some_and(|room| room.drain_until(now, &mut self.out, batch));
            if !more {
                self.busy.pop();
            }
        }
        if self.out.transmits.is_empty() {
            return None;
        }
        self.handed_out = self.out.transmits.len();
        Some(&self.out.transmits)
    }

    /// The next event for a participant's signalling.
    pub fn poll_event(&mut self) -> Option<(ParticipantId, PeerEvent)> {
        self.out.events.pop_front()
    }

    /// Datagrams dropped outside the endpoint: refused by the socket, or
    /// [`Delivery::Unknown`] and not handed to another shard.
    pub fn count_dropped(&mut self, n: usize) {
        self.out.counters.datagrams_dropped += n as u64;
    }

    /// Datagrams received from another shard of the worker, which the
    /// kernel had given to it.
    pub fn count_handed_in(&mut self) {
        self.out.counters.handoffs_in += 1;
    }

    /// What this shard learned and forgot about its peers' addresses and
    /// ufrags since the last call, for the worker's flow table.
    pub fn poll_flows(&mut self) -> impl Iterator<Item = FlowChange> + '_ {
        self.demux.take_changes()
    }

    pub fn counters(&self) -> &Counters {
        &self.out.counters
    }

    /// Rooms as the load report lists them: name, participant count, and
    /// the door its moderators shut, for the cluster to keep.
    pub fn rooms(&self) -> impl Iterator<Item = RoomLoad> + '_ {
        self.rooms.values().map(|r| RoomLoad {
            room: r.name().to_string(),
            participants: r.len(),
            door: Some(r.door().settings()).filter(|d| !d.is_open()),
        })
    }

    pub fn participants(&self) -> usize {
        self.routes.len()
    }

    /// Published and forwarded tracks.
    pub fn track_counts(&self) -> (usize, usize) {
        self.rooms
            .values()
            .map(Room::track_counts)
            .fold((0, 0), |(i, o), (a, b)| (i + a, o + b))
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }
}
