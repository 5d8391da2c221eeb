//! The control channel between a signal server and a worker: one WebSocket
//! per (signal server, worker) pair, opened by the signal server to the
//! worker's `/control`, authenticated with the cluster secret.
//!
//! It carries the worker's own [`Command`]s as JSON requests with ids,
//! and back their replies and the participants' [`PeerEvent`]s. On the
//! signal side a bridge task turns it into an ordinary [`WorkerHandle`], so
//! signalling code does not know whether its worker is in-process or not.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as AxMessage, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::tls::ClusterTls;
use crate::ids::ParticipantId;
use crate::net::Conn;
use crate::worker::sessions::Sessions;
use crate::worker::{
    Command, Envelope, PeerEvent, Reply, ReplySender, SessionId, WorkerError, WorkerHandle,
};

/// Without any frame (pongs included) for this long, the worker is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
const PING_EVERY: Duration = Duration::from_secs(1);

/// A command on the wire, numbered so its reply finds its way back.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub cmd: Command,
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
    // Participants this connection speaks for, by session: detached if it
    // drops.
    let mut mine: Sessions<()> = Sessions::default();
    while let Some(Ok(frame)) = stream.next().await {
        let AxMessage::Text(text) = frame else {
            continue;
        };
        let Request { id, cmd } = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("bad control request: {e}");
                continue;
            }
        };
        if let Some((participant, session)) = cmd.releases() {
            mine.release(participant, session);
        }
        if !cmd.wants_reply() {
            worker.post(cmd);
            continue;
        }
        let attaches = cmd.attaches();
        let events = attaches.map(|(p, _)| forwarder(p, out_tx.clone()));
        let result = worker.request(cmd, events).await;
        if let (Ok(_), Some((p, session))) = (&result, attaches) {
            mine.attach(p, session, ());
        }
        if out_tx.send(FromWorker::Reply { id, result }).await.is_err() {
            break;
        }
    }
    // The signal server went away (restart, crash): its participants keep
    // their media and may resume through another signal server.
    for (participant, session, ()) in mine.drain() {
        worker.post(Command::Detach {
            participant,
            session,
        });
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

/// Opens the control connection to the worker at `control` (`http://` or
/// `https://IP:PORT`) and returns a handle whose commands travel over it.
/// Over TLS the worker's certificate is checked against `tls`, the
/// cluster's CA; with a CA, a plain connection is refused. The handle
/// closes when the connection is lost; everyone it served gets `Closed`.
pub async fn connect(
    control: &str,
    media: &str,
    secret: &str,
    tls: Option<&ClusterTls>,
) -> Result<WorkerHandle, WorkerError> {
    let secure = control.starts_with("https://");
    let url = format!(
        "{}/control",
        control
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| WorkerError::Internal(format!("control URL {url}: {e}")))?;
    let auth = format!("Bearer {secret}")
        .parse()
        .map_err(|_| WorkerError::Internal("secret is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", auth);
    let host = request
        .uri()
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let opened = tokio::time::timeout(Duration::from_secs(5), async {
        let stream: Box<dyn Conn> = match (secure, tls) {
            (true, Some(tls)) => tls.connect(&host, port).await?,
            (true, None) => {
                return Err(std::io::Error::other(
                    "a TLS control channel needs --cluster-ca to check the worker's certificate",
                ))
            }
            (false, Some(_)) => {
                return Err(std::io::Error::other(
                    "plain control channel refused: this signal server has a cluster CA, so workers must serve TLS",
                ))
            }
            (false, None) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                warn_plain_across_hosts(&host);
                Box::new(tcp)
            }
        };
        tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(std::io::Error::other)
    })
    .await;
    let (ws, _) = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::warn!(%url, "control connection failed: {e}");
            return Err(WorkerError::Unavailable);
        }
        Err(_) => return Err(WorkerError::Unavailable),
    };
    let media_addr = media
        .parse()
        .map_err(|_| WorkerError::Internal(format!("bad media address {media}")))?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(bridge(ws, rx, url));
    Ok(WorkerHandle::new(tx, media_addr))
}

/// A plain control channel beyond this host carries the secret and the
/// calls' fingerprints in clear: said once per host.
fn warn_plain_across_hosts(host: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return;
    }
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if !warned.iter().any(|h| h == host) {
        warned.push(host.to_string());
        tracing::warn!(
            host,
            "control channel to a worker on another host without TLS: give workers --tls-cert and this server --cluster-ca"
        );
    }
}

type ClientWs = tokio_tungstenite::WebSocketStream<Box<dyn Conn>>;

/// A request waiting for its reply, and how to undo the event channel it
/// attached should the worker refuse (a resume with a wrong token must not
/// take a participant's events from its own session).
struct Pending {
    reply: ReplySender,
    undo: Option<(ParticipantId, Option<(SessionId, EventSender)>)>,
}

type EventSender = mpsc::Sender<PeerEvent>;

async fn bridge(ws: ClientWs, mut envelopes: mpsc::Receiver<Envelope>, url: String) {
    let (mut sink, mut stream) = ws.split();
    let mut next_id = 0u64;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    // Attached when the command leaves, not when its reply comes back: the
    // worker may send the participant's first events before the reply.
    let mut events: Sessions<EventSender> = Sessions::default();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            envelope = envelopes.recv() => {
                let Some(Envelope { cmd, events: ev, reply }) = envelope else { break };
                next_id += 1;
                let undo = match (cmd.attaches(), ev) {
                    (Some((p, session)), Some(ev)) => Some((p, events.attach(p, session, ev))),
                    _ => None,
                };
                if let Some((p, session)) = cmd.releases() {
                    events.release(p, session);
                }
                if let Some(reply) = reply {
                    pending.insert(next_id, Pending { reply, undo });
                }
                let Ok(text) = serde_json::to_string(&Request { id: next_id, cmd }) else { continue };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<FromWorker>(&text) {
                        Ok(FromWorker::Reply { id, result }) => {
                            if let Some(Pending { reply, undo }) = pending.remove(&id) {
                                if let (Err(_), Some((p, previous))) = (&result, undo) {
                                    events.restore(p, previous);
                                }
                                let _ = reply.send(result);
                            }
                        }
                        Ok(FromWorker::Event { participant, event }) => {
                            let closed = matches!(event, PeerEvent::Closed { .. });
                            if let Some(tx) = events.get(participant) {
                                let _ = tx.try_send(event);
                            }
                            if closed {
                                events.remove(participant);
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
    envelopes.close();
    for (_, _, tx) in events.drain() {
        let _ = tx.try_send(PeerEvent::Closed {
            reason: "the media server was lost".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ParticipantInfo;
    use crate::worker::JoinRequest;

    /// A join with every field set.
    fn full_join() -> Command {
        Command::Join {
            req: JoinRequest {
                room: "r".into(),
                info: ParticipantInfo {
                    id: 7,
                    name: "Dupré".into(),
                    state: crate::ids::ParticipantState::joining(true, false),
                },
                token: "t".into(),
                max_participants: 12,
                last_n: 9,
                session: 9,
                password: Some("tulipe rouge".into()),
                moderator: true,
                rejoin: Some("aB3dE5gH7jK9mN1pQ3sT5v".into()),
                network: Some("0123456789abcdef".into()),
                door: Some(crate::worker::DoorSettings {
                    password: Some("0f1e2d".into()),
                    lobby: true,
                    ..Default::default()
                }),
                vouched: Some(crate::worker::Vouched::Moderator),
                claimed: false,
            },
        }
    }

    /// The wire format is the command itself, numbered: what one version
    /// writes, the other reads, field for field.
    #[test]
    fn commands_cross_the_wire_unchanged() {
        let cmds = [
            full_join(),
            Command::SetPassword {
                participant: 7,
                password: None,
            },
            Command::SetLobby {
                participant: 7,
                on: true,
            },
            Command::Admit {
                participant: 7,
                knocker: 8,
                admit: false,
            },
            Command::Remove {
                participant: 7,
                target: 8,
            },
            Command::Answer {
                participant: 7,
                offer: 3,
                sdp: "v=0".into(),
            },
            Command::Detach {
                participant: 7,
                session: 9,
            },
            Command::Drain {
                deadline_secs: u64::MAX,
            },
        ];
        for cmd in cmds {
            let text = serde_json::to_string(&Request {
                id: 5,
                cmd: cmd.clone(),
            })
            .unwrap();
            let back: Request = serde_json::from_str(&text).unwrap();
            assert_eq!((back.id, back.cmd), (5, cmd));
        }
        // A join from a signal server older than the room's door (its
        // fields absent): no password, not a moderator, no way back.
        let mut older = serde_json::to_value(Request {
            id: 1,
            cmd: full_join(),
        })
        .unwrap();
        for field in ["password", "moderator", "rejoin", "network"] {
            older["req"].as_object_mut().unwrap().remove(field);
        }
        match serde_json::from_value::<Request>(older).unwrap().cmd {
            Command::Join { req } => {
                assert!(req.password.is_none() && !req.moderator);
                assert!(req.rejoin.is_none() && req.network.is_none());
            }
            other => panic!("{other:?}"),
        }
        let text = r#"{"id":1,"op":"answer","participant":7,"offer":3,"sdp":"x"}"#;
        assert!(matches!(
            serde_json::from_str::<Request>(text).unwrap().cmd,
            Command::Answer { offer: 3, .. }
        ));
    }

    /// What a worker sends back about the door crosses the wire too.
    #[test]
    fn door_replies_and_events_cross_the_wire_unchanged() {
        let sent = [
            FromWorker::Reply {
                id: 3,
                result: Ok(Reply::Knocking),
            },
            FromWorker::Reply {
                id: 4,
                result: Err(WorkerError::PasswordWrong),
            },
            FromWorker::Event {
                participant: 7,
                event: PeerEvent::Knocking {
                    id: 8,
                    name: "Zoé".into(),
                },
            },
            FromWorker::Event {
                participant: 8,
                event: PeerEvent::Admitted { others: vec![] },
            },
            FromWorker::Event {
                participant: 8,
                event: PeerEvent::Removed,
            },
        ];
        for msg in sent {
            let text = serde_json::to_string(&msg).unwrap();
            let back: FromWorker = serde_json::from_str(&text).unwrap();
            assert_eq!(format!("{back:?}"), format!("{msg:?}"), "{text}");
        }
    }
}
