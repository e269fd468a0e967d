//! Writing ISO base media file format boxes (ISO/IEC 14496-12) into memory: a box is a 32-bit size,
//! a four-character type and its payload; full boxes add a version and 24 bits of flags.

/// A box being built; children are written with [`BoxWriter::child`].
pub struct BoxWriter {
    bytes: Vec<u8>,
}

impl BoxWriter {
    pub fn new(kind: &[u8; 4]) -> Self {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(kind);
        Self { bytes }
    }

    pub fn full(kind: &[u8; 4], version: u8, flags: u32) -> Self {
        let mut b = Self::new(kind);
        b.u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
        b
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(v);
        self
    }

    pub fn zeros(&mut self, count: usize) -> &mut Self {
        self.bytes.resize(self.bytes.len() + count, 0);
        self
    }

    /// The identity transformation matrix of movie and track headers.
    pub fn unity_matrix(&mut self) -> &mut Self {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
        self
    }

    pub fn child(&mut self, child: BoxWriter) -> &mut Self {
        let bytes = child.finish();
        self.bytes.extend_from_slice(&bytes);
        self
    }

    /// The box with its size filled in.
    pub fn finish(mut self) -> Vec<u8> {
        let size = self.bytes.len() as u32;
        self.bytes[..4].copy_from_slice(&size.to_be_bytes());
        self.bytes
    }
}

/// An MPEG-4 descriptor (ISO/IEC 14496-1) with a tag and a length in the 7-bit continued form.
pub fn descriptor(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = payload.len();
    // Four length bytes, as most muxers write them.
    out.extend_from_slice(&[
        0x80 | ((len >> 21) & 0x7f) as u8,
        0x80 | ((len >> 14) & 0x7f) as u8,
        0x80 | ((len >> 7) & 0x7f) as u8,
        (len & 0x7f) as u8,
    ]);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sizes_include_header_and_children() {
        let mut parent = BoxWriter::new(b"moov");
        let mut child = BoxWriter::full(b"mvhd", 0, 1);
        child.u32(7);
        parent.child(child);
        let bytes = parent.finish();
        assert_eq!(&bytes[..8], &[0, 0, 0, 24, b'm', b'o', b'o', b'v']);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 16, b'm', b'v', b'h', b'd']);
        assert_eq!(&bytes[16..20], &[0, 0, 0, 1]);
        assert_eq!(descriptor(5, &[1, 2]), vec![5, 0x80, 0x80, 0x80, 2, 1, 2]);
    }
}
