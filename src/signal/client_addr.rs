//! Who a request comes from. Directly, the TCP peer. Behind a reverse
//! proxy, every request's peer is the proxy: all clients would share one
//! address's limits. So when the peer is a proxy the operator trusts
//! (`--trusted-proxy CIDR`), the client is read from `X-Forwarded-For`:
//! the rightmost address there that is not itself a trusted proxy (the
//! left part of that header is whatever the client wrote, and proves
//! nothing). From any other peer the header is ignored.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client's address: `peer`, or what trusted proxies say it is.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    // A server on [::] sees IPv4 peers as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',').map(|h| hop_addr(h.trim())) {
        match hop {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // A hop that is no address: nothing left of it can be trusted.
            Err(_) => return client,
        }
    }
    client
}

/// A hop as proxies write it: an address, or an address and port
/// (`203.0.113.7:5678`, `[2001:db8::1]:443`).
fn hop_addr(hop: &str) -> Result<IpAddr, ()> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    #[test]
    fn a_direct_peer_is_the_client_whatever_it_claims() {
        let peer = ip("203.0.113.9");
        assert_eq!(client_addr(peer, Some("198.51.100.1"), &proxies()), peer);
        assert_eq!(client_addr(peer, None, &[]), peer);
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop() {
        let proxy = ip("10.0.0.2");
        assert_eq!(
            client_addr(proxy, Some("198.51.100.1"), &proxies()),
            ip("198.51.100.1")
        );
        // A client that forges a first hop is still read as itself.
        assert_eq!(
            client_addr(proxy, Some("1.2.3.4, 198.51.100.1"), &proxies()),
            ip("198.51.100.1")
        );
        // Two proxies in a row.
        assert_eq!(
            client_addr(proxy, Some("198.51.100.1, 10.0.0.7"), &proxies()),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_addr(ip("::1"), Some("2001:db8::5"), &proxies()),
            ip("2001:db8::5")
        );
        // Hops with ports, and a proxy seen through an IPv6 socket.
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.2"), Some("198.51.100.1:5678"), &proxies()),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_addr(proxy, Some("[2001:db8::9]:443"), &proxies()),
            ip("2001:db8::9")
        );
    }

    #[test]
    fn a_proxy_without_the_header_or_with_garbage_is_itself() {
        let proxy = ip("10.0.0.2");
        assert_eq!(client_addr(proxy, None, &proxies()), proxy);
        assert_eq!(client_addr(proxy, Some("unknown"), &proxies()), proxy);
        assert_eq!(
            client_addr(proxy, Some("198.51.100.1, nonsense, 10.0.0.9"), &proxies()),
            ip("10.0.0.9")
        );
    }
}
