//! A failed call to the Kubernetes API together with what it was for, so that a log line or a
//! condition says which call failed ("writing the status", "reading Secret dkim-example.com") and
//! not only the server's answer.

use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
#[error("Kubernetes API, {operation}: {source}")]
pub struct KubeCall {
    pub operation: Cow<'static, str>,
    #[source]
    pub source: kube::Error,
}

impl KubeCall {
    pub fn new(operation: impl Into<Cow<'static, str>>, source: kube::Error) -> Self {
        Self { operation: operation.into(), source }
    }
}

/// Names the operation a Kubernetes API result came from.
pub trait During<T> {
    fn during(self, operation: impl Into<Cow<'static, str>>) -> Result<T, KubeCall>;
}

impl<T> During<T> for Result<T, kube::Error> {
    fn during(self, operation: impl Into<Cow<'static, str>>) -> Result<T, KubeCall> {
        self.map_err(|source| KubeCall::new(operation, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_operation_and_keeps_the_servers_answer() {
        let answer = kube::core::Status::failure("dnszones \"a\" not found", "NotFound").with_code(404);
        let failed: Result<(), kube::Error> = Err(kube::Error::Api(Box::new(answer)));
        let call = failed.during("reading DnsZone a").unwrap_err();
        let text = call.to_string();
        assert!(text.starts_with("Kubernetes API, reading DnsZone a: "), "{text}");
        assert!(text.contains("dnszones \"a\" not found"), "{text}");
        assert!(matches!(&call.source, kube::Error::Api(status) if status.code == 404), "{:?}", call.source);
    }
}
