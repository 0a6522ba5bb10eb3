//! Any bytes as a WebSocket frame: decoding never panics, and what decodes re-encodes to a frame
//! that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::Message;

fuzz_target!(|frame: &[u8]| {
    if let Ok(message) = Message::decode(frame) {
        let again = Message::decode(&message.encode()).expect("a frame we encode decodes");
        assert_eq!(again, message);
    }
});
