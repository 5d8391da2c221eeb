//! `parloir serve`: signalling, web client and one embedded worker in one
//! process, with in-memory state. No other service needed.

use std::sync::Arc;

use super::{http, Running, StartError};
use crate::cluster::registry::{Memory, Moment, Registry};
use crate::cluster::reporter::{NodeInfo, Reporter, Sink};
use crate::config::ServeConfig;
use crate::metrics::{Metrics, Role};
use crate::signal::pool::Pool;
use crate::signal::{self, AppState, Control, SignalConfig};
use crate::worker::{self, MediaConfig};

/// Node id of the embedded worker.
pub const LOCAL_NODE: &str = "local";

pub async fn start(config: ServeConfig) -> Result<(Running, std::net::SocketAddr), StartError> {
    let (worker, stats) = worker::spawn(MediaConfig {
        bind: config.media,
        announce: config.announce,
    })?;
    let media = worker.media_addr;
    let registry: Arc<dyn Registry> = Arc::new(Memory::default());
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
    tokio::spawn(reporter.run(Sink::Registry(registry.clone()), metrics.clone()));
    let control = Control::new(
        SignalConfig {
            secret: config.secret.clone(),
            max_participants: config.max_participants,
            last_n: config.last_n,
            admission_threshold: config.admission_threshold,
            turn: config.turn(),
        },
        registry,
        Pool::new(
            config.secret.clone().unwrap_or_default(),
            Some((LOCAL_NODE.into(), worker)),
        ),
        metrics,
        Some(stats),
    );
    let running = http(
        config.http,
        signal::app(AppState(Arc::new(control))),
        config.tls(),
    )
    .await?;
    Ok((running, media))
}
