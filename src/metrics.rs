//! Prometheus figures of a process, at `/metrics`, every name prefixed
//! `parloir_` and labelled with the node id.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, Opts, Registry, TextEncoder};

use crate::cluster::report::{Figure, LoadReport, FIGURES};

pub struct Metrics {
    registry: Registry,
    worker: Vec<(Gauge, &'static Figure)>,
    /// Per media shard (label `shard`): CPU of its thread, participants.
    shard_cpu: GaugeVec,
    shard_participants: GaugeVec,
    pub signal_nodes: Gauge,
    pub signal_sessions: Gauge,
    pub rooms_placed: IntCounter,
    pub priority_rooms_placed: IntCounter,
    pub rooms_refused: IntCounter,
    pub rooms_redirected: IntCounter,
    pub joins_refused: IntCounter,
    pub limited: IntCounter,
    pub headroom: Gauge,
}

/// Which figures a process exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    Signal,
    /// `parloir serve`: both.
    Both,
}

impl Metrics {
    pub fn new(node: &str, role: Role) -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("node", node);
        // Figures of a role the process does not have are created but not
        // registered: never exported as misleading zeros.
        let gauge = |name: &str, help: &str, export: bool| {
            let g = Gauge::with_opts(opts(name, help))
                .unwrap_or_else(|_| unreachable!("valid metric {name}"));
            if export {
                let _ = registry.register(Box::new(g.clone()));
            }
            g
        };
        let signal = role != Role::Worker;
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(opts(name, help))
                .unwrap_or_else(|_| unreachable!("valid metric {name}"));
            if signal {
                let _ = registry.register(Box::new(c.clone()));
            }
            c
        };
        let worker = FIGURES
            .iter()
            .map(|f| (gauge(f.name, f.help, role != Role::Signal), f))
            .collect();
        let per_shard = |name: &str, help: &str| {
            let g = GaugeVec::new(opts(name, help), &["shard"])
                .unwrap_or_else(|_| unreachable!("valid metric {name}"));
            if role != Role::Signal {
                let _ = registry.register(Box::new(g.clone()));
            }
            g
        };
        Metrics {
            worker,
            shard_cpu: per_shard(
                "parloir_worker_shard_cpu_cores",
                "CPU used by one media shard's thread, in cores",
            ),
            shard_participants: per_shard(
                "parloir_worker_shard_participants",
                "Participants on one media shard",
            ),
            signal_nodes: gauge(
                "parloir_signal_nodes",
                "Live workers seen by this signal server",
                signal,
            ),
            signal_sessions: gauge(
                "parloir_signal_sessions",
                "Open signalling sessions",
                signal,
            ),
            rooms_placed: counter(
                "parloir_signal_rooms_placed_total",
                "Rooms placed on a worker",
            ),
            priority_rooms_placed: counter(
                "parloir_signal_priority_rooms_placed_total",
                "Priority rooms placed on a worker (also counted in rooms placed)",
            ),
            rooms_refused: counter(
                "parloir_signal_rooms_refused_total",
                "New rooms refused for lack of capacity, with no partner to send them to",
            ),
            rooms_redirected: counter(
                "parloir_signal_rooms_redirected_total",
                "New rooms refused and sent to partner instances (full, or redirect on)",
            ),
            joins_refused: counter(
                "parloir_signal_joins_refused_total",
                "Joins to running rooms refused: their worker above the hard threshold",
            ),
            limited: counter(
                "parloir_signal_limited_total",
                "Sockets, joins and new rooms refused by the limits per client address",
            ),
            headroom: gauge(
                "parloir_cluster_headroom_rooms",
                "Ordinary rooms of the usual size the cluster still takes below the soft threshold",
                signal,
            ),
            registry,
        }
    }

    pub fn set_worker(&self, r: &LoadReport) {
        for (g, f) in &self.worker {
            g.set((f.read)(r));
        }
        for (i, shard) in r.shards.iter().enumerate() {
            let label = i.to_string();
            self.shard_cpu.with_label_values(&[&label]).set(shard.cpu);
            self.shard_participants
                .with_label_values(&[&label])
                .set(shard.participants as f64);
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// `/metrics` as Prometheus reads it: the figures, or 401 when a
    /// `token` is set and the request does not show it as a bearer token
    /// (how many rooms and people a service has is not for anyone).
    pub fn scrape(&self, token: Option<&str>, headers: &HeaderMap) -> Response {
        if !scrape_allowed(token, headers) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "this server's metrics need its metrics token",
            )
                .into_response();
        }
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            self.render(),
        )
            .into_response()
    }
}

/// Whether `headers` show `token` (`Authorization: Bearer TOKEN`), or no
/// token is asked.
fn scrape_allowed(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|shown| crate::secret::equal(shown.trim().as_bytes(), token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_node_label() {
        let m = Metrics::new("w1", Role::Both);
        m.rooms_placed.inc();
        let text = m.render();
        assert!(text.contains("parloir_signal_rooms_placed_total{node=\"w1\"} 1"));
        assert!(text.contains("parloir_worker_stress{node=\"w1\"} 0"));
        let mut report = crate::cluster::report::test_report("w1", 0.1, 2);
        report.shards = vec![crate::cluster::report::ShardLoad {
            rooms: 2,
            participants: 2,
            cpu: 0.25,
        }];
        m.set_worker(&report);
        let text = m.render();
        assert!(text.contains("parloir_worker_shard_cpu_cores{node=\"w1\",shard=\"0\"} 0.25"));
        assert!(text.contains("parloir_worker_media_shards{node=\"w1\"} 1"));
    }

    #[test]
    fn each_role_exports_its_own() {
        let w = Metrics::new("w", Role::Worker).render();
        assert!(w.contains("parloir_worker_stress") && !w.contains("parloir_signal"));
        let s = Metrics::new("s", Role::Signal).render();
        assert!(s.contains("parloir_signal_nodes") && !s.contains("parloir_worker"));
    }

    #[test]
    fn a_metrics_token_is_asked_only_when_set() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        let none = HeaderMap::new();
        assert!(scrape_allowed(None, &none), "no token: open");
        assert!(!scrape_allowed(Some("s3cret-token"), &none));
        assert!(!scrape_allowed(Some("s3cret-token"), &with("Bearer wrong")));
        assert!(!scrape_allowed(
            Some("s3cret-token"),
            &with("Basic s3cret-token")
        ));
        assert!(scrape_allowed(
            Some("s3cret-token"),
            &with("Bearer s3cret-token")
        ));
    }
}
