//! The signalling protocol: JSON text frames over one WebSocket per
//! participant. Documented in `docs/protocol.md`; keep the two in step.

use serde::{Deserialize, Serialize};

use crate::ids::ParticipantId;
pub use crate::ids::{ParticipantInfo, ParticipantState};
use crate::signal::partner::Partner;
use crate::signal::turn::IceServer;
use crate::worker::LinkQuality;
pub use crate::worker::TileSize;

/// Tiles a `video-sizes` message may list: more than a room holds is not
/// a layout.
pub const MAX_TILES: usize = 100;

/// Longest chat message, in characters: a few paragraphs.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Longest room password, in characters: a phrase, not a file.
pub const MAX_PASSWORD_CHARS: usize = 64;

/// Protocol version spoken by this server. A client sends it in `join`.
pub const VERSION: u32 = 1;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMessage {
    Join {
        v: u32,
        room: String,
        name: String,
        #[serde(default = "yes")]
        audio: bool,
        #[serde(default = "yes")]
        video: bool,
        /// A priority grant from the room's link (`signal::grant`).
        #[serde(default)]
        grant: Option<String>,
        /// A room token from the room's link (`signal::room_token`).
        #[serde(default)]
        jwt: Option<String>,
        /// The password of a locked room.
        #[serde(default)]
        password: Option<String>,
        /// The `token` of the welcome before the media connection was
        /// lost: who was let in comes back without knocking again.
        #[serde(default)]
        rejoin: Option<String>,
        /// The key of the room's owner, kept by the browser that created
        /// it (`room-owner`): it moderates, past any lock.
        #[serde(default)]
        owner: Option<String>,
    },
    /// Takes a session up again after the WebSocket was lost; the media
    /// connection was kept.
    Resume {
        v: u32,
        room: String,
        participant: ParticipantId,
        token: String,
    },
    Offer {
        sdp: String,
        /// The mid of the m-line that carries a screen share, if the offer
        /// has one: the others receive it apart from the camera.
        #[serde(default)]
        screen: Option<String>,
    },
    Answer {
        id: u32,
        sdp: String,
    },
    Candidate {
        candidate: Option<String>,
    },
    /// What the participant sends and shows, told to the others.
    State {
        audio: bool,
        video: bool,
        #[serde(default)]
        screen: bool,
        #[serde(default)]
        hand: bool,
    },
    /// A chat message to everyone in the room.
    Chat {
        text: String,
    },
    /// Whether to receive the others' video ("audio only" when `false`).
    ReceiveVideo {
        on: bool,
    },
    /// The width in device pixels of each tile showing another's video,
    /// sent again when the layout changes.
    VideoSizes {
        tiles: Vec<TileSize>,
    },
    /// A moderator locks the room with a password, or unlocks it (`null`).
    SetPassword {
        password: Option<String>,
    },
    /// A moderator turns the lobby on or off.
    SetLobby {
        on: bool,
    },
    /// A moderator lets in someone waiting in the lobby.
    Admit {
        id: ParticipantId,
    },
    /// A moderator refuses someone waiting in the lobby.
    Refuse {
        id: ParticipantId,
    },
    /// A moderator removes someone from the call.
    Remove {
        id: ParticipantId,
    },
    /// A moderator asks someone to mute (only they can unmute).
    Mute {
        id: ParticipantId,
    },
    /// A moderator asks everyone else to mute.
    MuteAll,
    /// A moderator makes someone a moderator too.
    MakeModerator {
        id: ParticipantId,
    },
    /// A moderator ends the call for everyone.
    EndCall,
    Leave,
    Ping,
}

fn yes() -> bool {
    true
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    Welcome {
        v: u32,
        you: ParticipantId,
        room: String,
        participants: Vec<ParticipantInfo>,
        /// Shown in `resume` to take this session up again.
        token: String,
        /// True when this answers a `resume`: the media connection is the
        /// same, nothing to renegotiate.
        resumed: bool,
        /// TURN servers with credentials for this participant, for its
        /// `RTCPeerConnection` (empty without TURN).
        ice_servers: Vec<IceServer>,
    },
    Answer {
        sdp: String,
    },
    Offer {
        id: u32,
        sdp: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        id: ParticipantId,
    },
    /// Someone's state (microphone, camera, screen, hand) changed.
    State {
        id: ParticipantId,
        #[serde(flatten)]
        state: ParticipantState,
    },
    /// A chat message, to everyone in the room, its sender included (the
    /// echo is the sender's receipt, and all see one order).
    Chat {
        from: ParticipantId,
        name: String,
        text: String,
    },
    /// `id` is the one speaking now.
    Speaker {
        id: ParticipantId,
    },
    /// Whose video the worker forwards to you now (last-N); the others'
    /// cameras are shown as their names.
    Forwarded {
        video: Vec<ParticipantId>,
    },
    /// Send only these simulcast layers (by rid) of your track `mid`:
    /// nobody receives the others.
    Layers {
        mid: String,
        active: Vec<String>,
    },
    /// How well each participant's links carry the call, as the worker
    /// sees them (yours included: a weak uplink or downlink is said so).
    Quality {
        links: Vec<LinkQuality>,
    },
    /// The room's lobby is on: wait until a moderator lets you in (then
    /// `welcome`) or not (an error `lobby-refused`).
    Lobby,
    /// To moderators: `id` waits in the lobby under `name`.
    Knocking {
        id: ParticipantId,
        name: String,
    },
    /// To moderators: `id` no longer waits.
    KnockEnded {
        id: ParticipantId,
    },
    /// You created this room: `key`, shown in a later `join`, makes you
    /// its moderator again (past any lock) while it is yours, a month
    /// after you last came. Keep it; nobody else has it.
    RoomOwner {
        key: String,
    },
    /// A moderator asks you to mute: turn your microphone off; only you
    /// turn it on again.
    Muted,
    /// The room's settings, and whether you moderate it; sent after the
    /// welcome and whenever they change.
    RoomSettings {
        moderator: bool,
        locked: bool,
        lobby: bool,
    },
    Pong,
    Error {
        code: ErrorCode,
        message: String,
        /// Other services to start the call on, when this one refuses a
        /// new room (`overloaded`, `redirected`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        partners: Vec<Partner>,
    },
}

/// Machine-readable error codes. The client chooses what to show by code;
/// the message is a human sentence in English for logs and developers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    BadJson,
    BadMessage,
    TooLarge,
    RateLimited,
    UnsupportedVersion,
    NotJoined,
    AlreadyJoined,
    InvalidRoom,
    InvalidName,
    RoomFull,
    /// A new room refused: every worker is busy.
    Overloaded,
    /// A new room refused: an operator sends new rooms to partners.
    Redirected,
    /// A join refused: the call's worker is above its hard threshold.
    ServerFull,
    GrantExpired,
    GrantInvalid,
    /// This deployment's rooms need an invitation (a room token).
    TokenRequired,
    TokenExpired,
    /// A token forged, for another room, another audience or issuer.
    TokenInvalid,
    /// The room is locked: the join must carry its password.
    PasswordRequired,
    PasswordWrong,
    /// Too many people wait in this room's lobby.
    LobbyFull,
    /// A moderator did not let you in (or nobody was left to).
    LobbyRefused,
    NotModerator,
    /// A moderator's `admit`, `refuse` or `remove` named nobody waiting
    /// or in the call (already gone, or answered by another moderator).
    NoSuchPerson,
    /// A moderator removed you from the call.
    Removed,
    /// A moderator ended the call for everyone.
    CallEnded,
    ResumeFailed,
    InvalidSdp,
    InvalidCandidate,
    MediaLost,
    Unavailable,
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            partners: Vec::new(),
        }
    }
}

/// Parses one client frame. Distinguishes "not JSON" from "JSON, but not a
/// message we know" so the client gets the right code.
pub fn parse(text: &str) -> Result<ClientMessage, ServerMessage> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ServerMessage::error(ErrorCode::BadJson, format!("not valid JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| {
        ServerMessage::error(
            ErrorCode::BadMessage,
            format!("unknown or malformed message: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parses_with_defaults() {
        let m = parse(r#"{"type":"join","v":1,"room":"abc-def","name":"Ana"}"#).unwrap();
        match m {
            ClientMessage::Join { audio, video, .. } => assert!(audio && video),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_are_told_apart() {
        let code = |r: Result<ClientMessage, ServerMessage>| match r {
            Err(ServerMessage::Error { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(parse("{nope")), ErrorCode::BadJson);
        assert_eq!(code(parse(r#"{"type":"dance"}"#)), ErrorCode::BadMessage);
        assert_eq!(code(parse(r#"{"type":"offer"}"#)), ErrorCode::BadMessage);
        assert_eq!(code(parse(r#"[1,2,3]"#)), ErrorCode::BadMessage);
    }

    #[test]
    fn state_is_flat_on_the_wire() {
        let m = ServerMessage::State {
            id: 5,
            state: ParticipantState {
                audio: true,
                video: false,
                screen: true,
                hand: false,
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"type":"state","id":5,"audio":true,"video":false,"screen":true,"hand":false}"#
        );
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), m);
        // An older client sends no screen or hand: they are off.
        match parse(r#"{"type":"state","audio":false,"video":true}"#).unwrap() {
            ClientMessage::State { screen, hand, .. } => assert!(!screen && !hand),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_messages_use_kebab_case_tags() {
        let m = ServerMessage::ParticipantLeft { id: 5 };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"participant-left","id":5}"#
        );
        let e = ServerMessage::error(ErrorCode::RoomFull, "full");
        assert!(serde_json::to_string(&e)
            .unwrap()
            .contains(r#""code":"room-full""#));
    }
}
