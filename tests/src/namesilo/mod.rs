//! Namesilo in the testbed: the double that stands in for it (`double`, run as the
//! `namesilo-double` binary) and the client tests use to set it up and look behind its API
//! (`client`).

pub mod client;
pub mod double;

pub use client::{Account, LoggedRequest, Namesilo};
