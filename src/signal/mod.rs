//! The control plane: HTTP, the web client, and WebSocket signalling.

pub mod protocol;
mod rate;
pub mod room_name;
pub mod rooms;
mod session;
mod web;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::worker::WorkerHandle;
use rooms::Rooms;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub rooms: Arc<Rooms>,
    pub worker: WorkerHandle,
}

/// The HTTP application: web client, signalling and health.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/room-name", get(|| async { room_name::generate() }))
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

/// Ready when the media loop turned recently: a stuck media thread freezes
/// every call even though HTTP still answers.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.worker.stats.alive(2_000) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "media loop not running",
        )
            .into_response()
    }
}
