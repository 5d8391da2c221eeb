//! HTTPS and WSS on the HTTP listener (`--tls-cert`, `--tls-key`), with
//! rustls. A certificate renewed on disk (certbot, an ACME client) is
//! picked up without a restart: the files are checked every
//! [`RELOAD_EVERY`] and, when they changed, new connections get the new
//! certificate while those already open (a call's WebSocket) go on with
//! theirs.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;

/// How often the certificate files are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads the files: a first error here stops the start, with its reason.
    pub async fn load(&self) -> std::io::Result<RustlsConfig> {
        // One process-wide provider, the one str0m uses too; installing it
        // twice is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        RustlsConfig::from_pem_file(&self.cert, &self.key).await
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert)?, m(&self.key)?))
    }

    /// Reloads `config` whenever the files change, for as long as the
    /// process runs. A renewal written in two steps (the certificate, then
    /// the key) may fail to load after the first, is logged once, and
    /// loads when the second changes the files again; meanwhile the
    /// previous certificate is served.
    pub async fn watch(self, config: RustlsConfig) {
        let mut seen = self.modified();
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = self.modified();
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            match config.reload_from_pem_file(&self.cert, &self.key).await {
                Ok(()) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::warn!(
                    cert = %self.cert.display(),
                    "TLS certificate not reloaded, the previous one is kept: {e}"
                ),
            }
        }
    }
}
