//! Comparing secrets (the cluster secret, resume tokens) without leaking,
//! through timing, how much of one matched.

/// Whether `a` and `b` are equal, in time that depends only on their length.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
