//! `parloir signal`: the control plane alone. Workers join its pool by
//! reporting to it (or to the Redis it shares with other signal servers).

use std::path::Path;
use std::sync::Arc;

use super::{bind, http, Running, StartError};
use crate::access::{reload_on_hangup, Access, Reload};
use crate::cluster::registry::{Memory, RedisRegistry, Registry};
use crate::cluster::tls::ClusterTls;
use crate::metrics::{Metrics, Role};
use crate::signal::pool::Pool;
use crate::signal::{self, AppState, Control, SignalConfig};

/// Starts `parloir signal`; `reload` reads the access rules again on
/// SIGHUP (`crate::access`).
pub async fn start(
    args: crate::config::SignalConfig,
    reload: Option<Reload>,
) -> Result<Running, StartError> {
    crate::privacy::log_personal_data(args.log_personal_data);
    let access = Access::new(args.access_rules()?);
    if let Some(reload) = reload {
        tokio::spawn(reload_on_hangup(access.clone(), reload));
    }
    let registry: Arc<dyn Registry> = match &args.redis {
        Some(url) => Arc::new(RedisRegistry::connect(url).await?),
        None => Arc::new(Memory::default()),
    };
    let cluster_tls = args
        .cluster_ca
        .as_deref()
        .map(|path| ClusterTls::load(Path::new(path)))
        .transpose()?;
    let control = Control::new(
        SignalConfig {
            secret: Some(args.secret.clone()),
            max_participants: args.max_participants,
            last_n: args.last_n,
            admission: args.admission(),
            partners: args.partners.clone(),
            allowed_origins: args.allowed_origins.clone(),
            room_tokens: args.room_tokens()?,
            closed_rooms: args.closed_rooms,
            address_limits: !args.no_address_limits,
            trusted_proxies: args.trusted_proxies.clone(),
            access: access.clone(),
            grants: args.grant_key(),
            turn: args.turn(),
            door_key: None,
            metrics_token: args.metrics_token.clone(),
        },
        registry,
        Pool::new(args.secret.clone(), None, cluster_tls),
        Arc::new(Metrics::new(&args.node_id(), Role::Signal)),
        None,
    );
    http(
        bind(args.http).await?,
        signal::app(AppState(Arc::new(control))),
        args.tls(),
        None,
        super::shutdown_signal(),
        access,
    )
    .await
}
