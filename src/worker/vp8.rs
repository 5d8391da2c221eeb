//! What the worker needs to know of a VP8 packet without decoding it
//! (RFC 7741). str0m's [`Vp8Descriptor`] reads the payload descriptor (once
//! per packet, not per copy): whether it starts a keyframe, on which alone
//! forwarding to a subscriber can (re)start, and its picture ids. This
//! module adds a keyframe's width, by which simulcast layers are told
//! apart and matched to tiles.
//!
//! It also keeps a subscriber's picture ids continuous when its source
//! changes ([`PictureIds`]): each simulcast layer numbers its pictures on
//! its own, and a receiver that sees the id jump takes the frames between
//! for lost.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// The width in pixels of the keyframe `payload` starts, if it starts one.
pub fn keyframe_width(payload: &[u8]) -> Option<u32> {
    let at = keyframe_header(payload)?;
    // Frame tag (3 bytes), start code (3), then 14 bits of width.
    let size = payload.get(at + 6..at + 8)?;
    Some(u32::from(u16::from_le_bytes([size[0], size[1]]) & 0x3fff))
}

/// Where the VP8 payload header of a keyframe's first packet starts
/// (str0m's descriptor knows but does not say).
fn keyframe_header(payload: &[u8]) -> Option<usize> {
    let &first = payload.first()?;
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let &ext = payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let &pid = payload.get(at)?;
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
    payload.get(at).is_some_and(|h| h & 0x01 == 0).then_some(at)
}

/// Rewrites one outgoing stream's picture ids (15 bits) and TL0PICIDX
/// (8 bits) so they continue across source switches.
#[derive(Debug, Clone, Default)]
pub struct PictureIds {
    picture_offset: u16,
    tl0_offset: u8,
    /// The next packet starts a new source: offsets are set from it.
    rebase: bool,
    /// The ids written with the highest sequence number so far.
    last: Option<(u64, Option<u16>, Option<u8>)>,
}

impl PictureIds {
    /// The next packet comes from another source (it starts a keyframe).
    pub fn switch_source(&mut self) {
        self.rebase = true;
    }

    /// The patch for a packet with descriptor `desc` written with sequence
    /// number `seq`, or `None` when its ids pass unchanged (the common
    /// case: no copy).
    pub fn patch(&mut self, desc: &Vp8Descriptor, seq: u64) -> Option<Vp8Patch> {
        let (pid, tl0) = self.rewrite(desc.picture_id(), desc.tl0_pic_idx(), seq);
        let mut patch = desc.patch();
        let mut changed = false;
        if let Some(p) = pid.filter(|_| self.picture_offset != 0) {
            patch = patch.picture_id(p);
            changed = true;
        }
        if let Some(t) = tl0.filter(|_| self.tl0_offset != 0) {
            patch = patch.tl0_pic_idx(t);
            changed = true;
        }
        // A 7-bit picture id that the offset would overflow stays as it is.
        changed.then(|| patch.build().ok()).flatten()
    }

    /// The ids to write for a packet with these ids and sequence number.
    fn rewrite(
        &mut self,
        pid: Option<u16>,
        tl0: Option<u8>,
        seq: u64,
    ) -> (Option<u16>, Option<u8>) {
        if std::mem::take(&mut self.rebase) {
            if let Some((_, last_pid, last_tl0)) = self.last {
                if let (Some(last), Some(pid)) = (last_pid, pid) {
                    self.picture_offset = last.wrapping_add(1).wrapping_sub(pid) & 0x7fff;
                }
                if let (Some(last), Some(tl0)) = (last_tl0, tl0) {
                    self.tl0_offset = last.wrapping_add(1).wrapping_sub(tl0);
                }
            }
        }
        let out_pid = pid.map(|p| p.wrapping_add(self.picture_offset) & 0x7fff);
        let out_tl0 = tl0.map(|t| t.wrapping_add(self.tl0_offset));
        if self.last.is_none_or(|(last_seq, _, _)| seq > last_seq) {
            self.last = Some((seq, out_pid, out_tl0));
        }
        (out_pid, out_tl0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_keyframe(payload: &[u8]) -> bool {
        Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload))
    }

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
        // 320×240, as Chromium's half-size layer starts.
        let key = [
            0x90, 0xe0, 0xde, 0x12, 0x38, 0x20, 0xb0, 0x25, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0,
            0,
        ];
        assert_eq!(keyframe_width(&key), Some(320));
        assert_eq!(keyframe_width(&browser(0x9d)), None);
        for delta in [
            &[0x10, 0x9d, 0x01, 0x2a][..],
            &[0x11, 0x10],
            &[0x90, 0xe0, 0x80],
            &[],
        ] {
            assert_eq!(keyframe_width(delta), None, "{delta:?}");
        }
    }

    #[test]
    fn picture_ids_continue_across_a_switch() {
        let mut ids = PictureIds::default();
        let write = |ids: &mut PictureIds, pid: u16, tl0: u8, seq: u64| {
            let (p, t) = ids.rewrite(Some(pid), Some(tl0), seq);
            (p.unwrap(), t.unwrap())
        };
        // Layer A: pictures 100, 101 pass unchanged.
        assert_eq!(write(&mut ids, 100, 7, 1), (100, 7));
        assert_eq!(write(&mut ids, 101, 8, 2), (101, 8));
        // Switch to layer B, numbered on its own (and near the wrap).
        ids.switch_source();
        assert_eq!(write(&mut ids, 0x7ffe, 200, 3), (102, 9));
        assert_eq!(write(&mut ids, 0x7fff, 200, 4), (103, 9));
        assert_eq!(write(&mut ids, 0, 201, 5), (104, 10));
        // A packet repaired late keeps its own place, not the newest one's.
        assert_eq!(write(&mut ids, 0x7fff, 200, 4), (103, 9));
        ids.switch_source();
        assert_eq!(write(&mut ids, 104, 9, 6), (105, 11));
    }

    #[test]
    fn unchanged_ids_need_no_patch_and_changed_ones_do() {
        let packet = |pid: u16, tl0: u8| {
            [
                0x90,
                0xe0,
                0x80 | (pid >> 8) as u8,
                pid as u8,
                tl0,
                0x20,
                0x9d,
            ]
        };
        let desc = |p: &[u8]| Vp8Descriptor::parse(p).unwrap();
        let mut ids = PictureIds::default();
        assert!(ids.patch(&desc(&packet(100, 7)), 1).is_none());
        ids.switch_source();
        assert!(ids.patch(&desc(&packet(5000, 7)), 2).is_some());
        let bare = desc(&[0x10, 0x9d]);
        assert!(ids.patch(&bare, 3).is_none(), "no ids, nothing to patch");
    }
}
