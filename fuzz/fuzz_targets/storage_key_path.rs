//! Any key (parts separated by 0xFF bytes): the NodeFS path mapping either refuses it or gives
//! components that are safe path names and map back to exactly the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::StorageKey;
use tandem_storage_fs::paths;

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = data
        .split(|byte| *byte == 0xFF)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    let key = StorageKey::new(parts);
    if let Ok(components) = paths::key_components(&key) {
        for component in &components {
            assert!(!component.is_empty(), "{key:?}");
            assert!(component != "." && component != "..", "{key:?}");
            assert!(!component.contains(['/', '\\', '\0']), "{key:?}");
        }
        assert_eq!(paths::key_at(&components), Some(key));
    }
});
