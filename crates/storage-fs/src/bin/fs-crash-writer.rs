//! Test helper for crash-safety tests: saves values into a directory in a loop through
//! `FsStorage` and prints one line per save that has returned, until it is killed.
//!
//! ```text
//! fs-crash-writer <dir> <writer-name> <first-sequence-number>
//! ```
//!
//! Every value verifies itself, so a reader can tell a torn value from a whole one without knowing
//! what was written: it is a 16-byte header (length of the rest, sequence number, both u64
//! little-endian) followed by that many bytes of [`pattern`]. Most saves write a new key
//! (`[doc, "incremental", <writer>-<seq>]`); every third overwrites `[doc, "snapshot", "latest"]`.
//! Values reach 4 MiB so that a kill often lands mid-write. Each returned save prints
//! `saved <part>/<part>/<part> <seq>`.

use std::io::Write;
use std::process::ExitCode;

use tandem_core::{DocumentId, StorageAdapter, StorageKey};
use tandem_storage_fs::FsStorage;

const MAX_LEN: usize = 4 << 20;

/// Byte `j` of every value's body.
fn pattern(j: usize) -> u8 {
    (j.wrapping_mul(31) ^ (j >> 9)) as u8
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, writer, first] = args.as_slice() else {
        eprintln!("usage: fs-crash-writer <dir> <writer-name> <first-sequence-number>");
        return ExitCode::from(2);
    };
    let Ok(first) = first.parse::<u64>() else {
        eprintln!("the first sequence number must be a whole number");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(write_forever(dir, writer, first)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fs-crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn write_forever(
    dir: &str,
    writer: &str,
    first: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = FsStorage::open(dir)?;
    let docs: Vec<DocumentId> = (0..4u8)
        .map(|i| DocumentId::from_random_bytes([i; 16]))
        .collect();
    let body: Vec<u8> = (0..MAX_LEN).map(pattern).collect();
    let mut stdout = std::io::stdout().lock();
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for seq in first.. {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % MAX_LEN as u64) as usize;
        let mut value = Vec::with_capacity(16 + len);
        value.extend((len as u64).to_le_bytes());
        value.extend(seq.to_le_bytes());
        value.extend_from_slice(&body[..len]);
        let doc = docs[(seq % docs.len() as u64) as usize].as_str();
        let key = if seq % 3 == 0 {
            StorageKey::new([doc, "snapshot", "latest"])
        } else {
            StorageKey::new([
                doc.to_owned(),
                "incremental".to_owned(),
                format!("{writer}-{seq}"),
            ])
        };
        store.save(&key, value).await?;
        writeln!(stdout, "saved {} {seq}", key.parts().join("/"))?;
        stdout.flush()?;
    }
    Ok(())
}
