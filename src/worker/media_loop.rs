//! The media thread: the one UDP socket, the demultiplexer, every room of
//! this worker, and the commands from the control plane.
//!
//! One thread owns all of it, so the packet path has no lock. Each loop turn
//! drains the socket until it would block (a burst costs one wake-up, not
//! one per packet), applies pending commands, drives timers, then sends what
//! the rooms produced.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, Transmit};
use str0m::Input;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::batch_send::BatchSender;
use super::demux::Demux;
use super::peer::Peer;
use super::room::Room;
use super::stats::{Counters, RoomLoad, Shared, Snapshot};
use super::{Command, JoinRequest, PeerEvent, Resumed, WorkerError, WorkerHandle};
use crate::ids::{ParticipantId, ParticipantInfo};

/// Largest datagram we accept; WebRTC stays under ~1200 bytes.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read per turn before commands and timers get a look in.
const RECV_BATCH: usize = 256;
/// Datagrams handled before what they caused is sent: small enough to keep
/// the added delay in microseconds, large enough to poll each subscriber
/// once per burst.
const SEND_EVERY: usize = 16;
/// Datagrams encrypted before they are sent, in a drain that makes more:
/// enough to spread a system call's fixed cost, few enough that the first
/// subscribers of a large room get a packet without waiting for the rest.
const SEND_AT: usize = 32;
/// Longest sleep, so the heartbeat behind `/readyz` stays fresh.
const MAX_SLEEP: Duration = Duration::from_millis(200);
/// Socket buffers: a keyframe burst to many subscribers must not overflow.
const SOCKET_BUFFER: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the UDP socket binds to.
    pub bind: SocketAddr,
    /// Address announced in ICE candidates (the public or container-outside
    /// address); `None` uses the bound one, or the host's main address when
    /// bound to `0.0.0.0`.
    pub announce: Option<std::net::IpAddr>,
}

/// Room number on this worker (cheaper to hash than the room name).
type RoomKey = u64;

/// Where a peer lives: the key the demultiplexer stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    room: RoomKey,
    peer: ParticipantId,
}

/// Binds the media socket and starts the media thread. Returns the handle
/// to command it and the figures it publishes.
pub fn spawn(config: MediaConfig) -> Result<(WorkerHandle, Arc<Shared>), WorkerError> {
    let socket = bind(config.bind).map_err(|e| {
        WorkerError::Internal(format!("cannot bind media socket {}: {e}", config.bind))
    })?;
    let local = socket
        .local_addr()
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
    let ip = config
        .announce
        .unwrap_or_else(|| crate::net::announce_ip_for(local.ip()));
    let media_addr = SocketAddr::new(ip, local.port());
    let (tx, rx) = mpsc::channel(1024);
    let stats = Arc::new(Shared::default());
    let shared = stats.clone();
    std::thread::Builder::new()
        .name("parloir-media".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("media runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match UdpSocket::from_std(socket) {
                    Ok(socket) => run(socket, media_addr, rx, shared).await,
                    Err(e) => tracing::error!("media socket: {e}"),
                }
            });
        })
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
    tracing::info!(%local, announced = %media_addr, "media worker listening (UDP)");
    Ok((WorkerHandle::new(tx, media_addr), stats))
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

struct MediaWorker {
    media_addr: SocketAddr,
    rooms: HashMap<RoomKey, Room>,
    room_keys: HashMap<String, RoomKey>,
    next_room_key: RoomKey,
    routes: HashMap<ParticipantId, Route>,
    demux: Demux<Route>,
    outbox: Vec<Transmit>,
    counters: Counters,
    /// Rooms with output waiting to be drained.
    busy: Vec<RoomKey>,
    sender: BatchSender,
    /// Set by a drain: no new rooms; everyone still here is moved then.
    drain_deadline: Option<Instant>,
}

async fn run(
    socket: UdpSocket,
    media_addr: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
) {
    let mut w = MediaWorker {
        media_addr,
        rooms: HashMap::new(),
        room_keys: HashMap::new(),
        next_room_key: 1,
        routes: HashMap::new(),
        demux: Demux::default(),
        outbox: Vec::with_capacity(1024),
        counters: Counters::default(),
        busy: Vec::new(),
        sender: BatchSender::default(),
        drain_deadline: None,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_publish = Instant::now() - Duration::from_secs(1);
    loop {
        let now = Instant::now();
        for n in 1..=RECV_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((len, source)) => w.on_datagram(&buf[..len], source, now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors from a closed peer port land here on Linux.
                    tracing::debug!("recv: {e}");
                    break;
                }
            }
            if n % SEND_EVERY == 0 {
                w.drain_busy(now, &socket);
            }
        }
        w.drain_busy(now, &socket);
        loop {
            match commands.try_recv() {
                Ok(cmd) => w.on_command(cmd, now),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        w.on_timeouts(now);
        if w.drain_deadline.is_some_and(|d| d <= now) {
            w.evict_all(now);
        }
        w.flush(&socket);
        if now.duration_since(last_publish) >= Duration::from_millis(100) {
            w.publish(&shared);
            last_publish = now;
        }

        let deadline = w
            .next_timeout()
            .unwrap_or(now + MAX_SLEEP)
            .min(now + MAX_SLEEP);
        tokio::select! {
            r = socket.readable() => {
                if let Err(e) = r {
                    tracing::error!("media socket failed: {e}");
                    return;
                }
            }
            cmd = commands.recv() => match cmd {
                Some(cmd) => w.on_command(cmd, Instant::now()),
                None => return,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

impl MediaWorker {
    fn on_datagram(&mut self, data: &[u8], source: SocketAddr, now: Instant) {
        let (route, known) = match self.demux.by_addr(&source) {
            Some(r) => (r, true),
            None => match self.demux.by_stun(data) {
                Some(r) => (r, false),
                None => {
                    // Garbage, or media from a peer that already left.
                    self.counters.datagrams_dropped += 1;
                    return;
                }
            },
        };
        let Ok(contents) = data.try_into() else {
            self.counters.datagrams_dropped += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.media_addr,
                contents,
            },
        );
        let Some(room) = self.rooms.get_mut(&route.room) else {
            return;
        };
        if !known {
            // Only a STUN request that this peer authenticates teaches us a
            // new address for it.
            match room.peers.get(&route.peer) {
                Some(peer) if peer.rtc.accepts(&input) => self.demux.learn_addr(source, route),
                _ => {
                    self.counters.datagrams_dropped += 1;
                    return;
                }
            }
        }
        room.receive(route.peer, input, now, &mut self.outbox, &mut self.counters);
        if !self.busy.contains(&route.room) {
            self.busy.push(route.room);
        }
    }

    /// Drains the rooms that received datagrams, sending every
    /// [`SEND_AT`] datagrams as they are made.
    fn drain_busy(&mut self, now: Instant, socket: &UdpSocket) {
        while let Some(key) = self.busy.pop() {
            while self.rooms.get_mut(&key).is_some_and(|room| {
                room.drain_until(now, &mut self.outbox, &mut self.counters, SEND_AT)
            }) {
                self.flush(socket);
            }
        }
        self.flush(socket);
    }

    fn flush(&mut self, socket: &UdpSocket) {
        if self.outbox.is_empty() {
            return;
        }
        let dropped = self.sender.send_all(socket, &self.outbox);
        self.counters.datagrams_dropped += dropped as u64;
        self.outbox.clear();
    }

    fn on_timeouts(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (key, room) in self.rooms.iter_mut() {
            if room.next_timeout().is_some_and(|t| t <= now) {
                for id in room.handle_timeouts(now, &mut self.outbox, &mut self.counters) {
                    gone.push((*key, id));
                }
            }
        }
        for (key, id) in gone {
            tracing::info!(peer = id, "media connection lost; participant removed");
            self.forget(Route {
                room: key,
                peer: id,
            });
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.rooms.values().filter_map(Room::next_timeout).min()
    }

    fn on_command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Join { req, events, reply } => {
                let _ = reply.send(self.join(req, events, now));
            }
            Command::Mute {
                participant,
                audio,
                video,
            } => {
                if let Some(route) = self.routes.get(&participant) {
                    if let Some(room) = self.rooms.get_mut(&route.room) {
                        room.set_mute(participant, audio, video);
                    }
                }
            }
            Command::Detach { participant } => {
                let _ = self.with_peer(participant, |peer| {
                    peer.detached_since = Some(now);
                    Ok(())
                });
                tracing::info!(
                    peer = participant,
                    "signalling detached; waiting for resume"
                );
            }
            Command::Resume {
                participant,
                token,
                events,
                reply,
            } => {
                let _ = reply.send(self.resume(participant, &token, events));
            }
            Command::Drain { deadline_secs } => {
                let deadline = now + Duration::from_secs(deadline_secs);
                if self.drain_deadline.is_none_or(|d| deadline < d) {
                    self.drain_deadline = Some(deadline);
                }
                tracing::info!(deadline_secs, "draining: no new rooms");
            }
            Command::Offer {
                participant,
                sdp,
                reply,
            } => {
                let result = self.with_peer(participant, |peer| peer.accept_offer(&sdp));
                match result {
                    Ok((answer, rolled_back)) => {
                        // The answer must reach the client before any server
                        // offer this triggers: reply first, then drain.
                        let _ = reply.send(Ok(answer));
                        self.after_change(participant, now, |room| {
                            room.offer_answered(participant, rolled_back)
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Answer {
                participant,
                id,
                sdp,
                reply,
            } => {
                let result = self.with_peer(participant, |peer| peer.accept_answer(id, &sdp));
                let accepted = matches!(result, Ok(true));
                let _ = reply.send(result.map(|_| ()));
                if accepted {
                    self.after_change(participant, now, |room| {
                        room.server_offer_answered(participant, now)
                    });
                }
            }
            Command::Candidate {
                participant,
                candidate,
                reply,
            } => {
                let result =
                    self.with_peer(participant, |peer| peer.add_remote_candidate(&candidate));
                let _ = reply.send(result);
                self.after_change(participant, now, |_| {});
            }
            Command::Leave { participant } => {
                if let Some(route) = self.routes.get(&participant).copied() {
                    if let Some(room) = self.rooms.get_mut(&route.room) {
                        if let Some(mut peer) = room.remove_peer(participant) {
                            peer.rtc.disconnect();
                        }
                        room.drain(now, &mut self.outbox, &mut self.counters);
                    }
                    self.forget(route);
                    tracing::info!(peer = participant, "left");
                }
            }
        }
    }

    fn join(
        &mut self,
        req: JoinRequest,
        events: mpsc::Sender<PeerEvent>,
        now: Instant,
    ) -> Result<Vec<ParticipantInfo>, WorkerError> {
        let participant = req.info.id;
        if self.routes.contains_key(&participant) {
            return Err(WorkerError::AlreadyJoined);
        }
        let existing = self.room_keys.get(&req.room).copied();
        // A draining worker still completes the calls it carries.
        if existing.is_none() && self.drain_deadline.is_some() {
            return Err(WorkerError::Draining);
        }
        if let Some(room) = existing.and_then(|k| self.rooms.get(&k)) {
            if room.peers.len() >= req.max_participants {
                return Err(WorkerError::RoomFull(req.max_participants));
            }
        }
        let peer = Peer::new(req.info, req.token, self.media_addr, events, now)?;
        let key = match existing {
            Some(k) => k,
            None => {
                let k = self.next_room_key;
                self.next_room_key += 1;
                self.room_keys.insert(req.room.clone(), k);
                k
            }
        };
        let route = Route {
            room: key,
            peer: participant,
        };
        self.demux.set_ufrag(route, &peer.ufrag);
        let others = self.rooms.entry(key).or_default().add_peer(peer);
        self.routes.insert(participant, route);
        tracing::info!(peer = participant, room = req.room, "joined");
        Ok(others)
    }

    fn resume(
        &mut self,
        participant: ParticipantId,
        token: &str,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<Resumed, WorkerError> {
        let route = *self
            .routes
            .get(&participant)
            .ok_or(WorkerError::ResumeRefused)?;
        let room_name = self
            .room_keys
            .iter()
            .find(|(_, k)| **k == route.room)
            .map(|(n, _)| n.clone())
            .ok_or(WorkerError::ResumeRefused)?;
        let room = self
            .rooms
            .get_mut(&route.room)
            .ok_or(WorkerError::ResumeRefused)?;
        let peer = room
            .peers
            .get_mut(&participant)
            .ok_or(WorkerError::ResumeRefused)?;
        if !crate::secret::equal(peer.token.as_bytes(), token.as_bytes()) {
            return Err(WorkerError::ResumeRefused);
        }
        peer.set_events(events);
        peer.detached_since = None;
        let offer = peer.pending_offer();
        tracing::info!(peer = participant, "session resumed");
        Ok(Resumed {
            room: room_name,
            others: room.others(participant),
            offer,
        })
    }

    /// The drain deadline passed: everyone still here is told to join again
    /// (they will be placed on another worker) and removed.
    fn evict_all(&mut self, now: Instant) {
        let routes: Vec<Route> = self.routes.values().copied().collect();
        for route in routes {
            if let Some(room) = self.rooms.get_mut(&route.room) {
                if let Some(mut peer) = room.remove_peer(route.peer) {
                    peer.notify(PeerEvent::Closed {
                        reason: "this media server is shutting down".into(),
                    });
                    peer.rtc.disconnect();
                }
                room.drain(now, &mut self.outbox, &mut self.counters);
            }
            self.forget(route);
        }
    }

    fn publish(&self, shared: &Shared) {
        let mut tracks_in = 0;
        let mut tracks_out = 0;
        let mut rooms = Vec::with_capacity(self.rooms.len());
        for (name, key) in &self.room_keys {
            if let Some(room) = self.rooms.get(key) {
                let (i, o) = room.track_counts();
                tracks_in += i;
                tracks_out += o;
                rooms.push(RoomLoad {
                    room: name.clone(),
                    participants: room.peers.len(),
                });
            }
        }
        shared.publish(Snapshot {
            counters: self.counters,
            rooms,
            peers: self.routes.len(),
            tracks_in,
            tracks_out,
        });
        shared.draining.store(
            self.drain_deadline.is_some(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn with_peer<T>(
        &mut self,
        participant: ParticipantId,
        f: impl FnOnce(&mut Peer) -> Result<T, WorkerError>,
    ) -> Result<T, WorkerError> {
        let route = *self
            .routes
            .get(&participant)
            .ok_or(WorkerError::UnknownParticipant)?;
        let peer = self
            .rooms
            .get_mut(&route.room)
            .and_then(|r| r.peers.get_mut(&participant))
            .ok_or(WorkerError::UnknownParticipant)?;
        let result = f(peer);
        // An ICE restart in an offer changes the ufrag.
        let ufrag = peer.ufrag.clone();
        self.demux.set_ufrag(route, &ufrag);
        result
    }

    /// Applies a change to the participant's room, then drains it.
    fn after_change(
        &mut self,
        participant: ParticipantId,
        now: Instant,
        f: impl FnOnce(&mut Room),
    ) {
        let Some(route) = self.routes.get(&participant) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&route.room) else {
            return;
        };
        f(room);
        room.mark_dirty(participant);
        room.drain(now, &mut self.outbox, &mut self.counters);
    }

    fn forget(&mut self, route: Route) {
        self.demux.forget(route);
        self.routes.remove(&route.peer);
        let empty = self
            .rooms
            .get(&route.room)
            .is_some_and(|r| r.peers.is_empty());
        if empty {
            self.rooms.remove(&route.room);
            self.room_keys.retain(|_, k| *k != route.room);
        }
    }
}
