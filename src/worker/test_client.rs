//! A browser stand-in for in-memory tests: a full-ICE str0m client that
//! publishes a microphone and a camera, answers server offers, and records
//! what it receives. DTLS and SRTP are real; the network and the clock are
//! whatever the test makes of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::ids::ParticipantId;

pub struct Client {
    pub id: ParticipantId,
    /// Where its datagrams come from (a NAT may change it under it).
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub received: Vec<RtpPacket>,
    pub keyframe_requests: usize,
    /// Mids of the tracks this client publishes (audio, video, and the
    /// screen once shared).
    pub own: Vec<Mid>,
    /// Mids the server added to send us the others' tracks.
    pub incoming: Vec<Mid>,
    pub connected: bool,
    pending: Option<SdpPendingOffer>,
}

impl Client {
    pub fn new(id: ParticipantId, addr: SocketAddr, now: Instant) -> Self {
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Client {
            id,
            addr,
            rtc,
            received: Vec::new(),
            keyframe_requests: 0,
            own: Vec::new(),
            incoming: Vec::new(),
            connected: false,
            pending: None,
        }
    }

    /// The first offer: microphone and camera.
    pub fn offer(&mut self) -> String {
        let mut change = self.rtc.sdp_api();
        let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        self.own = vec![a, v];
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    /// An offer adding a screen share (a third track, video); returns the
    /// offer and the screen's mid.
    pub fn share_screen(&mut self) -> (String, Mid) {
        let mut change = self.rtc.sdp_api();
        let s = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        self.own.push(s);
        self.pending = Some(pending);
        (offer.to_sdp_string(), s)
    }

    /// An offer restarting ICE, as a browser makes after a network change.
    pub fn ice_restart(&mut self) -> String {
        let mut change = self.rtc.sdp_api();
        change.ice_restart(true);
        let (offer, pending) = change.apply().expect("an offer");
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    /// The server's answer to our offer.
    pub fn accept_answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("answer SDP");
        let pending = self.pending.take().expect("an offer in flight");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
    }

    /// Answers a server offer.
    pub fn answer(&mut self, sdp: &str) -> String {
        let offer = SdpOffer::from_sdp_string(sdp).expect("offer SDP");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("offer accepted");
        answer.to_sdp_string()
    }

    /// Drives the client's clock to `now`; returns what it sends and
    /// records what it received.
    pub fn poll(&mut self, now: Instant) -> Vec<Transmit> {
        self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        let mut to_server = Vec::new();
        loop {
            match self.rtc.poll_output().expect("output") {
                Output::Timeout(_) => return to_server,
                Output::Transmit(t) => to_server.push(t),
                Output::Event(Event::RtpPacket(p)) => self.received.push(p),
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(Event::MediaAdded(m)) => self.incoming.push(m.mid),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(_) => {}
            }
        }
    }

    /// A datagram from the server.
    pub fn receive(&mut self, now: Instant, from: SocketAddr, contents: &[u8]) {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.addr,
                contents: contents.try_into().expect("datagram"),
            },
        );
        self.rtc.handle_input(input).expect("input");
    }

    /// Writes one packet on our own track `index` (0 microphone, 1 camera)
    /// in `codec`.
    fn write(&mut self, index: usize, codec: Codec, write: impl FnOnce(Pt) -> RtpWrite) {
        let pt = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .expect("negotiated codec")
            .pt();
        let mut api = self.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(self.own[index], None)
            .expect("own stream");
        tx.write_rtp(write(pt));
    }

    /// Sends one VP8 packet on the camera track.
    pub fn send_video(&mut self, now: Instant, seq: u64, ts: u32, payload: &[u8]) {
        self.send_vp8(1, now, seq, ts, payload);
    }

    /// Sends one VP8 packet on the shared screen (see `share_screen`).
    pub fn send_screen(&mut self, now: Instant, seq: u64, ts: u32, payload: &[u8]) {
        self.send_vp8(2, now, seq, ts, payload);
    }

    fn send_vp8(&mut self, track: usize, now: Instant, seq: u64, ts: u32, payload: &[u8]) {
        self.write(track, Codec::Vp8, |pt| {
            RtpWrite::new(pt, SeqNo::from(seq), ts, now, payload.to_vec()).marker(true)
        });
    }

    /// Sends one Opus packet on the microphone track, `dbov` loud (the
    /// audio-level header extension: 0 is the loudest, −127 silence).
    pub fn send_audio(&mut self, now: Instant, seq: u64, ts: u32, dbov: i8) {
        let ext = ExtensionValues {
            audio_level: Some(dbov),
            voice_activity: Some(dbov > -127),
            ..ExtensionValues::default()
        };
        self.write(0, Codec::Opus, |pt| {
            RtpWrite::new(pt, SeqNo::from(seq), ts, now, vec![0xf8, 0xff, 0xfe]).ext_vals(ext)
        });
    }

    pub fn video_ssrc(&mut self) -> u32 {
        let mid = self.own[1];
        *self
            .rtc
            .direct_api()
            .stream_tx_by_mid(mid, None)
            .expect("video stream")
            .ssrc()
    }

    /// Packets received whose payload is exactly `payload`.
    pub fn got(&self, payload: &[u8]) -> usize {
        self.received
            .iter()
            .filter(|p| *p.payload == *payload)
            .count()
    }
}

/// A fake network of clients and endpoints, stepped on a fake clock.
pub trait FakeNetwork {
    fn now(&self) -> Instant;

    /// One step of the network and the clocks.
    fn step(&mut self, step: Duration);

    /// Runs the network for `dur`, in steps of a millisecond.
    fn run(&mut self, dur: Duration) {
        self.run_in_steps(dur, Duration::from_millis(1));
    }

    /// Runs the network for `dur` in coarse steps (long graces).
    fn run_past(&mut self, dur: Duration) {
        self.run_in_steps(dur, Duration::from_millis(5));
    }

    fn run_in_steps(&mut self, dur: Duration, step: Duration) {
        let end = self.now() + dur;
        while self.now() < end {
            self.step(step);
        }
    }
}

/// Every client sends one video packet carrying `tag` and its id.
pub fn everyone_sends(clients: &mut [Client], now: Instant, tag: u8) {
    for c in clients {
        let payload = [0x10, 0, 0, tag, c.id as u8];
        c.send_video(
            now,
            1000 + u64::from(tag),
            90_000 + u32::from(tag) * 3000,
            &payload,
        );
    }
}

/// How many of `from`'s packets carrying `tag` client `by` received.
pub fn received(clients: &[Client], by: ParticipantId, from: ParticipantId, tag: u8) -> usize {
    let c = clients.iter().find(|c| c.id == by).expect("client");
    c.got(&[0x10, 0, 0, tag, from as u8])
}

/// The client whose NAT's public side is `addr`.
pub fn client_at<'a>(
    clients: &'a mut [Client],
    public: &HashMap<ParticipantId, SocketAddr>,
    addr: SocketAddr,
) -> Option<&'a mut Client> {
    let id = public
        .iter()
        .find(|(_, a)| **a == addr)
        .map(|(id, _)| *id)?;
    clients.iter_mut().find(|c| c.id == id)
}

/// The client of participant `id`.
pub fn find(clients: &mut [Client], id: ParticipantId) -> &mut Client {
    clients.iter_mut().find(|c| c.id == id).expect("client")
}
