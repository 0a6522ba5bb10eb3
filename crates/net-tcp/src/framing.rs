//! How messages travel on a byte stream: each encoded message preceded by its length, four bytes
//! big-endian (tokio-util's `LengthDelimitedCodec` with its defaults, which is what samod's
//! `Transport::from_tokio_io` uses), so a tandem peer and a samod peer read each other's frames.

use tokio_util::codec::LengthDelimitedCodec;

/// The default largest frame either end accepts: 64 MiB, as for WebSocket frames. A larger
/// frame closes the connection before any of it is buffered.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// The codec for one direction of a stream, refusing frames over `max_frame`.
pub(crate) fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;

    #[test]
    fn a_frame_is_its_length_in_four_big_endian_bytes_then_the_message() {
        let mut out = BytesMut::new();
        codec(16)
            .encode(Bytes::from_static(b"abc"), &mut out)
            .expect("fits");
        assert_eq!(&out[..], b"\0\0\0\x03abc");
        let frame = codec(16).decode(&mut out).expect("valid").expect("whole");
        assert_eq!(&frame[..], b"abc");
    }

    #[test]
    fn a_frame_over_the_limit_is_an_error_before_its_body_arrives() {
        let mut header = BytesMut::from(&b"\0\0\x01\0"[..]); // 256 bytes announced
        assert!(codec(255).decode(&mut header).is_err());
    }
}
