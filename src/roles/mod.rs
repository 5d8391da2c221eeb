//! The processes `parloir` can be: `serve` (all in one), `signal` (control
//! plane only) and `worker` (media plane only). Each binds its sockets,
//! wires the library's parts together and runs until told to stop.

pub mod serve;
pub mod signal;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// A started process part: the HTTP address it listens on, and the future
/// that runs it.
pub struct Running {
    pub http: SocketAddr,
    pub serve: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error(transparent)]
    Registry(#[from] crate::cluster::registry::RegistryError),
    #[error("cannot listen on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// Binds the HTTP listener and returns the server future for `app`.
pub async fn http(addr: SocketAddr, app: axum::Router) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Http { addr, source })?;
    let http = listener
        .local_addr()
        .map_err(|source| StartError::Http { addr, source })?;
    let serve = Box::pin(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    Ok(Running { http, serve })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
