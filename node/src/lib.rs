//! The threatmesh node: everything that does I/O around the pure `threatmesh-protocol`.
//!
//! # Layout
//!
//! - [`store`]: the durable store (sled): entries, feeds, the indicator index, charters.
//! - [`network`]: the libp2p mesh: authorised peers, validated gossip, sync.
//! - [`api`]: the local HTTP API over the store and the network client.
//!
//! TAXII 2.1, the STIX/MISP/CSV formats and the `threatmesh` binary come next (see
//! `shared/ARCHITECTURE.md`, "Node inside").

pub mod api;
pub mod cli;
pub mod config;
pub mod keyfile;
pub mod network;
pub mod store;
