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

/// A media endpoint with one participant in one room, as a worker has
/// after a join: what a datagram from the network meets first.
fn endpoint(now: Instant) -> Option<Endpoint> {
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40000);
    let mut ep = Endpoint::new(Local::test(Candidates::on(server)), 7, now);
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    type Target = fn(&[u8]);

    /// Every target, by the name of its folders under `fuzz/`.
    const TARGETS: [(&str, Target); 8] = [
        ("messages", super::messages),
        ("datagrams", super::datagrams),
        ("offer", super::offer),
        ("tcp_frames", super::tcp_frames),
        ("rtp", super::rtp),
        ("tokens", super::tokens),
        ("headers", super::headers),
        ("config", super::config),
    ];

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
