//! `parloir worker`: the media plane alone, on any host. It checks its
//! secret with the signal server, reports its load (to Redis, or to the
//! signal server), serves the control channel, and drains on SIGTERM.

use crate::access::{reload_on_hangup, Access, Reload};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{bind, shutdown_signal, StartError};
use crate::cluster::auth;
use crate::cluster::control;
use crate::cluster::registry::RedisRegistry;
use crate::cluster::reporter::{NodeInfo, ReportError, Reporter, Sink};
use crate::cluster::tls::ClusterTls;
use crate::config::{MediaTcpAddr, WorkerConfig};
use crate::metrics::{Metrics, Role};
use crate::worker::{self, Command, MediaConfig, MediaTcp, WorkerHandle, WorkerStats};

#[derive(Clone)]
struct WorkerState {
    worker: WorkerHandle,
    stats: Arc<WorkerStats>,
    metrics: Arc<Metrics>,
    secret: String,
    metrics_token: Option<String>,
}

/// Runs a worker until it has drained (SIGTERM, or a drain from the API)
/// or its secret is refused; `reload` reads the access rules again on
/// SIGHUP (`crate::access`).
pub async fn run(args: WorkerConfig, reload: Option<Reload>) -> Result<(), StartError> {
    crate::privacy::log_personal_data(args.log_personal_data);
    let access = Access::new(args.access_rules()?);
    if let Some(reload) = reload {
        tokio::spawn(reload_on_hangup(access.clone(), reload));
    }
    let signal = args.signal.trim_end_matches('/').to_string();
    let cluster_tls = args
        .cluster_ca
        .as_deref()
        .map(|path| ClusterTls::load(Path::new(path)))
        .transpose()?;
    let client = crate::net::http_client(cluster_tls.as_ref().map(|t| &*t.config))?;
    hello(&client, &signal, &args.secret).await?;

    let (worker, stats) = worker::spawn(MediaConfig {
        bind: args.media,
        announce: args.announce,
        tcp: match MediaTcpAddr::resolve(args.media_tcp, args.media) {
            MediaTcpAddr::At(addr) => MediaTcp::Listen(addr),
            MediaTcpAddr::Off => MediaTcp::Off,
        },
        access: access.clone(),
        shards: crate::config::media_threads(args.media_threads),
        steer_to: args.media_steer_to,
    })?;
    let media = worker.media_addr;
    let listener = bind(args.http).await?;
    let http = listener.local_addr().map_err(|source| StartError::Http {
        addr: args.http,
        source,
    })?;
    let scheme = if args.tls().is_some() {
        "https"
    } else {
        "http"
    };
    let control_ip = args
        .announce
        .unwrap_or_else(|| crate::net::announce_ip_for(http.ip()));
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", media.ip(), media.port()));
    let metrics = Arc::new(Metrics::new(&id, Role::Worker));
    let info = NodeInfo {
        id: id.clone(),
        control: args
            .control_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("{scheme}://{}", SocketAddr::new(control_ip, http.port()))),
        media: media.to_string(),
        capacity_pps: args.capacity_pps,
    };
    let sink = match &args.redis {
        Some(url) => Sink::Registry(Arc::new(RedisRegistry::connect(url).await?)),
        None => Sink::Signal {
            url: signal.clone(),
            secret: args.secret.clone(),
            client,
        },
    };
    let state = WorkerState {
        worker: worker.clone(),
        stats: stats.clone(),
        metrics: metrics.clone(),
        secret: args.secret.clone(),
        metrics_token: args.metrics_token.clone(),
    };
    let app = Router::new()
        .route("/control", get(control_ws))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    // The control channel stays open while draining: calls go on, and a
    // restarted signal server must still reach them.
    let running = super::http(
        listener,
        app,
        args.tls(),
        None,
        std::future::pending(),
        access,
    )
    .await?;
    let server = tokio::spawn(running.serve);
    tracing::info!(id, control = info.control, %media, "worker ready");
    println!(
        "Parloir worker {id} ready: media {media}, control {}",
        info.control
    );

    let reporter =
        tokio::spawn(Reporter::new(info, stats.clone()).run(sink, move |r| metrics.set_worker(r)));
    tokio::select! {
        refused = reporter => {
            server.abort();
            return Err(match refused {
                Ok(ReportError::Refused) => StartError::Refused("the signal server refused this worker's secret".into()),
                Ok(e) => StartError::Refused(e.to_string()),
                Err(e) => StartError::Refused(e.to_string()),
            });
        }
        _ = shutdown_signal() => {
            tracing::info!("SIGTERM: draining");
            worker.post(Command::Drain {
                deadline_secs: args.drain_timeout,
            });
        }
        _ = wait_drained(&stats, None) => {}
    }
    // Calls go on; leave when the last one ends, or after the deadline
    // (the media thread then moves everyone still there).
    // A deadline too far to represent means "wait for the last call".
    let deadline =
        Instant::now().checked_add(Duration::from_secs(args.drain_timeout.saturating_add(5)));
    wait_drained(&stats, deadline).await;
    // One more report cycle so the registry sees the worker empty.
    tokio::time::sleep(Duration::from_millis(600)).await;
    tracing::info!("drained; exiting");
    server.abort();
    Ok(())
}

/// Resolves once the worker drains and has no participant left (or at
/// `deadline`).
async fn wait_drained(stats: &WorkerStats, deadline: Option<Instant>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if stats.is_draining() && stats.peers() == 0 {
            return;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
    }
}

/// Checks the secret with the signal server before anything starts. A
/// signal server that is not up yet is waited for.
async fn hello(client: &reqwest::Client, signal: &str, secret: &str) -> Result<(), StartError> {
    let mut wait = Duration::from_millis(250);
    loop {
        match client
            .get(format!("{signal}/cluster/hello"))
            .bearer_auth(secret)
            .timeout(Duration::from_secs(3))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r)
                if r.status() == StatusCode::UNAUTHORIZED
                    || r.status() == StatusCode::FORBIDDEN =>
            {
                return Err(StartError::Refused(format!(
                    "the signal server at {signal} refused this worker: wrong secret"
                )));
            }
            Ok(r) => tracing::warn!(status = %r.status(), "signal server not ready"),
            Err(e) => tracing::warn!("signal server unreachable: {e}"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

async fn control_ws(
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
    State(state): State<WorkerState>,
) -> Response {
    if !auth::authorized(&headers, &state.secret) {
        tracing::warn!("control connection with a wrong secret refused");
        return (StatusCode::UNAUTHORIZED, "wrong secret").into_response();
    }
    upgrade
        .max_message_size(4 << 20)
        .on_upgrade(move |socket| control::serve_connection(socket, state.worker))
}

async fn metrics_text(State(state): State<WorkerState>, headers: HeaderMap) -> Response {
    state
        .metrics
        .scrape(state.metrics_token.as_deref(), &headers)
}

async fn readyz(State(state): State<WorkerState>) -> Response {
    if state.stats.alive(2_000) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "media loop not running").into_response()
    }
}
