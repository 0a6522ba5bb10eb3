//! `tandem-server migrate` moves a directory the JS automerge-repo wrote (NodeFS) into
//! PostgreSQL, where a server on that database serves every document with its heads, and back
//! into a directory the JS packages read with the same heads.

use std::ffi::OsStr;
use std::process::Command;

use crate::common::{start_server, terminate};
use serde_json::Value as Json;
use tandem_storage_postgres::TestPostgres;

fn run_migrate(args: &[&OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .arg("migrate")
        .args(args)
        .output()
        .expect("cannot run tandem-server migrate")
}

fn migrate(args: &[&OsStr]) -> String {
    let output = run_migrate(args);
    assert!(
        output.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn urls_and_heads(documents: &Json) -> Vec<(String, Json)> {
    documents
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| (d["url"].as_str().unwrap().to_owned(), d["heads"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_directory_moves_into_postgres_and_back_with_every_documents_heads() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let database = postgres.database().await.unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let (from, back) = (dirs.path().join("js"), dirs.path().join("back"));
    let written = crate::js::node_json("nodefs-write.mjs", &[from.to_str().unwrap(), "5"]);
    let expected = urls_and_heads(&written);

    let report = migrate(&[
        OsStr::new("--from-dir"),
        from.as_os_str(),
        OsStr::new("--to-postgres"),
        OsStr::new(&database),
    ]);
    assert!(report.contains("5 documents"), "{report}");

    // A server on the database serves each document to a JS client with its heads.
    let (server, url) = start_server(&[OsStr::new("--postgres"), OsStr::new(&database)]);
    for (doc_url, heads) in &expected {
        let mut node = crate::js::NodeProcess::start("ws-peer.mjs", &["find", &url, doc_url]);
        let found = node
            .next_json_async(std::time::Duration::from_secs(30))
            .await;
        tokio::task::block_in_place(|| node.finish(std::time::Duration::from_secs(30)));
        assert_eq!(&found["heads"], heads, "{doc_url} through the server");
    }
    assert!(terminate(server).success());

    let report = migrate(&[
        OsStr::new("--from-postgres"),
        OsStr::new(&database),
        OsStr::new("--to-dir"),
        back.as_os_str(),
    ]);
    assert!(report.contains("5 documents"), "{report}");
    let mut args = vec![back.to_str().unwrap().to_owned()];
    args.extend(expected.iter().map(|(url, _)| url.clone()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let read = crate::js::node_json("nodefs-read.mjs", &args);
    assert_eq!(urls_and_heads(&read), expected);
}

/// A source database with no store in it is refused and left without tables (a mistyped
/// database name must not be given empty ones); one that does not exist is refused with the
/// server's own reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_database_without_a_store_is_refused_and_left_as_it_is() {
    let postgres = TestPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let empty = postgres.database().await.unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let to = dirs.path().join("out");

    // What migrating from `url` says when it fails (it must).
    let refusal = |url: &str| {
        let output = run_migrate(&[
            OsStr::new("--from-postgres"),
            OsStr::new(url),
            OsStr::new("--to-dir"),
            to.as_os_str(),
        ]);
        assert!(!output.status.success(), "migrating from {url} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let said = refusal(&empty);
    assert!(said.contains("holds no tandem store"), "{said}");
    let tables = TestPostgres::tables_in(&empty).await.unwrap();
    assert_eq!(tables, 0, "reading from the database created tables in it");

    let missing = postgres.url_of("tandem_test_never_created");
    let said = refusal(&missing);
    assert!(said.contains("does not exist"), "{said}");
}
