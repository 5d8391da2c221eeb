//! A room driven end to end in memory: real str0m connections on both sides
//! (the "browsers" are str0m clients), DTLS and SRTP included, but no socket
//! and no real time. Datagrams are handed across by the test, and the clock
//! is a variable.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc;

use super::peer::Peer;
use super::room::Room;
use super::stats::Counters;
use super::PeerEvent;
use crate::ids::ParticipantId;

const SERVER: &str = "10.0.0.1:10000";

struct Client {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    events: mpsc::Receiver<PeerEvent>,
    received: Vec<RtpPacket>,
    keyframe_requests: usize,
    /// Mids of the tracks this client publishes (audio, video).
    own: Vec<Mid>,
    /// Mids the server added to send us the others' tracks.
    incoming: Vec<Mid>,
}

impl Client {
    /// Drives the client's clock to `now`; returns what it sends and
    /// records what it received.
    fn poll(&mut self, now: Instant) -> Vec<Transmit> {
        self.rtc.handle_input(Input::Timeout(now)).unwrap();
        let mut to_server = Vec::new();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return to_server,
                Output::Transmit(t) => to_server.push(t),
                Output::Event(Event::RtpPacket(p)) => self.received.push(p),
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(Event::MediaAdded(m)) => self.incoming.push(m.mid),
                Output::Event(_) => {}
            }
        }
    }
}

struct Harness {
    room: Room,
    clients: Vec<Client>,
    now: Instant,
    out: Vec<Transmit>,
    counters: Counters,
}

impl Harness {
    fn new() -> Self {
        Harness {
            room: Room::default(),
            clients: Vec::new(),
            now: Instant::now(),
            out: Vec::new(),
            counters: Counters::default(),
        }
    }

    fn client(&mut self, id: ParticipantId) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| c.id == id)
            .expect("client")
    }

    /// A client joins and makes its first offer (microphone and camera).
    fn join(&mut self, id: ParticipantId) {
        let addr: SocketAddr = format!("10.0.1.{}:5000", id).parse().unwrap();
        let (tx, events) = mpsc::channel(64);
        let info = crate::ids::ParticipantInfo {
            id,
            name: format!("p{id}"),
            audio: true,
            video: true,
        };
        let peer = Peer::new(info, "token".into(), SERVER.parse().unwrap(), tx, self.now).unwrap();
        self.room.add_peer(peer);

        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let peer = self.room.peers.get_mut(&id).unwrap();
        let (answer, rolled_back) = peer.accept_offer(&offer.to_sdp_string()).unwrap();
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        self.room.offer_answered(id, rolled_back);
        self.clients.push(Client {
            id,
            addr,
            rtc,
            events,
            received: Vec::new(),
            keyframe_requests: 0,
            own: vec![a, v],
            incoming: Vec::new(),
        });
        self.room.drain(self.now, &mut self.out, &mut self.counters);
    }

    fn leave(&mut self, id: ParticipantId) {
        self.room.remove_peer(id);
        self.clients.retain(|c| c.id != id);
        self.room.drain(self.now, &mut self.out, &mut self.counters);
    }

    /// Runs the network and the clocks for `dur`, in 1 ms steps, answering
    /// every server offer like a browser would.
    fn run(&mut self, dur: Duration) {
        let end = self.now + dur;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.now;
            // Server offers → client answers.
            for i in 0..self.clients.len() {
                while let Ok(ev) = self.clients[i].events.try_recv() {
                    if let PeerEvent::Offer { id: oid, sdp } = ev {
                        let c = &mut self.clients[i];
                        let offer = str0m::change::SdpOffer::from_sdp_string(&sdp).unwrap();
                        let answer = c.rtc.sdp_api().accept_offer(offer).unwrap();
                        let cid = c.id;
                        let peer = self.room.peers.get_mut(&cid).unwrap();
                        assert!(peer.accept_answer(oid, &answer.to_sdp_string()).unwrap());
                        self.room.server_offer_answered(cid, now);
                        self.room.drain(now, &mut self.out, &mut self.counters);
                    }
                }
            }
            // Clients → server.
            for i in 0..self.clients.len() {
                let c = &mut self.clients[i];
                let to_server = c.poll(now);
                let (id, addr) = (c.id, c.addr);
                for t in to_server {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: addr,
                            destination: t.destination,
                            contents: (&t.contents[..]).try_into().unwrap(),
                        },
                    );
                    self.room
                        .handle_input(id, input, now, &mut self.out, &mut self.counters);
                }
            }
            self.room
                .handle_timeouts(now, &mut self.out, &mut self.counters);
            // Server → clients.
            for t in std::mem::take(&mut self.out) {
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) else {
                    continue;
                };
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: t.source,
                        destination: c.addr,
                        contents: (&t.contents[..]).try_into().unwrap(),
                    },
                );
                c.rtc.handle_input(input).unwrap();
            }
        }
    }

    /// The client sends one VP8 packet on its camera track.
    fn send_video(&mut self, id: ParticipantId, seq: u64, ts: u32, payload: &[u8]) {
        let now = self.now;
        let c = self.client(id);
        let pt = c
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8)
            .unwrap()
            .pt();
        let mid = c.own[1];
        let mut api = c.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("video stream");
        tx.write_rtp(RtpWrite::new(pt, SeqNo::from(seq), ts, now, payload.to_vec()).marker(true));
    }

    fn video_ssrc(&mut self, id: ParticipantId) -> u32 {
        let c = self.client(id);
        let mid = c.own[1];
        *c.rtc
            .direct_api()
            .stream_tx_by_mid(mid, None)
            .unwrap()
            .ssrc()
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
    let c = h.client(1);
    let from_publisher = c.poll(now);
    let source = c.addr;
    for t in from_publisher {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: t.destination,
                contents: (&t.contents[..]).try_into().unwrap(),
            },
        );
        h.room.receive(1, input, now, &mut h.out, &mut h.counters);
    }
    h.out.clear();

    // One datagram at a time: the drain stops at the limit and resumes.
    let mut parts = 0;
    let mut sent = Vec::new();
    loop {
        let more = h.room.drain_until(now, &mut h.out, &mut h.counters, 1);
        sent.append(&mut h.out);
        parts += 1;
        if !more {
            break;
        }
    }
    assert!(parts >= 3, "three subscribers, one part each: {parts}");
    h.out = sent;
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
    assert_eq!(h.counters.packets_out, 3);
}
