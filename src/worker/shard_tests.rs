//! A worker's shards driven as their media loops drive them, with str0m
//! clients as browsers, a fake clock and a fake network: commands placed
//! by the [`ShardMap`], what each shard learns entered in the
//! [`FlowTable`], and a kernel that gives every datagram to shard 0's
//! socket, so that everything of shard 1's is handed over (as with
//! `--media-steer-to 0`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::Protocol;

use super::endpoint::{Delivery, Endpoint};
use super::endpoint_tests::{join_request, REBINDING_SETTLES};
use super::peer::{Candidates, Local};
use super::shard::{FlowTable, ShardId};
use super::shard_map::{ShardMap, Target};
use super::test_client::{self, Client, FakeNetwork};
use super::{Command, PeerEvent, Reply, WorkerError};
use crate::ids::ParticipantId;

const SERVER: &str = "10.0.0.1:10000";
/// The socket the kernel gives every datagram to.
const KERNEL_PICKS: ShardId = 0;

struct Worker {
    shards: Vec<Endpoint>,
    map: ShardMap,
    flows: FlowTable,
    clients: Vec<Client>,
    public: HashMap<ParticipantId, SocketAddr>,
    now: Instant,
    /// Datagrams shard 0 handed to another shard.
    handed: usize,
}

impl Worker {
    fn new(n: usize) -> Self {
        let now = Instant::now();
        let candidates = Candidates::on(SERVER.parse().unwrap());
        Worker {
            shards: (0..n)
                .map(|shard| {
                    let local = Local {
                        shard,
                        ..Local::test(candidates)
                    };
                    Endpoint::new(local, 7 + shard as u64, now)
                })
                .collect(),
            map: ShardMap::new(n),
            flows: FlowTable::default(),
            clients: Vec::new(),
            public: HashMap::new(),
            now,
            handed: 0,
        }
    }

    fn command(&mut self, cmd: Command) -> Result<Reply, WorkerError> {
        let idle = vec![0.0; self.shards.len()];
        let reply = match self.map.target(&cmd, &idle, self.now)? {
            Target::One(shard) => self.shards[shard].handle_command(self.now, cmd),
            Target::All => {
                for ep in &mut self.shards {
                    ep.handle_command(self.now, cmd.clone())?;
                }
                Ok(Reply::Done)
            }
        };
        self.learn();
        reply
    }

    /// What each shard learned and forgot, into the flow table (the media
    /// loop does it at every flush).
    fn learn(&mut self) {
        for (shard, ep) in self.shards.iter_mut().enumerate() {
            for change in ep.poll_flows() {
                self.flows.apply(shard, change);
            }
        }
    }

    fn join(&mut self, id: ParticipantId, room: &str) -> ShardId {
        self.command(Command::Join {
            req: join_request(id, room, id * 100, 12),
        })
        .expect("joined");
        let local: SocketAddr = format!("192.168.1.{id}:5000").parse().unwrap();
        let mut client = Client::new(id, local, self.now);
        let offer = client.offer();
        let cmd = Command::Offer {
            participant: id,
            sdp: offer,
            screen: None,
        };
        match self.command(cmd).expect("answer") {
            Reply::Answer { sdp } => client.accept_answer(&sdp),
            other => panic!("unexpected {other:?}"),
        }
        self.clients.push(client);
        self.public
            .insert(id, format!("203.0.113.{id}:4000").parse().unwrap());
        self.map.shard_of(id).expect("placed")
    }

    /// A datagram from a client, given to shard 0's socket, handed over
    /// by the flow table if it is another shard's.
    fn deliver(&mut self, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        if self.shards[KERNEL_PICKS].handle_datagram(now, Protocol::Udp, from, data)
            != Delivery::Unknown
        {
            return;
        }
        if let Some(owner) = self.flows.owner(data, from).filter(|o| *o != KERNEL_PICKS) {
            self.handed += 1;
            self.shards[owner].handle_datagram(now, Protocol::Udp, from, data);
        }
    }

    fn everyone_sends(&mut self, tag: u8) {
        test_client::everyone_sends(&mut self.clients, self.now, tag);
    }

    fn received(&self, by: ParticipantId, from: ParticipantId, tag: u8) -> usize {
        test_client::received(&self.clients, by, from, tag)
    }
}

impl FakeNetwork for Worker {
    fn now(&self) -> Instant {
        self.now
    }

    fn step(&mut self, step: Duration) {
        self.now += step;
        let now = self.now;
        let mut events = Vec::new();
        for ep in &mut self.shards {
            while let Some(event) = ep.poll_event() {
                events.push(event);
            }
        }
        for (to, event) in events {
            if let PeerEvent::Offer { id, sdp } = event {
                let answer = test_client::find(&mut self.clients, to).answer(&sdp);
                let cmd = Command::Answer {
                    participant: to,
                    offer: id,
                    sdp: answer,
                };
                self.command(cmd).expect("answer taken");
            }
        }
        let mut sent = Vec::new();
        for c in &mut self.clients {
            let from = self.public[&c.id];
            sent.extend(c.poll(now).into_iter().map(|t| (from, t.contents.to_vec())));
        }
        for (from, data) in sent {
            self.deliver(from, &data);
        }
        let mut out = Vec::new();
        for ep in &mut self.shards {
            if ep.poll_timeout() <= now {
                ep.handle_timeout(now);
            }
            while let Some(batch) = ep.poll_transmit(now, 32) {
                out.extend(
                    batch
                        .iter()
                        .map(|t| (t.destination, t.source, t.contents.to_vec())),
                );
            }
        }
        self.learn();
        for (to, from, data) in out {
            let id = self
                .public
                .iter()
                .find(|(_, a)| **a == to)
                .map(|(id, _)| *id);
            if let Some(c) = self.clients.iter_mut().find(|c| Some(c.id) == id) {
                c.receive(now, from, &data);
            }
        }
    }
}

/// Meetings "a" (1, 2) and "b" (3, 4), connected.
fn two_meetings() -> Worker {
    let mut w = Worker::new(2);
    assert_eq!(w.join(1, "a"), 0);
    assert_eq!(w.join(2, "a"), 0);
    assert_eq!(w.join(3, "b"), 1, "a new room goes to the emptier shard");
    assert_eq!(w.join(4, "b"), 1, "and its people follow it");
    w.run(Duration::from_millis(1500));
    assert!(w.clients.iter().all(|c| c.connected), "media connected");
    w
}

#[test]
fn a_meeting_on_the_shard_the_kernel_avoids_connects_through_handoffs() {
    let mut w = two_meetings();
    assert!(w.handed > 0, "shard 1's STUN and media were handed over");
    w.everyone_sends(1);
    w.run(Duration::from_millis(100));
    for (by, from) in [(1, 2), (2, 1), (3, 4), (4, 3)] {
        assert_eq!(w.received(by, from, 1), 1, "{by} gets {from}'s packet");
    }
    // Nothing crosses meetings.
    assert_eq!(w.received(1, 3, 1) + w.received(3, 1, 1), 0);
    assert_eq!(w.shards[0].participants(), 2);
    assert_eq!(w.shards[1].participants(), 2);
}

#[test]
fn a_flow_that_moves_after_nat_rebinding_follows_its_owner() {
    let mut w = two_meetings();
    // Participant 4's NAT gives it another public port: its consent checks
    // from there land on shard 0, name shard 1 by their ufrag, are
    // authenticated there, and the new address enters the flow table.
    let moved: SocketAddr = "203.0.113.99:4444".parse().unwrap();
    w.public.insert(4, moved);
    w.run_past(REBINDING_SETTLES);
    let rtp = [0x80u8, 96, 0, 1];
    assert_eq!(w.flows.owner(&rtp, moved), Some(1));
    w.everyone_sends(2);
    w.run(Duration::from_millis(100));
    assert_eq!(w.received(3, 4, 2), 1, "media from the new address counts");
    assert_eq!(w.received(4, 3, 2), 1, "media reaches the new address");
    // The old address, silent, is forgotten by its shard and the table.
    w.run_past(super::demux::ADDR_IDLE + Duration::from_secs(1));
    let old: SocketAddr = "203.0.113.4:4000".parse().unwrap();
    assert_eq!(w.flows.owner(&rtp, old), None);
}

#[test]
fn a_drain_reaches_every_shard_and_a_leave_frees_its_flows() {
    let mut w = two_meetings();
    w.command(Command::Drain { deadline_secs: 600 }).unwrap();
    assert!(w.shards.iter().all(Endpoint::is_draining));
    // No new room on either shard; the calls go on.
    for room in ["c", "d"] {
        let cmd = Command::Join {
            req: join_request(9, room, 900, 12),
        };
        assert_eq!(w.command(cmd), Err(WorkerError::Draining));
    }
    // Participant 3 leaves: shard 1 forgets its address and ufrag.
    w.command(Command::Leave { participant: 3 }).unwrap();
    let (addrs, ufrags) = w.flows.known();
    assert_eq!((addrs, ufrags), (3, 3), "those of 1, 2 and 4 are left");
}

/// A binding request signed by a participant of shard 1 but sent from the
/// address of a live participant of shard 0 (a spoofed source) is not
/// handed to shard 1, where it would move the address in the shared flow
/// table, and the kernel's steering with it.
#[test]
fn a_spoofed_request_for_another_shards_participant_moves_no_address() {
    let mut w = two_meetings();
    let index = w.clients.iter().position(|c| c.id == 3).unwrap();
    let mut attacker = w.clients.remove(index);
    let victim = w.public[&1];
    let mut spoofed = 0;
    for _ in 0..40 {
        w.run(Duration::from_millis(250));
        for t in attacker.poll(w.now) {
            if super::demux::is_stun(&t.contents) {
                spoofed += 1;
                w.deliver(victim, &t.contents);
            }
        }
    }
    w.learn();
    assert!(spoofed >= 3, "{spoofed} requests spoofed");
    // Media (not STUN) is found by its address.
    let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        w.flows.owner(&rtp, victim),
        Some(0),
        "the victim's address stays its shard's"
    );
}
