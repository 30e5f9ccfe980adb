//! The simulated federation: its keys, its charter and its running nodes, in this process.
//!
//! Each member is an organisation with one node, in a capital. Keys are derived from the
//! seed, so a seed names the same federation every time. A node here is what `threatmesh
//! run` starts minus the HTTP API: the node's own store (temporary, small cache) and its
//! own network, configured with the defaults a real node has, except that its connections
//! go over the simulation's [`Links`] and every duration its configuration sets is
//! multiplied by the time scale.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use libp2p::PeerId;
use libp2p::multiaddr::Protocol;
use threatmesh_node::network::{self, Client};
use threatmesh_node::publish::Publisher;
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::charter::Member;
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, SigningKey, Timestamp};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::link::Links;

/// sled's cache per node: a thousand nodes share this machine's memory.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Links per node with `--seeded-links`: between the peer set's low mark (12) and its
/// target (16), so no node dials more or prunes any.
const SEEDED_DEGREE: usize = 14;
/// "Never" for peer rotation with seeded links (long, and far from any overflow).
const NO_ROTATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A running node.
#[derive(Debug)]
pub(crate) struct SimNode {
    pub(crate) client: Client,
    /// Publishes as this node; holds a client too.
    publisher: Publisher,
    task: JoinHandle<()>,
}

/// The federation and its nodes.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) links: Arc<Links>,
    pub(crate) keys: Vec<SigningKey>,
    pub(crate) charter: SignedCharter,
    /// Each node's store, kept while the node is away so it comes back with its data.
    pub(crate) stores: Vec<Store>,
    pub(crate) nodes: Vec<Option<SimNode>>,
    /// Node index by PeerId and by node key.
    pub(crate) by_peer: HashMap<PeerId, usize>,
    pub(crate) by_key: HashMap<PublicKey, usize>,
    scale: f64,
    seed: u64,
    /// With `--seeded-links`, the members each node dials (and no others), and how many
    /// links each node is given in all (dialled and dialling it).
    dials: Option<Vec<Vec<usize>>>,
    degrees: Vec<usize>,
    /// Where the stores are; removed with the world (last, after the stores).
    _dir: tempfile::TempDir,
}

/// A 32-byte secret derived from the seed, a label and an index.
fn derived(seed: u64, label: &str, index: usize) -> [u8; 32] {
    Hash::of(format!("threatmesh simulation {seed} {label} {index}").as_bytes()).0
}

impl World {
    /// Creates `countries.len()` members (member i in country `countries[i]`) and their
    /// stores under `dir`; no node runs yet.
    pub(crate) fn new(
        dir: tempfile::TempDir,
        countries: &[String],
        links: Arc<Links>,
        scale: f64,
        seed: u64,
        seeded_links: bool,
    ) -> Result<World> {
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64),
        );
        let (from, until) = (
            Timestamp(now.0.saturating_sub(86_400_000)),
            Timestamp(now.0 + 10 * 365 * 86_400_000),
        );
        let steward = SigningKey::from_bytes(&derived(seed, "steward", 0));
        let keys: Vec<SigningKey> = (0..countries.len())
            .map(|index| SigningKey::from_bytes(&derived(seed, "node", index)))
            .collect();
        let mut by_peer = HashMap::new();
        let mut by_key = HashMap::new();
        let mut members = Vec::with_capacity(countries.len());
        for (index, (key, country)) in keys.iter().zip(countries).enumerate() {
            let org = SigningKey::from_bytes(&derived(seed, "organisation", index));
            let node = PublicKey::of(key);
            let peer = PeerId::from_bytes(&node.peer_id_bytes())
                .context("a node key that makes no PeerId")?;
            let mut member = Member::founding(
                &org,
                format!("CERT-{country}-{index}"),
                country.clone(),
                node,
                from,
                until,
            );
            if !seeded_links {
                member.addresses = vec![links.address(index).with(Protocol::P2p(peer)).to_string()];
            }
            members.push(member);
            by_peer.insert(peer, index);
            by_key.insert(node, index);
        }
        let dials = seeded_links.then(|| seeded_graph(countries.len(), seed));
        let charter = SignedCharter::genesis_by(&steward, "world simulation", from, members)
            .context("building the simulation's charter")?;
        let mut stores = Vec::with_capacity(keys.len());
        for index in 0..keys.len() {
            let store = Store::open(
                dir.path().join(format!("node-{index}")),
                &Options {
                    cache_bytes: CACHE_BYTES,
                    temporary: true,
                    reserve_bytes: 0,
                },
            )
            .with_context(|| format!("opening node {index}'s store"))?;
            store
                .put_charter(&charter)
                .with_context(|| format!("storing the charter in node {index}'s store"))?;
            stores.push(store);
        }
        Ok(World {
            nodes: (0..keys.len()).map(|_| None).collect(),
            links,
            keys,
            charter,
            stores,
            by_peer,
            by_key,
            scale,
            seed,
            degrees: dials.as_deref().map_or_else(Vec::new, degrees),
            dials,
            _dir: dir,
        })
    }

    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// With seeded links, how many links node `index` is given (it has no others to dial).
    pub(crate) fn seeded_degree(&self, index: usize) -> Option<usize> {
        self.degrees.get(index).copied()
    }

    /// A real node's network settings, with every duration times the scale, over the
    /// simulated links.
    fn config(&self, index: usize) -> network::Config {
        let real = network::Config::default();
        let scaled = |duration: Duration| duration.mul_f64(self.scale);
        let config = network::Config {
            listen: vec![self.links.address(index)],
            heartbeat: scaled(real.heartbeat),
            sync_interval: scaled(real.sync_interval),
            peer_hold: scaled(real.peer_hold),
            peer_rotation: scaled(real.peer_rotation),
            redial: scaled(real.redial),
            max_redial: scaled(real.max_redial),
            request_timeout: scaled(real.request_timeout),
            handshake_timeout: scaled(real.handshake_timeout),
            ban: scaled(real.ban),
            carrier: self.links.carrier(index),
            seed: Some(self.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ..real
        };
        self.seeded(index, config)
    }

    /// With seeded links: `base`, dialling only the members the seed chose for `index`,
    /// and never rotating. Otherwise `base` as it is.
    fn seeded(&self, index: usize, base: network::Config) -> network::Config {
        let Some(dials) = self.dials.as_ref().and_then(|dials| dials.get(index)) else {
            return base;
        };
        let bootstrap = dials
            .iter()
            .filter_map(|other| {
                let key = self.keys.get(*other)?;
                let peer = PeerId::from_bytes(&PublicKey::of(key).peer_id_bytes()).ok()?;
                Some(self.links.address(*other).with(Protocol::P2p(peer)))
            })
            .collect();
        network::Config {
            bootstrap,
            peer_rotation: NO_ROTATION,
            ..base
        }
    }

    /// Starts node `index` (again, after [`World::stop`]), with what its store holds.
    /// Must run inside the simulation's runtime.
    pub(crate) fn start(&mut self, index: usize) -> Result<()> {
        let key = self.keys.get(index).context("no such node")?.clone();
        let store = self.stores.get(index).context("no such node")?.clone();
        let (client, event_loop) = network::new(
            self.config(index),
            key.clone(),
            store.clone(),
            self.charter.clone(),
        )
        .with_context(|| format!("starting node {index}"))?;
        let publisher = Publisher::new(key, store, client.clone());
        // The span puts what gossipsub logs in the loop down to this node (`observe.rs`).
        let span = tracing::info_span!(super::observe::NODE_SPAN, node = index as u64);
        let task = tokio::spawn(event_loop.run().instrument(span));
        if let Some(slot) = self.nodes.get_mut(index) {
            *slot = Some(SimNode {
                client,
                publisher,
                task,
            });
        }
        Ok(())
    }

    /// Stops node `index` as a crash would (its store stays), and waits until its swarm is
    /// gone, so its memory address is free to listen on again.
    pub(crate) async fn stop(&mut self, index: usize) {
        if let Some(node) = self.nodes.get_mut(index).and_then(Option::take) {
            node.task.abort();
            drop(node.client);
            drop(node.publisher);
            let _ = node.task.await;
        }
    }

    /// The running node `index`.
    pub(crate) fn client(&self, index: usize) -> Option<&Client> {
        self.nodes.get(index)?.as_ref().map(|node| &node.client)
    }

    /// The publisher of running node `index`.
    pub(crate) fn publisher(&self, index: usize) -> Option<&Publisher> {
        self.nodes.get(index)?.as_ref().map(|node| &node.publisher)
    }

    /// Every running node's client, with its index.
    pub(crate) fn running(&self) -> impl Iterator<Item = (usize, &Client)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| Some((index, &node.as_ref()?.client)))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.task.abort();
        }
    }
}

/// Links per node of a graph given as whom each node dials.
fn degrees(dials: &[Vec<usize>]) -> Vec<usize> {
    let mut degrees: Vec<usize> = dials.iter().map(Vec::len).collect();
    for other in dials.iter().flatten() {
        if let Some(degree) = degrees.get_mut(*other) {
            *degree += 1;
        }
    }
    degrees
}

/// A random graph of `nodes` where each node has about [`SEEDED_DEGREE`] links (all others
/// if fewer), fixed by `seed`; each link is dialled by its lower-numbered end. Returns, per
/// node, whom it dials.
fn seeded_graph(nodes: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut dials = vec![Vec::new(); nodes];
    if nodes <= SEEDED_DEGREE + 1 {
        for (a, list) in dials.iter_mut().enumerate() {
            list.extend(a + 1..nodes);
        }
        return dials;
    }
    // Pair link ends at random (each node with SEEDED_DEGREE ends), dropping a node's link
    // to itself and a second link between one pair.
    let mut ends: Vec<usize> = (0..nodes)
        .flat_map(|node| std::iter::repeat_n(node, SEEDED_DEGREE))
        .collect();
    let mut random = crate::bench::Random::new(seed ^ 0x5eed_ed11_7e5e_eded);
    for index in (1..ends.len()).rev() {
        ends.swap(index, random.below(index + 1));
    }
    let mut links = std::collections::BTreeSet::new();
    for pair in ends.chunks_exact(2) {
        if let [a, b] = pair
            && a != b
        {
            links.insert((*a.min(b), *a.max(b)));
        }
    }
    for (a, b) in links {
        if let Some(list) = dials.get_mut(a) {
            list.push(b);
        }
    }
    dials
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_graph_is_the_same_for_a_seed_and_stays_inside_the_peer_target() {
        let graph = seeded_graph(300, 9);
        assert_eq!(graph, seeded_graph(300, 9));
        assert_ne!(graph, seeded_graph(300, 10));
        let mut degree = vec![0usize; 300];
        for (a, dials) in graph.iter().enumerate() {
            for b in dials {
                assert!(a < *b, "dialled by the lower end");
                degree[a] += 1;
                degree[*b] += 1;
            }
        }
        assert!(
            degree.iter().all(|links| *links <= SEEDED_DEGREE),
            "{degree:?}"
        );
        let total: usize = degree.iter().sum();
        // A few pairings are dropped (a node with itself, a pair twice); nearly all stay.
        assert!(total >= 300 * (SEEDED_DEGREE - 1), "{total}");
        // Small federations are complete.
        assert_eq!(
            seeded_graph(4, 1),
            vec![vec![1, 2, 3], vec![2, 3], vec![3], vec![]]
        );
    }
}
