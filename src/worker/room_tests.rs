//! A room driven end to end in memory: real str0m connections on both sides
//! (the "browsers" are str0m clients), DTLS and SRTP included, but no socket
//! and no real time. Datagrams are handed across by the test, and the clock
//! is a variable.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use str0m::media::{Direction, KeyframeRequestKind};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::RtpPacket;
use str0m::Input;

use super::peer::{Candidates, Departure, Peer};
use super::room::{Outputs, Room};
use super::test_client::{self, Client};
use super::PeerEvent;
use crate::ids::ParticipantId;

const SERVER: &str = "10.0.0.1:10000";

struct Harness {
    room: Room,
    clients: Vec<Client>,
    now: Instant,
    out: Outputs,
    rng: StdRng,
    /// RTP datagrams still to drop on their way to a client: a lossy link.
    drop_rtp_to: Option<(ParticipantId, usize)>,
    dropped: usize,
    /// Events other than server offers (which the clients answer).
    events: Vec<(ParticipantId, PeerEvent)>,
    /// Server offers, as sent.
    offers: Vec<(ParticipantId, String)>,
}

/// RTP rather than RTCP, DTLS or STUN (RFC 5761, RFC 7983).
fn is_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [first, second, ..] if first >> 6 == 2 && !(192..=223).contains(second))
}

impl Harness {
    fn new() -> Self {
        Harness::with_last_n(9)
    }

    fn with_last_n(last_n: usize) -> Self {
        Harness {
            room: Room::new("room".into(), last_n, Instant::now()),
            clients: Vec::new(),
            now: Instant::now(),
            out: Outputs::default(),
            rng: StdRng::seed_from_u64(1),
            drop_rtp_to: None,
            dropped: 0,
            events: Vec::new(),
            offers: Vec::new(),
        }
    }

    fn client(&mut self, id: ParticipantId) -> &mut Client {
        test_client::find(&mut self.clients, id)
    }

    /// A client joins and makes its first offer (microphone and camera).
    fn join(&mut self, id: ParticipantId) {
        let addr: SocketAddr = format!("10.0.1.{}:5000", id).parse().unwrap();
        let info = crate::ids::ParticipantInfo {
            id,
            name: format!("p{id}"),
            state: crate::ids::ParticipantState::joining(true, true),
        };
        let peer = Peer::new(
            info,
            "token".into(),
            1,
            &super::peer::Local::test(Candidates::on(SERVER.parse().unwrap())),
            &mut self.rng,
            self.now,
        )
        .unwrap();
        self.room.add(peer, (false, None), self.now, &mut self.out);
        let mut client = Client::new(id, addr, self.now);
        let offer = client.offer();
        let answer = self.room.accept_offer(id, &offer, None, self.now).unwrap();
        client.accept_answer(&answer);
        self.clients.push(client);
        self.room.drain(self.now, &mut self.out);
    }

    fn leave(&mut self, id: ParticipantId) {
        self.room
            .remove(id, Departure::Left, self.now, &mut self.out);
        self.clients.retain(|c| c.id != id);
    }

    /// Runs the network and the clocks for `dur`, in 1 ms steps, answering
    /// every server offer like a browser would.
    fn run(&mut self, dur: Duration) {
        let end = self.now + dur;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.now;
            // Server offers → client answers.
            while let Some((to, ev)) = self.out.events.pop_front() {
                let PeerEvent::Offer { id: offer, sdp } = ev else {
                    self.events.push((to, ev));
                    continue;
                };
                self.offers.push((to, sdp.clone()));
                {
                    let Some(c) = self.clients.iter_mut().find(|c| c.id == to) else {
                        continue;
                    };
                    let answer = c.answer(&sdp);
                    self.room
                        .accept_answer(to, offer, &answer, now, &mut self.rng, &mut self.out)
                        .unwrap();
                    self.room.drain(now, &mut self.out);
                }
            }
            // Clients → server.
            for i in 0..self.clients.len() {
                let c = &mut self.clients[i];
                let to_server = c.poll(now);
                let (id, addr) = (c.id, c.addr);
                for t in to_server {
                    self.deliver(id, addr, &t);
                    self.room.drain(now, &mut self.out);
                }
            }
            self.room.handle_timeout(now, &mut self.out);
            // Server → clients.
            for t in std::mem::take(&mut self.out.transmits) {
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) else {
                    continue;
                };
                if let Some((to, left)) = &mut self.drop_rtp_to {
                    if *to == c.id && *left > 0 && is_rtp(&t.contents) {
                        *left -= 1;
                        self.dropped += 1;
                        continue;
                    }
                }
                c.receive(now, t.source, &t.contents);
            }
        }
    }

    /// A datagram from client `id` (at `source`) reaches the room, which
    /// is not drained.
    fn deliver(&mut self, id: ParticipantId, source: SocketAddr, t: &Transmit) {
        let input = Input::Receive(
            self.now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: t.destination,
                contents: (&t.contents[..]).try_into().unwrap(),
            },
        );
        self.room.receive(id, input, self.now, &mut self.out);
    }

    /// Everything client `id` has to send reaches the room, undrained.
    fn deliver_from(&mut self, id: ParticipantId) {
        let now = self.now;
        let c = self.client(id);
        let (sent, source) = (c.poll(now), c.addr);
        for t in sent {
            self.deliver(id, source, &t);
        }
    }

    /// The client sends one VP8 packet on its camera track.
    fn send_video(&mut self, id: ParticipantId, seq: u64, ts: u32, payload: &[u8]) {
        let now = self.now;
        self.client(id).send_video(now, seq, ts, payload);
    }

    fn video_ssrc(&mut self, id: ParticipantId) -> u32 {
        self.client(id).video_ssrc()
    }
}

fn connected_pair() -> Harness {
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    h.run(Duration::from_millis(1500));
    h
}

#[test]
fn a_publishers_packets_reach_the_other_with_their_own_numbering() {
    let mut h = connected_pair();
    // The publisher's sequence numbers wrap 16 bits during the test.
    let start = 65530;
    for i in 0..12u64 {
        let payload = [0x10, 0, 0, i as u8, 0xaa, 0xbb];
        h.send_video(1, start + i, 90_000 + 3000 * i as u32, &payload);
        h.run(Duration::from_millis(5));
    }
    h.run(Duration::from_millis(200));

    let publisher_ssrc = h.video_ssrc(1);
    let got: Vec<&RtpPacket> = h
        .client(2)
        .received
        .iter()
        .filter(|p| p.payload.len() == 6)
        .collect();
    assert_eq!(got.len(), 12, "every packet forwarded once");
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.payload[3], i as u8, "in order, payload untouched");
        assert_ne!(*p.header.ssrc, publisher_ssrc, "the subscriber's own SSRC");
    }
    // Sequence numbers continue through the publisher's wrap, from a start
    // low enough that the SRTP rollover counter is 0.
    let first = *got[0].seq_no;
    assert!(first < 1 << 15);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(*p.seq_no, first + i as u64);
        assert_eq!(
            p.header.timestamp.wrapping_sub(got[0].header.timestamp),
            3000 * i as u32
        );
    }
    // Nothing echoes back to the publisher.
    assert!(h.client(1).received.iter().all(|p| p.payload.len() != 6));
}

#[test]
fn keyframe_requests_reach_the_publisher_throttled() {
    let mut h = connected_pair();
    let before = h.client(1).keyframe_requests;
    // Client 2 asks for a keyframe three times within 100 ms.
    for _ in 0..3 {
        let c = h.client(2);
        for mid in c.incoming.clone() {
            if let Some(rx) = c.rtc.direct_api().stream_rx_by_mid(mid, None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
        h.run(Duration::from_millis(30));
    }
    h.run(Duration::from_millis(100));
    assert_eq!(h.client(1).keyframe_requests - before, 1);
}

#[test]
fn a_leaver_is_removed_from_the_others_connection() {
    let mut h = Harness::new();
    h.join(1);
    h.join(2);
    h.join(3);
    h.run(Duration::from_millis(1500));
    let count = |h: &mut Harness| {
        let c = h.client(1);
        [2u64, 3]
            .iter()
            .map(|p| {
                c.incoming
                    .iter()
                    .filter_map(|mid| c.rtc.media(*mid))
                    .filter(|m| {
                        !m.stopped()
                            && m.direction() != Direction::Inactive
                            && m.stream_id() == p.to_string()
                    })
                    .count()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(count(&mut h), vec![2, 2], "audio and video of both others");
    h.leave(3);
    h.run(Duration::from_millis(200));
    assert_eq!(count(&mut h), vec![2, 0]);
}

#[test]
fn a_fan_out_drained_in_parts_reaches_every_subscriber_once() {
    let mut h = Harness::new();
    for id in 1..=4 {
        h.join(id);
    }
    h.run(Duration::from_millis(1500));
    let payload = [0x10, 0, 0, 7, 0xaa, 0xbb];
    h.send_video(1, 100, 90_000, &payload);

    // The publisher's datagrams reach the room, which holds the copies
    // until it is drained.
    let now = h.now;
    h.deliver_from(1);
    h.out.transmits.clear();

    // One datagram at a time: the drain stops at the limit and resumes.
    let mut parts = 0;
    let mut sent = Vec::new();
    loop {
        let more = h.room.drain_until(now, &mut h.out, 1);
        sent.append(&mut h.out.transmits);
        parts += 1;
        if !more {
            break;
        }
    }
    assert!(parts >= 3, "three subscribers, one part each: {parts}");
    h.out.transmits = sent;
    h.run(Duration::from_millis(50));
    for id in 2..=4 {
        let got = h
            .client(id)
            .received
            .iter()
            .filter(|p| *p.payload == payload)
            .count();
        assert_eq!(got, 1, "subscriber {id}");
    }
    assert_eq!(h.out.counters.packets_out, 3);
}

#[test]
fn a_burst_leaves_in_the_drain_that_received_it() {
    // With estimation on, str0m's pacer releases one packet per timeout
    // (1 µs apart, even for unpaced streams): a keyframe's packets must
    // still leave together, not one per turn of the event loop.
    let mut h = connected_pair();
    for seq in 0..30u64 {
        let payload = [0x10, 0, 0, seq as u8, 0xaa, 0xbb];
        h.send_video(1, 200 + seq, 180_000, &payload);
    }
    let now = h.now;
    h.out.transmits.clear();
    h.deliver_from(1);
    h.room.drain(now, &mut h.out);
    let rtp = h
        .out
        .transmits
        .iter()
        .filter(|t| is_rtp(&t.contents))
        .count();
    assert!(
        rtp >= 30,
        "the burst's copies left in one drain: {rtp} of 30"
    );
}

#[test]
fn packets_lost_on_the_way_to_a_subscriber_are_sent_again_from_the_cache() {
    let mut h = connected_pair();
    for i in 0..8u8 {
        // The link to participant 2 loses packets 2 and 5 of 8.
        if i == 2 || i == 5 {
            h.drop_rtp_to = Some((2, 1));
        }
        let payload = [0x10, 0, 0, 0x40 + i, 0xcc];
        h.send_video(
            1,
            500 + u64::from(i),
            90_000 + 3000 * u32::from(i),
            &payload,
        );
        h.run(Duration::from_millis(20));
    }
    h.run(Duration::from_millis(500));
    assert_eq!(h.dropped, 2, "two packets were lost");
    for i in 0..8u8 {
        let payload = [0x10, 0, 0, 0x40 + i, 0xcc];
        assert_eq!(h.client(2).got(&payload), 1, "packet {i} arrives once");
    }
}

#[test]
fn last_n_forwards_the_videos_of_the_latest_speakers_only() {
    let mut h = Harness::with_last_n(2);
    for id in 1..=4 {
        h.join(id);
    }
    h.run(Duration::from_millis(1500));
    let forwarded = |h: &Harness, to: ParticipantId| {
        h.events.iter().rev().find_map(|(p, e)| match e {
            PeerEvent::Forwarded { video } if *p == to => Some(video.clone()),
            _ => None,
        })
    };
    // Every test payload starts a VP8 keyframe; 4 publishers, 3 others
    // each, but 2 videos per subscriber: 8 copies, not 12.
    let round = |h: &mut Harness, tag: u8| {
        let before = h.out.counters.packets_out;
        for id in 1..=4u64 {
            let payload = [0x10, 0, 0, tag, id as u8];
            h.send_video(id, 100 + u64::from(tag), 3000 * u32::from(tag), &payload);
        }
        h.run(Duration::from_millis(50));
        h.out.counters.packets_out - before
    };
    assert_eq!(round(&mut h, 1), 8);
    // Before anyone speaks, the first to come are shown.
    assert_eq!(forwarded(&h, 4), Some(vec![1, 2]));
    assert_eq!(forwarded(&h, 1), Some(vec![2, 3]));

    // Participant 4 speaks for a second and a half.
    for i in 0..75u32 {
        let now = h.now;
        h.client(4)
            .send_audio(now, 1000 + u64::from(i), 960 * i, -20);
        h.run(Duration::from_millis(20));
    }
    for id in [1, 2, 3] {
        let video = forwarded(&h, id).expect("told");
        assert!(video.contains(&4), "{id} now gets 4's video: {video:?}");
        assert_eq!(video.len(), 2);
    }
    // Still 8 copies, now including 4's video to everyone.
    assert_eq!(round(&mut h, 2), 8);
    for id in [1, 2, 3] {
        assert_eq!(
            h.client(id).got(&[0x10, 0, 0, 2, 4]),
            1,
            "{id} gets 4's video"
        );
    }
}

#[test]
fn audio_only_stops_the_video_and_resumes_it_on_a_keyframe() {
    let mut h = connected_pair();
    let now = h.now;
    h.room.receive_video(2, false, now, &mut h.out);
    h.run(Duration::from_millis(20));
    let told = |h: &Harness| {
        h.events.iter().rev().find_map(|(p, e)| match e {
            PeerEvent::Forwarded { video } if *p == 2 => Some(video.clone()),
            _ => None,
        })
    };
    assert_eq!(told(&h), Some(vec![]), "2 is told it gets no video");
    let first = [0x10, 0, 0, 1, 1];
    h.send_video(1, 10, 3000, &first);
    h.run(Duration::from_millis(100));
    assert_eq!(h.client(2).got(&first), 0, "no video while audio only");

    let now = h.now;
    h.room.receive_video(2, true, now, &mut h.out);
    h.run(Duration::from_millis(20));
    assert_eq!(told(&h), Some(vec![1]));
    let keyframe = [0x10, 0, 0, 2, 1];
    h.send_video(1, 11, 6000, &keyframe);
    h.run(Duration::from_millis(100));
    assert_eq!(
        h.client(2).got(&keyframe),
        1,
        "video again from the next keyframe"
    );
}

#[test]
fn a_shared_screen_reaches_everyone_beside_last_n_in_a_stream_of_its_own() {
    let mut h = Harness::with_last_n(1);
    for id in 1..=3 {
        h.join(id);
    }
    h.run(Duration::from_millis(1500));
    let (offer, mid) = h.client(3).share_screen();
    let answer = h
        .room
        .accept_offer(3, &offer, Some(&mid.to_string()), h.now)
        .unwrap();
    h.client(3).accept_answer(&answer);
    h.room.drain(h.now, &mut h.out);
    h.run(Duration::from_millis(500));
    for id in [1, 2] {
        assert!(
            h.offers
                .iter()
                .any(|(to, sdp)| *to == id && sdp.contains("a=msid:3-screen ")),
            "{id} was offered 3's screen as a stream of its own"
        );
    }
    // Last-N of one: 1 and 2 see each other's camera (first to come), not
    // 3's; the screen comes anyway, and is not counted as a camera.
    let now = h.now;
    h.client(3).send_screen(now, 500, 9000, &[0x10, 0, 0, 7, 3]);
    h.run(Duration::from_millis(50));
    for id in [1, 2] {
        assert_eq!(
            h.client(id).got(&[0x10, 0, 0, 7, 3]),
            1,
            "{id} gets the screen"
        );
        let told = h.events.iter().rev().find_map(|(p, e)| match e {
            PeerEvent::Forwarded { video } if *p == id => Some(video.clone()),
            _ => None,
        });
        assert!(
            !told.unwrap_or_default().contains(&3),
            "{id}: 3's camera stays off"
        );
    }
}

#[test]
fn chat_reaches_everyone_and_states_reach_the_others() {
    let mut h = Harness::new();
    for id in 1..=3 {
        h.join(id);
    }
    h.run(Duration::from_millis(200));
    h.events.clear();
    h.room.chat(2, "Bonjour <b>".into(), &mut h.out);
    let raised = crate::ids::ParticipantState {
        hand: true,
        ..crate::ids::ParticipantState::joining(true, true)
    };
    h.room.set_state(1, raised, &mut h.out);
    // The same state again is no news.
    h.room.set_state(1, raised, &mut h.out);
    h.run(Duration::from_millis(10));
    // Peers are a map: the order of delivery is not theirs to keep.
    let mut chats: Vec<ParticipantId> = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, PeerEvent::Chat { from: 2, name, text } if name == "p2" && text == "Bonjour <b>"))
        .map(|(to, _)| *to)
        .collect();
    chats.sort_unstable();
    assert_eq!(chats, vec![1, 2, 3], "once to each, the sender too");
    let mut states: Vec<ParticipantId> = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, PeerEvent::State { id: 1, state } if state.hand))
        .map(|(to, _)| *to)
        .collect();
    states.sort_unstable();
    assert_eq!(states, vec![2, 3], "once to each other");
    assert!(h.room.others(3).iter().any(|p| p.id == 1 && p.state.hand));
}
