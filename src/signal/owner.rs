//! A room's owner: whoever created it, by a key its browser keeps.
//!
//! The first one into an empty room moderates it. Without owners, that
//! was anyone who knew the name and came first once the room was empty:
//! a stranger could lock it and keep its family out. Now the session of
//! whoever creates a room (first in, the room owned by nobody) draws a
//! key, the cluster keeps its digest for the room
//! ([`Registry::claim`](crate::cluster::registry::Registry::claim), for
//! [`OWNED_FOR`](crate::cluster::registry::OWNED_FOR) since the owner
//! last came), and the page keeps the key (`room-owner`, then
//! `localStorage`). A join that shows it moderates, past any lock; into
//! a room owned by someone else, being first moderates nothing.
//!
//! A key is 22 random letters and digits (131 bits); the cluster keeps only its digest (SHA-256,
//! as resume tokens are kept: `worker::return_key`), so whoever
//! reads Redis or the state folder cannot come in as an owner.

use crate::ids;
use crate::secret;
use crate::worker::return_key;

/// What a join is to its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// It showed the owner's key (kept here to make the claim again).
    Owner(String),
    /// The room is someone else's.
    Stranger,
    /// Nobody owns the room: its creator will.
    Unowned,
}

impl Ownership {
    /// The join that showed `shown` (its key, if any), into a room whose
    /// owner's digest is `owner`.
    pub fn of(shown: Option<&str>, owner: Option<&str>) -> Ownership {
        match (shown, owner) {
            (_, None) => Ownership::Unowned,
            (Some(key), Some(owner)) if secret::equal(digest(key).as_bytes(), owner.as_bytes()) => {
                Ownership::Owner(key.to_string())
            }
            (_, Some(_)) => Ownership::Stranger,
        }
    }
}

/// A key as the page sends it: anything else is no key.
pub fn is_key(key: &str) -> bool {
    ids::is_resume_token(key)
}

/// A new owner's key.
pub fn new_key(rng: &mut impl rand::Rng) -> String {
    ids::new_resume_token(rng)
}

/// What the cluster keeps of a key.
pub fn digest(key: &str) -> String {
    return_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_the_key_kept_makes_an_owner() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = new_key(&mut rng);
        assert!(is_key(&key));
        let kept = digest(&key);
        assert_ne!(kept, key, "the key itself is not kept");
        assert_eq!(
            Ownership::of(Some(&key), Some(&kept)),
            Ownership::Owner(key.clone())
        );
        let other = new_key(&mut rng);
        assert_eq!(
            Ownership::of(Some(&other), Some(&kept)),
            Ownership::Stranger
        );
        assert_eq!(Ownership::of(None, Some(&kept)), Ownership::Stranger);
        // Showing the digest read from the store is no key.
        assert_eq!(Ownership::of(Some(&kept), Some(&kept)), Ownership::Stranger);
        assert_eq!(Ownership::of(Some(&key), None), Ownership::Unowned);
    }
}
