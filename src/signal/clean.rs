//! What a client typed, made safe to show others: display names, chat
//! messages and room passwords, cleaned or refused with a clear error.

use super::protocol::{ErrorCode, ServerMessage, MAX_CHAT_CHARS, MAX_PASSWORD_CHARS};

/// Display names are cut to this many characters.
const MAX_NAME_CHARS: usize = 40;

/// A room password as given: 1 to [`MAX_PASSWORD_CHARS`] characters,
/// compared as typed (spaces included).
pub fn password(password: &str) -> Result<String, ServerMessage> {
    let len = password.chars().count();
    if (1..=MAX_PASSWORD_CHARS).contains(&len) {
        Ok(password.to_string())
    } else {
        Err(ServerMessage::error(
            ErrorCode::BadMessage,
            format!("a password has 1 to {MAX_PASSWORD_CHARS} characters"),
        ))
    }
}

/// Trims, drops control characters, and cuts the display name.
pub fn name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// A chat message as the room receives it: line breaks kept, other control
/// characters (terminal escapes, bells) removed. Too long is refused
/// rather than cut: the sender's words arrive whole or not at all.
pub fn chat(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect();
    let cleaned = cleaned.trim();
    let len = cleaned.chars().count();
    (1..=MAX_CHAT_CHARS)
        .contains(&len)
        .then(|| cleaned.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(name("  Mamie\n "), Some("Mamie".into()));
        assert_eq!(name("\u{7}\u{1b}"), None);
        assert_eq!(name(&"é".repeat(100)).unwrap().chars().count(), 40);
    }

    #[test]
    fn chat_keeps_lines_and_refuses_empty_or_too_long() {
        assert_eq!(
            chat(" Bonjour\nça va ?\u{1b}[2J "),
            Some("Bonjour\nça va ?[2J".into())
        );
        assert_eq!(chat(" \n\t"), None);
        assert!(chat(&"é".repeat(MAX_CHAT_CHARS)).is_some());
        assert_eq!(chat(&"é".repeat(MAX_CHAT_CHARS + 1)), None);
    }
}
