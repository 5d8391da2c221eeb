//! Reads the SRTP protection profile a server chose from its DTLS
//! ServerHello (plaintext in DTLS 1.2): what was negotiated on the wire,
//! not what either side prefers.

/// Name of the profile in the `use_srtp` extension of a ServerHello in
/// `datagram`, if there is one.
pub fn srtp_profile(datagram: &[u8]) -> Option<&'static str> {
    let mut rec = datagram;
    // DTLS records: type(1) version(2) epoch(2) seq(6) length(2) body.
    while rec.len() >= 13 {
        let len = u16::from_be_bytes([rec[11], rec[12]]) as usize;
        let body = rec.get(13..13 + len)?;
        if rec[0] == 22 {
            if let Some(p) = in_handshake(body) {
                return Some(p);
            }
        }
        rec = &rec[13 + len..];
    }
    None
}

fn in_handshake(h: &[u8]) -> Option<&'static str> {
    // Handshake: type(1) length(3) seq(2) frag_off(3) frag_len(3) body.
    if h.len() < 12 || h[0] != 2 {
        return None;
    }
    let body = &h[12..];
    // ServerHello: version(2) random(32) session_id(1+n) suite(2) comp(1) ext_len(2) exts.
    let sid = *body.get(34)? as usize;
    let mut i = 35 + sid + 3;
    let ext_len = u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]) as usize;
    i += 2;
    let end = (i + ext_len).min(body.len());
    while i + 4 <= end {
        let typ = u16::from_be_bytes([body[i], body[i + 1]]);
        let len = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let data = body.get(i + 4..i + 4 + len)?;
        if typ == 14 && data.len() >= 4 {
            return Some(match u16::from_be_bytes([data[2], data[3]]) {
                0x0001 => "SRTP_AES128_CM_SHA1_80",
                0x0002 => "SRTP_AES128_CM_SHA1_32",
                0x0007 => "SRTP_AEAD_AES_128_GCM",
                0x0008 => "SRTP_AEAD_AES_256_GCM",
                _ => "unknown",
            });
        }
        i += 4 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_use_srtp_in_a_server_hello() {
        let mut hello = vec![0xfe, 0xfd];
        hello.extend([0u8; 32]); // random
        hello.push(0); // session id
        hello.extend([0xc0, 0x2b, 0]); // suite, compression
        let ext = [0u8, 14, 0, 5, 0, 2, 0, 8, 0];
        hello.extend((ext.len() as u16).to_be_bytes());
        hello.extend(ext);
        let mut hs = vec![
            2,
            0,
            0,
            hello.len() as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            hello.len() as u8,
        ];
        hs.extend(hello);
        let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        assert_eq!(srtp_profile(&rec), Some("SRTP_AEAD_AES_256_GCM"));
        assert_eq!(srtp_profile(&rec[..20]), None);
        assert_eq!(srtp_profile(&[0x80; 40]), None);
    }
}
