//! The media thread: the one UDP socket, the batch sender, sleeping, and
//! the channels to the control plane, around an [`Endpoint`] that decides
//! everything else.
//!
//! One thread owns all of it, so the packet path has no lock. Each loop turn
//! drains the socket until it would block (a burst costs one wake-up, not
//! one per packet), applies a bounded number of pending commands, drives
//! timers, then sends what the endpoint produced.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::batch_send::BatchSender;
use super::endpoint::Endpoint;
use super::ice_tcp::{IceTcp, Incoming, Interest, MediaTcp, TcpEvent};
use super::peer::Candidates;
use super::sessions::Sessions;
use super::stats::{Shared, Snapshot};
use super::{Envelope, PeerEvent, WorkerError, WorkerHandle};
use crate::ids::ParticipantId;

/// Largest datagram we accept; WebRTC stays under ~1200 bytes.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read per turn before commands and timers get a look in.
const RECV_BATCH: usize = 256;
/// Datagrams handled before what they caused is sent: small enough to keep
/// the added delay in microseconds, large enough to poll each subscriber
/// once per burst.
const SEND_EVERY: usize = 16;
/// Datagrams encrypted before they are sent, in a drain that makes more:
/// enough to spread a system call's fixed cost, few enough that the first
/// subscribers of a large room get a packet without waiting for the rest.
const SEND_AT: usize = 32;
/// Commands applied per turn, and the time they may take, before the
/// socket is read again: a stream of commands (a flood of offers) must not
/// starve forwarding. One command always runs.
const COMMANDS_PER_TURN: usize = 32;
const COMMAND_BUDGET: Duration = Duration::from_millis(2);
/// Longest sleep, so the heartbeat behind `/readyz` stays fresh.
const MAX_SLEEP: Duration = Duration::from_millis(200);
/// How often ICE-TCP connections are checked for their deadlines.
const TCP_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the load figures are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Socket buffers: a keyframe burst to many subscribers must not overflow.
const SOCKET_BUFFER: usize = 4 << 20;
/// Exit status when the media thread panicked: calls on this process are
/// dead, so it stops and lets a supervisor (systemd, Docker, the cluster's
/// failover) start again and move them.
const PANIC_EXIT: i32 = 70;

#[derive(Debug)]
pub struct MediaConfig {
    /// Address the UDP socket binds to.
    pub bind: SocketAddr,
    /// Address announced in ICE candidates (the public or container-outside
    /// address); `None` uses the bound one, or the host's main address when
    /// bound to `0.0.0.0`.
    pub announce: Option<std::net::IpAddr>,
    /// Where ICE-TCP connections come from.
    pub tcp: MediaTcp,
    /// Who may send media at all (`crate::access`).
    pub access: crate::access::Access,
}

/// Binds the media sockets and starts the media thread. Returns the handle
/// to command it and the figures it publishes.
pub fn spawn(config: MediaConfig) -> Result<(WorkerHandle, Arc<Shared>), WorkerError> {
    let socket = bind(config.bind).map_err(|e| {
        WorkerError::Internal(format!("cannot bind media socket {}: {e}", config.bind))
    })?;
    let local = socket
        .local_addr()
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
    let (incoming, tcp_local) = match config.tcp {
        MediaTcp::Off => (Incoming::None, None),
        MediaTcp::Listen(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| WorkerError::Internal(format!("cannot listen on TCP {addr}: {e}")))?;
            let local = listener
                .local_addr()
                .map_err(|e| WorkerError::Internal(e.to_string()))?;
            (Incoming::Listener(listener), Some(local))
        }
        MediaTcp::Shared { addr, connections } => (Incoming::Handed(connections), Some(addr)),
    };
    let ip = config
        .announce
        .unwrap_or_else(|| crate::net::announce_ip_for(local.ip()));
    let media_addr = SocketAddr::new(ip, local.port());
    // TCP bound to an address of its own is announced there; bound to
    // every address (0.0.0.0:443 for the one port), at the media's.
    let tcp_ip = |tcp: SocketAddr| match config.announce {
        None if !tcp.ip().is_unspecified() => tcp.ip(),
        _ => ip,
    };
    let candidates = Candidates {
        udp: media_addr,
        tcp: tcp_local.map(|tcp| SocketAddr::new(tcp_ip(tcp), tcp.port())),
    };
    let cert = super::peer::dtls_cert()?;
    let (tx, rx) = mpsc::channel(1024);
    let stats = Arc::new(Shared::default());
    let shared = stats.clone();
    let access = config.access;
    std::thread::Builder::new()
        .name("parloir-media".into())
        .spawn(move || {
            supervise(
                move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!("media runtime: {e}");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let sockets = UdpSocket::from_std(socket)
                            .and_then(|udp| Ok((udp, IceTcp::new(incoming, access.clone())?)));
                        match sockets {
                            Ok((socket, tcp)) => {
                                let endpoint =
                                    Endpoint::new(candidates, cert, rand::random(), Instant::now());
                                run(socket, tcp, endpoint, rx, shared, access.cached()).await
                            }
                            Err(e) => tracing::error!("media socket: {e}"),
                        }
                    });
                },
                || std::process::exit(PANIC_EXIT),
            )
        })
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
    match candidates.tcp {
        Some(tcp) => tracing::info!(%local, udp = %media_addr, %tcp, "media worker listening"),
        None => tracing::info!(%local, udp = %media_addr, "media worker listening (no ICE-TCP)"),
    }
    Ok((WorkerHandle::new(tx, media_addr), stats))
}

/// Runs the media thread's body; if it panics, says so and calls
/// `on_panic` (the process exits: a worker whose media thread died would
/// otherwise answer HTTP with every call frozen).
fn supervise(body: impl FnOnce(), on_panic: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        tracing::error!("the media thread panicked; exiting so that the calls move elsewhere");
        on_panic();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

async fn run(
    socket: UdpSocket,
    tcp: IceTcp,
    mut endpoint: Endpoint,
    mut commands: mpsc::Receiver<Envelope>,
    shared: Arc<Shared>,
    mut access: crate::access::CachedAccess,
) {
    let mut io = Io {
        socket,
        tcp,
        sender: BatchSender::default(),
        events: Sessions::default(),
    };
    let mut next_tcp_check = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    loop {
        let now = Instant::now();
        for n in 1..=RECV_BATCH {
            match io.socket.try_recv_from(&mut buf) {
                Ok((len, source)) => {
                    if access.admits(source.ip()) {
                        endpoint.handle_datagram(now, Protocol::Udp, source, &buf[..len]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors from a closed peer port land here on Linux.
                    tracing::debug!("recv: {e}");
                    break;
                }
            }
            if n % SEND_EVERY == 0 {
                io.flush(&mut endpoint, now);
            }
        }
        io.flush(&mut endpoint, now);
        let commands_from = Instant::now();
        for _ in 0..COMMANDS_PER_TURN {
            match commands.try_recv() {
                Ok(envelope) => io.command(&mut endpoint, envelope),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
            if commands_from.elapsed() >= COMMAND_BUDGET {
                break;
            }
        }
        let now = Instant::now();
        endpoint.handle_timeout(now);
        io.flush(&mut endpoint, now);
        if now >= next_tcp_check {
            io.tcp.close_expired(now);
            next_tcp_check = now + TCP_CHECK_EVERY;
        }
        if now.duration_since(last_publish) >= PUBLISH_EVERY {
            publish(&endpoint, &shared);
            last_publish = now;
        }

        let deadline = endpoint.poll_timeout().min(now + MAX_SLEEP);
        tokio::select! {
            r = io.socket.readable() => {
                if let Err(e) = r {
                    tracing::error!("media socket failed: {e}");
                    return;
                }
            }
            envelope = commands.recv() => match envelope {
                Some(envelope) => io.command(&mut endpoint, envelope),
                None => return,
            },
            ev = io.tcp.next() => io.on_tcp(&mut endpoint, ev),
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// What the media thread does with the outside world.
struct Io {
    socket: UdpSocket,
    tcp: IceTcp,
    sender: BatchSender,
    /// Where each participant's events go (its signalling session).
    events: Sessions<mpsc::Sender<PeerEvent>>,
}

impl Io {
    /// Applies one command and replies. The reply leaves before anything
    /// the command caused (an answer before the server offer it triggers).
    fn command(&mut self, endpoint: &mut Endpoint, envelope: Envelope) {
        let Envelope { cmd, events, reply } = envelope;
        let now = Instant::now();
        let (attaches, releases) = (cmd.attaches(), cmd.releases());
        let result = endpoint.handle_command(now, cmd);
        if let (Ok(_), Some((p, session)), Some(events)) = (&result, attaches, events) {
            self.events.attach(p, session, events);
        }
        if let Some((p, session)) = releases {
            self.events.release(p, session);
        }
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
        self.flush(endpoint, now);
    }

    /// A TCP connection opened, or has data to read or room to write.
    fn on_tcp(&mut self, endpoint: &mut Endpoint, ev: TcpEvent) {
        let now = Instant::now();
        match ev {
            TcpEvent::Accepted => {}
            TcpEvent::Ready(addr, Interest::Read) => {
                self.tcp.read(addr, now, |frame| {
                    endpoint.handle_datagram(now, Protocol::Tcp, addr, frame)
                });
                self.flush(endpoint, now);
            }
            TcpEvent::Ready(addr, Interest::Write) => {
                if self.tcp.wants_write(addr) {
                    self.tcp.flush(addr);
                }
            }
        }
    }

    /// Sends everything the endpoint has to send, and hands its events on.
    fn flush(&mut self, endpoint: &mut Endpoint, now: Instant) {
        while let Some(batch) = endpoint.poll_transmit(now, SEND_AT) {
            // Runs of UDP datagrams leave in one batch each; frames for
            // ICE-TCP peers are queued on their connections.
            let mut unsent = 0;
            for run in batch.chunk_by(|a, b| a.proto == b.proto) {
                if run[0].proto == Protocol::Tcp {
                    for t in run {
                        self.tcp.send(t.destination, &t.contents);
                    }
                } else {
                    unsent += self.sender.send_all(&self.socket, run);
                }
            }
            endpoint.count_unsent(unsent);
        }
        self.tcp.flush_pending();
        while let Some((participant, event)) = endpoint.poll_event() {
            let closed = matches!(event, PeerEvent::Closed { .. });
            if let Some(tx) = self.events.get(participant) {
                notify(participant, tx, event);
            }
            if closed {
                self.events.remove(participant);
            }
        }
    }
}

/// Tells a participant's signalling. A full queue means that side is gone
/// or stuck; the media thread never waits for it.
fn notify(participant: ParticipantId, tx: &mpsc::Sender<PeerEvent>, event: PeerEvent) {
    match tx.try_send(event) {
        Ok(()) => {}
        // The session ended; its leave or detach is on its way.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(e) => tracing::warn!(peer = participant, "signalling queue refused an event: {e}"),
    }
}

fn publish(endpoint: &Endpoint, shared: &Shared) {
    let rooms = endpoint.rooms().collect();
    let (tracks_in, tracks_out) = endpoint.track_counts();
    shared.publish(Snapshot {
        counters: *endpoint.counters(),
        rooms,
        peers: endpoint.participants(),
        tracks_in,
        tracks_out,
    });
    shared
        .draining
        .store(endpoint.is_draining(), std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_media_thread_stops_the_process() {
        let mut stopped = false;
        supervise(|| panic!("a bug"), || stopped = true);
        assert!(stopped);
        let mut stopped = false;
        supervise(|| {}, || stopped = true);
        assert!(!stopped);
    }
}
