//! Helpers shared by the whole-system tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde_json::{json, Map, Value as Json};

/// The pinned Node project with the real automerge-repo packages (`tests/js` at the
/// workspace's root, whichever crate's tests include this module).
pub fn js_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|dir| dir.join("tests/js"))
        .find(|dir| dir.join("package.json").is_file())
        .unwrap_or_else(|| here.join("tests/js"))
}

static NPM_CI: Mutex<bool> = Mutex::new(false);

/// Installs the pinned JS packages (`npm ci`) once per test binary if they are missing, so the
/// README's test command works on a fresh clone. Fails loudly without Node: the interop tests
/// are the point of the project, not an option.
pub fn ensure_js_packages() {
    let mut done = NPM_CI.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    let dir = js_dir();
    if !dir
        .join("node_modules/@automerge/automerge-repo/package.json")
        .exists()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm must be installed (Node 20) to run the JS interop tests");
        assert!(status.success(), "npm ci in {dir:?} failed");
    }
    *done = true;
}

/// Runs `node <script> <args>` in the Node project and parses its stdout as JSON.
pub fn node_json(script: &str, args: &[&str]) -> Json {
    ensure_js_packages();
    let output = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(js_dir())
        .output()
        .expect("node must be installed (Node 20) to run the JS interop tests");
    assert!(
        output.status.success(),
        "node {script} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "node {script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// An automerge document as the JSON JS's `JSON.stringify(doc)` gives.
pub fn doc_to_json(doc: &impl ReadDoc) -> Json {
    object_to_json(doc, &automerge::ROOT, ObjType::Map, Tags::Plain)
}

/// A document as `tests/js/ws-peer.mjs` prints it: JSON with bytes as `{"$bytes": [...]}` and
/// counters as `{"$counter": n}`, so that types are compared and not only shapes.
pub fn doc_to_tagged_json(doc: &impl ReadDoc) -> Json {
    object_to_json(doc, &automerge::ROOT, ObjType::Map, Tags::Tagged)
}

#[derive(Clone, Copy)]
enum Tags {
    Plain,
    Tagged,
}

fn object_to_json(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, tags: Tags) -> Json {
    match kind {
        ObjType::Map | ObjType::Table => {
            let mut out = Map::new();
            for key in doc.keys(obj) {
                if let Ok(Some((value, id))) = doc.get(obj, key.as_str()) {
                    out.insert(key, value_to_json(doc, value, id, tags));
                }
            }
            Json::Object(out)
        }
        ObjType::List => Json::Array(
            (0..doc.length(obj))
                .filter_map(|i| doc.get(obj, i).ok().flatten())
                .map(|(value, id)| value_to_json(doc, value, id, tags))
                .collect(),
        ),
        ObjType::Text => Json::String(doc.text(obj).unwrap_or_default()),
    }
}

fn value_to_json(doc: &impl ReadDoc, value: Value<'_>, id: ObjId, tags: Tags) -> Json {
    match value {
        Value::Object(kind) => object_to_json(doc, &id, kind, tags),
        Value::Scalar(scalar) => match (scalar.as_ref(), tags) {
            (ScalarValue::Str(s), _) => json!(s.as_str()),
            (ScalarValue::Int(i), _) => json!(i),
            (ScalarValue::Uint(u), _) => json!(u),
            // JSON.stringify prints an integral double as an integer (JS automerge stores some
            // integers, 0 among them, as F64).
            (ScalarValue::F64(f), _) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                json!(*f as i64)
            }
            (ScalarValue::F64(f), _) => json!(f),
            (ScalarValue::Counter(c), Tags::Plain) => json!(i64::from(c)),
            (ScalarValue::Counter(c), Tags::Tagged) => json!({ "$counter": i64::from(c) }),
            (ScalarValue::Bytes(b), Tags::Tagged) => json!({ "$bytes": b }),
            (ScalarValue::Timestamp(t), _) => json!(t),
            (ScalarValue::Boolean(b), _) => json!(b),
            (ScalarValue::Null, _) => Json::Null,
            (other, _) => json!(other.to_string()),
        },
    }
}

/// A running `node <script> <args>` whose stdout is read line by line (one JSON value each).
pub struct NodeProcess {
    child: Option<std::process::Child>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl NodeProcess {
    /// Starts the script in the Node project.
    pub fn start(script: &str, args: &[&str]) -> NodeProcess {
        ensure_js_packages();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(js_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node must be installed (Node 20) to run the JS interop tests");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        NodeProcess {
            child: Some(child),
            lines,
        }
    }

    /// The next JSON line, waiting at most `patience`.
    pub fn next_json(&self, patience: std::time::Duration) -> Json {
        let line = self
            .lines
            .recv_timeout(patience)
            .expect("the node script printed nothing in time (see its stderr above)");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Writes `line` to the script's stdin (for scripts that wait to be told to go on).
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self
            .child
            .as_mut()
            .and_then(|child| child.stdin.as_mut())
            .expect("still running, with its stdin open");
        writeln!(stdin, "{line}").expect("the node script closed its stdin");
        stdin.flush().expect("the node script closed its stdin");
    }

    /// The next JSON line without blocking the async runtime.
    pub async fn next_json_async(&mut self, patience: std::time::Duration) -> Json {
        tokio::task::block_in_place(|| self.next_json(patience))
    }

    /// Waits for the script to exit on its own; panics unless it succeeds.
    pub fn finish(mut self, patience: std::time::Duration) {
        let mut child = self.child.take().expect("still running");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx
            .recv_timeout(patience)
            .expect("the node script did not exit in time")
            .expect("wait");
        assert!(status.success(), "node script failed: {status}");
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A script still running when a test ends (a server, or a failure) is killed.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
