//! Steering known flows to their shard in the kernel.
//!
//! The kernel spreads the datagrams of a `SO_REUSEPORT` port over its
//! sockets by a hash of their addresses, so with N shards a flow lands on
//! its owner's socket one time in N and every other datagram is handed
//! over (`shard.rs`): a copy, a queue and a wake-up of a second thread per
//! packet. A reuseport BPF program may choose the socket instead. This
//! one is classic BPF, which any process may attach to its own sockets
//! (eBPF maps would need `CAP_BPF`): it reads the datagram's source
//! address and port from the IP and UDP headers, folds them into one
//! 32-bit key, and finds that key in a binary tree of comparisons compiled
//! from the flow table, returning the owner's socket index. A flow the
//! program does not know (a new one, or one past [`MAX_FLOWS`]) goes where
//! the hash puts it, and handoffs still cover it; so does a key that two
//! flows share. The program is compiled again, at most every
//! [`COALESCE`], when the table changes: flows change at the rate of joins
//! and network moves, not of packets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libc::sock_filter;

use super::shard::{Flows, ShardId};

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic; libc lists it for Android
/// only).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Flows the program knows. The kernel takes at most 4,096 instructions
/// (`BPF_MAXINSNS`); each flow costs under three. It also refuses
/// (`ENOMEM`) a program larger, once converted, than the socket option
/// memory allows (`net.core.optmem_max`: 20 KiB by default before Linux
/// 6.9, room for about 600 flows), so [`attach_flows`] halves the count
/// until the kernel takes it.
pub const MAX_FLOWS: usize = 1400;
/// Below this, a kernel that refuses the program for its size refuses it
/// for another reason.
const MIN_FLOWS: usize = 16;

/// `SO_DETACH_REUSEPORT_BPF` (asm-generic).
const SO_DETACH_REUSEPORT_BPF: libc::c_int = 68;

/// How long changes gather before the program is compiled again: a burst
/// of joins costs one attach, and a flow's first packets in that time are
/// handed over as they were before.
pub const COALESCE: Duration = Duration::from_millis(50);

/// What the program returns for a flow it does not know: any index past
/// the sockets makes the kernel fall back to its hash.
const UNKNOWN: u32 = u32::MAX;

/// Keys compared one after the other at a leaf of the tree.
const LEAF: usize = 8;

/// Mixes the port into the address so that the flows of one host (one
/// address, many ports) spread over the key space.
const PORT_MIX: u32 = 0x9E37_79B1;

/// The key the program computes for a datagram from `source`: the low 32
/// bits of its address (all of an IPv4 one) XOR its port times
/// [`PORT_MIX`].
pub fn key(source: SocketAddr) -> u32 {
    let ip = match source.ip() {
        IpAddr::V4(v4) => u32::from(v4),
        // A dual-stack socket sees IPv4 senders as mapped addresses; the
        // kernel's packet still has an IPv4 header.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u32::from(v4),
            None => u128::from(v6) as u32,
        },
    };
    ip ^ u32::from(source.port()).wrapping_mul(PORT_MIX)
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: (libc::BPF_JMP | code | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

fn ret(k: u32) -> sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, k)
}

/// An offset from the IP header (the program runs with the datagram's
/// payload as its packet; negative offsets reach the headers).
fn net(offset: i32) -> u32 {
    (libc::SKF_NET_OFF + offset) as u32
}

/// The program for these flows (source address, owner's socket index).
pub fn program(flows: &[(SocketAddr, ShardId)]) -> Vec<sock_filter> {
    use libc::*;
    let mut keys: Vec<(u32, u32)> = flows
        .iter()
        .take(MAX_FLOWS)
        .map(|(addr, shard)| (key(*addr), *shard as u32))
        .collect();
    keys.sort_unstable();
    keys.dedup_by_key(|(k, _)| *k);

    let mut p = vec![
        // A = IP version.
        stmt(BPF_LD | BPF_B | BPF_ABS, net(0)),
        stmt(BPF_ALU | BPF_RSH | BPF_K, 4),
        jump(BPF_JEQ, 4, 0, 5),
        // IPv4: M[0] = source address, A = source port (after the
        // header's own length).
        stmt(BPF_LD | BPF_W | BPF_ABS, net(12)),
        stmt(BPF_ST, 0),
        stmt(BPF_LDX | BPF_B | BPF_MSH, net(0)),
        stmt(BPF_LD | BPF_H | BPF_IND, net(0)),
        stmt(BPF_JMP | BPF_JA, 5),
        // IPv6 (no extension headers): the address's low 32 bits.
        jump(BPF_JEQ, 6, 1, 0),
        ret(UNKNOWN),
        stmt(BPF_LD | BPF_W | BPF_ABS, net(20)),
        stmt(BPF_ST, 0),
        stmt(BPF_LD | BPF_H | BPF_ABS, net(40)),
        // A = key(source).
        stmt(BPF_ALU | BPF_MUL | BPF_K, PORT_MIX),
        stmt(BPF_MISC | BPF_TAX, 0),
        stmt(BPF_LD | BPF_MEM, 0),
        stmt(BPF_ALU | BPF_XOR | BPF_X, 0),
    ];
    tree(&keys, &mut p);
    p
}

/// A binary search over sorted keys. Conditional jumps reach 255
/// instructions at most, so each split jumps to its upper half through an
/// unconditional one.
fn tree(keys: &[(u32, u32)], p: &mut Vec<sock_filter>) {
    if keys.len() <= LEAF {
        for (key, index) in keys {
            p.push(jump(libc::BPF_JEQ, *key, 0, 1));
            p.push(ret(*index));
        }
        p.push(ret(UNKNOWN));
        return;
    }
    let mid = keys.len() / 2;
    p.push(jump(libc::BPF_JGE, keys[mid].0, 0, 1));
    let to_upper = p.len();
    p.push(stmt(libc::BPF_JMP | libc::BPF_JA, 0));
    tree(&keys[..mid], p);
    p[to_upper].k = (p.len() - to_upper - 1) as u32;
    tree(&keys[mid..], p);
}

/// Attaches `program` to the reuseport group of `socket`, replacing the
/// one before.
pub fn attach(socket: &std::net::UdpSocket, program: &[sock_filter]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?,
        filter: program.as_ptr() as *mut sock_filter,
    };
    // SAFETY: `fprog` points at `program`, both alive for the call; the
    // kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the kernel give every datagram on the port to the `shard`-th
/// socket bound to it. For tests and diagnosis: every other shard's
/// traffic is then handed over.
pub fn steer_all_to(socket: &std::net::UdpSocket, shard: ShardId) -> std::io::Result<()> {
    attach(socket, &[ret(shard as u32)])
}

/// Attaches the program for as many of `flows` as the kernel takes (see
/// [`MAX_FLOWS`]); returns how many that was.
pub fn attach_flows(
    socket: &std::net::UdpSocket,
    flows: &[(SocketAddr, ShardId)],
) -> std::io::Result<usize> {
    let mut n = flows.len().min(MAX_FLOWS);
    loop {
        match attach(socket, &program(&flows[..n])) {
            Ok(()) => return Ok(n),
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && n > MIN_FLOWS => n /= 2,
            Err(e) => return Err(e),
        }
    }
}

/// Takes the program off `socket`'s group: the kernel's hash again.
fn detach(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let zero: libc::c_int = 0;
    // SAFETY: the option's value is an int the kernel reads and ignores.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_DETACH_REUSEPORT_BPF,
            &zero as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// How often the task looks whether its shards are still there.
const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Keeps the program of `socket`'s group in step with `flows`, from a task
/// of the control runtime, until the shards are gone. A kernel that
/// refuses the program leaves the hash and the handoffs, said once: a
/// program left in place would steer moved flows to their old shard.
pub fn follow(socket: std::net::UdpSocket, flows: Flows) {
    tokio::spawn(async move {
        let mut said = false;
        loop {
            tokio::select! {
                () = flows.changed() => {}
                () = tokio::time::sleep(ALIVE_EVERY) => {
                    if flows.is_alone() {
                        return;
                    }
                    continue;
                }
            }
            tokio::time::sleep(COALESCE).await;
            let known = flows.addrs();
            match attach_flows(&socket, &known) {
                Ok(n) if n < known.len() && !said => {
                    said = true;
                    tracing::info!(
                        steered = n,
                        known = known.len(),
                        "the kernel takes a program for only some flows (net.core.optmem_max): \
                         the others are handed over between media shards"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    detach(&socket);
                    tracing::warn!(
                        "the kernel refused the reuseport program ({e}): datagrams that reach \
                         the wrong media shard are handed over"
                    );
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::UdpSocket;
    use std::time::Instant;

    fn group(n: usize) -> Vec<UdpSocket> {
        use socket2::{Domain, Socket, Type};
        let mut port = 0;
        (0..n)
            .map(|_| {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
                s.set_reuse_port(true).unwrap();
                s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
                    .unwrap();
                let s: UdpSocket = s.into();
                port = s.local_addr().unwrap().port();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect()
    }

    /// Which socket of the group each sender's datagram reached, by the
    /// sender's address.
    fn landings(sockets: &[UdpSocket], expected: usize) -> HashMap<SocketAddr, usize> {
        let mut got = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 64];
        while got.len() < expected && Instant::now() < deadline {
            for (i, s) in sockets.iter().enumerate() {
                while let Ok((_, from)) = s.recv_from(&mut buf) {
                    got.insert(from, i);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn known_flows_reach_their_shard_and_strangers_still_arrive() {
        let sockets = group(3);
        let port = sockets[0].local_addr().unwrap();
        let senders: Vec<UdpSocket> = (0..24)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        // Two thirds are known, spread over the shards; the rest are not.
        let flows: Vec<(SocketAddr, ShardId)> = senders
            .iter()
            .take(16)
            .enumerate()
            .map(|(i, s)| (s.local_addr().unwrap(), i % 3))
            .collect();
        attach(&sockets[0], &program(&flows)).unwrap();
        for s in &senders {
            s.send_to(b"x", port).unwrap();
        }
        let got = landings(&sockets, senders.len());
        assert_eq!(got.len(), senders.len(), "every datagram arrives");
        for (addr, shard) in &flows {
            assert_eq!(got[addr], *shard, "{addr} reached its owner");
        }
    }

    #[test]
    fn the_most_flows_fit_in_one_program_the_kernel_takes() {
        let flows: Vec<(SocketAddr, ShardId)> = (0..MAX_FLOWS + 50)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 40000 + i as u16));
                (addr, i % 16)
            })
            .collect();
        let p = program(&flows);
        assert!(p.len() <= 4096, "{} instructions", p.len());
        // All of them where the kernel's option memory allows it, fewer
        // (halved until taken) on kernels that allow less.
        let sockets = group(2);
        let n = attach_flows(&sockets[0], &flows).unwrap();
        assert!(n >= MAX_FLOWS / 4, "only {n} flows taken");
    }

    #[test]
    fn mapped_and_plain_ipv4_senders_have_one_key() {
        let v4: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().unwrap();
        assert_eq!(key(v4), key(mapped));
        assert_ne!(key(v4), key("192.0.2.7:5001".parse().unwrap()));
    }
}
