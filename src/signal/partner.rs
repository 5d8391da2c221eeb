//! Partner instances: other video-call services a refused new room is sent
//! to, with one click, when this one is full (or an operator redirects new
//! rooms ahead of a surge).

use serde::{Deserialize, Serialize};

/// One partner, as configured: `--partner 'NAME=URL'`, or
/// `'NAME=URL;fr,en'` with the languages it serves, or in the file
/// `partners = [{ name = "...", url = "...", languages = ["fr"] }]`.
/// `{room}` in the URL is replaced by the room's name, so that the call
/// starts there under the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
}

impl std::str::FromStr for Partner {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: a partner is NAME=URL (or NAME=URL;fr,en)"))?;
        let (url, languages) = rest.split_once(';').unwrap_or((rest, ""));
        let partner = Partner {
            name: name.trim().to_string(),
            url: url.trim().to_string(),
            languages: languages
                .split(',')
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty())
                .collect(),
        };
        partner.check()?;
        Ok(partner)
    }
}

impl Partner {
    /// A partner people can be sent to: named, at an http(s) URL.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err(format!("partner {:?} has no name", self.url));
        }
        let scheme_ok = self.url.starts_with("https://") || self.url.starts_with("http://");
        if !scheme_ok || self.url.len() <= "https://".len() {
            return Err(format!(
                "partner {:?}: {:?} is not an http(s) URL",
                self.name, self.url
            ));
        }
        Ok(())
    }

    /// The partner as a refused person is offered it: its URL for `room`.
    pub fn for_room(&self, room: &str) -> Partner {
        Partner {
            url: self.url.replace("{room}", room),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_from_the_command_line() {
        let p: Partner = "Hôpital Nord=https://visio.example/{room};fr, EN"
            .parse()
            .unwrap();
        assert_eq!(p.name, "Hôpital Nord");
        assert_eq!(p.url, "https://visio.example/{room}");
        assert_eq!(p.languages, ["fr", "en"]);
        assert_eq!(p.for_room("abc").url, "https://visio.example/abc");
        let plain: Partner = "Jitsi=https://meet.example".parse().unwrap();
        assert!(plain.languages.is_empty());
        assert_eq!(plain.for_room("abc").url, "https://meet.example");
    }

    #[test]
    fn bad_partners_are_refused() {
        assert!("https://meet.example".parse::<Partner>().is_err());
        assert!("=https://meet.example".parse::<Partner>().is_err());
        assert!("Evil=javascript:alert(1)".parse::<Partner>().is_err());
        assert!("Empty=https://".parse::<Partner>().is_err());
    }
}
