//! Identifiers shared by the control plane and the media plane.

use rand::Rng;

/// A participant of a call: one browser tab with one media connection.
///
/// Random, below 2^53 so that JavaScript reads it exactly, and unique
/// across signal servers without coordination.
pub type ParticipantId = u64;

/// A fresh random participant id.
pub fn new_participant_id() -> ParticipantId {
    rand::thread_rng().gen_range(1..(1u64 << 53))
}
