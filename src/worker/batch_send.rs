//! Sending many datagrams in few system calls: `sendmmsg`, and UDP
//! segmentation offload (GSO) for runs of datagrams to one destination.
//!
//! Forwarding one packet to N subscribers makes N datagrams at once; one
//! `sendto` each spends most of the per-packet CPU entering and leaving the
//! kernel. `sendmmsg` hands them all over in one call. A subscriber also
//! gets the packets of a video frame back to back (drained peer by peer),
//! and those are one size but the last: with `UDP_SEGMENT` such a run goes
//! down the IP stack once, as one large datagram the kernel (or the NIC)
//! cuts into the original ones. quinn-udp does GSO too but sends one
//! `sendmsg` per run; forwarding needs many runs per call.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::SockAddr;
use str0m::net::Transmit;

/// Most messages per `sendmmsg` (the kernel's UIO_MAXIOV is 1024).
const BATCH: usize = 64;
/// Most datagrams in one GSO message (the kernel's UDP_MAX_SEGMENTS).
const MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO message (one IP datagram's worth).
const MAX_GSO_BYTES: usize = 60_000;

/// A datagram to send: where, and what.
pub trait Datagram {
    fn destination(&self) -> SocketAddr;
    fn contents(&self) -> &[u8];
}

impl Datagram for Transmit {
    fn destination(&self) -> SocketAddr {
        self.destination
    }
    fn contents(&self) -> &[u8] {
        &self.contents
    }
}

impl Datagram for (SocketAddr, &[u8]) {
    fn destination(&self) -> SocketAddr {
        self.0
    }
    fn contents(&self) -> &[u8] {
        self.1
    }
}

/// Consecutive datagrams sent as one message: `len` datagrams from
/// `start`, each `segment` bytes but the last (which may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub len: usize,
    pub segment: usize,
}

/// Splits `out` into runs that one GSO message can carry: same
/// destination, equal sizes, a shorter datagram only at the end.
pub fn plan_runs(out: &[(SocketAddr, usize)], gso: bool, runs: &mut Vec<Run>) {
    runs.clear();
    let mut i = 0;
    while i < out.len() {
        let (dest, segment) = out[i];
        let mut len = 1;
        let mut bytes = segment;
        while gso && i + len < out.len() && len < MAX_SEGMENTS {
            let (d, size) = out[i + len];
            if d != dest || size > segment || bytes + size > MAX_GSO_BYTES {
                break;
            }
            len += 1;
            bytes += size;
            if size < segment {
                break;
            }
        }
        runs.push(Run {
            start: i,
            len,
            segment,
        });
        i += len;
    }
}

/// Room for one `UDP_SEGMENT` control message, aligned as `cmsghdr` wants.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Cmsg([u8; 32]);

/// Sends batches of datagrams. Its buffers are kept between calls, so
/// sending allocates nothing once they have grown to the largest batch.
pub struct BatchSender {
    /// Cleared for good when the kernel or the route refuses GSO.
    gso: bool,
    shape: Vec<(SocketAddr, usize)>,
    runs: Vec<Run>,
    addrs: Vec<SockAddr>,
    iov: Vec<libc::iovec>,
    cmsgs: Vec<Cmsg>,
    msgs: Vec<libc::mmsghdr>,
}

impl Default for BatchSender {
    fn default() -> Self {
        BatchSender::new(true)
    }
}

enum Sent {
    All,
    /// The kernel had no buffer space: this many messages were not sent.
    Full(usize),
    /// GSO refused for this message: send from it on without GSO.
    GsoRefused(usize),
}

impl BatchSender {
    pub fn new(gso: bool) -> Self {
        BatchSender {
            gso,
            shape: Vec::new(),
            runs: Vec::new(),
            addrs: Vec::new(),
            iov: Vec::new(),
            cmsgs: Vec::new(),
            msgs: Vec::new(),
        }
    }

    /// Whether runs still go out as GSO messages.
    #[cfg(test)]
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends `out` on `socket`; returns how many datagrams the kernel
    /// refused for lack of buffer space (dropped, as UDP would).
    pub fn send_all<D: Datagram>(&mut self, socket: &impl AsRawFd, out: &[D]) -> usize {
        let fd = socket.as_raw_fd();
        let mut from = 0;
        let mut dropped = 0;
        while from < out.len() {
            let rest = &out[from..];
            self.shape.clear();
            self.shape
                .extend(rest.iter().map(|t| (t.destination(), t.contents().len())));
            plan_runs(&self.shape, self.gso, &mut self.runs);
            let mut resumed = None;
            let mut r = 0;
            while r < self.runs.len() {
                let chunk = r..(r + BATCH).min(self.runs.len());
                match self.send_chunk(fd, rest, chunk.clone()) {
                    Sent::All => {}
                    Sent::Full(unsent) => {
                        dropped += self.runs[chunk.end - unsent..chunk.end]
                            .iter()
                            .map(|run| run.len)
                            .sum::<usize>();
                    }
                    Sent::GsoRefused(m) => {
                        tracing::info!("UDP GSO refused by the kernel: sending without it");
                        self.gso = false;
                        resumed = Some(from + self.runs[chunk.start + m].start);
                        break;
                    }
                }
                r = chunk.end;
            }
            match resumed {
                Some(at) => from = at,
                None => break,
            }
        }
        // No pointer into `out` outlives this call.
        self.msgs.clear();
        self.iov.clear();
        dropped
    }

    /// Sends the runs `chunk` of `out` in one `sendmmsg` (more if the
    /// kernel takes them in parts).
    fn send_chunk(
        &mut self,
        fd: std::os::fd::RawFd,
        out: &[impl Datagram],
        chunk: std::ops::Range<usize>,
    ) -> Sent {
        let runs = &self.runs[chunk];
        self.addrs.clear();
        self.iov.clear();
        self.cmsgs.clear();
        for run in runs {
            self.addrs
                .push(SockAddr::from(out[run.start].destination()));
            self.iov.extend(
                out[run.start..run.start + run.len]
                    .iter()
                    .map(|t| libc::iovec {
                        iov_base: t.contents().as_ptr() as *mut libc::c_void,
                        iov_len: t.contents().len(),
                    }),
            );
            self.cmsgs.push(Cmsg([0; 32]));
        }
        self.msgs.clear();
        let mut iov_at = 0;
        for ((run, addr), cmsg) in runs.iter().zip(&self.addrs).zip(self.cmsgs.iter_mut()) {
            // SAFETY: an all-zero msghdr is valid (no name, no iov, no
            // control); the fields set below point into `addrs`, `iov`,
            // `cmsgs` and `out`, all alive and unmoved until the sends of
            // this chunk return.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_namelen = addr.len();
            m.msg_hdr.msg_iov = self.iov[iov_at..].as_mut_ptr();
            m.msg_hdr.msg_iovlen = run.len;
            iov_at += run.len;
            if run.len > 1 {
                write_segment_cmsg(&mut m.msg_hdr, cmsg, run.segment as u16);
            }
            self.msgs.push(m);
        }
        let mut sent = 0;
        while sent < self.msgs.len() {
            // SAFETY: every message points at live buffers (see above); the
            // kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs[sent..].as_mut_ptr(),
                    (self.msgs.len() - sent) as u32,
                    0,
                )
            };
            if n >= 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    return Sent::Full(self.msgs.len() - sent)
                }
                // EIO: the device cannot checksum a GSO message; EINVAL or
                // ENOPROTOOPT: a kernel without UDP_SEGMENT (or a segment
                // above the path MTU).
                Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::ENOPROTOOPT)
                    if runs[sent].len > 1 =>
                {
                    return Sent::GsoRefused(sent)
                }
                // One bad destination (ICMP error pending, unreachable
                // address) must not stop the others: skip it.
                _ => {
                    tracing::debug!(dest = %out[runs[sent].start].destination(), "send: {e}");
                    sent += 1;
                }
            }
        }
        Sent::All
    }
}

/// Points `hdr` at `cmsg`, filled with `UDP_SEGMENT = segment`.
fn write_segment_cmsg(hdr: &mut libc::msghdr, cmsg: &mut Cmsg, segment: u16) {
    // SAFETY: `cmsg` is 8-aligned and 32 bytes, more than CMSG_SPACE(2)
    // (24 on 64-bit Linux); CMSG_FIRSTHDR of a msghdr whose control points
    // there with that length returns its start.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
        debug_assert!(space <= cmsg.0.len());
        hdr.msg_control = cmsg.0.as_mut_ptr() as *mut libc::c_void;
        hdr.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(hdr);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use str0m::net::Protocol;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn runs_keep_one_destination_and_one_size_but_the_last() {
        let (a, b) = (addr(1), addr(2));
        let shape = [
            (a, 1100),
            (a, 1100),
            (a, 700), // shorter: ends the run
            (a, 1100),
            (b, 1100), // other destination
            (b, 1100),
            (b, 1200), // longer: a new run
            (b, 300),
        ];
        let mut runs = Vec::new();
        plan_runs(&shape, true, &mut runs);
        let got: Vec<(usize, usize, usize)> =
            runs.iter().map(|r| (r.start, r.len, r.segment)).collect();
        assert_eq!(
            got,
            vec![(0, 3, 1100), (3, 1, 1100), (4, 2, 1100), (6, 2, 1200)]
        );
        plan_runs(&shape, false, &mut runs);
        assert!(runs.iter().all(|r| r.len == 1));
        assert_eq!(runs.len(), shape.len());
    }

    #[test]
    fn runs_stay_within_the_kernel_limits() {
        let shape = vec![(addr(1), 1200); 200];
        let mut runs = Vec::new();
        plan_runs(&shape, true, &mut runs);
        assert!(runs.iter().all(|r| r.len * r.segment <= MAX_GSO_BYTES));
        assert!(runs.iter().all(|r| r.len <= MAX_SEGMENTS));
        assert_eq!(runs.iter().map(|r| r.len).sum::<usize>(), 200);
    }

    /// Sends `out` with and without GSO; every datagram must arrive once,
    /// whole, in order per destination. `refuse_gso` makes the kernel
    /// refuse GSO (a socket without UDP checksums cannot use it), as a
    /// device without checksum offload would.
    fn round_trip(gso: bool, refuse_gso: bool) {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        if refuse_gso {
            let one: libc::c_int = 1;
            // SAFETY: a valid socket and an int option of the right size.
            let r = unsafe {
                libc::setsockopt(
                    tx.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NO_CHECK,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0);
        }
        let rx1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Runs of one size to each destination, a shorter one at the end
        // of each, destinations alternating every 5 datagrams.
        let size = |i: usize| if i % 5 == 4 { 300 + i } else { 1100 };
        let out: Vec<Transmit> = (0..150usize)
            .map(|i| Transmit {
                proto: Protocol::Udp,
                source: tx.local_addr().unwrap(),
                destination: if (i / 5) % 2 == 0 {
                    rx1.local_addr().unwrap()
                } else {
                    rx2.local_addr().unwrap()
                },
                contents: vec![i as u8; size(i)].into(),
            })
            .collect();
        for rx in [&rx1, &rx2] {
            rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
        }
        let mut sender = BatchSender::new(gso);
        assert_eq!(sender.send_all(&tx, &out), 0);
        // Loopback takes GSO unless refused; refused, it falls back.
        assert_eq!(sender.gso(), gso && !refuse_gso);
        // Buffers are reused: a second batch goes out the same.
        assert_eq!(sender.send_all(&tx, &out[..2]), 0);
        let mut buf = [0u8; 2048];
        for i in 0..150usize {
            let rx = if (i / 5) % 2 == 0 { &rx1 } else { &rx2 };
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, size(i), "datagram {i}");
            assert!(buf[..n].iter().all(|b| *b == i as u8), "datagram {i}");
        }
        assert_eq!(rx1.recv(&mut buf).unwrap(), 1100);
        assert_eq!(rx1.recv(&mut buf).unwrap(), 1100);
    }

    #[test]
    fn every_datagram_arrives_once_with_gso() {
        round_trip(true, false);
    }

    #[test]
    fn every_datagram_arrives_once_without_gso() {
        round_trip(false, false);
    }

    #[test]
    fn a_kernel_refusing_gso_loses_nothing() {
        round_trip(true, true);
    }
}
