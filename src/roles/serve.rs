//! `parloir serve`: signalling, web client and one embedded worker in one
//! process, with in-memory state. No other service needed.

use std::sync::Arc;
use std::time::Instant;

use super::{bind, http, Running, StartError};
use crate::access::{reload_on_hangup, Access, Reload};
use crate::cluster::registry::{Memory, Moment, Registry};
use crate::cluster::reporter::{NodeInfo, Reporter, Sink};
use crate::config::{MediaTcpAddr, ServeConfig};
use crate::metrics::{Metrics, Role};
use crate::signal::pool::Pool;
use crate::signal::{self, AppState, Control, SignalConfig};
use crate::state_dir::{Doors, Owners, StateDir, StateError};
use crate::worker::{self, MediaConfig, MediaTcp};

/// Node id of the embedded worker.
pub const LOCAL_NODE: &str = "local";

/// Starts `parloir serve`; `reload` reads the access rules again on
/// SIGHUP (`crate::access`).
pub async fn start(
    config: ServeConfig,
    reload: Option<Reload>,
) -> Result<(Running, std::net::SocketAddr), StartError> {
    crate::privacy::log_personal_data(config.log_personal_data);
    let access = Access::new(config.access_rules()?);
    if let Some(reload) = reload {
        tokio::spawn(reload_on_hangup(access.clone(), reload));
    }
    let listener = bind(config.http).await?;
    // ICE-TCP on the HTTP port itself: the HTTP listener hands it the
    // connections that speak ICE-TCP.
    let (tcp, shared_port) = match MediaTcpAddr::resolve(config.media_tcp, config.media) {
        MediaTcpAddr::At(addr) if addr == config.http => {
            let addr = listener
                .local_addr()
                .map_err(|source| StartError::Http { addr, source })?;
            let (tx, connections) = tokio::sync::mpsc::channel(256);
            (MediaTcp::Shared { addr, connections }, Some(tx))
        }
        MediaTcpAddr::At(addr) => (MediaTcp::Listen(addr), None),
        MediaTcpAddr::Off => (MediaTcp::Off, None),
    };
    let (worker, stats) = worker::spawn(MediaConfig {
        bind: config.media,
        announce: config.announce,
        tcp,
        access: access.clone(),
        shards: crate::config::media_threads(config.media_threads),
        steer_to: config.media_steer_to,
    })?;
    let media = worker.media_addr;
    let (registry, door_key) = match kept_doors(&config)? {
        Some((state, doors, owners, key)) => {
            tracing::info!(
                folder = %state.path().display(),
                rooms = doors.len(),
                owned = owners.len(),
                "rooms' doors and owners kept across restarts"
            );
            let writer = state.door_writer();
            let memory = Memory::keeping_doors(doors, writer, key.clone(), Instant::now())
                .keeping_owners(owners, state.owner_writer(), key.clone());
            (memory, Some(key))
        }
        None => (Memory::default(), None),
    };
    let registry: Arc<dyn Registry> = Arc::new(registry);
    let metrics = Arc::new(Metrics::new(LOCAL_NODE, Role::Both));
    let mut reporter = Reporter::new(
        NodeInfo {
            id: LOCAL_NODE.into(),
            control: String::new(),
            media: media.to_string(),
            capacity_pps: config.capacity_pps,
        },
        stats.clone(),
    );
    // The first report before the first call, so the node is placeable.
    registry
        .put_report(&reporter.report(), Moment::now())
        .await?;
    tokio::spawn(reporter.run(Sink::Registry(registry.clone()), {
        let metrics = metrics.clone();
        move |r| metrics.set_worker(r)
    }));
    let control = Control::new(
        SignalConfig {
            secret: config.secret.clone(),
            max_participants: config.max_participants,
            last_n: config.last_n,
            admission: config.admission(),
            partners: config.partners.clone(),
            allowed_origins: config.allowed_origins.clone(),
            room_tokens: config.room_tokens()?,
            closed_rooms: config.closed_rooms,
            address_limits: !config.no_address_limits,
            trusted_proxies: config.trusted_proxies.clone(),
            access: access.clone(),
            grants: config.grant_key(),
            turn: config.turn(),
            metrics_token: config.metrics_token.clone(),
            door_key,
        },
        registry,
        Pool::new(
            config.secret.clone().unwrap_or_default(),
            Some((LOCAL_NODE.into(), worker)),
            None,
        ),
        metrics,
        Some(stats),
    );
    let running = http(
        listener,
        signal::app(AppState(Arc::new(control))),
        config.tls(),
        shared_port,
        super::shutdown_signal(),
        access,
    )
    .await?;
    Ok((running, media))
}

type Kept = (StateDir, Doors, Owners, String);

/// The state folder with the doors and owners it kept, and its key,
/// unless turned off. A folder given that cannot be used stops the start;
/// the default one only says so (a container's read-only home), and the
/// doors then last as long as the process.
fn kept_doors(config: &ServeConfig) -> Result<Option<Kept>, StateError> {
    let open = |path: &std::path::Path| -> Result<Kept, StateError> {
        let state = StateDir::open(path)?;
        let key = state.password_key()?;
        let doors = state.doors()?;
        let owners = state.owners()?;
        Ok((state, doors, owners, key))
    };
    match config.state_dir() {
        Ok(None) => Ok(None),
        Ok(Some(path)) => open(&path).map(Some),
        Err(None) => {
            tracing::warn!("no state folder (no HOME): a restart opens every locked room");
            Ok(None)
        }
        // The default folder, not writable here or held by another serve
        // of this user: said, not fatal. A file
        // there that cannot be read as doors still stops the start.
        Err(Some(path)) => match open(&path) {
            Err(e @ (StateError::Io { .. } | StateError::Busy { .. })) => {
                tracing::warn!("{e}: a restart opens every locked room (give --state-dir)");
                Ok(None)
            }
            kept => kept.map(Some),
        },
    }
}
