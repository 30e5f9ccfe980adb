//! The threatmesh node: everything that does I/O around the pure `threatmesh-protocol`.
//!
//! # Layout
//!
//! - [`store`]: the durable store (sled): entries, feeds, the indicator index, charters.
//! - [`network`]: the libp2p mesh: authorised peers, validated gossip, sync.
//!
//! The HTTP and TAXII API, the STIX/MISP/CSV formats and the `threatmesh` binary come
//! next (see `shared/ARCHITECTURE.md`, "Node inside").

pub mod network;
pub mod store;
