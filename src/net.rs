//! Host addresses.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// The address to announce in ICE candidates for a socket bound to `bound`.
///
/// A concrete bound address is announced as is. For `0.0.0.0` we announce
/// the address of the interface that carries the default route: connecting
/// a UDP socket only asks the kernel for a route, it sends nothing. Without
/// any route (an isolated namespace) loopback is all there is.
pub fn announce_ip_for(bound: IpAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let routed = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|s| {
        // TEST-NET-1 (RFC 5737): never answered, and nothing is sent anyway.
        s.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        s.local_addr()
    });
    match routed {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_addresses_are_kept() {
        let ip: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(announce_ip_for(ip), ip);
    }

    #[test]
    fn unspecified_becomes_a_usable_address() {
        let ip = announce_ip_for(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(!ip.is_unspecified());
    }
}
