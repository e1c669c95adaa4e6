//! The mPanel operator as a library: the binary in `main.rs` wires these together, and the
//! integration tests use them directly.

pub mod health;
pub mod providers;
pub mod tls;
