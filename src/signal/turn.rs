//! TURN credentials for clients, by the shared-secret scheme of the "TURN
//! REST API" draft (draft-uberti-behave-turn-rest), which coturn implements
//! as `use-auth-secret`: the username is the credential's expiry (Unix
//! seconds) and a name, the password the base64 HMAC-SHA1 of that username
//! under the secret the TURN server shares. Nothing is stored or sent to
//! the TURN server: it checks each credential by itself, and refuses it
//! once expired.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a credential is valid. A TURN allocation is refreshed with the
/// same credential every few minutes for as long as the call lasts, so an
/// expiry shorter than the longest call would drop its relay.
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// The TURN servers a client may relay through, and their shared secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:` and `turns:` URIs (RFC 7065), e.g.
    /// `turn:turn.example.org:3478?transport=udp`.
    pub uris: Vec<String>,
    pub secret: String,
}

/// One entry of a browser's `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl TurnConfig {
    /// From `--turn-uri` (one URI, or several separated by commas).
    pub fn new(uris: &str, secret: String) -> TurnConfig {
        TurnConfig {
            uris: uris
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
            secret,
        }
    }

    /// A credential for `user`, valid until `now_unix` + [`CREDENTIAL_TTL`].
    pub fn credentials(&self, now_unix: u64, user: &str) -> IceServer {
        let username = format!("{}:{user}", now_unix + CREDENTIAL_TTL.as_secs());
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, self.secret.as_bytes());
        let tag = hmac::sign(&key, username.as_bytes());
        IceServer {
            urls: self.uris.clone(),
            username,
            credential: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
        }
    }
}

/// Whether `uri` is a TURN URI a browser accepts.
pub fn is_turn_uri(uri: &str) -> bool {
    (uri.starts_with("turn:") || uri.starts_with("turns:")) && uri.len() > "turns:".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_hmac_sha1_of_the_username_under_the_secret() {
        let turn = TurnConfig::new("turn:t.example:3478?transport=udp", "north".into());
        let c = turn.credentials(1_700_000_000, "42");
        assert_eq!(c.username, "1700086400:42");
        // Computed apart: python3 -c "import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b'north', b'1700086400:42',
        // hashlib.sha1).digest()).decode())"
        assert_eq!(c.credential, "L2hcb1MC2B5KQuhQpPefyMtMg+A=");
        assert_eq!(c.urls, ["turn:t.example:3478?transport=udp"]);
    }

    #[test]
    fn several_uris_are_separated_by_commas() {
        let turn = TurnConfig::new(
            "turn:a.example:3478?transport=udp, turns:a.example:443?transport=tcp,",
            "s".into(),
        );
        assert_eq!(
            turn.uris,
            [
                "turn:a.example:3478?transport=udp",
                "turns:a.example:443?transport=tcp"
            ]
        );
        assert!(turn.uris.iter().all(|u| is_turn_uri(u)));
        assert!(!is_turn_uri("stun:a.example"));
        assert!(!is_turn_uri("turn:"));
    }
}
