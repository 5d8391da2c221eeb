//! HTTPS and WSS on the HTTP listener (`--tls-cert`, `--tls-key`), with
//! rustls. A certificate renewed on disk (certbot, an ACME client) is
//! picked up without a restart: the files are checked every
//! [`RELOAD_EVERY`] and, when they changed, new connections get the new
//! certificate while those already open (a call's WebSocket) go on with
//! theirs.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The first DNS name a certificate (DER) is for, if it names one that is
/// not a wildcard. Read at start: a renewal for another name shows in
/// the URL at the next start.
fn dns_name(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::{name::GeneralName, SubjectAltName};
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let (_, names) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .ok()??;
    names.0.iter().find_map(|n| match n {
        // A wildcard (`*.example.org`) names no host to open.
        GeneralName::DnsName(name) if !name.to_string().starts_with('*') => Some(name.to_string()),
        _ => None,
    })
}

/// How often the certificate files are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The certificate new connections get; replaced when it is renewed.
pub struct ServerTls {
    config: RwLock<Arc<ServerConfig>>,
    /// The first name the certificate was made for (its first DNS
    /// subject alternative name), read at start: the host of the URL to
    /// open, which must match it.
    name: Option<String>,
}

impl ServerTls {
    /// An acceptor with the certificate in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }
}

impl crate::config::TlsFiles {
    /// Reads the files: a first error here stops the start, with its reason.
    pub async fn load(&self) -> std::io::Result<Arc<ServerTls>> {
        let config = self.read()?;
        let name = std::fs::read(&self.cert)
            .ok()
            .and_then(|pem| CertificateDer::pem_slice_iter(&pem).next()?.ok())
            .and_then(|der| dns_name(&der));
        Ok(Arc::new(ServerTls {
            config: RwLock::new(config),
            name,
        }))
    }

    /// Two small files: read in place, not worth a thread.
    fn read(&self) -> std::io::Result<Arc<ServerConfig>> {
        crate::net::install_crypto_provider();
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}"))
        };
        let cert = std::fs::read(&self.cert)?;
        let key = std::fs::read(&self.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate", &e))?;
        if chain.is_empty() {
            return Err(invalid("certificate", &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| invalid("key", &e))?;
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert)?, m(&self.key)?))
    }

    /// Reloads `tls` whenever the files change, for as long as the process
    /// runs. A renewal written in two steps (the certificate, then the key)
    /// may fail to load after the first, and loads when the second changes
    /// the files again; files that fail are tried again at every look (a
    /// file caught half written keeps its time stamp once finished), and
    /// logged once. Meanwhile the previous certificate is served.
    pub async fn watch(self, tls: Arc<ServerTls>) {
        let mut loaded = self.modified();
        let mut warned = None;
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = self.modified();
            if now.is_none() || now == loaded {
                continue;
            }
            match self.read() {
                Ok(config) => {
                    tls.replace(config);
                    loaded = now;
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Err(e) if warned != now => {
                    warned = now;
                    tracing::warn!(
                        cert = %self.cert.display(),
                        "TLS certificate not reloaded, the previous one is kept: {e}"
                    );
                }
                Err(_) => {}
            }
        }
    }
}
