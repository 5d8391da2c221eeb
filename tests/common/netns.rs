//! A host of its own for one test participant: a network namespace joined
//! to this one by a veth pair (this side `10.77.K.1`, the namespace
//! `10.77.K.2`), with the impairments a poor network has, switched on by
//! the test: random loss (nftables) and a rate cap (tc tbf). Everything is
//! removed on drop; traffic goes only between this host and the namespace.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct NetNs {
    pub name: String,
    /// The veth end on this side: a cap on it limits the namespace's
    /// downlink.
    host_if: String,
    ns_if: String,
    /// This side's address, as the namespace reaches it.
    pub host_ip: String,
    /// The namespace's address (it changes with
    /// [`NetNs::move_to_new_address`]).
    ns_ip: std::sync::Mutex<String>,
    prefix: u8,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command, panicking with its output if it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    pub fn create() -> NetNs {
        NetNs::create_with(|unique| {
            let k = 1 + unique % 250;
            (format!("10.77.{k}.1"), format!("10.77.{k}.2"), 24)
        })
    }

    /// A namespace whose link carries addresses a browser takes for public
    /// ones (TEST-NET-2, RFC 5737, never routed), as a server on the
    /// Internet has: browsers refuse ICE-TCP to a private address's ports
    /// below 1024, so a test of port 443 needs such a server address.
    pub fn create_public() -> NetNs {
        NetNs::create_with(|unique| {
            let k = 4 * (unique % 64);
            (
                format!("198.51.100.{}", k + 1),
                format!("198.51.100.{}", k + 2),
                30,
            )
        })
    }

    /// `addresses` gives this side's address, the namespace's and their
    /// prefix length, from a number unique to this namespace.
    fn create_with(addresses: impl FnOnce(u32) -> (String, String, u8)) -> NetNs {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let unique = (std::process::id() % 4096) * 16 + n;
        let name = format!("parloir-t{unique}");
        let (host_if, ns_if) = (format!("pt{unique}h"), format!("pt{unique}n"));
        let (host_ip, ns_ip, prefix) = addresses(unique);
        // A namespace left by a test that was killed goes first.
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = NetNs {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip: std::sync::Mutex::new(ns_ip),
            prefix,
        };
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        run(&["ip", "link", "set", &ns.ns_if, "netns", &ns.name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/{prefix}", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        run(&["ip", "link", "set", &ns.host_if, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/{prefix}", ns.ns_ip()),
            "dev",
            &ns.ns_if,
        ]);
        ns.exec(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's address now.
    pub fn ns_ip(&self) -> String {
        self.ns_ip.lock().unwrap().clone()
    }

    /// Gives the namespace another address on the same link, the old one
    /// removed first: a device that changes network (Wi-Fi to 4G) loses
    /// its address, and every connection made from it.
    pub fn move_to_new_address(&self) {
        let mut ip = self.ns_ip.lock().unwrap();
        let (net, last) = ip.rsplit_once('.').unwrap();
        let last: u8 = last.parse().unwrap();
        assert_eq!(self.prefix, 24, "a /24 has room for another address");
        // Never this side's address (.1).
        let next = format!("{net}.{}", if last >= 250 { 2 } else { last + 1 });
        self.exec(&[
            "ip",
            "addr",
            "del",
            &format!("{ip}/{}", self.prefix),
            "dev",
            &self.ns_if,
        ]);
        self.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{next}/{}", self.prefix),
            "dev",
            &self.ns_if,
        ]);
        *ip = next;
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Loses `percent` % of the UDP datagrams on the link, each way, at
    /// random (100: all of them, a network that drops UDP). They vanish on the wire, as on a poor network: dropped as
    /// they arrive at the far end of the veth (a drop in the sender's own
    /// output hook would fail its `sendmsg`, which the sender notices).
    pub fn lose_udp(&self, percent: u32) {
        let rule = if percent >= 100 {
            "ip protocol udp drop".to_string()
        } else {
            format!("ip protocol udp numgen random mod 100 < {percent} drop")
        };
        let table = self.impair_table();
        for (inside, dev) in [(true, &self.ns_if), (false, &self.host_if)] {
            let chain = format!("{{ type filter hook ingress device {dev} priority 0; }}");
            let cmds: [&[&str]; 3] = [
                &["nft", "add", "table", "netdev", &table],
                &["nft", "add", "chain", "netdev", &table, "loss", &chain],
                &["nft", "add", "rule", "netdev", &table, "loss", &rule],
            ];
            for cmd in cmds {
                if inside {
                    self.exec(cmd);
                } else {
                    run(cmd);
                }
            }
        }
    }

    /// Also drops TCP to `port` on the far side (after [`NetNs::lose_udp`],
    /// whose table it uses): with all UDP lost, no path is left to a
    /// server on that port.
    pub fn block_tcp_port(&self, port: u16) {
        let table = self.impair_table();
        let rule = format!("tcp dport {port} drop");
        run(&["nft", "add", "rule", "netdev", &table, "loss", &rule]);
    }

    /// Lets nothing leave the namespace but TCP to `port` (and ARP, to
    /// find this side): a network that opens only port 443. Answers come
    /// back freely, as through a stateful firewall.
    pub fn only_tcp_port_out(&self, port: u16) {
        let table = self.impair_table();
        let dev = &self.host_if;
        let chain = format!("{{ type filter hook ingress device {dev} priority 0; }}");
        let accept = format!("tcp dport {port} accept");
        let cmds: [&[&str]; 5] = [
            &["nft", "add", "table", "netdev", &table],
            &["nft", "add", "chain", "netdev", &table, "out", &chain],
            &[
                "nft", "add", "rule", "netdev", &table, "out", "meta", "protocol", "arp", "accept",
            ],
            &["nft", "add", "rule", "netdev", &table, "out", &accept],
            &["nft", "add", "rule", "netdev", &table, "out", "drop"],
        ];
        for cmd in cmds {
            run(cmd);
        }
    }

    /// No more loss.
    pub fn stop_losing(&self) {
        let table = self.impair_table();
        self.exec(&["nft", "delete", "table", "netdev", &table]);
        run(&["nft", "delete", "table", "netdev", &table]);
    }

    /// The loss table's name; unique on this side, where other tests'
    /// tables may be.
    fn impair_table(&self) -> String {
        self.name.replace('-', "_")
    }

    /// Caps what reaches the namespace at `rate` (a `tc` rate: "400kbit").
    pub fn cap_downlink(&self, rate: &str) {
        run(&tbf(&self.host_if, rate));
    }

    /// Lifts the cap of [`NetNs::cap_downlink`].
    pub fn uncap_downlink(&self) {
        run(&["tc", "qdisc", "del", "dev", &self.host_if, "root"]);
    }

    /// Caps what leaves the namespace at `rate`.
    pub fn cap_uplink(&self, rate: &str) {
        self.exec(&tbf(&self.ns_if, rate));
    }

    /// Lifts the cap of [`NetNs::cap_uplink`].
    pub fn uncap_uplink(&self) {
        self.exec(&["tc", "qdisc", "del", "dev", &self.ns_if, "root"]);
    }

    /// A TCP connection to `127.0.0.1:port` inside the namespace (a
    /// DevTools port there). A socket stays in the namespace it was made
    /// in, so a thread enters the namespace only to make it.
    pub fn connect_loopback(&self, port: u16) -> std::io::Result<TcpStream> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            // SAFETY: setns takes an open namespace file and changes only
            // the calling thread, which ends after this connection.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            TcpStream::connect(("127.0.0.1", port))
        })
        .join()
        .expect("setns thread")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes survive `ip netns del`: they go first.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
        let table = self.impair_table();
        let _ = Command::new("nft")
            .args(["delete", "table", "netdev", &table])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A `tc` command capping what `dev` sends at `rate`: a token bucket with a
/// 300 ms queue, like a slow link's buffer (this kernel has no netem).
fn tbf<'a>(dev: &'a str, rate: &'a str) -> [&'a str; 13] {
    [
        "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "16kbit",
        "latency", "300ms",
    ]
}
