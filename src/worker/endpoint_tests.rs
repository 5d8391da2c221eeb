//! The endpoint driven as the media loop drives it, with str0m clients as
//! browsers, a fake clock and a fake network: no socket, no sleep. Each
//! client sits behind a NAT of its own (its datagrams reach the endpoint
//! from a public address the test can change), so address changes and
//! reused NAT ports can be played out.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::sync::mpsc;

use super::endpoint::{Delivery, Endpoint, ENDED_REMEMBERED};
use super::ice_sources::{MAX_ICE_SOURCES, MAX_TRICKLED};
use super::outbox::Outboxes;
use super::peer::{
    Candidates, CONNECT_DEADLINE, DETACH_GRACE, DISCONNECT_GRACE, MAX_MEDIA_SECTIONS, SEAT_GRACE,
};
use super::test_client::{self, Client, FakeNetwork};
use super::{
    Command, DoorSettings, JoinRequest, PeerEvent, Reply, SessionId, Vouched, WorkerError,
    RETURN_WINDOW,
};
use crate::ids::{ParticipantId, ParticipantInfo};

const SERVER: &str = "10.0.0.1:10000";
const STEP: Duration = Duration::from_millis(1);
/// After a NAT rebinding, str0m's ICE-lite agent keeps sending to the old
/// address (both pairs are nominated, with equal priority) until that pair
/// has had no binding request for 15 s; then the new one takes over.
pub(super) const REBINDING_SETTLES: Duration = Duration::from_secs(17);

struct Net {
    ep: Endpoint,
    clients: Vec<Client>,
    /// The address each client's datagrams come from, as the endpoint sees
    /// it (its NAT's public side).
    public: HashMap<ParticipantId, SocketAddr>,
    /// Clients whose network lets no datagram through, either way.
    blocked: HashSet<ParticipantId>,
    now: Instant,
    /// Events other than server offers (which the clients answer).
    events: Vec<(ParticipantId, PeerEvent)>,
    /// A participant whose events go through the media loop's outboxes
    /// to a small channel, read only while not `stalled`.
    slow: Option<Slow>,
}

/// A signalling session slower than its events.
struct Slow {
    id: ParticipantId,
    outboxes: Outboxes,
    rx: mpsc::Receiver<PeerEvent>,
    stalled: bool,
}

fn public_addr(id: ParticipantId) -> SocketAddr {
    format!("203.0.113.{id}:4000").parse().unwrap()
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        Net {
            ep: Endpoint::new(
                super::peer::Local::test(Candidates::on(SERVER.parse().unwrap())),
                7,
                now,
            ),
            clients: Vec::new(),
            public: HashMap::new(),
            blocked: HashSet::new(),
            now,
            events: Vec::new(),
            slow: None,
        }
    }

    /// `id`'s events from now on go to a channel of `capacity`, unread
    /// until [`Net::unstall`].
    fn stall(&mut self, id: ParticipantId, capacity: usize) {
        let (tx, rx) = mpsc::channel(capacity);
        let mut outboxes = Outboxes::default();
        outboxes.attach(id, id * 100, tx);
        self.slow = Some(Slow {
            id,
            outboxes,
            rx,
            stalled: true,
        });
    }

    fn unstall(&mut self) {
        if let Some(slow) = &mut self.slow {
            slow.stalled = false;
        }
    }

    /// The events the endpoint has, and what the slow session reads.
    fn read_events(&mut self) -> Vec<(ParticipantId, PeerEvent)> {
        let ep = &mut self.ep;
        let Some(slow) = &mut self.slow else {
            return std::iter::from_fn(|| ep.poll_event()).collect();
        };
        let mut read = Vec::new();
        let slow_id = slow.id;
        let events = std::iter::from_fn(|| ep.poll_event()).filter_map(|(to, e)| {
            if to == slow_id {
                return Some((to, e));
            }
            read.push((to, e));
            None
        });
        slow.outboxes.hand_on(events);
        while !slow.stalled {
            match slow.rx.try_recv() {
                Ok(e) => read.push((slow_id, e)),
                Err(_) => break,
            }
        }
        read
    }

    /// A participant's event, as its session would take it: a server offer
    /// answered by its client, anything else kept.
    fn deliver(&mut self, to: ParticipantId, event: PeerEvent) {
        match event {
            PeerEvent::Offer { id, sdp } if self.clients.iter().any(|c| c.id == to) => {
                let answer = self.client(to).answer(&sdp);
                let cmd = Command::Answer {
                    participant: to,
                    offer: id,
                    sdp: answer,
                };
                // The participant may have been removed meanwhile.
                match self.ep.handle_command(self.now, cmd) {
                    Ok(_) | Err(WorkerError::UnknownParticipant) => {}
                    Err(e) => panic!("answer refused: {e}"),
                }
            }
            other => self.events.push((to, other)),
        }
    }

    fn client(&mut self, id: ParticipantId) -> &mut Client {
        test_client::find(&mut self.clients, id)
    }

    fn command(&mut self, cmd: Command) -> Result<Reply, WorkerError> {
        self.ep.handle_command(self.now, cmd)
    }

    /// Joins `room` without offering: the participant's media is not set up.
    fn join_only(
        &mut self,
        id: ParticipantId,
        room: &str,
        session: SessionId,
    ) -> Result<Vec<ParticipantInfo>, WorkerError> {
        let req = join_request(id, room, session, 12);
        match self.command(Command::Join { req })? {
            Reply::Joined { others, .. } => Ok(others),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Joins and offers a microphone and a camera, as the web client does.
    fn join(&mut self, id: ParticipantId, room: &str) -> Vec<ParticipantInfo> {
        let others = self.join_only(id, room, id * 100).expect("joined");
        let local: SocketAddr = format!("192.168.1.{id}:5000").parse().unwrap();
        let mut client = Client::new(id, local, self.now);
        let offer = client.offer();
        client.accept_answer(&self.offer(id, offer).expect("answer"));
        self.clients.push(client);
        self.public.insert(id, public_addr(id));
        others
    }

    fn detach(&mut self, id: ParticipantId, session: SessionId) {
        let cmd = Command::Detach {
            participant: id,
            session,
        };
        self.command(cmd).expect("detach");
    }

    /// `id`'s browser restarts ICE (new credentials), as on a network
    /// move, and takes the answer.
    fn restart_ice(&mut self, id: ParticipantId) {
        let offer = self.client(id).ice_restart();
        let answer = self.offer(id, offer).expect("restart answered");
        self.client(id).accept_answer(&answer);
    }

    /// A binding request `id`'s own connection sends, with its current
    /// credentials: what an attacker replays from other sources.
    fn own_binding_request(&mut self, id: ParticipantId) -> Vec<u8> {
        let index = self.clients.iter().position(|c| c.id == id).unwrap();
        // Driven by hand meanwhile: `run` would deliver its requests.
        let mut client = self.clients.remove(index);
        let mut request = None;
        for _ in 0..100 {
            self.run(Duration::from_millis(100));
            let now = self.now;
            request = client
                .poll(now)
                .into_iter()
                .find(|t| super::demux::is_stun(&t.contents));
            if request.is_some() {
                break;
            }
        }
        self.clients.push(client);
        request.expect("a binding request").contents.to_vec()
    }

    fn offer(&mut self, id: ParticipantId, sdp: String) -> Result<String, WorkerError> {
        match self.command(Command::Offer {
            participant: id,
            sdp,
            screen: None,
        })? {
            Reply::Answer { sdp } => Ok(sdp),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Jumps to the endpoint's next timeout, with nobody sending.
    fn jump_to_next_timeout(&mut self) {
        self.now = self.ep.poll_timeout().max(self.now);
        self.ep.handle_timeout(self.now);
        while let Some(event) = self.ep.poll_event() {
            self.events.push(event);
        }
    }

    /// Each connected client sends one video packet carrying `tag`.
    fn everyone_sends(&mut self, tag: u8) {
        test_client::everyone_sends(&mut self.clients, self.now, tag);
    }

    fn received(&self, by: ParticipantId, from: ParticipantId, tag: u8) -> usize {
        test_client::received(&self.clients, by, from, tag)
    }

    fn closed(&self, id: ParticipantId) -> Option<&str> {
        self.events.iter().find_map(|(to, e)| match e {
            PeerEvent::Closed { reason } if *to == id => Some(reason.as_str()),
            _ => None,
        })
    }

    fn saw_leave(&self, by: ParticipantId, who: ParticipantId) -> bool {
        self.events
            .iter()
            .any(|(to, e)| *to == by && *e == PeerEvent::ParticipantLeft { id: who })
    }
}

impl FakeNetwork for Net {
    fn now(&self) -> Instant {
        self.now
    }

    /// One step of the network and the clocks.
    fn step(&mut self, step: Duration) {
        self.now += step;
        let now = self.now;
        // Until answering offers makes no more events.
        loop {
            let read = self.read_events();
            if read.is_empty() {
                break;
            }
            for (to, event) in read {
                self.deliver(to, event);
            }
        }
        for c in &mut self.clients {
            let from = self.public[&c.id];
            let blocked = self.blocked.contains(&c.id);
            for t in c.poll(now).into_iter().filter(|_| !blocked) {
                self.ep
                    .handle_datagram(now, Protocol::Udp, from, &t.contents);
            }
        }
        if self.ep.poll_timeout() <= now {
            self.ep.handle_timeout(now);
        }
        let mut sent = Vec::new();
        while let Some(batch) = self.ep.poll_transmit(now, 32) {
            sent.extend(
                batch
                    .iter()
                    .map(|t| (t.destination, t.source, t.contents.to_vec())),
            );
        }
        for (to, from, bytes) in sent {
            if let Some(c) = test_client::client_at(&mut self.clients, &self.public, to) {
                if !self.blocked.contains(&c.id) {
                    c.receive(now, from, &bytes);
                }
            }
        }
    }
}

/// A join as the signal server sends it, to a room of at most `max`.
pub(super) fn join_request(
    id: ParticipantId,
    room: &str,
    session: SessionId,
    max: usize,
) -> JoinRequest {
    JoinRequest {
        room: room.into(),
        info: ParticipantInfo {
            id,
            name: format!("p{id}"),
            state: crate::ids::ParticipantState::joining(true, true),
        },
        token: format!("token-{id}"),
        max_participants: max,
        last_n: 9,
        session,
        password: None,
        moderator: false,
        rejoin: None,
        network: None,
        door: None,
        vouched: None,
        claimed: false,
    }
}

fn call_of_two() -> Net {
    let mut net = Net::new();
    net.join(1, "a");
    net.join(2, "a");
    net.run(Duration::from_millis(1500));
    assert!(net.clients.iter().all(|c| c.connected), "media connected");
    net
}

#[test]
fn two_participants_exchange_media_both_ways() {
    let mut net = call_of_two();
    net.everyone_sends(1);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(2, 1, 1), 1);
    assert_eq!(net.received(1, 2, 1), 1);
    assert_eq!(net.ep.participants(), 2);
}

/// A session that reads its events slower than they come (a page busy
/// writing to a slow WebSocket) still gets the offer for a newcomer, and
/// so its video, once it reads again: events wait, none is lost.
#[test]
fn a_session_slower_than_its_events_still_gets_the_newcomers_video() {
    let mut net = Net::new();
    net.join(1, "a");
    net.run(Duration::from_millis(1500));
    // Its session takes 8 events and then reads nothing, while its own
    // chats (the room echoes them to their sender) come by the hundred.
    net.stall(1, 8);
    for i in 0..300 {
        let chat = Command::Chat {
            participant: 1,
            text: format!("message {i}"),
        };
        net.command(chat).expect("chat");
    }
    net.join(2, "a");
    net.run(Duration::from_millis(1500));
    let waiting = net.slow.as_ref().map_or(0, |s| s.outboxes.waiting_for(1));
    assert!(waiting > 290, "the chats and the offer wait: {waiting}");
    net.everyone_sends(5);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(2, 1, 5), 1, "the newcomer is in the call");
    assert_eq!(net.received(1, 2, 5), 0, "its offer waits behind the chats");

    net.unstall();
    net.run(Duration::from_millis(1500));
    net.everyone_sends(6);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(1, 2, 6), 1, "the newcomer's video, after all");
    let chats: Vec<String> = net
        .events
        .iter()
        .filter_map(|(to, e)| match e {
            PeerEvent::Chat { text, .. } if *to == 1 => Some(text.clone()),
            _ => None,
        })
        .collect();
    let sent: Vec<String> = (0..300).map(|i| format!("message {i}")).collect();
    assert_eq!(chats, sent, "every chat, in order");
}

#[test]
fn a_participant_whose_nat_rebinds_keeps_receiving() {
    let mut net = call_of_two();
    // The NAT gives participant 2 another public port; consent checks from
    // there authenticate it and its media follows.
    net.public.insert(2, "203.0.113.99:4444".parse().unwrap());
    net.run_past(REBINDING_SETTLES);
    net.everyone_sends(2);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(2, 1, 2), 1, "media reaches the new address");
    assert_eq!(
        net.received(1, 2, 2),
        1,
        "media from the new address counts"
    );
}

#[test]
fn an_ice_restart_from_a_new_network_resumes_media() {
    let mut net = call_of_two();
    // Wi-Fi to 4G: another address, and the browser restarts ICE.
    net.public.insert(2, "198.51.100.7:6000".parse().unwrap());
    net.restart_ice(2);
    net.run(Duration::from_millis(1500));
    net.everyone_sends(3);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(2, 1, 3), 1);
    assert_eq!(net.received(1, 2, 3), 1);
}

#[test]
fn an_ice_restart_into_a_network_that_blocks_everything_ends_after_the_grace() {
    let mut net = call_of_two();
    // Wi-Fi to a 4G network without UDP: the restart is signalled, but no
    // check ever arrives. The participant is a frozen tile for the others
    // only as long as the grace.
    net.blocked.insert(2);
    net.restart_ice(2);
    net.run_past(DISCONNECT_GRACE / 2);
    assert_eq!(net.ep.participants(), 2, "still within the grace");
    net.run_past(DISCONNECT_GRACE);
    assert_eq!(net.ep.participants(), 1);
    assert_eq!(net.closed(2), Some("media connection lost"));
    assert!(net.saw_leave(1, 2));
}

#[test]
fn a_resume_needs_the_participants_token() {
    let mut net = call_of_two();
    net.detach(2, 200);
    let resume_in = |room: &str, token: &str| Command::Resume {
        participant: 2,
        token: token.into(),
        session: 201,
        room: Some(room.into()),
    };
    let resume = |token: &str| resume_in("a", token);
    assert_eq!(
        net.command(resume("token-1")),
        Err(WorkerError::ResumeRefused)
    );
    // The right token, but naming a room it is not in: refused before the
    // session takes the participant over.
    assert_eq!(
        net.command(resume_in("chambre-217", "token-2")),
        Err(WorkerError::ResumeRefused)
    );
    let Ok(Reply::Resumed { resumed }) = net.command(resume("token-2")) else {
        panic!("resume refused");
    };
    assert_eq!(resumed.room, "a");
    assert_eq!(
        resumed.others.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1]
    );
    // Resumed: the detach grace no longer runs.
    net.run_past(DETACH_GRACE + Duration::from_secs(2));
    assert_eq!(net.ep.participants(), 2);
    assert!(net.closed(2).is_none());
}

#[test]
fn a_detach_from_a_replaced_session_is_ignored() {
    let mut net = call_of_two();
    // Joined through session 200 (Wi-Fi); resumed through 201 (4G) before
    // the Wi-Fi socket timed out and closed.
    let Ok(Reply::Resumed { .. }) = net.command(Command::Resume {
        participant: 2,
        token: "token-2".into(),
        session: 201,
        room: None,
    }) else {
        panic!("resume refused");
    };
    net.detach(2, 200);
    net.run_past(DETACH_GRACE + Duration::from_secs(2));
    assert_eq!(net.ep.participants(), 2, "still in the call");
    assert!(!net.saw_leave(1, 2));
    // Its current session going away does count.
    net.detach(2, 201);
    net.run_past(DETACH_GRACE + Duration::from_secs(2));
    assert_eq!(net.ep.participants(), 1);
    assert!(net.saw_leave(1, 2));
}

#[test]
fn a_ghost_that_closed_its_socket_is_removed_after_the_grace() {
    let mut net = call_of_two();
    // Joins, offers, sends a candidate, and its socket closes: no leave,
    // and no media ever.
    net.join_only(3, "a", 300).unwrap();
    let mut ghost = Client::new(3, "192.168.1.3:5000".parse().unwrap(), net.now);
    let offer = ghost.offer();
    net.offer(3, offer).unwrap();
    net.command(Command::Candidate {
        participant: 3,
        candidate: "candidate:1 1 udp 2130706431 192.168.1.3 5000 typ host".into(),
    })
    .unwrap();
    net.detach(3, 300);
    let detached_at = net.now;
    // The endpoint asks to be woken for it, however idle str0m is.
    assert!(net.ep.poll_timeout() <= detached_at + DETACH_GRACE);
    net.run_past(DETACH_GRACE + Duration::from_secs(1));
    assert_eq!(net.ep.participants(), 2);
    assert!(net.saw_leave(1, 3) && net.saw_leave(2, 3));
}

#[test]
fn a_participant_whose_media_never_connects_is_removed() {
    let mut net = Net::new();
    net.join_only(1, "a", 100).unwrap();
    net.join_only(2, "a", 200).unwrap();
    // Both sockets stay open; neither ever sends a datagram.
    let joined = net.now;
    while net.ep.participants() > 0 {
        net.jump_to_next_timeout();
        assert!(net.now <= joined + CONNECT_DEADLINE, "removed on time");
    }
    assert!(net.closed(1).is_some() && net.closed(2).is_some());
    assert_eq!(net.ep.rooms().count(), 0, "the empty room is gone");
}

#[test]
fn a_full_room_of_joins_without_media_makes_way_for_a_newcomer() {
    let mut net = Net::new();
    // Twelve sockets join and never connect media: the room is full.
    for id in 1..=12 {
        net.join_only(id, "squat", id * 100).unwrap();
    }
    assert_eq!(
        net.join_only(13, "squat", 1300).unwrap_err(),
        WorkerError::RoomFull(12)
    );
    // Past the grace, the oldest of them gives way, one per newcomer.
    net.now += SEAT_GRACE;
    net.join_only(13, "squat", 1300).unwrap();
    net.join_only(14, "squat", 1400).unwrap();
    assert_eq!(net.ep.participants(), 12);
    net.step(Duration::from_millis(1));
    assert!(net.closed(1).is_some() && net.closed(2).is_some());
    assert!(net.closed(3).is_none());
}

#[test]
fn a_full_room_of_connected_people_stays_full() {
    let mut net = call_of_two();
    net.run_past(SEAT_GRACE + Duration::from_secs(1));
    assert!(matches!(
        net.command(Command::Join {
            req: join_request(3, "a", 300, 2)
        }),
        Err(WorkerError::RoomFull(2))
    ));
}

#[test]
fn a_drain_moves_everyone_at_its_deadline_and_refuses_new_rooms() {
    let mut net = call_of_two();
    net.command(Command::Drain { deadline_secs: 60 }).unwrap();
    assert_eq!(net.join_only(3, "b", 300), Err(WorkerError::Draining));
    // The running call goes on, and may still grow.
    assert!(net.join_only(4, "a", 400).is_ok());
    let start = net.now;
    net.run_past(Duration::from_secs(59));
    assert_eq!(
        net.ep.participants(),
        2,
        "the connected ones stay until the deadline"
    );
    net.run_past(Duration::from_secs(2));
    assert!(net.now >= start + Duration::from_secs(60));
    assert_eq!(net.ep.participants(), 0);
    assert_eq!(net.closed(1), Some("this media server is shutting down"));
    assert_eq!(net.closed(2), Some("this media server is shutting down"));
}

#[test]
fn a_drain_with_a_huge_deadline_never_overflows() {
    let mut net = call_of_two();
    net.command(Command::Drain {
        deadline_secs: u64::MAX,
    })
    .unwrap();
    assert!(net.ep.is_draining());
    net.run_past(Duration::from_secs(5));
    assert_eq!(net.ep.participants(), 2, "nobody is moved");
}

#[test]
fn a_leaver_is_gone_for_the_others_and_an_empty_room_is_removed() {
    let mut net = Net::new();
    net.join(1, "a");
    net.join(2, "a");
    assert_eq!(net.join(3, "a").len(), 2);
    net.run(Duration::from_millis(1500));
    net.command(Command::Leave { participant: 3 }).unwrap();
    net.clients.retain(|c| c.id != 3);
    net.run(Duration::from_millis(50));
    assert!(net.saw_leave(1, 3) && net.saw_leave(2, 3));
    assert!(
        net.closed(3).is_none(),
        "a leaver is not told it lost media"
    );
    assert_eq!(net.ep.participants(), 2);
    for id in [1, 2] {
        net.command(Command::Leave { participant: id }).unwrap();
    }
    assert_eq!(net.ep.rooms().count(), 0);
    assert_eq!(
        net.command(Command::Leave { participant: 1 }),
        Ok(Reply::Done),
        "a second leave is harmless"
    );
}

#[test]
fn two_rooms_never_see_each_others_packets_or_people() {
    let mut net = Net::new();
    net.join(1, "a");
    net.join(2, "a");
    assert!(net.join(3, "b").is_empty(), "room b starts empty");
    net.join(4, "b");
    net.run(Duration::from_millis(1500));
    net.everyone_sends(5);
    net.run(Duration::from_millis(100));
    assert_eq!((net.received(2, 1, 5), net.received(4, 3, 5)), (1, 1));
    for (by, from) in [(3, 1), (4, 1), (4, 2), (1, 3), (2, 3), (2, 4)] {
        assert_eq!(net.received(by, from, 5), 0, "{by} got {from}'s packet");
    }
    let told_of = |who: ParticipantId| -> Vec<ParticipantId> {
        net.events
            .iter()
            .filter_map(|(to, e)| match e {
                PeerEvent::ParticipantJoined { participant } if participant.id == who => Some(*to),
                _ => None,
            })
            .collect()
    };
    assert_eq!(told_of(2), vec![1]);
    assert_eq!(told_of(4), vec![3], "only room b hears of 4");
}

#[test]
fn an_address_a_nat_hands_to_a_newcomer_follows_the_newcomer() {
    let mut net = call_of_two();
    // Participant 1 moves to another public address; its NAT then hands
    // the old one to participant 3, who calls someone else.
    let old = net.public[&1];
    net.public.insert(1, "203.0.113.50:7000".parse().unwrap());
    net.run_past(REBINDING_SETTLES);
    net.join(3, "b");
    net.public.insert(3, old);
    net.join(4, "b");
    net.run(Duration::from_millis(1500));
    assert!(
        net.client(3).connected,
        "the newcomer connects from the reused address"
    );
    net.everyone_sends(6);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(4, 3, 6), 1, "the newcomer's media is its own");
    assert_eq!(net.received(3, 4, 6), 1, "and reaches it");
    assert_eq!((net.received(2, 1, 6), net.received(1, 2, 6)), (1, 1));
    assert_eq!(net.received(2, 3, 6), 0, "nothing of 3 lands in 1's call");
}

/// A binding request authenticated with one participant's own credentials
/// but sent from another's address (a spoofed source) does not take that
/// address, and its media, from a live call: four a second used to cost
/// the victim's meeting 62.5 % of its packets.
#[test]
fn a_spoofed_binding_request_does_not_take_a_live_participants_address() {
    let mut net = call_of_two();
    net.join(3, "b");
    net.run(Duration::from_millis(1500));
    assert!(net.client(3).connected);
    // The attacker's own client, driven by hand from now on: its binding
    // requests (its credentials) leave from participant 1's address.
    let index = net.clients.iter().position(|c| c.id == 3).unwrap();
    let mut attacker = net.clients.remove(index);
    let victim = net.public[&1];
    let mut spoofed = 0;
    for round in 0..40 {
        net.run(Duration::from_millis(250));
        let now = net.now;
        for t in attacker.poll(now) {
            if super::demux::is_stun(&t.contents) {
                spoofed += 1;
                net.ep
                    .handle_datagram(now, Protocol::Udp, victim, &t.contents);
            }
        }
        net.everyone_sends(20 + round);
    }
    assert!(spoofed >= 3, "{spoofed} requests spoofed");
    net.run(Duration::from_millis(100));
    let lost = (20..60).filter(|tag| net.received(2, 1, *tag) == 0).count();
    assert_eq!(lost, 0, "the victim's packets lost: {lost} of 40");
}

/// A participant's own valid binding requests from a new port each time:
/// its ICE agent is given at most `MAX_ICE_SOURCES` addresses, the others'
/// call goes on, and after an ICE restart the participant may move again.
#[test]
fn a_participant_cannot_grow_its_ice_agent_from_thousands_of_ports() {
    let mut net = call_of_two();
    net.join(3, "b");
    net.join(4, "b");
    net.run(Duration::from_millis(1500));
    let request = net.own_binding_request(3);
    let mut taken = 0;
    for port in 0..2000u16 {
        let from = SocketAddr::from(([198, 51, 100, 200], 10_000 + port));
        let now = net.now;
        if net.ep.handle_datagram(now, Protocol::Udp, from, &request) == Delivery::Delivered {
            taken += 1;
        }
        if port % 100 == 0 {
            net.everyone_sends((port / 100) as u8 + 20);
            net.run(Duration::from_millis(20));
        }
    }
    // The attacker's first address was its own: one fewer new one.
    assert!(
        taken < MAX_ICE_SOURCES && MAX_ICE_SOURCES <= 32,
        "{taken} of 2,000 new addresses given to one participant's agent"
    );
    net.run(Duration::from_millis(100));
    let lost = (20..40).filter(|tag| net.received(2, 1, *tag) == 0).count();
    assert_eq!(lost, 0, "the others' packets lost: {lost} of 20");

    // An ICE restart (a network move) starts the count again.
    net.public.insert(3, "198.51.100.201:7000".parse().unwrap());
    net.restart_ice(3);
    net.run(Duration::from_millis(1500));
    net.everyone_sends(60);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(4, 3, 60), 1, "it moves after the restart");
}

/// Addresses taken in one ICE generation and kept alive do not reach the
/// next generation's agent uncounted: each restart would otherwise bring
/// 16 more.
#[test]
fn addresses_kept_across_ice_restarts_are_counted_again() {
    let mut net = call_of_two();
    net.join(3, "b");
    net.join(4, "b");
    net.run(Duration::from_millis(1500));
    let ports = 10_000..10_000 + 2 * MAX_ICE_SOURCES as u16;
    let from = |port: u16| SocketAddr::from(([198, 51, 100, 200], port));
    let mut taken = 0;
    for round in 0..3 {
        if round > 0 {
            net.restart_ice(3);
        }
        // The attacker's own request, with this generation's credentials.
        let request = net.own_binding_request(3);
        taken = 0;
        for port in ports.clone() {
            let now = net.now;
            if net
                .ep
                .handle_datagram(now, Protocol::Udp, from(port), &request)
                == Delivery::Delivered
            {
                taken += 1;
            }
        }
    }
    assert!(
        taken <= MAX_ICE_SOURCES,
        "{taken} addresses reached the third generation's agent"
    );
}

/// Trickled candidates are kept by the agent until the next ICE restart:
/// one generation takes `MAX_TRICKLED`, the rest are refused with a
/// clear error, and the call goes on; a restart takes more again. One
/// address with a new related port each time is a new candidate to str0m,
/// and counts as one.
#[test]
fn trickled_candidates_are_bounded_per_ice_generation() {
    let mut net = call_of_two();
    let candidate = |i: u32| Command::Candidate {
        participant: 1,
        // One address: str0m keeps each apart by its related address.
        candidate: format!(
            "candidate:{i} 1 udp 1677729535 203.0.113.9 5000 typ srflx raddr 10.0.0.1 rport {}",
            1000 + i
        ),
    };
    // The client's offer listed its own candidates: they count too.
    let replies: Vec<_> = (0..MAX_TRICKLED as u32 + 10)
        .map(|i| net.command(candidate(i)))
        .collect();
    let taken = replies.iter().take_while(|r| r.is_ok()).count();
    assert!(
        (MAX_TRICKLED - 4..MAX_TRICKLED).contains(&taken),
        "{taken} taken, then {:?}",
        replies[taken]
    );
    for refused in &replies[taken..] {
        assert!(
            matches!(refused, Err(WorkerError::InvalidCandidate(why)) if why.contains("ICE generation")),
            "{refused:?}"
        );
    }
    net.everyone_sends(7);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(2, 1, 7), 1, "the call goes on");
    net.restart_ice(1);
    net.command(candidate(10_000)).expect("a new generation");
}

#[test]
fn huge_offers_and_offer_floods_are_refused() {
    let mut net = call_of_two();
    let mut huge = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for i in 0..2000 {
        huge.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\na=sendonly\r\n"
        ));
    }
    // Answers are bounded the same way, whatever offer they claim to answer.
    let stale = Command::Answer {
        participant: 1,
        offer: 999,
        sdp: huge.clone(),
    };
    assert!(matches!(
        net.command(stale),
        Err(WorkerError::InvalidSdp(_))
    ));
    match net.offer(1, huge) {
        Err(WorkerError::InvalidSdp(e)) => {
            assert!(e.contains(&MAX_MEDIA_SECTIONS.to_string()), "{e}")
        }
        other => panic!("accepted: {other:?}"),
    }
    // A client needs a first offer and the odd ICE restart; a stream of
    // offers is cut off, and the call still works.
    let mut refused = 0;
    for _ in 0..10 {
        let offer = net.client(2).ice_restart();
        match net.offer(2, offer) {
            Ok(answer) => net.client(2).accept_answer(&answer),
            Err(WorkerError::TooManyOffers) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 6, "refused {refused} of 10");
    net.run(Duration::from_millis(1500));
    net.everyone_sends(7);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(1, 2, 7), 1);
}

/// A participant's real answers are never refused, however fast the
/// server's offers come (a meeting's start: six joins within a second);
/// a refused one would leave its offer in flight and the participant
/// without every later newcomer. (The network panics on a refused answer.)
#[test]
fn real_answers_are_never_refused_however_fast_the_offers_come() {
    let mut net = Net::new();
    net.join(1, "a");
    net.run(Duration::from_millis(1500));
    let before = net.client(1).incoming.len();
    for id in 2..=7 {
        net.join(id, "a");
        net.run(Duration::from_millis(100));
    }
    net.run(Duration::from_millis(1500));
    let added = net.client(1).incoming.len() - before;
    assert_eq!(added, 12, "a microphone and a camera for each of six");
}

/// Answers are matched to the server offer in flight before they are read
/// (reading a 258 KB one took 16 ms of the media thread), and garbage for
/// the right offer is bounded as offers are.
#[test]
fn answers_are_matched_to_the_offer_in_flight_before_they_are_read() {
    let mut net = Net::new();
    net.join(1, "a");
    net.run(Duration::from_millis(1500));
    let garbage = format!("v=0\r\n{}", "a=x-filler:0123456789abcdef\r\n".repeat(8_000));
    let answer = |offer: u32, sdp: &str| Command::Answer {
        participant: 1,
        offer,
        sdp: sdp.to_string(),
    };
    // No offer in flight: not read, so not even refused as garbage.
    for offer in [0, 1, 999] {
        assert_eq!(net.command(answer(offer, &garbage)), Ok(Reply::Done));
    }
    // A newcomer: participant 1 gets a server offer, held here (its client
    // set aside, so that the network does not answer it).
    let index = net.clients.iter().position(|c| c.id == 1).unwrap();
    let mut first = net.clients.remove(index);
    net.join(2, "a");
    net.run(Duration::from_millis(500));
    let (id, sdp) = net
        .events
        .iter()
        .find_map(|(to, e)| match e {
            PeerEvent::Offer { id, sdp } if *to == 1 => Some((*id, sdp.clone())),
            _ => None,
        })
        .expect("an offer for participant 1");
    assert_eq!(net.command(answer(id + 1, &garbage)), Ok(Reply::Done));
    let mut refusals = Vec::new();
    for _ in 0..6 {
        refusals.push(net.command(answer(id, &garbage)).unwrap_err());
    }
    assert!(matches!(refusals[0], WorkerError::InvalidSdp(_)));
    assert_eq!(refusals[5], WorkerError::TooManyOffers, "{refusals:?}");
    // The real answer, once the bound allows one again, still opens the
    // newcomer's video.
    let real = first.answer(&sdp);
    net.clients.push(first);
    net.run(Duration::from_secs(2));
    assert_eq!(net.command(answer(id, &real)), Ok(Reply::Done));
    net.run(Duration::from_millis(1500));
    net.everyone_sends(8);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(1, 2, 8), 1);
}

/// The events `id` got, in order, from the last `step` on.
fn events_of(net: &Net, id: ParticipantId) -> Vec<PeerEvent> {
    net.events
        .iter()
        .filter(|(to, _)| *to == id)
        .map(|(_, e)| e.clone())
        .collect()
}

#[test]
fn a_moderator_lets_in_refuses_and_removes() {
    let mut net = Net::new();
    net.join(1, "a");
    net.join(2, "a");
    net.step(STEP);
    // The first in moderates; the second does not.
    let settings = |moderator, locked, lobby| PeerEvent::RoomSettings {
        moderator,
        locked,
        lobby,
    };
    assert!(events_of(&net, 1).contains(&settings(true, false, false)));
    assert!(events_of(&net, 2).contains(&settings(false, false, false)));
    let lobby_on = |p| Command::SetLobby {
        participant: p,
        on: true,
    };
    assert_eq!(net.command(lobby_on(2)), Err(WorkerError::NotModerator));
    net.command(lobby_on(1)).expect("lobby on");
    let locked = Command::SetPassword {
        participant: 1,
        password: Some("tulipe".into()),
    };
    net.command(locked).expect("locked");

    // Without the password, no knock; with it, a knock the moderator sees.
    let mut knock = join_request(3, "a", 300, 12);
    let join = |req: &JoinRequest| Command::Join { req: req.clone() };
    assert_eq!(
        net.command(join(&knock)),
        Err(WorkerError::PasswordRequired)
    );
    knock.password = Some("tulipe".into());
    assert_eq!(net.command(join(&knock)), Ok(Reply::Knocking));
    let mut other = join_request(4, "a", 400, 12);
    other.password = Some("tulipe".into());
    assert_eq!(net.command(join(&other)), Ok(Reply::Knocking));
    net.events.clear();
    net.step(STEP);
    let knocking = |id| PeerEvent::Knocking {
        id,
        name: format!("p{id}"),
    };
    assert_eq!(
        events_of(&net, 1)
            .into_iter()
            .filter(|e| matches!(e, PeerEvent::Knocking { .. }))
            .collect::<Vec<_>>(),
        vec![knocking(3), knocking(4)]
    );
    assert!(
        !events_of(&net, 2).contains(&knocking(3)),
        "not a moderator"
    );

    // Let in: told first, before what its entry causes; the others see it.
    let admit = |knocker, admit| Command::Admit {
        participant: 1,
        knocker,
        admit,
    };
    net.events.clear();
    net.command(admit(3, true)).expect("admitted");
    net.step(STEP);
    let got = events_of(&net, 3);
    assert!(
        matches!(&got[0], PeerEvent::Admitted { others } if others.len() == 2),
        "{got:?}"
    );
    assert!(events_of(&net, 1).contains(&PeerEvent::KnockEnded { id: 3 }));
    assert!(events_of(&net, 2)
        .iter()
        .any(|e| matches!(e, PeerEvent::ParticipantJoined { participant } if participant.id == 3)));
    // Refused: told so, and gone from the lobby.
    net.events.clear();
    net.command(admit(4, false)).expect("refused");
    net.step(STEP);
    assert!(matches!(
        events_of(&net, 4)[..],
        [PeerEvent::Refused { .. }]
    ));
    assert_eq!(net.command(admit(4, true)), Err(WorkerError::NoSuchPerson));

    // Removed: told so (not "media lost", which would rejoin), the others
    // see it leave, and its old token does not bring it back past the door.
    net.events.clear();
    let remove = Command::Remove {
        participant: 1,
        target: 2,
    };
    net.command(remove).expect("removed");
    net.step(STEP);
    assert_eq!(events_of(&net, 2), vec![PeerEvent::Removed]);
    assert!(net.saw_leave(1, 2));
    let mut back = join_request(12, "a", 1200, 12);
    back.rejoin = Some("token-2".into());
    assert_eq!(net.command(join(&back)), Err(WorkerError::PasswordRequired));
}

/// A moderator asks one or everyone to mute, makes another a moderator,
/// and ends the call for everyone; nobody else may.
#[test]
fn a_moderator_mutes_hands_the_role_on_and_ends_the_call() {
    use crate::worker::ModeratorAction as Do;
    let mut net = Net::new();
    for id in 1..=3 {
        net.join(id, "a");
    }
    net.step(STEP);
    let by = |participant, action| Command::Moderate {
        participant,
        action,
    };
    // Someone who does not moderate may do none of it.
    for action in [
        Do::Mute { target: 1 },
        Do::MuteAll,
        Do::MakeModerator { target: 2 },
        Do::EndCall,
    ] {
        assert_eq!(
            net.command(by(2, action)),
            Err(WorkerError::NotModerator),
            "{action:?}"
        );
    }
    // One is asked to mute; then everyone but the moderator.
    net.events.clear();
    net.command(by(1, Do::Mute { target: 2 })).expect("muted");
    net.step(STEP);
    let muted = |net: &Net, id| events_of(net, id).contains(&PeerEvent::Muted);
    assert!(muted(&net, 2));
    assert!(!muted(&net, 3));
    assert_eq!(
        net.command(by(1, Do::Mute { target: 9 })),
        Err(WorkerError::NoSuchPerson)
    );
    net.events.clear();
    net.command(by(1, Do::MuteAll)).expect("all muted");
    net.step(STEP);
    assert!(muted(&net, 2) && muted(&net, 3));
    assert!(!muted(&net, 1), "not the moderator itself");
    assert_eq!(
        net.command(by(1, Do::MakeModerator { target: 1 })),
        Err(WorkerError::NoSuchPerson),
        "not oneself"
    );
    // Ben made a moderator: told so, and now may act.
    net.events.clear();
    net.command(by(1, Do::MakeModerator { target: 2 }))
        .expect("promoted");
    net.step(STEP);
    assert!(events_of(&net, 2).contains(&PeerEvent::RoomSettings {
        moderator: true,
        locked: false,
        lobby: false,
    }));
    // Ben ends the call: everyone is told and out, whoever knocks is
    // turned away, and the room is gone.
    net.command(Command::SetLobby {
        participant: 2,
        on: true,
    })
    .expect("lobby on");
    let knock = join_request(4, "a", 400, 12);
    assert_eq!(
        net.command(Command::Join { req: knock }),
        Ok(Reply::Knocking)
    );
    net.events.clear();
    net.command(by(2, Do::EndCall)).expect("ended");
    net.step(STEP);
    for id in 1..=3 {
        assert!(events_of(&net, id).contains(&PeerEvent::CallEnded), "{id}");
    }
    assert!(matches!(
        events_of(&net, 4)[..],
        [PeerEvent::Refused { .. }]
    ));
    assert_eq!(
        net.command(by(1, Do::MuteAll)),
        Err(WorkerError::UnknownParticipant)
    );
    assert_eq!(net.ep.rooms().count(), 0, "the room is gone");
}

#[test]
fn a_knock_ends_with_its_socket_or_with_the_call() {
    let mut net = Net::new();
    net.join(1, "a");
    let lobby_on = Command::SetLobby {
        participant: 1,
        on: true,
    };
    net.command(lobby_on).expect("lobby on");
    for id in [2, 3] {
        let req = join_request(id, "a", id * 100, 12);
        assert_eq!(net.command(Command::Join { req }), Ok(Reply::Knocking));
    }
    // A knocker whose signalling went away leaves the lobby.
    net.detach(2, 200);
    net.events.clear();
    net.step(STEP);
    assert!(events_of(&net, 1).contains(&PeerEvent::KnockEnded { id: 2 }));
    // The last one in leaves: nobody can let 3 in any more.
    net.command(Command::Leave { participant: 1 })
        .expect("left");
    net.step(STEP);
    assert!(matches!(
        events_of(&net, 3)[..],
        [PeerEvent::Refused { .. }]
    ));
    // The room is gone: 3 may start it anew, as its moderator.
    let req = join_request(3, "a", 301, 12);
    assert!(matches!(
        net.command(Command::Join { req }),
        Ok(Reply::Joined { .. })
    ));
}

/// Rooms as the worker reports them: name, participants, door (what the
/// moderators set; the keys of who may come back are tested apart).
fn reported(net: &Net) -> Vec<(String, usize, Option<DoorSettings>)> {
    net.ep
        .rooms()
        .map(|r| {
            let door = r.door.map(|d| DoorSettings {
                returning: Vec::new(),
                ..d
            });
            (r.room, r.participants, door.filter(|d| !d.is_open()))
        })
        .collect()
}

#[test]
fn a_room_made_anew_after_its_worker_was_lost_keeps_its_door() {
    let mut net = Net::new();
    let kept = DoorSettings {
        password: Some("digest".into()),
        lobby: true,
        ..Default::default()
    };
    let behind = |id: ParticipantId, vouched: Option<Vouched>| {
        let mut req = join_request(id, "a", id * 100, 12);
        req.door = Some(kept.clone());
        req.vouched = vouched;
        Command::Join { req }
    };
    // A stranger first: no password, no room; with it, a knock that makes
    // the room, with nobody to let it in yet.
    assert_eq!(
        net.command(behind(3, None)),
        Err(WorkerError::PasswordRequired)
    );
    assert!(reported(&net).is_empty(), "a refusal makes no room");
    let Command::Join { req: mut knock } = behind(3, None) else {
        unreachable!()
    };
    knock.password = Some("digest".into());
    assert_eq!(
        net.command(Command::Join { req: knock }),
        Ok(Reply::Knocking)
    );
    // Reported shut at once: kept by the cluster as it was.
    assert_eq!(reported(&net), [("a".into(), 0, Some(kept.clone()))]);
    // Someone who was in comes back without either, and moderates.
    assert!(matches!(
        net.command(behind(2, Some(Vouched::Member))),
        Ok(Reply::Joined { .. })
    ));
    net.step(STEP);
    assert!(events_of(&net, 2).contains(&PeerEvent::RoomSettings {
        moderator: true,
        locked: true,
        lobby: true,
    }));
    net.command(Command::Admit {
        participant: 2,
        knocker: 3,
        admit: true,
    })
    .expect("let in");
    assert_eq!(reported(&net), [("a".into(), 2, Some(kept.clone()))]);
    // Unlocked and opened: reported open.
    for cmd in [
        Command::SetPassword {
            participant: 2,
            password: None,
        },
        Command::SetLobby {
            participant: 2,
            on: false,
        },
    ] {
        net.command(cmd).expect("opened");
    }
    assert_eq!(reported(&net), [("a".into(), 2, None)]);
}

#[test]
fn a_room_made_anew_that_nobody_comes_back_to_is_given_up() {
    let mut net = Net::new();
    // A room made anew by a knock that nobody answers goes with the knock.
    let lobby = DoorSettings {
        password: None,
        lobby: true,
        ..Default::default()
    };
    let mut lone = join_request(4, "b", 400, 12);
    lone.door = Some(lobby.clone());
    assert_eq!(
        net.command(Command::Join { req: lone }),
        Ok(Reply::Knocking)
    );
    net.detach(4, 400);
    assert!(reported(&net).is_empty());
    // One that waits is told, once those who were in had their time, that
    // nobody is there to let it in; the room goes, and the next one in
    // starts it anew, open, as its moderator.
    // (The same room: one that nobody entered did not end.)
    let mut waits = join_request(5, "b", 500, 12);
    waits.door = Some(lobby);
    assert_eq!(
        net.command(Command::Join { req: waits }),
        Ok(Reply::Knocking)
    );
    net.events.clear();
    // (past the housekeeping that notices it, every 250 ms)
    net.run_in_steps(
        RETURN_WINDOW + Duration::from_millis(300),
        Duration::from_millis(10),
    );
    assert!(matches!(
        events_of(&net, 5)[..],
        [PeerEvent::Refused { .. }]
    ));
    assert!(reported(&net).is_empty());
    // Too late to be vouched for: a room of that name now is a new room.
    let mut late = join_request(6, "b", 600, 12);
    late.vouched = Some(Vouched::Moderator);
    assert!(matches!(
        net.command(Command::Join { req: late }),
        Ok(Reply::Joined { .. })
    ));
}

#[test]
fn a_room_that_ended_here_starts_anew_open() {
    let mut net = Net::new();
    net.join_only(1, "a", 100).expect("joined");
    let locked = Command::SetPassword {
        participant: 1,
        password: Some("digest".into()),
    };
    net.command(locked).expect("locked");
    // Its one participant leaves (or loses its media): the room ends, and
    // the cluster still holds its door for a while.
    net.command(Command::Leave { participant: 1 })
        .expect("left");
    let kept = DoorSettings {
        password: Some("digest".into()),
        lobby: false,
        ..Default::default()
    };
    let mut back = join_request(2, "a", 200, 12);
    back.door = Some(kept.clone());
    assert!(
        matches!(
            net.command(Command::Join { req: back }),
            Ok(Reply::Joined { .. })
        ),
        "a room that ended here is a new room"
    );
    net.step(STEP);
    assert!(events_of(&net, 2).contains(&PeerEvent::RoomSettings {
        moderator: true,
        locked: false,
        lobby: false,
    }));
    // Remembered only as long as the cluster may keep its door.
    net.command(Command::Leave { participant: 2 })
        .expect("left");
    net.run_in_steps(
        ENDED_REMEMBERED + Duration::from_millis(300),
        Duration::from_millis(50),
    );
    let mut later = join_request(3, "a", 300, 12);
    later.door = Some(kept);
    assert_eq!(
        net.command(Command::Join { req: later }),
        Err(WorkerError::PasswordRequired)
    );
}

#[test]
fn turning_the_lobby_off_lets_in_whoever_waits() {
    let mut net = Net::new();
    net.join(1, "a");
    let lobby = |on| Command::SetLobby { participant: 1, on };
    net.command(lobby(true)).expect("lobby on");
    let req = join_request(2, "a", 200, 12);
    assert_eq!(net.command(Command::Join { req }), Ok(Reply::Knocking));
    net.events.clear();
    net.command(lobby(false)).expect("lobby off");
    net.step(STEP);
    assert!(matches!(
        events_of(&net, 2).first(),
        Some(PeerEvent::Admitted { others }) if others.len() == 1
    ));
}

#[test]
fn who_lost_its_media_in_a_locked_room_comes_back_without_knocking() {
    let mut net = call_of_two();
    for cmd in [
        Command::SetLobby {
            participant: 1,
            on: true,
        },
        Command::SetPassword {
            participant: 1,
            password: Some("tulipe".into()),
        },
    ] {
        net.command(cmd).expect("the door closed");
    }
    // 2 moves into a network that lets nothing through: its media is
    // lost, and its page joins again showing the token it had.
    net.blocked.insert(2);
    net.restart_ice(2);
    net.run_past(DISCONNECT_GRACE / 2);
    net.run_past(DISCONNECT_GRACE);
    assert_eq!(net.closed(2), Some("media connection lost"));
    let mut again = join_request(12, "a", 1200, 12);
    again.rejoin = Some("token-2".into());
    assert!(matches!(
        net.command(Command::Join { req: again }),
        Ok(Reply::Joined { .. })
    ));
    // Once: the same token does not bring in someone else.
    let mut other = join_request(13, "a", 1300, 12);
    other.rejoin = Some("token-2".into());
    assert_eq!(
        net.command(Command::Join { req: other }),
        Err(WorkerError::PasswordRequired)
    );
}

/// Garbage from a participant's own address is not stopped by the
/// demultiplexer: it reaches that participant's str0m connection, which
/// must drop it without ending the call (`tests/bad_input.rs` throws
/// garbage from a stranger's address, which ends at the demultiplexer).
#[test]
fn garbage_from_a_participants_own_address_reaches_str0m_and_the_call_goes_on() {
    use rand::{Rng, SeedableRng};
    let mut net = call_of_two();
    let mut rng = rand::rngs::StdRng::seed_from_u64(24);
    let from = public_addr(1);
    let mut reached = 0;
    for i in 0..20_000u32 {
        let len = rng.gen_range(0..1400);
        let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        match i % 4 {
            // RTP/RTCP-shaped (version 2), with random payload types.
            0 | 1 if !d.is_empty() => d[0] = 0x80 | (d[0] & 0x3f),
            // DTLS-shaped (content types 20..63).
            2 if !d.is_empty() => d[0] = 20 + d[0] % 44,
            _ => {}
        }
        if net.ep.handle_datagram(net.now, Protocol::Udp, from, &d) != Delivery::Unknown {
            reached += 1;
        }
        if i % 1000 == 0 {
            net.run(Duration::from_millis(1));
        }
    }
    assert!(reached >= 15_000, "only {reached} reached the connection");
    net.run(Duration::from_millis(500));
    net.everyone_sends(9);
    net.run(Duration::from_millis(100));
    assert_eq!(net.received(2, 1, 9), 1, "1's media still reaches 2");
    assert_eq!(net.received(1, 2, 9), 1, "and 2's reaches 1");
    assert_eq!(net.ep.participants(), 2);
}
