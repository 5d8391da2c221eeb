//! The operators' API, and the endpoints workers use. Everything here needs
//! `Authorization: Bearer SECRET`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

use super::AppState;
use crate::cluster::auth;
use crate::cluster::load::Rates;
use crate::cluster::registry::Moment;
use crate::cluster::report::{LoadReport, NodeState, ShardLoad};
use crate::worker::Command;

/// Seconds a drained worker keeps its calls before moving them.
pub const DEFAULT_DRAIN_SECS: u64 = 600;

/// One worker, as `GET /api/nodes` and `parloir nodes` show it: its
/// report, with the room list counted and the control URL as `address`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeSummary {
    pub id: String,
    pub address: String,
    pub media: String,
    pub state: NodeState,
    pub stress: f64,
    /// What admission reads (absent from earlier servers' answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress_smoothed: Option<f64>,
    pub rooms: usize,
    pub participants: usize,
    /// Flattened, as in the report.
    #[serde(flatten)]
    pub rates: Rates,
    /// Its media shards: rooms, participants and CPU of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardLoad>,
}

impl From<LoadReport> for NodeSummary {
    fn from(r: LoadReport) -> Self {
        NodeSummary {
            id: r.id,
            address: r.control,
            media: r.media,
            state: r.state,
            stress: r.stress,
            stress_smoothed: r.stress_smoothed,
            rooms: r.rooms.len(),
            participants: r.participants,
            rates: r.rates,
            shards: r.shards,
        }
    }
}

/// `POST /api/priority-rooms`: the room (a fresh name by default) and how
/// long its link is valid.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriorityRoomRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Hours the link is valid [default: 24; at most 90 days].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
}

/// A priority room: its link's path (`/r/ROOM#grant=...`; the grant after
/// `#` never reaches a server's logs), the grant, and when it expires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PriorityRoom {
    pub room: String,
    pub grant: String,
    /// Unix seconds.
    pub expires: u64,
    pub path: String,
}

/// Default validity of a priority link: a day of visits.
const DEFAULT_GRANT_HOURS: f64 = 24.0;

/// `GET /api/admission`, and `PUT` with `redirect` to turn redirection of
/// new rooms on or off.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AdmissionState {
    /// New ordinary rooms go to the partners at once.
    pub redirect: bool,
    #[serde(default)]
    pub soft: f64,
    #[serde(default)]
    pub hard: f64,
    /// Ordinary rooms of the usual size the cluster still takes.
    #[serde(default)]
    pub headroom: usize,
    #[serde(default)]
    pub partners: Vec<crate::signal::partner::Partner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetAdmission {
    redirect: bool,
}

/// One room, as `GET /api/rooms` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: String,
    pub node: String,
    pub participants: usize,
    /// Its moderators locked it with a password (kept by the cluster for a
    /// failover; the digest itself is not shown).
    #[serde(default)]
    pub locked: bool,
    /// Its moderators turned its lobby on.
    #[serde(default)]
    pub lobby: bool,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/nodes", get(nodes))
        .route("/api/rooms", get(rooms))
        .route("/api/nodes/{id}/drain", post(drain))
        .route("/api/priority-rooms", post(priority_room))
        .route("/api/admission", get(admission).put(set_admission))
        .route("/cluster/hello", get(hello))
        .route("/cluster/report", post(report))
}

/// Refusals are rare and small; boxing keeps the happy path lean.
fn check(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(secret) = &state.0.config.secret else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "the operators' API is off: start with --secret",
        )));
    };
    if auth::authorized(headers, secret) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong secret (Authorization: Bearer ...)",
        )))
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn nodes(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    match state.0.registry.nodes(Moment::now()).await {
        Ok(nodes) => {
            let out: Vec<NodeSummary> = nodes.into_iter().map(|n| n.report.into()).collect();
            Json(out).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn rooms(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    match state.0.registry.nodes(Moment::now()).await {
        Ok(nodes) => {
            let mut out: Vec<RoomSummary> = nodes
                .into_iter()
                .flat_map(|n| {
                    let id = n.report.id;
                    n.report.rooms.into_iter().map(move |r| RoomSummary {
                        room: r.room,
                        node: id.clone(),
                        participants: r.participants,
                        locked: r.door.as_ref().is_some_and(|d| d.password.is_some()),
                        lobby: r.door.as_ref().is_some_and(|d| d.lobby),
                    })
                })
                .collect();
            out.sort_by(|a, b| a.room.cmp(&b.room));
            Json(out).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn drain(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    let nodes = match state.0.registry.nodes(Moment::now()).await {
        Ok(n) => n,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(node) = nodes.iter().find(|n| n.report.id == id) else {
        return error(StatusCode::NOT_FOUND, "no live worker with that id");
    };
    if let Err(e) = state.0.registry.set_draining(&id).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    // The worker itself stops taking rooms and exits when its calls end.
    match state.0.pool.link(node).await {
        Ok(h) => h.post(Command::Drain {
            deadline_secs: DEFAULT_DRAIN_SECS,
        }),
        Err(e) => tracing::warn!(node = id, "drain: worker not told: {e}"),
    }
    tracing::info!(node = id, "draining");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "state": "draining" })),
    )
        .into_response()
}

async fn priority_room(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    let req: PriorityRoomRequest = if body.is_empty() {
        PriorityRoomRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid request: {e}")),
        }
    };
    let Some(key) = &state.0.config.grants else {
        return error(
            StatusCode::FORBIDDEN,
            "no secret to sign priority links with",
        );
    };
    let room = req.room.unwrap_or_else(super::room_name::generate);
    if let Err(e) = super::room_name::validate(&room) {
        return error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let hours = req.hours.unwrap_or(DEFAULT_GRANT_HOURS);
    let max = crate::signal::grant::MAX_VALIDITY.as_secs_f64() / 3600.0;
    if !(hours > 0.0 && hours <= max) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("hours must be above 0 and at most {max}"),
        );
    }
    let now = crate::worker::stats::unix_secs();
    let valid_for = Duration::from_secs_f64(hours * 3600.0);
    let grant = key.mint(&room, now, valid_for);
    tracing::info!(room = %crate::privacy::room(&room), hours, "priority room created");
    let out = PriorityRoom {
        path: format!("/r/{room}#grant={grant}"),
        expires: now + valid_for.as_secs(),
        room,
        grant,
    };
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn admission(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    let control = &state.0;
    let now = Moment::now();
    let read = async {
        let nodes = control.live_nodes(now).await?;
        let redirect = control.registry.redirect().await?;
        Ok::<_, crate::cluster::registry::RegistryError>((nodes, redirect))
    };
    match read.await {
        Ok((nodes, redirect)) => {
            let t = control.config.admission;
            Json(AdmissionState {
                redirect,
                soft: t.soft,
                hard: t.hard,
                headroom: t.headroom(&nodes),
                partners: control.config.partners.clone(),
            })
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn set_admission(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    let set: SetAdmission = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid request: {e}")),
    };
    // Redirecting with nowhere to send people would only show them "New
    // calls go to our partners today" with nothing to click.
    if set.redirect && state.0.config.partners.is_empty() {
        return error(
            StatusCode::CONFLICT,
            "no partner to redirect to: start the signal server with --partner NAME=URL \
             (PARLOIR_PARTNER, or partners in its file) first",
        );
    }
    if let Err(e) = state.0.registry.set_redirect(set.redirect).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    tracing::info!(redirect = set.redirect, "new rooms redirect switched");
    admission(State(state), headers).await
}

async fn hello(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    Json(json!({ "ok": true })).into_response()
}

/// The body is read as bytes and parsed only once the secret is shown:
/// strangers get no parser's work and no parser's error text.
async fn report(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check(&state, &headers) {
        return *r;
    }
    let report: LoadReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid load report: {e}"),
            )
        }
    };
    match state.0.registry.put_report(&report, Moment::now()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::report::test_report;

    #[test]
    fn a_summary_keeps_its_keys_and_adds_the_reports_other_rates() {
        let mut r = test_report("w1", 0.25, 3);
        r.rates.packets_in_per_s = 50.0;
        r.stress_smoothed = Some(0.2);
        let json = serde_json::to_value(NodeSummary::from(r)).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected = vec![
            // Since the first version (tests/cluster.rs reads some).
            "id",
            "address",
            "media",
            "state",
            "stress",
            "stress_smoothed",
            "rooms",
            "participants",
            "packets_in_per_s",
            "packets_out_per_s",
            "cpu_process",
            // With the report's `Rates` embedded.
            "bits_in_per_s",
            "bits_out_per_s",
            "cpu_host",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["address"], "http://127.0.0.1:1");
        assert_eq!(json["rooms"], 3);
        assert_eq!(json["packets_in_per_s"], 50.0);
    }

    #[test]
    fn a_summary_from_an_earlier_server_still_reads() {
        let earlier = r#"{"id": "w1", "address": "http://10.0.0.1:9100",
            "media": "10.0.0.1:10000", "state": "draining", "stress": 0.25,
            "rooms": 3, "participants": 7, "packets_in_per_s": 1.0,
            "packets_out_per_s": 2.0, "cpu_process": 0.5}"#;
        let n: NodeSummary = serde_json::from_str(earlier).unwrap();
        assert_eq!(n.rates.packets_out_per_s, 2.0);
        assert_eq!(n.rates.cpu_host, 0.0);
    }
}
