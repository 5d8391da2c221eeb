//! ICE over TCP (RFC 6544), the socket side: for networks that drop UDP.
//! The worker offers a passive TCP candidate on its media port's number;
//! browsers connect to it and send STUN, DTLS and SRTP in frames of a
//! 16-bit length each (RFC 4571). str0m does the ICE; this module accepts
//! connections, cuts frames out of the byte stream and writes frames back,
//! on the media thread, without a task per connection.
//!
//! Connections come from a listener of the media thread's own (`--media-tcp
//! ADDR`), or from the HTTP listener when both share one port: it tells
//! them apart by their first bytes and hands ICE-TCP ones over.
//!
//! Limits, so that TCP cannot be used to exhaust the worker: at most a
//! quarter of the open files the process may have ([`max_connections`]),
//! and [`max_per_address`] from one address; a frame larger than [`MAX_FRAME`]
//! closes its connection; a connection that has not carried a STUN request
//! the endpoint accepted within [`HANDSHAKE_DEADLINE`], or that stays
//! silent for [`IDLE_TIMEOUT`], is closed; what a slow reader leaves
//! unsent is bounded by [`MAX_BACKLOG`] (media frames beyond it are
//! dropped, as a full UDP socket would).

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};

use crate::per_address::{Held, Hold};
use tokio::sync::mpsc;

/// Bounds of [`max_connections`].
const MIN_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS: usize = 10_000;
/// After a failed accept (out of file descriptors), accepting pauses this
/// long rather than failing again in a loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Larger than any datagram str0m sends or accepts.
pub const MAX_FRAME: usize = 2048;
/// Connections one address (an IPv6 /64) may have on a shard, and waiting
/// for their first frame: an eighth of [`max_connections`] (625 with
/// 20,000 open files). 5,050 from one address used to take every slot and
/// cut the meetings that could only use TCP; a ward behind one NAT has
/// two or three per person (candidates, a restart's old one lingering).
pub fn max_per_address() -> usize {
    max_connections() / 8
}
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_BACKLOG: usize = 1 << 20;

/// Hands each complete frame of `buf` to `f` (RFC 4571: a 16-bit
/// big-endian length, then that many bytes), in place, and leaves an
/// incomplete one in `buf`.
pub fn each_frame(
    buf: &mut Vec<u8>,
    max: usize,
    mut f: impl FnMut(&[u8]),
) -> Result<(), FrameTooLarge> {
    let mut at = 0;
    while let Some(len) = buf.get(at..at + 2) {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len > max {
            return Err(FrameTooLarge(len));
        }
        let Some(frame) = buf.get(at + 2..at + 2 + len) else {
            break;
        };
        f(frame);
        at += 2 + len;
    }
    buf.drain(..at);
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub struct FrameTooLarge(pub usize);

/// An ICE-TCP connection the HTTP listener accepted and handed over, with
/// its peer's address (known from the accept: no system call to ask).
pub type HandedConnection = (std::net::TcpStream, SocketAddr);

/// Where ICE-TCP connections come from, as configured.
#[derive(Debug)]
pub enum MediaTcp {
    /// Nowhere: no TCP candidate.
    Off,
    /// A listener of the media thread's own, on this address.
    Listen(SocketAddr),
    /// The HTTP listener on `addr` (one port for everything), which hands
    /// over the connections that speak ICE-TCP.
    Shared {
        addr: SocketAddr,
        connections: mpsc::Receiver<HandedConnection>,
    },
}

/// Where connections come from, made before the media thread's runtime
/// exists (a tokio listener belongs to the runtime it was made in).
pub enum Incoming {
    None,
    Listener(std::net::TcpListener),
    Handed(mpsc::Receiver<HandedConnection>),
}

/// [`Incoming`], in the media thread's runtime.
enum Source {
    None,
    Listener(TcpListener),
    Handed(mpsc::Receiver<HandedConnection>),
}

impl Source {
    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        match self {
            Source::None => std::future::pending().await,
            Source::Listener(l) => l.accept().await,
            // One connection that cannot be taken (closed under us) is
            // dropped alone: an error here would pause all accepting.
            Source::Handed(rx) => loop {
                let Some((s, addr)) = rx.recv().await else {
                    return std::future::pending().await;
                };
                match TcpStream::from_std(s) {
                    Ok(s) => return Ok((s, addr)),
                    Err(e) => {
                        tracing::debug!(client = %crate::privacy::client(addr.ip()), "handed ICE-TCP connection lost: {e}")
                    }
                }
            },
        }
    }
}

/// Connections allowed at once: a quarter of the open files the process
/// may have, so that TCP alone cannot take the descriptors HTTP, the
/// control channel and the other workers' sockets need.
pub fn max_connections() -> usize {
    (crate::net::open_files_limit() / 4).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// Readiness of one connection, as the loop waits for it.
type Ready = Pin<Box<dyn Future<Output = (SocketAddr, Interest)> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

struct Connection {
    stream: Arc<TcpStream>,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    opened: Instant,
    last_heard: Instant,
    /// The endpoint accepted a STUN request from it.
    admitted: bool,
    /// A write readiness is awaited.
    waiting_write: bool,
    /// Its place among its address's connections.
    _hold: Hold,
}

/// The worker's TCP media connections.
pub struct IceTcp {
    source: Source,
    max_connections: usize,
    max_per_address: usize,
    connections: HashMap<SocketAddr, Connection>,
    per_address: Held,
    ready: FuturesUnordered<Ready>,
    /// Connections given frames since the last [`IceTcp::flush_pending`].
    pending: Vec<SocketAddr>,
    accept_after: Option<Instant>,
    pub counters: TcpCounters,
    /// Blocked networks get no ICE-TCP connection.
    access: crate::access::Access,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TcpCounters {
    pub accepted: u64,
    pub refused: u64,
    pub closed_bad_frame: u64,
    pub closed_deadline: u64,
    pub frames_dropped: u64,
}

/// What the loop gets from [`IceTcp::next`].
pub enum TcpEvent {
    Accepted,
    Ready(SocketAddr, Interest),
}

impl IceTcp {
    /// Takes its connections from `incoming`; inside the media thread's
    /// runtime.
    pub fn new(incoming: Incoming, access: crate::access::Access) -> std::io::Result<Self> {
        let source = match incoming {
            Incoming::None => Source::None,
            Incoming::Listener(l) => Source::Listener(TcpListener::from_std(l)?),
            Incoming::Handed(rx) => Source::Handed(rx),
        };
        Ok(IceTcp {
            source,
            max_connections: max_connections(),
            max_per_address: max_per_address(),
            connections: HashMap::new(),
            per_address: Held::default(),
            ready: FuturesUnordered::new(),
            pending: Vec::new(),
            accept_after: None,
            counters: TcpCounters::default(),
            access,
        })
    }

    /// Waits for a new connection or a connection's readiness.
    pub async fn next(&mut self) -> TcpEvent {
        let accepting = self.accept_after.is_none_or(|t| Instant::now() >= t);
        tokio::select! {
            r = self.source.accept(), if accepting => {
                match r {
                    Ok((stream, addr)) => {
                        self.accept_after = None;
                        self.accept(stream, addr);
                    }
                    Err(e) => {
                        tracing::warn!("tcp accept: {e}; pausing");
                        self.accept_after = Some(Instant::now() + ACCEPT_PAUSE);
                    }
                }
                TcpEvent::Accepted
            }
            Some((addr, interest)) = self.ready.next(), if !self.ready.is_empty() => {
                TcpEvent::Ready(addr, interest)
            }
            // Nothing to wait for here (accepting paused, no connection):
            // the media loop's other branches wake it.
            else => std::future::pending().await,
        }
    }

    fn accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        if !self.access.admits(addr.ip()) {
            return; // blocked: closed
        }
        if self.connections.len() >= self.max_connections {
            self.counters.refused += 1;
            return; // dropped: closed
        }
        let Some(hold) = self.per_address.take(addr.ip(), self.max_per_address) else {
            self.counters.refused += 1;
            return; // dropped: closed
        };
        let _ = stream.set_nodelay(true);
        tracing::trace!(client = %crate::privacy::client(addr.ip()), "ICE-TCP connection");
        let now = Instant::now();
        let stream = Arc::new(stream);
        self.ready.push(wait(stream.clone(), addr, Interest::Read));
        self.connections.insert(
            addr,
            Connection {
                stream,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                opened: now,
                last_heard: now,
                admitted: false,
                waiting_write: false,
                _hold: hold,
            },
        );
        self.counters.accepted += 1;
    }

    /// Reads what `addr` sent and hands each complete frame to `deliver`,
    /// which says whether it reached a peer (the connection's handshake is
    /// then made); a closed, failed or misbehaving connection is dropped.
    pub fn read(&mut self, addr: SocketAddr, now: Instant, mut deliver: impl FnMut(&[u8]) -> bool) {
        let Some(c) = self.connections.get_mut(&addr) else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        let mut open = true;
        loop {
            match c.stream.try_read(&mut chunk) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => {
                    c.inbuf.extend_from_slice(&chunk[..n]);
                    c.last_heard = now;
                    if c.inbuf.len() > 4 * MAX_FRAME {
                        break; // frames first; the rest stays readable
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        let admitted = &mut c.admitted;
        let framed = each_frame(&mut c.inbuf, MAX_FRAME, |frame| {
            if deliver(frame) {
                *admitted = true;
            }
        });
        if let Err(FrameTooLarge(len)) = framed {
            tracing::debug!(client = %crate::privacy::client(addr.ip()), len, "tcp frame too large: closed");
            self.counters.closed_bad_frame += 1;
            self.close(addr);
            return;
        }
        if open {
            self.ready
                .push(wait(c.stream.clone(), addr, Interest::Read));
        } else {
            self.close(addr);
        }
    }

    /// Frames `data` to `addr`; it is written by the next
    /// [`IceTcp::flush_pending`], with whatever else that connection gets
    /// meanwhile (one system call for a burst, not one per frame).
    pub fn send(&mut self, addr: SocketAddr, data: &[u8]) {
        let Some(c) = self.connections.get_mut(&addr) else {
            self.counters.frames_dropped += 1;
            return;
        };
        let Ok(len) = u16::try_from(data.len()) else {
            self.counters.frames_dropped += 1;
            return;
        };
        if c.outbuf.len() + data.len() + 2 > MAX_BACKLOG {
            self.counters.frames_dropped += 1;
            return;
        }
        if c.outbuf.is_empty() && !c.waiting_write {
            self.pending.push(addr);
        }
        c.outbuf.extend_from_slice(&len.to_be_bytes());
        c.outbuf.extend_from_slice(data);
    }

    /// Writes what the connections given frames have waiting.
    pub fn flush_pending(&mut self) {
        // The list is handed back afterwards, so its buffer is reused
        // from one flush to the next (flushes follow every burst).
        let mut pending = std::mem::take(&mut self.pending);
        for addr in pending.drain(..) {
            self.flush(addr);
        }
        self.pending = pending;
    }

    /// Writes what `addr` has waiting, until the socket would block.
    pub fn flush(&mut self, addr: SocketAddr) {
        let Some(c) = self.connections.get_mut(&addr) else {
            return;
        };
        c.waiting_write = false;
        while !c.outbuf.is_empty() {
            match c.stream.try_write(&c.outbuf) {
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.waiting_write = true;
                    self.ready
                        .push(wait(c.stream.clone(), addr, Interest::Write));
                    return;
                }
                Err(_) => {
                    self.close(addr);
                    return;
                }
            }
        }
    }

    /// Closes connections past their handshake deadline or silent too long.
    pub fn close_expired(&mut self, now: Instant) {
        let expired: Vec<SocketAddr> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                let handshake =
                    c.admitted || now.saturating_duration_since(c.opened) < HANDSHAKE_DEADLINE;
                !handshake || now.saturating_duration_since(c.last_heard) >= IDLE_TIMEOUT
            })
            .map(|(a, _)| *a)
            .collect();
        self.counters.closed_deadline += expired.len() as u64;
        for addr in expired {
            self.close(addr);
        }
    }

    /// Forgets a connection and shuts its socket down: the peer sees it
    /// closed at once, and the readiness still awaited for it fires and
    /// drops the last reference.
    fn close(&mut self, addr: SocketAddr) {
        if let Some(c) = self.connections.remove(&addr) {
            let _ = socket2::SockRef::from(&*c.stream).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether a write readiness for `addr` is still wanted.
    pub fn wants_write(&self, addr: SocketAddr) -> bool {
        self.connections.get(&addr).is_some_and(|c| c.waiting_write)
    }
}

fn wait(stream: Arc<TcpStream>, addr: SocketAddr, interest: Interest) -> Ready {
    Box::pin(async move {
        // An error shows at the read or write that follows.
        let _ = match interest {
            Interest::Read => stream.readable().await,
            Interest::Write => stream.writable().await,
        };
        (addr, interest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(buf: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, FrameTooLarge> {
        let mut out = Vec::new();
        each_frame(buf, MAX_FRAME, |f| out.push(f.to_vec()))?;
        Ok(out)
    }

    #[test]
    fn frames_are_cut_by_their_length_and_a_partial_one_waits() {
        let mut buf = vec![0, 3, b'a', b'b', b'c', 0, 1, b'x', 0, 4, b'p'];
        assert_eq!(frames(&mut buf).unwrap(), [b"abc".to_vec(), b"x".to_vec()]);
        assert_eq!(buf, [0, 4, b'p'], "the partial frame waits for its bytes");
        buf.extend_from_slice(b"qrs");
        assert_eq!(frames(&mut buf).unwrap(), [b"pqrs".to_vec()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_too_large_is_refused_before_its_bytes_arrive() {
        // 65,535 announced, nothing behind: refused at once, not waited for.
        let mut buf = vec![0xff, 0xff];
        assert_eq!(frames(&mut buf), Err(FrameTooLarge(65_535)));
    }

    #[test]
    fn an_empty_frame_and_a_lone_length_byte_are_fine() {
        let mut buf = vec![0, 0, 0];
        assert_eq!(frames(&mut buf).unwrap(), [Vec::<u8>::new()]);
        assert_eq!(buf, [0]);
    }
}
