//! The processes `parloir` can be: `serve` (all in one), `signal` (control
//! plane only) and `worker` (media plane only). Each binds its sockets,
//! wires the library's parts together and runs until told to stop.

pub mod serve;
pub mod signal;
pub mod tls;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// A started process part: the HTTP address it listens on, and the future
/// that runs it.
pub struct Running {
    pub http: SocketAddr,
    /// Served over TLS (`https://`).
    pub tls: bool,
    pub serve: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
}

impl Running {
    /// The URL to open, with a loopback host for a wildcard address.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = match self.http.ip() {
            ip if ip.is_unspecified() => format!("127.0.0.1:{}", self.http.port()),
            _ => self.http.to_string(),
        };
        format!("{scheme}://{host}/")
    }
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
    #[error("cannot use the TLS certificate {path}: {source}")]
    Tls {
        path: String,
        source: std::io::Error,
    },
}

/// Binds the HTTP listener and returns the server future for `app`.
/// With `tls`, HTTPS and WSS (its certificate reloaded when renewed).
pub async fn http(
    addr: SocketAddr,
    app: axum::Router,
    tls: Option<tls::TlsFiles>,
) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Http { addr, source })?;
    let http = listener
        .local_addr()
        .map_err(|source| StartError::Http { addr, source })?;
    let Some(files) = tls else {
        let serve = Box::pin(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        });
        return Ok(Running {
            http,
            tls: false,
            serve,
        });
    };
    let config = files.load().await.map_err(|source| StartError::Tls {
        path: files.cert.display().to_string(),
        source,
    })?;
    tokio::spawn(files.watch(config.clone()));
    let listener = listener
        .into_std()
        .map_err(|source| StartError::Http { addr, source })?;
    let handle = axum_server::Handle::new();
    let stop = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let serve = Box::pin(async move {
        axum_server::from_tcp_rustls(listener, config)
            .handle(handle)
            .serve(app.into_make_service())
            .await
    });
    Ok(Running {
        http,
        tls: true,
        serve,
    })
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
