//! Room names: the secret part of a call's link.
//!
//! Whoever has the link can enter, so generated names carry 78 random bits
//! (16 characters from a 30-letter alphabet without look-alikes), grouped
//! for reading aloud over the phone.

use rand::Rng;

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 64;

/// Crockford-like alphabet: no 0/o, 1/l/i, u.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstvwxyz23456789";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoomNameError {
    #[error("a room name has {MIN_LEN} to {MAX_LEN} characters")]
    Length,
    #[error("a room name has only letters a-z, A-Z, digits, '-' and '_'")]
    Characters,
}

/// Checks a room name from the network.
pub fn validate(name: &str) -> Result<(), RoomNameError> {
    if name.len() < MIN_LEN || name.len() > MAX_LEN {
        return Err(RoomNameError::Length);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RoomNameError::Characters);
    }
    Ok(())
}

/// A fresh, hard-to-guess room name like `k7mq-p9xa-4hvt-2bnd`.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(validate(&a), Ok(()));
        assert_eq!(a.len(), 19);
        assert_ne!(a, b);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(validate("ab"), Err(RoomNameError::Length));
        assert_eq!(validate(&"a".repeat(65)), Err(RoomNameError::Length));
        assert_eq!(validate("../etc"), Err(RoomNameError::Characters));
        assert_eq!(validate("salle café"), Err(RoomNameError::Characters));
        assert_eq!(validate("famille-martin_2"), Ok(()));
    }
}
