//! Personal data in logs. A room's name is the key to the room (whoever
//! reads it in a log can join), and a client's address says who called
//! whom: a hospital's logs must carry neither. Unless the operator asks
//! (`--log-personal-data`), a room is shown as a short opaque id (the
//! same room, the same id, within one process: log lines still follow a
//! call) and an address as an opaque id of its IP (repeated abuse from
//! one address still shows). The ids are keyed hashes whose key never
//! leaves the process: they cannot be reversed by trying names.
//! Participants are their opaque ids already; their display names are
//! never logged. Metrics carry no room, name or address at all.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static SHOW: AtomicBool = AtomicBool::new(false);
static KEY: OnceLock<RandomState> = OnceLock::new();

/// Whether logs show rooms and addresses as they are (set once at start).
pub fn log_personal_data(on: bool) {
    SHOW.store(on, Ordering::Relaxed);
}

fn shown() -> bool {
    SHOW.load(Ordering::Relaxed)
}

fn opaque(prefix: &str, value: impl std::hash::Hash, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let h = KEY.get_or_init(RandomState::new).hash_one(value);
    write!(f, "{prefix}{:08x}", h as u32)
}

/// A room's name as logs show it: `tracing::info!(room = %room(name))`.
pub struct Room<'a>(&'a str);

pub fn room(name: &str) -> Room<'_> {
    Room(name)
}

impl fmt::Display for Room<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if shown() {
            f.write_str(self.0)
        } else {
            opaque("room-", self.0, f)
        }
    }
}

/// A client's address as logs show it.
pub struct Client(IpAddr);

pub fn client(ip: IpAddr) -> Client {
    Client(ip)
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if shown() {
            write!(f, "{}", self.0)
        } else {
            opaque("ip-", self.0, f)
        }
    }
}

/// An opaque id of a client's network, whatever the log setting: what a
/// worker counts per network (the people of one room's lobby) without
/// ever holding an address. Keyed with the cluster's secret when there is
/// one, so that every signal server of a cluster gives one network the
/// same id; with this process's own key otherwise.
pub fn network_id(ip: IpAddr, cluster_secret: Option<&str>) -> String {
    keyed_hex(ip.to_string().as_bytes(), cluster_secret, 8)
}

/// A room password as the cluster compares and keeps it: an HMAC of the
/// room and the password under the cluster's secret (this process's own
/// random key without one, when a single signal server does everything).
/// Workers, Redis and logs never hold a password as typed, a digest is the
/// same on every signal server of a cluster, and one password in two rooms
/// gives two digests.
pub fn password_digest(room: &str, password: &str, cluster_secret: Option<&str>) -> String {
    let message = ["parloir room password", room, password].join("\0");
    keyed_hex(message.as_bytes(), cluster_secret, 32)
}

/// A room's name as `serve` keeps its door on disk (`state_dir.rs`): an
/// HMAC under the state folder's key, so the file names no room.
pub fn room_digest(room: &str, key: &str) -> String {
    let message = ["parloir room", room].join("\0");
    keyed_hex(message.as_bytes(), Some(key), 16)
}

/// The first `len` bytes (at most 32) of an HMAC-SHA256 of `message`, in
/// hex, keyed with the cluster's secret, or with this process's own random
/// key without one.
fn keyed_hex(message: &[u8], cluster_secret: Option<&str>, len: usize) -> String {
    static OWN_KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = match cluster_secret {
        Some(secret) => secret.as_bytes(),
        None => OWN_KEY.get_or_init(rand::random),
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, message);
    tag.as_ref()
        .iter()
        .take(len)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test for both settings: the switch is process-wide.
    #[test]
    fn rooms_and_addresses_are_opaque_unless_asked() {
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        log_personal_data(false);
        let a = room("chambre-217").to_string();
        assert!(a.starts_with("room-") && a.len() == 13, "{a}");
        assert!(!a.contains("chambre"));
        // The same room, the same id; another room, another.
        assert_eq!(a, room("chambre-217").to_string());
        assert_ne!(a, room("chambre-218").to_string());
        let c = client(ip).to_string();
        assert!(c.starts_with("ip-") && !c.contains("127"), "{c}");

        // A network's id never shows its address; one cluster secret, one id.
        let id = network_id(ip, Some("a-cluster-secret"));
        assert_eq!(id.len(), 16);
        assert!(!id.contains("127"));
        assert_eq!(id, network_id(ip, Some("a-cluster-secret")));
        assert_ne!(id, network_id(ip, Some("another-secret!!")));

        log_personal_data(true);
        assert_eq!(room("chambre-217").to_string(), "chambre-217");
        assert_eq!(client(ip).to_string(), "127.0.0.7");
        log_personal_data(false);
    }

    #[test]
    fn a_password_is_kept_as_a_keyed_digest_of_its_room() {
        let d = password_digest("chambre", "tulipe rouge", Some("a-cluster-secret"));
        assert_eq!(d.len(), 64);
        assert!(!d.contains("tulipe"));
        assert_eq!(
            d,
            password_digest("chambre", "tulipe rouge", Some("a-cluster-secret"))
        );
        assert_ne!(
            d,
            password_digest("chambre", "tulipe", Some("a-cluster-secret"))
        );
        assert_ne!(
            d,
            password_digest("salon", "tulipe rouge", Some("a-cluster-secret"))
        );
        assert_ne!(
            d,
            password_digest("chambre", "tulipe rouge", Some("another-secret!!"))
        );
        // Without a cluster secret, this process's own key, the same each time.
        let own = password_digest("chambre", "tulipe rouge", None);
        assert_eq!(own, password_digest("chambre", "tulipe rouge", None));
        assert_ne!(own, d);
    }
}
