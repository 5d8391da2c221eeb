//! ICE-TCP on a worker with several shards: each connection goes, once,
//! to the shard its first STUN request names.
//!
//! A connection is accepted here (from the media TCP listener, or from the
//! HTTP listener in the one-port mode), its first RFC 4571 frame is read
//! without taking it from the socket (`peek`), and the connection is handed
//! to the owner's media thread, which reads that frame again as if it had
//! accepted the connection itself. From then on the shard alone reads and
//! writes it: nothing per packet crosses threads. A connection that sends
//! no complete STUN request naming a shard within [`HANDSHAKE_DEADLINE`]
//! is closed, as a shard closes one that never completes ICE.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::ice_tcp::{
    max_connections, max_per_address, HandedConnection, HANDSHAKE_DEADLINE, MAX_FRAME,
};
use super::shard::{Flows, ShardId};
use crate::per_address::Held;

/// Where the connections come from.
pub enum Accepted {
    Listener(std::net::TcpListener),
    Handed(mpsc::Receiver<HandedConnection>),
}

/// Routes every connection from `from` to its shard's queue in `shards`;
/// a task on the caller's runtime.
pub fn spawn(
    from: Accepted,
    shards: Vec<mpsc::Sender<HandedConnection>>,
    flows: Flows,
    access: crate::access::Access,
) -> std::io::Result<()> {
    let mut from = match from {
        Accepted::Listener(l) => From::Listener(TcpListener::from_std(l)?),
        Accepted::Handed(rx) => From::Handed(rx),
    };
    let waiting = Arc::new(AtomicUsize::new(0));
    let limit = max_connections();
    let (per_address, most) = (Held::default(), max_per_address());
    tokio::spawn(async move {
        while let Some((stream, addr)) = from.next().await {
            if !access.admits(addr.ip()) || waiting.load(Ordering::Relaxed) >= limit {
                continue; // closed
            }
            let Some(hold) = per_address.take(addr.ip(), most) else {
                continue; // closed
            };
            waiting.fetch_add(1, Ordering::Relaxed);
            let (shards, flows, waiting) = (shards.clone(), flows.clone(), waiting.clone());
            tokio::spawn(async move {
                let owner = tokio::time::timeout(HANDSHAKE_DEADLINE, owner(&stream, addr, &flows))
                    .await
                    .ok()
                    .flatten();
                waiting.fetch_sub(1, Ordering::Relaxed);
                drop(hold);
                let Some(queue) = owner.and_then(|s| shards.get(s)) else {
                    return; // closed
                };
                if let Ok(stream) = stream.into_std() {
                    let _ = queue.send((stream, addr)).await;
                }
            });
        }
    });
    Ok(())
}

enum From {
    Listener(TcpListener),
    Handed(mpsc::Receiver<HandedConnection>),
}

impl From {
    async fn next(&mut self) -> Option<(TcpStream, SocketAddr)> {
        loop {
            match self {
                From::Listener(l) => match l.accept().await {
                    Ok(accepted) => return Some(accepted),
                    Err(e) => {
                        // Out of descriptors, most likely: wait, go on.
                        tracing::warn!("tcp accept: {e}; pausing");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                From::Handed(rx) => {
                    let (s, addr) = rx.recv().await?;
                    if let Ok(s) = TcpStream::from_std(s) {
                        return Some((s, addr));
                    }
                }
            }
        }
    }
}

/// The shard the connection's first frame names, once it has all come.
async fn owner(stream: &TcpStream, addr: SocketAddr, flows: &Flows) -> Option<ShardId> {
    let mut buf = vec![0u8; 2 + MAX_FRAME];
    let mut wait = std::time::Duration::from_millis(2);
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None; // closed
        }
        if let Some(frame) = first_frame(&buf[..n])? {
            return flows.owner(frame, addr);
        }
        // Part of the frame: peeking again returns at once with the same
        // bytes, so wait for the rest a little (a STUN request is one
        // segment in practice), longer each time: a connection that sent
        // a byte and stopped costs a dozen wake-ups until its deadline,
        // not one every 2 ms.
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_millis(500));
    }
}

/// The first RFC 4571 frame of `bytes`: `Some(None)` while incomplete,
/// `None` when it can never be one (too large).
fn first_frame(bytes: &[u8]) -> Option<Option<&[u8]>> {
    let [a, b, rest @ ..] = bytes else {
        return Some(None);
    };
    let len = usize::from(u16::from_be_bytes([*a, *b]));
    if len > MAX_FRAME {
        return None;
    }
    Some(rest.get(..len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_frame_is_read_once_complete() {
        assert_eq!(first_frame(&[]), Some(None));
        assert_eq!(first_frame(&[0]), Some(None));
        assert_eq!(first_frame(&[0, 3, 1, 2]), Some(None));
        assert_eq!(
            first_frame(&[0, 3, 1, 2, 3, 9]),
            Some(Some(&[1u8, 2, 3][..]))
        );
        assert_eq!(first_frame(&[0xff, 0xff]), None, "larger than any frame");
    }
}
