//! threatmesh's vocabulary: what an indicator is, how a node signs what its organisation
//! publishes, how a federation says who its members are, and the exact bytes that cross the
//! network.
//!
//! # Layout
//!
//! - [`indicator`]: indicator kinds and their normalised [`Value`]s.
//! - [`item`]: what a bundle says: [`Indicator`], [`Revocation`], [`Sighting`].
//! - [`bundle`]: [`Bundle`]: items with a TLP marking and a distribution scope.
//! - [`entry`]: [`SignedEntry`]: one signed, hash-chained entry of a node's feed.
//! - [`seal`]: [`Sealed`] bodies: restricted bundles only their recipients can read.
//! - [`charter`]: [`Charter`]: the federation's roster, signed k-of-n by its stewards.
//! - [`reconcile`]: range-based reconciliation of feed heads between two nodes.
//! - [`archive`]: air-gap archives: entries and charters in one checked file.
//! - [`wire`]: the one versioned [`wire::Message`] enum and its size limits.
//! - [`crypto`]: keys, signatures and hashes.
//! - [`time`]: [`Timestamp`]; this crate never reads a clock, callers pass `now`.
//! - `testing` (feature `test-utils`): seeded keys, charters and values for tests and
//!   benchmarks.
//!
//! Everything here is pure data and pure functions: no I/O, no async, no clock.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod archive;
pub mod bundle;
pub mod charter;
pub mod crypto;
pub mod entry;
pub mod indicator;
pub mod item;
pub mod reconcile;
pub mod seal;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod time;
pub mod wire;

pub use bundle::{Bundle, Distribution, Tlp};
pub use charter::{Charter, Member, NodeCertificate, SignedCharter};
pub use crypto::{Hash, PublicKey, Signature};
pub use ed25519_dalek::SigningKey;
pub use entry::{Body, Entry, FeedHead, SignedEntry, UnverifiedEntry};
pub use indicator::{InvalidValue, Kind, Value};
pub use item::{Confidence, Context, Indicator, Item, Revocation, Sighting};
pub use seal::{EncryptionSecret, KeySlot, Recipient, SealContext, Sealed};
pub use time::Timestamp;
