//! Semantic comparison of a legacy answer with the gRPC one: the same JSON regardless of key
//! order and number formatting, 64-bit integers as strings or numbers alike, `null` and a
//! missing field alike; legacy field names renamed first, ignored paths left out of both.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;
use std::collections::BTreeMap;

/// One place where the answers differ.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    /// Where, as a JSONPath (`$.users[0].createdAt`).
    pub path: String,
    /// The legacy value there (null when missing).
    pub legacy: Value,
    /// The gRPC value there (null when missing).
    pub grpc: Value,
}

/// The differences between two answers, after renaming the legacy names and dropping the
/// ignored paths from both.
pub fn compare(
    legacy: &Value,
    grpc: &Value,
    rename: &BTreeMap<String, String>,
    ignore: &[(String, JsonPath)],
) -> Vec<Difference> {
    let mut legacy = renamed(legacy, rename);
    let mut grpc = grpc.clone();
    for (_, path) in ignore {
        remove(&mut legacy, path);
        remove(&mut grpc, path);
    }
    let mut out = Vec::new();
    diff("$", &legacy, &grpc, &mut out);
    out
}

/// `value` with every object key that `rename` names replaced by its gRPC name.
fn renamed(value: &Value, rename: &BTreeMap<String, String>) -> Value {
    match value {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| (rename.get(k).cloned().unwrap_or_else(|| k.clone()), renamed(v, rename)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| renamed(v, rename)).collect()),
        other => other.clone(),
    }
}

/// Removes every node `path` selects.
fn remove(value: &mut Value, path: &JsonPath) {
    let pointers: Vec<String> = path.query_located(value).locations().map(|l| l.to_json_pointer()).collect();
    // Deepest and last first, so that earlier indices stay valid.
    for pointer in pointers.iter().rev() {
        let Some((parent, last)) = pointer.rsplit_once('/') else { continue };
        let key = last.replace("~1", "/").replace("~0", "~");
        match value.pointer_mut(parent) {
            Some(Value::Object(obj)) => {
                obj.remove(&key);
            }
            Some(Value::Array(items)) => {
                if let Ok(i) = key.parse::<usize>()
                    && i < items.len()
                {
                    items.remove(i);
                }
            }
            _ => {}
        }
    }
}

/// A number's value, from a JSON number or a string holding one (64-bit integers travel as
/// strings in proto3 JSON).
fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn same_number(a: &Value, b: &Value) -> bool {
    if let (Value::Number(x), Value::Number(y)) = (a, b) {
        if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
            return x == y;
        }
        if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
            return x == y;
        }
    }
    if let (Some(x), Some(y)) = (text_integer(a), text_integer(b)) {
        return x == y;
    }
    matches!((numeric(a), numeric(b)), (Some(x), Some(y)) if x == y)
}

/// An integer written as a number or a string, exactly.
fn text_integer(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    }
}

fn diff(path: &str, legacy: &Value, grpc: &Value, out: &mut Vec<Difference>) {
    let differ = |out: &mut Vec<Difference>| {
        out.push(Difference { path: path.to_owned(), legacy: legacy.clone(), grpc: grpc.clone() });
    };
    match (legacy, grpc) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let x = a.get(k).unwrap_or(&Value::Null);
                let y = b.get(k).unwrap_or(&Value::Null);
                diff(&format!("{path}.{k}"), x, y, out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                differ(out);
                return;
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) if numeric(a).is_some() && numeric(b).is_some() && (a.is_number() || b.is_number()) => {
            if !same_number(a, b) {
                differ(out);
            }
        }
        (Value::Number(_), Value::Number(_)) => {
            if !same_number(legacy, grpc) {
                differ(out);
            }
        }
        _ => differ(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(d: &[Difference]) -> Vec<&str> {
        d.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn equal_regardless_of_order_formatting_and_int64_strings() {
        let legacy = json!({"b": 1.0, "a": "x", "big": 9007199254740993u64, "n": null});
        let grpc = json!({"a": "x", "b": 1, "big": "9007199254740993"});
        assert!(compare(&legacy, &grpc, &BTreeMap::new(), &[]).is_empty());
    }

    #[test]
    fn renames_then_ignores_then_reports_each_path() {
        let legacy = json!({"user_id": "u", "created_at": {"timestamp": 5}, "tags": ["a"], "age": 30});
        let grpc = json!({"userId": "u", "createdAt": {"timestamp": "6"}, "tags": ["a", "b"], "age": 31});
        let rename = BTreeMap::from([("user_id".into(), "userId".into()), ("created_at".into(), "createdAt".into())]);
        let d = compare(&legacy, &grpc, &rename, &[]);
        assert_eq!(paths(&d), ["$.age", "$.createdAt.timestamp", "$.tags"]);
        let ignore = vec![
            ("$.createdAt".to_owned(), JsonPath::parse("$.createdAt").unwrap()),
            ("$.tags[*]".to_owned(), JsonPath::parse("$.tags[*]").unwrap()),
        ];
        let d = compare(&legacy, &grpc, &rename, &ignore);
        assert_eq!(paths(&d), ["$.age"]);
        assert_eq!((d[0].legacy.clone(), d[0].grpc.clone()), (json!(30), json!(31)));
    }

    #[test]
    fn type_changes_and_missing_fields_differ() {
        let d = compare(&json!({"a": "1x"}), &json!({"a": 1}), &BTreeMap::new(), &[]);
        assert_eq!(paths(&d), ["$.a"]);
        let d = compare(&json!({"a": 1}), &json!({}), &BTreeMap::new(), &[]);
        assert_eq!(paths(&d), ["$.a"]);
        let d = compare(&json!([{"id": 1}]), &json!([{"id": 2}]), &BTreeMap::new(), &[]);
        assert_eq!(paths(&d), ["$[0].id"]);
    }
}
