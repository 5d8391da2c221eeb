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

/// Sends `out` on `socket`; returns how many the kernel refused for lack
/// of buffer space (dropped, as UDP would).
pub fn send_all(socket: &impl AsRawFd, out: &[Transmit]) -> usize {
    let fd = socket.as_raw_fd();
    let mut dropped = 0;
    for chunk in out.chunks(BATCH) {
        let addrs: Vec<SockAddr> = chunk
            .iter()
            .map(|t| SockAddr::from(t.destination))
            .collect();
        let mut iov: Vec<libc::iovec> = chunk
            .iter()
            .map(|t| libc::iovec {
                iov_base: t.contents.as_ptr() as *mut libc::c_void,
                iov_len: t.contents.len(),
            })
            .collect();
        // SAFETY: an all-zero msghdr is valid (no name, no iov, no control).
        let mut msgs: Vec<libc::mmsghdr> = (0..chunk.len())
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_namelen = addrs[i].len();
            m.msg_hdr.msg_iov = &mut iov[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < msgs.len() {
            // SAFETY: `msgs[sent..]` point into `addrs`, `iov` and the
            // transmits' buffers, which all outlive this call; the kernel
            // only reads them.
            let n = unsafe {
                libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (msgs.len() - sent) as u32, 0)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        dropped += msgs.len() - sent;
                    }
                    // One bad destination (ICMP error pending, unreachable
                    // address) must not stop the others: skip it.
                    _ => {
                        tracing::debug!(dest = %chunk[sent].destination, "send: {e}");
                        sent += 1;
                        continue;
                    }
                }
                break;
            }
            sent += n as usize;
        }
    }
    dropped
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
        assert_eq!(send_all(&tx, &out), 0);
        let mut buf = [0u8; 512];
        for i in 0..150u8 {
            let rx = if i % 2 == 0 { &rx1 } else { &rx2 };
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, 100 + i as usize);
            assert!(buf[..n].iter().all(|b| *b == i));
        }
    }
}
