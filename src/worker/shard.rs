//! Media shards: who owns a flow.
//!
//! A worker runs one media shard per core it may use, each a thread with
//! its own [`Endpoint`](super::endpoint::Endpoint), its own rooms and its
//! own socket on the one media port (`SO_REUSEPORT`), sharing nothing on
//! the packet path (as PulseBeam's shards do). The kernel picks a socket
//! for each datagram by a hash of its addresses, not by the room it is for,
//! so a datagram may land on a shard that does not own its participant.
//! That shard asks the [`FlowTable`] who does and hands the datagram over:
//!
//! - a STUN request names its owner by the server's ICE ufrag, which every
//!   shard makes starting with its own [`tag`] (and which the table also
//!   knows, for the ufrags str0m makes in an ICE restart);
//! - anything else by its source address, entered in the table when the
//!   owner's ICE check authenticates it there, and removed when the owner
//!   forgets it.
//!
//! Each shard's demultiplexer reports what it learns and forgets as
//! [`FlowChange`]s; the table is written only then and read only for a
//! datagram that landed on the wrong shard, so its lock stays off the path
//! of every other packet. The kernel learns the addresses too
//! (`steering.rs`), so that a known flow's datagrams land on their owner's
//! socket in the first place.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use str0m::ice::StunMessage;
use tokio::sync::Notify;

use super::demux::is_stun;

/// A shard's index in its worker.
pub type ShardId = usize;

/// The first character of a shard's ICE ufrags, by shard index: ufrags
/// are ICE characters, so a worker has at most this many shards.
const TAGS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Most shards a worker runs.
pub const MAX_SHARDS: usize = TAGS.len();

/// The character that starts every ICE ufrag shard `shard` makes.
pub fn tag(shard: ShardId) -> char {
    char::from(TAGS[shard % MAX_SHARDS])
}

/// The shard whose tag starts `ufrag`.
pub fn shard_of_ufrag(ufrag: &str) -> Option<ShardId> {
    let first = *ufrag.as_bytes().first()?;
    TAGS.iter().position(|t| *t == first)
}

/// What one shard's demultiplexer learned or forgot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowChange {
    /// Datagrams from this address are for one of its participants.
    Addr(SocketAddr),
    /// They no longer are.
    AddrGone(SocketAddr),
    /// STUN naming this ufrag is for one of its participants.
    Ufrag(String),
    UfragGone(String),
}

/// Who owns each address and ufrag the shards know.
#[derive(Debug, Default)]
pub struct FlowTable {
    addrs: HashMap<SocketAddr, ShardId>,
    ufrags: HashMap<String, ShardId>,
}

impl FlowTable {
    /// Applies what `shard` learned or forgot. A shard forgets only what
    /// is still its own: an address a NAT gave to someone on another shard
    /// stays that one's.
    pub fn apply(&mut self, shard: ShardId, change: FlowChange) {
        match change {
            FlowChange::Addr(addr) => {
                self.addrs.insert(addr, shard);
            }
            FlowChange::AddrGone(addr) => {
                if self.addrs.get(&addr) == Some(&shard) {
                    self.addrs.remove(&addr);
                }
            }
            FlowChange::Ufrag(ufrag) => {
                self.ufrags.insert(ufrag, shard);
            }
            FlowChange::UfragGone(ufrag) => {
                if self.ufrags.get(&ufrag) == Some(&shard) {
                    self.ufrags.remove(&ufrag);
                }
            }
        }
    }

    /// The shard a datagram from `source` is for, if any is known: by the
    /// ufrag of a STUN request, by the address otherwise.
    pub fn owner(&self, datagram: &[u8], source: SocketAddr) -> Option<ShardId> {
        if is_stun(datagram) {
            let msg = StunMessage::parse(datagram).ok()?;
            let (local, _) = msg.split_username()?;
            return self
                .ufrags
                .get(local)
                .copied()
                .or_else(|| shard_of_ufrag(local));
        }
        self.addrs.get(&source).copied()
    }

    /// Addresses and ufrags known.
    #[cfg(test)]
    pub fn known(&self) -> (usize, usize) {
        (self.addrs.len(), self.ufrags.len())
    }
}

/// The table the shards of one worker share.
#[derive(Debug, Clone, Default)]
pub struct Flows {
    table: Arc<RwLock<FlowTable>>,
    /// Told when an address changes owner, for the kernel's steering
    /// program (`steering.rs`).
    changed: Arc<Notify>,
}

impl Flows {
    /// Applies one shard's changes under one lock.
    pub fn apply(&self, shard: ShardId, changes: impl IntoIterator<Item = FlowChange>) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let mut moved = false;
        for change in changes {
            moved |= matches!(change, FlowChange::Addr(_) | FlowChange::AddrGone(_));
            table.apply(shard, change);
        }
        if moved {
            self.changed.notify_one();
        }
    }

    pub fn owner(&self, datagram: &[u8], source: SocketAddr) -> Option<ShardId> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .owner(datagram, source)
    }

    /// Every known address and its owner.
    pub fn addrs(&self) -> Vec<(SocketAddr, ShardId)> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.addrs.iter().map(|(a, s)| (*a, *s)).collect()
    }

    /// Nobody else holds the table: the shards are gone.
    pub fn is_alone(&self) -> bool {
        Arc::strong_count(&self.table) == 1
    }

    /// Resolves once an address changed owner since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::TransId;

    fn stun(username: &str) -> Vec<u8> {
        let msg = StunMessage::binding_request(username, TransId::new(), true, 0, 1, false);
        let mut buf = vec![0u8; 1500];
        let n = msg
            .to_bytes(Some(b"pass"), &mut buf, |_, _| [0; 20])
            .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn tags_name_their_shard() {
        for shard in 0..MAX_SHARDS {
            let ufrag = format!("{}abcdefg", tag(shard));
            assert_eq!(shard_of_ufrag(&ufrag), Some(shard));
        }
        assert_eq!(shard_of_ufrag(""), None);
        assert_eq!(shard_of_ufrag("+abc"), None);
    }

    #[test]
    fn stun_goes_to_the_shard_its_ufrag_names() {
        let table = FlowTable::default();
        let from: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let ufrag = format!("{}xyzxyzx", tag(3));
        assert_eq!(
            table.owner(&stun(&format!("{ufrag}:theirs")), from),
            Some(3)
        );
        // Garbage and strangers have no owner.
        assert_eq!(table.owner(&[0u8; 20], from), None);
        assert_eq!(table.owner(&[0x80, 0, 0, 0], from), None);
    }

    #[test]
    fn a_ufrag_made_in_an_ice_restart_is_found_by_the_table() {
        let mut table = FlowTable::default();
        let from: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        // str0m's own ufrag after a restart carries no tag of ours.
        table.apply(2, FlowChange::Ufrag("+restart".into()));
        assert_eq!(table.owner(&stun("+restart:theirs"), from), Some(2));
        table.apply(2, FlowChange::UfragGone("+restart".into()));
        assert_eq!(table.owner(&stun("+restart:theirs"), from), None);
    }

    #[test]
    fn media_goes_to_the_shard_that_authenticated_its_address() {
        let mut table = FlowTable::default();
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1];
        assert_eq!(table.owner(&rtp, a), None);
        table.apply(1, FlowChange::Addr(a));
        assert_eq!(table.owner(&rtp, a), Some(1));
        table.apply(1, FlowChange::AddrGone(a));
        assert_eq!(table.owner(&rtp, a), None);
    }

    #[test]
    fn an_address_that_moved_to_another_shard_stays_with_it() {
        // A NAT gave shard 0's old address to someone on shard 1, who
        // authenticated it before shard 0 forgot it.
        let mut table = FlowTable::default();
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        table.apply(0, FlowChange::Addr(a));
        table.apply(1, FlowChange::Addr(a));
        table.apply(0, FlowChange::AddrGone(a));
        assert_eq!(table.owner(&[0x80, 96], a), Some(1));
        assert_eq!(table.known(), (1, 0));
    }
}
