//! Any text as an automerge URL, a document id (any of its accepted forms) or a URL head:
//! parsing never panics, and what parses prints to text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::{AutomergeUrl, DocumentId, UrlHead};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = text.parse::<AutomergeUrl>() {
        let again: AutomergeUrl = url.to_string().parse().expect("a URL we print parses");
        assert_eq!(again, url);
        let _ = url.change_hashes();
    }
    if let Ok(id) = DocumentId::interpret(text) {
        let again = DocumentId::interpret(&id.to_string()).expect("an id we print parses");
        assert_eq!(again, id);
    }
    if let Ok(head) = text.parse::<UrlHead>() {
        let _ = head.change_hash();
    }
});
