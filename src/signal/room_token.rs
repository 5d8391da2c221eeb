//! Room tokens: who may enter a room, said by the system that owns the
//! rooms (a hospital's patient portal, an association's site) in a JWT
//! carried by the link (`/r/ROOM#jwt=...`) and sent in `join`.
//!
//! The claims are close to what Jitsi and LiveKit integrations already
//! mint, so a portal that issues links for either issues them for Parloir
//! with a change of audience (`docs/security.md` has the whole format):
//!
//! ```json
//! {"iss": "portail-chu", "aud": "parloir", "room": "chambre-217",
//!  "exp": 1767225600, "name": "Marie Dupont", "role": "moderator"}
//! ```
//!
//! - `room`: the room, or `*` for any room (as Jitsi's).
//! - `exp` is required, `nbf` honoured; 30 s of clock skew are allowed.
//! - `iss` is checked when the deployment names its issuer; `aud` always.
//! - `name`: the display name the person enters with, instead of the one
//!   typed (nobody enters as "Infirmière" on someone else's token). Also
//!   read from Jitsi's `context.user.name`.
//! - `role`: `moderator` or `participant`; Jitsi's
//!   `context.user.moderator: true` is read as `moderator`.
//!
//! Signed with HS256 under a shared secret, or RS256/ES256 under the
//! issuer's private key with its public key here (both may be configured,
//! to move from one to the other). A token's `alg` only chooses among the
//! configured keys, each with its own algorithm: never `alg: none`, never
//! an HMAC made with a public key as its secret. Time is passed in.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The audience a token must name unless the deployment sets another.
pub const DEFAULT_AUDIENCE: &str = "parloir";
/// Clocks of the issuer and of Parloir may differ this much (seconds).
const LEEWAY: u64 = 30;
/// A display name from a token is bounded here, then cleaned as a typed
/// one by the session (control characters, length).
const MAX_NAME_CHARS: usize = 64;

/// What a valid token lets its bearer do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The name to show, when the token gives one.
    pub name: Option<String>,
    pub moderator: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this call needs an invitation link")]
    Required,
    #[error("the invitation has expired")]
    Expired,
    #[error("the invitation is for another call")]
    OtherRoom,
    #[error("the invitation is not valid")]
    Invalid,
}

#[derive(Debug, thiserror::Error)]
#[error("room token key: {0}")]
pub struct TokenKeyError(String);

#[derive(Debug, Deserialize)]
struct Claims {
    room: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    context: Option<Context>,
}

/// Jitsi's `context` claim, the part of it Parloir reads.
#[derive(Debug, Default, Deserialize)]
struct Context {
    #[serde(default)]
    user: Option<ContextUser>,
}

#[derive(Debug, Default, Deserialize)]
struct ContextUser {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    moderator: Option<serde_json::Value>,
}

/// The keys room tokens are checked with, and what tokens must say.
#[derive(Clone)]
pub struct TokenKey {
    /// Each key with the one algorithm it checks.
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<Algorithm> = self.keys.iter().map(|k| k.0).collect();
        write!(f, "TokenKey({algs:?}, ..)")
    }
}

impl TokenKey {
    /// Tokens signed with HS256 under a secret shared with the issuer.
    pub fn shared(secret: &[u8], issuer: Option<String>, audience: String) -> TokenKey {
        TokenKey {
            keys: vec![(Algorithm::HS256, DecodingKey::from_secret(secret))],
            issuer,
            audience,
        }
    }

    /// Tokens signed by the issuer's private key, checked with its public
    /// key in PEM: RSA (RS256) or P-256 (ES256).
    pub fn public(
        pem: &[u8],
        issuer: Option<String>,
        audience: String,
    ) -> Result<TokenKey, TokenKeyError> {
        Ok(TokenKey {
            keys: vec![public_key(pem)?],
            issuer,
            audience,
        })
    }

    /// These tokens, and also those signed by the issuer's private key.
    pub fn and_public(mut self, pem: &[u8]) -> Result<TokenKey, TokenKeyError> {
        self.keys.push(public_key(pem)?);
        Ok(self)
    }

    /// Whether `token` lets its bearer into `room` at `now` (Unix seconds).
    pub fn check(&self, token: &str, room: &str, now: u64) -> Result<Pass, TokenError> {
        let alg = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid)?
            .alg;
        let (alg, key) = self
            .keys
            .iter()
            .find(|k| k.0 == alg)
            .ok_or(TokenError::Invalid)?;
        let mut v = Validation::new(*alg);
        v.set_audience(&[&self.audience]);
        let mut required = vec!["exp", "aud"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        // Checked below against `now`, not the library's clock.
        v.validate_exp = false;
        v.validate_nbf = false;
        let claims = decode::<Claims>(token, key, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.exp.saturating_add(LEEWAY) <= now {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY))
        {
            return Err(TokenError::Invalid);
        }
        if claims.room != room && claims.room != "*" {
            return Err(TokenError::OtherRoom);
        }
        let user = claims.context.and_then(|c| c.user).unwrap_or_default();
        let name = match claims.name.or(user.name) {
            Some(n) => {
                let n = n.trim().to_string();
                if n.is_empty() || n.chars().count() > MAX_NAME_CHARS {
                    return Err(TokenError::Invalid);
                }
                Some(n)
            }
            None => None,
        };
        let jitsi_moderator = matches!(user.moderator, Some(serde_json::Value::Bool(true)))
            || matches!(&user.moderator, Some(serde_json::Value::String(s)) if s == "true");
        let moderator = match claims.role.as_deref() {
            Some("moderator") => true,
            Some("participant") => false,
            Some(_) => return Err(TokenError::Invalid),
            None => jitsi_moderator,
        };
        Ok(Pass { name, moderator })
    }
}

/// A public key in PEM and the algorithm it checks: RSA (RS256) or P-256
/// (ES256).
fn public_key(pem: &[u8]) -> Result<(Algorithm, DecodingKey), TokenKeyError> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        Ok((Algorithm::RS256, k))
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        Ok((Algorithm::ES256, k))
    } else {
        Err(TokenKeyError(
            "not a PEM public key of RSA (RS256) or P-256 (ES256)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};

    use super::*;

    const NOW: u64 = 1_800_000_000;
    const SECRET: &[u8] = b"room token secret of the tests";

    fn key() -> TokenKey {
        TokenKey::shared(SECRET, Some("portail-chu".into()), DEFAULT_AUDIENCE.into())
    }

    fn claims() -> Value {
        json!({
            "iss": "portail-chu", "aud": "parloir", "room": "chambre-217",
            "exp": NOW + 3600, "name": "Marie Dupont", "role": "moderator",
        })
    }

    fn hs256(claims: &Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn with(change: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        change(&mut c);
        hs256(&c, SECRET)
    }

    #[test]
    fn a_valid_token_names_its_bearer_and_role() {
        let pass = key()
            .check(&hs256(&claims(), SECRET), "chambre-217", NOW)
            .unwrap();
        assert_eq!(pass.name.as_deref(), Some("Marie Dupont"));
        assert!(pass.moderator);
        // Without name or role: the typed name, no moderator.
        let t = with(|c| {
            c.as_object_mut().unwrap().remove("name");
            c.as_object_mut().unwrap().remove("role");
        });
        assert_eq!(
            key().check(&t, "chambre-217", NOW),
            Ok(Pass {
                name: None,
                moderator: false
            })
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let t = with(|c| c["exp"] = json!(NOW - 60));
        assert_eq!(
            key().check(&t, "chambre-217", NOW),
            Err(TokenError::Expired)
        );
        // Within the allowed skew, still good.
        let t = with(|c| c["exp"] = json!(NOW - 10));
        assert!(key().check(&t, "chambre-217", NOW).is_ok());
        // No expiry at all: refused.
        let t = with(|c| {
            c.as_object_mut().unwrap().remove("exp");
        });
        assert_eq!(
            key().check(&t, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        // Not valid yet.
        let t = with(|c| c["nbf"] = json!(NOW + 600));
        assert_eq!(
            key().check(&t, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_token_for_another_room_is_refused_unless_for_any() {
        let t = hs256(&claims(), SECRET);
        assert_eq!(
            key().check(&t, "chambre-218", NOW),
            Err(TokenError::OtherRoom)
        );
        let any = with(|c| c["room"] = json!("*"));
        assert!(key().check(&any, "chambre-218", NOW).is_ok());
    }

    #[test]
    fn a_wrong_signature_audience_or_issuer_is_refused() {
        let forged = hs256(&claims(), b"another secret altogether");
        assert_eq!(
            key().check(&forged, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        let jitsi = with(|c| c["aud"] = json!("jitsi"));
        assert_eq!(
            key().check(&jitsi, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        let other = with(|c| c["iss"] = json!("someone-else"));
        assert_eq!(
            key().check(&other, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        let no_iss = with(|c| {
            c.as_object_mut().unwrap().remove("iss");
        });
        assert_eq!(
            key().check(&no_iss, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            key().check("garbage", "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let t = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims())
        );
        assert_eq!(
            key().check(&t, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn names_and_roles_are_checked() {
        let long = with(|c| c["name"] = json!("x".repeat(65)));
        assert_eq!(
            key().check(&long, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        let blank = with(|c| c["name"] = json!("   "));
        assert_eq!(
            key().check(&blank, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        let admin = with(|c| c["role"] = json!("admin"));
        assert_eq!(
            key().check(&admin, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn jitsi_shaped_claims_are_read() {
        let t = with(|c| {
            let o = c.as_object_mut().unwrap();
            o.remove("name");
            o.remove("role");
            o.insert(
                "context".into(),
                json!({"user": {"name": "Dr Martin", "moderator": true}}),
            );
        });
        assert_eq!(
            key().check(&t, "chambre-217", NOW),
            Ok(Pass {
                name: Some("Dr Martin".into()),
                moderator: true
            })
        );
    }

    /// An ES256 token checked with the issuer's public key; the same
    /// claims signed with HS256 using the public key as the secret (the
    /// classic confusion) are refused.
    #[test]
    fn es256_with_the_issuers_public_key() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let private = EncodingKey::from_ec_der(pkcs8.as_ref());
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
        )
        .unwrap();
        use aws_lc_rs::signature::KeyPair;
        let spki = pem_public(pair.public_key().as_ref());
        let k = TokenKey::public(spki.as_bytes(), None, DEFAULT_AUDIENCE.into()).unwrap();
        let t = encode(&Header::new(Algorithm::ES256), &claims(), &private).unwrap();
        assert!(k.check(&t, "chambre-217", NOW).unwrap().moderator);
        let confused = hs256(&claims(), spki.as_bytes());
        assert_eq!(
            k.check(&confused, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
        assert!(TokenKey::public(b"not a key", None, "parloir".into()).is_err());
        // Both keys configured: each checks its own tokens only.
        let both = TokenKey::shared(SECRET, None, DEFAULT_AUDIENCE.into())
            .and_public(spki.as_bytes())
            .unwrap();
        assert!(both.check(&t, "chambre-217", NOW).is_ok());
        assert!(both
            .check(&hs256(&claims(), SECRET), "chambre-217", NOW)
            .is_ok());
        assert_eq!(
            both.check(&confused, "chambre-217", NOW),
            Err(TokenError::Invalid)
        );
    }

    /// A P-256 public key point as a PEM SubjectPublicKeyInfo.
    fn pem_public(point: &[u8]) -> String {
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING }
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(point);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }
}
