//! A synthetic participant: its orders (room, what it publishes, when),
//! what it brings back, and the counters all participants of a run share.
//! The runner makes them; each target's client (`parloir_client`,
//! `janus_client`, `relay`) plays them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::loss::SendLog;
use crate::media::Stamp;
use crate::stats::Receiver;

#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    joined: AtomicU64,
    /// What every publisher sent, for the loss.
    log: SendLog,
}

impl Counters {
    /// A packet sent by a publisher.
    pub fn sent(&self, s: &Stamp) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.log.record(s);
    }
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    pub fn joined(&self) {
        self.joined.fetch_add(1, Ordering::Relaxed);
    }
    /// Packets sent by every publisher so far.
    pub fn sent_total(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Packets received by every subscriber so far.
    pub fn received_total(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Participants whose media connection was set up.
    pub fn joined_total(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }
    /// What every publisher sent so far (complete once they stopped).
    pub fn take_log(&self) -> crate::loss::SentTracks {
        self.log.take()
    }
}

/// One synthetic participant's orders.
#[derive(Debug, Clone)]
pub struct Participant {
    pub index: u32,
    pub room: String,
    pub publish: bool,
    /// Publishers in this participant's room (itself included if it
    /// publishes).
    pub room_publishers: u32,
    pub audio_only: bool,
    pub fps: u32,
    pub video_bitrate: u32,
    /// Video pacing rate over the bitrate; 0 sends frames in one burst.
    pub pacing: f64,
    pub client_ip: IpAddr,
    pub epoch: Instant,
    pub until: Instant,
    pub measure_from_us: u64,
    /// Its place in its room (publishers first).
    pub position: u32,
    /// Publishers speak in turns of this length, from the measurement's
    /// start (the audio-level header extension: loud in its own turn,
    /// silent otherwise); `None`: no audio level is sent.
    pub speaker_turn: Option<Duration>,
    /// Media over ICE-TCP only.
    pub tcp: bool,
}

impl Participant {
    /// Whether it speaks at `now` (see [`Participant::speaker_turn`]).
    pub fn speaking(&self, now: Instant) -> bool {
        let (Some(turn), true) = (self.speaker_turn, self.publish) else {
            return false;
        };
        let start = self.epoch + Duration::from_micros(self.measure_from_us);
        let Some(since) = now.checked_duration_since(start) else {
            return false;
        };
        let n = (since.as_secs_f64() / turn.as_secs_f64().max(0.001)) as u64;
        n % u64::from(self.room_publishers.max(1)) == u64::from(self.position)
    }
}

#[derive(Debug, Default)]
pub struct ParticipantResult {
    pub rx: Receiver,
    pub srtp_profile: Option<String>,
    /// When its connection was set up (µs since the epoch), if it was: it
    /// is owed no packet sent before.
    pub ready_us: Option<u64>,
}
