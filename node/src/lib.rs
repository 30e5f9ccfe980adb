//! The threatmesh node: everything that does I/O around the pure `threatmesh-protocol`.
//!
//! # Layout
//!
//! - [`Node`]: the composition root: [`Node::start`] wires the parts below from a
//!   validated [`config::Validated`], [`Node::shutdown`] stops them.
//! - [`store`]: the durable store (sled): entries, feeds, the indicator index, charters.
//! - [`network`]: the libp2p mesh: authorised peers, validated gossip, sync.
//! - [`publish`]: publishing this node's entries: sealing, recipients, feed order.
//! - [`api`]: the local HTTP API over the store and the network client.
//! - [`formats`]: STIX 2.1, MISP and CSV in and out.
//! - [`cli`]: the `threatmesh` command.
//! - [`warninglists`]: MISP warninglists: known false positives, held back on publish and
//!   marked on lookup.

pub mod api;
pub mod cli;
pub mod config;
pub mod formats;
pub mod keyfile;
pub mod network;
mod node;
pub mod publish;
pub mod store;
pub mod warninglists;

pub use node::{Node, short_peer_id};

#[cfg(not(target_env = "msvc"))]
#[doc(hidden)]
pub use tikv_jemallocator::Jemalloc;

/// Makes jemalloc the program's allocator: every program that runs a node (`threatmesh`,
/// the testnet, the benchmarks) declares it, so the benchmarks measure what a user runs.
/// glibc's malloc, once a node had ingested a million indicators, spent about 45% of a
/// TAXII page's time searching and merging its fragmented free lists; with jemalloc
/// paging at 1,000,000 objects is as fast as at 10,000 and a store's resident memory
/// after a large ingest about halves (the README's benchmark figures). Windows (MSVC)
/// builds keep the system allocator.
#[macro_export]
macro_rules! node_allocator {
    () => {
        #[cfg(not(target_env = "msvc"))]
        #[global_allocator]
        static ALLOCATOR: $crate::Jemalloc = $crate::Jemalloc;
    };
}
