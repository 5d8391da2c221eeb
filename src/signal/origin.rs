//! Which web pages may open the signalling WebSocket.
//!
//! A browser sends the page's `Origin` with every WebSocket handshake and,
//! unlike with `fetch`, does not stop a page of another site from opening
//! one: without this check any site a visitor has open could join rooms in
//! their name (cross-site WebSocket hijacking). By default only pages of
//! Parloir itself may (the `Origin` names the `Host` the request came
//! to); `--allowed-origin` lists others (a hospital's portal that embeds
//! the call). A client that sends no `Origin` is not a browser page, and
//! nothing a browser enforces applies to it: it is let through (a
//! non-browser client can send any header it likes). An opaque origin
//! (`null`: a sandboxed frame, a `file:` page) never is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An origin as browsers send it: `scheme://host[:port]`, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl TryFrom<String> for Origin {
    type Error = OriginError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin (https://host or https://host:port, no path)")]
pub struct OriginError(String);

impl std::str::FromStr for Origin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .ok_or_else(|| OriginError(s.into()))?;
        let ok = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if ok {
            Ok(Origin(lower))
        } else {
            Err(OriginError(s.into()))
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Origin {
    /// `host[:port]` of the origin.
    fn authority(&self) -> &str {
        self.0.split_once("://").map_or("", |(_, a)| a)
    }
}

/// Whether a WebSocket handshake with this `Origin` header (if any),
/// arriving with this `Host` header, comes from a page allowed to use
/// the signalling.
pub fn allowed(origin: Option<&str>, host: Option<&str>, others: &[Origin]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Ok(origin) = origin.parse::<Origin>() else {
        return false;
    };
    let same = host.is_some_and(|h| origin.authority() == h.trim().to_ascii_lowercase());
    same || others.contains(&origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Origin {
        s.parse().unwrap()
    }

    #[test]
    fn the_page_of_the_same_host_is_allowed() {
        let host = Some("visio.example:8443");
        assert!(allowed(Some("https://visio.example:8443"), host, &[]));
        assert!(allowed(Some("https://VISIO.example:8443"), host, &[]));
        // Same name, another port: another origin.
        assert!(!allowed(Some("https://visio.example"), host, &[]));
    }

    #[test]
    fn another_site_is_refused_unless_listed() {
        let host = Some("visio.example");
        assert!(!allowed(Some("https://evil.example"), host, &[]));
        let portal = [o("https://portail.chu.example")];
        assert!(allowed(Some("https://portail.chu.example"), host, &portal));
        assert!(!allowed(Some("https://evil.example"), host, &portal));
    }

    #[test]
    fn opaque_and_garbage_origins_are_refused() {
        let host = Some("visio.example");
        for bad in [
            "null",
            "",
            "file://",
            "https://visio.example/path",
            "javascript:1",
        ] {
            assert!(!allowed(Some(bad), host, &[]), "{bad}");
        }
        // No Host header at all: only a listed origin.
        assert!(!allowed(Some("https://visio.example"), None, &[]));
    }

    #[test]
    fn a_client_without_origin_is_not_a_page() {
        assert!(allowed(None, Some("visio.example"), &[]));
    }

    #[test]
    fn origins_are_read_as_browsers_write_them() {
        assert_eq!(
            o("https://Portail.example/").to_string(),
            "https://portail.example"
        );
        assert_eq!(o("http://[::1]:8080").to_string(), "http://[::1]:8080");
        assert!("portail.example".parse::<Origin>().is_err());
        assert!("https://".parse::<Origin>().is_err());
        assert!("https://a.example/x".parse::<Origin>().is_err());
    }
}
