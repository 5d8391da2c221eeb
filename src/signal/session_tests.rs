//! The signalling session's decisions, with no socket and no clock: each
//! test plays a client (frames in), the socket loop (placement, location
//! and worker replies in) and the worker (events in), and reads what the
//! session sends and asks. Time is a fake clock, ids come from a seed.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use governor::clock::FakeRelativeClock;
use jsonwebtoken::{encode, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::grant::GrantKey;
use super::limits::{AddressLimits, IDLE, PING_EVERY};
use super::partner::Partner;
use super::protocol::{ErrorCode, ParticipantInfo, ParticipantState, ServerMessage, VERSION};
use super::room_token::{TokenKey, DEFAULT_AUDIENCE};
use super::session::{Env, Input, Now, Output, Placed, Session, MAX_MESSAGE};
use super::turn::TurnConfig;
use super::{PlaceError, SignalConfig};
use crate::cluster::admission::Refusal;
use crate::ids::ParticipantId;
use crate::metrics::{Metrics, Role};
use crate::privacy;
use crate::worker::{
    Command, DoorSettings, JoinRequest, PeerEvent, Reply, Resumed, Vouched, WorkerError,
    RETURN_WINDOW,
};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const UNIX: u64 = 1_800_000_000;
const SESSION: u64 = 77;
const SECRET: &str = "cluster secret of the tests";
const ROOM: &str = "chambre-217";
const NODE: &str = "node-a";

fn config() -> SignalConfig {
    SignalConfig::for_tests(SECRET)
}

/// What a session lives in: settings, counters, the limits per address on
/// a fake clock.
struct World {
    config: SignalConfig,
    metrics: Metrics,
    limits: AddressLimits<FakeRelativeClock>,
    clock: FakeRelativeClock,
    t0: Instant,
}

impl World {
    fn new(config: SignalConfig) -> Self {
        let clock = FakeRelativeClock::default();
        World {
            config,
            metrics: Metrics::new("test", Role::Signal),
            limits: AddressLimits::with_clock(clock.clone()),
            clock,
            t0: Instant::now(),
        }
    }

    fn session(&self) -> Client<'_> {
        self.session_seeded(1)
    }

    fn session_seeded(&self, seed: u64) -> Client<'_> {
        let env = Env {
            config: &self.config,
            limits: Some(&self.limits),
            metrics: &self.metrics,
        };
        Client {
            session: Session::new(env, CLIENT, SESSION, StdRng::seed_from_u64(seed), self.t0),
            world: self,
            elapsed: Duration::ZERO,
        }
    }
}

/// One session, driven as its socket loop would.
struct Client<'a> {
    session: Session<'a, FakeRelativeClock>,
    world: &'a World,
    elapsed: Duration,
}

impl Client<'_> {
    fn now(&self) -> Now {
        Now {
            at: self.world.t0 + self.elapsed,
            unix: UNIX + self.elapsed.as_secs(),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        self.world.clock.advance(by);
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.session.handle_input(input, self.now());
        std::iter::from_fn(|| self.session.poll_output()).collect()
    }

    fn send(&mut self, msg: Value) -> Vec<Output> {
        let text = msg.to_string();
        self.input(Input::Text(&text))
    }

    fn event(&mut self, event: PeerEvent) -> Vec<Output> {
        self.input(Input::Event {
            event,
            worker_gone: false,
        })
    }

    fn reply(&mut self, reply: Result<Reply, WorkerError>) -> Vec<Output> {
        self.input(Input::Reply(reply))
    }

    /// A join sent and placed on [`NODE`]: the request the worker gets.
    fn placed(&mut self, join: Value) -> JoinRequest {
        self.placed_owned(join, None)
    }

    /// A join sent and placed on [`NODE`], into a room whose owner's key
    /// has the digest `owner`.
    fn placed_owned(&mut self, join: Value, owner: Option<String>) -> JoinRequest {
        let out = self.send(join);
        assert!(
            matches!(&out[..], [Output::Place { .. }]),
            "placed first: {out:?}"
        );
        let out = self.input(Input::Placed(Ok(Placed {
            node: NODE.into(),
            door: None,
            owner,
        })));
        match &out[..] {
            [Output::Worker(Command::Join { req })] => req.clone(),
            other => panic!("a join for the worker: {other:?}"),
        }
    }

    /// Not in a call: what only a participant may send is refused.
    fn assert_outside(&mut self) {
        let out = self.send(json!({"type": "offer", "sdp": "v=0"}));
        refusal(&out, ErrorCode::NotJoined);
    }

    /// In the call, alone: its id.
    fn joined(&mut self) -> ParticipantId {
        let req = self.placed(join(ROOM, "Mamie"));
        let out = self.reply(Ok(Reply::Joined {
            others: vec![],
            founder: true,
        }));
        assert!(matches!(
            &out[..],
            [
                Output::Send(ServerMessage::Welcome { .. }),
                Output::Claim { .. }
            ]
        ));
        let out = self.input(Input::Claimed(true));
        assert!(matches!(
            &out[..],
            [Output::Send(ServerMessage::RoomOwner { .. })]
        ));
        req.info.id
    }
}

fn join(room: &str, name: &str) -> Value {
    json!({"type": "join", "v": VERSION, "room": room, "name": name})
}

fn with(mut msg: Value, key: &str, value: Value) -> Value {
    msg[key] = value;
    msg
}

/// The one frame out is an error with `code`: its message.
fn refusal(out: &[Output], code: ErrorCode) -> String {
    match out {
        [Output::Send(ServerMessage::Error {
            code: c, message, ..
        })] if *c == code => message.clone(),
        other => panic!("expected only a {code:?} error, got {other:?}"),
    }
}

/// The welcome a join's participant gets, with `others` there.
fn welcome(req: &JoinRequest, others: Vec<ParticipantInfo>) -> Output {
    Output::Send(ServerMessage::Welcome {
        v: VERSION,
        you: req.info.id,
        room: req.room.clone(),
        participants: others,
        token: req.token.clone(),
        resumed: false,
        ice_servers: vec![],
    })
}

fn person(id: ParticipantId, name: &str) -> ParticipantInfo {
    ParticipantInfo {
        id,
        name: name.into(),
        state: ParticipantState::joining(true, false),
    }
}

#[test]
fn a_join_is_placed_then_asked_of_the_worker_then_welcomed() {
    let world = World::new(config());
    let mut c = world.session();
    let out = c.send(with(join(ROOM, "  Mamie\u{7}\n"), "video", json!(false)));
    assert_eq!(
        out,
        [Output::Place {
            room: ROOM.into(),
            priority: false
        }]
    );
    let door = DoorSettings {
        password: Some("digest".into()),
        lobby: true,
        ..Default::default()
    };
    let out = c.input(Input::Placed(Ok(Placed {
        node: NODE.into(),
        door: Some(door.clone()),
        owner: None,
    })));
    let [Output::Worker(Command::Join { req })] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(req.room, ROOM);
    assert_eq!(req.info.name, "Mamie");
    assert_eq!(req.info.state, ParticipantState::joining(true, false));
    assert_eq!((req.max_participants, req.last_n), (12, 9));
    assert_eq!(req.session, SESSION);
    assert_eq!(
        req.door,
        Some(door),
        "the cluster's door goes with the join"
    );
    assert!(!req.moderator && req.vouched.is_none() && req.password.is_none());
    assert!(crate::ids::is_resume_token(&req.token));
    // The network is named without its address.
    let network = req.network.clone().unwrap();
    assert!(!network.contains("192.0.2"));

    let others = vec![person(5, "Paul")];
    let out = c.reply(Ok(Reply::Joined {
        others: others.clone(),
        founder: false,
    }));
    assert_eq!(out, [welcome(req, others)]);
    // In the call: its messages are its own.
    let out = c.send(json!({"type": "state", "audio": false, "video": true, "hand": true}));
    assert_eq!(
        out,
        [Output::Worker(Command::State {
            participant: req.info.id,
            state: ParticipantState {
                audio: false,
                video: true,
                screen: false,
                hand: true
            }
        })]
    );
}

#[test]
fn ids_and_tokens_come_from_the_seed() {
    let world = World::new(config());
    let a = world.session_seeded(7).placed(join(ROOM, "A"));
    let b = world.session_seeded(7).placed(join(ROOM, "B"));
    let c = world.session_seeded(8).placed(join(ROOM, "C"));
    assert_eq!((a.info.id, &a.token), (b.info.id, &b.token));
    assert_ne!(a.info.id, c.info.id);
    assert_ne!(a.token, c.token);
}

#[test]
fn malformed_messages_are_refused_with_a_reason_and_change_nothing() {
    let world = World::new(config());
    let mut c = world.session();
    let cases: Vec<(Value, ErrorCode)> = vec![
        (json!({"type": "dance"}), ErrorCode::BadMessage),
        (json!({"type": "join", "room": ROOM}), ErrorCode::BadMessage),
        (
            with(join(ROOM, "A"), "v", json!(2)),
            ErrorCode::UnsupportedVersion,
        ),
        (join("../etc", "A"), ErrorCode::InvalidRoom),
        (join(ROOM, " \u{1b} "), ErrorCode::InvalidName),
        (
            with(join(ROOM, "A"), "password", json!("x".repeat(65))),
            ErrorCode::BadMessage,
        ),
        (
            with(join(ROOM, "A"), "grant", json!("anything")),
            ErrorCode::GrantInvalid,
        ),
    ];
    for (msg, code) in cases {
        let out = c.send(msg.clone());
        refusal(&out, code);
    }
    refusal(&c.input(Input::Text("{not json")), ErrorCode::BadJson);
    refusal(&c.input(Input::Binary), ErrorCode::BadMessage);
    let big = format!(
        r#"{{"type":"chat","text":"{}"}}"#,
        "a".repeat(MAX_MESSAGE + 1)
    );
    let msg = refusal(&c.input(Input::Text(&big)), ErrorCode::TooLarge);
    assert!(msg.contains("the limit is"), "{msg}");
    // Still free to join after all of that.
    c.joined();
}

#[test]
fn nothing_but_join_resume_and_ping_before_joining() {
    let world = World::new(config());
    let mut c = world.session();
    let before_joining = [
        json!({"type": "offer", "sdp": "v=0"}),
        json!({"type": "answer", "id": 1, "sdp": "v=0"}),
        json!({"type": "candidate", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"}),
        json!({"type": "state", "audio": true, "video": true}),
        json!({"type": "chat", "text": "bonjour"}),
        json!({"type": "receive-video", "on": false}),
        json!({"type": "video-sizes", "tiles": []}),
        json!({"type": "set-password", "password": "x"}),
        json!({"type": "set-lobby", "on": true}),
        json!({"type": "admit", "id": 3}),
        json!({"type": "refuse", "id": 3}),
        json!({"type": "remove", "id": 3}),
    ];
    for msg in before_joining {
        refusal(&c.send(msg), ErrorCode::NotJoined);
    }
    assert_eq!(
        c.send(json!({"type": "ping"})),
        [Output::Send(ServerMessage::Pong)]
    );
    // A leave with nothing to leave is no error, and asks nothing.
    assert_eq!(c.send(json!({"type": "leave"})), []);
}

#[test]
fn in_a_call_chat_and_tiles_are_bounded() {
    let world = World::new(config());
    let mut c = world.session();
    let me = c.joined();
    refusal(
        &c.send(json!({"type": "chat", "text": "é".repeat(super::protocol::MAX_CHAT_CHARS + 1)})),
        ErrorCode::BadMessage,
    );
    let tiles: Vec<Value> = (0..=super::protocol::MAX_TILES as u64)
        .map(|id| json!({"id": id, "width": 320}))
        .collect();
    refusal(
        &c.send(json!({"type": "video-sizes", "tiles": tiles})),
        ErrorCode::BadMessage,
    );
    assert_eq!(
        c.send(json!({"type": "chat", "text": " Bonjour\u{1b}[2J "})),
        [Output::Worker(Command::Chat {
            participant: me,
            text: "Bonjour[2J".into()
        })]
    );
    refusal(&c.send(join(ROOM, "Again")), ErrorCode::AlreadyJoined);
}

#[test]
fn an_offer_is_answered_and_a_parser_error_stays_in_the_log() {
    let world = World::new(config());
    let mut c = world.session();
    let me = c.joined();
    let out = c.send(json!({"type": "offer", "sdp": "v=0 ...", "screen": "2"}));
    assert_eq!(
        out,
        [Output::Worker(Command::Offer {
            participant: me,
            sdp: "v=0 ...".into(),
            screen: Some("2".into())
        })]
    );
    assert_eq!(
        c.reply(Ok(Reply::Answer {
            sdp: "answer".into()
        })),
        [Output::Send(ServerMessage::Answer {
            sdp: "answer".into()
        })]
    );
    c.send(json!({"type": "offer", "sdp": "garbage"}));
    let msg = refusal(
        &c.reply(Err(WorkerError::InvalidSdp(
            "parse error at 0x55d0c0ffee".into(),
        ))),
        ErrorCode::InvalidSdp,
    );
    assert!(!msg.contains("0x55"), "{msg}");
    // The end of candidates asks nothing of the worker.
    assert_eq!(c.send(json!({"type": "candidate", "candidate": null})), []);
    assert_eq!(c.send(json!({"type": "candidate", "candidate": ""})), []);
}

#[test]
fn room_tokens_decide_who_enters_and_as_whom() {
    const TOKEN_SECRET: &[u8] = b"room token secret";
    let mut config = config();
    config.room_tokens = Some(TokenKey::shared(
        TOKEN_SECRET,
        None,
        DEFAULT_AUDIENCE.into(),
    ));
    config.closed_rooms = true;
    let world = World::new(config);
    let token = |claims: Value| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(TOKEN_SECRET),
        )
        .unwrap()
    };
    let claims = json!({
        "aud": "parloir", "room": ROOM, "exp": UNIX + 3600,
        "name": "Dr Martin", "role": "moderator",
    });
    let mut c = world.session();
    refusal(&c.send(join(ROOM, "A")), ErrorCode::TokenRequired);
    let expired = with(claims.clone(), "exp", json!(UNIX - 3600));
    refusal(
        &c.send(with(join(ROOM, "A"), "jwt", json!(token(expired)))),
        ErrorCode::TokenExpired,
    );
    refusal(
        &c.send(with(
            join("salle-b", "A"),
            "jwt",
            json!(token(claims.clone())),
        )),
        ErrorCode::TokenInvalid,
    );
    let forged = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    refusal(
        &c.send(with(join(ROOM, "A"), "jwt", json!(forged))),
        ErrorCode::TokenInvalid,
    );
    // A valid token's name is the name, whatever was typed; its role
    // makes a moderator.
    let req = c.placed(with(
        join(ROOM, "Someone else"),
        "jwt",
        json!(token(claims)),
    ));
    assert_eq!(req.info.name, "Dr Martin");
    assert!(req.moderator);
}

#[test]
fn a_priority_link_is_placed_as_priority_for_its_room_only() {
    let key = GrantKey::new(b"grant secret");
    let mut config = config();
    config.grants = Some(key.clone());
    let world = World::new(config);
    let mut c = world.session();
    let day = Duration::from_secs(86_400);
    refusal(
        &c.send(with(
            join(ROOM, "A"),
            "grant",
            json!(key.mint("salle-b", UNIX, day)),
        )),
        ErrorCode::GrantInvalid,
    );
    refusal(
        &c.send(with(
            join(ROOM, "A"),
            "grant",
            json!(key.mint(ROOM, UNIX - 2 * 86_400, day)),
        )),
        ErrorCode::GrantExpired,
    );
    let out = c.send(with(
        join(ROOM, "A"),
        "grant",
        json!(key.mint(ROOM, UNIX, day)),
    ));
    assert_eq!(
        out,
        [Output::Place {
            room: ROOM.into(),
            priority: true
        }]
    );
}

#[test]
fn placement_refusals_are_said_for_people_with_the_partners() {
    let mut config = config();
    config.partners = vec![Partner {
        name: "Hôpital Nord".into(),
        url: "https://visio.example/{room}".into(),
        languages: vec![],
    }];
    let world = World::new(config);
    let mut c = world.session();
    let cases = [
        (PlaceError::Refused(Refusal::Busy), ErrorCode::Overloaded, 1),
        (
            PlaceError::Refused(Refusal::Redirected),
            ErrorCode::Redirected,
            1,
        ),
        (PlaceError::Refused(Refusal::Full), ErrorCode::ServerFull, 0),
        (
            PlaceError::Limited(super::limits::Limited::NewRooms),
            ErrorCode::RateLimited,
            0,
        ),
        (PlaceError::Unreachable, ErrorCode::Unavailable, 0),
    ];
    for (error, code, partners) in cases {
        c.send(join(ROOM, "A"));
        let out = c.input(Input::Placed(Err(error)));
        let [Output::Send(ServerMessage::Error {
            code: c_,
            partners: p,
            ..
        })] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(*c_, code);
        assert_eq!(p.len(), partners);
        if let Some(p) = p.first() {
            assert_eq!(p.url, format!("https://visio.example/{ROOM}"));
        }
    }
}

#[test]
fn a_worker_refusal_leaves_the_session_free_to_try_again() {
    let world = World::new(config());
    let mut c = world.session();
    let cases = [
        (WorkerError::RoomFull(12), ErrorCode::RoomFull),
        (WorkerError::PasswordRequired, ErrorCode::PasswordRequired),
        (WorkerError::PasswordWrong, ErrorCode::PasswordWrong),
        (WorkerError::LobbyFull, ErrorCode::LobbyFull),
        (WorkerError::KnockingTooOften, ErrorCode::RateLimited),
        (WorkerError::Draining, ErrorCode::Unavailable),
        (
            WorkerError::Internal("thread 3 panicked".into()),
            ErrorCode::Unavailable,
        ),
    ];
    for (error, code) in cases {
        c.placed(join(ROOM, "A"));
        let msg = refusal(&c.reply(Err(error)), code);
        assert!(!msg.contains("panicked"), "{msg}");
    }
    // A password is sent as the cluster compares it, never as typed.
    let req = c.placed(with(join(ROOM, "A"), "password", json!("tulipe")));
    assert_eq!(
        req.password,
        Some(privacy::password_digest(ROOM, "tulipe", Some(SECRET)))
    );
    assert_ne!(req.password.as_deref(), Some("tulipe"));
}

#[test]
fn joins_from_one_address_are_limited_then_allowed_again() {
    let world = World::new(config());
    let mut c = world.session();
    let mut placed = 0;
    loop {
        let out = c.send(join(ROOM, "A"));
        if let [Output::Place { .. }] = &out[..] {
            placed += 1;
            c.input(Input::Placed(Err(PlaceError::Unreachable)));
            continue;
        }
        let msg = refusal(&out, ErrorCode::RateLimited);
        assert!(msg.contains("joins"), "{msg}");
        break;
    }
    assert_eq!(placed, 30, "the burst of joins per address");
    assert_eq!(world.metrics.limited.get(), 1);
    // Another session from the same address is limited too.
    refusal(
        &world.session().send(join(ROOM, "B")),
        ErrorCode::RateLimited,
    );
    c.advance(Duration::from_secs(2));
    assert!(matches!(
        &c.send(join(ROOM, "A"))[..],
        [Output::Place { .. }]
    ));
}

#[test]
fn a_flood_of_messages_is_slowed_then_cut() {
    let world = World::new(config());
    let mut c = world.session();
    let ping = json!({"type": "ping"});
    for _ in 0..120 {
        assert_eq!(c.send(ping.clone()), [Output::Send(ServerMessage::Pong)]);
    }
    refusal(&c.send(ping.clone()), ErrorCode::RateLimited);
    // A second later, thirty more go through.
    c.advance(Duration::from_secs(1));
    for _ in 0..30 {
        assert_eq!(c.send(ping.clone()), [Output::Send(ServerMessage::Pong)]);
    }
    // Two hundred refused in a row are answered; the next closes.
    for _ in 0..200 {
        refusal(&c.send(ping.clone()), ErrorCode::RateLimited);
    }
    assert_eq!(c.send(ping), [Output::Close]);
}

/// A client that paces itself so that one message in a few goes through
/// used to be answered forever (issue 26: 165,197 refusals in 20 s from 8
/// sockets); refusals are now counted whatever comes between them.
#[test]
fn a_paced_flood_of_refused_messages_is_cut_too() {
    let world = World::new(config());
    let mut c = world.session();
    let ping = json!({"type": "ping"});
    let (mut answered, mut refused) = (0, 0);
    let closed_after = (0..2_000).find_map(|tick| {
        // Two messages every 10 ms: more than the rate, never only refused.
        c.advance(Duration::from_millis(10));
        for _ in 0..2 {
            match &c.send(ping.clone())[..] {
                [Output::Send(ServerMessage::Pong)] => answered += 1,
                [Output::Close] => return Some(Duration::from_millis(10 * tick)),
                out => {
                    refusal(out, ErrorCode::RateLimited);
                    refused += 1;
                }
            }
        }
        None
    });
    let closed_after = closed_after.expect("the socket is closed");
    assert!(
        answered > refused / 10,
        "paced: {answered} answered, {refused} refused"
    );
    assert!(
        closed_after < Duration::from_secs(10),
        "closed after {closed_after:?}"
    );
    // Errors count too: a stream of garbage is not a way around the rate.
    let mut c = world.session_seeded(2);
    let closed = (0..1_000).any(|_| {
        c.advance(Duration::from_millis(20));
        c.input(Input::Text("{not json")) == [Output::Close]
    });
    assert!(closed, "garbage at 50 a second is cut");
}

#[test]
fn a_silent_client_is_pinged_then_closed() {
    let world = World::new(config());
    let mut c = world.session();
    c.advance(PING_EVERY);
    assert_eq!(c.input(Input::Tick), [Output::Ping]);
    c.advance(PING_EVERY);
    // A pong counts as heard.
    c.session.heard(c.now());
    c.advance(IDLE);
    assert_eq!(c.input(Input::Tick), [Output::Ping]);
    c.advance(PING_EVERY);
    assert_eq!(c.input(Input::Tick), [Output::Close]);
}

fn resume(participant: ParticipantId, token: &str) -> Value {
    json!({"type": "resume", "v": VERSION, "room": ROOM, "participant": participant, "token": token})
}

#[test]
fn a_resume_with_the_right_token_welcomes_again_with_the_pending_offer() {
    let world = World::new(config());
    let mut c = world.session();
    assert_eq!(
        c.send(resume(5, "tok")),
        [Output::Locate { room: ROOM.into() }]
    );
    assert_eq!(
        c.input(Input::Located(Some(NODE.into()))),
        [Output::Worker(Command::Resume {
            participant: 5,
            token: "tok".into(),
            session: SESSION,
            room: Some(ROOM.into()),
        })]
    );
    let others = vec![person(6, "Paul")];
    let out = c.reply(Ok(Reply::Resumed {
        resumed: Resumed {
            room: ROOM.into(),
            others: others.clone(),
            offer: Some((3, "offer sdp".into())),
        },
    }));
    assert_eq!(
        out,
        [
            Output::Send(ServerMessage::Welcome {
                v: VERSION,
                you: 5,
                room: ROOM.into(),
                participants: others,
                token: "tok".into(),
                resumed: true,
                ice_servers: vec![],
            }),
            Output::Send(ServerMessage::Offer {
                id: 3,
                sdp: "offer sdp".into()
            })
        ]
    );
    assert_eq!(
        c.send(json!({"type": "answer", "id": 3, "sdp": "answer"})),
        [Output::Worker(Command::Answer {
            participant: 5,
            offer: 3,
            sdp: "answer".into()
        })]
    );
}

#[test]
fn a_failed_resume_says_the_same_whatever_failed() {
    let world = World::new(config());
    let mut c = world.session();
    let mut said = Vec::new();
    // The room runs nowhere.
    c.send(resume(5, "tok"));
    said.push(refusal(
        &c.input(Input::Located(None)),
        ErrorCode::ResumeFailed,
    ));
    // A wrong token, or an id the worker does not know.
    for error in [WorkerError::ResumeRefused, WorkerError::UnknownParticipant] {
        c.send(resume(5, "wrong"));
        c.input(Input::Located(Some(NODE.into())));
        said.push(refusal(&c.reply(Err(error)), ErrorCode::ResumeFailed));
    }
    // A room name that could not be.
    let out = c.send(with(resume(5, "tok"), "room", json!("../x")));
    said.push(refusal(&out, ErrorCode::ResumeFailed));
    said.dedup();
    assert_eq!(said.len(), 1, "{said:?}");
    // Nothing resumed: still outside.
    c.assert_outside();
}

#[test]
fn a_resume_naming_another_room_is_refused_and_given_back() {
    let world = World::new(config());
    let mut c = world.session();
    c.send(resume(5, "tok"));
    c.input(Input::Located(Some(NODE.into())));
    let out = c.reply(Ok(Reply::Resumed {
        resumed: Resumed {
            room: "salle-b".into(),
            others: vec![],
            offer: None,
        },
    }));
    let [Output::Worker(Command::Detach {
        participant: 5,
        session: SESSION,
    }), Output::Send(ServerMessage::Error {
        code: ErrorCode::ResumeFailed,
        ..
    })] = &out[..]
    else {
        panic!("{out:?}")
    };
    refusal(
        &c.send(json!({"type": "set-lobby", "on": true})),
        ErrorCode::NotJoined,
    );
}

#[test]
fn a_knock_waits_in_the_lobby_until_admitted() {
    let world = World::new(config());
    let mut c = world.session();
    let req = c.placed(join(ROOM, "Léa"));
    assert_eq!(
        c.reply(Ok(Reply::Knocking)),
        [Output::Send(ServerMessage::Lobby)]
    );
    // Waiting is not being in: no media, no second join.
    c.assert_outside();
    refusal(&c.send(join(ROOM, "Léa")), ErrorCode::AlreadyJoined);
    let others = vec![person(5, "Paul")];
    let out = c.event(PeerEvent::Admitted {
        others: others.clone(),
    });
    assert_eq!(out, [welcome(&req, others)]);
}

#[test]
fn a_knock_refused_or_orphaned_is_not_let_in() {
    let world = World::new(config());
    let mut c = world.session();
    let req = c.placed(join(ROOM, "Léa"));
    c.reply(Ok(Reply::Knocking));
    let out = c.event(PeerEvent::Refused {
        reason: "the moderator did not let you in".into(),
    });
    assert_eq!(
        out[0],
        Output::Worker(Command::Leave {
            participant: req.info.id
        })
    );
    refusal(&out[1..], ErrorCode::LobbyRefused);
    // A late admission is ignored.
    assert_eq!(c.event(PeerEvent::Admitted { others: vec![] }), []);

    // Waiting when the worker is lost: refused, not let in by a room made
    // anew.
    c.placed(join(ROOM, "Léa"));
    c.reply(Ok(Reply::Knocking));
    let out = c.input(Input::Event {
        event: PeerEvent::Closed {
            reason: "worker lost".into(),
        },
        worker_gone: true,
    });
    refusal(&out, ErrorCode::LobbyRefused);
    // And a knocker whose socket ends leaves the lobby.
    let req = c.placed(join(ROOM, "Léa"));
    c.reply(Ok(Reply::Knocking));
    assert_eq!(
        c.input(Input::Ended),
        [Output::Worker(Command::Leave {
            participant: req.info.id
        })]
    );
}

#[test]
fn moderator_actions_go_to_the_worker_and_its_refusals_come_back() {
    let world = World::new(config());
    let mut c = world.session();
    let me = c.joined();
    let out = c.send(json!({"type": "set-password", "password": "tulipe"}));
    assert_eq!(
        out,
        [Output::Worker(Command::SetPassword {
            participant: me,
            password: Some(privacy::password_digest(ROOM, "tulipe", Some(SECRET)))
        })]
    );
    refusal(
        &c.reply(Err(WorkerError::NotModerator)),
        ErrorCode::NotModerator,
    );
    let asked = [
        (
            json!({"type": "set-password", "password": null}),
            Command::SetPassword {
                participant: me,
                password: None,
            },
        ),
        (
            json!({"type": "set-lobby", "on": true}),
            Command::SetLobby {
                participant: me,
                on: true,
            },
        ),
        (
            json!({"type": "admit", "id": 9}),
            Command::Admit {
                participant: me,
                knocker: 9,
                admit: true,
            },
        ),
        (
            json!({"type": "refuse", "id": 9}),
            Command::Admit {
                participant: me,
                knocker: 9,
                admit: false,
            },
        ),
        (
            json!({"type": "remove", "id": 9}),
            Command::Remove {
                participant: me,
                target: 9,
            },
        ),
    ];
    for (msg, cmd) in asked {
        assert_eq!(c.send(msg), [Output::Worker(cmd)]);
        assert_eq!(c.reply(Ok(Reply::Done)), []);
    }
    c.send(json!({"type": "remove", "id": 9}));
    refusal(
        &c.reply(Err(WorkerError::NoSuchPerson)),
        ErrorCode::NoSuchPerson,
    );
    refusal(
        &c.send(json!({"type": "set-password", "password": ""})),
        ErrorCode::BadMessage,
    );
}

#[test]
fn someone_removed_is_out_of_the_call() {
    let world = World::new(config());
    let mut c = world.session();
    let me = c.joined();
    let out = c.event(PeerEvent::Removed);
    assert_eq!(out[0], Output::Worker(Command::Leave { participant: me }));
    refusal(&out[1..], ErrorCode::Removed);
    c.assert_outside();
    assert_eq!(c.input(Input::Ended), [], "nothing left to detach");
}

/// In the call as moderator, then its worker is lost.
fn lost_as_moderator(c: &mut Client) {
    c.joined();
    c.event(PeerEvent::RoomSettings {
        moderator: true,
        locked: true,
        lobby: true,
    });
    let out = c.input(Input::Event {
        event: PeerEvent::Closed {
            reason: "worker lost".into(),
        },
        worker_gone: true,
    });
    assert_eq!(out[0], Output::NodeLost(NODE.into()));
    refusal(&out[1..], ErrorCode::MediaLost);
}

#[test]
fn a_lost_worker_vouches_for_its_room_once_and_briefly() {
    let world = World::new(config());
    let mut c = world.session();
    lost_as_moderator(&mut c);
    // Back into the same room at once: vouched for, as moderator.
    let req = c.placed(join(ROOM, "Mamie"));
    assert_eq!(req.vouched, Some(Vouched::Moderator));
    c.reply(Ok(Reply::Joined {
        others: vec![],
        founder: true,
    }));
    c.input(Input::Claimed(true));
    // Once in, the vouch is spent.
    c.send(json!({"type": "leave"}));
    assert_eq!(c.placed(join(ROOM, "Mamie")).vouched, None);

    // Not for another room, nor after the window.
    let mut c = world.session();
    lost_as_moderator(&mut c);
    assert_eq!(c.placed(join("salle-b", "Mamie")).vouched, None);
    c.input(Input::Placed(Err(PlaceError::Unreachable)));
    let mut c = world.session();
    lost_as_moderator(&mut c);
    c.advance(RETURN_WINDOW);
    assert_eq!(c.placed(join(ROOM, "Mamie")).vouched, None);
}

#[test]
fn media_lost_without_a_lost_worker_vouches_for_nothing() {
    let world = World::new(config());
    let mut c = world.session();
    c.joined();
    let out = c.event(PeerEvent::Closed {
        reason: "ICE failed".into(),
    });
    refusal(&out, ErrorCode::MediaLost);
    assert_eq!(c.placed(join(ROOM, "Mamie")).vouched, None);
}

#[test]
fn a_socket_that_ends_detaches_and_a_leave_leaves() {
    let world = World::new(config());
    let mut c = world.session();
    let me = c.joined();
    assert_eq!(
        c.input(Input::Ended),
        [Output::Worker(Command::Detach {
            participant: me,
            session: SESSION
        })]
    );
    let mut c = world.session_seeded(2);
    let me = c.joined();
    assert_eq!(
        c.send(json!({"type": "leave"})),
        [Output::Worker(Command::Leave { participant: me })]
    );
    assert_eq!(c.input(Input::Ended), []);
}

#[test]
fn the_workers_events_reach_the_client_and_turn_credentials_the_welcome() {
    let mut config = config();
    config.turn = Some(TurnConfig::new(
        "turn:turn.example:3478",
        "turn secret".into(),
    ));
    let world = World::new(config);
    let mut c = world.session();
    c.placed(join(ROOM, "Mamie"));
    let out = c.reply(Ok(Reply::Joined {
        others: vec![],
        founder: true,
    }));
    let [Output::Send(ServerMessage::Welcome { ice_servers, .. }), Output::Claim { .. }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(ice_servers.len(), 1);
    let relayed = [
        (
            PeerEvent::Offer {
                id: 4,
                sdp: "o".into(),
            },
            ServerMessage::Offer {
                id: 4,
                sdp: "o".into(),
            },
        ),
        (
            PeerEvent::Speaker { id: 5 },
            ServerMessage::Speaker { id: 5 },
        ),
        (
            PeerEvent::ParticipantLeft { id: 5 },
            ServerMessage::ParticipantLeft { id: 5 },
        ),
        (
            PeerEvent::Knocking {
                id: 6,
                name: "Léa".into(),
            },
            ServerMessage::Knocking {
                id: 6,
                name: "Léa".into(),
            },
        ),
    ];
    for (event, msg) in relayed {
        assert_eq!(c.event(event), [Output::Send(msg)]);
    }
}

#[test]
fn one_request_at_a_time() {
    let world = World::new(config());
    let mut c = world.session();
    c.send(join(ROOM, "A"));
    // The socket loop answers the placement before it reads on; a frame
    // that comes anyway is refused, and the join goes on.
    refusal(&c.send(json!({"type": "ping"})), ErrorCode::BadMessage);
    let out = c.input(Input::Placed(Ok(Placed {
        node: NODE.into(),
        door: None,
        owner: None,
    })));
    assert!(matches!(&out[..], [Output::Worker(Command::Join { .. })]));
}

/// Whoever creates a room owns it: given a key once the cluster keeps it.
/// The key shown later moderates; a stranger first into the room owned
/// moderates nothing.
#[test]
fn a_room_is_owned_by_its_creator() {
    let world = World::new(config());
    let mut ana = world.session();
    let req = ana.placed(join(ROOM, "Ana"));
    assert!(!req.moderator && !req.claimed);
    let out = ana.reply(Ok(Reply::Joined {
        others: vec![],
        founder: true,
    }));
    let [Output::Send(ServerMessage::Welcome { .. }), Output::Claim { room, digest }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(room, ROOM);
    let digest = digest.clone();
    let out = ana.input(Input::Claimed(true));
    let [Output::Send(ServerMessage::RoomOwner { key })] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        super::owner::digest(key),
        digest,
        "the key kept is the key given"
    );
    let key = key.clone();

    // Eve knows the name and comes first once the room is empty: the
    // worker is told the room is someone else's, and nothing is claimed.
    let mut eve = world.session();
    let req = eve.placed_owned(join(ROOM, "Eve"), Some(digest.clone()));
    assert!(req.claimed && !req.moderator);
    let out = eve.reply(Ok(Reply::Joined {
        others: vec![],
        founder: true,
    }));
    assert!(matches!(
        &out[..],
        [Output::Send(ServerMessage::Welcome { .. })]
    ));
    // A made-up key, or the digest itself, is no key.
    for shown in ["x".repeat(22), digest.clone()] {
        let mut eve = world.session();
        let shown = with(join(ROOM, "Eve"), "owner", json!(shown));
        let req = eve.placed_owned(shown, Some(digest.clone()));
        assert!(req.claimed && !req.moderator);
    }

    // Ana comes back with her key: a moderator, past any lock, and her
    // claim is made again (another month), with no new key.
    let mut back = world.session();
    let req = back.placed_owned(
        with(join(ROOM, "Ana"), "owner", json!(key)),
        Some(digest.clone()),
    );
    assert!(req.moderator && !req.claimed);
    let out = back.reply(Ok(Reply::Joined {
        others: vec![person(5, "Eve")],
        founder: false,
    }));
    assert!(matches!(
        &out[..],
        [Output::Send(ServerMessage::Welcome { .. }), Output::Claim { digest: d, .. }] if *d == digest
    ));
    assert_eq!(back.input(Input::Claimed(true)), []);
}

/// Two creators at once on two signal servers: the one whose claim lands
/// second is given no key.
#[test]
fn a_claim_lost_to_another_gives_no_key() {
    let world = World::new(config());
    let mut c = world.session();
    c.placed(join(ROOM, "Ben"));
    let out = c.reply(Ok(Reply::Joined {
        others: vec![],
        founder: true,
    }));
    assert!(matches!(&out[..], [_, Output::Claim { .. }]));
    assert_eq!(c.input(Input::Claimed(false)), []);
    // Nor does someone first into a room made anew that it does not
    // moderate (a stranger who knew a restored door's password).
    let mut e = world.session();
    e.placed(join(ROOM, "Eve"));
    let out = e.reply(Ok(Reply::Joined {
        others: vec![],
        founder: false,
    }));
    assert!(matches!(
        &out[..],
        [Output::Send(ServerMessage::Welcome { .. })]
    ));
    // Nor does someone who is not first in an unowned room claim it.
    let mut d = world.session();
    d.placed(join(ROOM, "Dan"));
    let out = d.reply(Ok(Reply::Joined {
        others: vec![person(5, "Ben")],
        founder: false,
    }));
    assert!(matches!(
        &out[..],
        [Output::Send(ServerMessage::Welcome { .. })]
    ));
}
