//! The control channel between a signal server and a worker: one WebSocket
//! per (signal server, worker) pair, opened by the signal server to the
//! worker's `/control`, authenticated with the cluster secret.
//!
//! It carries the worker's own [`Command`]s as JSON requests with ids,
//! and back their replies and the participants' [`PeerEvent`]s. On the
//! signal side a bridge task turns it into an ordinary [`WorkerHandle`], so
//! signalling code does not know whether its worker is in-process or not.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as AxMessage, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::ids::{ParticipantId, ParticipantInfo};
use crate::worker::{Command, JoinRequest, PeerEvent, Resumed, WorkerError, WorkerHandle};

/// Without any frame (pongs included) for this long, the worker is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
const PING_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    Join {
        req: JoinRequest,
    },
    Offer {
        participant: ParticipantId,
        sdp: String,
    },
    Answer {
        participant: ParticipantId,
        /// The server offer answered (not `id`: that is the request's).
        offer: u32,
        sdp: String,
    },
    Candidate {
        participant: ParticipantId,
        candidate: String,
    },
    Mute {
        participant: ParticipantId,
        audio: bool,
        video: bool,
    },
    Leave {
        participant: ParticipantId,
    },
    Detach {
        participant: ParticipantId,
    },
    Resume {
        participant: ParticipantId,
        token: String,
    },
    Drain {
        deadline_secs: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    Joined { others: Vec<ParticipantInfo> },
    Answer { sdp: String },
    Done,
    Resumed { resumed: Resumed },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FromWorker {
    Reply {
        id: u64,
        result: Result<Reply, WorkerError>,
    },
    Event {
        participant: ParticipantId,
        event: PeerEvent,
    },
}

// ---------------------------------------------------------------- worker side

/// Serves one signal server's control connection on a worker.
pub async fn serve_connection(socket: WebSocket, worker: WorkerHandle) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<FromWorker>(1024);
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            let Ok(text) = serde_json::to_string(&msg) else {
                continue;
            };
            if sink
                .send(AxMessage::Text(Utf8Bytes::from(text)))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Participants this connection speaks for: detached if it drops.
    let mut mine: HashSet<ParticipantId> = HashSet::new();
    while let Some(Ok(frame)) = stream.next().await {
        let AxMessage::Text(text) = frame else {
            continue;
        };
        let req: Request = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("bad control request: {e}");
                continue;
            }
        };
        let result = match req.op {
            Op::Join { req: join } => {
                let p = join.info.id;
                let r = worker.join(join, forwarder(p, out_tx.clone())).await;
                if r.is_ok() {
                    mine.insert(p);
                }
                Some(r.map(|others| Reply::Joined { others }))
            }
            Op::Offer { participant, sdp } => Some(
                worker
                    .offer(participant, sdp)
                    .await
                    .map(|sdp| Reply::Answer { sdp }),
            ),
            Op::Answer {
                participant,
                offer,
                sdp,
            } => Some(
                worker
                    .answer(participant, offer, sdp)
                    .await
                    .map(|_| Reply::Done),
            ),
            Op::Candidate {
                participant,
                candidate,
            } => Some(
                worker
                    .candidate(participant, candidate)
                    .await
                    .map(|_| Reply::Done),
            ),
            Op::Resume { participant, token } => {
                let r = worker
                    .resume(participant, token, forwarder(participant, out_tx.clone()))
                    .await;
                if r.is_ok() {
                    mine.insert(participant);
                }
                Some(r.map(|resumed| Reply::Resumed { resumed }))
            }
            Op::Mute {
                participant,
                audio,
                video,
            } => {
                worker.mute(participant, audio, video);
                None
            }
            Op::Leave { participant } => {
                mine.remove(&participant);
                worker.leave(participant);
                None
            }
            Op::Detach { participant } => {
                mine.remove(&participant);
                worker.detach(participant);
                None
            }
            Op::Drain { deadline_secs } => {
                worker.drain(deadline_secs);
                None
            }
        };
        if let Some(result) = result {
            if out_tx
                .send(FromWorker::Reply { id: req.id, result })
                .await
                .is_err()
            {
                break;
            }
        }
    }
    // The signal server went away (restart, crash): its participants keep
    // their media and may resume through another signal server.
    for p in mine {
        worker.detach(p);
    }
    writer.abort();
}

/// An event channel for one participant that feeds the connection.
fn forwarder(participant: ParticipantId, out: mpsc::Sender<FromWorker>) -> mpsc::Sender<PeerEvent> {
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if out
                .send(FromWorker::Event { participant, event })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tx
}

// ---------------------------------------------------------------- signal side

enum Pending {
    Join(oneshot::Sender<Result<Vec<ParticipantInfo>, WorkerError>>),
    Offer(oneshot::Sender<Result<String, WorkerError>>),
    Unit(oneshot::Sender<Result<(), WorkerError>>),
    Resume(oneshot::Sender<Result<Resumed, WorkerError>>),
}

impl Pending {
    fn complete(self, result: Result<Reply, WorkerError>) {
        let unexpected = || WorkerError::Internal("unexpected reply from worker".into());
        match self {
            Pending::Join(tx) => {
                let _ = tx.send(result.and_then(|r| match r {
                    Reply::Joined { others } => Ok(others),
                    _ => Err(unexpected()),
                }));
            }
            Pending::Offer(tx) => {
                let _ = tx.send(result.and_then(|r| match r {
                    Reply::Answer { sdp } => Ok(sdp),
                    _ => Err(unexpected()),
                }));
            }
            Pending::Unit(tx) => {
                let _ = tx.send(result.map(|_| ()));
            }
            Pending::Resume(tx) => {
                let _ = tx.send(result.and_then(|r| match r {
                    Reply::Resumed { resumed } => Ok(resumed),
                    _ => Err(unexpected()),
                }));
            }
        }
    }
}

/// Opens the control connection to the worker at `control` (`http://IP:PORT`)
/// and returns a handle whose commands travel over it. The handle closes
/// when the connection is lost; everyone it served gets `Closed`.
pub async fn connect(
    control: &str,
    media: &str,
    secret: &str,
) -> Result<WorkerHandle, WorkerError> {
    let url = format!("{}/control", control.replacen("http://", "ws://", 1));
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| WorkerError::Internal(format!("control URL {url}: {e}")))?;
    let auth = format!("Bearer {secret}")
        .parse()
        .map_err(|_| WorkerError::Internal("secret is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", auth);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| WorkerError::Unavailable)?
    .map_err(|e| {
        tracing::warn!(%url, "control connection failed: {e}");
        WorkerError::Unavailable
    })?;
    let media_addr = media
        .parse()
        .map_err(|_| WorkerError::Internal(format!("bad media address {media}")))?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(bridge(ws, rx, url));
    Ok(WorkerHandle::new(tx, media_addr))
}

type ClientWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn bridge(ws: ClientWs, mut commands: mpsc::Receiver<Command>, url: String) {
    let (mut sink, mut stream) = ws.split();
    let mut next_id = 0u64;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut events: HashMap<ParticipantId, mpsc::Sender<PeerEvent>> = HashMap::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                next_id += 1;
                let (op, waiting) = encode(cmd, &mut events);
                if let Some(w) = waiting {
                    pending.insert(next_id, w);
                }
                let Ok(text) = serde_json::to_string(&Request { id: next_id, op }) else { continue };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<FromWorker>(&text) {
                        Ok(FromWorker::Reply { id, result }) => {
                            if let Some(p) = pending.remove(&id) {
                                p.complete(result);
                            }
                        }
                        Ok(FromWorker::Event { participant, event }) => {
                            let closed = matches!(event, PeerEvent::Closed { .. });
                            if let Some(tx) = events.get(&participant) {
                                let _ = tx.try_send(event);
                            }
                            if closed {
                                events.remove(&participant);
                            }
                        }
                        Err(e) => tracing::warn!(%url, "bad frame from worker: {e}"),
                    },
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::warn!(%url, "worker silent; control connection given up");
                    break;
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::warn!(%url, "control connection to worker lost");
    commands.close();
    for (_, tx) in events {
        let _ = tx.try_send(PeerEvent::Closed {
            reason: "the media server was lost".into(),
        });
    }
}

fn encode(
    cmd: Command,
    events: &mut HashMap<ParticipantId, mpsc::Sender<PeerEvent>>,
) -> (Op, Option<Pending>) {
    match cmd {
        Command::Join {
            req,
            events: ev,
            reply,
        } => {
            events.insert(req.info.id, ev);
            (Op::Join { req }, Some(Pending::Join(reply)))
        }
        Command::Offer {
            participant,
            sdp,
            reply,
        } => (Op::Offer { participant, sdp }, Some(Pending::Offer(reply))),
        Command::Answer {
            participant,
            id,
            sdp,
            reply,
        } => (
            Op::Answer {
                participant,
                offer: id,
                sdp,
            },
            Some(Pending::Unit(reply)),
        ),
        Command::Candidate {
            participant,
            candidate,
            reply,
        } => (
            Op::Candidate {
                participant,
                candidate,
            },
            Some(Pending::Unit(reply)),
        ),
        Command::Resume {
            participant,
            token,
            events: ev,
            reply,
        } => {
            events.insert(participant, ev);
            (
                Op::Resume { participant, token },
                Some(Pending::Resume(reply)),
            )
        }
        Command::Mute {
            participant,
            audio,
            video,
        } => (
            Op::Mute {
                participant,
                audio,
                video,
            },
            None,
        ),
        Command::Leave { participant } => {
            events.remove(&participant);
            (Op::Leave { participant }, None)
        }
        Command::Detach { participant } => {
            events.remove(&participant);
            (Op::Detach { participant }, None)
        }
        Command::Drain { deadline_secs } => (Op::Drain { deadline_secs }, None),
    }
}
