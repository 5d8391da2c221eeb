//! Priority grants: what makes a room a priority room, carried in its link.
//!
//! A grant is a JWT (RFC 7519) signed with HMAC-SHA256 under the grant
//! secret, so that a hospital's own system can mint links with any JWT
//! library (`docs/admission.md` shows the claims):
//!
//! ```json
//! {"aud": "parloir-priority", "room": "chambre-12-a8f3k2", "exp": 1767225600, "iat": 1767139200}
//! ```
//!
//! Only HS256 is accepted (never `alg: none`, never a public-key algorithm
//! with the secret as its key). The expiry is checked against a time passed
//! in, so the rules are tested without a clock.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The audience of a priority grant: a JWT minted for something else (a
/// room token of the same deployment, say) is not a grant.
pub const AUDIENCE: &str = "parloir-priority";
/// Longest validity an operator may give a grant: links are meant for a
/// stay in hospital, not forever.
pub const MAX_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClaims {
    pub aud: String,
    /// The one room the grant is for.
    pub room: String,
    /// Seconds since the Unix epoch after which it is refused.
    pub exp: u64,
    /// When it was minted.
    #[serde(default)]
    pub iat: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the priority link has expired")]
    Expired,
    #[error("the priority link is for another room")]
    OtherRoom,
    #[error("the priority link is not valid")]
    Invalid,
}

/// The secret grants are signed and checked with.
#[derive(Clone)]
pub struct GrantKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

impl GrantKey {
    pub fn new(secret: &[u8]) -> Self {
        GrantKey {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A grant for `room`, valid from `now` (Unix seconds) for `valid_for`.
    pub fn mint(&self, room: &str, now: u64, valid_for: Duration) -> String {
        let claims = GrantClaims {
            aud: AUDIENCE.into(),
            room: room.into(),
            exp: now + valid_for.as_secs(),
            iat: now,
        };
        // Encoding fixed claims with an HMAC key does not fail.
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Whether `token` grants priority to `room` at `now` (Unix seconds).
    pub fn check(&self, token: &str, room: &str, now: u64) -> Result<GrantClaims, GrantError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "aud"]);
        // Checked below against `now`, not the library's clock.
        v.validate_exp = false;
        let claims = decode::<GrantClaims>(token, &self.decoding, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => GrantError::Expired,
                _ => GrantError::Invalid,
            })?
            .claims;
        if claims.exp <= now {
            return Err(GrantError::Expired);
        }
        if claims.room != room {
            return Err(GrantError::OtherRoom);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    const NOW: u64 = 1_800_000_000;
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn key() -> GrantKey {
        GrantKey::new(b"grant secret of the tests")
    }

    #[test]
    fn a_valid_grant_is_for_its_room_until_it_expires() {
        let g = key().mint("chambre-12", NOW, DAY);
        let claims = key().check(&g, "chambre-12", NOW + 3600).unwrap();
        assert_eq!(
            (claims.room.as_str(), claims.exp),
            ("chambre-12", NOW + 86_400)
        );
        assert_eq!(
            key().check(&g, "chambre-12", NOW + 86_400),
            Err(GrantError::Expired)
        );
    }

    #[test]
    fn a_grant_for_another_room_is_refused() {
        let g = key().mint("chambre-12", NOW, DAY);
        assert_eq!(
            key().check(&g, "chambre-13", NOW),
            Err(GrantError::OtherRoom)
        );
    }

    #[test]
    fn forged_grants_are_refused() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = format!(
            r#"{{"aud":"{AUDIENCE}","room":"chambre-12","exp":{}}}"#,
            NOW + 3600
        );
        // Signed with another secret.
        let other = GrantKey::new(b"not the secret").mint("chambre-12", NOW, DAY);
        assert_eq!(
            key().check(&other, "chambre-12", NOW),
            Err(GrantError::Invalid)
        );
        // No signature at all.
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert_eq!(
            key().check(&none, "chambre-12", NOW),
            Err(GrantError::Invalid)
        );
        // A valid grant with its room changed.
        let g = key().mint("chambre-12", NOW, DAY);
        let mut parts: Vec<&str> = g.split('.').collect();
        let changed = b64(&claims.replace("chambre-12", "chambre-99"));
        parts[1] = &changed;
        assert_eq!(
            key().check(&parts.join("."), "chambre-99", NOW),
            Err(GrantError::Invalid)
        );
        // Another audience, and not a JWT.
        let header = Header::new(Algorithm::HS256);
        let token = |claims: &serde_json::Value| {
            encode(
                &header,
                claims,
                &EncodingKey::from_secret(b"grant secret of the tests"),
            )
            .unwrap()
        };
        let other_aud =
            token(&serde_json::json!({"aud":"room-token","room":"chambre-12","exp":NOW + 60}));
        assert_eq!(
            key().check(&other_aud, "chambre-12", NOW),
            Err(GrantError::Invalid)
        );
        let no_exp = token(&serde_json::json!({"aud":AUDIENCE,"room":"chambre-12"}));
        assert_eq!(
            key().check(&no_exp, "chambre-12", NOW),
            Err(GrantError::Invalid)
        );
        assert_eq!(
            key().check("chambre-12", "chambre-12", NOW),
            Err(GrantError::Invalid)
        );
        assert_eq!(key().check("", "chambre-12", NOW), Err(GrantError::Invalid));
    }
}
