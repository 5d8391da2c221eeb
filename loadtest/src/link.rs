//! How a synthetic participant's media travels: its own UDP socket, or
//! ICE over TCP (RFC 6544: one connection to the server's passive
//! candidate, RFC 4571 frames), as a browser on a network without UDP.

use std::net::SocketAddr;

use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        server: SocketAddr,
        /// Bytes read and not yet handed out as frames.
        inbuf: Vec<u8>,
    },
}

impl Link {
    pub fn proto(&self) -> Protocol {
        match self {
            Link::Udp(_) => Protocol::Udp,
            Link::Tcp { .. } => Protocol::Tcp,
        }
    }

    /// Sends one datagram (over TCP, one frame: there is one destination).
    pub async fn send(&mut self, data: &[u8], to: SocketAddr) -> std::io::Result<()> {
        match self {
            Link::Udp(sock) => sock.send_to(data, to).await.map(|_| ()),
            Link::Tcp { stream, .. } => {
                let len = u16::try_from(data.len()).map_err(std::io::Error::other)?;
                let mut frame = Vec::with_capacity(2 + data.len());
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(data);
                stream.write_all(&frame).await
            }
        }
    }

    /// Receives one datagram into `buf`: its length and sender. Cancel
    /// safe (bytes read stay in `inbuf` until their frame is whole).
    pub async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            Link::Udp(sock) => sock.recv_from(buf).await,
            Link::Tcp {
                stream,
                server,
                inbuf,
            } => loop {
                if let Some(len) = inbuf
                    .get(..2)
                    .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                {
                    if inbuf.len() >= 2 + len {
                        let n = len.min(buf.len());
                        buf[..n].copy_from_slice(&inbuf[2..2 + n]);
                        inbuf.drain(..2 + len);
                        return Ok((n, *server));
                    }
                }
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                inbuf.extend_from_slice(&chunk[..n]);
            },
        }
    }
}

/// The server's passive TCP candidate in an SDP (`a=candidate:… tcp …
/// typ host … tcptype passive`).
pub fn tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        let passive = fields.windows(2).any(|w| w == ["tcptype", "passive"]);
        if !fields.get(2)?.eq_ignore_ascii_case("tcp") || !passive {
            return None;
        }
        format!("{}:{}", fields.get(4)?, fields.get(5)?)
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passive_tcp_candidate_is_found() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.1 10000 typ host\r\n\
                   a=candidate:2 1 tcp 1010827775 10.0.0.1 443 typ host tcptype passive\r\n";
        assert_eq!(tcp_candidate(sdp), Some("10.0.0.1:443".parse().unwrap()));
        assert_eq!(
            tcp_candidate("a=candidate:1 1 udp 1 10.0.0.1 10000 typ host"),
            None
        );
    }
}
