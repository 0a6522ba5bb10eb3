//! A document's sync core receiving whatever a peer sends. The driver is shared with the
//! regression test that replays every crash this target found
//! (`crates/core/tests/fuzz_regressions.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/core/tests/peer_messages_driver/mod.rs"]
mod peer_messages_driver;

fuzz_target!(|data: &[u8]| peer_messages_driver::feed_peer_messages(data));
