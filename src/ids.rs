//! Identifiers and descriptions shared by the control plane, the media
//! plane and the wire protocols between them.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A participant of a call: one browser tab with one media connection.
///
/// Random, below 2^53 so that JavaScript reads it exactly, and unique
/// across signal servers without coordination.
pub type ParticipantId = u64;

/// A fresh random participant id, drawn from `rng` (the session's: a
/// seeded one in tests).
pub fn new_participant_id(rng: &mut impl Rng) -> ParticipantId {
    rng.gen_range(1..(1u64 << 53))
}

/// One participant as the others see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: String,
    #[serde(flatten)]
    pub state: ParticipantState,
}

/// What a participant shows the others besides its name: what it sends,
/// and whether its hand is raised. Set by the participant alone.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParticipantState {
    /// Its microphone is on.
    pub audio: bool,
    /// Its camera is on.
    pub video: bool,
    /// It shares its screen (a video track of its own, see `docs/protocol.md`).
    #[serde(default)]
    pub screen: bool,
    /// It raised its hand.
    #[serde(default)]
    pub hand: bool,
}

impl ParticipantState {
    /// Microphone and camera as chosen on joining; nothing shared yet.
    pub fn joining(audio: bool, video: bool) -> Self {
        ParticipantState {
            audio,
            video,
            ..Self::default()
        }
    }
}

/// A secret that lets a participant resume its session after losing its
/// signalling connection (128 random bits).
pub fn new_resume_token(rng: &mut impl Rng) -> String {
    rng.sample_iter(&Alphanumeric)
        .take(RESUME_TOKEN_LEN)
        .map(char::from)
        .collect()
}

const RESUME_TOKEN_LEN: usize = 22;

/// Whether `text` could be a resume token: anything else a client sends
/// in its place is not kept.
pub fn is_resume_token(text: &str) -> bool {
    text.len() == RESUME_TOKEN_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())
}
