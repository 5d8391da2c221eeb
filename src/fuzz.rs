//! Entry points for the fuzz targets in `fuzz/` (built only with
//! `--cfg fuzzing`, which cargo fuzz sets): every parser of network input
//! Parloir owns, each reached as the network reaches it.
//!
//! The targets are bytes in, nothing out: what they check is that no input
//! panics, loops or allocates without bound, and the few invariants noted
//! below. See `docs/fuzzing.md`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use str0m::rtp::Vp8Descriptor;

use crate::cluster::control::{FromWorker, Request};
use crate::ids::{ParticipantInfo, ParticipantState};
use crate::signal::session::{Env, Input, Output, Placed, Session};
use crate::signal::{client_addr, grant, origin, protocol, room_name, room_token};
use crate::worker::endpoint::Endpoint;
use crate::worker::peer::{Candidates, Local};
use crate::worker::{ice_tcp, rewrite, vp8, Command, JoinRequest, PeerEvent};

/// A signalling frame from a browser, and the JSON the cluster's control
/// channel and registry carry between hosts.
pub fn messages(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = protocol::parse(text);
    let _ = serde_json::from_str::<Request>(text);
    let _ = serde_json::from_str::<FromWorker>(text);
    let _ = serde_json::from_str::<PeerEvent>(text);
    let _ = serde_json::from_str::<crate::cluster::report::LoadReport>(text);
}

const ROOM: &str = "fuzz-room";

/// A worker's media endpoint on loopback, with nobody yet.
fn empty_worker(seed: u64, now: Instant) -> Endpoint {
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
    Endpoint::new(Local::test(Candidates::on(server)), seed, now)
}

/// A media endpoint with one participant in one room, as a worker has
/// after a join: what a datagram from the network meets first.
fn endpoint(now: Instant) -> Option<Endpoint> {
    let mut ep = empty_worker(7, now);
    let req = JoinRequest {
        room: ROOM.into(),
        info: ParticipantInfo {
            id: 1,
            name: "Ana".into(),
            state: ParticipantState::joining(true, true),
        },
        token: "t".into(),
        max_participants: 10,
        last_n: 10,
        session: 1,
        password: None,
        moderator: false,
        rejoin: None,
        network: None,
        door: None,
        vouched: None,
        claimed: false,
    };
    ep.handle_command(now, Command::Join { req }).ok()?;
    Some(ep)
}

/// Datagrams on the media socket: the first-byte classification, the STUN
/// username lookup, then whatever reaches the participant's connection.
/// The first byte of each chunk picks the source address among a few, so
/// that a STUN request naming the participant teaches an address later
/// chunks come from.
pub fn datagrams(data: &[u8]) {
    let start = Instant::now();
    let Some(mut ep) = endpoint(start) else {
        return;
    };
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let Some((&pick, datagram)) = chunk.split_first() else {
            continue;
        };
        let now = start + Duration::from_millis(i as u64 * 10);
        let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, pick % 4)), 5000);
        let proto = if pick & 0x80 == 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        ep.handle_datagram(now, proto, source, datagram);
        ep.handle_timeout(now);
        while ep.poll_transmit(now, 64).is_some() {}
        while ep.poll_event().is_some() {}
    }
}

/// A participant's SDP offer: str0m parses it, then the worker checks what
/// it may carry (media sections, the screen share's mid).
pub fn offer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Instant::now();
    let Some(mut ep) = endpoint(now) else {
        return;
    };
    let (sdp, screen) = match text.split_once('\u{1}') {
        Some((sdp, mid)) => (sdp, Some(mid.to_string())),
        None => (text, None),
    };
    let cmd = Command::Offer {
        participant: 1,
        sdp: sdp.into(),
        screen,
    };
    let _ = ep.handle_command(now, cmd);
    let _ = ep.handle_command(
        now,
        Command::Candidate {
            participant: 1,
            candidate: sdp.lines().next().unwrap_or("").into(),
        },
    );
    ep.handle_timeout(now);
    while ep.poll_transmit(now, 64).is_some() {}
    while ep.poll_event().is_some() {}
}

/// ICE-TCP framing (RFC 4571), the bytes split into reads where the input
/// says: every frame handed on is whole and within the limit, and what is
/// left is less than one frame.
pub fn tcp_frames(data: &[u8]) {
    let mut buf = Vec::new();
    let mut delivered = 0usize;
    for read in data.split(|b| *b == 0xa5) {
        buf.extend_from_slice(read);
        let result = ice_tcp::each_frame(&mut buf, ice_tcp::MAX_FRAME, |frame| {
            assert!(frame.len() <= ice_tcp::MAX_FRAME);
            delivered += frame.len() + 2;
        });
        if result.is_err() {
            return;
        }
        assert!(buf.len() < 2 + ice_tcp::MAX_FRAME);
    }
    assert!(delivered + buf.len() <= data.len());
}

/// Forwarded RTP: the keyframe width read from a VP8 payload, and the
/// sequence numbers, timestamps and picture ids rewritten across source
/// switches. Output sequence numbers never go backwards past what was
/// written for a newer packet.
pub fn rtp(data: &[u8]) {
    let _ = vp8::keyframe_width(data);
    let mut seq = rewrite::Rewriter::new(1000, 5000);
    let mut pictures = vp8::PictureIds::default();
    let mut in_seq = 0u64;
    for step in data.chunks(8) {
        let &[op, a, b, c, d, ..] = step else {
            break;
        };
        match op % 4 {
            0 => {
                seq.switch_source(u32::from_le_bytes([a, b, c, d]));
                pictures.switch_source();
            }
            1 => in_seq = in_seq.wrapping_add(u64::from(u16::from_le_bytes([a, b]))),
            2 => in_seq = in_seq.saturating_sub(u64::from(a)),
            _ => {}
        }
        let ts = u32::from_le_bytes([a, b, c, d]);
        if let Some(out) = seq.rewrite(in_seq, ts) {
            if let Ok(desc) = Vp8Descriptor::parse(&step[1..]) {
                let _ = pictures.patch(&desc, out.seq);
            }
        }
    }
}

/// Room tokens and priority grants, as a link carries them.
pub fn tokens(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = room_token::TokenKey::shared(
        b"a-fuzzing-token-secret",
        Some("hospital".into()),
        "parloir".into(),
    );
    let _ = key.check(text, ROOM, 1_800_000_000);
    let grants = grant::GrantKey::new(b"a-fuzzing-grant-secret");
    let _ = grants.check(text, ROOM, 1_800_000_000);
}

/// What comes in headers and names: the Origin, `X-Forwarded-For`, a room
/// name in a link or a join.
pub fn headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    let others: Vec<origin::Origin> = second.parse().into_iter().collect();
    let _ = origin::allowed(Some(first), Some(second), &others);
    let trusted = ["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let _ = client_addr::client_addr(peer, Some(text), &trusted);
    let _ = room_name::validate(first);
}

/// A configuration file of each role, and a block file of networks.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<crate::config::ServeLayer>(text);
    let _ = toml::from_str::<crate::config::SignalLayer>(text);
    let _ = toml::from_str::<crate::config::WorkerLayer>(text);
    let _ = crate::access::parse_list(text);
}

/// What the sequence target's clients are: three browsers on two
/// addresses, two rooms, a few names and passwords, so that inputs meet
/// one another (the same room, another's token) instead of missing.
const CLIENTS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
];
const ROOMS: [&str; 2] = ["chambre-217", "salle-b"];
const NAMES: [&str; 3] = ["Ana", "Dr. Martin", ""];
const PASSWORDS: [Option<&str>; 3] = [None, Some("pw"), Some("autre")];
const NODE: &str = "node-a";
/// Rounds of passing messages between the sessions and the worker after
/// one step: far more than any step needs; more is a loop.
const MAX_ROUNDS: usize = 10_000;

/// Keeps the 64 newest of what clients were told.
fn keep_newest<T>(list: &mut Vec<T>) {
    let over = list.len().saturating_sub(64);
    list.drain(..over);
}

/// Reads a fuzzer's input as small numbers, then zeros.
struct Script<'d> {
    data: &'d [u8],
    pos: usize,
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = (self.pos + 1).min(self.data.len());
        b
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 0
    }

    fn pick<'t, T>(&mut self, of: &'t [T]) -> Option<&'t T> {
        let b = self.byte() as usize;
        (!of.is_empty()).then(|| &of[b % of.len()])
    }

    fn text(&mut self) -> String {
        let n = (self.byte() as usize).min(self.data.len().saturating_sub(self.pos));
        let s = String::from_utf8_lossy(&self.data[self.pos..self.pos + n]).into_owned();
        self.pos += n;
        s
    }
}

/// The signalling sessions of a few clients and the worker their rooms
/// run on, joined as `signal/socket.rs` and the worker role join them:
/// placement answers with the door the cluster kept, a worker that dies
/// is replaced by an empty one (a failover), events go to the session
/// that last attached the participant.
struct Play<'e> {
    env: Env<'e, governor::clock::FakeRelativeClock>,
    clock: &'e governor::clock::FakeRelativeClock,
    sessions: Vec<Session<'e, governor::clock::FakeRelativeClock>>,
    session_ids: Vec<u64>,
    worker: Endpoint,
    workers_made: u64,
    /// Which session gets a participant's events, and as which session id.
    attached: std::collections::HashMap<crate::ids::ParticipantId, (usize, u64)>,
    /// The registry's doors: what placement hands a room made anew.
    doors: std::collections::HashMap<String, crate::worker::DoorSettings>,
    /// The registry's owners: the first claim of a room wins.
    owners: std::collections::HashMap<String, String>,
    /// What the clients were told, for the next messages to use (or steal).
    ids: Vec<crate::ids::ParticipantId>,
    tokens: Vec<String>,
    offers: Vec<u32>,
    /// What each client was told, by type (and error code), in order.
    told: Vec<(usize, String)>,
    t0: Instant,
    elapsed: Duration,
}

impl<'e> Play<'e> {
    fn now(&self) -> crate::signal::session::Now {
        crate::signal::session::Now {
            at: self.t0 + self.elapsed,
            unix: 1_800_000_000 + self.elapsed.as_secs(),
        }
    }

    fn new_session(&mut self, i: usize) -> Session<'e, governor::clock::FakeRelativeClock> {
        self.session_ids[i] += CLIENTS.len() as u64;
        let env = Env { ..self.env };
        Session::new(
            env,
            CLIENTS[i],
            self.session_ids[i],
            rand::SeedableRng::seed_from_u64(self.session_ids[i]),
            self.now().at,
        )
    }

    fn new_worker(&mut self) -> Endpoint {
        self.workers_made += 1;
        empty_worker(self.workers_made, self.now().at)
    }

    /// Whose events a participant's go to, as the worker role keeps it:
    /// the session that last attached it, until a leave, or a detach from
    /// that same session.
    fn route(&mut self, i: usize, cmd: &crate::worker::Command) {
        if let Some((participant, session)) = cmd.attaches() {
            self.attached.insert(participant, (i, session));
        }
        if let Some((participant, session)) = cmd.releases() {
            let current = self.attached.get(&participant).map(|a| a.1);
            if session.is_none() || session == current {
                self.attached.remove(&participant);
            }
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.now();
        self.sessions[i].handle_input(input, now);
        self.settle();
    }

    /// Passes outputs and events around until nobody has anything left.
    fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut busy = false;
            for i in 0..self.sessions.len() {
                while let Some(out) = self.sessions[i].poll_output() {
                    busy = true;
                    self.output(i, out);
                }
            }
            let at = self.now().at;
            self.worker.handle_timeout(at);
            while self.worker.poll_transmit(at, 64).is_some() {}
            while let Some((participant, event)) = self.worker.poll_event() {
                busy = true;
                if let Some(&(i, _)) = self.attached.get(&participant) {
                    let now = self.now();
                    let input = Input::Event {
                        event,
                        worker_gone: false,
                    };
                    self.sessions[i].handle_input(input, now);
                }
            }
            if !busy {
                for room in self.worker.rooms() {
                    match room.door {
                        Some(door) => self.doors.insert(room.room, door),
                        None => self.doors.remove(&room.room),
                    };
                }
                return;
            }
        }
        panic!("sessions and worker still busy after {MAX_ROUNDS} rounds");
    }

    fn output(&mut self, i: usize, out: Output) {
        let now = self.now();
        let input = match out {
            Output::Send(msg) => {
                self.learn(i, &msg);
                None
            }
            Output::Ping | Output::NodeLost(_) => None,
            Output::Close => {
                self.end(i);
                None
            }
            Output::Place { room, .. } => Some(Input::Placed(Ok(Placed {
                node: NODE.into(),
                door: self.doors.get(&room).cloned(),
                owner: self.owners.get(&room).cloned(),
            }))),
            Output::Claim { room, digest } => {
                let owner = self.owners.entry(room).or_insert_with(|| digest.clone());
                Some(Input::Claimed(*owner == digest))
            }
            Output::Locate { room } => Some(Input::Located(
                self.worker
                    .rooms()
                    .any(|r| r.room == room)
                    .then(|| NODE.into()),
            )),
            Output::Worker(cmd) => {
                self.route(i, &cmd);
                let wants_reply = cmd.wants_reply();
                let reply = self.worker.handle_command(now.at, cmd);
                wants_reply.then_some(Input::Reply(reply))
            }
        };
        if let Some(input) = input {
            self.sessions[i].handle_input(input, now);
        }
    }

    /// What a client learns that a next message may use: its id and
    /// token, who knocks, the offer to answer.
    fn learn(&mut self, i: usize, msg: &protocol::ServerMessage) {
        use protocol::ServerMessage as M;
        // The socket serialises every message it sends.
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(msg) {
            if self.told.len() < 4096 {
                let what = [
                    &m["type"],
                    m.get("code").unwrap_or(&serde_json::Value::Null),
                ];
                let what = what.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>();
                self.told.push((i, what.join(" ")));
            }
        }
        match msg {
            M::Welcome { you, token, .. } => {
                self.ids.push(*you);
                self.tokens.push(token.clone());
            }
            // Owner keys are shown as tokens are (a join shows what it
            // picks as both).
            M::RoomOwner { key } => self.tokens.push(key.clone()),
            M::Knocking { id, .. } => self.ids.push(*id),
            M::Offer { id, .. } => self.offers.push(*id),
            _ => {}
        }
        // The newest: an answer names the offer in flight.
        keep_newest(&mut self.ids);
        keep_newest(&mut self.tokens);
        keep_newest(&mut self.offers);
    }

    /// The socket of client `i` is gone; a new one takes its place.
    fn end(&mut self, i: usize) {
        let now = self.now();
        self.sessions[i].handle_input(Input::Ended, now);
        while let Some(out) = self.sessions[i].poll_output() {
            if let Output::Worker(cmd) = out {
                // Replies are not waited for once the socket is gone.
                if cmd.wants_reply() {
                    continue;
                }
                self.route(i, &cmd);
                let _ = self.worker.handle_command(now.at, cmd);
            }
        }
        self.attached.retain(|_, (s, _)| *s != i);
        self.sessions[i] = self.new_session(i);
    }

    /// The worker dies: its sessions hear so, and placement finds an
    /// empty one in its place, with the doors the registry kept.
    fn fail_over(&mut self) {
        self.worker = self.new_worker();
        let attached: Vec<usize> = self.attached.values().map(|a| a.0).collect();
        self.attached.clear();
        let now = self.now();
        for i in attached {
            let event = PeerEvent::Closed {
                reason: "worker lost".into(),
            };
            let input = Input::Event {
                event,
                worker_gone: true,
            };
            self.sessions[i].handle_input(input, now);
        }
        self.settle();
    }

    fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        self.clock.advance(by);
        self.settle();
    }

    /// One client's message, built from the script: a well-formed message
    /// of each kind the protocol has, with values the others were given,
    /// or free text.
    fn message(&self, kind: u8, s: &mut Script) -> String {
        use serde_json::json;
        let id = s.pick(&self.ids).copied().unwrap_or(1);
        let room = *s.pick(&ROOMS).unwrap_or(&ROOMS[0]);
        let v = protocol::VERSION;
        let msg = match kind {
            0 => {
                let rejoin = (s.flag()).then(|| s.pick(&self.tokens).cloned()).flatten();
                json!({"type": "join", "v": v, "room": room,
                       "name": s.pick(&NAMES), "password": s.pick(&PASSWORDS),
                       "audio": s.flag(), "video": true, "rejoin": rejoin,
                       "owner": rejoin})
            }
            1 => json!({"type": "resume", "v": v, "room": room, "participant": id,
                        "token": s.pick(&self.tokens).cloned().unwrap_or_default()}),
            2 => json!({"type": "set-password", "password": s.pick(&PASSWORDS)}),
            3 => json!({"type": "set-lobby", "on": s.flag()}),
            4 => json!({"type": "admit", "id": id}),
            5 => json!({"type": "refuse", "id": id}),
            6 => json!({"type": "remove", "id": id}),
            7 => json!({"type": "leave"}),
            8 => json!({"type": "state", "audio": true, "video": s.flag(),
                        "hand": s.flag()}),
            9 => json!({"type": "chat", "text": s.text()}),
            10 => json!({"type": "offer", "sdp": s.text()}),
            11 => json!({"type": "answer", "id": s.pick(&self.offers).copied().unwrap_or(1),
                         "sdp": s.text()}),
            12 => json!({"type": "candidate", "candidate": s.text()}),
            13 => json!({"type": "receive-video", "on": s.flag()}),
            14 => json!({"type": "ping"}),
            // The moderator's other actions, chosen by the id picked (no
            // byte more: the seeds keep their meaning).
            15 => match id % 4 {
                0 => json!({"type": "mute", "id": id}),
                1 => json!({"type": "mute-all"}),
                2 => json!({"type": "make-moderator", "id": id}),
                _ => json!({"type": "end-call"}),
            },
            _ => return s.text(),
        };
        msg.to_string()
    }
}

/// Sequences of signalling messages (join, knock, resume, moderator
/// actions, leave) from three clients, through the signalling session and
/// a worker's endpoint as the server joins them, with sockets lost, time
/// passing and the worker failing over in between: each step is a byte
/// (the client, then what happens) and what that step needs.
pub fn sessions(data: &[u8]) {
    play_sessions(data, |_| {});
}

/// [`sessions`], then `check` with what each client was told.
fn play_sessions(data: &[u8], check: impl FnOnce(&[(usize, String)])) {
    use governor::clock::FakeRelativeClock;
    static METRICS: std::sync::OnceLock<crate::metrics::Metrics> = std::sync::OnceLock::new();
    let metrics =
        METRICS.get_or_init(|| crate::metrics::Metrics::new("fuzz", crate::metrics::Role::Signal));
    // As `serve` runs by default, in a room of three so that it fills.
    let config = crate::signal::SignalConfig {
        max_participants: 3,
        ..crate::signal::SignalConfig::for_tests("fuzz")
    };
    let clock = FakeRelativeClock::default();
    let limits = crate::signal::limits::AddressLimits::with_clock(clock.clone());
    let env = Env {
        config: &config,
        limits: Some(&limits),
        metrics,
    };
    let t0 = Instant::now();
    let mut play = Play {
        env,
        clock: &clock,
        sessions: Vec::new(),
        session_ids: (0..CLIENTS.len() as u64).collect(),
        worker: empty_worker(0, t0),
        workers_made: 0,
        attached: Default::default(),
        doors: Default::default(),
        owners: Default::default(),
        ids: Vec::new(),
        tokens: Vec::new(),
        offers: Vec::new(),
        told: Vec::new(),
        t0,
        elapsed: Duration::ZERO,
    };
    for i in 0..CLIENTS.len() {
        let session = play.new_session(i);
        play.sessions.push(session);
    }
    let mut script = Script { data, pos: 0 };
    while script.pos < data.len() {
        let step = script.byte();
        let i = step as usize % CLIENTS.len();
        match step / CLIENTS.len() as u8 {
            kind @ 0..=63 => {
                let text = play.message(kind % 17, &mut script);
                play.input(i, Input::Text(&text));
            }
            64..=69 => play.input(i, Input::Tick),
            70..=72 => play.input(i, Input::Binary),
            73..=75 => {
                let now = play.now();
                play.sessions[i].heard(now);
            }
            76..=78 => play.end(i),
            79 => play.fail_over(),
            _ => {
                let by = Duration::from_millis(u64::from(script.byte()) * 250);
                play.advance(by);
            }
        }
    }
    check(&play.told);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    type Target = fn(&[u8]);

    /// Every target, by the name of its folders under `fuzz/`.
    const TARGETS: [(&str, Target); 9] = [
        ("messages", super::messages),
        ("datagrams", super::datagrams),
        ("offer", super::offer),
        ("tcp_frames", super::tcp_frames),
        ("rtp", super::rtp),
        ("tokens", super::tokens),
        ("headers", super::headers),
        ("config", super::config),
        ("sessions", super::sessions),
    ];

    /// The sequence target plays what its seeds say they play (the
    /// harness reaches the door, the lobby, resume and failover), and the
    /// doors hold through it.
    #[test]
    fn the_sequence_seeds_reach_the_doors() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sessions");
        let play = |seed: &str, check: &dyn Fn(Vec<&str>, Vec<&str>)| {
            let data = std::fs::read(root.join(seed)).unwrap();
            super::play_sessions(&data, |told| {
                let of = |c: usize| -> Vec<&str> {
                    told.iter()
                        .filter(|(i, what)| {
                            *i == c
                                && !["room-settings", "quality", "forwarded"]
                                    .contains(&what.as_str())
                        })
                        .map(|(_, what)| what.as_str())
                        .collect()
                };
                eprintln!("{seed}: Ana {:?}\n  stranger {:?}", of(0), of(2));
                check(of(0), of(2));
            });
        };
        play("lobby-admit-remove", &|ana, stranger| {
            assert!(ana.contains(&"knocking"), "{ana:?}");
            assert_eq!(stranger[..3], ["lobby", "welcome", "error removed"]);
        });
        play("failover-resume", &|ana, stranger| {
            // Ana locks her room; after the failover she comes back in
            // through the door made anew, the stranger does not.
            assert_eq!(ana[0], "welcome");
            assert_eq!(ana.last(), Some(&"welcome"));
            assert!(stranger.contains(&"error resume-failed"), "{stranger:?}");
            assert_eq!(stranger.last(), Some(&"error password-required"));
        });
    }

    /// The seeds (the example configuration files among them), and every
    /// input that once crashed a target (kept in
    /// `fuzz/regressions/TARGET/`), go through the targets on every test
    /// run, without cargo fuzz.
    #[test]
    fn seeds_and_past_crashes_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, target) in TARGETS {
            let mut replayed = 0;
            let mut folders = vec![
                root.join("fuzz/seeds").join(name),
                root.join("fuzz/regressions").join(name),
            ];
            // The configuration target's seeds are the example files too.
            if name == "config" {
                folders.push(root.join("config"));
            }
            for folder in folders {
                let Ok(entries) = std::fs::read_dir(folder) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    target(&std::fs::read(&path).unwrap());
                    replayed += 1;
                }
            }
            assert!(replayed > 0, "no seed for the target {name}");
        }
    }
}
