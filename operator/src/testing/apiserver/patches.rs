//! PATCH: server-side apply (fields a manager stops applying go), JSON merge patch (RFC 7386, also
//! taken for a strategic merge) and JSON patch (RFC 6902).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::paths::Target;
use super::replies::{Reply, invalid, not_found};
use super::store::{State, stale};

impl State {
    pub(super) fn patch(
        &mut self,
        target: &Target,
        name: &str,
        content_type: &str,
        mut patch: Value,
        params: &BTreeMap<String, String>,
    ) -> Reply {
        let key = target.key(name);
        let content_type = content_type.split(';').next().unwrap_or_default().trim();
        if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let Some(stored) = self.objects.get(&key) else {
            if content_type == "application/apply-patch+yaml" && !target.status {
                let manager = params.get("fieldManager").cloned().unwrap_or_default();
                let mut obj = patch.clone();
                obj["metadata"]["name"] = json!(name);
                return self.create(target, obj, Some((manager, patch)));
            }
            return not_found(target, name);
        };
        if let Some(conflict) = stale(target, name, &stored.object, &patch) {
            return conflict;
        }
        let mut new = stored.object.clone();
        match content_type {
            "application/apply-patch+yaml" => {
                let manager = params.get("fieldManager").cloned().unwrap_or_default();
                let manager = if target.status { format!("{manager}/status") } else { manager };
                let stored = self.objects.get_mut(&key).expect("looked up above");
                if let Some(before) = stored.applied.get(&manager) {
                    let others: Vec<&Value> =
                        stored.applied.iter().filter(|(m, _)| **m != manager).map(|(_, v)| v).collect();
                    drop_unapplied(&mut new, before, &patch, &others);
                }
                stored.applied.insert(manager, patch.clone());
                apply_merge(&mut new, &patch);
            }
            "application/json-patch+json" => {
                if let Err(why) = json_patch(&mut new, &patch) {
                    return invalid(target, name, &why);
                }
            }
            // JSON merge (RFC 7386); a strategic merge is taken as one
            _ => merge_patch(&mut new, &patch),
        }
        self.commit(target, name, new, target.status)
    }
}

/// Server-side apply of `patch` onto `obj` as a deep merge: objects merge key by key, lists and
/// scalars are replaced, a null removes the field.
fn apply_merge(obj: &mut Value, patch: &Value) {
    merge_patch(obj, patch);
}

/// RFC 7386 JSON merge patch.
fn merge_patch(obj: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *obj = patch.clone();
        return;
    };
    if !obj.is_object() {
        *obj = json!({});
    }
    let target = obj.as_object_mut().expect("an object");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Removes from `obj` the fields a manager applied `before` but no longer applies (`now`), unless
/// another manager's configuration (`others`) holds them too.
fn drop_unapplied(obj: &mut Value, before: &Value, now: &Value, others: &[&Value]) {
    let (Value::Object(fields), Value::Object(before)) = (obj, before) else { return };
    let empty = json!({});
    for (k, was) in before {
        let theirs: Vec<&Value> = others.iter().filter_map(|o| o.get(k)).collect();
        match now.get(k) {
            None if theirs.is_empty() => {
                fields.remove(k);
            }
            None if was.is_object() => {
                if let Some(slot) = fields.get_mut(k) {
                    drop_unapplied(slot, was, &empty, &theirs);
                }
            }
            Some(is) if was.is_object() && is.is_object() => {
                if let Some(slot) = fields.get_mut(k) {
                    drop_unapplied(slot, was, is, &theirs);
                }
            }
            _ => {}
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
fn json_patch(obj: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch.as_array().ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation without a path")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("{path}: the operation has no value"));
        match op["op"].as_str().unwrap_or_default() {
            "add" => pointer_add(obj, path, value()?)?,
            "remove" => drop(pointer_remove(obj, path)?),
            "replace" => {
                pointer_remove(obj, path)?;
                pointer_add(obj, path, value()?)?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let moved = pointer_remove(obj, from)?;
                pointer_add(obj, path, moved)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let copied = obj.pointer(from).cloned().ok_or_else(|| format!("{from}: no such path"))?;
                pointer_add(obj, path, copied)?;
            }
            "test" => {
                let have = obj.pointer(path).cloned().unwrap_or(Value::Null);
                if have != value()? {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| format!("{path}: not a JSON pointer"))?;
    Ok((parent.to_owned(), last.replace("~1", "/").replace("~0", "~")))
}

fn pointer_add(obj: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *obj = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match obj.pointer_mut(&parent) {
        Some(Value::Object(o)) => {
            o.insert(last, value);
        }
        Some(Value::Array(a)) if last == "-" => a.push(value),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => a.insert(i, value),
            _ => return Err(format!("{path}: index out of range")),
        },
        _ => return Err(format!("{path}: the parent does not exist")),
    }
    Ok(())
}

fn pointer_remove(obj: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let removed = match obj.pointer_mut(&parent) {
        Some(Value::Object(o)) => o.remove(&last),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| format!("{path}: no such path"))
}
