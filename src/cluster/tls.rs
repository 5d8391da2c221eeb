//! TLS between the parts of a cluster. The control channel carries the
//! cluster secret, the SDP (with the DTLS fingerprints that protect the
//! media) and participants' names: across hosts, someone on the path who
//! could read it could also swap a fingerprint and read the call. So a
//! worker may serve its control channel over TLS (`--tls-cert`), and the
//! signal server then checks the worker's certificate against the
//! cluster's certificate authority (`--cluster-ca`: a CA's certificate,
//! the workers' own self-signed ones, or the system's bundle for publicly
//! issued ones). A worker checks a signal server reached at `https://` the
//! same way. With a cluster CA configured, a plain control channel is
//! refused.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::net::Conn;

/// The certificates a cluster's TLS connections are checked against.
#[derive(Clone)]
pub struct ClusterTls {
    pub config: Arc<ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("cannot read the cluster CA {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the cluster CA {path} holds no usable certificate")]
    Empty { path: String },
}

impl ClusterTls {
    /// Trusts the PEM certificates in `path` (one or several).
    pub fn load(path: &Path) -> Result<Self, ClusterTlsError> {
        crate::net::install_crypto_provider();
        let display = || path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClusterTlsError::Read {
            path: display(),
            source,
        })?;
        let mut roots = RootCertStore::empty();
        // A system bundle may hold a certificate rustls cannot use; the
        // others still count.
        let certificates = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
        let (added, _) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(ClusterTlsError::Empty { path: display() });
        }
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ClusterTls {
            config: Arc::new(config),
        })
    }

    /// Opens TLS to `host:port`, the certificate checked for `host`.
    pub async fn connect(&self, host: &str, port: u16) -> std::io::Result<Box<dyn Conn>> {
        let tcp = TcpStream::connect((host, port)).await?;
        let _ = tcp.set_nodelay(true);
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        };
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?;
        Ok(Box::new(tls))
    }
}
