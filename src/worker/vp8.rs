//! What the worker needs to know of a VP8 packet without decoding it: whether
//! it starts a keyframe (RFC 7741). Forwarding to a subscriber can only
//! (re)start there, or the receiver has nothing to decode the next frames
//! against.

/// Whether `payload` (an RTP payload: the VP8 payload descriptor, then the
/// VP8 data) is the first packet of a keyframe.
pub fn is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&ext) = payload.get(at) else {
            return false;
        };
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let Some(&pid) = payload.get(at) else {
                return false;
            };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    // The VP8 payload header: its P bit is 0 on a keyframe.
    payload.get(at).is_some_and(|h| h & 0x01 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_told_from_delta_frames() {
        // S=1, PID=0, no extension; then a keyframe / delta header byte.
        assert!(is_keyframe(&[0x10, 0x9c, 0x01, 0x2a]));
        assert!(!is_keyframe(&[0x10, 0x9d, 0x01, 0x2a]));
        // What browsers send: X=1 with a 15-bit PictureID, TL0PICIDX, TID.
        let browser = |header: u8| [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x20, header];
        assert!(is_keyframe(&browser(0x9c)));
        assert!(!is_keyframe(&browser(0x9d)));
        // A 7-bit PictureID only.
        assert!(is_keyframe(&[0x90, 0x80, 0x12, 0x10]));
        // Not the start of a frame, another partition, or cut short.
        assert!(!is_keyframe(&[0x00, 0x10]));
        assert!(!is_keyframe(&[0x11, 0x10]));
        assert!(!is_keyframe(&[0x90, 0xe0, 0x80]));
        assert!(!is_keyframe(&[]));
    }
}
