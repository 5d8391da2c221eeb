//! The media shards: each a thread with its UDP socket on the media port,
//! its ICE-TCP connections, its batch sender, sleeping, and the channels to
//! the control plane, around an [`Endpoint`] that decides everything else.
//!
//! One thread owns all of a shard, so the packet path has no lock. Each
//! loop turn reads the socket (at most [`RECV_BATCH`] datagrams: a burst
//! costs one wake-up, not one per packet), takes the datagrams other shards
//! handed over, applies a bounded number of pending commands, drives
//! timers, then sends what the endpoint produced. A datagram the kernel
//! gave this shard's socket but that belongs to another shard's participant
//! is handed to that shard (`shard.rs`).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::batch_send::BatchSender;
use super::endpoint::{Delivery, Endpoint};
use super::ice_tcp::{HandedConnection, IceTcp, Incoming, Interest, MediaTcp, TcpEvent};
use super::outbox::Outboxes;
use super::peer::{dtls_cert, Candidates, Local};
use super::shard::{Flows, ShardId, MAX_SHARDS};
use super::shard_set::ShardSet;
use super::stats::{Shared, Snapshot, WorkerStats};
use super::steering;
use super::tcp_handoff::{self, Accepted};
use super::{cores, Envelope, WorkerError, WorkerHandle};

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
/// Datagrams waiting to be taken by another shard: beyond, they are
/// dropped as a full socket buffer would drop them.
const HANDOFF_QUEUE: usize = 4096;
/// Exit status when a media thread panicked: calls on this process are
/// dead, so it stops and lets a supervisor (systemd, Docker, the cluster's
/// failover) start again and move them.
const PANIC_EXIT: i32 = 70;

#[derive(Debug)]
pub struct MediaConfig {
    /// Address the UDP sockets bind to.
    pub bind: SocketAddr,
    /// Address announced in ICE candidates (the public or container-outside
    /// address); `None` uses the bound one, or the host's main address when
    /// bound to `0.0.0.0`.
    pub announce: Option<std::net::IpAddr>,
    /// Where ICE-TCP connections come from.
    pub tcp: MediaTcp,
    /// Who may send media at all (`crate::access`).
    pub access: crate::access::Access,
    /// Media shards (threads), each pinned to one of the process's cores.
    pub shards: usize,
    /// Diagnosis and tests: the kernel gives every datagram to this
    /// shard's socket (a reuseport BPF program), so that every other
    /// shard's traffic is handed over.
    pub steer_to: Option<ShardId>,
}

/// A datagram another shard's socket received for this shard.
struct Handed {
    source: SocketAddr,
    data: Vec<u8>,
}

/// Binds the media sockets and starts the shards. Returns the handle to
/// command them and the figures they publish.
pub fn spawn(config: MediaConfig) -> Result<(WorkerHandle, Arc<WorkerStats>), WorkerError> {
    let n = config.shards.clamp(1, MAX_SHARDS);
    let failed =
        |what: String| move |e: std::io::Error| WorkerError::Internal(format!("{what}: {e}"));
    let first = bind(config.bind, n > 1)
        .map_err(failed(format!("cannot bind media socket {}", config.bind)))?;
    let local = first
        .local_addr()
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
    let mut sockets = vec![first];
    for _ in 1..n {
        sockets
            .push(bind(local, true).map_err(failed(format!("cannot bind media socket {local}")))?);
    }
    let flows = Flows::default();
    if let Some(to) = config.steer_to {
        steering::steer_all_to(&sockets[0], to.min(n - 1))
            .map_err(failed("cannot steer datagrams".into()))?;
    } else if n > 1 {
        let socket = sockets[0]
            .try_clone()
            .map_err(failed("media socket".into()))?;
        steering::follow(socket, flows.clone());
    }
    let (tcp_queues, tcp_inboxes): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| mpsc::channel::<HandedConnection>(256))
        .unzip();
    let (incoming, tcp_local) = match config.tcp {
        MediaTcp::Off => (None, None),
        MediaTcp::Listen(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| WorkerError::Internal(format!("cannot listen on TCP {addr}: {e}")))?;
            let local = listener
                .local_addr()
                .map_err(|e| WorkerError::Internal(e.to_string()))?;
            (Some(Accepted::Listener(listener)), Some(local))
        }
        MediaTcp::Shared { addr, connections } => (Some(Accepted::Handed(connections)), Some(addr)),
    };
    // One shard takes its connections as they come; several, each from
    // the task that reads which shard a connection is for.
    let mut tcp_sources: Vec<Incoming> = match incoming {
        None => (0..n).map(|_| Incoming::None).collect(),
        Some(Accepted::Listener(l)) if n == 1 => vec![Incoming::Listener(l)],
        Some(Accepted::Handed(rx)) if n == 1 => vec![Incoming::Handed(rx)],
        Some(accepted) => {
            tcp_handoff::spawn(accepted, tcp_queues, flows.clone(), config.access.clone())
                .map_err(failed("ICE-TCP".into()))?;
            tcp_inboxes.into_iter().map(Incoming::Handed).collect()
        }
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
    let cert = dtls_cert()?;
    let cores = cores::allowed();
    let (handoff_queues, handoff_inboxes): (Vec<_>, Vec<_>) =
        (0..n).map(|_| mpsc::channel(HANDOFF_QUEUE)).unzip();
    let mut queues = Vec::new();
    let mut shared = Vec::new();
    for (id, ((socket, tcp), inbox)) in sockets
        .into_iter()
        .zip(tcp_sources.drain(..))
        .zip(handoff_inboxes)
        .enumerate()
    {
        let (tx, rx) = mpsc::channel(1024);
        queues.push(tx);
        let stats = Arc::new(Shared::default());
        shared.push(stats.clone());
        let shard = Shard {
            id,
            flows: flows.clone(),
            others: handoff_queues.clone(),
            inbox,
        };
        let local = Local {
            candidates,
            cert: cert.clone(),
            shard: id,
        };
        let core = (n > 1)
            .then(|| cores.get(id % cores.len().max(1)).copied())
            .flatten();
        let access = config.access.clone();
        std::thread::Builder::new()
            .name(format!("parloir-media-{id}"))
            .spawn(move || {
                supervise(
                    move || {
                        if let Some(core) = core {
                            cores::pin(core);
                        }
                        if let Err(e) = cores::set_nice(cores::MEDIA_NICE) {
                            if id == 0 {
                                tracing::info!(
                                    "media threads keep the default priority ({e}): on a busy \
                                     host, grant CAP_SYS_NICE or a nice limit of 30 \
                                     (README, \"Every core\")"
                                );
                            }
                        }
                        stats
                            .tid
                            .store(cores::thread_id(), std::sync::atomic::Ordering::Relaxed);
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
                                .and_then(|udp| Ok((udp, IceTcp::new(tcp, access.clone())?)));
                            match sockets {
                                Ok((socket, tcp)) => {
                                    let endpoint =
                                        Endpoint::new(local, rand::random(), Instant::now());
                                    let cached = access.cached();
                                    run(socket, tcp, endpoint, rx, shard, stats, cached).await
                                }
                                Err(e) => tracing::error!("media socket: {e}"),
                            }
                        });
                    },
                    || std::process::exit(PANIC_EXIT),
                )
            })
            .map_err(|e| WorkerError::Internal(e.to_string()))?;
    }
    match candidates.tcp {
        Some(tcp) => {
            tracing::info!(%local, udp = %media_addr, %tcp, shards = n, "media worker listening")
        }
        None => {
            tracing::info!(%local, udp = %media_addr, shards = n, "media worker listening (no ICE-TCP)")
        }
    }
    let stats = Arc::new(WorkerStats::new(shared));
    let shards = Arc::new(ShardSet::new(queues, stats.clone()));
    Ok((WorkerHandle::sharded(shards, media_addr), stats))
}

/// What a shard shares with the others of its worker.
struct Shard {
    id: ShardId,
    /// Who owns which flow.
    flows: Flows,
    /// Every shard's queue of handed datagrams (this one's too).
    others: Vec<mpsc::Sender<Handed>>,
    /// Datagrams handed to this shard.
    inbox: mpsc::Receiver<Handed>,
}

impl Shard {
    /// Hands a datagram that is not this shard's to its owner. Returns
    /// whether it found one.
    fn hand_over(&self, source: SocketAddr, data: &[u8]) -> bool {
        if self.others.len() < 2 {
            return false;
        }
        let Some(owner) = self.flows.owner(data, source).filter(|o| *o != self.id) else {
            return false;
        };
        let Some(queue) = self.others.get(owner) else {
            return false;
        };
        queue
            .try_send(Handed {
                source,
                data: data.to_vec(),
            })
            .is_ok()
    }
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

/// A UDP socket on `addr`; `shared` lets the other shards' sockets bind
/// the same port (`SO_REUSEPORT`: the kernel spreads datagrams over them
/// by a hash of their addresses).
fn bind(addr: SocketAddr, shared: bool) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

async fn run(
    socket: UdpSocket,
    tcp: IceTcp,
    mut endpoint: Endpoint,
    mut commands: mpsc::Receiver<Envelope>,
    shard: Shard,
    shared: Arc<Shared>,
    mut access: crate::access::CachedAccess,
) {
    let mut io = Io {
        socket,
        tcp,
        sender: BatchSender::default(),
        outboxes: Outboxes::default(),
        shard,
    };
    let mut next_tcp_check = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    loop {
        let now = Instant::now();
        for n in 1..=RECV_BATCH {
            match io.socket.try_recv_from(&mut buf) {
                Ok((len, source)) => {
                    let data = &buf[..len];
                    if access.admits(source.ip())
                        && endpoint.handle_datagram(now, Protocol::Udp, source, data)
                            == Delivery::Unknown
                        && !io.shard.hand_over(source, data)
                    {
                        // Garbage, a stranger, or media from a peer that
                        // already left.
                        endpoint.count_dropped(1);
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
        // What other shards' sockets received for this one's peers.
        for _ in 0..RECV_BATCH {
            let Ok(handed) = io.shard.inbox.try_recv() else {
                break;
            };
            io.take_handed(&mut endpoint, now, handed);
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
            Some(handed) = io.shard.inbox.recv() => {
                let now = Instant::now();
                io.take_handed(&mut endpoint, now, handed);
                io.flush(&mut endpoint, now);
            }
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
    outboxes: Outboxes,
    /// This shard's place among the worker's: the flow table it tells
    /// what it learns and forgets, the other shards' queues, its inbox.
    shard: Shard,
}

impl Io {
    /// A datagram another shard's socket received for one of ours.
    fn take_handed(&mut self, endpoint: &mut Endpoint, now: Instant, handed: Handed) {
        endpoint.count_handed_in();
        if endpoint.handle_datagram(now, Protocol::Udp, handed.source, &handed.data)
            == Delivery::Unknown
        {
            // Its peer left meanwhile.
            endpoint.count_dropped(1);
        }
    }

    /// Applies one command and replies. The reply leaves before anything
    /// the command caused (an answer before the server offer it triggers).
    fn command(&mut self, endpoint: &mut Endpoint, envelope: Envelope) {
        let Envelope { cmd, events, reply } = envelope;
        let now = Instant::now();
        let (attaches, releases) = (cmd.attaches(), cmd.releases());
        let result = endpoint.handle_command(now, cmd);
        if let (Ok(_), Some((p, session)), Some(events)) = (&result, attaches, events) {
            self.outboxes.attach(p, session, events);
        }
        if let Some((p, session)) = releases {
            self.outboxes.release(p, session);
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
                    let delivery = endpoint.handle_datagram(now, Protocol::Tcp, addr, frame);
                    if delivery == Delivery::Unknown {
                        endpoint.count_dropped(1);
                    }
                    delivery == Delivery::Delivered
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
            endpoint.count_dropped(unsent);
        }
        self.tcp.flush_pending();
        {
            // With one shard nobody reads the table: the changes are
            // only taken out.
            let mut flows = endpoint.poll_flows().peekable();
            if flows.peek().is_some() && self.shard.others.len() > 1 {
                self.shard.flows.apply(self.shard.id, flows);
            }
        }
        self.hand_events_on(endpoint);
    }

    /// Gives each participant's signalling its events.
    fn hand_events_on(&mut self, endpoint: &mut Endpoint) {
        self.outboxes
            .hand_on(std::iter::from_fn(|| endpoint.poll_event()));
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
