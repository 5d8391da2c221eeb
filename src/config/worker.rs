//! The settings of `parloir worker`: the media plane alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::layer::layer;
use super::TlsFiles;
use super::{
    check_capacity, check_media_threads, check_secret, check_tls, tls_files, ConfigError,
    MediaTcpAddr, DEFAULT_CAPACITY_PPS, DEFAULT_MEDIA,
};
use crate::signal::api_types::DEFAULT_DRAIN_SECS;
use ipnet::IpNet;

/// Control channel and `/metrics`: reached from the signal servers and
/// Prometheus, so not only on loopback.
pub const DEFAULT_WORKER_HTTP: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9100);

layer! {
    /// One layer of `parloir worker`'s settings: the flags and the
    /// environment, or the file.
    pub struct WorkerLayer;
    /// The settings of one `worker` process, every value resolved.
    pub struct WorkerConfig {
        /// URL of the signal server (http://HOST:PORT).
        signal: String, env "PARLOIR_SIGNAL", required;
        /// Cluster secret.
        secret: String, env "PARLOIR_SECRET", required;
        /// The UDP address all media uses.
        media: SocketAddr, env "PARLOIR_MEDIA", default(DEFAULT_MEDIA);
        /// ICE over TCP, for networks that drop UDP: an address, or "off"
        /// [default: the media address's port number, over TCP].
        media_tcp: MediaTcpAddr, env "PARLOIR_MEDIA_TCP", optional;
        /// Control channel and /metrics address.
        http: SocketAddr, env "PARLOIR_HTTP", default(DEFAULT_WORKER_HTTP);
        /// Redis URL: report there, for every signal server sharing it.
        redis: String, env "PARLOIR_REDIS", optional;
        /// Address put in ICE candidates and given to signal servers.
        announce: IpAddr, env "PARLOIR_ANNOUNCE", optional;
        /// Media shards: threads that forward media, each pinned to one
        /// core, sharing the media port [default: one per core this
        /// process may use].
        media_threads: usize, env "PARLOIR_MEDIA_THREADS", optional;
        /// Tests and diagnosis: the kernel gives every media datagram to
        /// this shard (0-based), which hands the other shards theirs.
        media_steer_to: usize, env "PARLOIR_MEDIA_STEER_TO", optional;
        /// URL signal servers reach this worker's control channel at, when it
        /// is not http://ANNOUNCE:HTTP_PORT (containers: the service name).
        control_url: String, env "PARLOIR_CONTROL_URL", optional;
        /// Node id [default: MEDIA_IP-MEDIA_PORT].
        id: String, env "PARLOIR_ID", optional;
        /// Packets per second (in + out) this worker is sized for.
        capacity_pps: f64, env "PARLOIR_CAPACITY_PPS", default(DEFAULT_CAPACITY_PPS);
        /// Seconds a draining worker keeps its calls before moving them
        /// elsewhere.
        drain_timeout: u64, env "PARLOIR_DRAIN_TIMEOUT", default(DEFAULT_DRAIN_SECS);
        /// PEM certificate chain: serve the control channel and /metrics
        /// over TLS (needs --tls-key); signal servers check it against their
        /// --cluster-ca.
        tls_cert: String, env "PARLOIR_TLS_CERT", optional;
        /// PEM private key of --tls-cert.
        tls_key: String, env "PARLOIR_TLS_KEY", optional;
        /// Show room names and client addresses in logs (otherwise opaque
        /// ids): for an operator debugging a call, not for every day.
        log_personal_data: bool, env "PARLOIR_LOG_PERSONAL_DATA", switch;
        /// A token Prometheus must show to read /metrics (Authorization:
        /// Bearer TOKEN); without one, /metrics is open to anyone.
        metrics_token: String, env "PARLOIR_METRICS_TOKEN", optional;
        /// A network (CIDR) or address refused everywhere: HTTP, the
        /// signalling, media. Repeat for several; read again on SIGHUP.
        block: Vec<IpNet>, env "PARLOIR_BLOCK", list, flag "block";
        /// A file of networks to refuse, one CIDR per line (# comments): a
        /// country's published list. Read again on SIGHUP.
        block_file: String, env "PARLOIR_BLOCK_FILE", optional;
        /// Only these networks (CIDR) are let in, when given. Repeat for
        /// several; read again on SIGHUP.
        allow: Vec<IpNet>, env "PARLOIR_ALLOW", list, flag "allow";
        /// PEM certificate(s) a signal server reached at https:// is checked
        /// against (a CA, its own certificate, or the system bundle).
        cluster_ca: String, env "PARLOIR_CLUSTER_CA", optional;
    }
}

impl WorkerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        // Otherwise the worker would wait forever for a signal server it
        // cannot reach.
        if !(self.signal.starts_with("http://") || self.signal.starts_with("https://")) {
            return Err(ConfigError::SignalUrl(self.signal.clone()));
        }
        if self.signal.starts_with("https://") && self.cluster_ca.is_none() {
            return Err(ConfigError::Tls(
                "an https:// signal server needs --cluster-ca, to check its certificate",
            ));
        }
        check_secret("secret", Some(&self.secret))?;
        check_media_threads(self.media_threads, self.media_steer_to)?;
        check_tls(self.tls_cert.as_deref(), self.tls_key.as_deref())?;
        check_capacity(self.capacity_pps)
    }

    /// Who may reach this process (`access`): the block file is read
    /// here.
    pub fn access_rules(&self) -> Result<crate::access::AccessRules, ConfigError> {
        crate::access::AccessRules::load(&self.block, self.block_file.as_deref(), &self.allow)
            .map_err(|e| ConfigError::Access(e.to_string()))
    }

    /// The certificate and key to serve the control channel with, if
    /// configured.
    pub fn tls(&self) -> Option<TlsFiles> {
        tls_files(self.tls_cert.as_deref(), self.tls_key.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layer::check_example;
    use crate::config::Layer;

    fn required() -> WorkerLayer {
        WorkerLayer {
            signal: Some("http://127.0.0.1:8080".into()),
            secret: Some("a-test-secret-16b".into()),
            ..WorkerLayer::default()
        }
    }

    #[test]
    fn flag_over_env_over_file_over_default() {
        // Clap merges a flag and its variable into the upper layer; here
        // they are two layers, to show the order.
        let flags = WorkerLayer {
            media: Some("127.0.0.1:1".parse().unwrap()),
            ..WorkerLayer::default()
        };
        let env = WorkerLayer {
            media: Some("127.0.0.1:2".parse().unwrap()),
            secret: Some("from-env-secret-16".into()),
            id: Some("w-env".into()),
            ..WorkerLayer::default()
        };
        let file: WorkerLayer = toml::from_str(
            "media = \"127.0.0.1:3\"\nsecret = \"from-file-secret-16\"\nid = \"w-file\"\n\
             signal = \"http://signal:8080\"\ndrain_timeout = 30",
        )
        .unwrap();
        let c = flags.over(env).over(file).resolve().unwrap();
        assert_eq!(c.media, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.secret, "from-env-secret-16");
        assert_eq!(c.id.as_deref(), Some("w-env"));
        assert_eq!(c.signal, "http://signal:8080");
        assert_eq!(c.drain_timeout, 30);
        assert_eq!(c.http, DEFAULT_WORKER_HTTP);
        assert_eq!(c.capacity_pps, DEFAULT_CAPACITY_PPS);
        assert_eq!(c.control_url, None);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let e = toml::from_str::<WorkerLayer>("drain_timout = 5").unwrap_err();
        assert!(e.to_string().contains("drain_timout"), "{e}");
    }

    #[test]
    fn the_signal_server_and_the_secret_are_required() {
        let e = WorkerLayer {
            signal: None,
            ..required()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(e, ConfigError::Missing { key: "signal", .. }));
        assert!(e.to_string().contains("--signal"), "{e}");
        let e = WorkerLayer {
            secret: None,
            ..required()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(e, ConfigError::Missing { key: "secret", .. }));
    }

    #[test]
    fn values_are_checked() {
        let e = WorkerLayer {
            signal: Some("signal:8080".into()),
            ..required()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(e, ConfigError::SignalUrl(_)));
        let e = WorkerLayer {
            capacity_pps: Some(-1.0),
            ..required()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(e, ConfigError::Capacity(_)));
        assert!(required().resolve().is_ok());
    }

    #[test]
    fn example_file() {
        check_example("worker.toml", required());
    }
}
