//! How Namesilo turns its XML answers into JSON (`type=json`), so the double's JSON has the same
//! shapes. Learned from what clients of the real API had to cope with:
//! - text that is a plain decimal number becomes a JSON number (`<code>300</code>` → `300`,
//!   `<order_amount>10.90</order_amount>` → `10.9`); anything else stays a string
//!   (`<balance>1,000.00</balance>` → `"1,000.00"`);
//! - an element with attributes becomes an object of its attributes plus its text under its own
//!   name (`<nameserver position="1">NS1.X.NET</nameserver>` →
//!   `{"position": 1, "nameserver": "NS1.X.NET"}`);
//! - a list element with two or more children becomes an array of them; with one child it becomes
//!   an object holding that child under its name (`{"domain": …}`); with none it is left out.

use serde_json::{Map, Number, Value};

/// An element's text.
pub fn text(text: &str) -> Value {
    if is_plain_number(text)
        && let Ok(number) = text.parse::<Number>()
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

/// An element with attributes: the attributes, and its text under `name`.
pub fn element(name: &str, content: &str, attributes: &[(&str, String)]) -> Value {
    let mut object = Map::new();
    for (key, value) in attributes {
        object.insert((*key).to_owned(), text(value));
    }
    object.insert(name.to_owned(), text(content));
    Value::Object(object)
}

/// A list element whose children are all called `child`; `None` when it has none.
pub fn list(child: &str, mut items: Vec<Value>) -> Option<Value> {
    match items.len() {
        0 => None,
        1 => {
            let mut object = Map::new();
            object.insert(child.to_owned(), items.remove(0));
            Some(Value::Object(object))
        }
        _ => Some(Value::Array(items)),
    }
}

fn is_plain_number(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_text_becomes_a_number() {
        assert_eq!(text("300"), json!(300));
        assert_eq!(text("10.95"), json!(10.95));
        assert_eq!(text("10.90").to_string(), "10.9");
        assert_eq!(text("1,000.00"), json!("1,000.00"));
        assert_eq!(text("2025-01-02"), json!("2025-01-02"));
        assert_eq!(text("127.0.0.1"), json!("127.0.0.1"));
        assert_eq!(text(""), json!(""));
        assert_eq!(text("success"), json!("success"));
    }

    #[test]
    fn elements_with_attributes_are_objects() {
        assert_eq!(
            element("nameserver", "NS1.EXAMPLE.NET", &[("position", "1".into())]),
            json!({"position": 1, "nameserver": "NS1.EXAMPLE.NET"})
        );
    }

    #[test]
    fn lists_of_one_are_wrapped_and_empty_lists_left_out() {
        assert_eq!(list("domain", vec![]), None);
        assert_eq!(list("domain", vec![json!("a.com")]), Some(json!({"domain": "a.com"})));
        assert_eq!(list("domain", vec![json!("a.com"), json!("b.com")]), Some(json!(["a.com", "b.com"])));
    }
}
