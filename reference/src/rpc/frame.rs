//! Framing: where one message ends and the next begins in a byte stream.
//!
//! TCP keeps the order of the bytes but not the boundaries of the writes that
//! sent them. The 21 bytes of a request may come in 21 reads of one byte, and
//! one read may return three requests and the first bytes of a fourth. So a
//! receiver never assumes "one read = one message". It appends what each read
//! returns to a buffer, and takes frames out of that buffer as long as a whole
//! one is there:
//!
//! ```text
//!   | L (4 bytes, big-endian) | L bytes of body | L | body ... | L | bo|   <- not yet: keep it
//!   ^ a frame ends 4 + L bytes after it starts
//! ```
//!
//! [`FrameReader`] is that buffer. It does no I/O itself, so the async server
//! and the blocking client share it: they read from their socket and
//! [`push`](FrameReader::push) the bytes, then call
//! [`next_frame`](FrameReader::next_frame) until it says it needs more.

/// The longest frame body anybody may announce: 1 MiB. A peer announcing more
/// is broken or hostile, and we close its connection instead of reading on.
pub const MAX_LEN: u32 = 1 << 20;

/// The length prefix: a 4-byte unsigned integer, big-endian.
pub const HEADER_LEN: usize = 4;

/// Appends a frame with `body` to `out`: its length, big-endian, then the body.
pub fn append_frame(out: &mut Vec<u8>, body: &[u8]) {
    let len = u32::try_from(body.len()).expect("a frame body fits in 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// What [`FrameReader::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame, with its body.
    Body(Vec<u8>),
    /// A whole frame whose body was longer than any message we expect (but
    /// not over [`MAX_LEN`]). Its body was thrown away as it arrived rather
    /// than kept, so that it costs no memory; the number is its length.
    Skipped(u32),
}

/// A peer announced a frame longer than [`MAX_LEN`]; the number is that length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong(pub u32);

/// Splits a byte stream into frames.
#[derive(Debug)]
pub struct FrameReader {
    /// The longest body kept; longer ones are skipped (see [`Frame::Skipped`]).
    max_body: usize,
    /// Bytes received; `buf[start..]` are not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// While skipping a long body: its length, and how many bytes of it are
    /// still to come.
    skipping: Option<(u32, usize)>,
}

impl FrameReader {
    /// A reader that keeps bodies of at most `max_body` bytes.
    pub fn new(max_body: usize) -> FrameReader {
        FrameReader {
            max_body,
            buf: Vec::new(),
            start: 0,
            skipping: None,
        }
    }

    /// Adds bytes just read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // Forget the bytes already consumed first, so the buffer never holds
        // more than what one read returned plus the start of one frame.
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// Is part of a frame waiting for the rest? (At end-of-file, this means
    /// the peer stopped in the middle of a frame.)
    pub fn is_mid_frame(&self) -> bool {
        self.skipping.is_some() || self.start < self.buf.len()
    }

    /// Takes the next whole frame out of the buffer.
    ///
    /// `Ok(None)`: no whole frame yet, read more and push it.
    /// `Err(TooLong)`: the peer announced more than [`MAX_LEN`]; give up on
    /// this stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, TooLong> {
        if let Some((len, remaining)) = self.skipping {
            // Throw away what has arrived of the long body.
            let n = remaining.min(self.buf.len() - self.start);
            self.start += n;
            if n < remaining {
                self.skipping = Some((len, remaining - n));
                return Ok(None);
            }
            self.skipping = None;
            return Ok(Some(Frame::Skipped(len)));
        }

        let pending = &self.buf[self.start..];
        if pending.len() < HEADER_LEN {
            return Ok(None); // not even the length yet
        }
        let len = u32::from_be_bytes(pending[..HEADER_LEN].try_into().unwrap());
        // Check the length as soon as we have it, before waiting for a body
        // that may never come or would not fit in memory.
        if len > MAX_LEN {
            return Err(TooLong(len));
        }
        let body_len = len as usize;
        if body_len > self.max_body {
            self.start += HEADER_LEN;
            self.skipping = Some((len, body_len));
            return self.next_frame();
        }
        if pending.len() < HEADER_LEN + body_len {
            return Ok(None); // the body is still on its way
        }
        let body = pending[HEADER_LEN..HEADER_LEN + body_len].to_vec();
        // The frame ends here; whatever follows is the next frame.
        self.start += HEADER_LEN + body_len;
        Ok(Some(Frame::Body(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        append_frame(&mut v, body);
        v
    }

    #[test]
    fn length_is_big_endian() {
        assert_eq!(frame(&[9; 17])[..4], [0, 0, 0, 17]);
        assert_eq!(frame(&[0; 258])[..4], [0, 0, 1, 2]);
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut r = FrameReader::new(17);
        let bytes = frame(b"hello");
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(r.next_frame(), Ok(None), "after {i} bytes");
            r.push(&[*b]);
        }
        assert_eq!(r.next_frame(), Ok(Some(Frame::Body(b"hello".to_vec()))));
        assert_eq!(r.next_frame(), Ok(None));
        assert!(!r.is_mid_frame());
    }

    #[test]
    fn several_frames_in_one_push() {
        let mut r = FrameReader::new(17);
        let mut bytes = frame(b"one");
        bytes.extend(frame(b""));
        bytes.extend(frame(b"three"));
        bytes.extend(&frame(b"four")[..3]);
        r.push(&bytes);
        assert_eq!(r.next_frame(), Ok(Some(Frame::Body(b"one".to_vec()))));
        assert_eq!(r.next_frame(), Ok(Some(Frame::Body(Vec::new()))));
        assert_eq!(r.next_frame(), Ok(Some(Frame::Body(b"three".to_vec()))));
        assert_eq!(r.next_frame(), Ok(None));
        assert!(r.is_mid_frame());
        r.push(&frame(b"four")[3..]);
        assert_eq!(r.next_frame(), Ok(Some(Frame::Body(b"four".to_vec()))));
    }

    #[test]
    fn long_bodies_are_skipped_and_oversize_is_refused() {
        let mut r = FrameReader::new(17);
        let mut bytes = frame(&[1; 1000]);
        bytes.extend(frame(b"next"));
        for piece in bytes.chunks(7) {
            r.push(piece);
        }
        assert_eq!(r.next_frame(), Ok(Some(Frame::Skipped(1000))));
        assert_eq!(r.next_frame(), Ok(Some(Frame::Body(b"next".to_vec()))));

        let mut r = FrameReader::new(17);
        r.push(&MAX_LEN.to_be_bytes());
        assert_eq!(r.next_frame(), Ok(None)); // exactly 1 MiB is allowed
        let mut r = FrameReader::new(17);
        r.push(&(MAX_LEN + 1).to_be_bytes());
        assert_eq!(r.next_frame(), Err(TooLong(MAX_LEN + 1)));
    }
}
