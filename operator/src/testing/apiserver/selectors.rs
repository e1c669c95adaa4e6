//! Label and field selectors of a list request, matched against stored objects.

use serde_json::Value;

/// The terms of a selector: split at the commas outside parentheses.
pub(super) fn split_terms(selector: &str) -> Vec<String> {
    let mut terms = vec![String::new()];
    let mut depth = 0;
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(String::new());
                continue;
            }
            _ => {}
        }
        terms.last_mut().expect("one term at least").push(c);
    }
    terms.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
}

pub(super) fn label_term_matches(obj: &Value, term: &str) -> bool {
    let label = |k: &str| obj["metadata"]["labels"].get(k.trim()).and_then(Value::as_str).map(str::to_owned);
    let set = |values: &str| -> Vec<String> {
        values.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|v| v.trim().to_owned()).collect()
    };
    if let Some((k, values)) = term.split_once(" notin ") {
        return label(k).is_none_or(|v| !set(values).contains(&v));
    }
    if let Some((k, values)) = term.split_once(" in ") {
        return label(k).is_some_and(|v| set(values).contains(&v));
    }
    if let Some(k) = term.strip_prefix('!') {
        return label(k).is_none();
    }
    if let Some((k, v)) = term.split_once("!=") {
        return label(k).is_none_or(|have| have != v.trim());
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return label(k).is_some_and(|have| have == v.trim());
    }
    label(term).is_some()
}

pub(super) fn field_term_matches(obj: &Value, term: &str) -> bool {
    let field = |path: &str| {
        let value = path.trim().split('.').fold(obj, |v, k| &v[k]);
        value
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| if value.is_null() { String::new() } else { value.to_string() })
    };
    if let Some((k, v)) = term.split_once("!=") {
        return field(k) != v.trim();
    }
    match term.split_once("==").or_else(|| term.split_once('=')) {
        Some((k, v)) => field(k) == v.trim(),
        None => false,
    }
}
