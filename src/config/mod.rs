//! Configuration of the three roles (`serve`, `signal`, `worker`), all read
//! the same way: command-line flags, then `PARLOIR_*` environment variables,
//! then a TOML file (`--config`), then the defaults. Each role's settings
//! are listed once, in its own file, with the `layer!` macro (layer.rs).

mod layer;
mod serve;
mod signal;
mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use layer::{Flags, Layer};
pub use serve::{ServeConfig, ServeLayer};
pub use signal::{SignalConfig, SignalLayer};
pub use worker::{WorkerConfig, WorkerLayer};

/// A PEM certificate chain and its private key (read by `roles::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// HTTP and WebSocket address of `serve` and `signal`.
pub const DEFAULT_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// The UDP address all media uses (`serve` and `worker`).
pub const DEFAULT_MEDIA: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 10000);
pub const DEFAULT_MAX_PARTICIPANTS: usize = 12;
/// Videos a participant receives at most: a phone shows nine tiles well,
/// and every video more costs its downlink and its decoder.
pub const DEFAULT_LAST_N: usize = 9;
/// Packets per second (in plus out) a worker is sized for.
pub const DEFAULT_CAPACITY_PPS: f64 = 50_000.0;
/// Above it on every worker, new ordinary rooms are refused
/// (`cluster::admission`).
pub const DEFAULT_ADMISSION_THRESHOLD: f64 = 0.8;
/// Above it, a worker takes no one, not even into a running call; between
/// the two, joins and priority rooms.
pub const DEFAULT_ADMISSION_HARD: f64 = 0.95;

/// `--media-tcp`: where ICE-TCP listens, or `off` (no TCP candidate).
/// Unset, it listens on the media address's port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum MediaTcpAddr {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for MediaTcpAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(MediaTcpAddr::Off);
        }
        s.parse()
            .map(MediaTcpAddr::At)
            .map_err(|_| format!("{s:?} is neither an address (0.0.0.0:443) nor \"off\""))
    }
}

impl TryFrom<String> for MediaTcpAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for MediaTcpAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaTcpAddr::Off => f.write_str("off"),
            MediaTcpAddr::At(a) => a.fmt(f),
        }
    }
}

impl MediaTcpAddr {
    /// Where ICE-TCP listens for a worker whose UDP media is on `media`.
    pub fn resolve(setting: Option<Self>, media: SocketAddr) -> Self {
        setting.unwrap_or(MediaTcpAddr::At(media))
    }
}

// The file errors leave their cause out of the message: it is their
// `source()`, which the caller prints as "Caused by".
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error(
        "{key} is required: give --{flag}, set {env}, or write `{key} = ...` in the configuration file",
        flag = key.replace('_', "-")
    )]
    Missing {
        key: &'static str,
        env: &'static str,
    },
    #[error("max_participants must be at least 2, not {0}")]
    TooFewParticipants(usize),
    #[error("admission_threshold must be above 0 and at most 1, not {0}")]
    AdmissionThreshold(f64),
    #[error("admission_hard ({hard}) must be at least admission_threshold ({soft}) and at most 1")]
    AdmissionHard { soft: f64, hard: f64 },
    #[error("{0}")]
    Partner(String),
    #[error("last_n must be at least 1, not {0}")]
    LastN(usize),
    #[error("media_threads must be 1 to {max}, and media_steer_to below it: {threads}, {steer:?}")]
    MediaThreads {
        threads: usize,
        steer: Option<usize>,
        max: usize,
    },
    #[error("capacity_pps must be above 0, not {0}")]
    Capacity(f64),
    #[error("signal must be the signal server's URL (http://HOST:PORT), not {0:?}")]
    SignalUrl(String),
    #[error("TURN: {0}")]
    Turn(String),
    #[error("TLS: {0}")]
    Tls(&'static str),
    #[error(
        "{key} is too short ({len} characters): give at least {MIN_SECRET_LEN}, \
         for instance `openssl rand -hex 16`"
    )]
    ShortSecret { key: &'static str, len: usize },
    #[error("room tokens: {0}")]
    RoomTokens(String),
    #[error("access rules: {0}")]
    Access(String),
}

/// The key room tokens are checked with: a shared secret (HS256), the
/// issuer's public key (RS256, ES256, read from its PEM file), or both.
fn room_tokens(
    secret: Option<&str>,
    public_key: Option<&str>,
    issuer: Option<&str>,
    audience: &str,
    closed: bool,
) -> Result<Option<crate::signal::room_token::TokenKey>, ConfigError> {
    use crate::signal::room_token::TokenKey;
    check_closed_rooms(secret, public_key, closed)?;
    let issuer = issuer.map(String::from);
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| ConfigError::RoomTokens(format!("cannot read {path}: {e}")))
    };
    let bad = |path: &str, e| ConfigError::RoomTokens(format!("{path}: {e}"));
    Ok(match (secret, public_key) {
        (Some(s), None) => Some(TokenKey::shared(s.as_bytes(), issuer, audience.into())),
        (Some(s), Some(path)) => Some(
            TokenKey::shared(s.as_bytes(), issuer, audience.into())
                .and_public(&read(path)?)
                .map_err(|e| bad(path, e))?,
        ),
        (None, Some(path)) => Some(
            TokenKey::public(&read(path)?, issuer, audience.into()).map_err(|e| bad(path, e))?,
        ),
        (None, None) => None,
    })
}

/// Closed rooms with no key to check invitations with would let nobody in.
fn check_closed_rooms(
    secret: Option<&str>,
    public_key: Option<&str>,
    closed: bool,
) -> Result<(), ConfigError> {
    if closed && secret.is_none() && public_key.is_none() {
        return Err(ConfigError::RoomTokens(
            "closed rooms need --token-secret or --token-public-key to check invitations with"
                .into(),
        ));
    }
    Ok(())
}

/// The shortest secret a server starts with. The cluster secret opens the
/// operators' API and the workers' control channel, and signs priority
/// links: a short one is guessed; an empty one is a mistake.
pub const MIN_SECRET_LEN: usize = 16;

fn check_secret(key: &'static str, secret: Option<&str>) -> Result<(), ConfigError> {
    match secret {
        Some(s) if s.chars().count() < MIN_SECRET_LEN => Err(ConfigError::ShortSecret {
            key,
            len: s.chars().count(),
        }),
        _ => Ok(()),
    }
}

// The checks more than one role shares.

fn check_max_participants(n: usize) -> Result<(), ConfigError> {
    if n < 2 {
        return Err(ConfigError::TooFewParticipants(n));
    }
    Ok(())
}

fn check_last_n(n: usize) -> Result<(), ConfigError> {
    if n < 1 {
        return Err(ConfigError::LastN(n));
    }
    Ok(())
}

/// Stress is clamped to 0..1, so a threshold above 1 would never refuse
/// and one at 0 would refuse everything; the hard one is not below the
/// soft one.
fn check_admission(soft: f64, hard: f64) -> Result<(), ConfigError> {
    if !(soft > 0.0 && soft <= 1.0) {
        return Err(ConfigError::AdmissionThreshold(soft));
    }
    if !(hard >= soft && hard <= 1.0) {
        return Err(ConfigError::AdmissionHard { soft, hard });
    }
    Ok(())
}

/// Partners from the file are checked as those from the command line.
fn check_partners(partners: &[crate::signal::partner::Partner]) -> Result<(), ConfigError> {
    partners
        .iter()
        .try_for_each(|p| p.check().map_err(ConfigError::Partner))
}

/// TURN needs its URIs and its secret together; a URI a browser would
/// refuse is refused here, at start.
fn check_turn(uri: Option<&str>, secret: Option<&str>) -> Result<(), ConfigError> {
    match (uri, secret) {
        (None, None) => Ok(()),
        (Some(uri), Some(secret)) if !secret.is_empty() => {
            let turn = crate::signal::turn::TurnConfig::new(uri, secret.into());
            match turn
                .uris
                .iter()
                .find(|u| !crate::signal::turn::is_turn_uri(u))
            {
                Some(bad) => Err(ConfigError::Turn(format!(
                    "{bad:?} is not a turn: or turns: URI"
                ))),
                None if turn.uris.is_empty() => Err(ConfigError::Turn("no TURN URI".into())),
                None => Ok(()),
            }
        }
        (Some(_), _) => Err(ConfigError::Turn("--turn-uri needs --turn-secret".into())),
        (None, Some(_)) => Err(ConfigError::Turn("--turn-secret needs --turn-uri".into())),
    }
}

/// A certificate needs its key, and the other way round.
fn check_tls(cert: Option<&str>, key: Option<&str>) -> Result<(), ConfigError> {
    match (cert, key) {
        (Some(_), None) => Err(ConfigError::Tls("--tls-cert needs --tls-key")),
        (None, Some(_)) => Err(ConfigError::Tls("--tls-key needs --tls-cert")),
        _ => Ok(()),
    }
}

fn tls_files(cert: Option<&str>, key: Option<&str>) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: cert?.into(),
        key: key?.into(),
    })
}

fn turn_config(uri: Option<&str>, secret: Option<&str>) -> Option<crate::signal::turn::TurnConfig> {
    Some(crate::signal::turn::TurnConfig::new(uri?, secret?.into()))
}

/// Stress divides by the capacity.
/// The media shards asked for, and the one datagrams are steered to.
fn check_media_threads(threads: Option<usize>, steer: Option<usize>) -> Result<(), ConfigError> {
    let max = crate::worker::MAX_SHARDS;
    let n = media_threads(threads);
    if !(1..=max).contains(&n) || steer.is_some_and(|s| s >= n) {
        return Err(ConfigError::MediaThreads {
            threads: n,
            steer,
            max,
        });
    }
    Ok(())
}

/// Media shards: as asked, or one per core the process may use (at most
/// [`crate::worker::MAX_SHARDS`]).
pub fn media_threads(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| {
        crate::worker::allowed_cores()
            .len()
            .clamp(1, crate::worker::MAX_SHARDS)
    })
}

fn check_capacity(pps: f64) -> Result<(), ConfigError> {
    if !(pps > 0.0 && pps.is_finite()) {
        return Err(ConfigError::Capacity(pps));
    }
    Ok(())
}

/// Grants are signed with their own secret, or the cluster's.
fn grant_key(grant: Option<&str>, cluster: Option<&str>) -> Option<crate::signal::grant::GrantKey> {
    let secret = grant.or(cluster).filter(|s| !s.is_empty())?;
    Some(crate::signal::grant::GrantKey::new(secret.as_bytes()))
}
