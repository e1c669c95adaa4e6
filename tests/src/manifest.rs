//! Editing manifests held as JSON values: placing them in a namespace and changing one field.

use serde_json::{Map, Value};

/// Moves `obj` into `namespace` under `name`.
pub fn place(mut obj: Value, namespace: &str, name: &str) -> Value {
    obj["metadata"]["namespace"] = Value::from(namespace);
    obj["metadata"]["name"] = Value::from(name);
    obj
}

/// Sets the field at JSON pointer `pointer` (e.g. `/spec/resources/cores`) to `value`, creating
/// missing objects on the way, or removes it when `value` is `None`. Array elements are addressed
/// by index and must exist.
pub fn edit(obj: &mut Value, pointer: &str, value: Option<Value>) {
    let Some((parent_ptr, last)) = pointer.rsplit_once('/') else { return };
    let mut parent = obj;
    for token in parent_ptr.split('/').skip(1) {
        if let Value::Array(items) = parent {
            let Some(item) = token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) else { return };
            parent = item;
            continue;
        }
        if !parent.is_object() {
            *parent = Value::Object(Map::new());
        }
        let Value::Object(map) = parent else { return };
        parent = map.entry(token).or_insert_with(|| Value::Object(Map::new()));
    }
    match (parent, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.to_owned(), v);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(v)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => items[i] = v,
            _ => items.push(v),
        },
        (Value::Array(items), None) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edit_sets_nested_fields_creating_objects_and_removes_them() {
        let mut v = json!({"spec": {"records": [{"name": "a"}]}});
        edit(&mut v, "/spec/resources/cores", Some(json!(4)));
        edit(&mut v, "/spec/records/0/ttl", Some(json!(60)));
        edit(&mut v, "/spec/records/1", Some(json!({"name": "b"})));
        assert_eq!(
            v,
            json!({"spec": {"resources": {"cores": 4}, "records": [{"name": "a", "ttl": 60}, {"name": "b"}]}})
        );
        edit(&mut v, "/spec/resources", None);
        edit(&mut v, "/spec/records/0", None);
        assert_eq!(v, json!({"spec": {"records": [{"name": "b"}]}}));
    }
}
