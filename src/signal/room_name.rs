//! Room names: the secret part of a call's link.
//!
//! Whoever has the link can enter, so generated names carry 88 random bits
//! (18 characters from a 30-letter alphabet without look-alikes: at least
//! 80 bits, past guessing at any rate a server lets through), in three
//! groups for reading aloud over the phone.

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

/// Random characters of a generated name, and how they are grouped.
const CHARS: usize = 18;
const GROUP: usize = 6;

/// A fresh, hard-to-guess room name like `k7mqp9-xa4hvt-2bndr3`.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(CHARS + CHARS / GROUP);
    for i in 0..CHARS {
        if i > 0 && i % GROUP == 0 {
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
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        let bits = (ALPHABET.len() as f64).log2() * CHARS as f64;
        assert!(bits >= 80.0, "{bits} bits");
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
