//! `parloir serve`: signalling, web client and one embedded worker in one
//! process, no other service needed.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::ServeConfig;
use crate::signal::{self, rooms::Rooms, AppState};
use crate::worker::{self, MediaConfig, WorkerError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("cannot listen on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started server: the address it listens on, and the future to await.
pub struct Running {
    pub http: SocketAddr,
    pub media: SocketAddr,
    serve: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>,
}

impl Running {
    pub async fn wait(self) -> std::io::Result<()> {
        self.serve.await
    }
}

/// Binds every socket (so errors show before anything is announced).
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    let worker = worker::spawn(MediaConfig {
        bind: config.media,
        announce: config.announce,
    })?;
    let media = worker.media_addr;
    let state = AppState {
        rooms: Arc::new(Rooms::new(config.max_participants)),
        worker,
    };
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| ServeError::Http {
            addr: config.http,
            source,
        })?;
    let http = listener.local_addr().map_err(|source| ServeError::Http {
        addr: config.http,
        source,
    })?;
    let app = signal::app(state);
    let serve = Box::pin(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    Ok(Running { http, media, serve })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
