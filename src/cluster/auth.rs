//! The shared secret of a cluster: every worker↔signal request carries it as
//! `Authorization: Bearer SECRET`.

use axum::http::HeaderMap;

use crate::secret::equal;

/// Whether the request shows `secret`.
pub fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| equal(given.as_bytes(), secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        h.insert("authorization", "Basic s3cret".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
    }
}
