//! One typed client per external system, each behind a trait so controllers can be unit-tested.

pub mod acme;
pub mod dns;
pub mod mailcore;
pub mod namesilo;
pub mod powerdns;
pub mod proxmox;
