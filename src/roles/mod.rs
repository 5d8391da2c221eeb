//! The processes `parloir` can be: `serve` (all in one), `signal` (control
//! plane only) and `worker` (media plane only). Each binds its sockets,
//! wires the library's parts together and runs until told to stop.

pub mod http_port;
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
    /// The name the TLS certificate is for, when it names one.
    pub tls_name: Option<String>,
    pub serve: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
}

impl Running {
    /// The URL to open. On a wildcard address: the name the TLS
    /// certificate is for (a browser refuses the certificate under any
    /// other host), else the loopback address.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = self.http.port();
        let host = match (self.http.ip(), &self.tls_name) {
            (ip, Some(name)) if ip.is_unspecified() && self.tls && port == 443 => name.clone(),
            (ip, Some(name)) if ip.is_unspecified() && self.tls => format!("{name}:{port}"),
            (ip, _) if ip.is_unspecified() => format!("127.0.0.1:{port}"),
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
    #[error(transparent)]
    ClusterTls(#[from] crate::cluster::tls::ClusterTlsError),
    #[error("cannot make the HTTP client for the signal servers: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::state_dir::StateError),
    #[error("cannot use the TLS certificate {path}: {source}")]
    Tls {
        path: String,
        source: std::io::Error,
    },
}

/// Binds the HTTP listener.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Http { addr, source })
}

/// The server future for `app` on `listener`, until `shutdown` resolves:
/// HTTPS and WSS with `tls` (its certificate reloaded when renewed); with
/// `media`, ICE-TCP connections on the same port go there
/// (`http_port.rs`).
pub async fn http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<crate::config::TlsFiles>,
    media: Option<tokio::sync::mpsc::Sender<crate::worker::HandedConnection>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    access: crate::access::Access,
) -> Result<Running, StartError> {
    let http = listener.local_addr().map_err(|source| StartError::Http {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let server_tls = match &tls {
        Some(files) => {
            let loaded = files.load().await.map_err(|source| StartError::Tls {
                path: files.cert.display().to_string(),
                source,
            })?;
            tokio::spawn(files.clone().watch(loaded.clone()));
            Some(loaded)
        }
        None => None,
    };
    let tls_name = server_tls
        .as_ref()
        .and_then(|t| t.name().map(str::to_string));
    let port = http_port::HttpPort::new(listener, server_tls, media, access)
        .map_err(|source| StartError::Http { addr: http, source })?;
    let serve = Box::pin(http_port::serve(port, app, shutdown));
    Ok(Running {
        http,
        tls: tls.is_some(),
        tls_name,
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
