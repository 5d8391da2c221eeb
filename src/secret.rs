//! Comparing secrets: the cluster's shared secret and the per-participant
//! tokens a worker hands out. Crate-level because both the control plane
//! and the media plane check secrets, and neither should depend on the
//! other for it.

/// Compares without leaking, through timing, how much of a secret matched.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_bytes_are_equal() {
        assert!(equal(b"s3cret", b"s3cret"));
        assert!(equal(b"", b""));
        assert!(!equal(b"s3cret", b"s3creT"));
        assert!(!equal(b"s3cret", b"s3cre"));
    }
}
