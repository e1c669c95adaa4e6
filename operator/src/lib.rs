//! The mPanel operator as a library: the binary in `main.rs` wires these together, and the
//! integration tests use them directly.

pub mod config;
pub mod controllers;
pub mod cpu_bound;
pub mod describe;
pub mod endpoints;
pub mod fresh_read;
pub mod inventory;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod precedence;
pub mod providers;
#[cfg(test)]
pub(crate) mod testing;
pub mod tls;
