//! What one operation answers: a code, its detail, and the operation's own fields.

use serde_json::{Map, Value};

use super::code::Code;
use super::xmljson;

#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub code: Code,
    detail: String,
    fields: Vec<(&'static str, Value)>,
}

/// Early answers (errors, already-in-state) travel as `Err`, so operations can use `?`.
pub type Outcome = Result<Reply, Reply>;

impl Reply {
    pub fn new(code: Code) -> Self {
        Self { code, detail: code.detail().to_owned(), fields: Vec::new() }
    }

    /// For the codes whose reference text says "details provided in response".
    pub fn explained(code: Code, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), fields: Vec::new() }
    }

    /// Adds a field whose value is an element's text.
    pub fn text(self, key: &'static str, value: impl AsRef<str>) -> Self {
        self.field(key, xmljson::text(value.as_ref()))
    }

    /// Adds a field; `None` (an empty list) adds nothing.
    pub fn field(mut self, key: &'static str, value: impl Into<Option<Value>>) -> Self {
        if let Some(value) = value.into() {
            self.fields.push((key, value));
        }
        self
    }

    /// The `reply` object of the answer.
    pub fn to_json(&self) -> Value {
        let mut reply = Map::new();
        reply.insert("code".into(), xmljson::text(&self.code.number().to_string()));
        reply.insert("detail".into(), Value::String(self.detail.clone()));
        for (key, value) in &self.fields {
            reply.insert((*key).to_owned(), value.clone());
        }
        Value::Object(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_numbers_and_fields_follow() {
        let reply = Reply::new(Code::Success).text("order_amount", "21.90").text("domain", "a.com");
        assert_eq!(reply.to_json(), json!({"code": 300, "detail": "success", "order_amount": 21.9, "domain": "a.com"}));
        assert_eq!(
            Reply::explained(Code::ProcessingError, "Domain unavailable for registration.").to_json(),
            json!({"code": 261, "detail": "Domain unavailable for registration."})
        );
    }
}
