//! Refusals said for people: a worker's or the placement's error becomes
//! an error frame with a stable code and a sentence, without what only
//! the server should see (a parser's text, internal errors: those go to
//! the log).

use super::grant::GrantError;
use super::partner::Partner;
use super::protocol::{ErrorCode, ServerMessage};
use super::room_token::TokenError;
use super::PlaceError;
use crate::cluster::admission::Refusal;
use crate::worker::WorkerError;

/// A worker's refusal, said to the client without what only the server
/// should see: a parser's text (an SDP error once showed a heap address)
/// and internal errors go to the log, the client gets a fixed sentence.
pub fn worker_error(e: WorkerError) -> ServerMessage {
    let (code, message) = match &e {
        WorkerError::InvalidSdp(_) => (ErrorCode::InvalidSdp, "the SDP could not be read".into()),
        WorkerError::InvalidCandidate(_) => (
            ErrorCode::InvalidCandidate,
            "the ICE candidate could not be read".into(),
        ),
        WorkerError::Internal(_) => (
            ErrorCode::Unavailable,
            "the media server could not do this; please try again".into(),
        ),
        WorkerError::TooManyOffers => (ErrorCode::RateLimited, e.to_string()),
        WorkerError::UnknownParticipant => (ErrorCode::MediaLost, e.to_string()),
        WorkerError::AlreadyJoined => (ErrorCode::AlreadyJoined, e.to_string()),
        WorkerError::RoomFull(_) => (ErrorCode::RoomFull, e.to_string()),
        WorkerError::ResumeRefused => (ErrorCode::ResumeFailed, e.to_string()),
        WorkerError::Draining | WorkerError::Unavailable => (ErrorCode::Unavailable, e.to_string()),
        WorkerError::PasswordRequired => (ErrorCode::PasswordRequired, e.to_string()),
        WorkerError::PasswordWrong => (ErrorCode::PasswordWrong, e.to_string()),
        WorkerError::LobbyFull => (ErrorCode::LobbyFull, e.to_string()),
        WorkerError::KnockingTooOften => (ErrorCode::RateLimited, e.to_string()),
        WorkerError::NotModerator => (ErrorCode::NotModerator, e.to_string()),
        WorkerError::NoSuchPerson => (ErrorCode::NoSuchPerson, e.to_string()),
    };
    match &e {
        // A fault of the server's, not the client's: operators must see it.
        WorkerError::Internal(_) => tracing::warn!(error = %e, "worker failed a request"),
        _ => tracing::debug!(error = %e, "refused by the worker"),
    }
    ServerMessage::error(code, message)
}

/// A refused join, said for people: a new room is offered the partners
/// (each with its link for this room).
pub fn place_error(e: PlaceError, partners: &[Partner], room: &str) -> ServerMessage {
    let with_partners = |code, message: &str| ServerMessage::Error {
        code,
        message: message.into(),
        partners: partners.iter().map(|p| p.for_room(room)).collect(),
    };
    match e {
        PlaceError::Refused(Refusal::Busy) => with_partners(
            ErrorCode::Overloaded,
            "all media servers are busy; new calls are refused for now, please try again in a few minutes",
        ),
        PlaceError::Refused(Refusal::Redirected) => with_partners(
            ErrorCode::Redirected,
            "this service is not starting new calls for now; please use a partner service",
        ),
        PlaceError::Refused(Refusal::Full) => ServerMessage::error(
            ErrorCode::ServerFull,
            "this call's media server is full; you can join as soon as it has room",
        ),
        PlaceError::Limited(l) => ServerMessage::error(ErrorCode::RateLimited, l.to_string()),
        other => {
            tracing::warn!("placement failed: {other}");
            ServerMessage::error(ErrorCode::Unavailable, "no media server is available right now")
        }
    }
}

/// A room token refused.
pub fn token_error(e: TokenError) -> ServerMessage {
    let code = match e {
        TokenError::Required => ErrorCode::TokenRequired,
        TokenError::Expired => ErrorCode::TokenExpired,
        TokenError::OtherRoom | TokenError::Invalid => ErrorCode::TokenInvalid,
    };
    ServerMessage::error(code, e.to_string())
}

/// A priority grant refused.
pub fn grant_error(e: GrantError) -> ServerMessage {
    let code = match e {
        GrantError::Expired => ErrorCode::GrantExpired,
        GrantError::OtherRoom | GrantError::Invalid => ErrorCode::GrantInvalid,
    };
    ServerMessage::error(code, e.to_string())
}
