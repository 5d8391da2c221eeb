//! The control plane: HTTP, the web client, WebSocket signalling, room
//! placement and the operators' API.

mod api;
/// Types of the operators' API, shared with the command line.
pub mod api_types {
    pub use super::api::{NodeSummary, DEFAULT_DRAIN_SECS};
}
pub mod pool;
pub mod protocol;
pub mod room_name;
mod session;
pub mod turn;
mod web;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, Mutex};

use crate::cluster::placement::{NodeView, Placement, PlacementError};
use crate::cluster::registry::{Moment, Registry, RegistryError};
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
    /// New rooms are refused when every worker's stress is at or above it.
    pub admission_threshold: f64,
    /// TURN servers handed to clients, with credentials.
    pub turn: Option<turn::TurnConfig>,
}

pub struct Control {
    pub config: SignalConfig,
    pub registry: Arc<dyn Registry>,
    pub pool: Pool,
    placement: Mutex<Placement>,
    pub metrics: Arc<Metrics>,
    /// The in-process worker's figures (`parloir serve`): `/readyz` follows
    /// its media loop.
    pub local_stats: Option<Arc<WorkerStats>>,
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState(pub Arc<Control>);

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no media worker could be reached")]
    Unreachable,
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
            config,
            registry,
            pool,
            placement: Mutex::new(Placement::default()),
            metrics,
            local_stats,
        }
    }

    /// Live workers that this server can use.
    pub async fn live_nodes(&self, now: Moment) -> Result<Vec<NodeView>, RegistryError> {
        let mut nodes = self.registry.nodes(now).await?;
        nodes.retain(|n| !self.pool.is_lost(&n.report.id));
        self.metrics.signal_nodes.set(nodes.len() as f64);
        Ok(nodes)
    }

    /// The worker of `room`: where it already is, or a new placement.
    pub async fn place(&self, room: &str) -> Result<(String, WorkerHandle), PlaceError> {
        for _ in 0..3 {
            let now = Moment::now();
            let nodes = self.live_nodes(now).await?;
            let current = self.registry.room_node(room, now).await?;
            if let Some(node) = current
                .as_ref()
                .and_then(|c| nodes.iter().find(|n| &n.report.id == c))
            {
                match self.pool.link(node).await {
                    Ok(h) => return Ok((node.report.id.clone(), h)),
                    Err(_) => continue,
                }
            }
            let chosen = {
                let mut placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
                placement.choose(&nodes, self.config.admission_threshold, now.instant)
            };
            let chosen = match chosen {
                Ok(c) => c,
                Err(e) => {
                    self.metrics.rooms_refused.inc();
                    return Err(e.into());
                }
            };
            let actual = self
                .registry
                .assign_room(room, &chosen, current.as_deref(), now)
                .await?;
            if actual == chosen {
                self.metrics.rooms_placed.inc();
                tracing::info!(room, node = chosen, "room placed");
            }
            let Some(node) = nodes.iter().find(|n| n.report.id == actual) else {
                continue;
            };
            if let Ok(h) = self.pool.link(node).await {
                return Ok((actual, h));
            }
        }
        Err(PlaceError::Unreachable)
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

async fn ws(upgrade: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    upgrade
        // Frames above this are refused by the WebSocket layer itself; the
        // session gives a clear error for anything between its own limit
        // and this one.
        .max_message_size(session::MAX_MESSAGE * 4)
        .max_frame_size(session::MAX_MESSAGE * 4)
        .on_upgrade(move |socket| session::run(socket, state))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.0.metrics.render(),
    )
        .into_response()
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
