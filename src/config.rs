//! Configuration of `parloir serve`: command-line flags, `PARLOIR_*`
//! environment variables and a TOML file, in that order of precedence, then
//! the defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_MEDIA: &str = "0.0.0.0:10000";
pub const DEFAULT_MAX_PARTICIPANTS: usize = 12;
/// Packets per second (in plus out) a worker is sized for.
pub const DEFAULT_CAPACITY_PPS: f64 = 50_000.0;
pub const DEFAULT_ADMISSION_THRESHOLD: f64 = 0.85;

/// The settings of one `serve` process, every value resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub http: SocketAddr,
    pub media: SocketAddr,
    pub announce: Option<IpAddr>,
    pub max_participants: usize,
    /// Enables the operators' API.
    pub secret: Option<String>,
    pub capacity_pps: f64,
    pub admission_threshold: f64,
}

/// One layer of settings (flags+env, or the file), each optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    pub http: Option<SocketAddr>,
    pub media: Option<SocketAddr>,
    pub announce: Option<IpAddr>,
    pub max_participants: Option<usize>,
    pub secret: Option<String>,
    pub capacity_pps: Option<f64>,
    pub admission_threshold: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("max_participants must be at least 2")]
    TooFewParticipants,
}

impl Partial {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// `self` wins over `lower`; the defaults fill the rest.
    pub fn resolve(self, lower: Partial) -> Result<ServeConfig, ConfigError> {
        let max_participants = self
            .max_participants
            .or(lower.max_participants)
            .unwrap_or(DEFAULT_MAX_PARTICIPANTS);
        if max_participants < 2 {
            return Err(ConfigError::TooFewParticipants);
        }
        Ok(ServeConfig {
            http: self
                .http
                .or(lower.http)
                .unwrap_or_else(|| parse_default(DEFAULT_HTTP)),
            media: self
                .media
                .or(lower.media)
                .unwrap_or_else(|| parse_default(DEFAULT_MEDIA)),
            announce: self.announce.or(lower.announce),
            max_participants,
            secret: self.secret.or(lower.secret),
            capacity_pps: self
                .capacity_pps
                .or(lower.capacity_pps)
                .unwrap_or(DEFAULT_CAPACITY_PPS),
            admission_threshold: self
                .admission_threshold
                .or(lower.admission_threshold)
                .unwrap_or(DEFAULT_ADMISSION_THRESHOLD),
        })
    }
}

fn parse_default(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("default address {s} is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let flags = Partial {
            http: Some("127.0.0.1:9000".parse().unwrap()),
            ..Partial::default()
        };
        let file: Partial = toml::from_str(
            "http = \"0.0.0.0:1\"\nmedia = \"127.0.0.1:10001\"\nannounce = \"192.0.2.7\"",
        )
        .unwrap();
        let c = flags.resolve(file).unwrap();
        assert_eq!(c.http, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.media, "127.0.0.1:10001".parse().unwrap());
        assert_eq!(c.announce, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(c.max_participants, DEFAULT_MAX_PARTICIPANTS);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        assert!(toml::from_str::<Partial>("htp = \"x\"").is_err());
    }

    #[test]
    fn example_config_parses() {
        let p = Partial::from_file(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/parloir.toml"
        )))
        .unwrap();
        assert!(p.resolve(Partial::default()).is_ok());
    }
}
