//! Sending many datagrams in one system call (`sendmmsg`).
//!
//! Forwarding one packet to N subscribers makes N datagrams at once; one
//! `sendto` each spends most of the per-packet CPU entering and leaving the
//! kernel. `sendmmsg` hands them all over in one call.

use std::io;
use std::os::fd::AsRawFd;

use socket2::SockAddr;
use str0m::net::Transmit;

/// Most datagrams per call (the kernel's UIO_MAXIOV is 1024).
const BATCH: usize = 64;

/// Sends batches of datagrams. Its buffers are kept between calls, so
/// sending allocates nothing once they have grown to the largest batch.
#[derive(Default)]
pub struct BatchSender {
    addrs: Vec<SockAddr>,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl BatchSender {
    /// Sends `out` on `socket`; returns how many the kernel refused for
    /// lack of buffer space (dropped, as UDP would).
    pub fn send_all(&mut self, socket: &impl AsRawFd, out: &[Transmit]) -> usize {
        let fd = socket.as_raw_fd();
        let mut dropped = 0;
        for chunk in out.chunks(BATCH) {
            self.addrs.clear();
            self.addrs
                .extend(chunk.iter().map(|t| SockAddr::from(t.destination)));
            self.iov.clear();
            self.iov.extend(chunk.iter().map(|t| libc::iovec {
                iov_base: t.contents.as_ptr() as *mut libc::c_void,
                iov_len: t.contents.len(),
            }));
            self.msgs.clear();
            for (addr, iov) in self.addrs.iter().zip(self.iov.iter_mut()) {
                // SAFETY: an all-zero msghdr is valid (no name, no iov, no
                // control); the fields set below point into `addrs`, `iov`
                // and `out`, all alive and unmoved until the call returns.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_namelen = addr.len();
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                self.msgs.push(m);
            }
            dropped += send_chunk(fd, &mut self.msgs, chunk);
        }
        // No pointer into `out` outlives this call.
        self.msgs.clear();
        self.iov.clear();
        dropped
    }
}

fn send_chunk(fd: std::os::fd::RawFd, msgs: &mut [libc::mmsghdr], chunk: &[Transmit]) -> usize {
    let mut sent = 0;
    while sent < msgs.len() {
        // SAFETY: every message points at live buffers (see `send_all`);
        // the kernel only reads them.
        let n =
            unsafe { libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (msgs.len() - sent) as u32, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return msgs.len() - sent,
                // One bad destination (ICMP error pending, unreachable
                // address) must not stop the others: skip it.
                _ => {
                    tracing::debug!(dest = %chunk[sent].destination, "send: {e}");
                    sent += 1;
                    continue;
                }
            }
        }
        sent += n as usize;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use str0m::net::Protocol;

    #[test]
    fn every_datagram_arrives_once() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let out: Vec<Transmit> = (0..150u8)
            .map(|i| Transmit {
                proto: Protocol::Udp,
                source: tx.local_addr().unwrap(),
                destination: if i % 2 == 0 {
                    rx1.local_addr().unwrap()
                } else {
                    rx2.local_addr().unwrap()
                },
                contents: vec![i; 100 + i as usize].into(),
            })
            .collect();
        let mut sender = BatchSender::default();
        assert_eq!(sender.send_all(&tx, &out), 0);
        // Buffers are reused: a second batch goes out the same.
        assert_eq!(sender.send_all(&tx, &out[..2]), 0);
        let mut buf = [0u8; 512];
        for i in 0..150u8 {
            let rx = if i % 2 == 0 { &rx1 } else { &rx2 };
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, 100 + i as usize);
            assert!(buf[..n].iter().all(|b| *b == i));
        }
        assert_eq!(rx1.recv(&mut buf).unwrap(), 100);
        assert_eq!(rx2.recv(&mut buf).unwrap(), 101);
    }
}
