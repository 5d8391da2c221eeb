//! The control plane: HTTP, the web client, WebSocket signalling, room
//! placement and the operators' API.

mod api;
/// Types of the operators' API, shared with the command line.
pub mod api_types {
    pub use super::api::{
        AdmissionState, NodeSummary, PriorityRoom, PriorityRoomRequest, DEFAULT_DRAIN_SECS,
    };
}
mod clean;
pub mod client_addr;
pub mod grant;
pub mod limits;
pub mod origin;
pub mod owner;
pub mod partner;
pub mod pool;
pub mod protocol;
mod refusal;
pub mod room_name;
pub mod room_token;
pub(crate) mod session;
#[cfg(test)]
mod session_tests;
mod socket;
pub mod turn;
mod web;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};

use crate::net::Peer;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::cluster::admission::{Refusal, Thresholds};
use crate::cluster::placement::NodeView;
use crate::cluster::registry::{Assigned, Moment, Registry, RegistryError};
use crate::metrics::Metrics;
use crate::worker::{WorkerHandle, WorkerStats};
use pool::Pool;

/// Settings of the control plane.
#[derive(Debug, Clone)]
pub struct SignalConfig {
    /// Cluster secret; `None` disables the operators' API.
    pub secret: Option<String>,
    pub max_participants: usize,
    /// Videos a participant receives at most (the most recent speakers').
    pub last_n: usize,
    /// Who may start a room or join one, by the workers' stress.
    pub admission: Thresholds,
    /// Where refused new rooms are sent.
    pub partners: Vec<partner::Partner>,
    /// Other sites whose pages may open `/ws` (`origin`).
    pub allowed_origins: Vec<origin::Origin>,
    /// The key room tokens are checked with (`room_token`).
    pub room_tokens: Option<room_token::TokenKey>,
    /// Every join needs a valid room token.
    pub closed_rooms: bool,
    /// Sockets, joins and new rooms are limited per client address.
    pub address_limits: bool,
    /// Reverse proxies whose X-Forwarded-For is believed (`client_addr`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Who may reach this server (`crate::access`), shared with its port.
    pub access: crate::access::Access,
    /// The key priority links are checked with; `None`: no priority links.
    pub grants: Option<grant::GrantKey>,
    /// TURN servers handed to clients, with credentials.
    pub turn: Option<turn::TurnConfig>,
    /// What Prometheus must show to read `/metrics`; `None`: open.
    pub metrics_token: Option<String>,
    /// The key room passwords are digested under without a cluster
    /// secret: `serve`'s own, kept in its state folder so that a digest
    /// outlives a restart (`state_dir.rs`); `None`: this process's own.
    pub door_key: Option<String>,
}

#[cfg(any(test, fuzzing))]
impl SignalConfig {
    /// `serve`'s defaults with a cluster `secret`: what the sessions'
    /// tests and the sequence fuzz target run under.
    pub(crate) fn for_tests(secret: &str) -> Self {
        SignalConfig {
            door_key: None,
            secret: Some(secret.into()),
            max_participants: 12,
            last_n: 9,
            admission: crate::cluster::admission::Thresholds {
                soft: 0.8,
                hard: 0.95,
            },
            partners: Vec::new(),
            allowed_origins: Vec::new(),
            room_tokens: None,
            closed_rooms: false,
            address_limits: true,
            trusted_proxies: Vec::new(),
            access: Default::default(),
            grants: None,
            turn: None,
            metrics_token: None,
        }
    }
}

pub struct Control {
    pub config: SignalConfig,
    /// Sockets, joins and new rooms per client address, unless turned off.
    pub limits: Option<limits::AddressLimits>,
    /// Handshakes seen, to forget idle addresses now and then.
    handshakes: AtomicU64,
    pub registry: Arc<dyn Registry>,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    /// The in-process worker's figures (`parloir serve`): `/readyz` follows
    /// its media loop.
    pub local_stats: Option<Arc<WorkerStats>>,
    /// When the cluster's gauges (live workers, headroom) were last
    /// computed, in Unix ms.
    gauges_at_ms: AtomicU64,
}

/// `/metrics` is open to anyone: a scrape reads the registry (Redis) for
/// fresh gauges at most this often, so a flood of scrapes is no flood of
/// registry reads.
const GAUGES_EVERY_MS: u64 = 1_000;

/// Rounds of reading the cluster and placing, when placements race.
const MAX_PLACEMENT_ROUNDS: usize = 20;
/// Workers found unreachable before a join gives up.
const MAX_UNREACHABLE: usize = 3;

/// The most a signalling socket assembles of one message, fragments
/// included: the session's own limit and a margin for its clear error.
const WS_MESSAGE_BUDGET: usize = session::MAX_MESSAGE + 64 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState(pub Arc<Control>);

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no media worker could be reached")]
    Unreachable,
    #[error(transparent)]
    Limited(#[from] limits::Limited),
}

impl Control {
    pub fn new(
        config: SignalConfig,
        registry: Arc<dyn Registry>,
        pool: Pool,
        metrics: Arc<Metrics>,
        local_stats: Option<Arc<WorkerStats>>,
    ) -> Self {
        Control {
            limits: config.address_limits.then(limits::AddressLimits::default),
            config,
            handshakes: AtomicU64::new(0),
            registry,
            pool,
            metrics,
            local_stats,
            gauges_at_ms: AtomicU64::new(0),
        }
    }

    /// Live workers that this server can use.
    pub async fn live_nodes(&self, now: Moment) -> Result<Vec<NodeView>, RegistryError> {
        let mut nodes = self.registry.nodes(now).await?;
        nodes.retain(|n| !self.pool.is_lost(&n.report.id));
        self.metrics.signal_nodes.set(nodes.len() as f64);
        self.metrics
            .headroom
            .set(self.config.admission.headroom(&nodes) as f64);
        self.gauges_at_ms.store(now.unix_ms, Ordering::Relaxed);
        Ok(nodes)
    }

    /// Computes the cluster's gauges again unless they are fresh.
    pub async fn refresh_gauges(&self, now: Moment) {
        let at = self.gauges_at_ms.load(Ordering::Relaxed);
        if now.unix_ms.saturating_sub(at) >= GAUGES_EVERY_MS {
            let _ = self.live_nodes(now).await;
        }
    }

    /// The worker of `room`: where it already is (a join, admitted below
    /// the hard threshold), or a new placement (admitted as `priority` or
    /// not, see `cluster::admission`) if `may_create` allows one (the
    /// limits of the joining address).
    pub async fn place(
        &self,
        room: &str,
        priority: bool,
        may_create: &(dyn Fn() -> Result<(), limits::Limited> + Send + Sync),
    ) -> Result<(String, WorkerHandle), PlaceError> {
        let admission = &self.config.admission;
        let mut unreachable = 0;
        // Asked once per join, not once per round of a race.
        let mut may = None;
        // A race (another placement on the chosen worker since it was
        // read) is settled by reading again; someone wins each round.
        for _ in 0..MAX_PLACEMENT_ROUNDS {
            let now = Moment::now();
            let nodes = self.live_nodes(now).await?;
            let current = self.registry.room_node(room, now).await?;
            let running = current
                .as_ref()
                .and_then(|c| nodes.iter().find(|n| &n.report.id == c));
            let chosen = match running {
                Some(node) => {
                    if let Err(refusal) = admission.admit_join(node) {
                        self.metrics.joins_refused.inc();
                        return Err(refusal.into());
                    }
                    node
                }
                None => {
                    let redirect = !priority && self.registry.redirect().await?;
                    let node = admission
                        .place_new(&nodes, priority, redirect)
                        .inspect_err(|r| self.count_refused(*r))?;
                    // Charged only for a placement about to be made: a
                    // page retrying while no worker takes rooms uses none.
                    (*may.get_or_insert_with(may_create))
                        .inspect_err(|_| self.metrics.limited.inc())?;
                    let placed = self
                        .registry
                        .assign_room(room, &node.report.id, current.as_deref(), node.pending, now)
                        .await?;
                    match placed {
                        Assigned::Placed => {
                            self.metrics.rooms_placed.inc();
                            if priority {
                                self.metrics.priority_rooms_placed.inc();
                            }
                            tracing::info!(room = %crate::privacy::room(room), node = node.report.id, priority, "room placed");
                            node
                        }
                        // Someone placed it first: the next round reads it
                        // as running, and admits a join there as any other.
                        // Or the chosen worker got rooms since it was read.
                        Assigned::Elsewhere(_) | Assigned::Raced => continue,
                    }
                }
            };
            match self.pool.link(chosen).await {
                Ok(h) => return Ok((chosen.report.id.clone(), h)),
                Err(_) => {
                    unreachable += 1;
                    if unreachable == MAX_UNREACHABLE {
                        break;
                    }
                }
            }
        }
        Err(PlaceError::Unreachable)
    }

    /// A new room not placed: sent to partners when there are some.
    fn count_refused(&self, refusal: Refusal) {
        match refusal {
            Refusal::Busy | Refusal::Redirected if !self.config.partners.is_empty() => {
                self.metrics.rooms_redirected.inc()
            }
            Refusal::Busy | Refusal::Redirected => self.metrics.rooms_refused.inc(),
            Refusal::Full | Refusal::NoWorker => {}
        }
    }

    /// The worker a room is on now, without placing it.
    pub async fn locate(&self, room: &str) -> Option<(String, WorkerHandle)> {
        let now = Moment::now();
        let id = self.registry.room_node(room, now).await.ok()??;
        let nodes = self.live_nodes(now).await.ok()?;
        let node = nodes.iter().find(|n| n.report.id == id)?;
        let h = self.pool.link(node).await.ok()?;
        Some((id, h))
    }
}

/// The HTTP application: web client, signalling, operators' API, health.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/room-name", get(|| async { room_name::generate() }))
        .merge(api::routes())
        .merge(web::routes())
        .with_state(state)
}

/// How often the tables of addresses are swept of idle ones (in
/// handshakes).
const FORGET_EVERY: u64 = 1024;

async fn ws(
    headers: HeaderMap,
    uri: Uri,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A header that is not text is no origin a browser sends: refused.
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap_or(""))
    };
    let host = text(header::HOST).or_else(|| uri.authority().map(|a| a.as_str()));
    if !origin::allowed(text(header::ORIGIN), host, &state.0.config.allowed_origins) {
        return (
            StatusCode::FORBIDDEN,
            "pages of another site may not use this server's signalling (Origin not allowed)",
        )
            .into_response();
    }
    let control = &state.0;
    // Some proxies add a header line of their own rather than append to
    // the client's: every line counts, in order.
    let forwarded: Vec<&str> = headers
        .get_all(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .map(|v| v.to_str().unwrap_or("unknown"))
        .collect();
    let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
    let client = client_addr::client_addr(
        peer.ip(),
        forwarded.as_deref(),
        &control.config.trusted_proxies,
    );
    // The TCP peer was checked at accept; a client behind a trusted proxy
    // is checked here.
    if !control.config.access.admits(client) {
        return (
            StatusCode::FORBIDDEN,
            "this network may not use this service",
        )
            .into_response();
    }
    if let Some(limits) = &control.limits {
        if control.handshakes.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            limits.forget_idle();
        }
    }
    let open = match control.limits.as_ref().map(|l| l.open(client)).transpose() {
        Ok(open) => open,
        Err(limited) => {
            control.metrics.limited.inc();
            return (StatusCode::TOO_MANY_REQUESTS, limited.to_string()).into_response();
        }
    };
    upgrade
        // Frames above this are refused by the WebSocket layer itself; the
        // session gives a clear error for anything between its own limit
        // and this one. It is also what a socket may hold of a message
        // whose last fragment never comes: at four times the session's
        // limit, 480 such sockets from 8 addresses held 1 GB.
        .max_message_size(WS_MESSAGE_BUDGET)
        .max_frame_size(WS_MESSAGE_BUDGET)
        .on_upgrade(move |socket| socket::run(socket, state, client, open))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let control = &state.0;
    // Headroom as of this scrape, or of the last placement within a second.
    control.refresh_gauges(Moment::now()).await;
    let token = control.config.metrics_token.as_deref();
    control.metrics.scrape(token, &headers)
}

/// Ready when calls can be served: with an in-process worker, its media
/// loop turned recently (a stuck media thread freezes every call even though
/// HTTP still answers); otherwise the registry answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let ready = match &state.0.local_stats {
        Some(stats) => stats.alive(2_000),
        None => state.0.registry.nodes(Moment::now()).await.is_ok(),
    };
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "not ready",
        )
            .into_response()
    }
}
