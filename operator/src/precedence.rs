//! Who asked first, when objects of different tenants want one thing (a DNS name, a static
//! address).
//!
//! An object the operator already acted on for the thing comes before every other; then the
//! earlier creation time, then the smaller UID. Only what is stored in the API decides, so every
//! replica, before and after a restart, orders the same objects the same way.
//!
//! Acted-on objects go first because creation times have whole seconds only: without that, an
//! object made in the same second as one already served could take the thing by having the
//! smaller UID.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// The place of one object's request; a smaller value asked first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Precedence {
    not_acted_on: bool,
    created: Option<Timestamp>,
    uid: String,
}

impl Precedence {
    pub fn new(acted_on: bool, created: Option<Timestamp>, uid: &str) -> Self {
        Self { not_acted_on: !acted_on, created, uid: uid.to_owned() }
    }

    /// The place of `obj`; `acted_on` says whether the operator already acted on its request.
    pub fn of<K: ResourceExt>(obj: &K, acted_on: bool) -> Self {
        Self::new(acted_on, obj.meta().creation_timestamp.as_ref().map(|t| t.0), &obj.uid().unwrap_or_default())
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn acted_on(&self) -> bool {
        !self.not_acted_on
    }

    /// This place once the operator acted on the request.
    pub fn acting(self) -> Self {
        Self { not_acted_on: false, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Option<Timestamp> {
        Timestamp::from_second(1_800_000_000 + second).ok()
    }

    #[test]
    fn acted_on_then_creation_time_then_uid() {
        let served_late = Precedence::new(true, at(9), "z");
        let early = Precedence::new(false, at(1), "b");
        let same_second_smaller_uid = Precedence::new(false, at(1), "a");
        let mut all = vec![early.clone(), served_late.clone(), same_second_smaller_uid.clone()];
        all.sort();
        assert_eq!(all, vec![served_late, same_second_smaller_uid, early]);
    }
}
