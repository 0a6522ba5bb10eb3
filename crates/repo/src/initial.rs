//! Initial document content from a JSON-like value, as `Automerge.from` builds it.

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ObjType, ScalarValue, ROOT};
use serde_json::Value;

use crate::RepoError;

/// A document whose first change writes `value`, which must be a map.
pub(crate) fn document_from_json(value: &Value) -> Result<Automerge, RepoError> {
    let Value::Object(map) = value else {
        return Err(RepoError::InvalidInitialContent(format!(
            "expected a map, got {value}"
        )));
    };
    let mut document = Automerge::new();
    let mut tx = document.transaction();
    for (key, value) in map {
        put(&mut tx, &ROOT, Place::Key(key), value)?;
    }
    tx.commit();
    Ok(document)
}

enum Place<'a> {
    Key(&'a str),
    Index(usize),
}

fn put(
    tx: &mut impl Transactable,
    obj: &ObjId,
    place: Place<'_>,
    value: &Value,
) -> Result<(), RepoError> {
    match value {
        Value::Object(map) => {
            let child = make(tx, obj, &place, ObjType::Map)?;
            for (key, value) in map {
                put(tx, &child, Place::Key(key), value)?;
            }
        }
        Value::Array(items) => {
            let child = make(tx, obj, &place, ObjType::List)?;
            for (index, value) in items.iter().enumerate() {
                put(tx, &child, Place::Index(index), value)?;
            }
        }
        Value::String(text) => {
            // JS automerge makes strings collaborative text.
            let child = make(tx, obj, &place, ObjType::Text)?;
            tx.splice_text(&child, 0, 0, text)?;
        }
        scalar => {
            let scalar = match scalar {
                Value::Null => ScalarValue::Null,
                Value::Bool(b) => ScalarValue::Boolean(*b),
                Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), _, _) => ScalarValue::Int(i),
                    (None, Some(u), _) => ScalarValue::Uint(u),
                    (_, _, Some(f)) => ScalarValue::F64(f),
                    _ => ScalarValue::Null,
                },
                _ => ScalarValue::Null,
            };
            match place {
                Place::Key(key) => tx.put(obj, key, scalar)?,
                Place::Index(index) => tx.insert(obj, index, scalar)?,
            }
        }
    }
    Ok(())
}

fn make(
    tx: &mut impl Transactable,
    obj: &ObjId,
    place: &Place<'_>,
    kind: ObjType,
) -> Result<ObjId, automerge::AutomergeError> {
    match place {
        Place::Key(key) => tx.put_object(obj, *key, kind),
        Place::Index(index) => tx.insert_object(obj, *index, kind),
    }
}
