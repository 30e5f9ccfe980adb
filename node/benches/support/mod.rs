//! What the node's in-process benchmarks share: one node's mesh and publisher over a
//! store that already holds its charter, wired as `Node::start` wires them but without
//! the files, the HTTP listener and the background tasks a benchmark times on its own.

use threatmesh_node::network::{self, Client};
use threatmesh_node::publish::Publisher;
use threatmesh_node::store::Store;
use threatmesh_protocol::{SignedCharter, SigningKey};

/// Starts the event loop of node `node` (default network settings, listening nowhere
/// yet) over `store`, in the current runtime, and its publisher.
pub(crate) fn start(
    node: SigningKey,
    store: &Store,
    charter: SignedCharter,
) -> (Client, Publisher) {
    let (client, event_loop) = network::new(
        network::Config::default(),
        node.clone(),
        store.clone(),
        charter,
    )
    .expect("network");
    let publisher = Publisher::new(node, store.clone(), client.clone());
    tokio::spawn(event_loop.run());
    (client, publisher)
}
