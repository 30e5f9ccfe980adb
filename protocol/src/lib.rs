//! threatmesh's vocabulary: what an indicator is, how a node signs what its organisation
//! publishes, how a federation says who its members are, and the exact bytes that cross the
//! network.
//!
//! # Layout
//!
//! - [`indicator`]: indicator kinds and their normalised [`Value`]s.
//! - [`crypto`]: keys, signatures and hashes.
//! - [`time`]: [`Timestamp`]; this crate never reads a clock, callers pass `now`.
//!
//! Everything here is pure data and pure functions: no I/O, no async, no clock.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod crypto;
pub mod indicator;
pub mod time;

pub use crypto::{Hash, PublicKey, Signature};
pub use ed25519_dalek::SigningKey;
pub use indicator::{InvalidValue, Kind, Value};
pub use time::Timestamp;
