//! The WebSocket of one signalling session: it moves bytes and does the
//! network work the session asks for (placing a room, locating one,
//! sending a command to the worker and waiting for its reply), and
//! decides nothing itself (`session.rs` does).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;

use super::limits::{OpenSocket, PING_EVERY};
use super::protocol::ServerMessage;
use super::session::{Env, Input, Now, Output, Placed, Session};
use super::{AppState, Control, PlaceError};
use crate::cluster::registry::Moment;
use crate::worker::stats::unix_secs;
use crate::worker::{PeerEvent, WorkerError, WorkerHandle};

/// A send that takes longer means the client is gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Events of the worker waiting for the socket; past this the worker's
/// outbox holds them (`worker/outbox.rs`), nothing is dropped.
const EVENTS: usize = 256;

type Sink = SplitSink<WebSocket, Message>;

/// One signalling socket, from `client`, counted open by `_open` until it
/// ends.
pub async fn run(socket: WebSocket, state: AppState, client: IpAddr, _open: Option<OpenSocket>) {
    let control = &*state.0;
    let (mut sink, mut stream) = socket.split();
    let (events_tx, mut events) = mpsc::channel::<PeerEvent>(EVENTS);
    control.metrics.signal_sessions.inc();
    let env = Env {
        config: &control.config,
        limits: control.limits.as_ref(),
        metrics: &control.metrics,
    };
    let rng = StdRng::from_entropy();
    let mut session = Session::new(env, client, rand::random(), rng, Instant::now());
    let mut io = Io {
        control,
        client,
        worker: None,
        events: events_tx,
    };
    let mut ping = tokio::time::interval_at((Instant::now() + PING_EVERY).into(), PING_EVERY);

    loop {
        tokio::select! {
            _ = ping.tick() => session.handle_input(Input::Tick, now()),
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => session.handle_input(Input::Text(&text), now()),
                Some(Ok(Message::Binary(_))) => session.handle_input(Input::Binary, now()),
                Some(Ok(Message::Close(_))) | None => break,
                // Pings and pongs: axum answers them; the client is there.
                Some(Ok(_)) => session.heard(now()),
                Some(Err(e)) => {
                    // Includes frames over the size limit.
                    tracing::info!("websocket error: {e}");
                    break;
                }
            },
            Some(event) = events.recv() => {
                let worker_gone = matches!(event, PeerEvent::Closed { .. })
                    && io.worker.as_ref().is_some_and(WorkerHandle::is_closed);
                session.handle_input(Input::Event { event, worker_gone }, now());
            }
        }
        if !io.drive(&mut session, &mut sink).await {
            break;
        }
    }
    session.handle_input(Input::Ended, now());
    io.finish(&mut session);
    control.metrics.signal_sessions.dec();
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix: unix_secs(),
    }
}

/// What the socket loop does for its session.
struct Io<'a> {
    control: &'a Control,
    client: IpAddr,
    /// The worker last placed or located: the session's commands go there.
    worker: Option<WorkerHandle>,
    /// Given to the worker with a command that attaches the participant.
    events: mpsc::Sender<PeerEvent>,
}

impl Io<'_> {
    /// Does what the session asks until it asks nothing; false once the
    /// socket must close.
    async fn drive(&mut self, session: &mut Session<'_>, sink: &mut Sink) -> bool {
        while let Some(out) = session.poll_output() {
            match out {
                Output::Send(msg) => {
                    if send(sink, &msg).await.is_err() {
                        return false;
                    }
                }
                Output::Ping => {
                    let ping = sink.send(Message::Ping(Default::default()));
                    if !matches!(tokio::time::timeout(SEND_TIMEOUT, ping).await, Ok(Ok(()))) {
                        return false;
                    }
                }
                Output::Close => return false,
                Output::Place { room, priority } => {
                    let placed = self.place(&room, priority).await;
                    session.handle_input(Input::Placed(placed), now());
                }
                Output::Locate { room } => {
                    let node = self.control.locate(&room).await.map(|(node, worker)| {
                        self.worker = Some(worker);
                        node
                    });
                    session.handle_input(Input::Located(node), now());
                }
                Output::Claim { room, digest } => {
                    let owns = self
                        .control
                        .registry
                        .claim(&room, &digest, Moment::now())
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!("a room's owner could not be kept: {e}");
                            false
                        });
                    session.handle_input(Input::Claimed(owns), now());
                }
                Output::Worker(cmd) if cmd.wants_reply() => {
                    let reply = match &self.worker {
                        Some(w) => {
                            let events = cmd.attaches().map(|_| self.events.clone());
                            w.request(cmd, events).await
                        }
                        None => Err(WorkerError::Unavailable),
                    };
                    session.handle_input(Input::Reply(reply), now());
                }
                Output::Worker(cmd) => self.post(cmd),
                Output::NodeLost(node) => self.control.pool.report_closed(&node),
            }
        }
        true
    }

    /// The socket is gone: what the session still has for its worker
    /// (a leave, a detach) is posted; replies and frames are not waited for.
    fn finish(&mut self, session: &mut Session<'_>) {
        while let Some(out) = session.poll_output() {
            match out {
                Output::Worker(cmd) if !cmd.wants_reply() => self.post(cmd),
                Output::NodeLost(node) => self.control.pool.report_closed(&node),
                _ => {}
            }
        }
    }

    fn post(&self, cmd: crate::worker::Command) {
        if let Some(w) = &self.worker {
            w.post(cmd);
        }
    }

    /// The room's worker, placed or found, its door as the cluster kept
    /// it, and its owner.
    async fn place(&mut self, room: &str, priority: bool) -> Result<Placed, PlaceError> {
        let control = self.control;
        let client = self.client;
        let limits = &control.limits;
        let (node, worker) = control
            .place(room, priority, &|| {
                limits.as_ref().map_or(Ok(()), |l| l.new_room(client))
            })
            .await?;
        self.worker = Some(worker);
        // The door the room's moderators shut it with, for a room made anew
        // on this worker because its own was lost (the worker knows the
        // rooms that ended on it). Unread, the room would open: said.
        let door = control
            .registry
            .door(room, Moment::now())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("a room's door could not be read: {e}");
                None
            });
        // Unread, the room has no owner this once: its first in moderates,
        // as before owners.
        let owner = control
            .registry
            .owner(room, Moment::now())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("a room's owner could not be read: {e}");
                None
            });
        Ok(Placed { node, door, owner })
    }
}

async fn send(sink: &mut Sink, msg: &ServerMessage) -> Result<(), ()> {
    let text = match serde_json::to_string(msg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("serialize: {e}");
            return Ok(());
        }
    };
    let sent = sink.send(Message::Text(Utf8Bytes::from(text)));
    match tokio::time::timeout(SEND_TIMEOUT, sent).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
