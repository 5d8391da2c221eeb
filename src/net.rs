//! Host addresses, the open files the process may have, and the one type
//! of byte stream HTTP and the control channel run over.

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

/// The open files (sockets included) this process may have: its soft
/// limit.
pub fn open_files_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Raises the soft limit on open files to the hard one, as servers do: the
/// usual soft limit (1,024) is a few hundred calls' worth of WebSockets
/// and ICE-TCP connections, while the hard one is far above. Returns the
/// limit now in force.
pub fn raise_open_files_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!(
                    "cannot raise the open files limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    open_files_limit()
}

/// The TCP peer of a request, as handlers read it
/// (`ConnectInfo<Peer>`): a type of Parloir's own, since the address is
/// the one the HTTP port (`roles::http_port`) accepted from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// A byte stream: TCP, or TLS over it.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Conn for T {}

/// Installs the process's one TLS crypto provider (aws-lc-rs, the one
/// str0m uses too), which rustls and reqwest look up; every TLS set-up
/// calls this first, and a second call changes nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An HTTP client, checking `https://` servers with `tls` (the cluster's
/// CA, `cluster::tls`) when given. Every client is made here: reqwest's
/// own default TLS set-up needs the crypto provider installed first. An
/// error (a TLS set-up reqwest refuses) is returned, never replaced by a
/// client that would not check the cluster's certificates.
pub fn http_client(tls: Option<&rustls::ClientConfig>) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    let builder = reqwest::Client::builder();
    let builder = match tls {
        Some(tls) => builder.use_preconfigured_tls(tls.clone()),
        None => builder,
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_addresses_are_kept() {
        let ip: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(announce_ip_for(ip), ip);
    }

    /// Whether this host has an IPv4 default route (`/proc/net/route`
    /// lists it with destination 0).
    fn has_default_route() -> bool {
        std::fs::read_to_string("/proc/net/route")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    }

    #[test]
    fn unspecified_becomes_an_address_of_this_host_that_browsers_can_reach() {
        let ip = announce_ip_for(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        // One of this host's own addresses: a socket binds to it (an
        // address of elsewhere is refused).
        UdpSocket::bind((ip, 0)).expect("the announced address is this host's");
        // Loopback only where nothing else is reachable.
        if has_default_route() {
            assert!(!ip.is_loopback(), "{ip} announced on a routed host");
        }
    }
}
