//! Every input the fuzz targets (`fuzz/`) found a crash with, replayed in the normal suite.
//! Inputs live in `tests/fixtures/fuzz/<target>/`.

#[path = "peer_messages_driver/mod.rs"]
mod peer_messages_driver;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a fuzz input");
            (path.display().to_string(), bytes)
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no inputs in {}", dir.display());
    found
}

/// `bloom-without-bits.bin`: a sync message whose Bloom filter has entries but no bits. automerge
/// 0.12 stored it and divided by zero when generating our next message: a panic that took the
/// document's worker down. Now the message is refused (and the repo disconnects its sender).
#[test]
fn peer_message_inputs_that_crashed_no_longer_do() {
    for (name, bytes) in inputs("peer_messages") {
        let outcome = std::panic::catch_unwind(|| peer_messages_driver::feed_peer_messages(&bytes));
        assert!(outcome.is_ok(), "{name} still panics");
    }
}
