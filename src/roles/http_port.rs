//! The HTTP port: accepts TCP connections for axum, with TLS when a
//! certificate is configured. When the media shares the port (`serve
//! --media-tcp` naming the `--http` address, one port 443 for everything),
//! each new connection is told apart by its first byte: a TLS handshake
//! starts with 0x16 and HTTP with an ASCII letter, while ICE-TCP (RFC 4571)
//! starts with the high byte of a frame's length, below 0x08 since frames
//! stay under 2 KB. The first byte is only peeked, so an ICE-TCP connection
//! reaches the media thread whole.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::tls::ServerTls;
use crate::net::{Conn, Peer};
use crate::per_address::{Held, Hold};

/// A new connection has this long to send its first byte and finish its
/// TLS handshake.
pub const OPENING_DEADLINE: Duration = Duration::from_secs(10);
/// How long requests under way may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A request's headers must arrive whole within this long, and a
/// connection kept alive between requests is closed after as long
/// without one. A browser sends its headers in one packet; a slow mobile
/// link takes a second or two.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// Connections being opened at once (no first byte yet, or TLS
/// unfinished) from one address (an IPv6 /64); beyond, its new ones are
/// closed. A page opens a few at once; 1,050 silent ones from one address
/// used to lock everyone else out of the one-port and TLS modes.
const MAX_OPENING_PER_ADDRESS: usize = 64;
/// The same for everyone together: the last line, sixteen addresses'
/// worth, so that silent connections cannot take every descriptor.
const MAX_OPENING: usize = 16 * MAX_OPENING_PER_ADDRESS;
/// HTTP connections open at once from one address, kept alive or not
/// (a WebSocket counts among its own once upgraded). A browser keeps six
/// per server, idle ones close after [`HEADER_DEADLINE`]; a ward behind one
/// NAT loading the page together stays well below. 19,985 kept alive from
/// one address used to take every descriptor of the process.
const MAX_OPEN_PER_ADDRESS: usize = 512;
/// After a failed accept (out of descriptors), accepting pauses this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What a connection speaks, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP, or TLS carrying it.
    Http,
    /// RFC 4571 frames of STUN, DTLS and SRTP.
    IceTcp,
}

impl Protocol {
    pub fn of_first_byte(first: u8) -> Self {
        if first < TLS_HANDSHAKE {
            Protocol::IceTcp
        } else {
            Protocol::Http
        }
    }
}

/// A connection ready for HTTP, its client, and its place among its
/// address's open connections (given back when it ends).
type Opened = (Box<dyn Conn>, SocketAddr, Hold);

/// The listener axum serves from: connections opened (TLS done) by a task
/// of its own.
pub struct HttpPort {
    opened: mpsc::Receiver<Opened>,
}

/// How the accepting task opens a connection.
struct Opener {
    tls: Option<Arc<ServerTls>>,
    /// Where ICE-TCP connections go, when the media shares the port.
    media: Option<mpsc::Sender<crate::worker::HandedConnection>>,
}

impl HttpPort {
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<ServerTls>>,
        media: Option<mpsc::Sender<crate::worker::HandedConnection>>,
        access: crate::access::Access,
    ) -> std::io::Result<Self> {
        let (tx, opened) = mpsc::channel(64);
        tokio::spawn(accept(
            listener,
            Arc::new(Opener { tls, media }),
            tx,
            access,
        ));
        Ok(HttpPort { opened })
    }
}

/// Serves `app` on the connections of `port` until `shutdown` resolves,
/// then lets the requests under way finish (as `axum::serve` does).
pub async fn serve(
    mut port: HttpPort,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // Closed when shutting down; each connection holds a `done` clone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, addr, hold) = tokio::select! {
            opened = port.opened.recv() => match opened {
                Some(opened) => opened,
                None => {
                    return Err(std::io::Error::other("the accepting task ended"));
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(Peer(addr)));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let mut stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let _done = done;
            let _hold = hold;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!("HTTP connection: {e}");
                    }
                    return;
                }
                _ = stop.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    // No new connections while the open ones finish: the accepting task
    // ends with the port.
    drop(port);
    drop(stop_tx);
    drop(done_tx);
    // Every connection ended (their `done` dropped), or a client that
    // stopped reading its response held on too long.
    if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open at shutdown; closed");
    }
    Ok(())
}

/// Accepts until `serve` stops taking connections.
async fn accept(
    listener: TcpListener,
    opener: Arc<Opener>,
    tx: mpsc::Sender<Opened>,
    access: crate::access::Access,
) {
    let opening = Arc::new(Semaphore::new(MAX_OPENING));
    let opening_from = Held::default();
    let open_from = Held::default();
    let direct = opener.tls.is_none() && opener.media.is_none();
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("http accept: {e}; pausing");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
            _ = tx.closed() => return,
        };
        if !access.admits(addr.ip()) {
            // Blocked: closed before a byte is read (HTTP, TLS, ICE-TCP).
            continue;
        }
        let _ = stream.set_nodelay(true);
        let Some(open) = open_from.take(addr.ip(), MAX_OPEN_PER_ADDRESS) else {
            tracing::debug!(client = %crate::privacy::client(addr.ip()), "too many connections from this address: closed");
            continue;
        };
        if direct {
            if tx.send((Box::new(stream), addr, open)).await.is_err() {
                return;
            }
            continue;
        }
        let Some(hold) = opening_from.take(addr.ip(), MAX_OPENING_PER_ADDRESS) else {
            tracing::debug!(client = %crate::privacy::client(addr.ip()), "too many connections opening from this address: closed");
            continue;
        };
        let Ok(permit) = opening.clone().try_acquire_owned() else {
            tracing::debug!(client = %crate::privacy::client(addr.ip()), "too many connections opening: closed");
            continue;
        };
        let (opener, tx) = (opener.clone(), tx.clone());
        tokio::spawn(async move {
            let opened = tokio::time::timeout(OPENING_DEADLINE, opener.open(stream, addr)).await;
            drop((permit, hold));
            if let Ok(Some((conn, addr))) = opened {
                let _ = tx.send((conn, addr, open)).await;
            }
        });
    }
}

impl Opener {
    /// Sorts a connection out: ICE-TCP goes to the media thread (`None`
    /// here), HTTP is returned, after its TLS handshake if any.
    async fn open(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
    ) -> Option<(Box<dyn Conn>, SocketAddr)> {
        if let Some(media) = &self.media {
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await.ok()? == 0 {
                return None; // closed before a word
            }
            let protocol = Protocol::of_first_byte(first[0]);
            tracing::trace!(client = %crate::privacy::client(addr.ip()), ?protocol, "connection opened");
            if protocol == Protocol::IceTcp {
                let stream = stream.into_std().ok()?;
                if media.try_send((stream, addr)).is_err() {
                    tracing::debug!(client = %crate::privacy::client(addr.ip()), "media thread busy: ICE-TCP connection closed");
                }
                return None;
            }
        }
        match &self.tls {
            None => Some((Box::new(stream), addr)),
            Some(tls) => match tls.acceptor().accept(stream).await {
                Ok(tls) => Some((Box::new(tls), addr)),
                Err(e) => {
                    tracing::debug!(client = %crate::privacy::client(addr.ip()), "TLS handshake failed: {e}");
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_protocols_apart() {
        // A TLS ClientHello, HTTP methods, and RFC 4571 frames of a STUN
        // binding request (100 bytes) and of the largest frame allowed.
        assert_eq!(Protocol::of_first_byte(0x16), Protocol::Http);
        for method in ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE"] {
            assert_eq!(
                Protocol::of_first_byte(method.as_bytes()[0]),
                Protocol::Http
            );
        }
        assert_eq!(Protocol::of_first_byte(0x00), Protocol::IceTcp);
        let largest = u16::try_from(crate::worker::MAX_TCP_FRAME).unwrap();
        assert_eq!(
            Protocol::of_first_byte(largest.to_be_bytes()[0]),
            Protocol::IceTcp
        );
    }
}
