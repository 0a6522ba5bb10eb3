//! Helpers shared by the whole-system tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde_json::{json, Map, Value as Json};

/// The pinned Node project with the real automerge-repo packages.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
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
    object_to_json(doc, &automerge::ROOT, ObjType::Map)
}

fn object_to_json(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType) -> Json {
    match kind {
        ObjType::Map | ObjType::Table => {
            let mut out = Map::new();
            for key in doc.keys(obj) {
                if let Ok(Some((value, id))) = doc.get(obj, key.as_str()) {
                    out.insert(key, value_to_json(doc, value, id));
                }
            }
            Json::Object(out)
        }
        ObjType::List => Json::Array(
            (0..doc.length(obj))
                .filter_map(|i| doc.get(obj, i).ok().flatten())
                .map(|(value, id)| value_to_json(doc, value, id))
                .collect(),
        ),
        ObjType::Text => Json::String(doc.text(obj).unwrap_or_default()),
    }
}

fn value_to_json(doc: &impl ReadDoc, value: Value<'_>, id: ObjId) -> Json {
    match value {
        Value::Object(kind) => object_to_json(doc, &id, kind),
        Value::Scalar(scalar) => match scalar.as_ref() {
            ScalarValue::Str(s) => json!(s.as_str()),
            ScalarValue::Int(i) => json!(i),
            ScalarValue::Uint(u) => json!(u),
            // JSON.stringify prints an integral double as an integer (JS automerge stores some
            // integers, 0 among them, as F64).
            ScalarValue::F64(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                json!(*f as i64)
            }
            ScalarValue::F64(f) => json!(f),
            ScalarValue::Counter(c) => json!(i64::from(c)),
            ScalarValue::Timestamp(t) => json!(t),
            ScalarValue::Boolean(b) => json!(b),
            ScalarValue::Null => Json::Null,
            other => json!(other.to_string()),
        },
    }
}
