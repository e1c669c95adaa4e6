//! Stand-ins for the reconcilers' unit tests: an in-memory Kubernetes API the real kube client
//! talks to, and an in-memory fake of every provider trait. Nothing here runs outside `cargo test`.

pub mod acme;
pub mod apiserver;
pub mod mailcore;
pub mod namesilo;
pub mod powerdns;
pub mod proxmox;
