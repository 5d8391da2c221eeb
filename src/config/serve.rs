//! The settings of `parloir serve`: signalling and one embedded worker.

use std::net::{IpAddr, SocketAddr};

use super::layer::layer;
use super::TlsFiles;
use super::{
    check_admission, check_capacity, check_closed_rooms, check_last_n, check_max_participants,
    check_media_threads, check_partners, check_secret, check_tls, check_turn, tls_files,
    turn_config, ConfigError, MediaTcpAddr, DEFAULT_ADMISSION_HARD, DEFAULT_ADMISSION_THRESHOLD,
    DEFAULT_CAPACITY_PPS, DEFAULT_HTTP, DEFAULT_LAST_N, DEFAULT_MAX_PARTICIPANTS, DEFAULT_MEDIA,
};
use crate::cluster::admission::Thresholds;
use crate::signal::grant::GrantKey;
use crate::signal::origin::Origin;
use crate::signal::partner::Partner;
use crate::signal::room_token::{TokenKey, DEFAULT_AUDIENCE};
use crate::signal::turn::TurnConfig;
use ipnet::IpNet;

layer! {
    /// One layer of `parloir serve`'s settings: the flags and the
    /// environment, or the file.
    pub struct ServeLayer;
    /// The settings of one `serve` process, every value resolved.
    pub struct ServeConfig {
        /// HTTP and WebSocket address.
        http: SocketAddr, env "PARLOIR_HTTP", default(DEFAULT_HTTP);
        /// The UDP address all media uses.
        media: SocketAddr, env "PARLOIR_MEDIA", default(DEFAULT_MEDIA);
        /// ICE over TCP, for networks that drop UDP: an address (the HTTP
        /// address itself: one port for HTTPS, WSS and media), or "off"
        /// [default: the media address's port number, over TCP].
        media_tcp: MediaTcpAddr, env "PARLOIR_MEDIA_TCP", optional;
        /// Address put in ICE candidates when it differs from the bound one
        /// (NAT, containers).
        announce: IpAddr, env "PARLOIR_ANNOUNCE", optional;
        /// Media shards: threads that forward media, each pinned to one
        /// core, sharing the media port [default: one per core this
        /// process may use].
        media_threads: usize, env "PARLOIR_MEDIA_THREADS", optional;
        /// Tests and diagnosis: the kernel gives every media datagram to
        /// this shard (0-based), which hands the other shards theirs.
        media_steer_to: usize, env "PARLOIR_MEDIA_STEER_TO", optional;
        /// Participants per room.
        max_participants: usize, env "PARLOIR_MAX_PARTICIPANTS", default(DEFAULT_MAX_PARTICIPANTS);
        /// Videos a participant receives at most: the most recent speakers'.
        last_n: usize, env "PARLOIR_LAST_N", default(DEFAULT_LAST_N);
        /// Enables the operators' API with this secret.
        secret: String, env "PARLOIR_SECRET", optional;
        /// Packets per second (in + out) the worker is sized for.
        capacity_pps: f64, env "PARLOIR_CAPACITY_PPS", default(DEFAULT_CAPACITY_PPS);
        /// Refuse new ordinary rooms when every worker's smoothed stress is
        /// at or above this (the soft threshold).
        admission_threshold: f64, env "PARLOIR_ADMISSION_THRESHOLD",
            default(DEFAULT_ADMISSION_THRESHOLD);
        /// Above this a worker takes no one, not even into a running call;
        /// between the two thresholds, joins and priority rooms only.
        admission_hard: f64, env "PARLOIR_ADMISSION_HARD", default(DEFAULT_ADMISSION_HARD);
        /// A partner instance refused new rooms are sent to: NAME=URL, or
        /// NAME=URL;fr,en with its languages ({room} in the URL is the
        /// room's name). Repeat for several.
        partners: Vec<Partner>, env "PARLOIR_PARTNER", list, flag "partner";
        /// Another site whose pages may open the signalling WebSocket
        /// (https://HOST[:PORT]): a portal that embeds the call. Pages of
        /// this server's own address always may. Repeat for several.
        allowed_origins: Vec<Origin>, env "PARLOIR_ALLOWED_ORIGIN", list, flag "allowed-origin";
        /// Secret room tokens (JWT, HS256) are signed with, shared with
        /// the system that issues invitation links (docs/security.md).
        token_secret: String, env "PARLOIR_TOKEN_SECRET", optional;
        /// PEM public key of the issuer of room tokens (RS256 or ES256),
        /// instead of --token-secret.
        token_public_key: String, env "PARLOIR_TOKEN_PUBLIC_KEY", optional;
        /// The issuer room tokens must name (their iss claim).
        token_issuer: String, env "PARLOIR_TOKEN_ISSUER", optional;
        /// The audience room tokens must name (their aud claim).
        token_audience: String, env "PARLOIR_TOKEN_AUDIENCE",
            default(DEFAULT_AUDIENCE.to_string());
        /// Every room needs a token: nobody enters without an invitation
        /// link (needs --token-secret or --token-public-key).
        closed_rooms: bool, env "PARLOIR_CLOSED_ROOMS", switch;
        /// No limits per client address (sockets, joins, new rooms): for
        /// load generators and benchmarks, where one address stands for
        /// many people.
        no_address_limits: bool, env "PARLOIR_NO_ADDRESS_LIMITS", switch;
        /// A reverse proxy in front (CIDR): from it, the client's address
        /// is read from X-Forwarded-For (for the limits per address and
        /// the logs). Repeat for several.
        trusted_proxies: Vec<IpNet>, env "PARLOIR_TRUSTED_PROXY", list, flag "trusted-proxy";
        /// Secret priority links are signed with, to share with a system
        /// that mints them [default: the cluster secret].
        grant_secret: String, env "PARLOIR_GRANT_SECRET", optional;
        /// TURN server(s) clients may relay through (turn: or turns: URIs,
        /// comma-separated); needs --turn-secret.
        turn_uri: String, env "PARLOIR_TURN_URI", optional;
        /// Secret shared with the TURN server (coturn's static-auth-secret),
        /// from which each client gets a credential valid 24 h.
        turn_secret: String, env "PARLOIR_TURN_SECRET", optional;
        /// PEM certificate chain: serve HTTPS and WSS (needs --tls-key); a
        /// renewed file is picked up without a restart.
        tls_cert: String, env "PARLOIR_TLS_CERT", optional;
        /// PEM private key of --tls-cert.
        tls_key: String, env "PARLOIR_TLS_KEY", optional;
        /// Show room names and client addresses in logs (otherwise opaque
        /// ids): for an operator debugging a call, not for every day.
        log_personal_data: bool, env "PARLOIR_LOG_PERSONAL_DATA", switch;
        /// A token Prometheus must show to read /metrics (Authorization:
        /// Bearer TOKEN); without one, /metrics is open to anyone.
        metrics_token: String, env "PARLOIR_METRICS_TOKEN", optional;
        /// Folder where rooms' doors (password digests, lobby, who may come
        /// back as moderator) are kept across restarts, or "off"
        /// [default: $STATE_DIRECTORY, $XDG_STATE_HOME/parloir or
        /// ~/.local/state/parloir].
        state_dir: String, env "PARLOIR_STATE_DIR", optional;
        /// A network (CIDR) or address refused everywhere: HTTP, the
        /// signalling, media. Repeat for several; read again on SIGHUP.
        block: Vec<IpNet>, env "PARLOIR_BLOCK", list, flag "block";
        /// A file of networks to refuse, one CIDR per line (# comments): a
        /// country's published list. Read again on SIGHUP.
        block_file: String, env "PARLOIR_BLOCK_FILE", optional;
        /// Only these networks (CIDR) are let in, when given. Repeat for
        /// several; read again on SIGHUP.
        allow: Vec<IpNet>, env "PARLOIR_ALLOW", list, flag "allow";
    }
}

impl ServeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_secret("secret", self.secret.as_deref())?;
        check_secret("grant_secret", self.grant_secret.as_deref())?;
        check_secret("token_secret", self.token_secret.as_deref())?;
        check_closed_rooms(
            self.token_secret.as_deref(),
            self.token_public_key.as_deref(),
            self.closed_rooms,
        )?;
        check_max_participants(self.max_participants)?;
        check_last_n(self.last_n)?;
        check_admission(self.admission_threshold, self.admission_hard)?;
        check_partners(&self.partners)?;
        check_capacity(self.capacity_pps)?;
        check_media_threads(self.media_threads, self.media_steer_to)?;
        check_turn(self.turn_uri.as_deref(), self.turn_secret.as_deref())?;
        check_tls(self.tls_cert.as_deref(), self.tls_key.as_deref())
    }

    /// The key room tokens are checked with, if any: its file is read
    /// here, at start.
    pub fn room_tokens(&self) -> Result<Option<TokenKey>, ConfigError> {
        super::room_tokens(
            self.token_secret.as_deref(),
            self.token_public_key.as_deref(),
            self.token_issuer.as_deref(),
            &self.token_audience,
            self.closed_rooms,
        )
    }

    /// Who may reach this process (`access`): the block file is read
    /// here.
    pub fn access_rules(&self) -> Result<crate::access::AccessRules, ConfigError> {
        crate::access::AccessRules::load(&self.block, self.block_file.as_deref(), &self.allow)
            .map_err(|e| ConfigError::Access(e.to_string()))
    }

    /// Where to keep the rooms' doors: `Err` holds the default folder,
    /// used if it can be (an unwritable home only says so), `Ok(None)`
    /// when turned off.
    pub fn state_dir(&self) -> Result<Option<std::path::PathBuf>, Option<std::path::PathBuf>> {
        match self.state_dir.as_deref() {
            Some("off") => Ok(None),
            Some(dir) => Ok(Some(dir.into())),
            None => Err(crate::state_dir::StateDir::default_path()),
        }
    }

    /// The certificate and key to serve HTTPS with, if configured.
    pub fn tls(&self) -> Option<TlsFiles> {
        tls_files(self.tls_cert.as_deref(), self.tls_key.as_deref())
    }

    pub fn admission(&self) -> Thresholds {
        Thresholds {
            soft: self.admission_threshold,
            hard: self.admission_hard,
        }
    }

    /// The key of priority links, if there is a secret to sign them with.
    pub fn grant_key(&self) -> Option<GrantKey> {
        super::grant_key(self.grant_secret.as_deref(), self.secret.as_deref())
    }

    /// The TURN servers clients are given, if configured.
    pub fn turn(&self) -> Option<TurnConfig> {
        turn_config(self.turn_uri.as_deref(), self.turn_secret.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layer::check_example;
    use crate::config::Layer;

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let flags = ServeLayer {
            http: Some("127.0.0.1:9000".parse().unwrap()),
            ..ServeLayer::default()
        };
        let file: ServeLayer = toml::from_str(
            "http = \"0.0.0.0:1\"\nmedia = \"127.0.0.1:10001\"\nannounce = \"192.0.2.7\"",
        )
        .unwrap();
        let c = flags.over(file).resolve().unwrap();
        assert_eq!(c.http, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.media, "127.0.0.1:10001".parse().unwrap());
        assert_eq!(c.announce, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(c.max_participants, DEFAULT_MAX_PARTICIPANTS);
        assert_eq!(c.secret, None);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        assert!(toml::from_str::<ServeLayer>("htp = \"x\"").is_err());
    }

    #[test]
    fn values_are_checked() {
        let resolve = |toml: &str| toml::from_str::<ServeLayer>(toml).unwrap().resolve();
        assert!(matches!(
            resolve("max_participants = 1"),
            Err(ConfigError::TooFewParticipants(1))
        ));
        assert!(matches!(
            resolve("admission_threshold = 0.0"),
            Err(ConfigError::AdmissionThreshold(_))
        ));
        assert!(matches!(
            resolve("capacity_pps = 0"),
            Err(ConfigError::Capacity(_))
        ));
    }

    #[test]
    fn example_file() {
        check_example("serve.toml", ServeLayer::default());
    }
}
