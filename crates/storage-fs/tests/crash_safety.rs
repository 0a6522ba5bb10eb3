//! `kill -9` at random moments never costs a reported save and never leaves a torn value.
//!
//! Real processes: `fs-crash-writer` saves self-verifying values (a length-and-sequence header
//! and a known pattern) in a loop and reports each save that returned; the test kills it with
//! SIGKILL after a random number of saves, several times over one directory, then checks the
//! directory as a fresh process sees it. Set `CRASH_SEED` to replay a run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tandem_core::{StorageAdapter, StorageKey};
use tandem_storage_fs::FsStorage;

const ROUNDS: usize = 8;

/// Byte `j` of every value's body (as in the writer).
fn pattern(j: usize) -> u8 {
    (j.wrapping_mul(31) ^ (j >> 9)) as u8
}

/// The sequence number of a whole value, or why it is torn.
fn verify(value: &[u8]) -> Result<u64, String> {
    if value.len() < 16 {
        return Err(format!("{} bytes, shorter than the header", value.len()));
    }
    let len = u64::from_le_bytes(value[..8].try_into().unwrap()) as usize;
    let seq = u64::from_le_bytes(value[8..16].try_into().unwrap());
    if value.len() - 16 != len {
        return Err(format!(
            "header says {len} bytes, file has {}",
            value.len() - 16
        ));
    }
    match value[16..]
        .iter()
        .enumerate()
        .position(|(j, b)| *b != pattern(j))
    {
        Some(j) => Err(format!("byte {j} of the body is wrong")),
        None => Ok(seq),
    }
}

fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Runs the writer until `saves` saves are reported, kills it, and returns the reports
/// (key, sequence number) in order.
fn run_and_kill(
    dir: &std::path::Path,
    round: usize,
    saves: usize,
    delay: Duration,
) -> Vec<(String, u64)> {
    // Sequence numbers grow across rounds, so "newer" means the same in every round.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fs-crash-writer"))
        .arg(dir)
        .arg(format!("w{round}"))
        .arg((round as u64 * 1_000_000).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fs-crash-writer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut reported = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reported.len() < saves && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => reported.push(parse(&line).expect("a whole line")),
            _ => break,
        }
    }
    // The kill lands at a random point of the writer's next saves, not just after a report.
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // Lines written before the kill are reports too; a torn last line is not.
    reported.extend(lines.map_while(Result::ok).filter_map(|line| parse(&line)));
    assert!(!reported.is_empty(), "the writer reported no saves");
    reported
}

fn parse(line: &str) -> Option<(String, u64)> {
    let mut words = line.split(' ');
    (words.next()? == "saved").then_some(())?;
    let key = words.next()?.to_owned();
    let seq = words.next()?.parse().ok()?;
    (key.split('/').count() == 3).then_some((key, seq))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_reported_save_and_tears_no_value() {
    let seed = seed();
    println!("CRASH_SEED={seed}");
    let mut rng = seed | 1;
    let dir = tempfile::tempdir().unwrap();
    // Per key, the newest reported sequence number.
    let mut newest: BTreeMap<String, u64> = BTreeMap::new();
    let mut saves = 0;
    for round in 0..ROUNDS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % 30_000);
        let reports = run_and_kill(dir.path(), round, 3 + (rng % 25) as usize, delay);
        saves += reports.len();
        newest.extend(reports);
    }

    let store = FsStorage::open(dir.path()).expect("reopen after crashes");
    let staging: Vec<_> = std::fs::read_dir(dir.path().join(".tandem-tmp"))
        .unwrap()
        .collect();
    assert!(
        staging.is_empty(),
        "seed {seed}: killed writers' temporary files were cleaned up: {staging:?}"
    );

    let everything = store
        .load_range(&StorageKey::new(Vec::<String>::new()))
        .await
        .expect("the directory loads");
    let mut found = BTreeMap::new();
    for (key, value) in &everything {
        let name = key.parts().join("/");
        let seq =
            verify(value).unwrap_or_else(|why| panic!("seed {seed}: torn value at {name}: {why}"));
        found.insert(name, seq);
    }
    for (key, seq) in &newest {
        let on_disk = found
            .get(key)
            .unwrap_or_else(|| panic!("seed {seed}: reported save of {key} is lost"));
        if key.ends_with("/latest") {
            // Overwritten again and again: the newest reported value, or a newer one that was in
            // flight at a kill, never an older one.
            assert!(
                on_disk >= seq,
                "seed {seed}: {key} holds {on_disk}, older than the reported {seq}"
            );
        } else {
            assert_eq!(on_disk, seq, "seed {seed}: {key}");
        }
    }
    println!(
        "{saves} reported saves over {ROUNDS} kills, {} values on disk, all whole",
        everything.len()
    );
}
