//! A document as JSON, the way a JS app reads it: maps as objects, lists as arrays, text as
//! strings, counters and timestamps as numbers, bytes as base64.

use automerge::{ObjId, ObjType, ReadDoc, ScalarValueRef, ValueRef, ROOT};
use base64::Engine;
use serde_json::{Map, Number, Value};

/// Objects nested deeper than this are not made JSON: a reader recursing that far could run
/// out of stack, and no app nests so deep.
pub(crate) const MAX_DEPTH: usize = 100;

/// The document as JSON, or `None` if it nests deeper than [`MAX_DEPTH`].
pub(crate) fn document_json(doc: &impl ReadDoc) -> Option<Value> {
    object_json(doc, &ROOT, ObjType::Map, 0)
}

fn object_json(doc: &impl ReadDoc, obj: &ObjId, kind: ObjType, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match kind {
        ObjType::Map | ObjType::Table => {
            let mut map = Map::new();
            for item in doc.map_range(obj, ..) {
                let id = item.id();
                map.insert(
                    item.key.into_owned(),
                    value_json(doc, item.value, &id, depth)?,
                );
            }
            Value::Object(map)
        }
        ObjType::List => Value::Array(
            doc.list_range(obj, ..)
                .map(|item| {
                    let id = item.id();
                    value_json(doc, item.value, &id, depth)
                })
                .collect::<Option<_>>()?,
        ),
        // A text object that cannot be read (never, for an object just listed) reads as empty.
        ObjType::Text => Value::String(doc.text(obj).unwrap_or_default()),
    })
}

fn value_json(doc: &impl ReadDoc, value: ValueRef<'_>, id: &ObjId, depth: usize) -> Option<Value> {
    match value {
        ValueRef::Object(kind) => object_json(doc, id, kind, depth + 1),
        ValueRef::Scalar(scalar) => Some(scalar_json(scalar)),
    }
}

fn scalar_json(scalar: ScalarValueRef<'_>) -> Value {
    match scalar {
        ScalarValueRef::Str(text) => Value::String(text.into_owned()),
        ScalarValueRef::Int(n) | ScalarValueRef::Counter(n) | ScalarValueRef::Timestamp(n) => {
            Value::from(n)
        }
        ScalarValueRef::Uint(n) => Value::from(n),
        // NaN and the infinities have no JSON form.
        ScalarValueRef::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        ScalarValueRef::Boolean(b) => Value::Bool(b),
        ScalarValueRef::Bytes(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        ScalarValueRef::Null | ScalarValueRef::Unknown { .. } => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ScalarValue, ROOT};
    use serde_json::json;

    use super::document_json;

    #[test]
    fn every_kind_of_value_reads_as_a_js_app_reads_it() {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            let text = tx.put_object(ROOT, "text", ObjType::Text)?;
            tx.splice_text(&text, 0, 0, "héllo")?;
            tx.put(ROOT, "counter", ScalarValue::counter(5))?;
            tx.put(ROOT, "when", ScalarValue::Timestamp(1_700_000_000_000))?;
            tx.put(ROOT, "bytes", ScalarValue::Bytes(vec![0, 1, 255]))?;
            tx.put(ROOT, "string", "plain")?;
            tx.put(ROOT, "nan", f64::NAN)?;
            let list = tx.put_object(ROOT, "list", ObjType::List)?;
            tx.insert(&list, 0, true)?;
            let inner = tx.insert_object(&list, 1, ObjType::Map)?;
            tx.put(&inner, "u", 7u64)?;
            tx.put(&inner, "f", 1.5)?;
            tx.put(&inner, "null", ())?;
            Ok(())
        })
        .expect("a fresh document takes these");
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.increment(ROOT, "counter", 2)?;
            Ok(())
        })
        .expect("the counter increments");
        assert_eq!(
            document_json(&doc).expect("shallow"),
            json!({
                "text": "héllo",
                "counter": 7,
                "when": 1_700_000_000_000i64,
                "bytes": "AAH/",
                "string": "plain",
                "nan": null,
                "list": [true, {"u": 7, "f": 1.5, "null": null}],
            })
        );
    }

    #[test]
    fn a_document_nested_past_the_limit_is_refused_not_recursed_into() {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            let mut obj = ROOT;
            for _ in 0..super::MAX_DEPTH + 10 {
                obj = tx.put_object(&obj, "deeper", ObjType::Map)?;
            }
            Ok(())
        })
        .expect("automerge nests as deep as asked");
        assert_eq!(document_json(&doc), None);
    }
}
