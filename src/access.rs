//! Who may reach Parloir at all: a blocklist of networks (`--block CIDR`,
//! a `block` list in the file, or a `block_file` of one CIDR per line,
//! such as a country's published list) and, when given, an allowlist
//! (`--allow CIDR`): only those networks get in.
//!
//! The same rules apply to HTTP and the signalling (refused at accept,
//! before TLS; a client behind a trusted proxy at the WebSocket), and to
//! media (ICE over UDP, datagram by datagram; ICE over TCP at accept). On
//! SIGHUP the rules are read again (flags, environment and file) and
//! replace the old ones at once; nothing else restarts, so calls go on.
//! The media thread reads the rules through a generation counter (one
//! atomic load per datagram while they do not change), and they are
//! merged, sorted ranges: a binary search, even for a country's list.
//!
//! A reload that adds a block cuts the network's media over UDP at once;
//! its open TCP connections (a WebSocket, ICE over TCP) end when they
//! end. Lists given as flags or in the environment replace the file's
//! (as every setting does): to edit a list and reload it, keep it in the
//! file. An allowlist applies to the cluster's own traffic too (workers'
//! reports, control channels, Prometheus): list those networks in it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// The networks refused, and those allowed (everyone when empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessRules {
    block: Ranges,
    allow: Ranges,
}

/// Networks as sorted, merged address ranges: a country's list (tens of
/// thousands of networks) is a binary search per datagram, not a scan.
#[derive(Debug, Clone, Default, PartialEq)]
struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    fn new(nets: &[IpNet]) -> Self {
        let mut r = Ranges::default();
        for net in IpNet::aggregate(&nets.to_vec()) {
            match net {
                IpNet::V4(n) => r.v4.push((n.network().into(), n.broadcast().into())),
                IpNet::V6(n) => r.v6.push((n.network().into(), n.broadcast().into())),
            }
        }
        // Aggregated networks do not overlap; sorted by start.
        r.v4.sort_unstable();
        r.v6.sort_unstable();
        r
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn contains(&self, ip: IpAddr) -> bool {
        fn within<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
            let after = ranges.partition_point(|r| r.0 <= x);
            after > 0 && x <= ranges[after - 1].1
        }
        match ip {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => within(&self.v6, u128::from(a)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the block file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {text:?} is not an address or a network (CIDR)")]
    Line {
        path: String,
        line: usize,
        text: String,
    },
}

impl AccessRules {
    pub fn new(block: Vec<IpNet>, allow: Vec<IpNet>) -> Self {
        AccessRules {
            block: Ranges::new(&block),
            allow: Ranges::new(&allow),
        }
    }

    /// The rules of a configuration: its lists, and the networks of
    /// `block_file` (one address or CIDR per line; `#` starts a comment).
    pub fn load(
        block: &[IpNet],
        block_file: Option<&str>,
        allow: &[IpNet],
    ) -> Result<Self, AccessError> {
        let mut all = block.to_vec();
        if let Some(path) = block_file {
            let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
                path: path.into(),
                source,
            })?;
            all.extend(parse_list(&text).map_err(|(line, text)| AccessError::Line {
                path: path.into(),
                line,
                text,
            })?);
        }
        Ok(AccessRules::new(all, allow.to_vec()))
    }

    /// Whether `ip` may reach Parloir.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.block.is_empty() && self.allow.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        !self.block.contains(ip) && (self.allow.is_empty() || self.allow.contains(ip))
    }

    pub fn blocked(&self) -> usize {
        self.block.len()
    }

    pub fn allowed(&self) -> usize {
        self.allow.len()
    }
}

/// Networks of a list, one per line; a bare address is its own network.
/// The first line that is neither: its number (from 1) and text.
pub(crate) fn parse_list(text: &str) -> Result<Vec<IpNet>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let net = line
            .parse::<IpNet>()
            .or_else(|_| line.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| (i + 1, line.to_string()))?;
        out.push(net);
    }
    Ok(out)
}

/// The rules in force, shared by the HTTP port, the signalling and the
/// media thread, and replaced on reload.
#[derive(Debug, Clone, Default)]
pub struct Access(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    rules: RwLock<Arc<AccessRules>>,
    generation: AtomicU64,
}

impl Access {
    pub fn new(rules: AccessRules) -> Self {
        Access(Arc::new(Shared {
            rules: RwLock::new(Arc::new(rules)),
            generation: AtomicU64::new(0),
        }))
    }

    pub fn rules(&self) -> Arc<AccessRules> {
        self.0
            .rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn admits(&self, ip: IpAddr) -> bool {
        self.rules().admits(ip)
    }

    pub fn replace(&self, rules: AccessRules) {
        *self.0.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        self.0.generation.fetch_add(1, Ordering::Release);
    }

    /// A copy for a hot loop, refreshed only when the rules change.
    pub fn cached(&self) -> CachedAccess {
        CachedAccess {
            access: self.clone(),
            generation: self.0.generation.load(Ordering::Acquire),
            rules: self.rules(),
        }
    }
}

/// The rules as the media thread holds them.
#[derive(Debug)]
pub struct CachedAccess {
    access: Access,
    generation: u64,
    rules: Arc<AccessRules>,
}

impl CachedAccess {
    pub fn admits(&mut self, ip: IpAddr) -> bool {
        let now = self.access.0.generation.load(Ordering::Acquire);
        if now != self.generation {
            self.generation = now;
            self.rules = self.access.rules();
        }
        self.rules.admits(ip)
    }
}

/// Reads the rules again, as the process was configured (flags,
/// environment, file).
pub type Reload = std::sync::Arc<dyn Fn() -> Result<AccessRules, String> + Send + Sync>;

/// On every SIGHUP, reads the rules again and puts them in force; a rule
/// file that does not read keeps the old rules, and says why.
pub async fn reload_on_hangup(access: Access, reload: Reload) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("no SIGHUP handler: access rules will not be reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        // Files are read off the runtime's threads.
        let read = tokio::task::spawn_blocking({
            let reload = reload.clone();
            move || reload()
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading the rules failed: {e}")));
        match read {
            Ok(rules) => {
                tracing::info!(
                    blocked = rules.blocked(),
                    allowed = rules.allowed(),
                    "access rules reloaded"
                );
                access.replace(rules);
            }
            Err(e) => tracing::error!("access rules not reloaded, the old ones stay: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn blocked_networks_are_refused_others_admitted() {
        let r = AccessRules::new(nets(&["192.0.2.0/24", "2001:db8::/32"]), vec![]);
        assert!(!r.admits(ip("192.0.2.77")));
        assert!(
            !r.admits(ip("::ffff:192.0.2.77")),
            "v4-mapped is the same address"
        );
        assert!(!r.admits(ip("2001:db8:5::1")));
        assert!(r.admits(ip("198.51.100.1")));
        assert!(AccessRules::default().admits(ip("192.0.2.77")));
    }

    #[test]
    fn an_allowlist_admits_only_its_networks_and_block_wins() {
        let r = AccessRules::new(nets(&["10.1.0.0/16"]), nets(&["10.0.0.0/8"]));
        assert!(r.admits(ip("10.2.3.4")));
        assert!(!r.admits(ip("10.1.3.4")));
        assert!(!r.admits(ip("198.51.100.1")));
    }

    #[test]
    fn a_long_list_is_searched_not_scanned() {
        // 20,000 networks of 256 addresses, 4,096 apart: a country's list.
        let list: Vec<IpNet> = (0..20_000u32)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::new((i << 12).into(), 24).unwrap()))
            .collect();
        let r = AccessRules::new(list, vec![]);
        assert!(!r.admits(IpAddr::from(std::net::Ipv4Addr::from((5u32 << 12) | 7))));
        assert!(r.admits(IpAddr::from(std::net::Ipv4Addr::from((5u32 << 12) | 0x100))));
        // Adjacent networks merge.
        let merged = AccessRules::new(nets(&["10.0.0.0/25", "10.0.0.128/25"]), vec![]);
        assert_eq!(merged.blocked(), 1);
        assert!(!merged.admits(ip("10.0.0.200")));
        assert!(merged.admits(ip("10.0.1.0")));
    }

    #[test]
    fn a_list_file_reads_as_published_lists_are_written() {
        let list = "# a country\n192.0.2.0/24\n\n198.51.100.7   # one address\n2001:db8::/32\n";
        assert_eq!(
            parse_list(list).unwrap(),
            nets(&["192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32"])
        );
        assert_eq!(
            parse_list("10.0.0.0/8\nnonsense\n"),
            Err((2, "nonsense".into()))
        );
    }

    #[test]
    fn a_replacement_reaches_the_cached_copy() {
        let access = Access::new(AccessRules::new(nets(&["192.0.2.0/24"]), vec![]));
        let mut cached = access.cached();
        assert!(!cached.admits(ip("192.0.2.1")));
        access.replace(AccessRules::default());
        assert!(cached.admits(ip("192.0.2.1")));
        assert!(access.admits(ip("192.0.2.1")));
    }
}
