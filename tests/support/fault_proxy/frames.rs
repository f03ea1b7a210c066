//! Splits a byte stream into whole frames: MySQL packets (3-byte little-endian length, sequence
//! id) or, after an SSLRequest, TLS records (type, version, 2-byte big-endian length).

/// How a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    Mysql,
    Tls,
}

/// CLIENT_SSL in a client's capability flags.
const CLIENT_SSL: u32 = 0x800;

impl Framing {
    pub fn header_len(self) -> usize {
        match self {
            Framing::Mysql => 4,
            Framing::Tls => 5,
        }
    }

    fn payload_len(self, header: &[u8]) -> usize {
        match self {
            Framing::Mysql => u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize,
            Framing::Tls => u16::from_be_bytes([header[3], header[4]]) as usize,
        }
    }

    /// Takes one whole frame, header included, off the front of `buf` if it holds one.
    pub fn take(self, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
        let header = self.header_len();
        if buf.len() < header {
            return None;
        }
        let total = header + self.payload_len(&buf[..header]);
        (buf.len() >= total).then(|| buf.drain(..total).collect())
    }

    /// The frame without its header.
    pub fn payload(self, frame: &[u8]) -> &[u8] {
        &frame[self.header_len()..]
    }
}

/// Whether a client's MySQL packet is an SSLRequest: 32 bytes of payload with CLIENT_SSL set.
pub fn is_ssl_request(frame: &[u8]) -> bool {
    frame.len() == 4 + 32 && u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]) & CLIENT_SSL != 0
}

/// Whether a server's MySQL packet is a LOCAL INFILE request: the first packet of an answer
/// (sequence id 1) starting with 0xFB.
pub fn is_local_infile_request(frame: &[u8]) -> bool {
    frame.len() > 4 && frame[3] == 1 && frame[4] == 0xFB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_come_off_one_at_a_time() {
        let mut buf = vec![1, 0, 0, 0, 0xAA, 2, 0, 0, 1, 0xBB];
        assert_eq!(Framing::Mysql.take(&mut buf), Some(vec![1, 0, 0, 0, 0xAA]));
        assert_eq!(Framing::Mysql.take(&mut buf), None, "the second packet is incomplete");
        buf.push(0xCC);
        assert_eq!(Framing::Mysql.take(&mut buf), Some(vec![2, 0, 0, 1, 0xBB, 0xCC]));
        let mut record = vec![0x16, 3, 3, 0, 1, 0xDD, 0x17];
        assert_eq!(Framing::Tls.take(&mut record), Some(vec![0x16, 3, 3, 0, 1, 0xDD]));
        assert_eq!(record, [0x17]);
    }
}
