//! The README's examples that finish by themselves run to success: `cargo test` builds them
//! next to this test's binary (`target/<profile>/examples/`), and each exits non-zero when what
//! it demonstrates did not happen.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/examples_run-<hash> -> target/<profile>/examples/<name>
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

fn runs_to_success(name: &str) {
    let output = Command::new(example(name))
        .output()
        .expect("the example starts");
    assert!(
        output.status.success(),
        "`cargo run --example {name}` failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn desktop_sync_catches_the_server_up_after_editing_offline() {
    runs_to_success("desktop_sync");
}

#[test]
fn two_repos_runs() {
    runs_to_success("two_repos");
}
